"""Dispatch: frame in, response parts out, through the table of handlers.

The table is built once from `handlers.HANDLERS`, the same list that feeds
ApiVersions, so nothing else advertises versions. Served requests take the
fast path: one table lookup, one range check, decode, call.

A handler that raises gets its request answered, as Kafka's KafkaApis
does: the exception's code (server/errors.py; UNKNOWN_SERVER_ERROR for an
unexpected one) in every error code of a response that mirrors the
request's topics, partitions or items, one log line with the API, version
and client id, and the connection stays open (an acks=0 produce, which
reads no response, is closed as in Kafka). Responses to older versions pass
through the version fallbacks (`errors.FALLBACKS`) before encoding.

Everything else is answered the way Apache Kafka answers it where kafkapy
can, always after a log line naming the API and version:

- ApiVersions in a version not served: UNSUPPORTED_VERSION in v0 (a
  malformed one: INVALID_REQUEST), as Kafka.
- An API the codec knows, exposed on a broker listener, that kafkapy does
  not serve (or a served API above its highest served version, up to the
  codec's): the API's own response with its top-level `error_code` set to
  UNSUPPORTED_VERSION (`error_response`). Kafka serves these; a client that
  sends them anyway gets the error Java clients turn into
  UnsupportedVersionException instead of a dropped connection.
- Closed, as Kafka closes it: unknown api keys, APIs not exposed on a broker
  listener (KRaft/ZooKeeper-internal ones), versions below the served range
  (Kafka 4 removed them, KIP-896) or beyond the codec's, unstable versions,
  responses without a top-level error code to carry the error, and
  malformed headers or bodies.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from kafkapy.logging import get_logger
from kafkapy.protocol.api import ApiKey, ApiSpec, api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError
from kafkapy.protocol.frames import (
    decode_request_header,
    encode_response,
    peek_request_header,
)
from kafkapy.protocol.messages.request_header import RequestHeader
from kafkapy.protocol.primitives import Message
from kafkapy.server import errors, sasl_setup
from kafkapy.server import quotas as quota
from kafkapy.server.handler import Handler, HandlerFn, RequestContext
from kafkapy.server.handlers import HANDLERS, sasl
from kafkapy.server.handlers.api_versions import unsupported_version_response
from kafkapy.server.network import CloseConnection, ConnectionContext
from kafkapy.server.services import BrokerServices, open_single
from kafkapy.server.stats import FETCH_FOLLOWER, ApiStats, RequestTimer

if TYPE_CHECKING:
    from kafkapy.server.broker import Broker

log = get_logger(__name__)

BROKER_LISTENER = "broker"
_QUOTA_GATE, _THROTTLED_UNTIL = "quota_gate", "quota_throttled_until"  # ConnectionContext.state keys
# not counted on request_percentage (authentication; replicas' requests skip quotas altogether)
_QUOTA_EXEMPT = frozenset((ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE))


def build_table(handlers: tuple[Handler, ...]) -> tuple[Handler | None, ...]:
    """Index handlers by api key; checked at start-up against the codec."""
    size = max(h.api_key for h in handlers) + 1
    table: list[Handler | None] = [None] * size
    for h in handlers:
        spec = api_spec(h.api_key)
        if table[h.api_key] is not None:
            raise RuntimeError(f"two handlers for {spec.name}")
        if not spec.min_version <= h.min_version <= h.max_version <= spec.max_version:
            raise RuntimeError(
                f"{spec.name} handler serves v{h.min_version}-{h.max_version}, codec knows "
                f"v{spec.min_version}-{spec.max_version}"
            )
        table[h.api_key] = h
    return tuple(table)


def error_response(spec: ApiSpec, version: int, error: ErrorCode, message: str) -> Message | None:
    """`spec`'s response at `version` with its top-level error code set to
    `error` (and its error message, where the version has one), or None when
    that version has no top-level error code or the codec cannot write it.

    Built from the generated codec for any API: the default response with
    the error fields set, checked by encoding and decoding it once (fields
    absent from a version are silently not written)."""
    if not spec.min_version <= version <= spec.max_version:
        return None
    response = spec.response_type()()
    if "error_code" not in type(response).__slots__:
        return None
    response.error_code = error  # type: ignore[attr-defined]  # checked in __slots__
    if "error_message" in type(response).__slots__:
        response.error_message = message  # type: ignore[attr-defined]
    try:
        back, _ = spec.response_type().decode_from(memoryview(response.encode(version)), 0, version)
    except (EncodeError, DecodeError):
        return None
    return response if getattr(back, "error_code", None) == error else None


def _part_bytes(part: Any) -> int:
    """A response part's size: bytes, or a file region's `size`."""
    return (
        len(part)
        if isinstance(part, (bytes, bytearray))
        else part.nbytes
        if isinstance(part, memoryview)
        else part.size
    )


def _from_replica(api_key: int, version: int, body: Any) -> bool:
    """A request a follower or a broker sends (a replica's Fetch, ListOffsets or OffsetForLeaderEpoch,
    WriteTxnMarkers): never throttled by client quotas, so replication cannot be muted."""
    if api_key == ApiKey.FETCH:
        return _stats_key(api_key, version, body) == FETCH_FOLLOWER
    if api_key in (ApiKey.LIST_OFFSETS, ApiKey.OFFSET_FOR_LEADER_EPOCH):
        return int(getattr(body, "replica_id", -1)) >= 0
    return api_key == ApiKey.WRITE_TXN_MARKERS


_FETCH = int(ApiKey.FETCH)


def _stats_key(api_key: int, version: int, body: Message) -> int:
    """The stats key of a request: its api key, but FETCH_FOLLOWER for a Fetch from a replica."""
    if api_key != ApiKey.FETCH:
        return api_key
    replica_id = body.replica_state.replica_id if version >= 15 else body.replica_id  # type: ignore[attr-defined]
    return FETCH_FOLLOWER if replica_id >= 0 else api_key


class Dispatcher:
    """The broker's RequestHandler for the network layer."""

    def __init__(self, state: BrokerServices, handlers: tuple[Handler, ...] = HANDLERS) -> None:
        self.state = state
        self.handlers = handlers
        self.table = build_table(handlers)
        self.functions: list[HandlerFn | None] = [None] * len(self.table)  # loaded on first use
        # per api key: responses to versions below this may carry codes those versions predate
        self.fallback_below = tuple(errors.fallback_below(key) for key in range(len(self.table)))
        self.downgrade = errors.Downgrader()
        if state.sasl is None:
            config = state.config
            protocols = {x.name: config.listener_security_protocol(x.name) for x in config.listener_list}
            try:
                state.sasl = sasl_setup.SaslSetup.from_config(config, protocols)
            except sasl_setup.SaslSetupError as exc:
                from kafkapy.server.broker import StartupError

                raise StartupError(f"{exc.key}: {exc.message}") from None
            if state.sasl.listeners:
                state.sasl.scram_lookup = state.scram_lookup
                state.sasl.token_lookup = state.token_lookup

    async def __call__(
        self, frame: bytes | bytearray | memoryview, conn: ConnectionContext, timer: RequestTimer | None = None
    ) -> list[Any] | None:
        """With the metrics on (`state.stats`), every request served is counted here. `timer` comes from
        the network layer for the requests whose time it splits (a sample, see `BrokerStats.sampled`):
        the dispatcher marks it and the network layer records it once the response is written."""
        view = frame if isinstance(frame, memoryview) else memoryview(frame)
        if timer is not None:
            timer.started = time.perf_counter()
        if conn.security_protocol in sasl_setup.SASL_PROTOCOLS:
            session = conn.state.get(sasl_setup.STATE_KEY)
            if session is None or not session.authenticated or session.expires_at is not None:
                raw = await self.before_authentication(view, conn)
                if raw is not None:
                    return raw
        try:
            api_key, version, correlation_id = peek_request_header(view)
        except DecodeError as e:
            log.warning("closing connection: malformed request header", error=str(e), peer=conn.connection_id)
            raise CloseConnection() from None
        handler = self.table[api_key] if 0 <= api_key < len(self.table) else None
        if handler is None or not handler.min_version <= version <= handler.max_version:
            return self.unserved(view, api_key, version, correlation_id, handler, conn)
        spec = api_spec(api_key)
        try:
            header, _, pos = decode_request_header(view)
            body, _ = spec.request_type().decode_from(view, pos, version)
        except DecodeError as e:
            if api_key == ApiKey.API_VERSIONS:
                # Kafka answers a malformed ApiVersions with INVALID_REQUEST in v0.
                resp = unsupported_version_response(self.handlers)
                resp.error_code = ErrorCode.INVALID_REQUEST
                return encode_response(spec, 0, correlation_id, resp)
            log.warning(
                "closing connection: malformed request",
                api=spec.name,
                version=version,
                error=str(e),
                peer=conn.connection_id,
            )
            raise CloseConnection() from None
        stats = self.state.stats
        api: ApiStats | None = None
        if stats is not None:  # RequestsPerSec by version: inline, a call would cost as much again
            key = api_key if api_key != _FETCH else _stats_key(api_key, version, body)
            api = stats.apis.get(key) or stats.api(key)
            api.versions[version] += 1
            if timer is not None:
                timer.key, timer.version = key, version
        # client quotas: nothing more to do while none is set, or none governs this user and client-id
        quotas_on = (
            self.state.quotas.active
            and self.state.quotas.governs(conn.principal, header.client_id or "")
            and not _from_replica(api_key, version, body)
        )
        ctx = RequestContext(header=header, version=version, state=self.state, conn=conn, timer=timer)
        if quotas_on and timer is None:
            # its `remote` keeps the purgatory waits out of the request's time
            ctx.timer = RequestTimer(time.perf_counter())
        began = remote = 0.0
        try:
            fn = self.functions[api_key]
            if fn is None:
                fn = self.functions[api_key] = handler.load()
            gate: asyncio.Lock | None = None
            if quotas_on:
                gate = await self.quota_gate(ctx)
                began, remote = time.perf_counter(), ctx.timer.remote if ctx.timer is not None else 0.0
                if api_key == ApiKey.FETCH and version >= 3:
                    self.bound_fetch(ctx, body)
            try:
                response = await fn(ctx, body)
            finally:
                if gate is not None:
                    gate.release()
            if quotas_on:
                local = time.perf_counter() - began - ((ctx.timer.remote if ctx.timer is not None else 0.0) - remote)
                out = self.throttled(ctx, spec, body, view.nbytes, response, local)
            elif response is None:
                out = None
            else:
                if version < self.fallback_below[api_key]:
                    self.downgrade(response, api_key, version)
                out = encode_response(spec, version, correlation_id, response)
            if timer is not None:
                timer.done = time.perf_counter()
            return out
        except CloseConnection:
            raise
        except Exception as exc:
            if stats is not None and api is not None:
                api.failed += 1
                stats.error(key, errors.error_code(exc))  # key: set with api
            if timer is not None:
                try:
                    answer = self.failed(spec, version, header, body, exc, conn)
                except CloseConnection:
                    # no answer (an acks=0 produce): recorded here, the network layer writes nothing
                    timer.done = timer.taken = timer.sent = time.perf_counter()
                    if stats is not None:
                        stats.request_sent(timer)
                    raise
                timer.done = time.perf_counter()
                return answer
            return self.failed(spec, version, header, body, exc, conn)

    def bound_fetch(self, ctx: RequestContext, body: Any) -> None:
        """A consumer's fetch asks for no more than its consumer_byte_rate allows in a quota window, as
        Kafka bounds it."""
        principal = ctx.conn.principal if ctx.conn is not None else "User:ANONYMOUS"
        cap = self.state.quotas.max_bytes_in_window(principal, ctx.client_id, quota.CONSUMER_BYTE_RATE)
        if cap is not None and cap < body.max_bytes:
            body.max_bytes = cap

    async def quota_gate(self, ctx: RequestContext) -> asyncio.Lock | None:
        """For a connection a client quota governs: take its turn (requests one at a time, as Kafka's
        channel serves them) once the throttle time of its last response is over, so a client that
        pipelines requests is held to the rate too. The lock is the caller's to release."""
        conn = ctx.conn
        if conn is None:
            return None
        gate = conn.state.get(_QUOTA_GATE)
        if gate is None:
            gate = conn.state[_QUOTA_GATE] = asyncio.Lock()
        await gate.acquire()
        wait = conn.state.get(_THROTTLED_UNTIL, 0.0) - time.monotonic()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except BaseException:
                gate.release()
                raise
        return gate

    def throttled(
        self, ctx: RequestContext, spec: ApiSpec, body: Message, size: int, response: Message | None, local: float
    ) -> list[Any] | None:
        """The response's parts with client quotas applied (kafkapy.server.quotas, docs/quotas.md): the
        request's time (request_percentage), a produce's request bytes and a fetch's response bytes
        recorded on the sensors governing the connection's user and client-id; the largest throttle time
        earned (or a controller mutation throttle the handler set) goes into throttle_time_ms and mutes
        the connection for that long once the response is written (KIP-219). A fetch throttled answers
        empty, its bytes not counted, as Kafka's."""
        quotas = self.state.quotas
        conn = ctx.conn
        principal = conn.principal if conn is not None else "User:ANONYMOUS"
        client_id = ctx.client_id
        api_key, version = spec.api_key, ctx.version
        now = time.monotonic()
        exempt = api_key in _QUOTA_EXEMPT
        acks0 = api_key == ApiKey.PRODUCE and getattr(body, "acks", 1) == 0
        throttle = 0
        if not exempt and not acks0:
            throttle = quotas.record(principal, client_id, quota.REQUEST_PERCENTAGE, local * 100, now)
        if api_key == ApiKey.PRODUCE:
            throttle = max(throttle, quotas.record(principal, client_id, quota.PRODUCER_BYTE_RATE, size, now))
        if response is not None:
            throttle = max(throttle, getattr(response, "throttle_time_ms", 0))
            if version < self.fallback_below[api_key]:
                self.downgrade(response, api_key, version)
            if hasattr(response, "throttle_time_ms"):
                response.throttle_time_ms = throttle
        out = None if response is None else encode_response(spec, version, ctx.header.correlation_id, response)
        if api_key == ApiKey.FETCH and out is not None:
            sent = sum(_part_bytes(part) for part in out)
            fetch_throttle = quotas.record(principal, client_id, quota.CONSUMER_BYTE_RATE, sent, now)
            if max(throttle, fetch_throttle) > 0:
                from kafkapy.protocol.messages.fetch_response import FetchResponse

                quotas.unrecord(principal, client_id, quota.CONSUMER_BYTE_RATE, sent, now)
                throttle = max(throttle, fetch_throttle)
                empty = FetchResponse(
                    throttle_time_ms=throttle, error_code=0, session_id=getattr(response, "session_id", 0)
                )
                out = encode_response(spec, version, ctx.header.correlation_id, empty)
        if throttle > 0 and self.state.stats is not None:
            self.state.stats.throttled(_stats_key(api_key, version, body), throttle)
        if throttle > 0 and conn is not None:
            conn.mute_ms = max(conn.mute_ms, throttle)
            conn.state[_THROTTLED_UNTIL] = now + throttle / 1000
        return out

    async def before_authentication(self, view: memoryview, conn: ConnectionContext) -> list[Any] | None:
        """The SASL gate, for connections on a SASL listener that are not (or no longer) authenticated:
        a bare token after a v0 handshake is answered here; ApiVersions, SaslHandshake and
        SaslAuthenticate go on to their handlers (None); anything else closes the connection after
        `connection.failed.authentication.delay.ms`, with a log line, as Kafka does. Past its session
        expiry (KIP-368) an authenticated connection may only begin a re-authentication."""
        session = sasl_setup.session(conn)
        setup = sasl.setup_of(self.state)
        where = {"listener": conn.listener_name, "peer": f"{conn.peer_host}:{conn.peer_port}"}
        if session.authenticated:
            assert session.expires_at is not None
            if session.reauthenticating:
                return None
            now = time.monotonic()
            try:
                api_key = peek_request_header(view)[0]
            except DecodeError:
                api_key = -1
            reauth_allowed = session.authenticate_version >= 1 and (
                now - session.reauth_started >= sasl_setup.MIN_REAUTH_INTERVAL_S
            )
            if api_key == ApiKey.SASL_HANDSHAKE and reauth_allowed:
                session.reauthenticating = True
                session.reauth_started = now
                # the frames of the re-authentication after this handshake are bounded as before the
                # first authentication (Kafka 4.3.1 too); _finish lifts the bound again
                conn.frame_limit = setup.max_receive_size
                return None
            if now < session.expires_at:
                return None
            log.info("closing connection: authentication session expired", api_key=api_key, **where)
            raise CloseConnection()
        if session.raw_tokens:
            return await sasl.raw_token(self.state, conn, bytes(view))
        if view.nbytes > setup.max_receive_size:
            log.warning(
                "closing connection: frame before authentication larger than sasl.server.max.receive.size",
                size=view.nbytes,
                limit=setup.max_receive_size,
                **where,
            )
            raise CloseConnection()
        try:
            api_key = peek_request_header(view)[0]
        except DecodeError as e:
            log.warning("authentication failed: malformed request before authentication", error=str(e), **where)
            await sasl.fail_delay(setup)
            raise CloseConnection() from None
        if api_key in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE):
            return None
        try:
            name = ApiKey(api_key).name
        except ValueError:
            name = str(api_key)
        during = "SASL authentication" if session.server is not None else "SASL handshake"
        message = f"Unexpected Kafka request of type {name} during {during}."
        log.warning(f"authentication failed: {message}", mechanism=session.mechanism or None, **where)
        if session.server is None:
            raise CloseConnection()  # before a handshake Kafka closes at once, without an answer
        # after the handshake Kafka answers the request with ILLEGAL_SASL_STATE, then closes
        conn.close()
        try:
            spec = api_spec(api_key)
            header, _, pos = decode_request_header(view)
            body, _ = spec.request_type().decode_from(view, pos, header.request_api_version)
            response = errors.failed_response(
                api_key, body, spec.response_type(), ErrorCode.ILLEGAL_SASL_STATE, message
            )
            return encode_response(spec, header.request_api_version, header.correlation_id, response)
        except Exception:  # a request the codec cannot read or answer: just close
            raise CloseConnection() from None

    def failed(
        self, spec: ApiSpec, version: int, header: RequestHeader, body: Message, exc: Exception, conn: ConnectionContext
    ) -> list[Any]:
        """A handler raised: answer the request with the exception's error code (UNKNOWN_SERVER_ERROR for
        anything unexpected) in every error code of a response mirroring the request, as Kafka's
        getErrorResponse; one log line. Only an acks=0 produce closes the connection, as in Kafka:
        that producer reads no response."""
        code = errors.error_code(exc)
        expected = code != ErrorCode.UNKNOWN_SERVER_ERROR
        message = str(exc) if expected else errors.UNKNOWN_SERVER_ERROR_MESSAGE
        code = ErrorCode(errors.for_version(spec.api_key, version, code))
        where = {
            "api": spec.name,
            "version": version,
            "client_id": header.client_id,
            "correlation_id": header.correlation_id,
            "peer": conn.connection_id,
        }
        answer: list[Any] | None = None
        if not (spec.api_key == ApiKey.PRODUCE and getattr(body, "acks", 1) == 0):
            try:
                response = errors.failed_response(spec.api_key, body, spec.response_type(), code, message)
                answer = encode_response(spec, version, header.correlation_id, response)
            except Exception:  # the mirror failed: the top-level error code alone, where the response has one
                fallback = error_response(spec, version, code, message)
                if fallback is not None:
                    answer = encode_response(spec, version, header.correlation_id, fallback)
        outcome = code.name if answer is not None else "connection closed"
        if expected:
            log.warning("request failed", answered=outcome, error=str(exc), **where)
        else:
            log.error("request failed", answered=outcome, exc_info=exc, **where)
        if answer is None:
            raise CloseConnection() from None
        return answer

    def unserved(
        self,
        view: memoryview,
        api_key: int,
        version: int,
        correlation_id: int,
        handler: Handler | None,
        conn: ConnectionContext,
    ) -> list[Any]:
        """A request outside the table: an error answer or CloseConnection, and a log line either way."""
        peer = conn.connection_id
        try:
            spec = api_spec(api_key)
        except UnsupportedVersionError:
            log.warning("closing connection: unknown api key", api_key=api_key, version=version, peer=peer)
            raise CloseConnection() from None
        if api_key == ApiKey.API_VERSIONS:
            log.info("ApiVersions version not served: answered in v0", api=spec.name, version=version, peer=peer)
            return encode_response(spec, 0, correlation_id, unsupported_version_response(self.handlers))
        served = "none" if handler is None else f"{handler.min_version}-{handler.max_version}"
        if BROKER_LISTENER not in spec.listeners:
            log.warning(
                "closing connection: api not exposed on a broker listener", api=spec.name, version=version, peer=peer
            )
            raise CloseConnection()
        unstable = spec.latest_unstable and version == spec.max_version
        below = handler is not None and version < handler.min_version
        if below or unstable or not spec.min_version <= version <= spec.max_version:
            log.warning(
                "closing connection: unsupported version", api=spec.name, version=version, served=served, peer=peer
            )
            raise CloseConnection()
        try:
            _, _, pos = decode_request_header(view)
            spec.request_type().decode_from(view, pos, version)
        except DecodeError as e:
            log.warning(
                "closing connection: malformed request", api=spec.name, version=version, error=str(e), peer=peer
            )
            raise CloseConnection() from None
        message = f"{spec.name} v{version} is not served by kafkapy"
        response = error_response(spec, version, ErrorCode.UNSUPPORTED_VERSION, message)
        if response is None:
            log.warning(
                "closing connection: unsupported api without a top-level error code",
                api=spec.name,
                version=version,
                served=served,
                peer=peer,
            )
            raise CloseConnection()
        log.warning(
            "unsupported api: answered UNSUPPORTED_VERSION", api=spec.name, version=version, served=served, peer=peer
        )
        return encode_response(spec, version, correlation_id, response)


async def build_handler(broker: Broker) -> Dispatcher:
    """Build the broker's services (embedded metadata, or etcd with --metadata) and its dispatcher."""
    if broker.config.metadata_connect:
        from kafkapy.server.cluster_node import open_cluster_services

        services = await open_cluster_services(broker)
        services.stats = broker.stats
        broker.services = services
        return Dispatcher(services)
    from kafkapy.server.listeners import advertised_broker

    me = advertised_broker(broker)
    services = await open_single(broker.config, me, broker.cluster_id)
    services.stats = broker.stats
    broker.services = services
    broker.cluster_id = services.metadata.cluster_id
    broker.add_shutdown_hook(services.close)
    return Dispatcher(services)
