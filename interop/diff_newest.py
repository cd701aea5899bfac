"""The newest versions of a few APIs (issue 18): raw requests recorded against Apache Kafka 4.3.1 (golden
file) and compared with kafkapy by tests/server/test_newest_versions.py.

One section per API, each a function of one connection returning plain data:

- find_coordinator: v6 with key types 0 (group), 1 (transaction), 2 (share: "group:topicId:partition")
  and an unknown one.
- describe_groups: v5 and v6 (KIP-1043) for a classic group, an unknown one, a consumer-protocol group
  and the empty id.
- describe_cluster: v2 (KIP-1073) with and without IncludeFencedBrokers, and the controllers endpoint.
- list_transactions: v2's TransactionalIdPattern (KIP-1152): none, empty, exact, regular expressions,
  an invalid one; v1's DurationFilter.
- consumer_group_describe: v1's MemberType (KIP-1099).
- alter_partition_reassignments: v1's AllowReplicationFactorChange (KIP-860).
- write_txn_markers: v2's TransactionVersion (KIP-1228).
- describe_log_dirs: v5's IsCordoned.
- metadata_v13: v13's top-level ErrorCode, by name and by id, known and unknown.
- fetch_v18: a consumer's Fetch v17 and v18 with and without v18's HighWatermark (KIP-1166).
- list_offsets_v11: every special timestamp at v9-v11 (-6, earliest pending upload, is v11's).
- offset_commit_fetch_v10: OffsetCommit and OffsetFetch by topic id (KIP-848): known, unknown and
  zero ids, a missing partition, all topics, an unknown group.
- list_config_resources_v1: ListConfigResources (KIP-1142) per resource type, none, an unknown one.
- 4.4.0 only (SECTIONS_44, its own golden file): delete_groups_v3 (ErrorMessage), api_versions_v5
  (KIP-1242: expected cluster and node ids, right, wrong, half given).

Node ids, hosts, ports, member ids and producer ids are normalised away; error messages are kept.

    python -m interop.diff_newest record             # 4.3.1 (all of SECTIONS), then 4.4.0 (SECTIONS_44)
    python -m interop.diff_newest record SECTION...  # only these, merged into their golden file
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden, save_golden
from interop.apache_kafka import REFERENCE_44
from kafkapy.protocol import records
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
)
from kafkapy.protocol.messages.alter_partition_reassignments_request import (
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.consumer_group_describe_request import ConsumerGroupDescribeRequest
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.describe_log_dirs_request import DescribableLogDirTopic, DescribeLogDirsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkapy.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopics,
)
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)
from kafkapy.protocol.primitives import Message
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "newest_versions.json"
GOLDEN_44 = Path(__file__).resolve().parent / "golden_kafka" / "newest_versions_4.4.0.json"
TOPIC = "newest-topic"
CLASSIC = "newest-classic"
CONSUMER = "newest-consumer"
TXNS = ("newest-txn-a", "newest-txn-ab", "other-txn")
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
RETRIABLE = (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, 14)  # 14: COORDINATOR_LOAD_IN_PROGRESS


def _until_ready(c: RawClient, req: Message, version: int, code: Callable[[Any], int], timeout: float = 20.0) -> Any:
    """Send `req` again while its answer's code is a coordinator-not-ready one."""
    deadline = time.monotonic() + timeout
    while True:
        resp = c.request(req, version)
        if code(resp) not in RETRIABLE or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def _node_id(c: RawClient) -> int:
    resp = c.request(MetadataRequest(topics=[]), 12)
    return int(resp.brokers[0].node_id)


def _setup(c: RawClient) -> None:
    c.request(
        CreateTopicsRequest(
            topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1)], timeout_ms=10_000
        ),
        7,
    )
    time.sleep(0.5)
    for key_type, key in ((0, CLASSIC), (1, TXNS[0])):
        req = FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key])
        _until_ready(c, req, 4, lambda r: r.coordinators[0].error_code)


# ------------------------------------------------------------------------------------------ sections


def find_coordinator(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    share_key = f"{CLASSIC}:{uuid.UUID(int=12345)}:0"
    cases = {
        "group": (0, ["g-newest"]),
        "transaction": (1, ["t-newest"]),
        "share": (2, [share_key]),
        "share bad key": (2, ["not-a-share-key"]),
        "unknown type": (3, ["x"]),
        "two groups": (0, ["g-newest", "g-newest-2"]),
    }
    for name, (key_type, keys) in cases.items():
        resp = _until_ready(
            c,
            FindCoordinatorRequest(key_type=key_type, coordinator_keys=keys),
            6,
            lambda r: r.error_code or (r.coordinators[0].error_code if r.coordinators else 0),
            timeout=8.0,
        )
        out[name] = {
            "error": resp.error_code,
            "message": resp.error_message,
            "coordinators": [
                {
                    "key": x.key,
                    "error": x.error_code,
                    "message": x.error_message,
                    "node": "set" if x.node_id >= 0 else x.node_id,
                    "port": "set" if x.port > 0 else x.port,
                }
                for x in resp.coordinators
            ],
        }
    return out


def _make_groups(c: RawClient) -> None:
    commit = OffsetCommitRequest(
        group_id=CLASSIC,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            OffsetCommitRequestTopic(
                name=TOPIC, partitions=[OffsetCommitRequestPartition(partition_index=0, committed_offset=0)]
            )
        ],
    )
    _until_ready(c, commit, 8, lambda r: r.topics[0].partitions[0].error_code)
    hb = ConsumerGroupHeartbeatRequest(
        group_id=CONSUMER,
        member_id=str(uuid.UUID(int=777)),
        member_epoch=0,
        rebalance_timeout_ms=30_000,
        subscribed_topic_names=[TOPIC],
        topic_partitions=[],
    )
    _until_ready(c, hb, 1, lambda r: r.error_code)


def describe_groups(c: RawClient) -> dict[str, Any]:
    _make_groups(c)
    out: dict[str, Any] = {}
    for version in (5, 6):
        resp = c.request(DescribeGroupsRequest(groups=[CLASSIC, "newest-unknown", CONSUMER, ""]), version)
        out[f"v{version}"] = [
            {
                "group": g.group_id,
                "error": g.error_code,
                "message": getattr(g, "error_message", None) if version >= 6 else None,
                "state": g.group_state,
                "protocol_type": g.protocol_type,
                "protocol": g.protocol_data,
                "members": len(g.members),
            }
            for g in resp.groups
        ]
    return out


def describe_cluster(c: RawClient) -> dict[str, Any]:
    node = _node_id(c)
    out: dict[str, Any] = {}
    for name, req in {
        "v2": DescribeClusterRequest(endpoint_type=1, include_fenced_brokers=False),
        "v2 with fenced": DescribeClusterRequest(endpoint_type=1, include_fenced_brokers=True),
        "v2 controllers": DescribeClusterRequest(endpoint_type=2, include_fenced_brokers=True),
        "v2 operations": DescribeClusterRequest(include_cluster_authorized_operations=True),
    }.items():
        resp = c.request(req, 2)
        out[name] = {
            "error": resp.error_code,
            "message": resp.error_message,
            "endpoint_type": resp.endpoint_type,
            "controller": "the broker" if resp.controller_id == node else resp.controller_id,
            "brokers": [
                {"node": "the broker" if b.broker_id == node else b.broker_id, "rack": b.rack, "fenced": b.is_fenced}
                for b in resp.brokers
            ],
            "operations": resp.cluster_authorized_operations,
        }
    return out


def _listed(resp: Any) -> Any:
    if resp.error_code:
        return {"error": resp.error_code, "unknown_states": resp.unknown_state_filters}
    return {
        "error": 0,
        "unknown_states": resp.unknown_state_filters,
        "transactions": sorted(
            [t.transactional_id, t.transaction_state]
            for t in resp.transaction_states
            if t.transactional_id.startswith(("newest-", "other-"))
        ),
    }


def list_transactions(c: RawClient) -> dict[str, Any]:
    pids: dict[str, tuple[int, int]] = {}
    for txn in TXNS:
        init = InitProducerIdRequest(transactional_id=txn, transaction_timeout_ms=600_000)
        resp = _until_ready(c, init, 4, lambda r: r.error_code)
        pids[txn] = (resp.producer_id, resp.producer_epoch)
    pid, epoch = pids[TXNS[0]]
    c.request(
        AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=TXNS[0],
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[AddPartitionsToTxnTopic(name=TOPIC, partitions=[0])],
        ),
        3,
    )
    out: dict[str, Any] = {}
    for name, pattern in {
        "null": None,
        "empty": "",
        "exact": TXNS[0],
        "prefix only": "newest-txn",
        "prefix regex": "newest-.*",
        "alternation": "other-txn|newest-txn-ab",
        "character class": "newest-txn-a[a-z]",
        "invalid": "newest-[",
        "anchors": "^newest-txn-a$",
    }.items():
        out[name] = _listed(c.request(ListTransactionsRequest(transactional_id_pattern=pattern), 2))
    out["pattern and state"] = _listed(
        c.request(ListTransactionsRequest(state_filters=["Ongoing"], transactional_id_pattern="newest-.*"), 2)
    )
    out["v2 duration 0"] = _listed(c.request(ListTransactionsRequest(duration_filter=0), 2))
    out["v2 duration 10 min"] = _listed(c.request(ListTransactionsRequest(duration_filter=600_000), 2))
    return out


def consumer_group_describe(c: RawClient) -> dict[str, Any]:
    _make_groups(c)
    out: dict[str, Any] = {}
    for version in (0, 1):
        resp = c.request(ConsumerGroupDescribeRequest(group_ids=[CONSUMER, CLASSIC, "newest-unknown"]), version)
        out[f"v{version}"] = [
            {
                "group": g.group_id,
                "error": g.error_code,
                "message": g.error_message,
                "state": g.group_state,
                "member_types": [m.member_type if version >= 1 else None for m in g.members],
            }
            for g in resp.groups
        ]
    return out


def _unregistered(message: str | None, broker: int) -> str | None:
    """The message with the unregistered broker's id (the broker's own id + 1000) normalised."""
    return None if message is None else message.replace(str(broker), "<unregistered>")


def alter_partition_reassignments(c: RawClient) -> dict[str, Any]:
    node = _node_id(c)
    out: dict[str, Any] = {}
    for name, (allow, replicas) in {
        "same replicas, change refused": (False, [node]),
        "more replicas, change refused": (False, [node, node + 1000]),
        "more replicas, change allowed": (True, [node, node + 1000]),
        "cancel, change refused": (False, None),
    }.items():
        req = AlterPartitionReassignmentsRequest(
            timeout_ms=10_000,
            allow_replication_factor_change=allow,
            topics=[
                ReassignableTopic(name=TOPIC, partitions=[ReassignablePartition(partition_index=0, replicas=replicas)])
            ],
        )
        resp = c.request(req, 1)
        out[name] = {
            "error": resp.error_code,
            "message": resp.error_message,
            "allow": resp.allow_replication_factor_change,
            "partitions": [
                [t.name, p.partition_index, p.error_code, _unregistered(p.error_message, node + 1000)]
                for t in resp.responses
                for p in t.partitions
            ],
        }
    return out


def write_txn_markers(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for version, tv in ((1, 0), (2, 0), (2, 2)):
        req = WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=987_654 + version * 10 + tv,
                    producer_epoch=0,
                    transaction_result=False,
                    topics=[
                        WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0]),
                        WritableTxnMarkerTopic(name="newest-no-such-topic", partition_indexes=[0]),
                    ],
                    coordinator_epoch=0,
                    transaction_version=tv,
                )
            ]
        )
        resp = c.request(req, version)
        out[f"v{version} tv{tv}"] = sorted(  # Kafka answers in its map's order
            [t.name, p.partition_index, p.error_code] for m in resp.markers for t in m.topics for p in t.partitions
        )
    # one producer's markers in turn: (request version, transaction version, producer epoch)
    sequence = [(1, 0, 5), (2, 2, 5), (2, 2, 4), (2, 2, 6), (2, 0, 6), (2, 2, 6), (2, 0, 5), (1, 0, 7), (2, 2, 8)]
    answers = []
    for version, tv, epoch in sequence:
        req = WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=555_555,
                    producer_epoch=epoch,
                    transaction_result=True,
                    topics=[WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0])],
                    coordinator_epoch=0,
                    transaction_version=tv,
                )
            ]
        )
        resp = c.request(req, version)
        answers.append([version, tv, epoch, resp.markers[0].topics[0].partitions[0].error_code])
    out["one producer"] = answers
    out["open transaction"] = _markers_on_open_transaction(c)
    return out


def _markers_on_open_transaction(c: RawClient) -> list[list[int]]:
    """A transaction with a record on the partition, then markers of transaction version 2 at its
    epoch (not bumped) and above, and a data batch after them."""
    init = InitProducerIdRequest(transactional_id="newest-txn-markers", transaction_timeout_ms=600_000)
    resp = _until_ready(c, init, 4, lambda r: r.error_code)
    pid, epoch = resp.producer_id, resp.producer_epoch
    c.request(
        AddPartitionsToTxnRequest(
            v3_and_below_transactional_id="newest-txn-markers",
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[AddPartitionsToTxnTopic(name=TOPIC, partitions=[0])],
        ),
        3,
    )
    out = [[-1, _produce_txn(c, pid, epoch, 0)]]
    for delta in (0, 1, 1, 0):
        req = WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=pid,
                    producer_epoch=epoch + delta,
                    transaction_result=True,
                    topics=[WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0])],
                    coordinator_epoch=0,
                    transaction_version=2,
                )
            ]
        )
        resp = c.request(req, 2)
        out.append([delta, resp.markers[0].topics[0].partitions[0].error_code])
    return out


def _produce_txn(c: RawClient, pid: int, epoch: int, sequence: int) -> int:
    batch = records.build_batch(
        [(b"k", b"v", [], int(time.time() * 1000))],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=sequence,
        is_transactional=True,
    )
    req = ProduceRequest(
        transactional_id="newest-txn-markers",
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=0, records=bytes(batch))])],
    )
    resp = c.request(req, 11)
    return int(resp.responses[0].partition_responses[0].error_code)


def describe_log_dirs(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for version in (4, 5):
        resp = c.request(DescribeLogDirsRequest(topics=[DescribableLogDirTopic(topic=TOPIC, partitions=[0])]), version)
        out[f"v{version}"] = {
            "error": resp.error_code,
            "dirs": [
                {
                    "error": r.error_code,
                    "cordoned": r.is_cordoned if version >= 5 else None,
                    "total": "set" if r.total_bytes > 0 else r.total_bytes,
                    "usable": "set" if r.usable_bytes > 0 else r.usable_bytes,
                    "topics": [[t.name, [p.partition_index for p in t.partitions]] for t in r.topics],
                }
                for r in resp.results
            ],
        }
    return out


# ------------------------------------------------- Fetch 18, ListOffsets 11, Metadata 13, offsets 10


def _topic_id(c: RawClient, name: str = TOPIC) -> uuid.UUID:
    resp = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=name)]), 12)
    return uuid.UUID(str(resp.topics[0].topic_id))


def _own_topic(c: RawClient, name: str) -> uuid.UUID:
    """A topic of the section's own (the others write to TOPIC), with one partition."""
    c.request(
        CreateTopicsRequest(
            topics=[CreatableTopic(name=name, num_partitions=1, replication_factor=1)], timeout_ms=10_000
        ),
        7,
    )
    time.sleep(0.5)
    return _topic_id(c, name)


def _produce(c: RawClient, topic: str, count: int, age_ms: int = 0) -> None:
    """`count` records in one batch stamped `age_ms` ago, sent again while the new topic's leader is
    not ready."""
    stamp = int(time.time() * 1000) - age_ms
    batch = records.build_batch([(b"k", b"v%d" % i, [], stamp) for i in range(count)])
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=bytes(batch))])],
    )
    deadline = time.monotonic() + 20
    while c.request(req, 11).responses[0].partition_responses[0].error_code and time.monotonic() < deadline:
        time.sleep(0.2)


def metadata_v13(c: RawClient) -> dict[str, Any]:
    tid = _topic_id(c)
    out: dict[str, Any] = {}
    for version in (12, 13):
        for name, topics in {
            "by name": [MetadataRequestTopic(name=TOPIC)],
            "unknown name": [MetadataRequestTopic(name="newest-no-such-topic")],
            "by id": [MetadataRequestTopic(name=None, topic_id=tid)],
            "unknown id": [MetadataRequestTopic(name=None, topic_id=uuid.UUID(int=424242))],
        }.items():
            resp = c.request(MetadataRequest(topics=topics, allow_auto_topic_creation=False), version)
            out[f"v{version} {name}"] = {
                "error": getattr(resp, "error_code", None) if version >= 13 else None,
                "topics": [
                    [t.error_code, t.name, "the id" if t.topic_id == tid else str(t.topic_id), len(t.partitions)]
                    for t in resp.topics
                ],
            }
    return out


def fetch_v18(c: RawClient) -> dict[str, Any]:
    tid = _own_topic(c, "newest-fetch")
    _produce(c, "newest-fetch", 3)
    out: dict[str, Any] = {}
    for version, hw in ((17, None), (18, None), (18, -1), (18, 0), (18, 2**63 - 1)):
        part = FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
        if hw is not None:
            part.high_watermark = hw
        req = FetchRequest(
            max_wait_ms=100,
            min_bytes=1,
            session_epoch=-1,
            topics=[
                FetchTopic(topic_id=tid, partitions=[part]),
                FetchTopic(topic_id=uuid.UUID(int=5150), partitions=[FetchPartition(partition=0)]),
            ],
        )
        resp = c.request(req, version)
        out[f"v{version} hw {hw}"] = {
            "error": resp.error_code,
            "partitions": [
                [
                    "the id" if t.topic_id == tid else str(t.topic_id),
                    p.partition_index,
                    p.error_code,
                    p.high_watermark,
                    p.log_start_offset,
                    len(list(records.iter_batches(bytes(p.records)))) if p.records else 0,
                ]
                for t in resp.responses
                for p in t.partitions
            ],
        }
    return out


def list_offsets_v11(c: RawClient) -> dict[str, Any]:
    _own_topic(c, "newest-list-offsets")
    _produce(c, "newest-list-offsets", 2, age_ms=60_000)  # older than the next: one max timestamp
    _produce(c, "newest-list-offsets", 1)
    out: dict[str, Any] = {}
    for version in (9, 10, 11):
        answers = []
        for ts in (-1, -2, -3, -4, -5, -6, 0, 4_102_444_800_000):
            req = ListOffsetsRequest(
                replica_id=-1,
                timeout_ms=1000,
                topics=[
                    ListOffsetsTopic(
                        name="newest-list-offsets", partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts)]
                    )
                ],
            )
            p = c.request(req, version).topics[0].partitions[0]
            answers.append([ts, p.error_code, p.offset, p.leader_epoch, "set" if p.timestamp > 0 else p.timestamp])
        out[f"v{version}"] = answers
    unknown = ListOffsetsRequest(
        timeout_ms=1000,
        topics=[
            ListOffsetsTopic(name="newest-no-such-topic", partitions=[ListOffsetsPartition(partition_index=0)]),
            ListOffsetsTopic(name=TOPIC, partitions=[ListOffsetsPartition(partition_index=9, timestamp=-6)]),
        ],
    )
    out["v11 unknown"] = [
        [t.name, p.partition_index, p.error_code, p.offset] for t in c.request(unknown, 11).topics for p in t.partitions
    ]
    return out


OFFSETS_GROUP = "newest-offsets"


def _commit(c: RawClient, version: int, group: str, topics: list[tuple[str, uuid.UUID, list[int]]]) -> list[Any]:
    req = OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            OffsetCommitRequestTopic(
                name=name,
                topic_id=tid,
                partitions=[
                    OffsetCommitRequestPartition(partition_index=p, committed_offset=7, committed_metadata="m")
                    for p in parts
                ],
            )
            for name, tid, parts in topics
        ],
    )
    resp = _until_ready(c, req, version, lambda r: r.topics[0].partitions[0].error_code if r.topics else 0)
    return [
        [t.name if version < 10 else _id_label(t.topic_id), [[p.partition_index, p.error_code] for p in t.partitions]]
        for t in resp.topics
    ]


_IDS: dict[uuid.UUID, str] = {}


def _id_label(tid: Any) -> str:
    return _IDS.get(uuid.UUID(str(tid)), str(tid))


def _fetched(resp: Any, version: int) -> list[Any]:
    return [
        {
            "group": g.group_id,
            "error": g.error_code,
            "topics": [
                [
                    t.name if version < 10 else _id_label(t.topic_id),
                    [[p.partition_index, p.committed_offset, p.metadata, p.error_code] for p in t.partitions],
                ]
                for t in g.topics
                if version >= 10 or t.name.startswith("newest")
            ],
        }
        for g in resp.groups
    ]


def offset_commit_fetch_v10(c: RawClient) -> dict[str, Any]:
    tid = _topic_id(c)
    unknown = uuid.UUID(int=99_999)
    _IDS.update({tid: "the id", unknown: "unknown id", uuid.UUID(int=0): "zero id"})
    out: dict[str, Any] = {}
    out["commit v9"] = _commit(c, 9, OFFSETS_GROUP, [(TOPIC, uuid.UUID(int=0), [0])])
    out["commit v10"] = _commit(c, 10, OFFSETS_GROUP, [(TOPIC, tid, [0])])
    out["commit v10 mixed"] = _commit(
        c, 10, OFFSETS_GROUP, [(TOPIC, tid, [0, 5]), ("", unknown, [0, 1]), ("", uuid.UUID(int=0), [0])]
    )
    out["commit v10 unknown only"] = _commit(c, 10, OFFSETS_GROUP + "-2", [("", unknown, [0])])
    for version in (9, 10):
        for name, topics in {
            "all": None,
            "named": [(TOPIC, tid, [0, 5])],
            "unknown": [("newest-no-such-topic", unknown, [0])],
        }.items():
            req = OffsetFetchRequest(
                groups=[
                    OffsetFetchRequestGroup(
                        group_id=g,
                        topics=None
                        if topics is None
                        else [
                            OffsetFetchRequestTopics(name=n, topic_id=i, partition_indexes=parts)
                            for n, i, parts in topics
                        ],
                    )
                    for g in (OFFSETS_GROUP, "newest-no-such-group")
                ],
                require_stable=True,
            )
            resp = _until_ready(c, req, version, lambda r: r.groups[0].error_code)
            out[f"fetch v{version} {name}"] = _fetched(resp, version)
    return out


def delete_groups_v3(c: RawClient) -> dict[str, Any]:
    _make_groups(c)
    _commit(c, 9, OFFSETS_GROUP, [(TOPIC, uuid.UUID(int=0), [0])])
    out: dict[str, Any] = {}
    for version in (2, 3):
        req = DeleteGroupsRequest(groups_names=[CONSUMER, "newest-no-such-group", ""])
        resp = c.request(req, version)
        out[f"v{version}"] = sorted(  # Kafka answers in its map's order
            [r.group_id, r.error_code, getattr(r, "error_message", None) if version >= 3 else None]
            for r in resp.results
        )
    resp = c.request(DeleteGroupsRequest(groups_names=[OFFSETS_GROUP, OFFSETS_GROUP]), 3)
    out["v3 twice"] = [[r.group_id, r.error_code, r.error_message] for r in resp.results]
    return out


def api_versions_v5(c: RawClient) -> dict[str, Any]:
    meta = c.request(MetadataRequest(topics=[]), 12)
    cluster, node = meta.cluster_id, meta.brokers[0].node_id
    out: dict[str, Any] = {}
    for name, (cid, nid) in {
        "none": (None, -1),
        "right cluster and node": (cluster, node),
        "right cluster": (cluster, -1),
        "right node": (None, node),
        "wrong cluster": ("AAAAAAAAAAAAAAAAAAAAAA", node),
        "wrong node": (cluster, node + 1000),
        "empty cluster": ("", -1),
        "empty cluster, right node": ("", node),
        "right cluster, node -2": (cluster, -2),
    }.items():
        req = ApiVersionsRequest(
            client_software_name="newest", client_software_version="1", cluster_id=cid, node_id=nid
        )
        host, port = c.sock.getpeername()[:2]
        with RawClient(f"{host}:{port}") as fresh:  # a refusal may close the connection
            try:
                resp = fresh.request(req, 5)
            except (ConnectionError, OSError):
                out[name] = "closed"
                continue
            out[name] = {
                "error": resp.error_code,
                "api_keys": len(resp.api_keys) > 0,
                "max_version": max((k.max_version for k in resp.api_keys if k.api_key == 18), default=None),
            }
    return out


def list_config_resources_v1(c: RawClient) -> dict[str, Any]:
    _make_groups(c)
    node = _node_id(c)
    c.request(
        IncrementalAlterConfigsRequest(
            resources=[
                AlterConfigsResource(
                    resource_type=16,
                    resource_name="newest-metrics",
                    configs=[AlterableConfig(name="interval.ms", config_operation=0, value="60000")],
                ),
            ]
        ),
        1,
    )
    out: dict[str, Any] = {}

    def listed(version: int, types: list[int]) -> Any:
        resp = c.request(ListClientMetricsResourcesRequest(resource_types=types), version)
        rows = resp.client_metrics_resources
        named = sorted(
            [
                "the broker" if r.name == str(node) else r.name,
                getattr(r, "resource_type", None) if version >= 1 else None,
            ]
            for r in rows
            if r.name in (TOPIC, "newest-metrics", "__consumer_offsets", "__transaction_state", str(node), "")
        )
        return {"error": resp.error_code, "resources": named}

    out["v0"] = listed(0, [])
    for name, types in {
        "empty": [],
        "client metrics": [16],
        "topics": [2],
        "brokers": [4],
        "broker loggers": [8],
        "groups": [32],
        "topics and groups": [2, 32],
        "unknown type": [99],
        "unknown and topics": [2, 99],
    }.items():
        out[f"v1 {name}"] = listed(1, types)
    return out


SECTIONS: dict[str, Callable[[RawClient], dict[str, Any]]] = {
    "find_coordinator": find_coordinator,
    "describe_groups": describe_groups,
    "describe_cluster": describe_cluster,
    "list_transactions": list_transactions,
    "consumer_group_describe": consumer_group_describe,
    "alter_partition_reassignments": alter_partition_reassignments,
    "write_txn_markers": write_txn_markers,
    "describe_log_dirs": describe_log_dirs,
    "metadata_v13": metadata_v13,
    "fetch_v18": fetch_v18,
    "list_offsets_v11": list_offsets_v11,
    "offset_commit_fetch_v10": offset_commit_fetch_v10,
    "list_config_resources_v1": list_config_resources_v1,
}
# Versions new in Kafka 4.4.0: recorded from it into their own golden file.
SECTIONS_44: dict[str, Callable[[RawClient], dict[str, Any]]] = {
    "delete_groups_v3": delete_groups_v3,
    "api_versions_v5": api_versions_v5,
}


def run(bootstrap: str, sections: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        _setup(c)
        for name, fn in {**SECTIONS, **SECTIONS_44}.items():
            if (sections is None and name in SECTIONS) or (sections is not None and name in sections):
                out[name] = fn(c)
    return out


def load(release: str | None = None) -> dict[str, Any]:
    return load_golden(GOLDEN_44 if release == REFERENCE_44 else GOLDEN, meta=False)


def _record_sections(names: list[str]) -> Path:
    """Record `names` only and merge them into their golden file (4.4.0's for SECTIONS_44)."""
    newer = [n for n in names if n in SECTIONS_44]
    if newer and len(newer) != len(names):
        raise SystemExit("record 4.3.1 and 4.4.0 sections separately")
    path, release = (GOLDEN_44, REFERENCE_44) if newer else (GOLDEN, None)
    with tempfile.TemporaryDirectory() as tmp:
        recorded = record_golden(Path(tmp) / "x.json", "kafka-newest-", lambda b: run(b, names), release=release)
        answers = json.loads(recorded.read_text())
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(answers)
    return save_golden(path, merged)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record_golden(GOLDEN, "kafka-newest-", run))
        print(_record_sections(list(SECTIONS_44)))
        return 0
    if argv[1:2] == ["record"]:
        print(_record_sections(argv[2:]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
