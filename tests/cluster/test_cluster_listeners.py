"""A 3-broker cluster (etcd) with two named listeners per broker.

OUTSIDE (listed first, on 127.0.0.2) is for clients; INSIDE (127.0.0.1) is
`inter.broker.listener.name`. A client on either listener is told every
broker's address on that listener; replica fetchers connect only to INSIDE
addresses (before named listeners, brokers used the first advertised
listener: OUTSIDE here); etcd holds every endpoint, host/port the inter-broker
one; a registration in the older host/port-only format still reads.
"""

from __future__ import annotations

import json
import re
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkapy.cluster.etcd_metadata import _broker_from_registration
from kafkapy.cluster.metadata import BrokerInfo, Endpoint
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.primitives import Message
from kafkapy.testing import free_port

INSIDE_HOST, OUTSIDE_HOST = "127.0.0.1", "127.0.0.2"
FAST = {
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
}


def ask(host: str, port: int, request: Message, version: int) -> Any:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(encode_request(request, version, 3, client_id="listener-test"))
        head = s.recv(4, socket.MSG_WAITALL)
        (size,) = struct.unpack(">i", head)
        return decode_response(request.API_KEY, version, s.recv(size, socket.MSG_WAITALL))[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, dict[int, dict[str, int]]]]:
    c = LocalCluster(tmp_path_factory.mktemp("listeners"), 0, dict(FAST)).start()
    ports: dict[int, dict[str, int]] = {}
    try:
        for node in (1, 2, 3):
            inside, outside = free_port(INSIDE_HOST), free_port(OUTSIDE_HOST)
            ports[node] = {"INSIDE": inside, "OUTSIDE": outside}
            both = f"OUTSIDE://{OUTSIDE_HOST}:{outside},INSIDE://{INSIDE_HOST}:{inside}"
            b = c.add_broker(
                node,
                start=False,
                settings={
                    "listeners": both,
                    "advertised.listeners": both,
                    "listener.security.protocol.map": "INSIDE:PLAINTEXT,OUTSIDE:PLAINTEXT",
                    "inter.broker.listener.name": "INSIDE",
                },
            )
            b.port = inside
            b.start()
        yield c, ports
    finally:
        c.stop()


def _addresses(ports: dict[int, dict[str, int]], listener: str) -> list[tuple[int, str, int]]:
    host = INSIDE_HOST if listener == "INSIDE" else OUTSIDE_HOST
    return [(node, host, p[listener]) for node, p in sorted(ports.items())]


def test_each_listener_answers_with_its_own_addresses(cluster: tuple[LocalCluster, dict[int, dict[str, int]]]) -> None:
    _, ports = cluster
    for listener in ("INSIDE", "OUTSIDE"):
        want = _addresses(ports, listener)
        for _, host, port in want:
            wait_until(
                lambda h=host, p=port: len(ask(h, p, MetadataRequest(topics=None), 12).brokers) == 3,
                what="3 brokers in metadata",
            )
            md = ask(host, port, MetadataRequest(topics=None), 12)
            assert sorted((b.node_id, b.host, b.port) for b in md.brokers) == want
            dc = ask(host, port, DescribeClusterRequest(), 0)
            assert sorted((b.broker_id, b.host, b.port) for b in dc.brokers) == want
            fc = ask(host, port, FindCoordinatorRequest(coordinator_keys=["g1", "g2", "g3"]), 4)
            for coord in fc.coordinators:
                if coord.error_code == 0:
                    assert (coord.node_id, coord.host, coord.port) in want


def test_registration_holds_every_endpoint(cluster: tuple[LocalCluster, dict[int, dict[str, int]]]) -> None:
    c, ports = cluster
    keys = c.etcd_keys()
    for node, p in ports.items():
        reg = json.loads(keys[f"brokers/{node}"])
        assert (reg["host"], reg["port"]) == (INSIDE_HOST, p["INSIDE"])
        assert [(e["listener"], e["host"], e["port"], e["security_protocol"]) for e in reg["endpoints"]] == [
            ("OUTSIDE", OUTSIDE_HOST, p["OUTSIDE"], "PLAINTEXT"),
            ("INSIDE", INSIDE_HOST, p["INSIDE"], "PLAINTEXT"),
        ]


def test_older_registration_format_still_reads() -> None:
    old = _broker_from_registration(4, {"host": "h", "port": 9092, "rack": None})
    assert old == BrokerInfo(4, "h", 9092, None, {})
    assert old.endpoint("ANY") == old.endpoint(None) == Endpoint("h", 9092)
    new = _broker_from_registration(
        5,
        {
            "host": "i",
            "port": 1,
            "endpoints": [
                {"listener": "A", "host": "a", "port": 2, "security_protocol": "PLAINTEXT"},
                {"listener": "I", "host": "i", "port": 1},
            ],
        },
    )
    assert new.endpoint("A") == Endpoint("a", 2)
    assert new.endpoint("I") == Endpoint("i", 1)
    assert new.endpoint(None) == Endpoint("a", 2)  # the first advertised listener
    assert new.endpoint("B") is None


def test_clients_on_both_listeners_and_replication_over_inside(
    cluster: tuple[LocalCluster, dict[int, dict[str, int]]],
) -> None:
    c, ports = cluster
    outside = ",".join(f"{h}:{p}" for _, h, p in _addresses(ports, "OUTSIDE"))
    inside = ",".join(f"{h}:{p}" for _, h, p in _addresses(ports, "INSIDE"))
    admin = AdminClient({"bootstrap.servers": outside})
    admin.create_topics([NewTopic("two-listeners", 3, 3, config={"min.insync.replicas": "3"})])["two-listeners"].result(
        15
    )
    md = admin.list_topics(timeout=10)
    assert sorted((b.host, b.port) for b in md.brokers.values()) == sorted(
        (h, p) for _, h, p in _addresses(ports, "OUTSIDE")
    )
    # acks=all with min.insync.replicas=3: every record reached both followers
    p = Producer({"bootstrap.servers": outside, "acks": "all", "enable.idempotence": True})
    errors: list[Any] = []
    for i in range(300):
        p.produce("two-listeners", value=b"v%d" % i, partition=i % 3, on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0
    assert errors == []
    consumer = Consumer({"bootstrap.servers": inside, "group.id": "inside-reader", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("two-listeners", i, 0) for i in range(3)])
    got: list[bytes] = []
    wait_until(lambda: _poll_into(consumer, got) >= 300, timeout=30, what="300 records via INSIDE")
    consumer.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(300))
    # every replica fetcher connected to an INSIDE address, none to OUTSIDE
    connected: list[str] = []
    for b in c.brokers.values():
        connected += re.findall(r"replica fetcher connected.*?address=([\d.:]+)", b.log_path.read_text())
    inside_addresses = {f"{h}:{p}" for _, h, p in _addresses(ports, "INSIDE")}
    assert connected and set(connected) <= inside_addresses


def _poll_into(consumer: Consumer, out: list[bytes]) -> int:
    out.extend(m.value() for m in consumer.consume(500, 0.5) if m.error() is None)
    return len(out)
