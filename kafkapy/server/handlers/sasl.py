"""SaslHandshake (17) and SaslAuthenticate (36), and the state of SASL on a connection.

On a SASL_PLAINTEXT or SASL_SSL listener a connection starts unauthenticated:
the dispatcher (`dispatch.Dispatcher`, through `gate`) serves only
ApiVersions, SaslHandshake and SaslAuthenticate until this module sets
`ConnectionContext.principal`. The exchange, as Kafka's
SaslServerAuthenticator runs it:

- SaslHandshake names a mechanism of the listener's `sasl.enabled.mechanisms`
  (`listener.name.<l>.sasl.enabled.mechanisms` wins); any other gets
  UNSUPPORTED_SASL_MECHANISM with the enabled list, then the connection
  closes. v1 carries the tokens in SaslAuthenticate requests; v0 (before
  KIP-152) means the tokens that follow come as bare size-prefixed frames,
  answered the same way (`raw_token`).
- SaslAuthenticate feeds the mechanism (kafkapy.security): a failure waits
  `connection.failed.authentication.delay.ms`, answers
  SASL_AUTHENTICATION_FAILED with Kafka's message and closes; one log line
  names the listener, the peer and the mechanism.
- Success sets the principal `User:<name>` and the session lifetime: the
  OAUTHBEARER token's expiry and `connections.max.reauth.ms`, whichever is
  sooner (KIP-368). Past it the connection may only re-authenticate (a new
  SaslHandshake, at most once a second); anything else closes it.

On a PLAINTEXT or SSL listener both requests answer ILLEGAL_SASL_STATE and
the connection stays open, as Kafka's KafkaApis does.

GSSAPI (Kerberos) is not served: a SASL listener whose enabled mechanisms
include it (Kafka's default list is just GSSAPI) stops start-up with a line
saying so, rather than serving a listener no client can authenticate to.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from kafkapy.security.sasl_base import SaslFailure, client_message
from kafkapy.server.handler import RequestContext
from kafkapy.server.network import CloseConnection, ConnectionContext
from kafkapy.server.sasl_setup import (
    SASL_PROTOCOLS,
    ListenerSasl,
    SaslSession,
    SaslSetup,
    session,
)

if TYPE_CHECKING:
    from kafkapy.server.services import BrokerServices

log = get_logger(__name__)

ALREADY_AUTHENTICATED = "SaslAuthenticate request received after successful authentication"


def setup_of(state: BrokerServices) -> SaslSetup:
    """The broker's SaslSetup (built by the dispatcher at start-up; built here for in-process use)."""
    found = state.sasl
    if found is None:
        found = state.sasl = SaslSetup.from_config(state.config, {})
    return found


def _where(conn: ConnectionContext, mechanism: str) -> dict[str, Any]:
    return {
        "listener": conn.listener_name,
        "peer": f"{conn.peer_host}:{conn.peer_port}",
        "connection_id": conn.connection_id,
        "mechanism": mechanism or None,
    }


async def fail_delay(setup: SaslSetup) -> None:
    if setup.failed_delay_ms > 0:
        await asyncio.sleep(setup.failed_delay_ms / 1000)


async def sasl_handshake(ctx: RequestContext, req: SaslHandshakeRequest) -> SaslHandshakeResponse:
    conn = ctx.conn
    if conn is None or conn.security_protocol not in SASL_PROTOCOLS:
        return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    setup = setup_of(ctx.state)
    listener = setup.listener(conn.listener_name)
    if listener is None:  # a SASL listener the setup does not know: not reachable from the broker
        raise CloseConnection()
    sess = session(conn)
    mechanism = req.mechanism
    if sess.authenticated and not sess.reauthenticating:
        # a handshake after authentication that does not start a re-authentication (the gate decides)
        return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=list(listener.mechanisms))
    if sess.server is not None and not sess.reauthenticating:
        log.warning("authentication failed: second SaslHandshake", **_where(conn, mechanism))
        raise CloseConnection()
    if mechanism not in listener.mechanisms:
        log.warning(
            "authentication failed: unsupported SASL mechanism",
            enabled=",".join(listener.mechanisms),
            **_where(conn, mechanism),
        )
        conn.close()
        await fail_delay(setup)
        return SaslHandshakeResponse(
            error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms=list(listener.mechanisms)
        )
    if sess.reauthenticating and mechanism != sess.mechanism:
        log.warning(
            "re-authentication failed: SASL mechanism change", previous=sess.mechanism, **_where(conn, mechanism)
        )
        conn.close()
        await fail_delay(setup)
        return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=list(listener.mechanisms))
    sess.mechanism = mechanism
    sess.server = setup.server(listener, mechanism)
    sess.raw_tokens = ctx.version == 0
    return SaslHandshakeResponse(error_code=ErrorCode.NONE, mechanisms=list(listener.mechanisms))


async def _evaluate(setup: SaslSetup, listener: ListenerSasl, sess: SaslSession, token: bytes) -> bytes:
    assert sess.server is not None
    if listener.jwks is not None and listener.jwks.stale():
        try:
            await asyncio.to_thread(listener.jwks.load)
        except Exception as exc:
            log.warning("JWKS refresh failed; keeping the keys read before", url=listener.jwks.url, error=str(exc))
    return sess.server.evaluate(token)


def _finish(setup: SaslSetup, conn: ConnectionContext, sess: SaslSession) -> int:
    """Authentication complete: the principal and the session lifetime (ms, 0 = none)."""
    assert sess.server is not None
    principal = f"User:{sess.server.authorization_id}"
    if sess.reauthenticating and principal != conn.principal:
        raise SaslFailure(
            f"Cannot change principals during re-authentication from {conn.principal}: {principal}", reveal=True
        )
    expiry_ms = sess.server.credential_expiry_ms
    lifetime_ms: int | None = None
    now_ms = time.time() * 1000
    if expiry_ms is not None:
        lifetime_ms = max(0, int(expiry_ms - now_ms))
    if setup.max_reauth_ms > 0:
        lifetime_ms = setup.max_reauth_ms if lifetime_ms is None else min(lifetime_ms, setup.max_reauth_ms)
    conn.principal = principal
    reauthentication = sess.reauthenticating
    sess.authenticated = True
    conn.frame_limit = 0  # frames are bounded by socket.request.max.bytes only from now on
    sess.reauthenticating = False
    sess.raw_tokens = False
    sess.expires_at = None if lifetime_ms is None else time.monotonic() + lifetime_ms / 1000
    log.info(
        "authenticated",
        principal=principal,
        session_lifetime_ms=lifetime_ms or 0,
        reauthentication=reauthentication,
        **_where(conn, sess.mechanism),
    )
    return lifetime_ms or 0


async def sasl_authenticate(ctx: RequestContext, req: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    conn = ctx.conn
    if conn is None or conn.security_protocol not in SASL_PROTOCOLS:
        return SaslAuthenticateResponse(
            error_code=ErrorCode.ILLEGAL_SASL_STATE,
            error_message=ALREADY_AUTHENTICATED,
            auth_bytes=b"",
            session_lifetime_ms=0,
        )
    setup = setup_of(ctx.state)
    listener = setup.listener(conn.listener_name)
    sess = session(conn)
    if sess.authenticated and not sess.reauthenticating:
        return SaslAuthenticateResponse(
            error_code=ErrorCode.ILLEGAL_SASL_STATE,
            error_message=ALREADY_AUTHENTICATED,
            auth_bytes=b"",
            session_lifetime_ms=0,
        )
    if listener is None or sess.server is None or sess.raw_tokens:
        log.warning(
            "authentication failed: Unexpected Kafka request of type SASL_AUTHENTICATE during SASL handshake.",
            **_where(conn, sess.mechanism),
        )
        await fail_delay(setup)
        raise CloseConnection()
    sess.authenticate_version = ctx.version
    try:
        challenge = await _evaluate(setup, listener, sess, bytes(req.auth_bytes))
        lifetime = _finish(setup, conn, sess) if sess.server.complete else 0
    except SaslFailure as exc:
        message = client_message(exc, sess.mechanism, sess.reauthenticating)
        log.warning(
            "re-authentication failed" if sess.reauthenticating else "authentication failed",
            error=exc.message,
            **_where(conn, sess.mechanism),
        )
        conn.close()
        await fail_delay(setup)
        code = ErrorCode.ILLEGAL_SASL_STATE if exc.illegal_state else ErrorCode.SASL_AUTHENTICATION_FAILED
        return SaslAuthenticateResponse(error_code=code, error_message=message, auth_bytes=b"", session_lifetime_ms=0)
    detail = getattr(sess.server, "last_detail", "")
    if detail and not sess.server.complete:
        log.info("OAUTHBEARER token rejected", error=detail, **_where(conn, sess.mechanism))
    # Kafka leaves the (nullable) message at its default, the empty string
    return SaslAuthenticateResponse(
        error_code=ErrorCode.NONE, error_message="", auth_bytes=challenge, session_lifetime_ms=lifetime
    )


async def raw_token(state: BrokerServices, conn: ConnectionContext, token: bytes) -> list[Any]:
    """A bare SASL token after a v0 SaslHandshake: the challenge as a bare frame. A failure closes the
    connection after the delay (no error can be sent in this framing)."""
    setup = setup_of(state)
    sess = session(conn)
    listener = setup.listener(conn.listener_name)
    assert listener is not None and sess.server is not None
    try:
        challenge = await _evaluate(setup, listener, sess, token)
        if sess.server.complete:
            _finish(setup, conn, sess)
    except SaslFailure as exc:
        log.warning("authentication failed", error=exc.message, framing="v0", **_where(conn, sess.mechanism))
        await fail_delay(setup)
        raise CloseConnection() from None
    return [challenge]
