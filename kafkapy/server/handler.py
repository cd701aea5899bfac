"""What a request handler is: a decoded request plus context in, a response out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import import_module
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from kafkapy.protocol.messages.request_header import RequestHeader
from kafkapy.protocol.primitives import Message

T = TypeVar("T")

if TYPE_CHECKING:
    from kafkapy.server.network import ConnectionContext
    from kafkapy.server.services import BrokerServices
    from kafkapy.server.stats import RequestTimer


@dataclass(slots=True)
class RequestContext:
    """Everything a handler may look at besides the request body."""

    header: RequestHeader
    version: int
    state: BrokerServices
    conn: ConnectionContext | None  # peer, principal, ... (None: a request made in-process, in tests)
    # the request's times, with the metrics endpoint on: a handler adds its purgatory waits to `remote`
    timer: RequestTimer | None = None

    @property
    def client_id(self) -> str:
        return self.header.client_id or ""


async def in_purgatory(ctx: RequestContext, waiting: Awaitable[T]) -> T:
    """Await `waiting` (a request parked until something happens elsewhere: followers, other members),
    its time counted as the request's RemoteTimeMs when the metrics endpoint is on."""
    timer = ctx.timer
    if timer is None:
        return await waiting
    began = perf_counter()
    try:
        return await waiting
    finally:
        timer.remote += perf_counter() - began


HandlerFn = Callable[[RequestContext, Any], Awaitable[Message | None]]


@dataclass(frozen=True, slots=True)
class Handler:
    """One API as the broker really implements it: the versions it serves and its function.

    `target` returns the handler function, e.g. `lambda: produce.handle`: the
    table names real functions, while a module listed through `LazyModule`
    is imported only when its first request arrives.
    """

    api_key: int
    min_version: int
    max_version: int
    target: Callable[[], HandlerFn]

    def load(self) -> HandlerFn:
        return self.target()


class LazyModule:
    """Stands in for a module until an attribute is first read, which imports it.

    Importing the module also binds its name in the parent package, so
    later lookups find the real module, not this stand-in.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(import_module(self.name), attr)
