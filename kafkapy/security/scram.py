"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): credentials, server and client.

A stored credential is what RFC 5802 keeps instead of the password: the
salt, StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
HMAC(SaltedPassword, "Server Key") and the iteration count.

The server exchange (sans-IO):
  client-first  `n,[a=authzid],n=user,r=cnonce[,ext=value...]`
  server-first  `r=cnonce+snonce,s=base64(salt),i=iterations`
  client-final  `c=base64(gs2-header),r=cnonce+snonce,p=base64(proof)`
  server-final  `v=base64(ServerSignature)`
Kafka's extension `tokenauth=true` asks for a delegation token's credential
instead of the user's. Kafka's failures other than a differing authorization
id are plain SaslExceptions: the client gets the generic message
(`sasl_base.client_message`), the log gets the detail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from kafkapy.security.sasl_base import SCRAM_SHA_256, SCRAM_SHA_512, SaslFailure


@dataclass(slots=True, frozen=True)
class ScramMechanism:
    name: str
    hash_name: str
    mechanism_type: int  # Kafka's ScramMechanism type in the admin APIs: 1 = SHA-256, 2 = SHA-512
    min_iterations: int = 4096
    max_iterations: int = 16384  # what AlterUserScramCredentials accepts


MECHANISMS: dict[str, ScramMechanism] = {
    SCRAM_SHA_256: ScramMechanism(SCRAM_SHA_256, "sha256", 1),
    SCRAM_SHA_512: ScramMechanism(SCRAM_SHA_512, "sha512", 2),
}
BY_TYPE: dict[int, ScramMechanism] = {m.mechanism_type: m for m in MECHANISMS.values()}


@dataclass(slots=True, frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def _hmac(mech: ScramMechanism, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, mech.hash_name).digest()


def salted_password(mech: ScramMechanism, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC."""
    return hashlib.pbkdf2_hmac(mech.hash_name, password.encode("utf-8"), salt, iterations)


def credential_from_salted(mech: ScramMechanism, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    client_key = _hmac(mech, salted, b"Client Key")
    stored_key = hashlib.new(mech.hash_name, client_key).digest()
    server_key = _hmac(mech, salted, b"Server Key")
    return ScramCredential(salt, stored_key, server_key, iterations)


def make_credential(
    mechanism: str, password: str, iterations: int = 4096, salt: bytes | None = None
) -> ScramCredential:
    """The credential to store for `password` (a fresh random salt unless given)."""
    mech = MECHANISMS[mechanism]
    salt = salt if salt is not None else secrets.token_bytes(32)
    return credential_from_salted(mech, salted_password(mech, password, salt, iterations), salt, iterations)


def server_nonce() -> str:
    return secrets.token_urlsafe(24)  # printable, no ','


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, base64.binascii.Error):  # type: ignore[attr-defined]
        raise SaslFailure(f"Invalid SCRAM message: {what} is not base64") from None


def decode_saslname(name: str) -> str:
    """RFC 5802's saslname: '=2C' is ',' and '=3D' is '='; any other '=' is invalid."""
    out: list[str] = []
    i = 0
    while i < len(name):
        if name[i] == "=":
            code = name[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise SaslFailure(f"Invalid username: {name}")
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def encode_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


@dataclass(slots=True, frozen=True)
class ClientFirst:
    gs2_header: str
    authzid: str
    username: str
    nonce: str
    extensions: dict[str, str]
    bare: str


def parse_client_first(text: str) -> ClientFirst:
    parts = text.split(",")
    if len(parts) < 4 or parts[0] not in ("n", "y"):
        raise SaslFailure(f"Invalid SCRAM client first message format: {text!r}")
    authzid = ""
    if parts[1]:
        if not parts[1].startswith("a="):
            raise SaslFailure(f"Invalid SCRAM client first message format: {text!r}")
        authzid = decode_saslname(parts[1][2:])
    if not parts[2].startswith("n=") or len(parts[2]) == 2 or not parts[3].startswith("r=") or len(parts[3]) == 2:
        raise SaslFailure(f"Invalid SCRAM client first message format: {text!r}")
    extensions: dict[str, str] = {}
    for ext in parts[4:]:
        key, sep, value = ext.partition("=")
        if not sep or not key:
            raise SaslFailure(f"Invalid SCRAM client first message format: {text!r}")
        extensions[key] = value
    return ClientFirst(
        gs2_header=f"{parts[0]},{parts[1]},",
        authzid=authzid,
        username=decode_saslname(parts[2][2:]),
        nonce=parts[3][2:],
        extensions=extensions,
        bare=",".join(parts[2:]),
    )


CredentialLookup = Callable[[str], "ScramCredential | None"]


@dataclass(slots=True)
class ScramServer:
    """One SCRAM exchange, server side. `lookup(user)` gives the user's credential for this mechanism;
    `token_lookup(token_id)` a live delegation token's (credential, owner name, expiry ms), when tokens
    are served; the token's expiry bounds the session."""

    mechanism: str
    lookup: CredentialLookup
    token_lookup: Callable[[str], tuple[ScramCredential, str, int] | None] | None = None
    nonce_factory: Callable[[], str] = server_nonce
    _state: str = "first"
    _user: str = ""
    _first: ClientFirst | None = None
    _server_first: str = ""
    _nonce: str = ""
    _credential: ScramCredential | None = None
    token_authenticated: bool = False
    _token_expiry_ms: int | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self._state == "done"

    @property
    def authorization_id(self) -> str:
        return self._user

    @property
    def credential_expiry_ms(self) -> int | None:
        return self._token_expiry_ms

    def evaluate(self, token: bytes) -> bytes:
        mech = MECHANISMS[self.mechanism]
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SCRAM message: not UTF-8") from None
        if self._state == "first":
            return self._client_first(mech, text)
        if self._state == "final":
            return self._client_final(mech, text)
        raise SaslFailure(f"Unexpected challenge in Sasl server state {self._state}", illegal_state=True)

    def _client_first(self, mech: ScramMechanism, text: str) -> bytes:
        first = parse_client_first(text)
        self._state = "failed"
        if first.authzid and first.authzid != first.username:
            raise SaslFailure(
                "Authentication failed: Client requested an authorization id that is different from username",
                reveal=True,
            )
        self.extensions = dict(first.extensions)
        credential: ScramCredential | None
        if first.extensions.get("tokenauth", "").lower() == "true":
            found = self.token_lookup(first.username) if self.token_lookup is not None else None
            credential, user, self._token_expiry_ms = found if found is not None else (None, "", None)
            self.token_authenticated = True
        else:
            credential, user = self.lookup(first.username), first.username
        if credential is None:
            raise SaslFailure("Authentication failed: Invalid user credentials")
        if credential.iterations < mech.min_iterations:
            raise SaslFailure(
                f"Iterations {credential.iterations} is less than the minimum {mech.min_iterations} for {mech.name}"
            )
        self._first, self._credential, self._user = first, credential, user
        self._nonce = first.nonce + self.nonce_factory()
        self._server_first = f"r={self._nonce},s={_b64(credential.salt)},i={credential.iterations}"
        self._state = "final"
        return self._server_first.encode("utf-8")

    def _client_final(self, mech: ScramMechanism, text: str) -> bytes:
        assert self._first is not None and self._credential is not None
        self._state = "failed"
        parts = text.split(",")
        if len(parts) < 3 or not parts[0].startswith("c=") or not parts[1].startswith("r="):
            raise SaslFailure(f"Invalid SCRAM client final message format: {text!r}")
        if not parts[-1].startswith("p="):
            raise SaslFailure(f"Invalid SCRAM client final message format: {text!r}")
        if _unb64(parts[0][2:], "channel binding") != self._first.gs2_header.encode("utf-8"):
            raise SaslFailure("Invalid channel binding in the final client message.")
        if parts[1][2:] != self._nonce:
            raise SaslFailure("Invalid client nonce in the final client message.")
        proof = _unb64(parts[-1][2:], "proof")
        without_proof = ",".join(parts[:-1])
        auth_message = f"{self._first.bare},{self._server_first},{without_proof}".encode()
        credential = self._credential
        signature = _hmac(mech, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise SaslFailure("Invalid client credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(mech.hash_name, client_key).digest(), credential.stored_key):
            raise SaslFailure("Invalid client credentials")
        self._state = "done"
        return f"v={_b64(_hmac(mech, credential.server_key, auth_message))}".encode()


@dataclass(slots=True)
class ScramClient:
    """The client side, e.g. for inter-broker connections: `first()`, `final(server_first)`,
    then `verify(server_final)` (raises SaslFailure when the server's signature is wrong)."""

    mechanism: str
    username: str
    password: str
    nonce: str = field(default_factory=server_nonce)
    extensions: dict[str, str] = field(default_factory=dict)
    _bare: str = ""
    _server_signature: bytes = b""

    def first(self) -> bytes:
        ext = "".join(f",{k}={v}" for k, v in self.extensions.items())
        self._bare = f"n={encode_saslname(self.username)},r={self.nonce}{ext}"
        return f"n,,{self._bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        mech = MECHANISMS[self.mechanism]
        text = server_first.decode("utf-8")
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt_b64, iterations_s = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise SaslFailure("Invalid server nonce: does not start with client nonce")
        iterations = int(iterations_s)
        if iterations < mech.min_iterations:
            raise SaslFailure(f"Requested iterations {iterations} is less than the minimum {mech.min_iterations}")
        salted = salted_password(mech, self.password, _unb64(salt_b64, "salt"), iterations)
        without_proof = f"c={_b64(b'n,,')},r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        client_key = _hmac(mech, salted, b"Client Key")
        stored_key = hashlib.new(mech.hash_name, client_key).digest()
        signature = _hmac(mech, stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(mech, _hmac(mech, salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> None:
        text = server_final.decode("utf-8", "replace")
        if text.startswith("e="):
            raise SaslFailure(f"SCRAM server error: {text[2:]}")
        if not text.startswith("v=") or not hmac.compare_digest(
            _unb64(text[2:], "server signature"), self._server_signature
        ):
            raise SaslFailure("Invalid server signature in server final message")


@dataclass(slots=True)
class ScramClientMechanism:
    """ScramClient in kafkapy.client's SaslClientMechanism shape: respond(None) is client-first,
    respond(server-first) client-final, respond(server-final) verifies it and completes."""

    mechanism: str
    username: str
    password: str
    _client: ScramClient | None = None
    _step: int = 0

    @property
    def name(self) -> str:
        return self.mechanism

    @property
    def complete(self) -> bool:
        return self._step == 3

    def respond(self, challenge: bytes | None) -> bytes:
        if self._step == 0:
            self._client = ScramClient(self.mechanism, self.username, self.password)
            self._step = 1
            return self._client.first()
        assert self._client is not None and challenge is not None
        if self._step == 1:
            self._step = 2
            return self._client.final(challenge)
        self._client.verify(challenge)
        self._step = 3
        return b""
