"""SASL/PLAIN (RFC 4616), server and client side, with Kafka's checks and messages.

The client sends `authzid NUL authcid NUL password` (UTF-8) once; the server
answers with an empty challenge. Kafka's PlainSaslServer rejects, in order:
not exactly three fields, an empty user name, an empty password, an
authorization id other than the user name, then a wrong password. All these
messages reach the client as they are.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from kafkapy.security.sasl_base import PLAIN, SaslFailure

# user name -> the password, or None when there is no such user
PasswordLookup = Callable[[str], "str | None"]


@dataclass(slots=True)
class PlainServer:
    lookup: PasswordLookup
    mechanism: str = PLAIN
    _user: str = ""
    _done: bool = False

    @property
    def complete(self) -> bool:
        return self._done

    @property
    def authorization_id(self) -> str:
        return self._user

    @property
    def credential_expiry_ms(self) -> int | None:
        return None

    def evaluate(self, token: bytes) -> bytes:
        if self._done:
            raise SaslFailure("Unexpected challenge in SASL/PLAIN after authentication", illegal_state=True)
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SASL/PLAIN response: not UTF-8", reveal=True) from None
        fields = text.split("\0")
        if len(fields) != 3:
            raise SaslFailure(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(fields)}", reveal=True)
        authzid, user, password = fields
        if not user:
            raise SaslFailure("Authentication failed: username not specified", reveal=True)
        if not password:
            raise SaslFailure("Authentication failed: password not specified", reveal=True)
        if authzid and authzid != user:
            raise SaslFailure(
                "Authentication failed: Client requested an authorization id that is different from username",
                reveal=True,
            )
        expected = self.lookup(user)
        # compare anyway when the user is unknown, so timing does not tell which it was
        given = password.encode("utf-8")
        ok = hmac.compare_digest(given, (expected if expected is not None else "\0" + password).encode("utf-8"))
        if expected is None or not ok:
            raise SaslFailure("Authentication failed: Invalid username or password", reveal=True)
        self._user = user
        self._done = True
        return b""


def plain_client_token(username: str, password: str, authzid: str = "") -> bytes:
    """The one token a PLAIN client sends."""
    return f"{authzid}\0{username}\0{password}".encode()


@dataclass(slots=True)
class PlainClient:
    """PLAIN's client side in kafkapy.client's SaslClientMechanism shape (inter-broker, CLI)."""

    username: str
    password: str
    authzid: str = ""
    _sent: bool = False

    @property
    def name(self) -> str:
        return PLAIN

    @property
    def complete(self) -> bool:
        return self._sent

    def respond(self, challenge: bytes | None) -> bytes:
        self._sent = True
        return plain_client_token(self.username, self.password, self.authzid)
