"""The CLI and the broker process, started through the kafkapy.pytest_plugin fixtures."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import kafkapy.pytest_plugin
from kafkapy.cli import SUBCOMMANDS, build_parser, main, overrides_from_args
from kafkapy.testing import BrokerFactory, BrokerProcess, BrokerStartError

# the plugin's fixtures, for runs where its pytest11 entry point is not installed
kafka_broker = kafkapy.pytest_plugin.kafka_broker
kafka_broker_factory = kafkapy.pytest_plugin.kafka_broker_factory

ROOT = str(Path(__file__).resolve().parent.parent)


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-m", "kafkapy", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def api_versions_v0(sock: socket.socket, correlation_id: int) -> tuple[int, int]:
    """Send ApiVersions v0 by hand; return (correlation id, error code) of the answer."""
    client_id = b"test"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    return struct.unpack(">ih", data[:6])


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("closed")
        chunks += chunk
    return chunks


def test_broker_help() -> None:
    result = run_cli("broker", "--help")
    assert result.returncode == 0
    for flag in (
        "--listen",
        "--advertise",
        "--data-dir",
        "--config",
        "--set",
        "--broker-id",
        "--log-level",
        "--log-format",
    ):
        assert flag in result.stdout


def test_top_level_help_lists_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for spec in SUBCOMMANDS:
        assert spec.name in result.stdout


def test_invalid_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = run_cli("broker", "--data-dir", str(tmp_path), "--set", "num.partitions=lots")
    assert result.returncode == 2
    assert "num.partitions" in result.stderr
    result = run_cli("broker", "--data-dir", str(tmp_path), "--set", "novalue")
    assert result.returncode == 2
    props = tmp_path / "server.properties"
    props.write_text("log.segment.bytes = tiny\n")
    result = run_cli("broker", "--config", str(props))
    assert result.returncode == 2
    assert "log.segment.bytes" in result.stderr
    assert run_cli("broker", "--config", str(tmp_path / "missing.properties")).returncode == 2


def test_flag_and_set_precedence() -> None:
    args = build_parser("broker").parse_args(
        ["broker", "--listen", "h:1", "--data-dir", "d", "--broker-id", "3", "--set", "log.dirs=e", "--set", "x=y=z"]
    )
    assert overrides_from_args(args) == [
        ("listeners", "h:1"),
        ("log.dirs", "d"),
        ("node.id", "3"),
        ("log.dirs", "e"),
        ("x", "y=z"),
    ]


def test_no_command_is_usage_error() -> None:
    assert main([]) == 2


def test_broker_fixture_serves_and_stops_cleanly(kafka_broker: BrokerProcess) -> None:
    host, port = kafka_broker.bootstrap.split(":")
    assert kafka_broker.pid > 0
    assert kafka_broker.data_dir.is_dir()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(10)
        assert api_versions_v0(sock, 7) == (7, 0)
    log = kafka_broker.log_path.read_text()
    ready = [line for line in log.splitlines() if "broker_ready" in line]
    assert len(ready) == 1
    assert f"127.0.0.1:{port}" in ready[0] and str(kafka_broker.data_dir) in ready[0]
    assert kafka_broker.stop() == 0  # SIGTERM: graceful, exit 0
    assert "broker_stopped" in kafka_broker.log_path.read_text()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1)


def test_factory_restart_kill_and_two_brokers(kafka_broker_factory: BrokerFactory) -> None:
    a = kafka_broker_factory()
    b = kafka_broker_factory({"num.partitions": 2})
    assert a.bootstrap != b.bootstrap and a.data_dir != b.data_dir
    first_pid = a.pid
    a.restart()
    assert a.pid != first_pid
    a.restart(kill=True)
    for broker in (a, b):
        with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
            sock.settimeout(10)
            assert api_versions_v0(sock, 1) == (1, 0)
    b.kill()
    assert not b.running


def test_sigterm_finishes_inflight_and_exits_zero(kafka_broker: BrokerProcess) -> None:
    with socket.create_connection((kafka_broker.host, kafka_broker.port), timeout=5) as sock:
        sock.settimeout(10)
        assert api_versions_v0(sock, 1) == (1, 0)
        os.kill(kafka_broker.pid, signal.SIGTERM)
        assert kafka_broker.process is not None
        assert kafka_broker.process.wait(15) == 0
        assert sock.recv(1) == b""  # closed by the broker, not reset mid-response


def test_bind_failure_is_reported(kafka_broker_factory: BrokerFactory, kafka_broker: BrokerProcess) -> None:
    clash = kafka_broker_factory(start=False, port=kafka_broker.port)
    with pytest.raises(BrokerStartError) as info:
        clash.start()
    assert "broker_bind_failed" in str(info.value)


def test_startup_is_quick(kafka_broker: BrokerProcess) -> None:
    log = kafka_broker.log_path.read_text()
    line = next(line for line in log.splitlines() if "broker_ready" in line)
    start_ms = float(line.split("start_ms=")[1].split()[0])
    assert start_ms < 5000  # generous: CI machines are slow; the figure is reported, not gated


def test_in_process_broker_port_zero_hooks_and_handler(tmp_path: Path) -> None:
    import asyncio

    from kafkapy.config import BrokerConfig
    from kafkapy.server.broker import Broker
    from kafkapy.server.network import ConnectionContext, Outgoing

    calls: list[str] = []

    async def echo(frame: bytes | memoryview, conn: ConnectionContext) -> Outgoing | None:
        return [bytes(frame)]

    def factory(broker: Broker) -> object:
        assert broker.advertised and broker.advertised[0].port != 0  # bound before the factory runs
        broker.add_shutdown_hook(lambda: calls.append("first"))

        async def second() -> None:
            calls.append("second")

        broker.add_shutdown_hook(second)
        return echo

    async def body() -> None:
        config = BrokerConfig.from_pairs([("listeners", "127.0.0.1:0"), ("log.dirs", str(tmp_path / "d"))])
        broker = Broker(config, factory)  # type: ignore[arg-type]
        task = asyncio.create_task(broker.serve())
        await asyncio.wait_for(broker.ready.wait(), 10)
        port = broker.advertised[0].port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack(">i", 2) + b"hi")
        assert await asyncio.wait_for(reader.readexactly(6), 5) == struct.pack(">i", 2) + b"hi"
        broker.stop()
        await asyncio.wait_for(task, 10)
        assert calls == ["second", "first"]
        writer.close()

    asyncio.run(body())
