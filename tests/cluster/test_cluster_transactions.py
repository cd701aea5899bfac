"""Transactions in a real cluster (etcd + three `kafkapy broker` processes).

The topic's partitions are led by three different brokers, so the
transaction coordinator writes most markers through WriteTxnMarkers to
other brokers. Clients are librdkafka (confluent-kafka); the coordinator
failure is a SIGKILL of its process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from kafkapy.client import BrokerConnection
from kafkapy.coordinator.coordinator import partition_for
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from tests.cluster.test_cluster import (
    FAST,
    admin,
    consume_all,
    create,
    full_isr,
    partitions,
)

TXN_PARTITIONS = 3
SETTINGS = {
    **FAST,
    "transaction.state.log.num.partitions": TXN_PARTITIONS,
    "transaction.state.log.min.isr": 2,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}


@pytest.fixture
def cluster(kafka_cluster_factory: Any, inter_broker: Any) -> LocalCluster:
    """With a PLAINTEXT and with a SASL_SSL inter-broker listener (conftest.py): markers and
    replication go through it."""
    return kafka_cluster_factory(3, SETTINGS, per_broker=inter_broker)


def spread_topic(cluster: LocalCluster, name: str) -> None:
    """3 partitions, RF=3, each led by a different broker."""
    create(cluster, name, 3, 3, **{"min.insync.replicas": "2"})
    wait_until(lambda: full_isr(cluster, name, 3), what=f"{name} fully in sync")
    assert sorted(p.leader for p in partitions(cluster, name).values()) == [1, 2, 3]


def txn_producer(cluster: LocalCluster, txn_id: str) -> Producer:
    p = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": 20000,
            "message.timeout.ms": 20000,
            "topic.metadata.refresh.interval.ms": 1000,
            "linger.ms": 1,
        }
    )
    p.init_transactions(30)
    return p


def values(msgs: list[Any]) -> list[bytes]:
    return sorted(m.value() for m in msgs)


def produce_batch(p: Producer, topic: str, prefix: str, n: int = 30) -> list[bytes]:
    out = [f"{prefix}-{i:03d}".encode() for i in range(n)]
    for i, v in enumerate(out):
        p.produce(topic, v, partition=i % 3)
    return out


def drain(cluster: LocalCluster, topic: str, isolation: str, settle: float = 2.0) -> list[bytes]:
    """Everything readable now: consume until nothing new arrives for `settle` seconds."""
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"drain-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.subscribe([topic])
    out: list[bytes] = []
    last = time.monotonic()
    deadline = last + 60
    try:
        while time.monotonic() - last < settle and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append(m.value())
            last = time.monotonic()
    finally:
        c.close()
    return sorted(out)


def idempotent_producer_ids(cluster: LocalCluster) -> list[tuple[int, int]]:
    """InitProducerId without a transactional id, asked of every broker: (error, producer id)."""

    async def ask(bootstrap: str) -> tuple[int, int]:
        host, port = bootstrap.rsplit(":", 1)
        conn = BrokerConnection(host, int(port), client_id="pid-probe", request_timeout=10)
        await conn.connect(5)
        try:
            r = await conn.request(InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=-1), 4)
            return r.error_code, r.producer_id
        finally:
            await conn.close()

    return [asyncio.run(ask(b.bootstrap)) for b in cluster.brokers.values() for _ in range(2)]


def test_commit_abort_and_consume_transform_produce(cluster: LocalCluster) -> None:
    # Producer ids come from etcd blocks: any broker hands out ids, never the same one twice.
    ids = idempotent_producer_ids(cluster)
    assert all(err == 0 for err, _ in ids) and len({pid for _, pid in ids}) == len(ids)
    spread_topic(cluster, "tx")
    p = txn_producer(cluster, "tx-writer")
    committed: list[bytes] = []
    everything: list[bytes] = []
    for prefix, commit in (("c0", True), ("a0", False), ("c1", True), ("a1", False)):
        p.begin_transaction()
        batch = produce_batch(p, "tx", prefix)
        everything += batch
        if commit:
            p.commit_transaction(30)
            committed += batch
        else:
            p.flush(30)  # the aborted records are in the logs before the abort marker
            p.abort_transaction(30)
    # read_committed sees exactly the committed records; read_uncommitted sees every record.
    assert values(consume_all(cluster, "tx", len(committed), **{"isolation.level": "read_committed"})) == sorted(
        committed
    )
    assert drain(cluster, "tx", "read_committed") == sorted(committed)
    assert values(consume_all(cluster, "tx", len(everything), **{"isolation.level": "read_uncommitted"})) == sorted(
        everything
    )
    # Markers reached every replica: the followers' logs end where the leader's does.
    for index in range(3):
        wait_until(
            lambda index=index: len({_log_size(cluster, n, "tx", index) for n in (1, 2, 3)}) == 1,
            what=f"replicas of tx-{index} identical",
        )

    # Consume-transform-produce: the group's offsets commit with the transaction, and only then.
    create(cluster, "out", 3, 3)
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "ctp",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["tx"])
    got: list[Any] = []
    deadline = time.monotonic() + 30
    while len(got) < len(committed) and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    assert len(got) == len(committed)
    ends = {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())}
    tps = [TopicPartition("tx", i) for i in range(3)]
    q = txn_producer(cluster, "ctp-writer")
    for commit in (False, True):
        q.begin_transaction()
        for m in got:
            q.produce("out", m.value().upper() + (b"!" if commit else b"?"), partition=m.partition())
        q.send_offsets_to_transaction(consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30)
        if commit:
            q.commit_transaction(30)
        else:
            q.flush(30)
            q.abort_transaction(30)
            assert all(tp.offset < 0 for tp in consumer.committed(tps, timeout=15))  # nothing committed
    assert {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=15)} == ends
    consumer.close()
    out = drain(cluster, "out", "read_committed")
    assert out == sorted(v.upper() + b"!" for v in committed)


def _log_size(cluster: LocalCluster, node_id: int, topic: str, index: int) -> int:
    d = cluster.brokers[node_id].data_dir / f"{topic}-{index}"
    return sum(p.stat().st_size for p in d.glob("*.log"))


def coordinator_of(cluster: LocalCluster, txn_id: str) -> int:
    p = partition_for(txn_id, TXN_PARTITIONS)
    return int(partitions(cluster, "__transaction_state")[p].leader)


def run_txn(cluster: LocalCluster, holder: list[Producer], txn_id: str, topic: str, prefix: str) -> list[bytes]:
    """One transaction, retried (abort, or a fresh producer on fatal errors) until it commits."""
    for attempt in range(20):
        p = holder[0]
        try:
            p.begin_transaction()
            batch = produce_batch(p, topic, f"{prefix}.{attempt}")
            p.commit_transaction(30)
            return batch
        except KafkaException as e:
            err: KafkaError = e.args[0]
            if err.fatal():
                holder[0] = txn_producer(cluster, txn_id)
            elif err.txn_requires_abort():
                try:
                    p.abort_transaction(30)
                except KafkaException:
                    holder[0] = txn_producer(cluster, txn_id)
            elif not err.retriable():
                holder[0] = txn_producer(cluster, txn_id)
            time.sleep(0.2)
    raise AssertionError(f"transaction {prefix} never committed")


def test_coordinator_sigkill(cluster: LocalCluster) -> None:
    spread_topic(cluster, "kx")
    txn_id = "survivor"
    holder = [txn_producer(cluster, txn_id)]
    wait_until(lambda: full_isr(cluster, "__transaction_state", 3), what="__transaction_state in sync")
    committed = run_txn(cluster, holder, txn_id, "kx", "before")

    # Between transactions: the coordinator dies, its partition moves, the producer goes on.
    victim = coordinator_of(cluster, txn_id)
    cluster.brokers[victim].kill()
    wait_until(lambda: coordinator_of(cluster, txn_id) not in (-1, victim), what="new transaction coordinator")
    committed += run_txn(cluster, holder, txn_id, "kx", "after-kill")
    cluster.brokers[victim].start()
    wait_until(
        lambda: full_isr(cluster, "__transaction_state", 3) and full_isr(cluster, "kx", 3),
        timeout=60,
        what="killed broker back in sync",
    )

    # During EndTxn: kill the coordinator while the commit is in flight. The producer either saw
    # the commit succeed (then its records must be visible) or retries until one does.
    victim = coordinator_of(cluster, txn_id)
    p = holder[0]
    p.begin_transaction()
    batch = produce_batch(p, "kx", "in-flight")
    p.flush(30)
    outcome: list[Any] = []

    def commit() -> None:
        try:
            p.commit_transaction(30)
            outcome.append(True)
        except KafkaException as e:
            outcome.append(e.args[0])

    t = threading.Thread(target=commit, daemon=True)
    t.start()
    cluster.brokers[victim].kill()
    t.join(60)
    assert outcome, "commit_transaction never returned"
    maybe: list[bytes] = []
    if outcome[0] is True:
        committed += batch
    else:
        # EndTxn may have been written before the kill: then the new coordinator finishes the commit.
        # A fresh producer (InitProducerId) waits for that, or aborts the transaction under a new epoch.
        maybe = batch
        holder[0] = txn_producer(cluster, txn_id)
    committed += run_txn(cluster, holder, txn_id, "kx", "after-endtxn")
    seen = drain(cluster, "kx", "read_committed", settle=3.0)
    in_flight = set(batch) & set(seen)
    assert not in_flight or in_flight == set(batch)  # all or nothing
    if maybe and in_flight:
        committed += maybe
    assert seen == sorted(committed)


def test_new_coordinator_finishes_a_prepared_commit(cluster: LocalCluster) -> None:
    """PrepareCommit written, a marker impossible (its partition's only replica is paused), then the
    coordinator dies: the broker taking over `__transaction_state` re-sends the markers once it can."""
    from confluent_kafka.admin import NewTopic

    txn_id = "prepared"
    p = txn_producer(cluster, txn_id)
    wait_until(lambda: full_isr(cluster, "__transaction_state", 3), what="__transaction_state in sync")
    victim = coordinator_of(cluster, txn_id)
    controller = int(admin(cluster).list_topics(timeout=10).controller_id)
    stuck_on = min((n for n in (1, 2, 3) if n != victim), key=lambda n: n == controller)
    a = admin(cluster)
    a.create_topics([NewTopic("stuck", 1, replication_factor=-1, replica_assignment=[[stuck_on]])])["stuck"].result(15)
    create(cluster, "fine", 1, 3)
    wait_until(
        lambda: partitions(cluster, "stuck")[0].leader == stuck_on and full_isr(cluster, "fine", 3), what="topics ready"
    )
    p.begin_transaction()
    batch = [f"v{i}".encode() for i in range(10)]
    for v in batch:
        p.produce("stuck", v)
        p.produce("fine", v)
    assert p.flush(30) == 0
    cluster.pause(stuck_on)
    try:
        p.commit_transaction(30)  # answered once PrepareCommit is replicated; the markers wait
        cluster.brokers[victim].kill()
        wait_until(lambda: coordinator_of(cluster, txn_id) not in (-1, victim, stuck_on), what="new coordinator")
    finally:
        cluster.resume(stuck_on)
    heir = coordinator_of(cluster, txn_id)
    for topic in ("stuck", "fine"):
        got = consume_all(cluster, topic, len(batch), timeout=40, **{"isolation.level": "read_committed"})
        assert values(got) == sorted(batch), topic
    resumed = [
        ln
        for ln in cluster.brokers[heir].log_path.read_text().splitlines()
        if "resuming transaction completion" in ln and "transactional_id=prepared" in ln
    ]
    assert resumed  # the heir found PrepareCommit on load and finished it
