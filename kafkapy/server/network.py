"""The network layer: frames in, frames out. It never parses request bodies.

Each connection is an asyncio BufferedProtocol. A frame is a 4-byte big-endian
size and a body; each body goes to the broker's RequestHandler in its own task,
so requests on one connection run concurrently, while one writer task per
connection writes the responses strictly in request order.

Memory is bounded: reading a connection pauses while the requests queued on it
exceed `max_inflight_requests` or `max_inflight_bytes`, while its write buffer
is full, or (if it has work queued) while the whole server's queue exceeds
`max_queued_requests`. `max_queued_bytes` (queued.max.request.bytes) is Kafka's
memory pool: a frame's declared size is taken from it when its size prefix is
read and given back when its request is answered; while the pool is used up
(non-strict, as Kafka's: a frame is admitted while anything is left), a connection
that starts a new frame holds what it read and stops reading until memory frees.
Small frames are read into one scratch buffer shared by the server (protocol
callbacks run one at a time); a frame that does not fit gets its own buffer, read
into directly, grown as its bytes arrive (a client that declares a large frame and
sends it slowly holds only what it sent).

Connections are accepted by one accept loop per listening socket, which applies
Kafka's connection limits (kafkapy.server.connection_quotas): at max.connections it
stops accepting until one closes, max.connection.creation.rate delays accepts, a
connection over max.connections.per.ip is closed right after its accept.

Response parts may be `FileSliceLike` regions of a file; those go to the socket
with os.sendfile (zero copy) once the transport's own buffer is empty.

SSL and SASL_SSL listeners accept a TCP connection, run the TLS handshake
(loop.start_tls, bounded by kafkapy.ssl.handshake.timeout.ms) and only then
hand the TLS transport to the connection, with the principal of the client's
certificate. A failed or slow handshake is logged with the listener and peer
and dropped. File slices on TLS go by pread + write through the transport:
sendfile on the raw socket would bypass TLS (kernel TLS is not used); slices
small enough are read into the write of the parts around them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from kafkapy.config import BrokerConfig, Listener
from kafkapy.logging import get_logger
from kafkapy.security.principal import NoMatchingRule, PrincipalMapper
from kafkapy.security.tls import TlsSettings, server_context
from kafkapy.server.connection_quotas import ACCEPTED, THROTTLED, ConnectionLimits, ConnectionQuotas
from kafkapy.server.stats import BrokerStats, RequestTimer, bare_timer

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_TLS_HANDSHAKE_RECORD = 0x16  # the content type that starts every TLS ClientHello
# Apache Kafka's answer (JSSE) to bytes on a TLS port that are no TLS record: a fatal internal_error alert
_TLS_ALERT_INTERNAL_ERROR = bytes.fromhex("15030300020250")

_SCRATCH_BYTES = 256 * 1024  # shared read buffer; frames that fit are copied out
_BODY_MIN = 16 * 1024  # first allocation of a frame's own buffer, which doubles as its bytes arrive
_COALESCE_BYTES = 64 * 1024  # byte parts smaller than this are joined into one write
_WRITE_HIGH = 256 * 1024  # transport write buffer high-water mark
_WRITE_LOW = 64 * 1024
_SENDFILE_CHUNK = 1 << 30  # os.sendfile count per call (Linux caps at ~2 GiB)
_MAX_RESPONSE = 2**31 - 1  # the size prefix is a signed int32


@runtime_checkable
class HasFileno(Protocol):
    def fileno(self) -> int: ...


@runtime_checkable
class FileSliceLike(Protocol):
    """A region of a file sent with sendfile; storage's FileSlice fits this."""

    @property
    def file(self) -> HasFileno: ...

    @property
    def position(self) -> int: ...

    @property
    def size(self) -> int: ...


Part: TypeAlias = "bytes | bytearray | memoryview | FileSliceLike"
Outgoing: TypeAlias = "list[Part]"


class RequestHandler(Protocol):
    """What the broker supplies: one request frame in, response parts (or None) out.

    `frame` is the body without the size prefix. None means "send nothing"
    (acks=0 produce). `timer` is passed only when the server keeps stats (the
    metrics endpoint is on): the handler marks in it when it takes the request,
    waits and answers; the network layer adds the reading and writing. The
    broker's dispatcher answers a request whose handler
    failed itself, in that API's response (server/errors.py), so the
    connection stays open; an exception that still reaches this layer closes
    this connection only (after a log line). Raise CloseConnection to close
    it without an error log.
    """

    async def __call__(
        self, frame: bytes | bytearray | memoryview, conn: ConnectionContext, timer: RequestTimer | None = None
    ) -> Outgoing | None: ...


class CloseConnection(Exception):
    """Raised by a handler to close the connection after earlier responses are written."""


@dataclass(slots=True, eq=False)
class ConnectionContext:
    """Per-connection facts and state, shared by all requests on a connection."""

    connection_id: str
    listener_name: str
    peer_host: str
    peer_port: int
    local_host: str
    local_port: int
    security_protocol: str = "PLAINTEXT"  # of the listener: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    principal: str = "User:ANONYMOUS"
    # >0: a frame larger than this closes the connection (a SASL listener before authentication
    # and during a re-authentication)
    frame_limit: int = 0
    client_id: str | None = None
    client_software_name: str | None = None
    client_software_version: str | None = None
    # a client quota's throttle (ms) earned by a response: the writer mutes the connection for that long
    # once the response is written (KIP-219), then sets it back to 0
    mute_ms: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # e.g. SASL progress
    closed: bool = False
    _close_callback: Callable[[], None] | None = field(default=None, repr=False)
    _closed_waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Read no more requests; close once responses owed so far are written."""
        if self._close_callback is not None:
            self._close_callback()

    async def wait_closed(self) -> None:
        """Resolve when the peer hung up (EOF) or the connection closed, e.g. to end a long poll."""
        if self.closed:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._closed_waiters:
                self._closed_waiters.remove(waiter)

    def _mark_closed(self) -> None:
        self.closed = True
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(slots=True)
class NetworkSettings:
    """Limits of the network layer (built from BrokerConfig by `from_config`)."""

    max_request_bytes: int = 104857600
    max_inflight_requests: int = 100  # per connection
    max_inflight_bytes: int = 104857600  # per connection
    max_queued_requests: int = 500  # whole server; only connections with work queued pause
    max_queued_bytes: int = -1  # whole server; -1 unlimited
    idle_timeout_ms: int = 600000  # <0 disables
    zero_copy: bool = True
    max_pre_auth_bytes: int = 524288  # sasl.server.max.receive.size: frames on a SASL listener before authentication
    failed_auth_delay_ms: int = 100  # connection.failed.authentication.delay.ms
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # max.connections and the rest

    @classmethod
    def from_config(cls, config: BrokerConfig) -> NetworkSettings:
        return cls(
            limits=ConnectionLimits.from_config(config),
            max_request_bytes=config.socket_request_max_bytes,
            max_inflight_requests=config.connection_max_inflight_requests,
            max_inflight_bytes=config.connection_max_inflight_bytes,
            max_queued_requests=config.queued_max_requests,
            max_queued_bytes=config.queued_max_request_bytes,
            idle_timeout_ms=config.connections_max_idle_ms,
            max_pre_auth_bytes=config.sasl_server_max_receive_size,
            failed_auth_delay_ms=config.connection_failed_authentication_delay_ms,
        )


class _ConnectionGone(Exception):
    """The socket went away while we were writing to it."""


class _FileTruncated(Exception):
    """A FileSlice's file ended before the slice did."""


def _part_size(part: Part) -> int:
    if isinstance(part, (bytes, bytearray)):
        return len(part)
    if isinstance(part, memoryview):
        return part.nbytes
    return part.size


def _consume_result(task: asyncio.Task[Any]) -> None:
    """Retrieve a dropped task's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()


class _Connection(asyncio.BufferedProtocol):
    """One client connection: framing, dispatch, ordered responses, backpressure."""

    def __init__(
        self, server: Server, listener: Listener, tls: bool = False, principal: str = "User:ANONYMOUS"
    ) -> None:
        self._server = server
        self._listener = listener
        self._zero_copy = not tls and server.settings.zero_copy  # never on TLS: sendfile bypasses it
        self._tls = tls
        self._principal = principal
        self._early: bytearray | None = None  # TLS: bytes decrypted before start_tls returned
        self._log = server._log
        self._loop = server._loop
        self._transport: asyncio.Transport | None = None
        self.ctx: ConnectionContext | None = None
        # read state
        self._head = b""  # up to 3 bytes of a size prefix not yet complete
        self._body: bytearray | None = None  # frame being filled directly (grown as its bytes arrive)
        self._body_pos = 0
        self._body_size = 0  # the frame's size (its memory is reserved in the server's pool)
        self._held: bytearray | None = None  # bytes read while the memory pool was used up
        self._slot: _Slot | None = None  # its place in the connection counts
        self._reading_paused = False  # paused by us for backpressure
        self._muted = False  # throttled by a client quota (KIP-219): read nothing until it ends
        self._draining = False  # shutdown: read no more requests
        self._eof = False
        # write state
        # requests in order: their task, frame size and (with stats on) their timer
        self._pending: deque[tuple[asyncio.Task[Outgoing | None], int, RequestTimer | None]] = deque()
        self._inflight_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writable_waiter: asyncio.Future[None] | None = None
        self._closing = False
        self.last_active = self._loop.time()

    # -- asyncio callbacks --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        server = self._server
        server._next_id += 1
        protocol = server.security_protocols.get(self._listener.name, "PLAINTEXT")
        self.ctx = ConnectionContext(
            connection_id=f"{local[0]}:{local[1]}-{peer[0]}:{peer[1]}-{server._next_id}",
            listener_name=self._listener.name,
            peer_host=str(peer[0]),
            peer_port=int(peer[1]),
            local_host=str(local[0]),
            local_port=int(local[1]),
            security_protocol=protocol,
            principal=self._principal,
            frame_limit=server.settings.max_pre_auth_bytes if protocol.startswith("SASL_") else 0,
            _close_callback=self.begin_drain,
        )
        server._connections.add(self)
        if server.stats is not None:
            server.stats.connection_made(self._listener.name)
        if server._draining:
            self._draining = True
            transport.close()
            return
        if self._early is not None:
            early, self._early = self._early, None
            try:
                self._parse(memoryview(early))
                self._check_backpressure()
            except Exception:
                self._log.exception("network_read_failed", **self._where())
                self.abort()

    def get_buffer(self, sizehint: int) -> memoryview:
        body = self._body
        if body is not None:
            if self._body_pos == len(body):  # full but the frame is not: grow (no view of it is alive here)
                grow = min(self._body_size, max(2 * len(body), 4 * _BODY_MIN)) - len(body)
                body += bytes(grow)
            return memoryview(body)[self._body_pos :]
        server = self._server
        if 0 <= server.settings.max_queued_bytes <= server._queued_bytes:
            # the memory pool is used up: read no more than a size prefix, so a connection that has to
            # wait holds a few bytes, not a whole read (hundreds of waiting producers x 256 KiB)
            return server._scratch_view[:4]
        return server._scratch_view

    def buffer_updated(self, nbytes: int) -> None:
        if self.ctx is None:
            # start_tls resumes reading before its caller gets the transport: keep the bytes
            if self._early is None:
                self._early = bytearray()
            self._early += self._server._scratch_view[:nbytes]
            return
        try:
            self.last_active = self._loop.time()
            if self._body is not None:
                self._body_pos += nbytes
                if self._body_pos == self._body_size:
                    body, self._body = self._body, None
                    self._dispatch(memoryview(body), self._body_size)
                self._check_backpressure()
                return
            self._parse(self._server._scratch_view[:nbytes])
            self._check_backpressure()
        except Exception:
            self._log.exception("network_read_failed", **self._where())
            self.abort()

    def eof_received(self) -> bool:
        self._eof = True
        if self.ctx is not None:
            self.ctx._mark_closed()  # the peer sends no more: long polls may end now
        # keep the socket open for writing while responses are still owed (TCP only: a TLS
        # transport closes on EOF whatever this returns, and warns when it is True)
        return bool(self._pending) and not self._tls

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        server = self._server
        if self in server._connections:
            server._connections.discard(self)
            if server.stats is not None:
                server.stats.connection_lost(self._listener.name)
        if self.ctx is not None:
            self.ctx._mark_closed()
        for waiter in (self._drain_waiter, self._writable_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(_ConnectionGone())
                waiter.exception()  # retrieved here if nobody awaits it
        self._drain_waiter = None
        if self._writer is None:
            self._drop_pending()
        if self._body is not None:
            self._body = None
            server._pool_free(self._body_size)
        if self._held is not None:
            held, self._held = self._held, None
            server._held_bytes -= len(held)
        if self._slot is not None:
            self._slot.release()
        self._server._lost_one()

    # -- reading ------------------------------------------------------------

    def _parse(self, data: memoryview) -> None:
        """Split data into frames; keep a partial frame for the next read."""
        if self._head:
            need = 4 - len(self._head)
            if len(data) < need:
                self._head += bytes(data)
                return
            prefix = self._head + bytes(data[:need])
            data = data[need:]
            self._head = b""
            size = int.from_bytes(prefix, "big", signed=True)
            if self._must_wait(size):
                self._hold(prefix, data)
                return
            if not self._begin_frame(size, data[:size]):
                return
            data = data[size:]
        pos, end = 0, len(data)
        while end - pos >= 4:
            size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            if self._must_wait(size):
                self._hold(b"", data[pos:])
                return
            pos += 4
            if not self._begin_frame(size, data[pos : pos + size]):
                return
            pos += size
        if pos < end:
            self._head = bytes(data[pos:end])

    def _must_wait(self, size: int) -> bool:
        """Whether a valid frame of `size` must wait for memory (queued.max.request.bytes used up)."""
        server = self._server
        limit = server.settings.max_queued_bytes
        return (
            0 <= limit <= server._queued_bytes
            and 0 <= size <= server.settings.max_request_bytes
            and not (self.ctx is not None and self.ctx.frame_limit and size > self.ctx.frame_limit)
            and not (self._draining or self._closing)
        )

    def _hold(self, prefix: bytes, rest: memoryview) -> None:
        """Keep the bytes read and read no more until memory frees. They are not taken from the pool
        (that could leave it used up by waiters alone); at most one read's worth per connection."""
        held = bytearray(prefix)
        held += rest
        self._held = held
        server = self._server
        server._held_bytes += len(held)
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        server._pool_waiters.append(self)
        server._memory_waits += 1

    def _resume_held(self) -> None:
        """Memory freed: parse what was held, then read again (unless it has to wait once more)."""
        held, self._held = self._held, None
        if held is None or self._closing:
            return
        self._server._held_bytes -= len(held)
        try:
            self._parse(memoryview(held))
            self._check_backpressure()
        except Exception:
            self._log.exception("network_read_failed", **self._where())
            self.abort()

    def _begin_frame(self, size: int, available: memoryview) -> bool:
        """Start a frame of `size` with the bytes at hand; False closes the connection."""
        if self.ctx is not None and self.ctx.frame_limit and not 0 <= size <= self.ctx.frame_limit:
            self._refuse_before_authentication(size, self.ctx)
            return False
        limit = self._server.settings.max_request_bytes
        if size < 0 or size > limit:
            self._log.warning("request_size_invalid", size=size, limit=limit, **self._where())
            self.abort()
            return False
        if self._draining or self._closing:
            return False
        self._server._queued_bytes += size  # taken from the memory pool until the request is answered
        if len(available) == size:
            self._dispatch(bytearray(available), size)  # writable: produce rewrites offsets in place
            return True
        body = bytearray(min(size, max(2 * len(available), _BODY_MIN)))
        body[: len(available)] = available
        self._body, self._body_pos, self._body_size = body, len(available), size
        return True

    def _refuse_before_authentication(self, size: int, ctx: ConnectionContext) -> None:
        """A size prefix above sasl.server.max.receive.size before (re-)authentication: the body is never
        read; the connection closes after the failed-authentication delay, as Kafka's does."""
        sasl = ctx.state.get("sasl")
        self._log.warning(
            "authentication failed: invalid receive size",
            size=size,
            limit=ctx.frame_limit,
            listener=ctx.listener_name,
            mechanism=getattr(sasl, "mechanism", "") or None,
            reauthentication=bool(getattr(sasl, "reauthenticating", False)),
            **self._where(),
        )
        self._draining = True
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._loop.call_later(self._server.settings.failed_auth_delay_ms / 1000, self.abort)

    def _dispatch(self, frame: bytes | bytearray | memoryview, size: int) -> None:
        if self._closing or self._draining:
            self._server._pool_free(size)
            return
        assert self.ctx is not None
        timer: RequestTimer | None = None
        stats = self._server.stats
        if stats is not None:  # the metrics' one per-request cost in this layer: a countdown to a sample
            stats.skip -= 1
            if not stats.skip:
                timer = bare_timer(RequestTimer)
                timer.received = perf_counter()
                stats.sampled(timer)
        if timer is None:
            task: asyncio.Task[Outgoing | None] = self._loop.create_task(self._server.handler(frame, self.ctx))
        else:
            task = self._loop.create_task(self._server.handler(frame, self.ctx, timer))
        self._server._track(task)
        self._pending.append((task, size, timer))
        self._inflight_bytes += size
        self._server._queued_requests += 1
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_loop())
            self._server._track(self._writer)

    def _check_backpressure(self) -> None:
        if self._transport is None or self._closing:
            return
        server = self._server
        settings = server.settings
        pending = len(self._pending)
        over = (
            self._muted
            or self._held is not None  # waiting for memory (queued.max.request.bytes)
            or pending >= settings.max_inflight_requests
            or self._inflight_bytes >= settings.max_inflight_bytes
            or self._write_paused
            # an idle connection may always send one request: no deadlock
            or (pending > 0 and server._queued_requests >= settings.max_queued_requests)
        )
        if over and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        elif not over and self._reading_paused and not self._draining:
            self._reading_paused = False
            self._transport.resume_reading()

    # -- writing ------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Write responses in request order until nothing is pending."""
        try:
            while self._pending and not self._closing:
                task, size, timer = self._pending[0]
                if not task.done():
                    await asyncio.wait((task,))  # never cancels the handler
                self._pending.popleft()
                self._inflight_bytes -= size
                self._server._queued_requests -= 1
                self._server._pool_free(size)
                try:
                    response = task.result()
                except CloseConnection:
                    self._log.info("connection_closed_by_handler", **self._where())
                    self.close()
                    break
                except (Exception, asyncio.CancelledError):
                    self._log.exception("request_handler_failed", **self._where())
                    self.close()
                    break
                if timer is None:
                    if response is not None:
                        await self._send(response)
                    if self._write_paused:
                        await self._wait_drained()
                else:
                    timer.taken = perf_counter()
                    if response is not None:
                        await self._send(response)
                    if self._write_paused:
                        await self._wait_drained()
                    timer.sent = perf_counter()
                    stats = self._server.stats
                    if stats is not None:
                        stats.request_sent(timer)
                self.last_active = self._loop.time()
                if self.ctx is not None and self.ctx.mute_ms:
                    self._mute()
                self._check_backpressure()
        except _ConnectionGone:
            pass
        except _FileTruncated as exc:
            self._log.error("file_slice_truncated", detail=str(exc), **self._where())
            self.abort()
        except Exception:
            self._log.exception("network_write_failed", **self._where())
            self.abort()
        finally:
            self._writer = None
            if self._closing:
                self._drop_pending()
            elif self._eof and not self._pending and self._transport is not None:
                self._transport.close()

    def _mute(self) -> None:
        """Read no request for the throttle time a client quota gave the response just written."""
        assert self.ctx is not None
        delay, self.ctx.mute_ms = self.ctx.mute_ms / 1000, 0
        if self._muted:
            return  # a mute already running; Kafka's channel is throttled once at a time too
        self._muted = True
        self._loop.call_later(delay, self._unmute)

    def _unmute(self) -> None:
        self._muted = False
        self._check_backpressure()

    async def _send(self, parts: Outgoing) -> None:
        transport = self._transport
        assert transport is not None
        total = 0
        for part in parts:
            total += _part_size(part)
        if total > _MAX_RESPONSE:
            raise ValueError(f"response of {total} bytes does not fit a frame")
        chunk: list[bytes | bytearray | memoryview] = [total.to_bytes(4, "big")]
        chunk_size = 4
        for part in parts:
            if isinstance(part, (bytes, bytearray, memoryview)):
                size = _part_size(part)
                if size == 0:
                    continue
                if chunk_size + size <= _COALESCE_BYTES:
                    chunk.append(part)
                    chunk_size += size
                    continue
                self._write_chunk(chunk)
                chunk, chunk_size = [], 0
                transport.write(part)
            elif not self._zero_copy and chunk_size + part.size <= _COALESCE_BYTES:
                # no sendfile (TLS): a small slice joins this write, so a fetch of a few small batches
                # is one TLS record and one send instead of one per part
                data = os.pread(part.file.fileno(), part.size, part.position)
                chunk.append(data)
                chunk_size += len(data)
                if len(data) < part.size:  # what there is goes out first, as from _copy_file
                    self._write_chunk(chunk)
                    end = part.position + len(data)
                    raise _FileTruncated(f"file ended at {end}, {part.size - len(data)} bytes short of the slice")
            else:
                self._write_chunk(chunk)
                chunk, chunk_size = [], 0
                await self._send_file(part)
        self._write_chunk(chunk)

    def _write_chunk(self, chunk: list[bytes | bytearray | memoryview]) -> None:
        if self._closing or self._transport is None:
            raise _ConnectionGone()
        if len(chunk) == 1:
            self._transport.write(chunk[0])
        elif chunk:
            self._transport.write(b"".join(chunk))

    async def _send_file(self, part: FileSliceLike) -> None:
        remaining = part.size
        if remaining <= 0:
            return
        offset = part.position
        in_fd = part.file.fileno()
        if not self._zero_copy:
            await self._copy_file(in_fd, offset, remaining)
            return
        await self._wait_buffer_empty()
        while remaining > 0:
            out_fd = self._socket_fd()  # checked right before each call: fd may be gone
            try:
                sent = os.sendfile(out_fd, in_fd, offset, min(remaining, _SENDFILE_CHUNK))
            except (BlockingIOError, InterruptedError):
                await self._wait_writable(out_fd)
                continue
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                    raise _ConnectionGone() from None
                raise
            if sent == 0:
                raise _FileTruncated(f"file ended at {offset}, {remaining} bytes short of the slice")
            offset += sent
            remaining -= sent

    async def _copy_file(self, in_fd: int, offset: int, remaining: int) -> None:
        """Fallback without sendfile: read and write through the transport."""
        while remaining > 0:
            data = os.pread(in_fd, min(remaining, 1 << 20), offset)
            if not data:
                raise _FileTruncated(f"file ended at {offset}, {remaining} bytes short of the slice")
            self._write_chunk([data])
            offset += len(data)
            remaining -= len(data)
            if self._write_paused:
                await self._wait_drained()

    def _socket_fd(self) -> int:
        transport = self._transport
        if self._closing or transport is None or transport.is_closing():
            raise _ConnectionGone()
        sock = transport.get_extra_info("socket")
        if sock is None:
            raise _ConnectionGone()
        return int(sock.fileno())

    async def _wait_drained(self) -> None:
        while self._write_paused:
            if self._closing:
                raise _ConnectionGone()
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    async def _wait_buffer_empty(self) -> None:
        """Wait until the transport has handed all its buffered bytes to the kernel."""
        transport = self._transport
        assert transport is not None
        while transport.get_write_buffer_size() > 0:
            transport.set_write_buffer_limits(high=0, low=0)  # resume_writing fires when empty
            try:
                await self._wait_drained()
            finally:
                if not self._closing:
                    transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)

    async def _wait_writable(self, fd: int) -> None:
        # The transport owns fd's registration, so watch a duplicate of it.
        dup = os.dup(fd)
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._writable_waiter = waiter

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        self._loop.add_writer(dup, ready)
        try:
            await waiter
        finally:
            self._loop.remove_writer(dup)
            os.close(dup)
            self._writable_waiter = None

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Flush what is written, then close; queued requests get no response."""
        if self._closing:
            return
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def begin_drain(self) -> None:
        """Shutdown: read no more requests; close once owed responses are written."""
        self._draining = True
        if self._transport is not None and not self._closing:
            if not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()
            if not self._pending and self._writer is None:
                self.close()
            else:
                self._eof = True  # the writer closes when done

    def _drop_pending(self) -> None:
        while self._pending:
            task, size, _ = self._pending.popleft()
            self._server._queued_requests -= 1
            self._server._pool_free(size)
            task.add_done_callback(_consume_result)
        self._inflight_bytes = 0

    def _where(self) -> dict[str, Any]:
        ctx = self.ctx
        if ctx is None:
            return {}
        return {"connection_id": ctx.connection_id, "peer": f"{ctx.peer_host}:{ctx.peer_port}"}


@dataclass(slots=True)
class ListenerTls:
    """What a TLS listener needs: its server context and its certificate principal mapping."""

    context: ssl.SSLContext
    mapper: PrincipalMapper
    handshake_timeout_s: float = 10.0


def listener_tls(config: BrokerConfig) -> dict[str, ListenerTls]:
    """TLS of every SSL / SASL_SSL listener, from its ssl.* settings (listener.name.<l>.ssl.* first).

    Raises ValueError (TlsConfigError, MappingRuleError) naming the listener, for a start-up refusal.
    """
    result: dict[str, ListenerTls] = {}
    for listener in config.listener_list:
        protocol = config.listener_security_protocol(listener.name)
        if protocol not in TLS_PROTOCOLS:
            continue
        name = listener.name
        settings = TlsSettings.from_lookup(functools.partial(config.listener_setting, name))
        try:
            context = server_context(settings)
            mapper = PrincipalMapper.from_config(settings.principal_mapping_rules)
        except Exception as exc:
            raise ValueError(f"listener {name} ({protocol}): {exc}") from None
        result[name] = ListenerTls(context, mapper, config.ssl_handshake_timeout_ms / 1000)
    return result


class _TlsAcceptor(asyncio.Protocol):
    """A TCP connection on a TLS listener until its handshake is done; then a _Connection."""

    def __init__(self, server: Server, listener: Listener, tls: ListenerTls) -> None:
        self._server = server
        self._listener = listener
        self._tls = tls
        self._slot: _Slot | None = None  # set by the accept loop; handed to the _Connection
        self._peer = "?"
        self._tcp: asyncio.Transport | None = None
        self._early = bytearray()  # bytes read before start_tls took the transport over
        self._first: asyncio.Future[None] = server._loop.create_future()  # first bytes, EOF or loss

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)
        self._tcp = tcp  # reading until the first bytes show whether this is TLS at all
        peer = transport.get_extra_info("peername") or ("?", 0)
        self._peer = f"{peer[0]}:{peer[1]}"
        task = self._server._loop.create_task(self._handshake(tcp))
        self._server._track(task)

    def data_received(self, data: bytes) -> None:
        # keep the bytes (the ClientHello) and hand them to the TLS protocol once start_tls installed it
        self._early += data
        if self._tcp is not None:
            self._tcp.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._wake()  # before start_tls took over: the handshake task sees the failure
        if self._tcp is not None and self._tcp.get_protocol() is self and self._slot is not None:
            self._slot.release()

    def _wake(self) -> None:
        if not self._first.done():
            self._first.set_result(None)

    def _replay_early(self) -> None:
        """Feed the TLS protocol the bytes read before it was installed, before any later read."""
        tcp = self._tcp
        if tcp is None or not self._early:
            return
        protocol = tcp.get_protocol()
        if protocol is self or tcp.is_closing():
            return
        data, self._early = bytes(self._early), bytearray()
        if hasattr(protocol, "get_buffer"):  # both loops' TLS protocols (uvloop's is no subclass)
            buffered = cast(asyncio.BufferedProtocol, protocol)
            view = memoryview(data)
            while view:
                buffer = memoryview(buffered.get_buffer(len(view))).cast("B")
                n = min(len(buffer), len(view))
                buffer[:n] = view[:n]
                buffered.buffer_updated(n)
                view = view[n:]
        else:
            cast(asyncio.Protocol, protocol).data_received(data)

    async def _handshake(self, tcp: asyncio.Transport) -> None:
        handed_over = False
        try:
            handed_over = await self._handshake_steps(tcp)
        finally:
            if not handed_over and self._slot is not None:
                self._slot.release()  # idempotent: the connection is gone

    async def _handshake_steps(self, tcp: asyncio.Transport) -> bool:
        """The handshake; True once a _Connection owns the connection (and its slot)."""
        server, tls = self._server, self._tls
        log = server._log
        where = {"listener": self._listener.name, "peer": self._peer}
        started = server._loop.time()
        loop = server._loop
        try:
            await asyncio.wait_for(self._first, tls.handshake_timeout_s)
        except TimeoutError:
            log.warning("tls_handshake_timeout", timeout_s=tls.handshake_timeout_s, **where)
            tcp.abort()
            return False
        except asyncio.CancelledError:  # shutdown
            tcp.abort()
            raise
        if not self._early or (tcp.is_closing() and self._early[0] == _TLS_HANDSHAKE_RECORD):
            log.warning("tls_handshake_failed", error="connection closed before the TLS handshake", **where)
            tcp.abort()
            return False
        if self._early[0] != _TLS_HANDSHAKE_RECORD:
            log.warning("tls_handshake_failed", error="not a TLS record (plaintext on a TLS port?)", **where)
            tcp.write(_TLS_ALERT_INTERNAL_ERROR)  # then closed, as Kafka does
            tcp.close()
            return False
        conn = _Connection(server, self._listener, tls=True)
        tcp.pause_reading()  # later bytes wait for the TLS protocol
        remaining = max(0.05, tls.handshake_timeout_s - (loop.time() - started))
        try:
            # start_tls installs the TLS protocol in its first step and schedules that protocol's
            # connection_made and the resume of reading; two hops later (same batch as those,
            # before any read) the bytes read before it (the ClientHello) are replayed into it.
            handshake = asyncio.ensure_future(
                loop.start_tls(tcp, conn, tls.context, server_side=True, ssl_handshake_timeout=remaining)
            )
            loop.call_soon(loop.call_soon, self._replay_early)
            transport = await handshake
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            elapsed = server._loop.time() - started
            if elapsed >= tls.handshake_timeout_s * 0.95 and isinstance(exc, (ConnectionAbortedError, TimeoutError)):
                log.warning("tls_handshake_timeout", timeout_s=tls.handshake_timeout_s, **where)
            else:
                log.warning("tls_handshake_failed", error=str(exc) or type(exc).__name__, **where)
            tcp.abort()
            return False
        if transport is None:
            tcp.abort()
            return False
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            principal = tls.mapper.principal_of_certificate(der)
        except (NoMatchingRule, ValueError) as exc:
            log.warning("tls_principal_failed", error=str(exc), **where)
            transport.abort()
            return False
        if der:
            log.info("tls_client_authenticated", principal=principal, **where)
        conn._principal = principal
        conn._slot = self._slot
        conn.connection_made(transport)
        return True


@dataclass(slots=True, eq=False)
class _Slot:
    """One accepted connection's place in the connection counts, given back once when it closes."""

    server: Server
    listener: str
    ip: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.server._slot_released(self)


@dataclass(slots=True, frozen=True)
class BoundListener:
    """A listener and the address it actually bound (port 0 resolved)."""

    listener: Listener
    host: str
    port: int


class Server:
    """Accepts connections on the configured listeners and runs their protocol."""

    def __init__(
        self,
        handler: RequestHandler,
        listeners: Sequence[Listener],
        settings: NetworkSettings | None = None,
        security_protocols: dict[str, str] | None = None,
        tls: dict[str, ListenerTls] | None = None,
    ) -> None:
        self.handler = handler
        self._listeners = list(listeners)
        self.security_protocols = dict(security_protocols or {})  # listener name -> protocol
        self.settings = settings or NetworkSettings()
        self._log = get_logger("kafkapy.network")
        self._loop = asyncio.get_running_loop()
        self._scratch_view = memoryview(bytearray(_SCRATCH_BYTES))
        self._sockets: list[tuple[Listener, socket.socket, Callable[[], Any]]] = []  # listening
        self._acceptors: list[asyncio.Task[None]] = []
        self._slot_waiters: list[asyncio.Future[None]] = []  # accept loops waiting at max.connections
        self._throttled: set[socket.socket] = set()  # over an IP's connection rate: closed after a delay
        self.connection_quotas = ConnectionQuotas(self.settings.limits)
        self._pool_waiters: deque[_Connection] = deque()  # waiting for memory (queued.max.request.bytes)
        self._pool_wake_scheduled = False
        self._memory_waits = 0  # times a connection waited for memory
        self._held_bytes = 0  # bytes read by connections waiting for memory (outside the pool)
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_id = 0
        self._queued_requests = 0  # across all connections
        self._queued_bytes = 0  # the memory pool in use: frames being read and requests being processed
        self._draining = False
        self._all_lost: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.bound: list[BoundListener] = []
        self.tls: dict[str, ListenerTls] = dict(tls or {})  # listener name -> TLS (SSL, SASL_SSL)
        # request times and connection counts, kept when the metrics endpoint is on (set by the broker)
        self.stats: BrokerStats | None = None

    @classmethod
    def from_config(
        cls, config: BrokerConfig, handler: RequestHandler, tls: dict[str, ListenerTls] | None = None
    ) -> Server:
        """`tls`: listener_tls(config) built already (by the caller, to refuse start-up on errors)."""
        listeners = config.listener_list
        protocols = {listener.name: config.listener_security_protocol(listener.name) for listener in listeners}
        if tls is None:
            tls = listener_tls(config)
        return cls(handler, listeners, NetworkSettings.from_config(config), protocols, tls)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections_by_listener(self) -> dict[str, int]:
        """Open connections per listener name (every bound listener, 0 included)."""
        counts = {b.listener.name: 0 for b in self.bound}
        for conn in self._connections:
            name = conn._listener.name
            counts[name] = counts.get(name, 0) + 1
        return counts

    def acceptor_figures(self) -> list[tuple[str, float, float]]:
        """For the metrics, per bound listener: the seconds its acceptor has waited for a slot or for
        the creation rates (a wait going on included) and the average accept throttle (ms) they gave."""
        now, quotas = self._loop.time(), self.connection_quotas
        names = dict.fromkeys(b.listener.name for b in self.bound)
        return [(name, quotas.blocked_seconds(name, now), quotas.accept_throttle_ms(name, now)) for name in names]

    async def start(self, serve: bool = True) -> None:
        """Bind every listener (raises OSError if one cannot be bound); accept unless serve=False."""
        for listener in self._listeners:
            tls = self.tls.get(listener.name)
            if self.security_protocols.get(listener.name) in TLS_PROTOCOLS and tls is None:
                raise ValueError(f"listener {listener.name} needs TLS and has no TLS context")
            factory: Callable[[], Any]
            if tls is not None:
                factory = functools.partial(_TlsAcceptor, self, listener, tls)
            else:
                factory = functools.partial(_Connection, self, listener)
            for sock in self._bind(listener):
                self._sockets.append((listener, sock, factory))
                host, port = sock.getsockname()[:2]
                self.bound.append(BoundListener(listener, str(host), int(port)))
        if serve:
            await self.start_serving()

    def _bind(self, listener: Listener) -> list[socket.socket]:
        """Listening sockets for one listener (every address its host resolves to, as asyncio's create_server)."""
        infos = socket.getaddrinfo(
            listener.host or None, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        result: list[socket.socket] = []
        seen: set[Any] = set()
        try:
            for family, kind, proto, _, address in infos:
                if address in seen:
                    continue
                seen.add(address)
                sock = socket.socket(family, kind, proto)
                result.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise OSError(
                        exc.errno, f"error while attempting to bind on address {address!r}: {exc.strerror}"
                    ) from None
                sock.listen(1024)
                sock.setblocking(False)
        except BaseException:
            for sock in result:
                sock.close()
            raise
        return result

    async def start_serving(self) -> None:
        """Begin accepting connections on the bound listeners."""
        if not self._acceptors:
            for listener, sock, factory in self._sockets:
                task = self._loop.create_task(self._accept_loop(listener, sock, factory))
                self._acceptors.append(task)
        if self.settings.idle_timeout_ms >= 0 and self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep_idle())

    async def _accept_loop(self, listener: Listener, lsock: socket.socket, factory: Callable[[], Any]) -> None:
        """Accept connections one at a time, within the connection limits (Kafka's acceptor)."""
        loop, quotas, name = self._loop, self.connection_quotas, listener.name
        while not self._draining:
            await self._wait_for_slot(name, lsock)
            try:
                sock, address = await loop.sock_accept(lsock)
            except OSError as exc:
                if self._draining:
                    return
                # out of descriptors or buffers (asyncio's server waits too): try again shortly
                self._log.error("accept_failed", listener=name, error=str(exc), errno=exc.errno)
                await asyncio.sleep(0.1)
                continue
            ip = str(address[0]) if isinstance(address, tuple) else str(address)
            verdict, value = quotas.admit(name, ip, loop.time())
            if verdict != ACCEPTED:
                self._refuse(sock, name, ip, verdict, value)
                continue
            slot = _Slot(self, name, ip)
            protocol = factory()
            protocol._slot = slot
            try:
                sock.setblocking(False)
                await loop.connect_accepted_socket(lambda p=protocol: p, sock)  # type: ignore[misc]
            except Exception as exc:
                self._log.warning("accept_failed", listener=name, peer=ip, error=str(exc) or type(exc).__name__)
                sock.close()
                slot.release()
                continue
            if quotas.over_broker_limit():
                self._evict_one(name)

    def _refuse(self, sock: socket.socket, listener: str, ip: str, verdict: str, value: int) -> None:
        if verdict == THROTTLED:
            # KIP-612: over the IP's connection_creation_rate, the connection is held, unread, for the
            # throttle time and then closed
            self._log.info("connection_throttled", listener=listener, peer=ip, throttle_ms=value)
            self._throttled.add(sock)

            def close() -> None:
                self._throttled.discard(sock)
                sock.close()

            self._loop.call_later(value / 1000, close)
            return
        # Kafka: "Rejected connection from /ip, address already has the configured maximum of N connections."
        self._log.info("connection_rejected_max_per_ip", listener=listener, peer=ip, limit=value)
        sock.close()

    async def _wait_for_slot(self, listener: str, lsock: socket.socket) -> None:
        """Kafka's waitForConnectionSlot: block at max.connections, delay within the creation rates.
        Kafka's acceptor waits holding a connection it accepted, so its AcceptorBlockedPercent and
        throttle time count only waits a client is in: this one waits for a connection to be pending
        before it counts (or computes a creation-rate delay at all)."""
        quotas = self.connection_quotas
        blocked_logged = blocked = pending = False
        rated = quotas.rate_limited(listener)
        try:
            while True:
                if not pending and (rated or not quotas.slot_free(listener)):
                    await self._connection_pending(lsock)
                    pending = True
                    continue
                if not quotas.slot_free(listener):
                    if not blocked_logged:
                        blocked_logged = True
                        self._log.info("max_connections_reached", listener=listener, connections=quotas.total)
                    if not blocked:  # AcceptorBlockedPercent: the time until a slot frees
                        blocked = True
                        quotas.block_started(listener, self._loop.time())
                    waiter: asyncio.Future[None] = self._loop.create_future()
                    self._slot_waiters.append(waiter)
                    await waiter
                    continue
                delay = quotas.accept_delay_ms(listener, self._loop.time())
                if delay <= 0:
                    return
                if not blocked:  # Kafka's acceptor counts the creation rates' waits as blocked too
                    blocked = True
                    quotas.block_started(listener, self._loop.time())
                await asyncio.sleep(delay / 1000)
        finally:
            if blocked:
                quotas.block_ended(listener, self._loop.time())

    async def _connection_pending(self, lsock: socket.socket) -> None:
        """Until a connection waits on the listening socket to be accepted."""
        ready: asyncio.Future[None] = self._loop.create_future()
        fd = lsock.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    def _slot_released(self, slot: _Slot) -> None:
        self.connection_quotas.release(slot.listener, slot.ip)
        waiters, self._slot_waiters = self._slot_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _evict_one(self, protected: str) -> None:
        """KIP-402: the inter-broker listener took the broker over max.connections: close the least
        recently used connection of another listener."""
        candidates = [c for c in self._connections if c._listener.name != protected and not c._closing]
        if not candidates:
            return
        victim = min(candidates, key=lambda c: c.last_active)
        self._log.info("connection_evicted_max_connections", listener=victim._listener.name, **victim._where())
        victim.abort()

    # -- the memory pool (queued.max.request.bytes) ---------------------------

    def memory_pool(self) -> tuple[int, int]:
        """(available, used) bytes of the pool, as Kafka's MemoryPoolAvailable / MemoryPoolUsed gauges:
        available may go below 0 (a frame is admitted while anything is left); without a pool
        (queued.max.request.bytes=-1), Kafka's MemoryPool.NONE: Long.MAX_VALUE available, 0 used."""
        limit = self.settings.max_queued_bytes
        if limit < 0:
            return 2**63 - 1, 0
        return limit - self._queued_bytes, self._queued_bytes

    def _pool_free(self, size: int) -> None:
        self._queued_bytes -= size
        if self._pool_waiters and not self._pool_wake_scheduled:
            self._pool_wake_scheduled = True
            self._loop.call_soon(self._wake_pool_waiters)

    def _wake_pool_waiters(self) -> None:
        """Connections waiting for memory read again: first each one whose frame fits in the memory
        free (a small request does not wait behind hundreds of 1 MiB produces), then the others first
        come first served while any is free (non-strict, as Kafka's pool)."""
        self._pool_wake_scheduled = False
        limit = self.settings.max_queued_bytes
        if limit >= 0 and self._queued_bytes < limit:
            fitting = [
                conn
                for conn in self._pool_waiters
                if conn._held is not None and int.from_bytes(conn._held[:4], "big") <= limit - self._queued_bytes
            ]
            for conn in fitting:
                size = int.from_bytes(conn._held[:4], "big") if conn._held is not None else 0
                if conn._held is not None and size <= limit - self._queued_bytes:
                    self._pool_waiters.remove(conn)
                    conn._resume_held()
        while self._pool_waiters and (limit < 0 or self._queued_bytes < limit):
            conn = self._pool_waiters.popleft()
            if conn._held is not None:
                conn._resume_held()

    async def _sweep_idle(self) -> None:
        """One timer for all connections: close those idle past the limit."""
        limit = self.settings.idle_timeout_ms / 1000
        period = max(0.05, min(limit / 10, 10.0))
        while True:
            await asyncio.sleep(period)
            deadline = self._loop.time() - limit
            for conn in list(self._connections):
                if not conn._pending and conn.last_active < deadline:
                    self._log.info("connection_idle_closed", **conn._where())
                    conn.close()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lost_one(self) -> None:
        if self._all_lost is not None and not self._connections:
            self._all_lost.set()

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (up to `timeout`), close all."""
        self._draining = True
        for task in self._acceptors:
            task.cancel()
        if self._acceptors:
            await asyncio.wait(self._acceptors, timeout=1.0)
        for _, sock, _ in self._sockets:
            sock.close()
        for sock in list(self._throttled):
            sock.close()
        self._throttled.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._all_lost = asyncio.Event()
        for conn in list(self._connections):
            conn.begin_drain()
        if self._connections:
            try:
                await asyncio.wait_for(self._all_lost.wait(), timeout)
            except TimeoutError:
                self._log.warning("shutdown_timeout", connections=len(self._connections), timeout_s=timeout)
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
