"""Dispatch: frame in, response parts out, through the table of handlers.

The table is built once from `handlers.HANDLERS`, the same list that feeds
ApiVersions, so nothing else advertises versions. Requests the broker cannot
serve (unknown api keys, versions outside the served range, malformed bodies)
close the connection after a log line naming the API and version, as Kafka
does; ApiVersions is the exception and answers UNSUPPORTED_VERSION in v0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafkapy.logging import get_logger
from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.frames import decode_request_header, encode_response, peek_request_header
from kafkapy.server.handler import Handler, HandlerFn, RequestContext
from kafkapy.server.handlers import HANDLERS
from kafkapy.server.handlers.api_versions import unsupported_version_response
from kafkapy.server.network import CloseConnection, ConnectionContext
from kafkapy.server.state import BrokerState

if TYPE_CHECKING:
    from kafkapy.server.broker import Broker

log = get_logger(__name__)


def build_table(handlers: tuple[Handler, ...]) -> tuple[Handler | None, ...]:
    """Index handlers by api key; checked at start-up against the codec."""
    size = max(h.api_key for h in handlers) + 1
    table: list[Handler | None] = [None] * size
    for h in handlers:
        spec = api_spec(h.api_key)
        if table[h.api_key] is not None:
            raise RuntimeError(f"two handlers for {spec.name}")
        if not spec.min_version <= h.min_version <= h.max_version <= spec.max_version:
            raise RuntimeError(f"{spec.name} handler serves v{h.min_version}-{h.max_version}, codec knows "
                               f"v{spec.min_version}-{spec.max_version}")
        table[h.api_key] = h
    return tuple(table)


class Dispatcher:
    """The broker's RequestHandler for the network layer."""

    def __init__(self, state: BrokerState, handlers: tuple[Handler, ...] = HANDLERS) -> None:
        self.state = state
        self.handlers = handlers
        self.table = build_table(handlers)
        self.functions: list[HandlerFn | None] = [None] * len(self.table)  # loaded on first use

    async def __call__(self, frame: bytes | bytearray | memoryview, conn: ConnectionContext) -> list[Any] | None:
        view = frame if isinstance(frame, memoryview) else memoryview(frame)
        try:
            api_key, version, correlation_id = peek_request_header(view)
        except DecodeError as e:
            log.warning("closing connection: malformed request header", error=str(e), peer=conn.connection_id)
            raise CloseConnection() from None
        handler = self.table[api_key] if 0 <= api_key < len(self.table) else None
        if handler is None:
            log.warning("closing connection: unsupported api key", api_key=api_key, version=version, peer=conn.connection_id)
            raise CloseConnection()
        spec = api_spec(api_key)
        if not handler.min_version <= version <= handler.max_version:
            if api_key == ApiKey.API_VERSIONS:
                return encode_response(spec, 0, correlation_id, unsupported_version_response(self.handlers))
            log.warning(
                "closing connection: unsupported version",
                api=spec.name, version=version, served=f"{handler.min_version}-{handler.max_version}", peer=conn.connection_id,
            )
            raise CloseConnection()
        try:
            header, _, pos = decode_request_header(view)
            body, _ = spec.request_type().decode_from(view, pos, version)
        except DecodeError as e:
            if api_key == ApiKey.API_VERSIONS:
                # Kafka answers a malformed ApiVersions with INVALID_REQUEST in v0.
                resp = unsupported_version_response(self.handlers)
                resp.error_code = 42
                return encode_response(spec, 0, correlation_id, resp)
            log.warning("closing connection: malformed request", api=spec.name, version=version,
                        error=str(e), peer=conn.connection_id)
            raise CloseConnection() from None
        ctx = RequestContext(header=header, version=version, state=self.state, conn=conn)
        fn = self.functions[api_key]
        if fn is None:
            fn = self.functions[api_key] = handler.load()
        response = await fn(ctx, body)
        if response is None:
            return None
        return encode_response(spec, version, correlation_id, response)


def build_handler(broker: Broker) -> Dispatcher:
    """Open the broker's state (metadata, logs) and return its dispatcher."""
    state = BrokerState.open(broker)
    from kafkapy.coordinator.transactions import TransactionCoordinator

    TransactionCoordinator.start_if_present(state)  # finish transactions a crash left half-completed
    return Dispatcher(state)
