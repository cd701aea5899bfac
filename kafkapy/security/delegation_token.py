"""Delegation tokens (KIP-48): what a token is, its HMAC and its SCRAM credentials.

A token is its id (a random Kafka Uuid in text form), an owner, the principal
that asked for it, its renewers and three timestamps (issue, expiry, max).
Its secret, the HMAC, is never stored: it is HmacSHA512 of the token id under
`delegation.token.secret.key`, so every broker with the same key derives it.
A client authenticates with SCRAM and the `tokenauth=true` extension, the
token id as user name and base64(HMAC) as password; the broker checks it
against credentials salted from that password (4096 iterations, as Kafka),
computed once per token and mechanism.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafkapy.security.scram import MECHANISMS, ScramCredential, make_credential

TOKEN_ITERATIONS = 4096  # Kafka salts token credentials with each mechanism's minimum


@dataclass(slots=True, frozen=True)
class TokenInfo:
    token_id: str
    owner: str  # principal, "User:alice"
    requester: str  # who asked for it (KIP-373)
    renewers: tuple[str, ...]
    issue_ms: int
    expiry_ms: int
    max_ms: int

    def owner_or_renewer(self, principal: str) -> bool:
        """Kafka's TokenInformation.ownerOrRenewer: who may describe the token without an ACL."""
        return principal in (self.owner, self.requester) or principal in self.renewers

    def may_renew(self, principal: str) -> bool:
        """Who may renew or expire it (Kafka's controller: the owner and the renewers)."""
        return principal == self.owner or principal in self.renewers

    def expired(self, now_ms: int) -> bool:
        return self.max_ms < now_ms or self.expiry_ms < now_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "owner": self.owner,
            "requester": self.requester,
            "renewers": list(self.renewers),
            "issue_ms": self.issue_ms,
            "expiry_ms": self.expiry_ms,
            "max_ms": self.max_ms,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TokenInfo:
        return cls(
            token_id=str(d["token_id"]),
            owner=str(d["owner"]),
            requester=str(d.get("requester", d["owner"])),
            renewers=tuple(str(r) for r in d.get("renewers", ())),
            issue_ms=int(d["issue_ms"]),
            expiry_ms=int(d["expiry_ms"]),
            max_ms=int(d["max_ms"]),
        )


def split_principal(principal: str) -> tuple[str, str]:
    """("User", "alice") from "User:alice"."""
    kind, _, name = principal.partition(":")
    return kind, name


def token_hmac(secret_key: str, token_id: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), token_id.encode("utf-8"), hashlib.sha512).digest()


def token_password(secret_key: str, token_id: str) -> str:
    """What a client puts in its JAAS password: base64 of the HMAC."""
    return base64.b64encode(token_hmac(secret_key, token_id)).decode("ascii")


@dataclass(slots=True)
class TokenCredentials:
    """The SCRAM side of tokens on one broker: `lookup(mechanism, token_id)` gives a stored token's
    credential, owner name and expiry, None for an unknown one; `token(token_id)` reads the store.
    As in Kafka, a token past its expiry but not yet swept still authenticates, with a session that
    ends at once (the broker closes the connection at its next request)."""

    secret_key: str
    token: Callable[[str], TokenInfo | None]
    _cache: dict[tuple[str, str], ScramCredential] = field(default_factory=dict)

    def lookup(self, mechanism: str, token_id: str) -> tuple[ScramCredential, str, int] | None:
        info = self.token(token_id)
        if info is None or mechanism not in MECHANISMS:
            return None
        key = (mechanism, token_id)
        credential = self._cache.get(key)
        if credential is None:
            if len(self._cache) > 10_000:  # tokens removed from the store leave entries behind
                self._cache.clear()
            credential = make_credential(mechanism, token_password(self.secret_key, token_id), TOKEN_ITERATIONS)
            self._cache[key] = credential
        return credential, split_principal(info.owner)[1], info.expiry_ms
