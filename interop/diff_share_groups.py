"""Share group APIs (KIP-932) as raw requests, recorded against Apache Kafka 4.3.1
(interop/golden_kafka/share_groups.json) and compared with kafkapy by
interop/test_share_groups.py::test_share_group_errors_answer_as_kafka.

One PLAINTEXT connection: topic t1 (one partition), FindCoordinator for the groups (Kafka creates
`__consumer_offsets` then), a warm-up heartbeat until the coordinator answers, then each step:
heartbeats (empty member id, unknown group, join without topics, join, a wrong epoch, leave),
ShareGroupDescribe, ShareFetch (no session, a non-member, open, wrong epoch, acknowledging records
never delivered, an unknown topic id), ShareAcknowledge (epoch 0, records never delivered) and the
offsets APIs (unknown group, a non-empty group, unknown topics), then group configs
(DescribeConfigs/IncrementalAlterConfigs on GROUP resources: every key and its broker synonym,
share.auto.offset.reset and lock duration values Kafka refuses, unknown keys, APPEND, the empty
name, deleting a key). Topic ids, throttle times and
records are normalised away; error messages are kept.

    python -m interop.diff_share_groups record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol.messages.alter_share_group_offsets_request import (
    AlterShareGroupOffsetsRequest,
    AlterShareGroupOffsetsRequestPartition,
    AlterShareGroupOffsetsRequestTopic,
)
from kafkapy.protocol.messages.consumer_group_describe_request import ConsumerGroupDescribeRequest
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.delete_share_group_offsets_request import (
    DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequestTopic,
)
from kafkapy.protocol.messages.describe_configs_request import DescribeConfigsRequest, DescribeConfigsResource
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.describe_share_group_offsets_request import (
    DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequestGroup,
)
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.join_group_request import JoinGroupRequest, JoinGroupRequestProtocol
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.share_acknowledge_request import (
    AcknowledgementBatch as AckBatch,
)
from kafkapy.protocol.messages.share_acknowledge_request import (
    AcknowledgePartition,
    AcknowledgeTopic,
    ShareAcknowledgeRequest,
)
from kafkapy.protocol.messages.share_fetch_request import (
    AcknowledgementBatch,
    FetchPartition,
    FetchTopic,
    ShareFetchRequest,
)
from kafkapy.protocol.messages.share_group_describe_request import ShareGroupDescribeRequest
from kafkapy.protocol.messages.share_group_heartbeat_request import ShareGroupHeartbeatRequest
from kafkapy.protocol.primitives import Message
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "share_groups.json"
TOPIC = "t1"
_DROPPED = {"unknown_tagged_fields", "throttle_time_ms", "records"}


def plain(o: Any) -> Any:
    """An answer as JSON data, topic ids as "uuid"."""
    if isinstance(o, list):
        return [plain(x) for x in o]
    if isinstance(o, uuid.UUID):
        return "uuid"
    if hasattr(o, "__slots__") and not isinstance(o, (str, bytes)):
        out = {}
        for cls in type(o).__mro__:
            for k in getattr(cls, "__slots__", ()):
                if k not in _DROPPED and not k.startswith("_"):
                    out[k] = plain(getattr(o, k))
        return out
    return o


def _fetch(epoch: int, member: str, topics: list[FetchTopic]) -> ShareFetchRequest:
    return ShareFetchRequest(
        group_id="g",
        member_id=member,
        share_session_epoch=epoch,
        max_wait_ms=0,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=10,
        batch_size=10,
        topics=topics,
        forgotten_topics_data=[],
    )


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30) as c:
        c.request(CreateTopicsRequest(topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1)]), 7)
        tid = uuid.UUID(int=0)
        for _ in range(60):
            md = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=TOPIC)]), 12)
            tid = md.topics[0].topic_id
            found = c.request(FindCoordinatorRequest(key_type=0, coordinator_keys=["warm", "g", "g0", "g1"]), 6)
            if md.topics[0].error_code == 0 and not any(x.error_code for x in found.coordinators):
                break
            time.sleep(0.5)
        for _ in range(120):  # the coordinators load (Kafka: NOT_COORDINATOR meanwhile)
            w = c.request(
                ShareGroupHeartbeatRequest(
                    group_id="warm", member_id="w1", member_epoch=0, subscribed_topic_names=[TOPIC]
                ),
                1,
            )
            if w.error_code not in (15, 16):
                break
            time.sleep(0.5)

        def step(name: str, req: Message, version: int) -> None:
            out[name] = plain(c.request(req, version))

        part = [FetchTopic(topic_id=tid, partitions=[FetchPartition(partition_index=0)])]

        def acked(first: int) -> list[FetchTopic]:
            batch = AcknowledgementBatch(first_offset=first, last_offset=first, acknowledge_types=[1])
            return [
                FetchTopic(
                    topic_id=tid, partitions=[FetchPartition(partition_index=0, acknowledgement_batches=[batch])]
                )
            ]

        hb = ShareGroupHeartbeatRequest
        step("hb_empty_member", hb(group_id="g", member_id="", member_epoch=0, subscribed_topic_names=[TOPIC]), 1)
        step("hb_unknown_group", hb(group_id="g0", member_id="m", member_epoch=5), 1)
        step("hb_join_without_topics", hb(group_id="g1", member_id="m1", member_epoch=0), 1)
        step("hb_join", hb(group_id="g", member_id="m1", member_epoch=0, subscribed_topic_names=[TOPIC]), 1)
        step("hb_wrong_epoch", hb(group_id="g", member_id="m1", member_epoch=7), 1)
        # the same group id through the other group protocols
        cg_join = ConsumerGroupHeartbeatRequest(
            group_id="g",
            member_id="c1",
            member_epoch=0,
            rebalance_timeout_ms=30000,
            subscribed_topic_names=[TOPIC],
            topic_partitions=[],
        )
        step("consumer_heartbeat_to_share_group", cg_join, 1)
        step("consumer_describe_of_share_group", ConsumerGroupDescribeRequest(group_ids=["g"]), 1)
        step("classic_describe_of_share_group", DescribeGroupsRequest(groups=["g"]), 6)
        join = JoinGroupRequest(
            group_id="g",
            session_timeout_ms=10000,
            rebalance_timeout_ms=10000,
            member_id="",
            protocol_type="consumer",
            protocols=[JoinGroupRequestProtocol(name="range", metadata=b"")],
        )
        step("classic_join_to_share_group", join, 9)
        step("list_share_groups", ListGroupsRequest(states_filter=[], types_filter=["share"]), 5)
        cg_other = ConsumerGroupHeartbeatRequest(
            group_id="cgx",
            member_id="c1",
            member_epoch=0,
            rebalance_timeout_ms=30000,
            subscribed_topic_names=[TOPIC],
            topic_partitions=[],
        )
        c.request(cg_other, 1)
        step(
            "share_heartbeat_to_consumer_group",
            hb(group_id="cgx", member_id="s1", member_epoch=0, subscribed_topic_names=[TOPIC]),
            1,
        )
        step("describe", ShareGroupDescribeRequest(group_ids=["g", "nope"]), 1)
        step("fetch_no_session", _fetch(3, "m1", []), 2)
        step("fetch_non_member", _fetch(0, "zz", part), 2)
        step("fetch_open", _fetch(0, "m1", part), 2)
        step("fetch_wrong_epoch", _fetch(5, "m1", []), 2)
        step("fetch_ack_never_delivered", _fetch(1, "m1", acked(100)), 2)
        ack = AckBatch(first_offset=50, last_offset=50, acknowledge_types=[1])
        ack_topics = [
            AcknowledgeTopic(
                topic_id=tid, partitions=[AcknowledgePartition(partition_index=0, acknowledgement_batches=[ack])]
            )
        ]
        step("ack_epoch_0", ShareAcknowledgeRequest(group_id="g", member_id="m1", share_session_epoch=0, topics=[]), 2)
        step(
            "ack_never_delivered",
            ShareAcknowledgeRequest(group_id="g", member_id="m1", share_session_epoch=2, topics=ack_topics),
            2,
        )
        unknown = [FetchTopic(topic_id=uuid.uuid4(), partitions=[FetchPartition(partition_index=0)])]
        step("fetch_unknown_topic_id", _fetch(3, "m1", unknown), 2)
        dsgo = DescribeShareGroupOffsetsRequest
        step(
            "offsets_unknown_group",
            dsgo(groups=[DescribeShareGroupOffsetsRequestGroup(group_id="nope", topics=None)]),
            1,
        )

        def alter(group: str, topic: str) -> AlterShareGroupOffsetsRequest:
            p = AlterShareGroupOffsetsRequestPartition(partition_index=0, start_offset=0)
            return AlterShareGroupOffsetsRequest(
                group_id=group, topics=[AlterShareGroupOffsetsRequestTopic(topic_name=topic, partitions=[p])]
            )

        def delete(group: str, topic: str) -> DeleteShareGroupOffsetsRequest:
            return DeleteShareGroupOffsetsRequest(
                group_id=group, topics=[DeleteShareGroupOffsetsRequestTopic(topic_name=topic)]
            )

        step("alter_non_empty_group", alter("g", TOPIC), 0)
        step("alter_unknown_group", alter("newg", TOPIC), 0)
        step("alter_unknown_topic", alter("newg2", "nope"), 0)
        step("delete_offsets_non_empty_group", delete("g", TOPIC), 0)
        step("delete_offsets_unknown_group", delete("nope", TOPIC), 0)
        step("hb_leave", hb(group_id="g", member_id="m1", member_epoch=-1), 1)
        step("delete_offsets_unknown_topic", delete("g", "nope"), 0)
        step(
            "offsets_altered_group",
            dsgo(groups=[DescribeShareGroupOffsetsRequestGroup(group_id="newg", topics=None)]),
            1,
        )

        # group configs (resource type 32)
        def describe_group(name: str, keys: list[str] | None = None) -> DescribeConfigsRequest:
            res = DescribeConfigsResource(resource_type=32, resource_name=name, configuration_keys=keys)
            return DescribeConfigsRequest(resources=[res], include_synonyms=True, include_documentation=False)

        def alter_group(name: str, key: str, op: int, value: str | None) -> IncrementalAlterConfigsRequest:
            cfg = AlterableConfig(name=key, config_operation=op, value=value)
            return IncrementalAlterConfigsRequest(
                resources=[AlterConfigsResource(resource_type=32, resource_name=name, configs=[cfg])]
            )

        step("group_configs_unknown_group", describe_group("nogroup"), 4)
        step("group_configs_set_earliest", alter_group("cg", "share.auto.offset.reset", 0, "earliest"), 1)
        step("group_configs_bad_reset", alter_group("cg", "share.auto.offset.reset", 0, "sometimes"), 1)
        step("group_configs_unknown_key", alter_group("cg", "foo.bar", 0, "1"), 1)
        step("group_configs_lock_too_low", alter_group("cg", "share.record.lock.duration.ms", 0, "10"), 1)
        step("group_configs_lock", alter_group("cg", "share.record.lock.duration.ms", 0, "15000"), 1)
        step("group_configs_by_duration", alter_group("cg2", "share.auto.offset.reset", 0, "by_duration:PT1H"), 1)
        step("group_configs_isolation", alter_group("cg2", "share.isolation.level", 0, "read_committed"), 1)
        step("group_configs_append", alter_group("cg2", "share.isolation.level", 2, "read_committed"), 1)
        step("group_configs_empty_name", alter_group("", "share.isolation.level", 0, "read_committed"), 1)
        step("group_configs_described", describe_group("cg"), 4)
        step("group_configs_some_keys", describe_group("cg", ["share.auto.offset.reset", "nope"]), 4)
        step("group_configs_delete", alter_group("cg", "share.auto.offset.reset", 1, None), 1)
        step("group_configs_after_delete", describe_group("cg", ["share.auto.offset.reset"]), 4)
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def record(out: Path = GOLDEN) -> Path:
    return record_golden(out, "kafka-share-", run)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
