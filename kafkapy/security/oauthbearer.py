"""SASL/OAUTHBEARER (RFC 7628) server side, with Kafka's two validators.

Client message: `n,[a=authzid],` ^A `auth=Bearer <token>` ^A {`key=value` ^A} ^A.

- Unsecured (Kafka's default, OAuthBearerUnsecuredValidatorCallbackHandler,
  for development): the token is an unsecured JWS `header.payload.` with
  `alg` none; the principal claim (`unsecuredValidatorPrincipalClaimName`,
  default `sub`) must be a non-empty string, `exp` a number in the future,
  `iat` (optional) not in the future, allowing
  `unsecuredValidatorAllowableClockSkewMs`; `unsecuredValidatorRequiredScope`
  (space-separated) must be in the scope claim.
- Signed (OAuthBearerValidatorCallbackHandler): a JWS checked against the
  keys of a JWKS (`sasl.oauthbearer.jwks.endpoint.url`, `file:` or http(s)),
  with `exp` and the subject claim required and
  `sasl.oauthbearer.expected.audience` / `.issuer` when set (PyJWT does the
  cryptography).

A token that fails gets Kafka's two-step answer: a JSON error challenge
(`{"status":"invalid_token"}`), then, on the client's ^A, the failure with
that JSON as its message. The token's `exp` bounds the session.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafkapy.security.sasl_base import OAUTHBEARER, SaslFailure

CTRL_A = "\x01"
SIGNED_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


class TokenInvalid(Exception):
    """Validation failed; `status` is RFC 7628's error status, `detail` goes to the log."""

    def __init__(self, detail: str, status: str = "invalid_token", scope: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.scope = scope


@dataclass(slots=True, frozen=True)
class ValidToken:
    principal: str
    expiry_ms: int
    scope: frozenset[str]
    claims: dict[str, Any]


class TokenValidator(Protocol):
    def validate(self, token: str) -> ValidToken: ...


@dataclass(slots=True, frozen=True)
class ClientResponse:
    authzid: str
    token: str
    extensions: dict[str, str]


def parse_client_response(data: bytes) -> ClientResponse:
    """RFC 7628's initial client response; SaslFailure when malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("Invalid OAUTHBEARER client first message: not UTF-8") from None
    head, sep, rest = text.partition(CTRL_A)
    bad = SaslFailure("Invalid OAUTHBEARER client first message")
    if not sep or (not rest.endswith(CTRL_A + CTRL_A) and rest != CTRL_A):
        raise bad
    gs2 = head.split(",")
    if len(gs2) != 3 or gs2[0] != "n" or gs2[2] != "" or (gs2[1] and not gs2[1].startswith("a=")):
        raise bad
    pairs: dict[str, str] = {}
    for item in rest[:-2].split(CTRL_A) if rest != CTRL_A else []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise bad
        pairs[key] = value
    auth = pairs.pop("auth", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise bad
    return ClientResponse(gs2[1][2:], token, pairs)


def error_json(status: str, scope: str | None = None) -> str:
    body: dict[str, str] = {"status": status}
    if scope:
        body["scope"] = scope
    return json.dumps(body, separators=(",", ":"))


def _b64url_json(part: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid(f"the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise TokenInvalid(f"the {what} is not a JSON object")
    return value


def _scope(claims: dict[str, Any], name: str) -> frozenset[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return frozenset()


def _number(claims: dict[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenInvalid(f"Required claim missing: {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenInvalid(f"The {name} claim is not a number")
    return float(value)


@dataclass(slots=True)
class UnsecuredValidator:
    """Kafka's default validator of unsecured JWS tokens (options from the JAAS entry)."""

    principal_claim: str = "sub"
    scope_claim: str = "scope"
    required_scope: frozenset[str] = frozenset()
    clock_skew_ms: int = 0
    clock: Callable[[], float] = time.time

    @classmethod
    def from_options(cls, options: dict[str, str]) -> UnsecuredValidator:
        return cls(
            principal_claim=options.get("unsecuredValidatorPrincipalClaimName", "sub") or "sub",
            scope_claim=options.get("unsecuredValidatorScopeClaimName", "scope") or "scope",
            required_scope=frozenset(options.get("unsecuredValidatorRequiredScope", "").split()),
            clock_skew_ms=int(options.get("unsecuredValidatorAllowableClockSkewMs", "0") or 0),
        )

    def validate(self, token: str) -> ValidToken:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid(f"An unsecured JWS has 3 parts, this token has {len(parts)}")
        if parts[2]:
            raise TokenInvalid("An unsecured JWS has an empty signature")
        header = _b64url_json(parts[0], "header")
        if header.get("alg") != "none":
            raise TokenInvalid(f"An unsecured JWS must have alg none, not {header.get('alg')!r}")
        claims = _b64url_json(parts[1], "payload")
        now_ms = self.clock() * 1000
        exp = _number(claims, "exp", True)
        assert exp is not None
        iat = _number(claims, "iat", False)
        principal = claims.get(self.principal_claim)
        if not isinstance(principal, str) or not principal.strip():
            raise TokenInvalid(f"Required claim missing or empty: {self.principal_claim}")
        if exp * 1000 + self.clock_skew_ms <= now_ms:
            raise TokenInvalid(f"The token expired at {int(exp * 1000)} ms (now {int(now_ms)} ms)")
        if iat is not None and iat * 1000 - self.clock_skew_ms > now_ms:
            raise TokenInvalid(f"The token was issued in the future ({int(iat * 1000)} ms)")
        if iat is not None and exp <= iat:
            raise TokenInvalid("The token expires before it was issued")
        scope = _scope(claims, self.scope_claim)
        missing = self.required_scope - scope
        if missing:
            raise TokenInvalid(
                f"The token lacks the required scope {' '.join(sorted(missing))}",
                status="insufficient_scope",
                scope=" ".join(sorted(self.required_scope)),
            )
        return ValidToken(principal, int(exp * 1000), scope, claims)


@dataclass(slots=True)
class JwksSource:
    """The keys at a JWKS URL (`file:` or http(s)), re-read every `refresh_ms` and when a kid is unknown."""

    url: str
    refresh_ms: int = 3_600_000
    _keys: dict[str, Any] = field(default_factory=dict)  # kid -> PyJWK
    _unnamed: list[Any] = field(default_factory=list)
    _loaded_at: float = 0.0
    _mtime: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> str:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "file":
            path = urllib.request.url2pathname(parsed.path)
            self._mtime = os.stat(path).st_mtime
            with open(path, encoding="utf-8") as f:
                return f.read()
        if parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(self.url, timeout=10) as response:
                return bytes(response.read()).decode("utf-8")
        raise ValueError(f"unsupported JWKS URL scheme: {self.url}")

    def load(self) -> None:
        import jwt

        text = self._read()
        keys: dict[str, Any] = {}
        unnamed: list[Any] = []
        for key in jwt.PyJWKSet.from_json(text):
            if key.key_id:
                keys[key.key_id] = key
            else:
                unnamed.append(key)
        with self._lock:
            self._keys, self._unnamed, self._loaded_at = keys, unnamed, time.monotonic()

    def stale(self) -> bool:
        if not self._loaded_at or (time.monotonic() - self._loaded_at) * 1000 >= self.refresh_ms:
            return True
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme == "file":
            try:
                return os.stat(urllib.request.url2pathname(parsed.path)).st_mtime != self._mtime
            except OSError:
                return False
        return False

    def key(self, kid: str | None) -> Any:
        with self._lock:
            if kid is not None and kid in self._keys:
                return self._keys[kid]
            if kid is None and len(self._keys) + len(self._unnamed) == 1:
                return next(iter(self._keys.values()), None) or self._unnamed[0]
        return None


@dataclass(slots=True)
class SignedValidator:
    """Kafka's broker JWT validator: signature against a JWKS, exp, subject, audience, issuer."""

    jwks: JwksSource
    expected_audience: frozenset[str] = frozenset()
    expected_issuer: str | None = None
    sub_claim: str = "sub"
    scope_claim: str = "scope"
    clock_skew_s: int = 30

    def validate(self, token: str) -> ValidToken:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed JWT: {exc}") from None
        key = self.jwks.key(header.get("kid"))
        if key is None:
            raise TokenInvalid(f"no key in the JWKS for kid {header.get('kid')!r}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or (key.algorithm_name and key.algorithm_name != alg):
            raise TokenInvalid(f"the JWT's alg {alg!r} does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=sorted(self.expected_audience) if self.expected_audience else None,
                issuer=self.expected_issuer or None,
                leeway=self.clock_skew_s,
                options={"require": ["exp"], "verify_aud": bool(self.expected_audience)},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"JWT validation failed: {type(exc).__name__}: {exc}") from None
        principal = claims.get(self.sub_claim)
        if not isinstance(principal, str) or not principal.strip():
            raise TokenInvalid(f"Required claim missing or empty: {self.sub_claim}")
        return ValidToken(principal, int(float(claims["exp"]) * 1000), _scope(claims, self.scope_claim), claims)


@dataclass(slots=True)
class OAuthBearerServer:
    validator: TokenValidator
    mechanism: str = OAUTHBEARER
    _user: str = ""
    _expiry_ms: int | None = None
    _error: str | None = None
    _done: bool = False
    last_detail: str = ""  # why the token failed, for the log
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self._done

    @property
    def authorization_id(self) -> str:
        return self._user

    @property
    def credential_expiry_ms(self) -> int | None:
        return self._expiry_ms

    def evaluate(self, token: bytes) -> bytes:
        if self._done:
            raise SaslFailure("Unexpected challenge in SASL/OAUTHBEARER after authentication", illegal_state=True)
        if token == CTRL_A.encode() and self._error is not None:
            raise SaslFailure(self._error, reveal=True)
        self._error = None
        response = parse_client_response(token)
        try:
            valid = self.validator.validate(response.token)
        except TokenInvalid as exc:
            self.last_detail = exc.detail
            self._error = error_json(exc.status, exc.scope)
            return self._error.encode()
        if response.authzid and response.authzid != valid.principal:
            raise SaslFailure(
                f"Authentication failed: Client requested an authorization id ({response.authzid}) that is different "
                f"from the token's principal name ({valid.principal})",
                reveal=True,
            )
        self.extensions = response.extensions
        self._user, self._expiry_ms, self._done = valid.principal, valid.expiry_ms, True
        return b""


def unsecured_token(principal: str, lifetime_s: float = 3600, scope: str | None = None, **claims: Any) -> str:
    """An unsecured JWS as Kafka's unsecured login module makes (for tests and development)."""
    now = time.time()
    payload: dict[str, Any] = {"sub": principal, "iat": now, "exp": now + lifetime_s, **claims}
    if scope is not None:
        payload["scope"] = scope

    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'none'})}.{enc(payload)}."


def client_response(token: str, authzid: str = "", extensions: dict[str, str] | None = None) -> bytes:
    """The initial client response for `token`."""
    ext = "".join(f"{k}={v}{CTRL_A}" for k, v in (extensions or {}).items())
    head = f"n,a={authzid}," if authzid else "n,,"
    return f"{head}{CTRL_A}auth=Bearer {token}{CTRL_A}{ext}{CTRL_A}".encode()
