"""StreamsGroupTopologyDescriptionUpdate (93, KIP-1331, Kafka 4.4.0) without a topology description
plugin: raw requests recorded against Apache Kafka 4.4.0 (interop/golden_kafka/streams_topology_4.4.0.json)
and compared with kafkapy by tests/server/test_streams_topology.py.

An unknown group, an empty group id, then a Streams group with one member (interop/diff_streams_groups'
word-count topology): its member pushes a description, at its topology epoch and at another; an
unknown member of it; a consumer group's id; then StreamsGroupDescribe v1 asking for the description.

    python -m interop.diff_streams_topology record   # against Apache Kafka 4.4.0 (golden file)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop._common import load_golden, save_golden
from interop.diff_streams_groups import sgh, topology
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.streams_group_describe_request import StreamsGroupDescribeRequest
from kafkapy.protocol.messages.streams_group_topology_description_update_request import (
    StreamsGroupTopologyDescriptionUpdateRequest,
    TopologyDescription,
    TopologyDescriptionNode,
    TopologyDescriptionSubtopology,
)
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "streams_topology_4.4.0.json"
SOURCE, GROUP, CONSUMERS = "tdu-source", "tdu-group", "tdu-consumers"
MEMBER = "tdu-member-1-0000000000"


def description() -> TopologyDescription:
    """Subtopology 0 of the word count: a source, a processor, a sink."""
    return TopologyDescription(
        subtopologies=[
            TopologyDescriptionSubtopology(
                subtopology_id="0",
                nodes=[
                    TopologyDescriptionNode(name="src", node_type=1, source_topics=[SOURCE], successors=["split"]),
                    TopologyDescriptionNode(name="split", node_type=2, successors=["sink"]),
                    TopologyDescriptionNode(name="sink", node_type=3, sink_topic=f"{GROUP}-by-key-repartition"),
                ],
            )
        ]
    )


def update(c: RawClient, group: str, member: str, epoch: int) -> list[Any]:
    req = StreamsGroupTopologyDescriptionUpdateRequest(
        group_id=group, member_id=member, topology_epoch=epoch, topology_description=description()
    )
    resp = c.request(req, 0)
    return [resp.error_code, resp.error_message]


def _coordinator(c: RawClient, group: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        resp = c.request(FindCoordinatorRequest(key_type=0, coordinator_keys=[group]), 4)
        if resp.coordinators[0].error_code == 0 or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        c.request(CreateTopicsRequest(topics=[CreatableTopic(name=SOURCE, num_partitions=2, replication_factor=1)]), 4)
        _coordinator(c, GROUP)
        out["unknown_group"] = update(c, "tdu-no-such-group", MEMBER, 0)
        out["empty_group_id"] = update(c, "", MEMBER, 0)
        deadline = time.monotonic() + 30
        while True:  # the group coordinator may still be loading
            hb = c.request(sgh(GROUP, MEMBER, 0, topology(SOURCE, GROUP)), 1)
            if hb.error_code not in (14, 15, 16) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out["join"] = [hb.error_code, hb.member_epoch, hb.topology_description_required]
        out["member"] = update(c, GROUP, MEMBER, 0)
        out["member_other_epoch"] = update(c, GROUP, MEMBER, 5)
        out["empty_member_id"] = update(c, GROUP, "", 0)
        out["unknown_member"] = update(c, GROUP, "tdu-member-2-0000000000", 0)
        cg = ConsumerGroupHeartbeatRequest(
            group_id=CONSUMERS,
            member_id="tdu-consumer-0000000000",
            member_epoch=0,
            rebalance_timeout_ms=30_000,
            subscribed_topic_names=[SOURCE],
            topic_partitions=[],
        )
        out["consumer_group_join"] = c.request(cg, 1).error_code
        out["consumer_group"] = update(c, CONSUMERS, "tdu-consumer-0000000000", 0)
        d = c.request(StreamsGroupDescribeRequest(group_ids=[GROUP], include_topology_description=True), 1)
        g = d.groups[0]
        out["describe"] = [g.error_code, g.topology_description_status, g.topology_description is None]
    return out


def authorization(login: Callable[[str], RawClient]) -> dict[str, Any]:
    """An unknown group's update as alice (no ACL) and the admin (a super user)."""
    out: dict[str, Any] = {}
    for user in ("alice", "admin"):
        with login(user) as c:
            out[user] = update(c, "tdu-no-such-group", MEMBER, 0)
    return out


def record(out: Path = GOLDEN) -> Path:
    import tempfile

    from interop import apache_kafka, diff_raft

    kafka = apache_kafka.start_kafka(Path(tempfile.mkdtemp(prefix="kafka-tdu-")), release=apache_kafka.REFERENCE_44)
    try:
        answers = run(kafka.bootstrap)
    finally:
        kafka.stop()
    answers["authorization"] = diff_raft.record_secure(apache_kafka.REFERENCE_44, authorization)
    answers["_meta"] = {"kafka": kafka.version}
    return save_golden(out, answers)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
