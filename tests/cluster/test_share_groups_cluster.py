"""Share groups (KIP-932) in a three-broker etcd cluster, with the Java KafkaShareConsumer (4.3.1).

The share-partition leader (the user partition's leader) keeps the in-flight
state and persists it through the share coordinator of the key
group:topicId:partition (the leader of its `__share_group_state` partition)
with WriteShareGroupState; a new leader reads it back (ReadShareGroupState).
Killing the user partition's leader, then the share coordinator's broker,
loses no record: every record produced is delivered (at least once).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from interop.adapters import java
from kafkapy.coordinator.placement import partition_for
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.read_share_group_state_request import PartitionData as ReadPartition
from kafkapy.protocol.messages.read_share_group_state_request import ReadShareGroupStateRequest, ReadStateData
from kafkapy.protocol.messages.share_fetch_request import FetchPartition, FetchTopic, ShareFetchRequest
from kafkapy.protocol.messages.share_group_describe_request import ShareGroupDescribeRequest
from kafkapy.protocol.uuids import uuid_text
from tests.server.rawclient import RawClient

if java.available() is not None:
    pytest.skip(f"Java driver unavailable: {java.available()}", allow_module_level=True)

from interop.test_share_groups import Consumer, _group_config

SETTINGS = {
    "broker.session.timeout.ms": 3000,
    "replica.lag.time.max.ms": 3000,
    "offsets.topic.num.partitions": 6,
    "share.coordinator.state.topic.num.partitions": 3,
    "group.initial.rebalance.delay.ms": 0,
    "auto.leader.rebalance.enable": False,
    "group.share.record.lock.duration.ms": 3000,
    "group.share.heartbeat.interval.ms": 500,
    "group.share.session.timeout.ms": 6000,
}
N = 300


def _leaders(cluster: LocalCluster, admin: AdminClient, topic: str) -> dict[int, int]:
    md = admin.list_topics(topic, timeout=10)
    return {p: pm.leader for p, pm in md.topics[topic].partitions.items()}


def _all_led(admin: AdminClient, topic: str, count: int) -> bool:
    md = admin.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    return t is not None and len(t.partitions) == count and all(p.leader > 0 for p in t.partitions.values())


def _topic_id(cluster: LocalCluster, topic: str) -> uuid.UUID:
    keys = cluster.etcd_keys()
    return uuid.UUID(json.loads(keys[f"topics/{topic}"])["topic_id"])


def _seen(c: Consumer) -> set[str]:
    return {x.split(" ", 4)[4] for x in list(c.lines) if x.startswith("record ")}


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v.encode(), partition=0)
    assert p.flush(30) == 0


def test_share_consumer_loses_nothing_across_leader_kills(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(3, SETTINGS)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
    topic = f"sc-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(15)
    wait_until(lambda: _leaders(cluster, admin, topic).get(0, -1) > 0, what="a leader")
    tid = _topic_id(cluster, topic)
    # internal topics made now (by FindCoordinator GROUP and SHARE), so placements can be looked up
    with RawClient(cluster.brokers[1].bootstrap, timeout=10) as raw:
        raw.request(FindCoordinatorRequest(key_type=0, coordinator_keys=["warm"]), 6)
        raw.request(FindCoordinatorRequest(key_type=2, coordinator_keys=[f"warm:{uuid_text(tid)}:0"]), 6)
    wait_until(
        lambda: _all_led(admin, "__share_group_state", 3) and _all_led(admin, "__consumer_offsets", 6),
        timeout=30,
        what="internal topics led",
    )
    user_leader = _leaders(cluster, admin, topic)[0]
    state_leaders = _leaders(cluster, admin, "__share_group_state")
    offsets_leaders = _leaders(cluster, admin, "__consumer_offsets")
    # a group whose coordinator (membership) is neither broker killed below
    group = ""
    for i in range(1000):
        g = f"scg-{i}"
        coordinator = offsets_leaders[partition_for(g, 6)]
        share_coordinator = state_leaders[partition_for(f"{g}:{uuid_text(tid)}:0", 3)]
        if coordinator not in (user_leader, share_coordinator) and share_coordinator != user_leader:
            group = g
            break
    assert group, "no group id with three different brokers"
    _group_config(cluster.bootstrap, group, "share.auto.offset.reset=earliest")
    sent = [f"v{i}" for i in range(N)]
    _produce(cluster.bootstrap, topic, sent[: N // 3])
    c = Consumer(cluster.bootstrap, group, topic, 10 * N, "accept", timeout_ms=150000)
    try:
        c.wait_for("subscribed")
        wait_until(lambda: len(_seen(c)) >= N // 6, timeout=60, what="first records consumed")
        # the user partition's leader dies: the new leader reads the state from the share coordinator
        cluster.brokers[user_leader].kill()
        wait_until(lambda: _leaders(cluster, admin, topic)[0] not in (-1, user_leader), timeout=30, what="new leader")
        _produce(cluster.bootstrap, topic, sent[N // 3 : 2 * N // 3])
        wait_until(lambda: len(_seen(c)) >= N // 2, timeout=60, what="records after the first kill")
        cluster.brokers[user_leader].start()
        wait_until(lambda: len(cluster.running()) == 3, what="restart")
        # the share coordinator's broker dies: the state moves with its partition's leadership
        p = partition_for(f"{group}:{uuid_text(tid)}:0", 3)
        victim = _leaders(cluster, admin, "__share_group_state")[p]
        cluster.brokers[victim].kill()
        wait_until(
            lambda: _leaders(cluster, admin, "__share_group_state")[p] not in (-1, victim),
            timeout=30,
            what="new share coordinator",
        )
        _produce(cluster.bootstrap, topic, sent[2 * N // 3 :])
        wait_until(lambda: _seen(c) >= set(sent), timeout=90, what="every record delivered")
    finally:
        c.kill()
    records = [x.split(" ", 4) for x in c.lines if x.startswith("record ")]
    assert {r[4] for r in records} == set(sent)  # none lost (redeliveries allowed: at least once)
    assert all(r[2] == r[4][1:] for r in records)  # offset i holds v<i>
    # acquired but not yet acknowledged at a kill: delivered again by the new leader, the delivery
    # count carried over through the share coordinator (1, 2, ... for each offset)
    counts: dict[str, list[int]] = {}
    for r in records:
        counts.setdefault(r[2], []).append(int(r[3]))
    assert all(sorted(c) == list(range(1, len(c) + 1)) for c in counts.values()), counts
    redelivered = len(records) - len(counts)
    assert redelivered <= N // 2, f"{redelivered} redeliveries"


def test_share_fetch_and_state_rpcs_on_the_wrong_broker(kafka_cluster_factory: Any) -> None:
    """ShareFetch to a broker that does not lead the partition: NOT_LEADER_OR_FOLLOWER with the
    current leader (as Kafka); ReadShareGroupState to a broker that is not the key's share
    coordinator: NOT_COORDINATOR; the coordinator FindCoordinator SHARE names answers."""
    cluster: LocalCluster = kafka_cluster_factory(3, SETTINGS)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
    topic = f"sw-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(15)
    wait_until(lambda: _leaders(cluster, admin, topic).get(0, -1) > 0, what="a leader")
    tid = _topic_id(cluster, topic)
    leader = _leaders(cluster, admin, topic)[0]
    other = next(n for n in cluster.brokers if n != leader)
    fetch = ShareFetchRequest(
        group_id="g",
        member_id="m1",
        share_session_epoch=0,
        max_wait_ms=0,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=10,
        batch_size=10,
        topics=[FetchTopic(topic_id=tid, partitions=[FetchPartition(partition_index=0)])],
        forgotten_topics_data=[],
    )
    with RawClient(cluster.brokers[other].bootstrap, timeout=10) as raw:
        resp = raw.request(fetch, 1)
    assert resp.error_code == 0
    part = resp.responses[0].partitions[0]
    assert (part.error_code, part.current_leader.leader_id) == (6, leader)  # NOT_LEADER_OR_FOLLOWER
    key = f"g:{uuid_text(tid)}:0"
    coordinator = -1
    for _ in range(100):  # __share_group_state is made by the first lookup
        with RawClient(cluster.brokers[leader].bootstrap, timeout=10) as raw:
            found = raw.request(FindCoordinatorRequest(key_type=2, coordinator_keys=[key]), 6).coordinators[0]
        if found.error_code == 0:
            coordinator = found.node_id
            break
        time.sleep(0.1)
    assert coordinator in cluster.brokers
    read = ReadShareGroupStateRequest(
        group_id="g", topics=[ReadStateData(topic_id=tid, partitions=[ReadPartition(partition=0, leader_epoch=0)])]
    )
    wrong = next(n for n in cluster.brokers if n != coordinator)
    with RawClient(cluster.brokers[wrong].bootstrap, timeout=10) as raw:
        assert raw.request(read, 0).results[0].partitions[0].error_code == 16  # NOT_COORDINATOR
    codes = []
    for _ in range(50):  # the coordinator serves its partition a moment after it is made
        with RawClient(cluster.brokers[coordinator].bootstrap, timeout=10) as raw:
            codes.append(raw.request(read, 0).results[0].partitions[0].error_code)
        if codes[-1] != 16:
            break
        time.sleep(0.1)
    assert codes[-1] == 42  # INVALID_REQUEST: no state yet, as Kafka 4.3.1


def test_share_consumer_keeps_going_when_the_group_coordinator_dies(kafka_cluster_factory: Any) -> None:
    """The group coordinator's broker dies while a Java share consumer consumes: the new coordinator
    does not know the group (membership is not persisted), answers the member's heartbeat
    UNKNOWN_MEMBER_ID (not GROUP_ID_NOT_FOUND, fatal to KafkaShareConsumer), the member rejoins
    with epoch 0, and every record is delivered (at least once)."""
    # 5 offsets partitions: a group's __consumer_offsets and __share_group_state partitions
    # (its hash modulo 5 and 3) are then independent
    cluster: LocalCluster = kafka_cluster_factory(3, {**SETTINGS, "offsets.topic.num.partitions": 5})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
    topic = f"gc-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(15)
    wait_until(lambda: _leaders(cluster, admin, topic).get(0, -1) > 0, what="a leader")
    tid = _topic_id(cluster, topic)
    with RawClient(cluster.brokers[1].bootstrap, timeout=10) as raw:
        raw.request(FindCoordinatorRequest(key_type=0, coordinator_keys=["warm"]), 6)
        raw.request(FindCoordinatorRequest(key_type=2, coordinator_keys=[f"warm:{uuid_text(tid)}:0"]), 6)
    wait_until(
        lambda: _all_led(admin, "__share_group_state", 3) and _all_led(admin, "__consumer_offsets", 5),
        timeout=30,
        what="internal topics led",
    )
    user_leader = _leaders(cluster, admin, topic)[0]
    state_leaders = _leaders(cluster, admin, "__share_group_state")
    offsets_leaders = _leaders(cluster, admin, "__consumer_offsets")
    # a group whose coordinator leads neither the user partition nor the group's own
    # __share_group_state partition (so its epoch is written nowhere)
    group, coordinator = "", -1
    for i in range(1000):
        g = f"gcg-{i}"
        coordinator = offsets_leaders[partition_for(g, 5)]
        if coordinator not in (user_leader, state_leaders[partition_for(g, 3)]):
            group = g
            break
    assert group, "no group id whose coordinator is on its own broker"
    _group_config(cluster.bootstrap, group, "share.auto.offset.reset=earliest")
    sent = [f"v{i}" for i in range(N)]
    _produce(cluster.bootstrap, topic, sent[: N // 2])
    c = Consumer(cluster.bootstrap, group, topic, 10 * N, "accept", timeout_ms=150000)
    try:
        c.wait_for("subscribed")
        wait_until(lambda: len(_seen(c)) >= N // 6, timeout=60, what="first records consumed")
        cluster.brokers[coordinator].kill()
        p = partition_for(group, 5)
        wait_until(
            lambda: _leaders(cluster, admin, "__consumer_offsets")[p] not in (-1, coordinator),
            timeout=30,
            what="new group coordinator",
        )

        def members() -> int:
            new = _leaders(cluster, admin, "__consumer_offsets")[p]
            with RawClient(cluster.brokers[new].bootstrap, timeout=10) as raw:
                g = raw.request(ShareGroupDescribeRequest(group_ids=[group]), 1).groups[0]
            return len(g.members) if g.error_code == 0 else 0

        # the member's next heartbeat reaches the new coordinator, which sends it back to epoch 0
        wait_until(lambda: members() == 1, timeout=30, what="the member rejoined at the new coordinator")
        _produce(cluster.bootstrap, topic, sent[N // 2 :])
        wait_until(lambda: _seen(c) >= set(sent), timeout=90, what="every record delivered")
        assert c.proc.poll() is None, c.lines[-5:]  # still consuming: no fatal error
    finally:
        c.kill()
    records = [x.split(" ", 4) for x in c.lines if x.startswith("record ")]
    assert {r[4] for r in records} == set(sent)
    assert all(r[2] == r[4][1:] for r in records)
