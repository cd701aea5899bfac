"""Streams groups (KIP-1071) over raw requests against one kafkapy broker process: the heartbeat
creates the internal topics and assigns tasks, two members share them (the second waits until
the first revoked), commits are checked against member epochs, and the group is listed,
described, refused to other protocols and deleted. Kafka's own answers to such requests are
compared in interop/diff_streams_groups.py; here the flows that take several requests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop._common import BrokerProcess, start_broker
from interop.diff_streams_groups import GOLDEN_44, KNOWN_44, sgh, steps, topology
from interop.differential import compare, run_script
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.offset_delete_request import (
    OffsetDeleteRequest,
    OffsetDeleteRequestPartition,
    OffsetDeleteRequestTopic,
)
from kafkapy.protocol.messages.streams_group_describe_request import StreamsGroupDescribeRequest
from kafkapy.protocol.messages.streams_group_heartbeat_request import TaskIds
from tests.server.rawclient import RawClient
from tests.server.test_idempotence import create_topic

SOURCE = "sg-source"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(
        Path(tmp_path_factory.mktemp("streams")) / "data",
        {"group.streams.initial.rebalance.delay.ms": "0", "num.partitions": "1"},
    )
    try:
        with RawClient(b.bootstrap) as c:
            create_topic(c, SOURCE)
            c.request(FindCoordinatorRequest(key_type=0, coordinator_keys=["g"]), 4)
        yield b
    finally:
        b.stop()


def tasks(resp: object) -> dict[str, list[int]]:
    active = getattr(resp, "active_tasks", None)
    assert active is not None
    return {t.subtopology_id: sorted(t.partitions) for t in active}


def owned(t: dict[str, list[int]]) -> list[TaskIds]:
    return [TaskIds(subtopology_id=s, partitions=p) for s, p in t.items()]


def partitions(c: RawClient, name: str) -> int:
    resp = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=name)], allow_auto_topic_creation=False), 12)
    [t] = resp.topics
    return len(t.partitions) if t.error_code == 0 else -1


def commit(c: RawClient, group: str, member: str, epoch: int) -> int:
    req = OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=epoch,
        member_id=member,
        topics=[
            OffsetCommitRequestTopic(
                name=SOURCE, partitions=[OffsetCommitRequestPartition(partition_index=0, committed_offset=0)]
            )
        ],
    )
    return int(c.request(req, 9).topics[0].partitions[0].error_code)


def offset_delete(c: RawClient, group: str, topic: str) -> int:
    req = OffsetDeleteRequest(
        group_id=group,
        topics=[OffsetDeleteRequestTopic(name=topic, partitions=[OffsetDeleteRequestPartition(partition_index=0)])],
    )
    resp = c.request(req, 0)
    return int(resp.error_code or resp.topics[0].partitions[0].error_code)


def test_internal_topics_created_then_tasks_shared(broker: BrokerProcess) -> None:
    g = "sg-two"
    with RawClient(broker.bootstrap) as c:
        r1 = c.request(sgh(g, "m1", 0, topology(SOURCE, g)), 0)
        assert r1.error_code == 0 and r1.member_epoch == 1 and tasks(r1) == {}
        assert [s.status_code for s in r1.status] == [3]  # MISSING_INTERNAL_TOPICS: the broker creates them
        assert partitions(c, f"{g}-by-key-repartition") == partitions(c, f"{g}-store-changelog") == 1
        r1 = c.request(sgh(g, "m1", 1, active=[]), 0)
        assert r1.status == [] and r1.member_epoch == 2 and tasks(r1) == {"0": [0], "1": [0]}
        assert commit(c, g, "m1", 2) == E.NONE
        assert commit(c, g, "m1", 1) == E.STALE_MEMBER_EPOCH
        assert commit(c, g, "nobody", 2) == E.UNKNOWN_MEMBER_ID
        r2 = c.request(sgh(g, "m2", 0, topology(SOURCE, g)), 0)
        assert r2.member_epoch == 3 and tasks(r2) == {}  # its task is still m1's
        r1 = c.request(sgh(g, "m1", 2, active=owned(tasks(r1))), 0)
        assert r1.member_epoch == 2 and len(tasks(r1)) == 1  # keeps one task, must give up the other
        r1 = c.request(sgh(g, "m1", 2, active=owned(tasks(r1))), 0)
        assert r1.member_epoch == 3
        r2 = c.request(sgh(g, "m2", 3, active=[]), 0)
        assert tasks(r1).keys() | tasks(r2).keys() == {"0", "1"} and not tasks(r1).keys() & tasks(r2).keys()
        [d] = c.request(StreamsGroupDescribeRequest(group_ids=[g]), 0).groups
        assert (d.group_state, d.group_epoch, d.assignment_epoch, len(d.members)) == ("Stable", 3, 3, 2)
        listed = c.request(ListGroupsRequest(types_filter=["streams"]), 5).groups
        assert [(x.group_id, x.group_type, x.protocol_type) for x in listed if x.group_id == g] == [
            (g, "streams", "streams")
        ]
        # a consumer-protocol member is refused while it is a Streams group
        cg = ConsumerGroupHeartbeatRequest(
            group_id=g, member_id="c1", member_epoch=0, rebalance_timeout_ms=1000, subscribed_topic_names=[SOURCE]
        )
        assert c.request(cg, 0).error_code == E.GROUP_ID_NOT_FOUND
        deleted = c.request(DeleteGroupsRequest(groups_names=[g]), 2).results
        assert deleted[0].error_code == E.NON_EMPTY_GROUP
        # OffsetDelete: the topology's source topic is in use while the group has members
        assert offset_delete(c, g, SOURCE) == E.GROUP_SUBSCRIBED_TO_TOPIC
        for member in ("m1", "m2"):
            assert c.request(sgh(g, member, -1), 0).member_epoch == -1
        assert offset_delete(c, g, SOURCE) == E.NONE  # empty now
        assert c.request(DeleteGroupsRequest(groups_names=[g]), 2).results[0].error_code == E.NONE
        [d] = c.request(StreamsGroupDescribeRequest(group_ids=[g]), 0).groups
        assert d.error_code == E.GROUP_ID_NOT_FOUND


def test_missing_source_and_refusals(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        r = c.request(sgh("sg-missing", "m1", 0, topology("sg-nothing", "sg-missing")), 0)
        assert r.error_code == 0 and [s.status_code for s in r.status] == [1]  # MISSING_SOURCE_TOPICS
        assert partitions(c, "sg-missing-store-changelog") == -1  # nothing created while sources are missing
        assert c.request(sgh("sg-none", "m1", 3), 0).error_code == E.GROUP_ID_NOT_FOUND
        assert c.request(sgh("sg-missing", "m1", 0), 0).error_code == E.INVALID_REQUEST  # no topology
        other = topology(SOURCE, "sg-missing")  # another topology at the same epoch
        assert c.request(sgh("sg-missing", "m2", 0, other), 0).error_code == E.STREAMS_INVALID_TOPOLOGY_EPOCH


def test_the_group_survives_a_restart(tmp_path: Path) -> None:
    """The group's records are in __consumer_offsets: after a restart its member goes on at its epoch."""
    data = tmp_path / "data"
    settings = {"group.streams.initial.rebalance.delay.ms": "0", "num.partitions": "1"}
    g = "sg-restart"
    b = start_broker(data, settings)
    try:
        with RawClient(b.bootstrap) as c:
            create_topic(c, SOURCE)
            c.request(FindCoordinatorRequest(key_type=0, coordinator_keys=[g]), 4)
            c.request(sgh(g, "m1", 0, topology(SOURCE, g)), 0)
            r = c.request(sgh(g, "m1", 1, active=[]), 0)
            assert r.member_epoch == 2 and tasks(r) == {"0": [0], "1": [0]}
    finally:
        b.stop()
    b = start_broker(data, settings)
    try:
        with RawClient(b.bootstrap) as c:
            for _ in range(50):  # the coordinator loads its partitions after the start
                [d] = c.request(StreamsGroupDescribeRequest(group_ids=[g]), 0).groups
                if d.error_code == 0:
                    break
                time.sleep(0.1)
            assert (d.group_state, d.group_epoch, d.assignment_epoch) == ("Stable", 2, 2)
            assert d.topology is not None and [s.subtopology_id for s in d.topology.subtopologies or []] == ["0", "1"]
            [m] = d.members
            assert (m.member_id, m.member_epoch, m.process_id) == ("m1", 2, "diff-process")
            assert sorted(t.subtopology_id for t in m.assignment.active_tasks) == ["0", "1"]
            r = c.request(sgh(g, "m1", 2, active=owned(tasks(r))), 0)
            assert r.error_code == 0 and r.member_epoch == 2
            assert commit(c, g, "m1", 2) == E.NONE
    finally:
        b.stop()


def test_v1_answers_like_kafka_4_4_0(tmp_path: Path) -> None:
    """The differential steps at StreamsGroupHeartbeat/Describe v1 against Kafka 4.4.0's recorded answers."""
    golden = json.loads(GOLDEN_44.read_text())
    assert golden["kafka_version"] == "4.4.0"
    b = start_broker(tmp_path / "data")  # Kafka's defaults (the initial rebalance delay included)
    try:
        ours = run_script(b.bootstrap, steps(1), settle_s=0)
    finally:
        b.stop()
    found = {f"{step}: {path}" for step, diffs in compare(golden["responses"], ours).items() for path, _, _ in diffs}
    assert found == set(KNOWN_44)
