"""The network layer: frames in, frames out. It never parses request bodies.

Each connection is an asyncio BufferedProtocol. A frame is a 4-byte big-endian
size and a body; each body goes to the broker's RequestHandler in its own task,
so requests on one connection run concurrently, while one writer task per
connection writes the responses strictly in request order.

Memory is bounded: reading a connection pauses while the requests queued on it
exceed `max_inflight_requests` or `max_inflight_bytes`, while its write buffer
is full, or (if it has work queued) while the whole server's queue exceeds
`max_queued_requests` / `max_queued_bytes`. Small frames are read into one scratch buffer
shared by the server (protocol callbacks run one at a time); a frame that does
not fit gets its own exact-size buffer, read into directly.

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
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from kafkapy.config import BrokerConfig, Listener
from kafkapy.logging import get_logger
from kafkapy.security.principal import NoMatchingRule, PrincipalMapper
from kafkapy.security.tls import TlsSettings, server_context

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_TLS_HANDSHAKE_RECORD = 0x16  # the content type that starts every TLS ClientHello
# Apache Kafka's answer (JSSE) to bytes on a TLS port that are no TLS record: a fatal internal_error alert
_TLS_ALERT_INTERNAL_ERROR = bytes.fromhex("15030300020250")

_SCRATCH_BYTES = 256 * 1024  # shared read buffer; frames that fit are copied out
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
    (acks=0 produce). The broker's dispatcher answers a request whose handler
    failed itself, in that API's response (server/errors.py), so the
    connection stays open; an exception that still reaches this layer closes
    this connection only (after a log line). Raise CloseConnection to close
    it without an error log.
    """

    async def __call__(self, frame: bytes | bytearray | memoryview, conn: ConnectionContext) -> Outgoing | None: ...


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

    @classmethod
    def from_config(cls, config: BrokerConfig) -> NetworkSettings:
        return cls(
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
        self._body: bytearray | None = None  # frame being filled directly
        self._body_pos = 0
        self._reading_paused = False  # paused by us for backpressure
        self._draining = False  # shutdown: read no more requests
        self._eof = False
        # write state
        self._pending: deque[tuple[asyncio.Task[Outgoing | None], int]] = deque()
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
        if self._body is not None:
            return memoryview(self._body)[self._body_pos :]
        return self._server._scratch_view

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
                if self._body_pos == len(self._body):
                    body, self._body = self._body, None
                    self._dispatch(memoryview(body), len(body))
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
        self._server._connections.discard(self)
        if self.ctx is not None:
            self.ctx._mark_closed()
        for waiter in (self._drain_waiter, self._writable_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(_ConnectionGone())
                waiter.exception()  # retrieved here if nobody awaits it
        self._drain_waiter = None
        if self._writer is None:
            self._drop_pending()
        self._server._lost_one()

    # -- reading ------------------------------------------------------------

    def _parse(self, data: memoryview) -> None:
        """Split data into frames; keep a partial frame for the next read."""
        if self._head:
            need = 4 - len(self._head)
            self._head += bytes(data[:need])
            data = data[need:]
            if len(self._head) < 4:
                return
            size = int.from_bytes(self._head, "big", signed=True)
            self._head = b""
            if not self._begin_frame(size, data[:size]):
                return
            data = data[size:]
        pos, end = 0, len(data)
        while end - pos >= 4:
            size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            pos += 4
            if not self._begin_frame(size, data[pos : pos + size]):
                return
            pos += size
        if pos < end:
            self._head = bytes(data[pos:end])

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
        if len(available) == size:
            self._dispatch(bytearray(available), size)  # writable: produce rewrites offsets in place
            return True
        body = bytearray(size)
        body[: len(available)] = available
        self._body, self._body_pos = body, len(available)
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
            return
        assert self.ctx is not None
        task: asyncio.Task[Outgoing | None] = self._loop.create_task(self._server.handler(frame, self.ctx))
        self._server._track(task)
        self._pending.append((task, size))
        self._inflight_bytes += size
        self._server._queued_requests += 1
        self._server._queued_bytes += size
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
            pending >= settings.max_inflight_requests
            or self._inflight_bytes >= settings.max_inflight_bytes
            or self._write_paused
            or (
                pending > 0  # an idle connection may always send one request: no deadlock
                and (
                    server._queued_requests >= settings.max_queued_requests
                    or 0 <= settings.max_queued_bytes <= server._queued_bytes
                )
            )
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
                task, size = self._pending[0]
                if not task.done():
                    await asyncio.wait((task,))  # never cancels the handler
                self._pending.popleft()
                self._inflight_bytes -= size
                self._server._queued_requests -= 1
                self._server._queued_bytes -= size
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
                if response is not None:
                    await self._send(response)
                if self._write_paused:
                    await self._wait_drained()
                self.last_active = self._loop.time()
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
            task, size = self._pending.popleft()
            self._server._queued_requests -= 1
            self._server._queued_bytes -= size
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
            return
        except asyncio.CancelledError:  # shutdown
            tcp.abort()
            raise
        if not self._early or (tcp.is_closing() and self._early[0] == _TLS_HANDSHAKE_RECORD):
            log.warning("tls_handshake_failed", error="connection closed before the TLS handshake", **where)
            tcp.abort()
            return
        if self._early[0] != _TLS_HANDSHAKE_RECORD:
            log.warning("tls_handshake_failed", error="not a TLS record (plaintext on a TLS port?)", **where)
            tcp.write(_TLS_ALERT_INTERNAL_ERROR)  # then closed, as Kafka does
            tcp.close()
            return
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
            return
        if transport is None:
            tcp.abort()
            return
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            principal = tls.mapper.principal_of_certificate(der)
        except (NoMatchingRule, ValueError) as exc:
            log.warning("tls_principal_failed", error=str(exc), **where)
            transport.abort()
            return
        if der:
            log.info("tls_client_authenticated", principal=principal, **where)
        conn._principal = principal
        conn.connection_made(transport)


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
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_id = 0
        self._queued_requests = 0  # across all connections
        self._queued_bytes = 0
        self._draining = False
        self._all_lost: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.bound: list[BoundListener] = []
        self.tls: dict[str, ListenerTls] = dict(tls or {})  # listener name -> TLS (SSL, SASL_SSL)

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

    async def start(self, serve: bool = True) -> None:
        """Bind every listener (raises OSError if one cannot be bound); accept unless serve=False."""
        for listener in self._listeners:
            tls = self.tls.get(listener.name)
            if self.security_protocols.get(listener.name) in TLS_PROTOCOLS and tls is None:
                raise ValueError(f"listener {listener.name} needs TLS and has no TLS context")
            factory: Callable[[], asyncio.BaseProtocol]
            if tls is not None:
                factory = functools.partial(_TlsAcceptor, self, listener, tls)
            else:
                factory = functools.partial(_Connection, self, listener)
            server = await self._loop.create_server(
                factory,
                host=listener.host or None,
                port=listener.port,
                reuse_address=True,
                backlog=1024,
                start_serving=False,
            )
            self._servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.bound.append(BoundListener(listener, str(host), int(port)))
        if serve:
            await self.start_serving()

    async def start_serving(self) -> None:
        """Begin accepting connections on the bound listeners."""
        for server in self._servers:
            await server.start_serving()
        if self.settings.idle_timeout_ms >= 0 and self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep_idle())

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
        for server in self._servers:
            server.close()
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
        for server in self._servers:
            await server.wait_closed()
