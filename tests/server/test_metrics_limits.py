"""The connection-limit and memory-pool metrics of a live broker move when they should: a creation rate
of 2/s throttles accepts (connection-accept-throttle-time, AcceptorBlockedPercent), max.connections=3
blocks the acceptor until a connection closes (AcceptorBlockedPercent grows while it waits and stops
after), and a frame whose size prefix is read takes its size from queued.max.request.bytes
(MemoryPoolUsed / MemoryPoolAvailable) until its connection closes. docs/monitoring.md."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from kafkapy.testing import BrokerFactory, free_port
from tests.server.test_metrics_endpoint import scrape, value

POOL = 100_000
LISTENER = {"listener": "PLAINTEXT"}
SOCKET = {"listener": "PLAINTEXT", "networkProcessor": "0"}
BLOCKED = "kafka_network_acceptor_acceptorblockedpercent_count"
THROTTLE = "kafka_server_socket_server_metrics_connection_accept_throttle_time"
COUNT = "kafka_server_socket_server_metrics_connection_count"
USED = "kafka_network_socketserver_memorypoolused"
AVAILABLE = "kafka_network_socketserver_memorypoolavailable"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def wait_for(base: str, check: Callable[[Samples], bool], what: str, timeout: float = 10.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, f"{what}: not seen in {timeout} s"
        time.sleep(0.05)


def test_acceptor_and_memory_pool_metrics_move(kafka_broker_factory: BrokerFactory) -> None:
    port = free_port()
    broker = kafka_broker_factory(
        settings={
            "max.connections": 3,
            "max.connection.creation.rate": 2,
            "quota.window.num": 2,
            "quota.window.size.seconds": 1,
            "queued.max.request.bytes": POOL,
        },
        extra_args=["--metrics-listen", f"127.0.0.1:{port}"],
    )
    base = f"http://127.0.0.1:{port}"
    time.sleep(1.0)  # the start-up check's connection leaves the creation rate's window
    before = scrape(base)
    assert value(before, BLOCKED, **LISTENER) == 0
    assert value(before, THROTTLE, **LISTENER) == 0
    assert (value(before, AVAILABLE), value(before, USED)) == (POOL, 0)
    host, kafka_port = broker.bootstrap.split(":")
    socks: list[socket.socket] = []
    try:
        # 3 connections at once over a creation rate of 2/s: the later accepts are delayed
        socks += [socket.create_connection((host, int(kafka_port)), timeout=5) for _ in range(3)]
        throttled = wait_for(base, lambda s: value(s, COUNT, **SOCKET) == 3, "3 connections accepted")
        assert value(throttled, THROTTLE, **LISTENER) > 0
        assert value(throttled, BLOCKED, **LISTENER) > 0  # Kafka's acceptor counts a throttle's wait too

        # a 4th at max.connections: the acceptor blocks, its wait counted while it lasts
        time.sleep(1.0)  # the rate's window is clear again: what follows is max.connections alone
        socks.append(socket.create_connection((host, int(kafka_port)), timeout=5))
        time.sleep(0.2)
        first = scrape(base)
        time.sleep(0.5)
        blocked = scrape(base)
        assert value(blocked, COUNT, **SOCKET) == 3
        assert value(blocked, BLOCKED, **LISTENER) - value(first, BLOCKED, **LISTENER) >= 0.4e9
        socks.pop(0).close()  # a slot frees: the 4th is accepted and the acceptor waits no more
        unblocked = wait_for(
            base,
            lambda s: (
                value(s, "kafka_server_socket_server_metrics_connection_close_total", **SOCKET) >= 2
                and value(s, COUNT, **SOCKET) == 3
            ),
            "the 4th connection accepted",
        )
        time.sleep(0.3)
        assert value(scrape(base), BLOCKED, **LISTENER) == value(unblocked, BLOCKED, **LISTENER)

        # a frame's size prefix read: its size is taken from the pool until its connection closes
        socks[0].sendall(struct.pack(">i", 60_000) + b"\0" * 10)
        taken = wait_for(base, lambda s: value(s, USED) == 60_000, "60,000 bytes taken from the pool")
        assert value(taken, AVAILABLE) == POOL - 60_000
        socks.pop(0).close()
        wait_for(base, lambda s: (value(s, AVAILABLE), value(s, USED)) == (POOL, 0), "the pool given back")
    finally:
        for sock in socks:
            sock.close()
