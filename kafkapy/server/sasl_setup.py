"""The SASL set-up of the broker's listeners and the SASL state of a connection.

`SaslSetup.from_config` reads, for every SASL_PLAINTEXT / SASL_SSL listener,
its `sasl.enabled.mechanisms` and each mechanism's settings in Kafka's
forms (`listener.name.<listener>.<mechanism>.<key>`, then
`listener.name.<listener>.<key>`, then `<key>`), once at start-up; a
listener that cannot be served as configured raises SaslSetupError.
`SaslSession` is one connection's progress (ConnectionContext.state["sasl"]).
The handlers are in kafkapy.server.handlers.sasl, the pre-authentication gate
in kafkapy.server.dispatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkapy.config import BROKER_KEYS, BrokerConfig, ConfigError
from kafkapy.security import jaas
from kafkapy.security.sasl_base import GSSAPI, OAUTHBEARER, PLAIN, SUPPORTED_MECHANISMS, SaslServer
from kafkapy.server.network import ConnectionContext

if TYPE_CHECKING:
    from kafkapy.security.oauthbearer import JwksSource, TokenValidator
    from kafkapy.security.scram import ScramCredential

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
MIN_REAUTH_INTERVAL_S = 1.0  # Kafka ignores a re-authentication sooner than this after the last
STATE_KEY = "sasl"


class SaslSetupError(ConfigError):
    """A SASL listener that cannot be served as configured (stops start-up)."""


def setting(config: BrokerConfig, listener: str, mechanism: str | None, key: str) -> Any:
    """`key` for a listener (and mechanism): listener.name.<l>.<mech>.<key>, then listener.name.<l>.<key>,
    then <key>."""
    known = BROKER_KEYS[key]
    names = [f"listener.name.{listener.lower()}.{key}"]
    if mechanism is not None:
        names.insert(0, f"listener.name.{listener.lower()}.{mechanism.lower()}.{key}")
    for name in names:
        raw = config.explicit.get(name)
        if raw is not None:
            return known.parse(raw)
    return getattr(config, known.attr)


@dataclass(slots=True)
class ListenerSasl:
    """What one SASL listener serves: its mechanisms and their settings."""

    name: str
    mechanisms: list[str]
    plain_users: dict[str, str] = field(default_factory=dict)
    oauth_validator: TokenValidator | None = None
    jwks: JwksSource | None = None


@dataclass(slots=True)
class SaslSetup:
    """Every SASL listener of the broker, checked once at start-up."""

    listeners: dict[str, ListenerSasl]
    max_receive_size: int
    failed_delay_ms: int
    max_reauth_ms: int
    scram_lookup: Callable[[str, str], ScramCredential | None] = lambda mechanism, user: None
    # (mechanism, token id) -> a live delegation token's (credential, owner name, expiry ms); None: no tokens
    token_lookup: Callable[[str, str], tuple[ScramCredential, str, int] | None] | None = None

    @classmethod
    def from_config(cls, config: BrokerConfig, protocols: dict[str, str]) -> SaslSetup:
        listeners: dict[str, ListenerSasl] = {}
        for name, protocol in protocols.items():
            if protocol in SASL_PROTOCOLS:
                listeners[name.upper()] = _listener_setup(config, name)
        return cls(
            listeners=listeners,
            max_receive_size=config.sasl_server_max_receive_size,
            failed_delay_ms=config.connection_failed_authentication_delay_ms,
            max_reauth_ms=config.connections_max_reauth_ms,
        )

    def listener(self, name: str) -> ListenerSasl | None:
        return self.listeners.get(name.upper())

    def server(self, listener: ListenerSasl, mechanism: str) -> SaslServer:
        if mechanism == PLAIN:
            from kafkapy.security.sasl_plain import PlainServer

            return PlainServer(listener.plain_users.get)
        if mechanism == OAUTHBEARER:
            from kafkapy.security.oauthbearer import OAuthBearerServer

            assert listener.oauth_validator is not None
            return OAuthBearerServer(listener.oauth_validator)
        from kafkapy.security.scram import ScramServer

        lookup, tokens = self.scram_lookup, self.token_lookup
        return ScramServer(
            mechanism,
            lambda user: lookup(mechanism, user),
            None if tokens is None else (lambda token_id: tokens(mechanism, token_id)),
        )


def _jaas_entry(config: BrokerConfig, listener: str, mechanism: str) -> jaas.JaasEntry | None:
    text = setting(config, listener, mechanism, "sasl.jaas.config")
    if text is None:
        return None
    try:
        return jaas.parse_single(str(text))
    except jaas.JaasError as exc:
        raise SaslSetupError(
            f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config", str(exc)
        ) from None


def handshake_order(mechanisms: list[str]) -> list[str]:
    """The enabled mechanisms in the order Kafka's SaslHandshake lists them: a Java HashMap's (16
    buckets, keyed by name) iteration order, i.e. by bucket of String.hashCode, ties (PLAIN and
    SCRAM-SHA-512 share one) in configured order; duplicates once."""

    def bucket(name: str) -> int:
        h = 0
        for ch in name:
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & 15

    return sorted(dict.fromkeys(mechanisms), key=bucket)


def _listener_setup(config: BrokerConfig, name: str) -> ListenerSasl:
    mechanisms = [m.strip().upper() for m in setting(config, name, None, "sasl.enabled.mechanisms") if m.strip()]
    key = f"listener.name.{name.lower()}.sasl.enabled.mechanisms"
    if not mechanisms:
        raise SaslSetupError(key, f"listener {name} is a SASL listener but no SASL mechanism is enabled")
    if GSSAPI in mechanisms:
        raise SaslSetupError(
            "sasl.enabled.mechanisms",
            f"listener {name}: GSSAPI (Kerberos, Kafka's default sasl.enabled.mechanisms) is not supported by "
            f"kafkapy; set sasl.enabled.mechanisms to some of {', '.join(SUPPORTED_MECHANISMS)}",
        )
    unknown = [m for m in mechanisms if m not in SUPPORTED_MECHANISMS]
    if unknown:
        raise SaslSetupError(key, f"listener {name}: unsupported SASL mechanism(s) {', '.join(unknown)}")
    result = ListenerSasl(name.upper(), handshake_order(mechanisms))
    if PLAIN in mechanisms:
        entry = _jaas_entry(config, name, PLAIN)
        if entry is None:
            raise SaslSetupError(
                f"listener.name.{name.lower()}.plain.sasl.jaas.config",
                f'listener {name} enables PLAIN but has no JAAS config for it (user_<name>="<password>" options)',
            )
        result.plain_users = jaas.plain_users(entry)
    if OAUTHBEARER in mechanisms:
        result.oauth_validator, result.jwks = _oauth_validator(config, name)
    return result


def _oauth_validator(config: BrokerConfig, name: str) -> tuple[TokenValidator, JwksSource | None]:
    from kafkapy.security.oauthbearer import (
        SIGNED_HANDLER,
        JwksSource,
        SignedValidator,
        UnsecuredValidator,
    )

    handler = setting(config, name, OAUTHBEARER, "sasl.server.callback.handler.class")
    url = setting(config, name, OAUTHBEARER, "sasl.oauthbearer.jwks.endpoint.url")
    if (handler or "").strip() == SIGNED_HANDLER or (not handler and url):
        if not url:
            raise SaslSetupError(
                "sasl.oauthbearer.jwks.endpoint.url", f"listener {name}: signed OAUTHBEARER tokens need a JWKS URL"
            )
        jwks = JwksSource(url, int(setting(config, name, OAUTHBEARER, "sasl.oauthbearer.jwks.endpoint.refresh.ms")))
        try:
            jwks.load()
        except Exception as exc:
            raise SaslSetupError(
                "sasl.oauthbearer.jwks.endpoint.url", f"cannot read the JWKS at {url}: {exc}"
            ) from None
        issuer = setting(config, name, OAUTHBEARER, "sasl.oauthbearer.expected.issuer")
        validator = SignedValidator(
            jwks,
            expected_audience=frozenset(setting(config, name, OAUTHBEARER, "sasl.oauthbearer.expected.audience")),
            expected_issuer=issuer or None,
            sub_claim=setting(config, name, OAUTHBEARER, "sasl.oauthbearer.sub.claim.name"),
            scope_claim=setting(config, name, OAUTHBEARER, "sasl.oauthbearer.scope.claim.name"),
            clock_skew_s=int(setting(config, name, OAUTHBEARER, "sasl.oauthbearer.clock.skew.seconds")),
        )
        return validator, jwks
    entry = _jaas_entry(config, name, OAUTHBEARER)
    try:
        return UnsecuredValidator.from_options(entry.options if entry is not None else {}), None
    except ValueError as exc:
        key = f"listener.name.{name.lower()}.oauthbearer.sasl.jaas.config"
        raise SaslSetupError(key, f"listener {name}: bad unsecuredValidator option: {exc}") from None


@dataclass(slots=True)
class SaslSession:
    """SASL progress on one connection (kept in ConnectionContext.state["sasl"])."""

    mechanism: str = ""
    server: SaslServer | None = None
    raw_tokens: bool = False  # SaslHandshake v0: the tokens come as bare frames
    authenticated: bool = False
    reauthenticating: bool = False
    authenticate_version: int = -1  # the SaslAuthenticate version the client used (>= 1: it can re-authenticate)
    expires_at: float | None = None  # monotonic seconds; None: the session never expires
    reauth_started: float = 0.0


def token_authenticated(conn: ConnectionContext) -> bool:
    """Did the connection authenticate with a delegation token (SCRAM with tokenauth=true)?"""
    found = conn.state.get(STATE_KEY)
    return (
        isinstance(found, SaslSession)
        and found.authenticated
        and bool(getattr(found.server, "token_authenticated", False))
    )


def session(conn: ConnectionContext) -> SaslSession:
    found = conn.state.get(STATE_KEY)
    if not isinstance(found, SaslSession):
        found = conn.state[STATE_KEY] = SaslSession()
    return found
