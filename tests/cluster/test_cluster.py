"""A real cluster on loopback: etcd and three `kafkapy broker` processes.

Clients are librdkafka (confluent-kafka); faults are signals to the broker
processes (SIGKILL, SIGSTOP/SIGCONT), as an operator or a crash would do.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop.secure_cluster import authenticated_brokers
from kafkapy.local_cluster import LocalCluster, wait_until

FAST = {
    "broker.session.timeout.ms": 3000,
    "replica.lag.time.max.ms": 3000,
    "offsets.topic.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    "auto.leader.rebalance.enable": False,
}


# One admin client per cluster, kept to the end of the session: a client freed while one of
# its requests is in flight (a .result() that timed out) is destroyed on librdkafka's own
# thread when that request completes, and librdkafka aborts the process.
_ADMINS: dict[str, AdminClient] = {}


def admin(cluster: LocalCluster, name: str = "") -> AdminClient:
    """The cluster's admin client (another one, kept as long, for each `name`)."""
    key = f"{cluster.root}{name}"
    if key not in _ADMINS:
        bootstrap = ",".join(b.bootstrap for b in cluster.brokers.values())
        _ADMINS[key] = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    return _ADMINS[key]


def partitions(cluster: LocalCluster, topic: str) -> dict[int, Any]:
    md = admin(cluster).list_topics(topic, timeout=10)
    return dict(md.topics[topic].partitions)


def create(cluster: LocalCluster, topic: str, parts: int, rf: int, **configs: str) -> None:
    a = admin(cluster)
    a.create_topics([NewTopic(topic, parts, rf, config=configs)])[topic].result(15)
    wait_until(lambda: len(partitions(cluster, topic)) == parts, what=f"{topic} in metadata")


def full_isr(cluster: LocalCluster, topic: str, rf: int) -> bool:
    return all(len(p.isrs) == rf and p.leader >= 0 for p in partitions(cluster, topic).values())


def segment_bytes(cluster: LocalCluster, node_id: int, topic: str, partition: int) -> bytes:
    d: Path = cluster.brokers[node_id].data_dir / f"{topic}-{partition}"
    return b"".join(p.read_bytes() for p in sorted(d.glob("*.log")))


def consume_all(cluster: LocalCluster, topic: str, expected: int, timeout: float = 60.0, **conf: Any) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"check-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **conf,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    assert m.error().retriable(), m.error()
                continue
            out.append(m)
    finally:
        c.close()
    return out


@pytest.fixture
def cluster(kafka_cluster_factory: Any, inter_broker: Any) -> LocalCluster:
    """Each test here runs with a PLAINTEXT and with a SASL_SSL inter-broker listener (conftest.py)."""
    return kafka_cluster_factory(3, FAST, per_broker=inter_broker)


def test_three_brokers_form_a_cluster_and_replicate(cluster: LocalCluster, inter_broker: Any) -> None:
    md = admin(cluster).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3]
    assert md.controller_id in (1, 2, 3)
    create(cluster, "rep", 6, 3)
    parts = partitions(cluster, "rep")
    assert sorted(p.leader for p in parts.values()) == [1, 1, 2, 2, 3, 3]  # leaders spread evenly
    assert all(sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3] for p in parts.values())

    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(3000):
        p.produce("rep", f"v{i}".encode(), key=f"k{i}".encode())
    assert p.flush(30) == 0
    got = consume_all(cluster, "rep", 3000)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(3000))
    # Every replica holds byte-identical segments once followers caught up.
    for index in range(6):
        wait_until(
            lambda: len({segment_bytes(cluster, n, "rep", index) for n in (1, 2, 3)}) == 1,
            what=f"replicas of rep-{index} identical",
        )
    assert any(len(segment_bytes(cluster, 1, "rep", i)) > 0 for i in range(6))
    # The key layout in etcd: brokers, controller, the topic's record with every partition's replicas
    # (partition-state/<topic id>/<i> keys appear once a partition's leader or ISR changes).
    keys = cluster.etcd_keys()
    assert {"layout", "brokers/1", "brokers/2", "brokers/3", "controller", "topics/rep"} <= set(keys)
    assert keys["layout"] == "2"
    assert len(json.loads(keys["topics/rep"])["replicas"]) == 6
    if inter_broker is not None:  # the followers of every leader logged in on INTERNAL
        assert authenticated_brokers(cluster) == {1, 2, 3}, cluster.log_tails()


def test_replication_factor_above_live_brokers_is_refused(cluster: LocalCluster) -> None:
    a = admin(cluster)
    fut = a.create_topics([NewTopic("too-many", 1, 4)])["too-many"]
    with pytest.raises(Exception) as info:
        fut.result(15)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_non_leader_answers_not_leader(cluster: LocalCluster) -> None:
    create(cluster, "nl", 1, 2)
    part = partitions(cluster, "nl")[0]
    follower = next(n for n in part.replicas if n != part.leader)
    # A producer bootstrapped only at the follower still gets routed to the leader.
    p = Producer({"bootstrap.servers": cluster.brokers[follower].bootstrap, "acks": "all"})
    p.produce("nl", b"x")
    assert p.flush(15) == 0


@dataclass
class History:
    """What the producer was told: value -> (partition, offset) for every acknowledged record."""

    acked: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, err: Any, msg: Any) -> None:
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.acked[msg.value()] = (msg.partition(), msg.offset())


def run_producer(cluster: LocalCluster, topic: str, history: History, stop: threading.Event, **conf: Any) -> None:
    """An idempotent acks=all producer of sequential values until `stop`, recording what it is told."""
    p = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 60000,
            "topic.metadata.refresh.interval.ms": 1000,
            **conf,
        }
    )
    i = 0
    while not stop.is_set():
        try:
            p.produce(topic, f"{i:08d}".encode(), on_delivery=history.callback)
            history.sent += 1
            i += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
        time.sleep(0.001)
    p.flush(90)


def test_sigkill_every_leader_in_turn_loses_nothing(cluster: LocalCluster) -> None:
    create(cluster, "hist", 3, 3, **{"min.insync.replicas": "2"})
    history = History()
    stop = threading.Event()
    producer = threading.Thread(target=run_producer, args=(cluster, "hist", history, stop), daemon=True)
    producer.start()
    try:
        wait_until(lambda: len(history.acked) > 200, what="first acknowledgements")
        for index in range(3):
            leader = partitions(cluster, "hist")[index].leader
            before = len(history.acked)
            cluster.brokers[leader].kill()
            # The clients recover by themselves: acknowledgements continue with a new leader.
            wait_until(
                lambda: partitions(cluster, "hist")[index].leader not in (-1, leader),
                timeout=30,
                what=f"new leader of hist-{index}",
            )
            wait_until(lambda: len(history.acked) > before + 200, timeout=60, what="acknowledgements after failover")
            cluster.brokers[leader].start()
            wait_until(lambda: full_isr(cluster, "hist", 3), timeout=60, what="killed broker back in the ISR")
    finally:
        stop.set()
        producer.join(120)
    assert not history.errors, history.errors[:5]
    assert len(history.acked) == history.sent
    check_history(cluster, "hist", history, **{"isolation.level": "read_committed"})


def check_history(cluster: LocalCluster, topic: str, history: History, **conf: Any) -> None:
    """Every acknowledged record read back exactly once, at the offset the producer was told, in order."""
    got = consume_all(cluster, topic, len(history.acked), **conf)
    seen: dict[bytes, tuple[int, int]] = {}
    for m in got:
        assert m.value() not in seen, f"duplicate {m.value()!r}"
        seen[m.value()] = (m.partition(), m.offset())
    assert seen == history.acked
    per_partition: dict[int, list[bytes]] = {}
    for m in sorted(got, key=lambda m: (m.partition(), m.offset())):
        per_partition.setdefault(m.partition(), []).append(m.value())
    assert all(v == sorted(v) for v in per_partition.values())


def test_paused_follower_leaves_and_rejoins_the_isr(kafka_cluster_factory: Any, inter_broker: Any) -> None:
    # Lag detection, not the etcd session: the session outlives the lag time.
    settings = {**FAST, "broker.session.timeout.ms": 30000, "replica.lag.time.max.ms": 2000}
    cluster = kafka_cluster_factory(3, settings, per_broker=inter_broker)
    create(cluster, "lag", 1, 3, **{"min.insync.replicas": "2"})
    part = partitions(cluster, "lag")[0]
    follower = next(n for n in part.replicas if n != part.leader and n != cluster_controller(cluster))
    p = Producer(
        {"bootstrap.servers": cluster.brokers[part.leader].bootstrap, "acks": "all", "message.timeout.ms": 30000}
    )
    p.produce("lag", b"warm-up")  # connections and metadata before the pause
    assert p.flush(15) == 0
    cluster.pause(follower)
    try:
        # As in Kafka, a follower is out of sync once the leader has records it has not fetched for
        # replica.lag.time.max.ms; acks=all writes wait for the shrink, then complete with two replicas.
        t0 = time.monotonic()
        for i in range(100):
            p.produce("lag", f"{i}".encode())
        p.poll(0)
        wait_until(lambda: follower not in partitions(cluster, "lag")[0].isrs, timeout=20, what="ISR shrink")
        shrink_s = time.monotonic() - t0
        assert shrink_s < 10
        assert p.flush(20) == 0
    finally:
        cluster.resume(follower)
    wait_until(lambda: follower in partitions(cluster, "lag")[0].isrs, timeout=30, what="ISR expansion")
    wait_until(lambda: len({segment_bytes(cluster, n, "lag", 0) for n in (1, 2, 3)}) == 1, what="follower caught up")


def cluster_controller(cluster: LocalCluster) -> int:
    return int(admin(cluster).list_topics(timeout=10).controller_id)


def test_killing_the_controller_elects_another(cluster: LocalCluster) -> None:
    first = cluster_controller(cluster)
    create(cluster, "ctl", 3, 3)
    t0 = time.monotonic()
    cluster.brokers[first].kill()
    new = wait_until(
        lambda: (c := cluster_controller(cluster)) not in (first, -1) and c,
        timeout=20,
        what="a new controller",
    )
    elapsed = time.monotonic() - t0
    assert new != first and elapsed < 15
    # The new controller moved leadership off the dead broker, and the cluster still serves.
    wait_until(
        lambda: all(p.leader not in (first, -1) for p in partitions(cluster, "ctl").values()), what="leaders moved"
    )
    create(cluster, "after", 2, 2)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    p.produce("after", b"ok")
    assert p.flush(15) == 0


def test_consumer_group_commits_survive_coordinator_failover(cluster: LocalCluster) -> None:
    create(cluster, "grp", 3, 3)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(300):
        p.produce("grp", f"{i}".encode(), partition=i % 3)
    assert p.flush(15) == 0
    conf = {
        "bootstrap.servers": cluster.bootstrap,
        "group.id": "g1",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    c = Consumer(conf)
    c.subscribe(["grp"])
    n = 0
    deadline = time.monotonic() + 30
    while n < 300 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            n += 1
    assert n == 300
    c.commit(asynchronous=False)
    c.close()
    # Kill the group's coordinator: the offsets live on, replicated, on the new leader of its partition.
    from confluent_kafka import ConsumerGroupTopicPartitions

    desc = admin(cluster).describe_consumer_groups(["g1"])["g1"].result(15)
    coordinator = desc.coordinator.id
    cluster.brokers[coordinator].kill()
    # The shared admin client remembers the dead coordinator (librdkafka's coordinator cache): ask
    # through a new client once the killed broker leads no __consumer_offsets partition.
    assert wait_until(
        lambda: all(p.leader != coordinator for p in partitions(cluster, "__consumer_offsets").values()),
        timeout=30,
        what="__consumer_offsets leaders moved off the killed broker",
    )

    def committed() -> list[int]:
        a = admin(cluster, "after the coordinator failover")
        res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g1")])["g1"].result(10)
        return sorted(tp.offset for tp in res.topic_partitions or [] if tp.offset >= 0)

    assert wait_until(lambda: committed() == [100, 100, 100], timeout=40, what="committed offsets after failover")
    c = Consumer(conf)
    c.assign([TopicPartition("grp", i) for i in range(3)])
    assert [tp.offset for tp in c.committed([TopicPartition("grp", i) for i in range(3)], timeout=15)] == [
        100,
        100,
        100,
    ]
    c.close()
    # DeleteGroups on the new coordinator: answered once the tombstones are replicated.
    admin(cluster, "after the coordinator failover").delete_consumer_groups(["g1"])["g1"].result(15)
    assert committed() == []
