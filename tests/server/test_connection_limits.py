"""Connection limits and the request memory pool of the network layer (docs/reliability.md,
"Connections and memory"): max.connections, listener max.connections, max.connections.per.ip and its
overrides, max.connection.creation.rate, an IP's connection_creation_rate quota (KIP-612), the
inter-broker listener's eviction (KIP-402), queued.max.request.bytes. Real sockets on loopback, under
both event loops; the sans-IO rules are checked on their own too."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import pytest

from kafkapy.config import BrokerConfig, ConfigError, Listener
from kafkapy.server.connection_quotas import (
    ACCEPTED,
    THROTTLED,
    TOO_MANY,
    ConnectionLimits,
    ConnectionQuotas,
    parse_ip_overrides,
)
from kafkapy.server.network import ConnectionContext, NetworkSettings, Outgoing, RequestHandler, Server
from tests.server.test_network import LOOPS, assert_closed, echo, frame, read_frame, run


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def start(handler: RequestHandler, listeners: list[Listener] | None = None, **settings: Any) -> Server:
    server = Server(handler, listeners or [Listener("PLAINTEXT", "127.0.0.1", 0)], NetworkSettings(**settings))
    await server.start()
    return server


async def connect(server: Server, index: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    bound = server.bound[index]
    return await asyncio.open_connection(bound.host, bound.port)


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes, timeout: float) -> bool:
    """Whether a request gets its echo within `timeout` (False: no answer yet or closed)."""
    writer.write(frame(body))
    try:
        return await read_frame(reader, timeout) == b"echo:" + body
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return False


# -- the rules, sans IO


def test_ip_overrides_parse() -> None:
    resolved = parse_ip_overrides(
        "127.0.0.1:5, localhost:7,[::1]:0", resolve=lambda h: {"localhost": "10.0.0.1"}.get(h, h)
    )
    assert resolved == {"127.0.0.1": 5, "10.0.0.1": 7, "::1": 0}
    for bad in ("127.0.0.1", "1.2.3.4:x", "1.2.3.4:-1", ":4"):
        with pytest.raises(ConfigError):
            parse_ip_overrides(bad)


def test_limits_from_config() -> None:
    config = BrokerConfig.load(
        overrides={
            "listeners": "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "advertised.listeners": "PLAINTEXT://127.0.0.1:1,INTERNAL://127.0.0.1:2",
            "max.connections": "10",
            "listener.name.plaintext.max.connections": "4",
            "max.connections.per.ip": "3",
            "max.connections.per.ip.overrides": "127.0.0.2:9",
            "max.connection.creation.rate": "20",
            "listener.name.internal.max.connection.creation.rate": "5",
        }.items()
    )
    limits = ConnectionLimits.from_config(config)
    assert limits.max_connections == 10
    assert limits.listener_max_connections == {"PLAINTEXT": 4}
    assert (limits.max_per_ip, limits.per_ip_overrides) == (3, {"127.0.0.2": 9})
    assert (limits.creation_rate, limits.listener_creation_rate) == (20, {"INTERNAL": 5})
    assert limits.inter_broker_listener == "INTERNAL"
    default = ConnectionLimits.from_config(BrokerConfig.load())
    assert default.max_connections == default.max_per_ip == default.creation_rate == 2**31 - 1
    assert default.inter_broker_listener is None  # a single listener is not protected (as Kafka)
    with pytest.raises(ConfigError):  # 0 per IP without overrides would let nobody in
        ConnectionLimits.from_config(BrokerConfig.load(overrides=[("max.connections.per.ip", "0")]))


def test_quota_rules() -> None:
    limits = ConnectionLimits(
        max_connections=3,
        max_per_ip=2,
        per_ip_overrides={"10.0.0.9": 0},
        creation_rate=2,
        inter_broker_listener="INTERNAL",
        samples=2,
        window=1.0,
    )
    q = ConnectionQuotas(limits)
    assert q.admit("PLAINTEXT", "10.0.0.9", 0.0) == (TOO_MANY, 0)
    assert q.admit("PLAINTEXT", "10.0.0.1", 0.0) == (ACCEPTED, 0)
    assert q.admit("PLAINTEXT", "10.0.0.1", 0.0) == (ACCEPTED, 0)
    assert q.admit("PLAINTEXT", "10.0.0.1", 0.0) == (TOO_MANY, 2)
    assert q.accept_delay_ms("PLAINTEXT", 0.0) == 0  # 2 in the first second: at the rate of 2/s, not over
    assert q.admit("PLAINTEXT", "10.0.0.2", 0.0)[0] == ACCEPTED
    assert q.accept_delay_ms("PLAINTEXT", 0.0) == 500  # 3 in 1 s: (3 - 2) / 2 x 1 s
    assert q.accept_delay_ms("INTERNAL", 0.0) == 0  # the inter-broker listener is not held to the broker rate
    assert not q.slot_free("PLAINTEXT") and q.slot_free("INTERNAL")
    assert q.admit("INTERNAL", "10.0.0.3", 0.0)[0] == ACCEPTED
    assert q.over_broker_limit()
    q.release("PLAINTEXT", "10.0.0.1")
    assert q.by_ip["10.0.0.1"] == 1 and q.total == 3
    q.ip_quota = lambda ip: 1.0 if ip == "10.0.0.5" else None
    assert q.admit("PLAINTEXT", "10.0.0.5", 10.0) == (ACCEPTED, 0)  # the first within a window of 1/s
    verdict, ms = q.admit("PLAINTEXT", "10.0.0.5", 10.0)
    assert verdict == THROTTLED and ms > 0


# -- on sockets


def test_max_connections_per_ip_closes_the_extra_connection(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, limits=ConnectionLimits(max_per_ip=2))
        first, second = await connect(server), await connect(server)
        third = await connect(server)
        await assert_closed(third[0])  # closed right after its accept, nothing read
        assert await answered(*first, b"a", 5) and await answered(*second, b"b", 5)
        first[1].close()
        await first[1].wait_closed()
        for _ in range(100):  # the broker sees the close and gives the slot back
            if server.connection_quotas.by_ip.get("127.0.0.1") == 1:
                break
            await asyncio.sleep(0.02)
        again = await connect(server)
        assert await answered(*again, b"c", 5)
        await server.shutdown(1)

    run(loop_kind, body)


def test_per_ip_override(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, limits=ConnectionLimits(max_per_ip=0, per_ip_overrides={"127.0.0.1": 1}))
        first = await connect(server)
        assert await answered(*first, b"a", 5)
        second = await connect(server)
        await assert_closed(second[0])
        await server.shutdown(1)

    run(loop_kind, body)


def test_max_connections_blocks_accepting_until_one_closes(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, limits=ConnectionLimits(max_connections=2))
        first, second = await connect(server), await connect(server)
        assert await answered(*first, b"a", 5) and await answered(*second, b"b", 5)
        third = await connect(server)  # TCP completes (the kernel's backlog) but it is not accepted
        assert not await answered(*third, b"c", 0.5)
        assert server.connection_count == 2
        first[1].close()
        assert await read_frame(third[0], 5) == b"echo:c"  # accepted once a slot freed: its request served
        await server.shutdown(1)

    run(loop_kind, body)


def test_listener_max_connections(loop_kind: str) -> None:
    async def body() -> None:
        listeners = [Listener("PLAINTEXT", "127.0.0.1", 0), Listener("OTHER", "127.0.0.1", 0)]
        server = await start(echo, listeners, limits=ConnectionLimits(listener_max_connections={"PLAINTEXT": 1}))
        first = await connect(server, 0)
        assert await answered(*first, b"a", 5)
        blocked = await connect(server, 0)
        assert not await answered(*blocked, b"b", 0.5)
        other = await connect(server, 1)  # another listener is not held by PLAINTEXT's limit
        assert await answered(*other, b"c", 5)
        await server.shutdown(1)

    run(loop_kind, body)


def test_inter_broker_listener_exceeds_max_connections_and_evicts(loop_kind: str) -> None:
    async def body() -> None:
        listeners = [Listener("PLAINTEXT", "127.0.0.1", 0), Listener("INTERNAL", "127.0.0.1", 0)]
        limits = ConnectionLimits(max_connections=2, inter_broker_listener="INTERNAL")
        server = await start(echo, listeners, limits=limits)
        older, newer = await connect(server, 0), await connect(server, 0)
        assert await answered(*older, b"a", 5)
        await asyncio.sleep(0.05)
        assert await answered(*newer, b"b", 5)  # `older` is now the least recently used
        broker = await connect(server, 1)
        assert await answered(*broker, b"c", 5)  # accepted over max.connections
        await assert_closed(older[0])  # ... and the least recently used client connection closed
        assert await answered(*newer, b"d", 5)
        await server.shutdown(1)

    run(loop_kind, body)


def test_connection_creation_rate_delays_accepts(loop_kind: str) -> None:
    async def body() -> None:
        # rate 10/s over windows of 2 x 0.5 s: 20 connections take about 1.5 s, none refused
        server = await start(echo, limits=ConnectionLimits(creation_rate=10, samples=2, window=0.5))
        started = time.monotonic()
        conns = [await connect(server) for _ in range(20)]
        results = await asyncio.gather(*(answered(r, w, b"x", 10) for r, w in conns))
        elapsed = time.monotonic() - started
        assert all(results)
        assert elapsed >= 0.8, elapsed
        await server.shutdown(1)

    run(loop_kind, body)


def test_ip_connection_creation_rate_quota_closes_after_the_throttle(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo, limits=ConnectionLimits(samples=2, window=1.0))
        server.connection_quotas.ip_quota = lambda ip: 2.0
        ok = [await connect(server) for _ in range(2)]
        assert all([await answered(r, w, b"x", 5) for r, w in ok])
        started = time.monotonic()
        throttled = await connect(server)
        assert not await answered(*throttled, b"y", 0.05)  # held, unread ...
        with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):  # ... then closed
            await read_frame(throttled[0], 5)
        assert time.monotonic() - started >= 0.1
        await server.shutdown(1)

    run(loop_kind, body)


def test_queued_max_request_bytes_stops_reading_until_memory_frees(loop_kind: str) -> None:
    release = asyncio.Event()

    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        if bytes(frame_[:1]) == b"B":
            await release.wait()
        return [b"echo:", bytes(frame_)]

    async def body() -> None:
        server = await start(handler, max_queued_bytes=1000)
        a, b, c = await connect(server), await connect(server), await connect(server)
        a[1].write(frame(b"B" * 900))  # held by its handler: 900 of the pool's 1000 bytes
        await asyncio.sleep(0.1)
        b[1].write(frame(b"B" * 500))  # admitted (900 < 1000: the pool is not strict, as Kafka's)
        await asyncio.sleep(0.1)
        assert server._queued_bytes == 1400
        assert not await answered(*c, b"small", 0.3)  # the pool is used up: c is not read
        assert server._memory_waits >= 1
        release.set()
        assert await read_frame(a[0]) == b"echo:" + b"B" * 900
        assert await read_frame(b[0]) == b"echo:" + b"B" * 500
        assert await read_frame(c[0]) == b"echo:small"
        assert server._queued_bytes == 0
        await server.shutdown(1)

    run(loop_kind, body)


def test_slowly_sent_large_frame_holds_only_what_arrived(loop_kind: str) -> None:
    async def body() -> None:
        server = await start(echo)
        _, writer = await connect(server)
        writer.write(struct.pack(">i", 50_000_000) + b"x" * 100)  # declares 50 MB, sends 100 bytes
        await asyncio.sleep(0.2)
        (conn,) = list(server._connections)
        assert conn._body is not None and len(conn._body) <= 64 * 1024
        assert server._queued_bytes == 50_000_000  # reserved in the pool all the same, as Kafka
        writer.close()
        for _ in range(100):
            if not server._connections:
                break
            await asyncio.sleep(0.02)
        assert server._queued_bytes == 0
        await server.shutdown(1)

    run(loop_kind, body)


def test_request_over_socket_request_max_bytes_closes_with_a_log_line(
    loop_kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body() -> None:
        server = await start(echo, max_request_bytes=1000)
        reader, writer = await connect(server)
        writer.write(struct.pack(">i", 1001))
        await assert_closed(reader)
        await server.shutdown(1)

    run(loop_kind, body)
    assert "request_size_invalid" in capsys.readouterr().out


def test_a_small_request_waiting_for_memory_passes_large_ones_that_do_not_fit(loop_kind: str) -> None:
    releases: dict[int, asyncio.Event] = {}
    arrived: list[bytes] = []

    async def handler(frame_: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        arrived.append(bytes(frame_[:1]))
        if bytes(frame_[:1]) == b"B":
            event = releases.setdefault(len(frame_), asyncio.Event())
            await event.wait()
        return [b"echo:", bytes(frame_[:10])]

    async def body() -> None:
        server = await start(handler, max_queued_bytes=1000)
        holders = [await connect(server) for _ in range(2)]
        holders[0][1].write(frame(b"B" * 600))
        holders[1][1].write(frame(b"B" * 500))  # 1100 of 1000 used
        await asyncio.sleep(0.1)
        large, small = await connect(server), await connect(server)
        large[1].write(frame(b"L" * 900))  # waits first
        await asyncio.sleep(0.1)
        small[1].write(frame(b"s" * 10))  # waits second
        await asyncio.sleep(0.1)
        assert server._memory_waits >= 2
        releases[500].set()  # 600 used, 400 free: the small one fits, the large one does not
        assert await read_frame(small[0], 5) == b"echo:" + b"s" * 10
        releases[600].set()
        assert await read_frame(large[0], 5) == b"echo:" + b"L" * 10
        assert arrived == [b"B", b"B", b"s", b"L"]  # first come first served would have read L first
        await server.shutdown(1)

    run(loop_kind, body)
