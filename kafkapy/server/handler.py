"""What a request handler is: a decoded request plus context in, a response out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from kafkapy.protocol.messages.request_header import RequestHeader
from kafkapy.protocol.primitives import Message

if TYPE_CHECKING:
    from kafkapy.server.state import BrokerState


@dataclass(slots=True)
class RequestContext:
    """Everything a handler may look at besides the request body."""

    header: RequestHeader
    version: int
    state: BrokerState
    conn: Any  # the network layer's ConnectionContext (peer, principal, ...)

    @property
    def client_id(self) -> str:
        return self.header.client_id or ""


HandlerFn = Callable[[RequestContext, Any], Awaitable[Message | None]]


@dataclass(frozen=True, slots=True)
class Handler:
    """One API as the broker really implements it: the versions it serves and its function.

    `target` is "module:function" inside kafkapy.server.handlers, imported on
    first use (or the function itself).
    """

    api_key: int
    min_version: int
    max_version: int
    target: str | HandlerFn

    def load(self) -> HandlerFn:
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        fn: HandlerFn = getattr(import_module(f"kafkapy.server.handlers.{module}"), name)
        return fn
