"""Network layer tests: real sockets on loopback, under both event loops."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkapy.config import Listener
from kafkapy.server.network import (
    CloseConnection,
    ConnectionContext,
    NetworkSettings,
    Outgoing,
    RequestHandler,
    Server,
)

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


@dataclass(slots=True)
class Slice:
    file: BinaryIO
    position: int
    size: int


def run(loop_kind: str, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), 30))  # type: ignore[arg-type]


async def start(handler: RequestHandler, **settings: Any) -> Server:
    server = Server(handler, [Listener("PLAINTEXT", "127.0.0.1", 0)], NetworkSettings(**settings))
    await server.start()
    return server


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    bound = server.bound[0]
    return await asyncio.open_connection(bound.host, bound.port, limit=1 << 26)


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


async def read_frame(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), timeout))[0]
    return await asyncio.wait_for(reader.readexactly(size), timeout)


async def assert_closed(reader: asyncio.StreamReader, timeout: float = 5) -> None:
    data = await asyncio.wait_for(reader.read(), timeout)
    assert data == b""


async def echo(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
    return [b"echo:", bytes(frame_)]


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_echo_and_context(loop_kind: str) -> None:
    seen: list[ConnectionContext] = []

    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        seen.append(conn)
        return [bytes(frame_)]

    async def body() -> None:
        server = await start(handler)
        reader, writer = await connect(server)
        writer.write(frame(b"hello"))
        assert await read_frame(reader) == b"hello"
        local = writer.get_extra_info("sockname")
        ctx = seen[0]
        assert (ctx.peer_host, ctx.peer_port) == (local[0], local[1])
        assert ctx.listener_name == "PLAINTEXT"
        assert ctx.principal == "User:ANONYMOUS"
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_pipelined_responses_keep_request_order(loop_kind: str) -> None:
    """Later requests finish first, yet responses come back in request order."""

    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        index = int(bytes(frame_))
        await asyncio.sleep((20 - index) * 0.005)
        return [str(index).encode()]

    async def body() -> None:
        server = await start(handler)
        reader, writer = await connect(server)
        writer.write(b"".join(frame(str(i).encode()) for i in range(20)))
        started = time.monotonic()
        got = [int(await read_frame(reader)) for _ in range(20)]
        elapsed = time.monotonic() - started
        assert got == list(range(20))
        assert elapsed < 0.5  # concurrent: about the longest delay (0.1 s), not the sum (1 s)
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_frames_split_byte_by_byte_and_large_frames(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo)
        reader, writer = await connect(server)
        data = frame(b"abc") + frame(b"") + frame(b"x" * 10)
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        assert await read_frame(reader) == b"echo:abc"
        assert await read_frame(reader) == b"echo:"
        assert await read_frame(reader) == b"echo:" + b"x" * 10
        big = os.urandom(3 * 1024 * 1024 + 7)  # larger than the shared scratch buffer
        writer.write(frame(b"s1") + frame(big) + frame(b"s2"))
        assert await read_frame(reader) == b"echo:s1"
        assert await read_frame(reader) == b"echo:" + big
        assert await read_frame(reader) == b"echo:s2"
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_oversized_and_negative_frames_close_only_that_connection(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, max_request_bytes=1000)
        r_ok, w_ok = await connect(server)
        r_big, w_big = await connect(server)
        r_neg, w_neg = await connect(server)
        w_big.write(struct.pack(">i", 1001))
        w_neg.write(struct.pack(">i", -5) + b"zzzz")
        await assert_closed(r_big)
        await assert_closed(r_neg)
        w_ok.write(frame(b"y" * 1000))
        assert await read_frame(r_ok) == b"echo:" + b"y" * 1000
        for w in (w_ok, w_big, w_neg):
            w.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_handler_exception_closes_only_that_connection(loop_kind: str) -> None:
    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        if bytes(frame_) == b"boom":
            raise RuntimeError("handler bug")
        if bytes(frame_) == b"bye":
            raise CloseConnection()
        return [bytes(frame_)]

    async def body() -> None:
        server = await start(handler)
        r1, w1 = await connect(server)
        r2, w2 = await connect(server)
        r3, w3 = await connect(server)
        w1.write(frame(b"before") + frame(b"boom") + frame(b"after"))
        assert await read_frame(r1) == b"before"
        await assert_closed(r1)
        w3.write(frame(b"a") + frame(b"bye") + frame(b"b"))
        assert await read_frame(r3) == b"a"
        await assert_closed(r3)
        w2.write(frame(b"still-alive"))
        assert await read_frame(r2) == b"still-alive"
        for w in (w1, w2, w3):
            w.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_none_response_writes_nothing(loop_kind: str) -> None:
    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        return None if bytes(frame_).startswith(b"acks0") else [bytes(frame_)]

    async def body() -> None:
        server = await start(handler)
        reader, writer = await connect(server)
        writer.write(frame(b"acks0-a") + frame(b"one") + frame(b"acks0-b") + frame(b"two") + frame(b"acks0-c"))
        assert await read_frame(reader) == b"one"
        assert await read_frame(reader) == b"two"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.2)
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


@pytest.mark.parametrize("zero_copy", [True, False])
def test_file_slices_deliver_exact_bytes(loop_kind: str, zero_copy: bool, tmp_path: Path) -> None:
    content = os.urandom(6 * 1024 * 1024)
    path = tmp_path / "segment.log"
    path.write_bytes(content)

    async def body() -> None:
        with open(path, "rb", buffering=0) as f:
            regions = [(0, 10), (12345, 4 * 1024 * 1024), (len(content) - 100, 100), (50, 0)]

            async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
                pos, size = regions[int(bytes(frame_))]
                return [b"head", memoryview(b"-mv-"), Slice(f, pos, size), bytearray(b"tail")]

            server = await start(handler, zero_copy=zero_copy)
            reader, writer = await connect(server)
            for i in range(len(regions)):
                writer.write(frame(str(i).encode()))
            await asyncio.sleep(0.3)  # let the socket buffers fill: exercises the wait-writable path
            for pos, size in regions:
                got = await read_frame(reader)
                assert got == b"head-mv-" + content[pos : pos + size] + b"tail"
            writer.close()
            await server.shutdown(1)

    run(loop_kind, body)


def test_truncated_file_slice_closes_connection(loop_kind: str, tmp_path: Path) -> None:
    path = tmp_path / "short.log"
    path.write_bytes(b"0123456789")

    async def body() -> None:
        with open(path, "rb", buffering=0) as f:

            async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
                if bytes(frame_) == b"bad":
                    return [Slice(f, 5, 1000)]
                return [bytes(frame_)]

            for zero_copy in (True, False):
                server = await start(handler, zero_copy=zero_copy)
                r_bad, w_bad = await connect(server)
                r_ok, w_ok = await connect(server)
                w_bad.write(frame(b"bad"))
                size = struct.unpack(">i", await asyncio.wait_for(r_bad.readexactly(4), 5))[0]
                assert size == 1000
                rest = await asyncio.wait_for(r_bad.read(), 5)  # EOF, not a hang
                assert rest == b"56789"
                w_ok.write(frame(b"fine"))
                assert await read_frame(r_ok) == b"fine"
                w_bad.close()
                w_ok.close()
                await server.shutdown(1)

    run(loop_kind, body)


def test_backpressure_bounds_inflight_requests(loop_kind: str) -> None:
    state: dict[str, Any] = {"active": 0, "peak": 0}

    async def body() -> None:
        gate = asyncio.Event()

        async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await gate.wait()
            state["active"] -= 1
            return [b"ok"]

        server = await start(handler, max_inflight_requests=8, max_inflight_bytes=1 << 30)
        reader, writer = await connect(server)
        payload = b"p" * 2000
        writer.write(b"".join(frame(payload) for _ in range(2000)))  # 4 MB pipelined
        await asyncio.sleep(0.3)
        # at most the limit plus what was already in one read buffer
        assert 8 <= state["peak"] <= 8 + 256 * 1024 // 2004 + 1
        gate.set()
        for _ in range(2000):
            assert await read_frame(reader) == b"ok"
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_backpressure_bounds_inflight_bytes(loop_kind: str) -> None:
    state: dict[str, int] = {"peak_bytes": 0, "active_bytes": 0}

    async def body() -> None:
        gate = asyncio.Event()

        async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
            n = len(frame_)
            state["active_bytes"] += n
            state["peak_bytes"] = max(state["peak_bytes"], state["active_bytes"])
            await gate.wait()
            state["active_bytes"] -= n
            return [b"ok"]

        server = await start(handler, max_inflight_requests=10_000, max_inflight_bytes=2_000_000)
        reader, writer = await connect(server)
        writer.write(b"".join(frame(b"q" * 1_000_000) for _ in range(30)))  # 30 MB pipelined
        await asyncio.sleep(0.5)
        assert state["peak_bytes"] <= 2_000_000 + 1_000_000
        gate.set()
        for _ in range(30):
            assert await read_frame(reader) == b"ok"
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_graceful_shutdown_finishes_inflight_then_closes(loop_kind: str) -> None:
    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        await asyncio.sleep(0.3)
        return [bytes(frame_)]

    async def body() -> None:
        server = await start(handler)
        bound = server.bound[0]
        reader, writer = await connect(server)
        idle_reader, idle_writer = await connect(server)
        writer.write(frame(b"slow"))
        await asyncio.sleep(0.05)
        shutdown = asyncio.create_task(server.shutdown(5))
        await asyncio.sleep(0.05)
        with pytest.raises(OSError):
            await asyncio.open_connection(bound.host, bound.port)
        assert await read_frame(reader) == b"slow"
        await assert_closed(reader)
        await assert_closed(idle_reader)
        await asyncio.wait_for(shutdown, 5)
        writer.close()
        idle_writer.close()

    run(loop_kind, body)


def test_shutdown_bound_cuts_stuck_requests(loop_kind: str) -> None:
    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        await asyncio.sleep(60)
        return [b"never"]

    async def body() -> None:
        server = await start(handler)
        reader, writer = await connect(server)
        writer.write(frame(b"x"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await server.shutdown(0.2)
        assert time.monotonic() - started < 2
        await assert_closed(reader)
        writer.close()

    run(loop_kind, body)


def test_idle_connections_are_closed(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, idle_timeout_ms=200)
        reader, writer = await connect(server)
        writer.write(frame(b"hi"))
        assert await read_frame(reader) == b"echo:hi"
        started = time.monotonic()
        await assert_closed(reader, timeout=3)
        assert time.monotonic() - started >= 0.15
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_half_closed_client_still_gets_responses(loop_kind: str) -> None:
    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        await asyncio.sleep(0.1)
        return [bytes(frame_)]

    async def body() -> None:
        server = await start(handler)
        reader, writer = await connect(server)
        writer.write(frame(b"a") + frame(b"b"))
        writer.write_eof()
        assert await read_frame(reader) == b"a"
        assert await read_frame(reader) == b"b"
        await assert_closed(reader)
        writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_context_close_and_wait_closed(loop_kind: str) -> None:
    async def body() -> None:
        closed = asyncio.Event()

        async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
            if bytes(frame_) == b"poll":
                await conn.wait_closed()  # a long poll that ends with its connection
                closed.set()
                return [b"late"]
            conn.close()
            return [b"last"]

        server = await start(handler)
        _reader, writer = await connect(server)
        writer.write(frame(b"poll"))
        await asyncio.sleep(0.05)
        writer.close()
        await asyncio.wait_for(closed.wait(), 5)
        reader2, writer2 = await connect(server)
        writer2.write(frame(b"x"))
        assert await read_frame(reader2) == b"last"
        await assert_closed(reader2)
        writer2.close()
        await server.shutdown(1)

    run(loop_kind, body)


def test_server_wide_queue_limit_pauses_busy_connections(loop_kind: str) -> None:
    state: dict[str, int] = {"active": 0, "peak": 0}

    async def body() -> None:
        gate = asyncio.Event()

        async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await gate.wait()
            state["active"] -= 1
            return [b"ok"]

        server = await start(handler, max_inflight_requests=10_000, max_queued_requests=10)
        conns = [await connect(server) for _ in range(3)]
        for _, writer in conns:
            writer.write(b"".join(frame(b"p" * 2000) for _ in range(400)))
        await asyncio.sleep(0.3)
        per_read = 256 * 1024 // 2004 + 1
        assert 10 <= state["peak"] <= 10 + 3 * per_read < 3 * 400
        gate.set()
        for reader, writer in conns:
            for _ in range(400):
                assert await read_frame(reader) == b"ok"
            writer.close()
        await server.shutdown(1)

    run(loop_kind, body)


@settings(max_examples=25, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=3000), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=10),
)
def test_any_split_of_the_byte_stream_yields_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    async def body() -> None:
        server = await start(echo)
        reader, writer = await connect(server)
        stream = b"".join(frame(b) for b in bodies)
        pos = 0
        for cut in cuts:
            writer.write(stream[pos : pos + cut])
            await writer.drain()
            await asyncio.sleep(0)
            pos += cut
        writer.write(stream[pos:])
        for b in bodies:
            assert await read_frame(reader) == b"echo:" + b
        writer.close()
        await server.shutdown(1)

    run("asyncio", body)


@settings(max_examples=25, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=200))
def test_garbage_never_hurts_other_connections(garbage: bytes) -> None:
    async def body() -> None:
        server = await start(echo, max_request_bytes=64)
        r_bad, w_bad = await connect(server)
        r_ok, w_ok = await connect(server)
        w_bad.write(garbage)
        w_bad.write_eof()
        await asyncio.wait_for(r_bad.read(), 5)  # answered or closed, never hung
        w_ok.write(frame(b"ok"))
        assert await read_frame(r_ok) == b"echo:ok"
        w_bad.close()
        w_ok.close()
        await server.shutdown(1)

    run("asyncio", body)
