"""Differential steps for Streams groups (KIP-1071): StreamsGroupHeartbeat and StreamsGroupDescribe
v0 sent to Apache Kafka and to kafkapy. Registered in interop/differential.py after its own script.

A member joins with a topology over a missing source topic (MISSING_SOURCE_TOPICS), another group's
member with a word-count-like topology over an existing topic (the broker creates the repartition
and changelog topics: MISSING_INTERNAL_TOPICS first, then the tasks), plus the refusals: no topology,
an unknown member, a wrong epoch; then leaving, and describing both groups and an unknown one.
Member ids are the client's (KIP-1071: the member generates its id).

`steps(1)` sends the same at v1 (Kafka 4.4.0's versions); `python -m interop.diff_streams_groups
record` records Kafka 4.4.0's answers to them (golden_kafka/streams_groups_4.4.0.json), compared
by tests/server/test_streams_groups.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.streams_group_describe_request import StreamsGroupDescribeRequest
from kafkapy.protocol.messages.streams_group_heartbeat_request import (
    KeyValue,
    StreamsGroupHeartbeatRequest,
    Subtopology,
    TaskIds,
    TopicInfo,
    Topology,
)

if TYPE_CHECKING:
    from interop.differential import Step

SOURCE = "diff-sg-source"  # 2 partitions, created by these steps
GONE = "diff-sg-no-such-source"
NO_SOURCE_GROUP, GROUP = "diff-sg-no-source", "diff-sg"
M1, M2 = "diff-sg-member-1-000000", "diff-sg-member-2-000000"


def topology(source: str, group: str) -> Topology:
    """A word count's shape: 0 reads `source` and writes a repartition topic; 1 reads it into a store."""
    repart, changelog = f"{group}-by-key-repartition", f"{group}-store-changelog"
    return Topology(
        epoch=0,
        subtopologies=[
            Subtopology(subtopology_id="0", source_topics=[source], repartition_sink_topics=[repart]),
            Subtopology(
                subtopology_id="1",
                state_changelog_topics=[
                    TopicInfo(name=changelog, topic_configs=[KeyValue(key="cleanup.policy", value="compact")])
                ],
                repartition_source_topics=[TopicInfo(name=repart)],
            ),
        ],
    )


def sgh(
    group: str,
    member: str,
    epoch: int,
    topo: Topology | None = None,
    active: list[TaskIds] | None = None,
) -> StreamsGroupHeartbeatRequest:
    """A heartbeat; tasks owned: all empty when joining, all null (unchanged) after, or `active` (the
    others then empty: Kafka wants all three null or none)."""
    joining = epoch == 0
    others = [] if joining or active is not None else None
    return StreamsGroupHeartbeatRequest(
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        rebalance_timeout_ms=30_000 if joining else -1,
        topology=topo,
        active_tasks=[] if joining else active,
        standby_tasks=others,
        warmup_tasks=others,
        process_id="diff-process" if joining else None,
        client_tags=[] if joining else None,
    )


def _sorted_tasks(data: Any) -> Any:
    for key in ("active_tasks", "standby_tasks", "warmup_tasks"):
        if isinstance(data.get(key), list):
            data[key] = sorted(data[key], key=lambda t: t["subtopology_id"])
    return data


def _wait_for_topics(resp: Any) -> None:
    # Kafka creates the internal topics asynchronously: give it a moment before the next heartbeat
    time.sleep(1.5)


def _wait_for_delay(resp: Any) -> None:
    # past the new group's initial rebalance delay (group.streams.initial.rebalance.delay.ms, 3 s)
    time.sleep(3.5)


def steps(version: int = 0) -> list[Step]:
    """The steps (interop.differential imports this module at its end and adds them to its SCRIPT);
    `version` of StreamsGroupHeartbeat and StreamsGroupDescribe, 1 with "_v1" names (Kafka 4.4.0's)."""
    from interop.differential import NO_GROUP, Step, create, find_coordinator, topic

    v, sfx = version, ("_v1" if version else "")

    return [
        Step(f"create_streams_group_topics{sfx}", lambda: create(topic(SOURCE, 2)), 4),
        Step(f"streams_group_find_coordinator{sfx}", lambda: find_coordinator(GROUP, 0, 4), 4),
        Step(f"streams_group_heartbeat_unknown_group{sfx}", lambda: sgh(NO_SOURCE_GROUP, M1, 3), v),
        Step(f"streams_group_heartbeat_no_topology{sfx}", lambda: sgh(NO_SOURCE_GROUP, M1, 0), v),
        Step(
            f"streams_group_heartbeat_missing_source{sfx}",
            lambda: sgh(NO_SOURCE_GROUP, M1, 0, topology(GONE, NO_SOURCE_GROUP)),
            v,
        ),
        Step(
            f"streams_group_heartbeat_join{sfx}",
            lambda: sgh(GROUP, M1, 0, topology(SOURCE, GROUP)),
            v,
            _sorted_tasks,
            save=_wait_for_topics,
        ),
        Step(
            f"streams_group_heartbeat_delayed{sfx}",
            lambda: sgh(GROUP, M1, 1, active=[]),
            v,
            _sorted_tasks,
            save=_wait_for_delay,
        ),
        Step(f"streams_group_heartbeat_tasks{sfx}", lambda: sgh(GROUP, M1, 1, active=[]), v, _sorted_tasks),
        Step(f"streams_group_heartbeat_unknown_member{sfx}", lambda: sgh(GROUP, M2, 2), v),
        Step(f"streams_group_heartbeat_bad_epoch{sfx}", lambda: sgh(GROUP, M1, 9), v),
        Step(
            f"streams_group_describe{sfx}",
            lambda: StreamsGroupDescribeRequest(
                group_ids=[GROUP, NO_SOURCE_GROUP, NO_GROUP], include_authorized_operations=False
            ),
            v,
        ),
        Step(
            f"streams_group_list{sfx}",
            lambda: ListGroupsRequest(states_filter=[], types_filter=["streams"]),
            5,
            lambda data: {**data, "groups": sorted(data["groups"], key=lambda g: g["group_id"])},
        ),
        Step(
            f"streams_group_describe_groups_v6{sfx}",
            lambda: DescribeGroupsRequest(groups=[GROUP], include_authorized_operations=False),
            6,
        ),
        Step(f"streams_group_heartbeat_leave{sfx}", lambda: sgh(GROUP, M1, -1), v),
        Step(f"streams_group_heartbeat_leave_unknown_group{sfx}", lambda: sgh(NO_GROUP, M1, -1), v),
        Step(
            f"streams_group_describe_after_leave{sfx}",
            lambda: StreamsGroupDescribeRequest(
                group_ids=[GROUP], include_authorized_operations=True, include_topology_description=v >= 1
            ),
            v,
        ),
    ]


# ---------------------------------------------------------------- v1 (Kafka 4.4.0)

GOLDEN_44 = Path(__file__).resolve().parent / "golden_kafka" / "streams_groups_4.4.0.json"
# "step: path" -> why kafkapy answers the v1 steps differently from Kafka 4.4.0
KNOWN_44 = {
    "create_streams_group_topics_v1: topics[0].error_message": "a successful CreateTopics: kafkapy empty, Kafka null",
    "streams_group_describe_after_leave_v1: groups[0].assignment_epoch": "Kafka 4.4.0 computes an empty target "
    "when the last member leaves (assignment epoch 4); kafkapy, as Kafka 4.3.1, keeps the last one (3)",
}


def record() -> Path:
    """Run the v1 steps on a fresh Apache Kafka 4.4.0 and write its answers to GOLDEN_44."""
    import tempfile

    from interop.adapters.java import REFERENCE_44
    from interop.apache_kafka import start_kafka
    from interop.differential import run_script

    with tempfile.TemporaryDirectory(prefix="streams-groups-44-") as tmp:
        kafka = start_kafka(Path(tmp), release=REFERENCE_44)
        try:
            time.sleep(1.0)
            answers = run_script(kafka.bootstrap, steps(1))
        finally:
            kafka.stop()
    doc = {
        "kafka_version": kafka.version,
        "regenerate": "python -m interop.diff_streams_groups record",
        "responses": answers,
    }
    GOLDEN_44.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return GOLDEN_44


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m interop.diff_streams_groups record")
    print(f"wrote {record()}")
