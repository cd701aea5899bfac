"""Partition reassignment (KIP-455), throttles and leader elections on a real cluster.

etcd + `kafkapy broker` processes on loopback; the data path is librdkafka
(confluent-kafka), the admin calls kafkapy's own client (confluent-kafka's
Python AdminClient has no reassignment calls).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import NewTopic

from kafkapy.client import (
    ELECTION_UNCLEAN,
    RESOURCE_BROKER,
    KafkaClient,
    OngoingReassignment,
    PartitionResult,
)
from kafkapy.cluster.assignment import plan_rebalance, summarize_plan
from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo
from kafkapy.cluster.reassignment import (
    PREFERRED,
    UNCLEAN,
    cancel_state,
    check_target,
    completion_state,
    election_state,
    start_state,
)
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode
from tests.cluster.test_cluster import (
    FAST,
    History,
    admin,
    consume_all,
    full_isr,
    partitions,
    run_producer,
    segment_bytes,
)

T = TypeVar("T")
THROTTLED = "follower.replication.throttled.rate"


def call(cluster: LocalCluster, op: Callable[[KafkaClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with KafkaClient(cluster.bootstrap) as client:
            return await op(client)

    return asyncio.run(run())


def reassign(
    cluster: LocalCluster, moves: Mapping[tuple[str, int], Sequence[int] | None]
) -> dict[tuple[str, int], PartitionResult]:
    return call(cluster, lambda c: c.alter_partition_reassignments(moves))


def ongoing(cluster: LocalCluster) -> dict[tuple[str, int], OngoingReassignment]:
    return call(cluster, lambda c: c.list_partition_reassignments())


def elect(cluster: LocalCluster, parts: Sequence[tuple[str, int]] | None) -> dict[tuple[str, int], PartitionResult]:
    return call(cluster, lambda c: c.elect_leaders(parts))


def set_throttle(cluster: LocalCluster, broker: int, rate: int | None) -> None:
    if rate is None:
        call(cluster, lambda c: c.alter_configs(str(broker), delete_configs=[THROTTLED], resource_type=RESOURCE_BROKER))
    else:
        call(cluster, lambda c: c.alter_configs(str(broker), {THROTTLED: str(rate)}, resource_type=RESOURCE_BROKER))


def create_assigned(cluster: LocalCluster, topic: str, assignment: list[list[int]]) -> None:
    a = admin(cluster)  # kept alive until the result arrives
    a.create_topics([NewTopic(topic, len(assignment), replica_assignment=assignment)])[topic].result(15)
    wait_until(lambda: full_isr(cluster, topic, len(assignment[0])), what=f"{topic} in sync")


def log_dir(cluster: LocalCluster, node_id: int, topic: str, index: int) -> Path:
    return cluster.brokers[node_id].data_dir / f"{topic}-{index}"


def check_history(cluster: LocalCluster, topic: str, history: History) -> None:
    """Every acknowledged record exactly once, at the offset the producer was told."""
    assert not history.errors, history.errors[:5]
    assert len(history.acked) == history.sent
    got = consume_all(cluster, topic, len(history.acked))
    values = [m.value() for m in got]
    assert len(values) == len(set(values)), "duplicates"
    assert set(values) == set(history.acked)
    assert all(history.acked[m.value()] == (m.partition(), m.offset()) for m in got)


@pytest.fixture
def cluster(kafka_cluster_factory: Any) -> LocalCluster:
    return kafka_cluster_factory(3, FAST)


def test_move_replicas_while_producing_with_throttle_and_cancel(cluster: LocalCluster) -> None:
    topic = "move"
    create_assigned(cluster, topic, [[1, 2], [1, 2]])
    history = History()
    stop = threading.Event()
    producer = threading.Thread(target=run_producer, args=(cluster, topic, history, stop), daemon=True)
    producer.start()
    try:
        wait_until(lambda: len(history.acked) > 500, what="first acknowledgements")
        # bad input first: nothing changes
        bad = reassign(cluster, {(topic, 0): [2, 9], (topic, 1): [2, 2], ("nope", 0): [1], (topic, 7): [1, 2]})
        assert bad[(topic, 0)].error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        assert bad[(topic, 1)].error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        assert bad[("nope", 0)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert bad[(topic, 7)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert reassign(cluster, {(topic, 0): None})[(topic, 0)].error_code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
        assert ongoing(cluster) == {}

        # Throttled to 1 byte/s, broker 3 cannot catch up: the move stays in flight.
        set_throttle(cluster, 3, 1)
        described = call(cluster, lambda c: c.describe_configs("3", RESOURCE_BROKER, [THROTTLED]))
        assert [(e.name, e.value, e.source) for e in described] == [(THROTTLED, "1", "DYNAMIC_BROKER_CONFIG")]
        assert reassign(cluster, {(topic, 0): [2, 3], (topic, 1): [3, 2]}) == {
            (topic, 0): PartitionResult(ErrorCode.NONE),
            (topic, 1): PartitionResult(ErrorCode.NONE),
        }
        now = ongoing(cluster)
        assert now[(topic, 0)] == OngoingReassignment(replicas=[2, 3, 1], adding=[3], removing=[1])
        assert now[(topic, 1)] == OngoingReassignment(replicas=[3, 2, 1], adding=[3], removing=[1])
        wait_until(lambda: log_dir(cluster, 3, topic, 0).exists(), what="new replica's log")
        time.sleep(1.0)  # a second of throttled fetching: still far behind
        assert partitions(cluster, topic)[0].replicas == [2, 3, 1]

        # Cancel partition 1: back to [1, 2], broker 3 drops its copy.
        assert reassign(cluster, {(topic, 1): None})[(topic, 1)].ok
        wait_until(lambda: (topic, 1) not in ongoing(cluster), what="cancelled")
        assert sorted(partitions(cluster, topic)[1].replicas) == [1, 2]  # as in Kafka, target order first
        wait_until(lambda: not log_dir(cluster, 3, topic, 1).exists(), what="cancelled replica's log removed")

        # Lift the throttle: partition 0 completes while the producer keeps going.
        set_throttle(cluster, 3, None)
        wait_until(lambda: ongoing(cluster) == {}, timeout=30, what="reassignment complete")
        p0 = partitions(cluster, topic)[0]
        assert p0.replicas == [2, 3] and sorted(p0.isrs) == [2, 3] and p0.leader in (2, 3)
        wait_until(lambda: not log_dir(cluster, 1, topic, 0).exists(), what="old replica's log removed")
        before = len(history.acked)
        wait_until(lambda: len(history.acked) > before + 300, what="acknowledgements after the move")
    finally:
        stop.set()
        producer.join(120)
    check_history(cluster, topic, history)
    wait_until(
        lambda: segment_bytes(cluster, 2, topic, 0) == segment_bytes(cluster, 3, topic, 0),
        what="new replica byte-identical",
    )
    assert len(segment_bytes(cluster, 3, topic, 0)) > 0


def test_preferred_election_after_failover(kafka_cluster_factory: Any) -> None:
    cluster = kafka_cluster_factory(3, {**FAST, "auto.leader.rebalance.enable": False})
    topic = "pref"
    create_assigned(cluster, topic, [[1, 2, 3]])
    create_assigned(cluster, "away", [[1, 2]])
    assert elect(cluster, [(topic, 0)])[(topic, 0)].error_code == ErrorCode.ELECTION_NOT_NEEDED
    cluster.brokers[1].kill()
    wait_until(lambda: partitions(cluster, topic)[0].leader in (2, 3), what="failover")
    assert elect(cluster, [(topic, 0)])[(topic, 0)].error_code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    # moved off broker 1 while it is down: it drops the stale log when it comes back
    assert reassign(cluster, {("away", 0): [2, 3]})[("away", 0)].ok
    wait_until(lambda: ongoing(cluster) == {}, what="move off the dead broker")
    assert log_dir(cluster, 1, "away", 0).exists()
    cluster.brokers[1].start()
    wait_until(lambda: not log_dir(cluster, 1, "away", 0).exists(), what="stale log removed at start")
    wait_until(lambda: full_isr(cluster, topic, 3), timeout=30, what="broker 1 back in the ISR")
    assert partitions(cluster, topic)[0].leader != 1  # no automatic rebalance here
    assert elect(cluster, [(topic, 0)])[(topic, 0)].ok
    wait_until(lambda: partitions(cluster, topic)[0].leader == 1, what="preferred leader back")
    # unclean: not needed while ISR members are live; null = every partition, nothing to report
    unclean = call(cluster, lambda c: c.elect_leaders([(topic, 0)], election_type=ELECTION_UNCLEAN))
    assert unclean[(topic, 0)].error_code == ErrorCode.ELECTION_NOT_NEEDED
    assert elect(cluster, None) == {}
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    p.produce(topic, b"after")
    assert p.flush(15) == 0


def test_auto_leader_rebalance(kafka_cluster_factory: Any) -> None:
    cluster = kafka_cluster_factory(
        3, {**FAST, "auto.leader.rebalance.enable": True, "leader.imbalance.check.interval.seconds": 1}
    )
    topic = "auto"
    create_assigned(cluster, topic, [[2, 1, 3]])
    cluster.brokers[2].kill()
    wait_until(lambda: partitions(cluster, topic)[0].leader in (1, 3), what="failover")
    cluster.brokers[2].start()
    wait_until(lambda: partitions(cluster, topic)[0].leader == 2, timeout=30, what="leadership back on broker 2")


def run_consumer(cluster: LocalCluster, topic: str, seen: list[tuple[Any, Any, Any]], stop: threading.Event) -> None:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "rebalance-reader",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    c.subscribe([topic])
    try:
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF or err.retriable(), err
                continue
            seen.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()


def test_add_a_fourth_broker_and_rebalance(kafka_cluster_factory: Any) -> None:
    cluster = kafka_cluster_factory(3, FAST)
    topic = "grow"
    a = admin(cluster)
    a.create_topics([NewTopic(topic, 12, 2)])[topic].result(15)
    wait_until(lambda: len(partitions(cluster, topic)) == 12 and full_isr(cluster, topic, 2), what="topic in sync")
    history = History()
    seen: list[tuple[Any, Any, Any]] = []
    stop_producer, stop_consumer = threading.Event(), threading.Event()
    producer = threading.Thread(target=run_producer, args=(cluster, topic, history, stop_producer), daemon=True)
    consumer = threading.Thread(target=run_consumer, args=(cluster, topic, seen, stop_consumer), daemon=True)
    producer.start()
    consumer.start()
    try:
        wait_until(lambda: len(history.acked) > 500 and len(seen) > 100, what="traffic flowing")
        cluster.add_broker(4)
        wait_until(lambda: 4 in admin(cluster).list_topics(timeout=10).brokers, what="broker 4 registered")
        before = {(topic, i): list(p.replicas) for i, p in partitions(cluster, topic).items()}
        brokers = [BrokerInfo(n, "", 0) for n in (1, 2, 3, 4)]
        plan = plan_rebalance(before, brokers)
        summary = summarize_plan(before, plan)
        assert summary.replica_moves == 6  # 24 replicas: 8 per broker -> 6 each, the minimum
        moves = {k: v for k, v in plan.items() if v != before[k]}
        results = reassign(cluster, moves)
        assert all(r.ok for r in results.values()), results
        wait_until(lambda: ongoing(cluster) == {}, timeout=40, what="rebalance complete")
        wait_until(
            lambda: all(
                r.ok or r.error_code == ErrorCode.ELECTION_NOT_NEEDED for r in elect(cluster, list(plan)).values()
            ),
            what="preferred leaders",
        )
        after = partitions(cluster, topic)
        assert {(topic, i): list(p.replicas) for i, p in after.items()} == plan
        load = Counter(r for p in after.values() for r in p.replicas)
        assert load == {1: 6, 2: 6, 3: 6, 4: 6}
        assert Counter(p.leader for p in after.values()) == {1: 3, 2: 3, 3: 3, 4: 3}
        wait_until(
            lambda: all(
                log_dir(cluster, n, t, i).exists() == (n in replicas)
                for (t, i), replicas in plan.items()
                for n in (1, 2, 3, 4)
            ),
            what="logs exactly on the planned replicas",
        )
        mark = len(history.acked)
        wait_until(lambda: len(history.acked) > mark + 300, what="acknowledgements after the rebalance")
    finally:
        stop_producer.set()
        producer.join(120)
    try:
        wait_until(lambda: {v for _, _, v in seen} >= set(history.acked), timeout=60, what="consumer caught up")
    finally:
        stop_consumer.set()
        consumer.join(30)
    check_history(cluster, topic, history)
    positions = [(p, o) for p, o, _ in seen]
    assert len(positions) == len(set(positions)), "the live consumer read a record twice"
    assert all(history.acked[v] == (p, o) for p, o, v in seen)


def test_throttle_limits_the_copy_rate(cluster: LocalCluster) -> None:
    topic = "slow"
    create_assigned(cluster, topic, [[1, 2]])
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "batch.size": 16384, "linger.ms": 5})
    for i in range(1000):
        p.produce(topic, bytes([i % 251]) * 1000, key=f"{i}".encode())
    assert p.flush(30) == 0
    total = len(segment_bytes(cluster, 1, topic, 0))
    assert total > 1_000_000
    rate = 250_000
    set_throttle(cluster, 3, rate)
    started = time.monotonic()
    assert reassign(cluster, {(topic, 0): [1, 2, 3]})[(topic, 0)].ok
    wait_until(lambda: ongoing(cluster) == {}, timeout=30, what="throttled copy complete")
    elapsed = time.monotonic() - started
    # one second of burst, then `rate` bytes/s: at least (total - rate) / rate seconds
    assert elapsed >= (total - rate) / rate * 0.9, (elapsed, total)
    assert segment_bytes(cluster, 3, topic, 0) == segment_bytes(cluster, 1, topic, 0)
    set_throttle(cluster, 3, None)
    print(
        f"throttled copy: {total} bytes in {elapsed:.2f}s ({total / elapsed / 1000:.0f} kB/s at a {rate // 1000} kB/s throttle)"
    )


def test_single_broker_answers_for_itself(kafka_broker: Any) -> None:
    async def run() -> None:
        async with KafkaClient(kafka_broker.bootstrap) as c:
            await c.create_topic("solo", 1, 1)
            await c.wait_for_topic("solo")
            node = next(iter(c.metadata.brokers)) if c.metadata else 1  # the broker's own id
            moves = await c.alter_partition_reassignments({("solo", 0): [node], ("solo", 1): [node]})
            assert moves[("solo", 0)].ok
            assert moves[("solo", 1)].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            bad = await c.alter_partition_reassignments({("solo", 0): [node, node + 1]})
            assert bad[("solo", 0)].error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
            cancel = await c.alter_partition_reassignments({("solo", 0): None})
            assert cancel[("solo", 0)].error_code == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
            assert await c.list_partition_reassignments() == {}
            elected = await c.elect_leaders([("solo", 0)])
            assert elected[("solo", 0)].error_code == ErrorCode.ELECTION_NOT_NEEDED
            assert await c.elect_leaders(None) == {}

    asyncio.run(run())


def test_state_transitions() -> None:
    p = PartitionInfo(0, leader=1, replicas=[1, 2], isr=[1, 2], leader_epoch=4, partition_epoch=7)
    moving = start_state(p, [2, 3], {1, 2, 3})
    assert (moving.replicas, moving.adding_replicas, moving.removing_replicas) == ([2, 3, 1], [3], [1])
    assert (moving.leader, moving.leader_epoch, moving.partition_epoch) == (1, 4, 8)
    assert completion_state(moving, {1, 2, 3}) is None  # 3 not in sync yet
    synced = PartitionInfo(0, 1, [2, 3, 1], [1, 2, 3], 4, 9, [3], [1])
    done = completion_state(synced, {1, 2, 3})
    assert done == PartitionInfo(0, 2, [2, 3], [2, 3], 5, 10)  # leader 1 removed: 2 leads, epoch + 1
    # a second request during the first starts from the original replicas
    again = start_state(moving, [2, 4], {1, 2, 3, 4})
    assert (again.replicas, again.adding_replicas, again.removing_replicas) == ([2, 4, 1], [4], [1])
    back = cancel_state(moving, {1, 2, 3})
    assert sorted(back.replicas) == [1, 2] and not back.adding_replicas and back.leader == 1
    assert check_target([], {1}) and check_target([1, 1], {1}) and check_target([9], {1})
    assert check_target([1], {1}) is None
    outcome, new = election_state(PartitionInfo(0, 2, [1, 2], [1, 2], 3, 3), {1, 2}, PREFERRED)
    assert outcome.code == ErrorCode.NONE and new is not None and (new.leader, new.leader_epoch) == (1, 4)
    outcome, new = election_state(PartitionInfo(0, -1, [1, 2], [1], 3, 3), {2}, UNCLEAN)
    assert new is not None and (new.leader, new.isr) == (2, [2])
    outcome, new = election_state(PartitionInfo(0, -1, [1, 2], [1], 3, 3), {2}, PREFERRED)
    assert outcome.code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE and new is None
