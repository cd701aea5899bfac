"""The failover scenario of interop/test_cluster_failover.py on 3-broker clusters whose
inter-broker listener is authenticated and encrypted.

Each broker has two listeners (interop/secure_cluster.py): CLIENT (PLAINTEXT, where the test's
clients connect) and INTERNAL (`inter.broker.listener.name`, TLS with certificates from
interop/certs.py): replica fetchers and transaction markers reach the other brokers only there.

- `scram`: INTERNAL is SASL_SSL with SCRAM-SHA-512, no authorizer. The brokers start before the
  broker user exists; its credential is then added with `kafkapy users` through CLIENT (etcd,
  read by every broker). The brokers' logs show it logged in on INTERNAL. Sessions last 1 s
  (`connections.max.reauth.ms`): followers open a new connection in time, none is closed for an
  expired session.
- `acl`: INTERNAL is SASL_SSL with PLAIN, the StandardAuthorizer with `super.users=User:broker`;
  the clients (User:ANONYMOUS on CLIENT) get topic, group and transactional-id ACLs, created by
  the broker user over INTERNAL, but no ClusterAction: their follower Fetch and WriteTxnMarkers
  are refused, the brokers' own pass. A transaction over three partitions led by three brokers
  commits (markers from its coordinator to the other two).
- `mtls`: INTERNAL is SSL with `ssl.client.auth=required`; each broker's certificate maps to
  User:broker (`ssl.principal.mapping.rules`), the only super user; acks=all with
  `min.insync.replicas=3` completes.

In `scram`, every client of interop/test_cluster_failover.py runs its scenario: a partition's
leader is SIGKILLed while the client produces with acks=all; it carries on with the new leader,
and every acknowledged record is read back exactly once. In `acl`, librdkafka does the same.
tests/cluster runs its own failover tests (leaders killed in turn, controller and group and
transaction coordinators killed, rolling restart, paused follower) on the `plain` variant too.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from interop import test_cluster_failover as failover
from interop.certs import Pki, make_pki
from interop.secure_cluster import BROKER_PASSWORD, BROKER_USER, HOST, REAUTH_MS, SecureBrokers, authenticated_brokers
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.primitives import Message


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=())


def _start(root: Path, variant: str, pki: Pki) -> tuple[LocalCluster, dict[int, int]]:
    """Three brokers; returns the cluster (each broker's `port`: CLIENT) and the INTERNAL ports."""
    brokers = SecureBrokers(variant, pki)
    c = LocalCluster(root, 3, dict(failover.SETTINGS), per_broker=brokers)
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    return c, brokers.internal


def _internal_admin(pki: Pki, internal: dict[int, int], mechanism: str) -> AdminClient:
    """The broker user on INTERNAL (SASL_SSL)."""
    return AdminClient(
        {
            "bootstrap.servers": ",".join(f"{HOST}:{p}" for p in internal.values()),
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(pki.ca),
            "sasl.mechanism": mechanism,
            "sasl.username": BROKER_USER,
            "sasl.password": BROKER_PASSWORD,
        }
    )


@pytest.fixture(scope="module")
def scram_cluster(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[LocalCluster]:
    c, _ = _start(tmp_path_factory.mktemp("failover-scram"), "scram", pki)
    try:
        cmd = [sys.executable, "-m", "kafkapy", "users", "add", BROKER_USER, "--mechanism", "SCRAM-SHA-512",
               "--password", BROKER_PASSWORD, "-b", c.brokers[1].bootstrap]  # fmt: skip
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def acl_cluster(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[LocalCluster, dict[int, int]]]:
    c, internal = _start(tmp_path_factory.mktemp("failover-acl"), "acl", pki)
    try:
        admin = _internal_admin(pki, internal, "PLAIN")
        anyone = {"principal": "User:ANONYMOUS", "host": "*", "permission_type": AclPermissionType.ALLOW}
        bindings = [
            AclBinding(ResourceType.TOPIC, "failover-", ResourcePatternType.PREFIXED, operation=AclOperation.ALL, **anyone),
            AclBinding(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, operation=AclOperation.ALL, **anyone),
            AclBinding(ResourceType.TRANSACTIONAL_ID, "*", ResourcePatternType.LITERAL, operation=AclOperation.ALL, **anyone),
        ]  # fmt: skip
        for f in admin.create_acls(bindings, request_timeout=15).values():
            f.result()
        yield c, internal
    finally:
        c.stop()


# ---------------------------------------------------------------- failover


@pytest.mark.parametrize("client", list(failover.CLIENTS))
def test_failover_with_scram_sasl_ssl_between_brokers(scram_cluster: LocalCluster, client: str) -> None:
    failover.test_client_produces_and_consumes_through_a_leader_failover(scram_cluster, client)
    assert len(authenticated_brokers(scram_cluster)) >= 2, scram_cluster.log_tails()


def test_fetchers_log_in_again_before_their_sessions_expire(scram_cluster: LocalCluster) -> None:
    """Sessions on INTERNAL last REAUTH_MS: acks=all writes spread over several sessions all complete,
    and the followers' connections are replaced in time (none closed by the leader for an expired
    session)."""
    topic = "failover-sessions"
    failover._ready(scram_cluster, topic)
    logs = {
        n: b.log_path.read_text(errors="replace").count("replica fetcher connected")
        for n, b in scram_cluster.brokers.items()
    }
    p = Producer({"bootstrap.servers": scram_cluster.bootstrap, "acks": "all", "linger.ms": 0})
    errors: list[object] = []
    deadline = time.monotonic() + 3.5 * REAUTH_MS / 1000
    while time.monotonic() < deadline:
        p.produce(topic, b"x", partition=0, on_delivery=lambda err, _m: errors.append(err) if err else None)
        p.flush(10)
        time.sleep(0.05)
    assert not errors, errors[:3]
    texts = {n: b.log_path.read_text(errors="replace") for n, b in scram_cluster.brokers.items()}
    assert not [n for n, text in texts.items() if "authentication session expired" in text]
    renewed = [n for n, text in texts.items() if text.count("replica fetcher connected") >= logs[n] + 2]
    assert len(renewed) >= 2, texts


def test_failover_with_an_authorizer_and_the_broker_as_super_user(
    acl_cluster: tuple[LocalCluster, dict[int, int]],
) -> None:
    c, _ = acl_cluster
    failover.test_client_produces_and_consumes_through_a_leader_failover(c, "librdkafka")


# ---------------------------------------------------------------- ClusterAction


def _ask(port: int, request: Message, api_version: int) -> Any:
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(encode_request(request, api_version, 7, client_id="not-a-broker"))
        (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        return decode_response(request.API_KEY, api_version, s.recv(size, socket.MSG_WAITALL))[1]


def test_clients_without_cluster_action_cannot_act_as_brokers(acl_cluster: tuple[LocalCluster, dict[int, int]]) -> None:
    from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
    from kafkapy.protocol.messages.write_txn_markers_request import (
        WritableTxnMarker,
        WritableTxnMarkerTopic,
        WriteTxnMarkersRequest,
    )

    c, _ = acl_cluster
    topic = "failover-cluster-action"
    failover._ready(c, topic)
    leader = failover._partition(c, topic).leader
    port = c.brokers[leader].port
    fetch = FetchRequest(
        replica_id=2,
        max_wait_ms=0,
        min_bytes=1,
        topics=[FetchTopic(topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1024)])],
    )  # fmt: skip
    resp = _ask(port, fetch, 11)
    assert resp.responses[0].partitions[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    markers = WriteTxnMarkersRequest(
        markers=[
            WritableTxnMarker(producer_id=1, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
                              topics=[WritableTxnMarkerTopic(name=topic, partition_indexes=[0])])
        ]
    )  # fmt: skip
    resp = _ask(port, markers, 1)
    assert resp.markers[0].topics[0].partitions[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_transaction_markers_cross_the_internal_listener(acl_cluster: tuple[LocalCluster, dict[int, int]]) -> None:
    c, _ = acl_cluster
    topic = "failover-txn"
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(15)
    wait_until(
        lambda: len({p.leader for p in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()}) == 3,
        timeout=30,
        what="a leader per broker",
    )
    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": "secure-txn", "linger.ms": 1})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, b"txn-%d" % i, partition=i % 3)
    p.commit_transaction(30)
    consumer = Consumer(
        {"bootstrap.servers": c.bootstrap, "group.id": "secure-txn-check", "isolation.level": "read_committed"}
    )
    consumer.assign([TopicPartition(topic, i, 0) for i in range(3)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < 30 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value() or b"")
    finally:
        consumer.close()
    assert sorted(got) == sorted(b"txn-%d" % i for i in range(30))  # visible only once every marker is written


# ---------------------------------------------------------------- mutual TLS


@pytest.fixture(scope="module")
def mtls_cluster(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[LocalCluster, dict[int, int]]]:
    c, internal = _start(tmp_path_factory.mktemp("secure-mtls"), "mtls", pki)
    try:
        yield c, internal
    finally:
        c.stop()


def test_mutual_tls_between_brokers_with_the_mapped_principal_as_super_user(
    mtls_cluster: tuple[LocalCluster, dict[int, int]], pki: Pki
) -> None:
    """INTERNAL is SSL with ssl.client.auth=required: each broker presents its keystore's certificate,
    mapped to User:broker by ssl.principal.mapping.rules, the only super user (the older
    AclAuthorizer class name); acks=all with min.insync.replicas=3 needs both followers."""
    _, internal = mtls_cluster
    conf = {
        "bootstrap.servers": ",".join(f"{HOST}:{p}" for p in internal.values()),
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki.ca),
        "ssl.certificate.location": str(pki.broker_crt),
        "ssl.key.location": str(pki.broker_key),
    }
    topic = "mtls-replicated"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "3"})])[topic].result(15)
    p = Producer({**conf, "acks": "all", "linger.ms": 1, "message.timeout.ms": 20000})
    errors: list[object] = []
    for i in range(60):
        p.produce(topic, b"m-%d" % i, partition=i % 3, on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(30) == 0 and not errors, errors[:3]
    parts = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    assert all(len(part.isrs) == 3 for part in parts)
