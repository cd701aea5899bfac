"""Named listeners: every client is answered with the addresses of the listener it connected to.

One broker process with two PLAINTEXT listeners, INSIDE on 127.0.0.1 and
OUTSIDE on 127.0.0.2 (advertised as such; both loopback on Linux). Raw
Metadata, DescribeCluster and FindCoordinator on each listener answer with
that listener's address; confluent-kafka and kafka-python produce and consume
through each. A config without an advertised inter-broker listener is refused
at start-up with Kafka's message.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, Out, start_broker, unique_topic
from interop.adapters.confluent import ConfluentClient
from interop.adapters.kafka_python import KafkaPythonClient
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.primitives import Message
from kafkapy.testing import free_port

INSIDE_HOST, OUTSIDE_HOST = "127.0.0.1", "127.0.0.2"


def ask(host: str, port: int, request: Message, version: int) -> Any:
    """One request on a fresh connection; the decoded response body."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(encode_request(request, version, 7, client_id="listener-test"))
        (size,) = struct.unpack(">i", _read(s, 4))
        return decode_response(request.API_KEY, version, _read(s, size))[1]


def _read(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def listener_settings(inside: int, outside: int) -> dict[str, str]:
    return {
        "listeners": f"INSIDE://{INSIDE_HOST}:{inside},OUTSIDE://{OUTSIDE_HOST}:{outside}",
        "advertised.listeners": f"INSIDE://{INSIDE_HOST}:{inside},OUTSIDE://{OUTSIDE_HOST}:{outside}",
        "listener.security.protocol.map": "INSIDE:PLAINTEXT,OUTSIDE:PLAINTEXT",
        "inter.broker.listener.name": "INSIDE",
        "offsets.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, dict[str, tuple[str, int]]]]:
    inside, outside = free_port(INSIDE_HOST), free_port(OUTSIDE_HOST)
    b = start_broker(tmp_path_factory.mktemp("listeners") / "data", listener_settings(inside, outside))
    try:
        yield b, {"INSIDE": (INSIDE_HOST, inside), "OUTSIDE": (OUTSIDE_HOST, outside)}
    finally:
        b.stop()


@pytest.mark.parametrize("listener", ["INSIDE", "OUTSIDE"])
def test_raw_answers_carry_the_listeners_address(
    broker: tuple[BrokerProcess, dict[str, tuple[str, int]]], listener: str
) -> None:
    _, listeners = broker
    host, port = listeners[listener]
    for version in (1, 9, 12):
        md = ask(host, port, MetadataRequest(topics=None), version)
        assert [(b.host, b.port) for b in md.brokers] == [(host, port)], version
    dc = ask(host, port, DescribeClusterRequest(), 0)
    assert [(b.host, b.port) for b in dc.brokers] == [(host, port)]
    group = unique_topic("g")
    old = ask(host, port, FindCoordinatorRequest(key=group), 3)
    assert (old.error_code, old.host, old.port) == (0, host, port)
    new = ask(host, port, FindCoordinatorRequest(coordinator_keys=[group]), 4)
    assert [(c.error_code, c.host, c.port) for c in new.coordinators] == [(0, host, port)]


@pytest.mark.parametrize("adapter", [ConfluentClient(), KafkaPythonClient()], ids=["confluent", "kafka-python"])
@pytest.mark.parametrize("listener", ["INSIDE", "OUTSIDE"])
def test_clients_produce_and_consume_through_each_listener(
    broker: tuple[BrokerProcess, dict[str, tuple[str, int]]], listener: str, adapter: Any
) -> None:
    _, listeners = broker
    host, port = listeners[listener]
    bootstrap = f"{host}:{port}"
    topic = unique_topic(f"l-{listener.lower()}")
    adapter.create_topic(bootstrap, topic, 1)
    values = [f"{listener}-{i}".encode() for i in range(20)]
    adapter.produce(bootstrap, topic, [Out(None, v, partition=0) for v in values])
    got = adapter.consume(bootstrap, topic, {0: 0}, len(values))
    assert [r.value for r in got] == values
    grouped = adapter.group_consume(bootstrap, topic, unique_topic("grp"), len(values))
    assert sorted(r.value for r in grouped) == sorted(values)


def test_confluent_metadata_lists_the_listeners_address(
    broker: tuple[BrokerProcess, dict[str, tuple[str, int]]],
) -> None:
    from confluent_kafka.admin import AdminClient

    _, listeners = broker
    for host, port in listeners.values():
        md = AdminClient({"bootstrap.servers": f"{host}:{port}"}).list_topics(timeout=10)
        assert [(b.host, b.port) for b in md.brokers.values()] == [(host, port)]


def _refusal(tmp_path: Path, settings: dict[str, str]) -> str:
    """Start a broker that must refuse: its exit status is 1 and the output names the problem."""
    cmd = [sys.executable, "-m", "kafkapy", "broker", "--data-dir", str(tmp_path / "data")]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(cmd, capture_output=True, timeout=60, cwd=root, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return (proc.stdout + proc.stderr).decode(errors="replace")


def test_start_up_refused_without_an_advertised_inter_broker_listener(tmp_path: Path) -> None:
    settings = listener_settings(free_port(), free_port(OUTSIDE_HOST))
    del settings["inter.broker.listener.name"]  # the default security.inter.broker.protocol=PLAINTEXT
    out = _refusal(tmp_path, settings)
    assert (
        "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
        "The valid options based on currently configured listeners are INSIDE,OUTSIDE"
    ) in out
    settings["security.inter.broker.protocol"] = "PLAINTEXT"
    settings["inter.broker.listener.name"] = "INSIDE"
    assert "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set." in _refusal(
        tmp_path, settings
    )
