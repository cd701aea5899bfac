"""Differential tests: the same scripted raw requests to Apache Kafka and to
kafkapy, responses compared field by field after normalising what
legitimately differs.

The script (`SCRIPT`) is a list of steps; each builds one request (kafkapy's
own codec, `kafkapy.protocol.frames`) and names it. `run_script(bootstrap)`
sends them in order over one blocking connection and returns each step's
normalised response as plain JSON data. `diff(kafka, kafkapy)` lists the
differing paths.

Apache Kafka's answers are kept as golden fixtures in interop/golden_kafka/
so the comparison runs without a JVM (interop/test_differential.py):

    python -m interop.differential regenerate   # start Apache Kafka, rewrite the fixtures
    python -m interop.differential compare      # start both brokers, print the differences

Normalised away: throttle times, cluster ids, node ids' hosts and ports,
topic ids (kept as "zero"/"set"), timestamps (log append times: "set"/-1),
session and member ids, producer ids, log dir paths, log sizes (">0"),
finalized-feature epochs, telemetry client instance and subscription ids,
error message texts (kept as "null"/"set").

Steps may use what earlier answers gave (CTX: member ids, generations,
producer ids, topic ids); raw steps send hand-built frames and record whether
the broker answered or closed the connection.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkapy.protocol import records
from kafkapy.protocol.api import api_spec
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkapy.protocol.messages.alter_configs_request import (
    AlterableConfig,
    AlterConfigsRequest,
    AlterConfigsResource,
)
from kafkapy.protocol.messages.alter_share_group_offsets_request import (
    AlterShareGroupOffsetsRequest,
    AlterShareGroupOffsetsRequestPartition,
    AlterShareGroupOffsetsRequestTopic,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.consumer_group_describe_request import (
    ConsumerGroupDescribeRequest,
)
from kafkapy.protocol.messages.consumer_group_heartbeat_request import (
    ConsumerGroupHeartbeatRequest,
)
from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkapy.protocol.messages.create_partitions_request import (
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkapy.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkapy.protocol.messages.delete_acls_request import (
    DeleteAclsFilter,
    DeleteAclsRequest,
)
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.delete_records_request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kafkapy.protocol.messages.delete_share_group_offsets_request import (
    DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequestTopic,
)
from kafkapy.protocol.messages.delete_share_group_state_request import (
    DeleteShareGroupStateRequest,
    DeleteStateData,
)
from kafkapy.protocol.messages.delete_share_group_state_request import PartitionData as DeletePartition
from kafkapy.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.protocol.messages.describe_client_quotas_request import (
    ComponentData as QuotaComponent,
)
from kafkapy.protocol.messages.describe_client_quotas_request import (
    DescribeClientQuotasRequest,
)
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.describe_log_dirs_request import (
    DescribableLogDirTopic,
    DescribeLogDirsRequest,
)
from kafkapy.protocol.messages.describe_producers_request import (
    DescribeProducersRequest,
)
from kafkapy.protocol.messages.describe_producers_request import TopicRequest as DpTopic
from kafkapy.protocol.messages.describe_share_group_offsets_request import (
    DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequestGroup,
    DescribeShareGroupOffsetsRequestTopic,
)
from kafkapy.protocol.messages.describe_topic_partitions_request import (
    DescribeTopicPartitionsRequest,
)
from kafkapy.protocol.messages.describe_topic_partitions_request import (
    TopicRequest as DtpTopic,
)
from kafkapy.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    UserName as ScramUser,
)
from kafkapy.protocol.messages.elect_leaders_request import ElectLeadersRequest
from kafkapy.protocol.messages.elect_leaders_request import TopicPartitions as ElectTopicPartitions
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
)
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.heartbeat_request import HeartbeatRequest
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig as IncAlterableConfig,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterConfigsResource as IncAlterConfigsResource,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.initialize_share_group_state_request import (
    InitializeShareGroupStateRequest,
    InitializeStateData,
)
from kafkapy.protocol.messages.initialize_share_group_state_request import PartitionData as InitPartition
from kafkapy.protocol.messages.join_group_request import (
    JoinGroupRequest,
    JoinGroupRequestProtocol,
)
from kafkapy.protocol.messages.leave_group_request import (
    LeaveGroupRequest,
    MemberIdentity,
)
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsTopics,
)
from kafkapy.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkapy.protocol.messages.metadata_request import (
    MetadataRequest,
    MetadataRequestTopic,
)
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
from kafkapy.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopic,
    OffsetFetchRequestTopics,
)
from kafkapy.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kafkapy.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkapy.protocol.messages.read_share_group_state_request import PartitionData as ReadPartition
from kafkapy.protocol.messages.read_share_group_state_request import ReadShareGroupStateRequest, ReadStateData
from kafkapy.protocol.messages.read_share_group_state_summary_request import PartitionData as SummaryPartition
from kafkapy.protocol.messages.read_share_group_state_summary_request import (
    ReadShareGroupStateSummaryRequest,
    ReadStateSummaryData,
)
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.messages.share_acknowledge_request import ShareAcknowledgeRequest
from kafkapy.protocol.messages.share_fetch_request import ShareFetchRequest
from kafkapy.protocol.messages.share_group_describe_request import ShareGroupDescribeRequest
from kafkapy.protocol.messages.share_group_heartbeat_request import ShareGroupHeartbeatRequest
from kafkapy.protocol.messages.sync_group_request import (
    SyncGroupRequest,
    SyncGroupRequestAssignment,
)
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.unregister_broker_request import UnregisterBrokerRequest
from kafkapy.protocol.messages.write_share_group_state_request import PartitionData as WritePartition
from kafkapy.protocol.messages.write_share_group_state_request import (
    StateBatch,
    WriteShareGroupStateRequest,
    WriteStateData,
)
from kafkapy.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)
from kafkapy.protocol.primitives import FAULTS, Entity, Message
from kafkapy.protocol.uuids import uuid_text

GOLDEN_DIR = Path(__file__).resolve().parent / "golden_kafka"
GOLDEN_FILE = GOLDEN_DIR / "responses.json"

# Fixed names: the script runs against a fresh broker, so its answers are deterministic.
KNOWN = "diff-known"  # 2 partitions, created by the script
EMPTY = "diff-empty"  # 1 partition, never written
MISSING = "diff-missing"  # never created, never auto-created (allow_auto_topic_creation=False)
T0 = 1_700_000_000_000  # record timestamps (CreateTime)


# ---------------------------------------------------------------- connection


class Conn:
    """One blocking connection; `call` sends a request and decodes its answer."""

    def __init__(self, bootstrap: str, timeout: float = 15.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def call(
        self,
        body: Message,
        version: int,
        raw: bytes | None = None,
        answer_version: int | None = None,
    ) -> Message:
        self.correlation_id += 1
        frame = (
            raw
            if raw is not None
            else encode_request(body, version, self.correlation_id, client_id="kafkapy-differential")
        )
        self.sock.sendall(frame)
        size = struct.unpack(">i", self._read(4))[0]
        cid, resp = decode_response(
            body.API_KEY,
            version if answer_version is None else answer_version,
            self._read(size),
        )
        if cid != self.correlation_id:
            raise ValueError(f"correlation id {cid}, expected {self.correlation_id}")
        return resp

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            out += chunk
        return bytes(out)


# ---------------------------------------------------------------- normalising

ZERO_UUID = uuid.UUID(int=0)
DROP = {
    "throttle_time_ms",
    "unknown_tagged_fields",
    "cluster_id",
    "host",
    "port",
    "rack",
}
SET_OR_NOT = {
    "error_message",
    "member_id",
    "session_id",
    "topic_id",
    "log_append_time_ms",
    "client_id",
    "client_host",
    "leader",  # JoinGroup: the leader's member id
    "producer_id",
    "last_timestamp",
    "transaction_start_time_ms",
    "log_dir",
    "finalized_features_epoch",
    "client_instance_id",  # GetTelemetrySubscriptions: random per answer
    "subscription_id",
    "batch_index_error_message",  # Produce record_errors: hold timestamps and offsets of the run
}
SIZES = {"partition_size", "total_bytes", "usable_bytes"}  # kept as ">0", 0 or -1


def to_data(value: Any) -> Any:
    """Entities as dicts (slot order), bytes as their length, UUIDs as strings."""
    if isinstance(value, Entity):
        slots: tuple[str, ...] = value.__slots__
        return {name: to_data(getattr(value, name)) for name in slots}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            if key in DROP:
                continue
            if key in SET_OR_NOT:
                if v in (None, "", -1, str(ZERO_UUID)):
                    out[key] = v if v in (None, -1) else "unset"
                else:
                    out[key] = "set"
                continue
            if key in SIZES and isinstance(v, int):
                out[key] = ">0" if v > 0 else v
                continue
            if key in (
                "node_id",
                "leader_id",
                "controller_id",
                "coordinator_id",
                "broker_id",
            ) and isinstance(v, int):
                out[key] = "node" if v >= 0 else v
                continue
            if key in ("replica_nodes", "isr_nodes", "offline_replicas") and isinstance(v, list):
                out[key] = ["node" for _ in v]
                continue
            if key == "configs" and isinstance(v, list) and all(isinstance(c, dict) and "name" in c for c in v):
                # a set keyed by name, not a sequence
                out[key] = {str(c["name"]): normalise({k: x for k, x in c.items() if k != "name"}) for c in v}
                continue
            out[key] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def diff(kafka: Any, ours: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, Kafka's value, kafkapy's value) for every difference."""
    if isinstance(kafka, dict) and isinstance(ours, dict):
        out = []
        for key in list(kafka) + [k for k in ours if k not in kafka]:
            out += diff(
                kafka.get(key, "<absent>"),
                ours.get(key, "<absent>"),
                f"{path}.{key}" if path else key,
            )
        return out
    if isinstance(kafka, list) and isinstance(ours, list):
        if len(kafka) != len(ours):
            return [(f"{path}[len]", len(kafka), len(ours))] + [
                d for i, (a, b) in enumerate(zip(kafka, ours)) for d in diff(a, b, f"{path}[{i}]")
            ]
        return [d for i, (a, b) in enumerate(zip(kafka, ours)) for d in diff(a, b, f"{path}[{i}]")]
    if kafka == _ABSENT and ours in _DEFAULTS:
        return []  # a field newer than the golden's codec (e.g. a later version's topic id), at its default
    return [] if kafka == ours else [(path, kafka, ours)]


_ABSENT = "<absent>"
# what a field the request's version does not carry decodes to
_DEFAULTS: tuple[Any, ...] = ("unset", None, -1, "", 0, False, [])


# ---------------------------------------------------------------- the script


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    build: Callable[[], Message]
    version: int
    # post-processing of the normalised answer (sorting lists whose order is not meaningful)
    post: Callable[[Any], Any] | None = None
    # send these bytes instead of encoding `build()` (malformed requests); `build()` still names the API
    raw: Callable[[int], bytes] | None = None
    # decode the answer at this version (ApiVersions above the maximum is answered in v0)
    answer_version: int | None = None
    # remember parts of the raw answer in CTX for later steps (member ids, generations, producer ids)
    save: Callable[[Any], None] | None = None
    # add what this gives for the raw answer under "inspected" (e.g. the batches a Fetch returned)
    inspect: Callable[[Any], Any] | None = None
    # more error codes to retry on (NOT_LEADER_OR_FOLLOWER while a new topic's leaders are elected)
    retriable: frozenset[int] = frozenset()


def _batch(n: int, start: int = 0) -> bytes:
    return bytes(
        records.build_batch([(f"k{i}".encode(), f"v{i}".encode(), [], T0 + i) for i in range(start, start + n)])
    )


def _corrupt_crc(n: int) -> bytes:
    b = bytearray(_batch(n))
    b[-1] ^= 0xFF  # last payload byte: the CRC (bytes 17-20) no longer matches
    return bytes(b)


def produce(topic: str, partition: int, data: bytes, acks: int = -1) -> ProduceRequest:
    return ProduceRequest(
        acks=acks,
        timeout_ms=5000,
        topic_data=[
            TopicProduceData(
                name=topic,
                partition_data=[PartitionProduceData(index=partition, records=data)],
            )
        ],
    )


def fetch(topic: str, partition: int, offset: int, max_bytes: int = 1 << 20) -> FetchRequest:
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[
                    FetchPartition(
                        partition=partition,
                        fetch_offset=offset,
                        partition_max_bytes=max_bytes,
                    )
                ],
            )
        ],
    )


def list_offsets(topic: str, partitions: list[int], timestamp: int) -> ListOffsetsRequest:
    return ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        topics=[
            ListOffsetsTopic(
                name=topic,
                partitions=[
                    ListOffsetsPartition(partition_index=p, current_leader_epoch=-1, timestamp=timestamp)
                    for p in partitions
                ],
            )
        ],
    )


def create(*topics: CreatableTopic, validate_only: bool = False) -> CreateTopicsRequest:
    return CreateTopicsRequest(topics=list(topics), timeout_ms=10_000, validate_only=validate_only)


def topic(name: str, partitions: int = 1, rf: int = 1, **configs: str) -> CreatableTopic:
    return CreatableTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=rf,
        configs=[CreatableTopicConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()],
    )


def metadata(*names: str, auto: bool = False) -> MetadataRequest:
    return MetadataRequest(
        topics=[MetadataRequestTopic(name=n) for n in names],
        allow_auto_topic_creation=auto,
    )


def _sort_topics(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("topics"), list):
        data["topics"] = sorted(data["topics"], key=lambda t: str(t.get("name")))
    return data


def _only_script_topics(data: Any) -> Any:
    """Metadata for all topics: keep the script's own (Kafka may have __consumer_offsets)."""
    data = _sort_topics(data)
    data["topics"] = [t for t in data["topics"] if str(t.get("name", "")).startswith("diff-")]
    return data


def _api_ranges(data: Any) -> Any:
    return data  # ApiVersions is compared range by range by compare_api_versions, not field by field


SCRIPT: list[Step] = [
    Step(
        "api_versions_v3",
        lambda: ApiVersionsRequest(client_software_name="kafkapy-diff", client_software_version="1"),
        3,
        _api_ranges,
    ),
    # CreateTopics and its errors
    Step(
        "create_known",
        lambda: create(topic(KNOWN, 2), topic(EMPTY, 1)),
        7,
        _sort_topics,
    ),
    Step("create_exists", lambda: create(topic(KNOWN, 2)), 7),
    Step("create_bad_name", lambda: create(topic("bad/name")), 7),
    Step("create_dot_name", lambda: create(topic("..")), 7),
    Step("create_long_name", lambda: create(topic("x" * 250)), 7),
    Step("create_zero_partitions", lambda: create(topic("diff-zero", 0)), 7),
    Step("create_negative_partitions", lambda: create(topic("diff-neg", -2)), 7),
    Step("create_bad_rf", lambda: create(topic("diff-rf", 1, 3)), 7),
    Step("create_zero_rf", lambda: create(topic("diff-rf0", 1, 0)), 7),
    Step(
        "create_bad_config_value",
        lambda: create(topic("diff-cfg", 1, cleanup_policy="nope")),
        7,
    ),
    Step(
        "create_unknown_config",
        lambda: create(topic("diff-cfg2", 1, no_such_config="1")),
        7,
    ),
    Step(
        "create_validate_only",
        lambda: create(topic("diff-dry", 3), validate_only=True),
        7,
    ),
    Step(
        "create_duplicate_in_request",
        lambda: create(topic("diff-dup"), topic("diff-dup")),
        7,
    ),
    # Metadata
    Step("metadata_known", lambda: metadata(KNOWN, EMPTY), 12, _sort_topics),
    Step("metadata_unknown", lambda: metadata(MISSING), 12),
    Step("metadata_invalid_name", lambda: metadata("bad/name"), 12),
    Step("metadata_all", lambda: MetadataRequest(topics=None), 12, _only_script_topics),
    Step("metadata_known_v1", lambda: metadata(KNOWN), 1, _sort_topics),
    # Produce
    Step("produce_ok", lambda: produce(KNOWN, 0, _batch(3)), 9),
    Step("produce_ok_again", lambda: produce(KNOWN, 0, _batch(2, 3)), 9),
    Step("produce_unknown_topic", lambda: produce(MISSING, 0, _batch(1)), 9),
    Step("produce_unknown_partition", lambda: produce(KNOWN, 7, _batch(1)), 9),
    Step("produce_corrupt_crc", lambda: produce(KNOWN, 1, _corrupt_crc(2)), 9),
    Step("produce_invalid_topic", lambda: produce("bad/name", 0, _batch(1)), 9),
    # Fetch
    Step("fetch_ok", lambda: fetch(KNOWN, 0, 0), 12),
    Step("fetch_at_end", lambda: fetch(KNOWN, 0, 5), 12),
    Step("fetch_out_of_range_high", lambda: fetch(KNOWN, 0, 6), 12),
    Step("fetch_out_of_range_negative", lambda: fetch(KNOWN, 0, -1), 12),
    Step("fetch_unknown_partition", lambda: fetch(KNOWN, 9, 0), 12),
    Step("fetch_unknown_topic", lambda: fetch(MISSING, 0, 0), 12),
    Step("fetch_empty", lambda: fetch(EMPTY, 0, 0), 12),
    # ListOffsets
    Step("list_offsets_latest", lambda: list_offsets(KNOWN, [0, 1], -1), 7),
    Step("list_offsets_earliest", lambda: list_offsets(KNOWN, [0, 1], -2), 7),
    Step("list_offsets_max_timestamp", lambda: list_offsets(KNOWN, [0], -3), 7),
    Step("list_offsets_for_time", lambda: list_offsets(KNOWN, [0], T0 + 2), 7),
    Step("list_offsets_after_last", lambda: list_offsets(KNOWN, [0], T0 + 100), 7),
    Step("list_offsets_unknown_partition", lambda: list_offsets(KNOWN, [5], -1), 7),
    Step("list_offsets_unknown_topic", lambda: list_offsets(MISSING, [0], -1), 7),
    Step("list_offsets_empty", lambda: list_offsets(EMPTY, [0], -1), 7),
    Step("list_offsets_v0_latest", lambda: list_offsets(KNOWN, [0], -1), 1),
]


# ---------------------------------------------------------------- every advertised API, lowest and highest shared version

# What earlier answers told later steps (member ids, generations, producer ids, topic ids);
# reset by run_script, so each broker's own ids are used against it.
CTX: dict[str, Any] = {}

GROUP0 = "diff-group-v0"  # classic group driven with the lowest versions
GROUP9 = "diff-group-hi"  # classic group driven with the highest versions
NO_GROUP = "diff-no-such-group"
TXN = "diff-txn"
GROW = "diff-grow"  # CreatePartitions target
DOOMED = "diff-doomed"  # DeleteTopics targets
DOOMED6 = "diff-doomed6"


def _save(**paths: Callable[[Any], Any]) -> Callable[[Any], None]:
    def save(resp: Any) -> None:
        for key, get in paths.items():
            CTX[key] = get(resp)

    return save


def _topic_ids(resp: Any) -> None:
    CTX.setdefault("topic_ids", {}).update({t.name: t.topic_id for t in resp.topics})


def _sorted(field: str, key: str) -> Callable[[Any], Any]:
    def post(data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get(field), list):
            data[field] = sorted(data[field], key=lambda x: str(x.get(key)))
        return data

    return post


def _subscription(*topics: str) -> bytes:
    # ConsumerProtocolSubscription v0: version, topics, user data (null)
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def _assignment(topic_name: str, partitions: list[int]) -> bytes:
    out = struct.pack(">hi", 0, 1) + struct.pack(">h", len(topic_name)) + topic_name.encode()
    out += struct.pack(">i", len(partitions)) + b"".join(struct.pack(">i", p) for p in partitions)
    return out + struct.pack(">i", -1)


def join(group: str, member: str = "") -> JoinGroupRequest:
    return JoinGroupRequest(
        group_id=group,
        session_timeout_ms=30_000,
        rebalance_timeout_ms=30_000,
        member_id=member,
        protocol_type="consumer",
        protocols=[JoinGroupRequestProtocol(name="range", metadata=_subscription(KNOWN))],
    )


def sync(group: str, generation: int, member: str, assign: bool = True) -> SyncGroupRequest:
    return SyncGroupRequest(
        group_id=group,
        generation_id=generation,
        member_id=member,
        protocol_type="consumer",
        protocol_name="range",
        assignments=[SyncGroupRequestAssignment(member_id=member, assignment=_assignment(KNOWN, [0, 1]))]
        if assign
        else [],
    )


def heartbeat(group: str, generation: int, member: str) -> HeartbeatRequest:
    return HeartbeatRequest(group_id=group, generation_id=generation, member_id=member)


def commit(group: str, generation: int, member: str, offset: int = 2, version: int = 0) -> OffsetCommitRequest:
    return OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member,
        retention_time_ms=-1,
        topics=[
            OffsetCommitRequestTopic(
                name=KNOWN,
                topic_id=CTX["topic_ids"][KNOWN] if version >= 10 else ZERO_UUID,  # v10: by id (KIP-848)
                partitions=[
                    OffsetCommitRequestPartition(
                        partition_index=0,
                        committed_offset=offset,
                        committed_metadata="m",
                    )
                ],
            )
        ],
    )


def offset_fetch(group: str, version: int) -> OffsetFetchRequest:
    if version >= 8:
        return OffsetFetchRequest(
            groups=[
                OffsetFetchRequestGroup(
                    group_id=group,
                    topics=[
                        OffsetFetchRequestTopics(
                            name=KNOWN,
                            topic_id=CTX["topic_ids"][KNOWN] if version >= 10 else ZERO_UUID,
                            partition_indexes=[0, 1],
                        )
                    ],
                )
            ]
        )
    return OffsetFetchRequest(
        group_id=group,
        topics=[OffsetFetchRequestTopic(name=KNOWN, partition_indexes=[0, 1])],
    )


def leave(group: str, member: str, version: int) -> LeaveGroupRequest:
    if version >= 3:
        return LeaveGroupRequest(group_id=group, members=[MemberIdentity(member_id=member, reason="diff")])
    return LeaveGroupRequest(group_id=group, member_id=member)


def describe_groups(*groups: str) -> DescribeGroupsRequest:
    return DescribeGroupsRequest(groups=list(groups))


def find_coordinator(key: str, key_type: int, version: int) -> FindCoordinatorRequest:
    if version >= 4:
        return FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key])
    return FindCoordinatorRequest(key=key, key_type=key_type)


def cgh(group: str, member: str, epoch: int, topics: list[str] | None = None) -> ConsumerGroupHeartbeatRequest:
    return ConsumerGroupHeartbeatRequest(
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        rebalance_timeout_ms=30_000 if epoch == 0 else -1,
        subscribed_topic_names=topics,
        topic_partitions=[] if epoch == 0 else None,
    )


def describe_configs(rtype: int, name: str, keys: list[str] | None) -> DescribeConfigsRequest:
    return DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=rtype, resource_name=name, configuration_keys=keys)],
        include_synonyms=False,
    )


def alter_configs(name: str, validate_only: bool = False, **configs: str) -> AlterConfigsRequest:
    return AlterConfigsRequest(
        resources=[
            AlterConfigsResource(
                resource_type=2,
                resource_name=name,
                configs=[AlterableConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()],
            )
        ],
        validate_only=validate_only,
    )


def incremental(
    name: str, *ops: tuple[str, int, str | None], validate_only: bool = False
) -> IncrementalAlterConfigsRequest:
    return IncrementalAlterConfigsRequest(
        resources=[
            IncAlterConfigsResource(
                resource_type=2,
                resource_name=name,
                configs=[IncAlterableConfig(name=n, config_operation=op, value=v) for n, op, v in ops],
            )
        ],
        validate_only=validate_only,
    )


def delete_records(name: str, partition: int, offset: int) -> DeleteRecordsRequest:
    return DeleteRecordsRequest(
        topics=[
            DeleteRecordsTopic(
                name=name,
                partitions=[DeleteRecordsPartition(partition_index=partition, offset=offset)],
            )
        ],
        timeout_ms=5000,
    )


def epoch_request(name: str, partition: int, epoch: int, current: int = -1) -> OffsetForLeaderEpochRequest:
    return OffsetForLeaderEpochRequest(
        replica_id=-1,
        topics=[
            OffsetForLeaderTopic(
                topic=name,
                partitions=[
                    OffsetForLeaderPartition(
                        partition=partition,
                        current_leader_epoch=current,
                        leader_epoch=epoch,
                    )
                ],
            )
        ],
    )


def delete_topics(name: str, version: int) -> DeleteTopicsRequest:
    if version >= 6:
        return DeleteTopicsRequest(topics=[DeleteTopicState(name=name)], timeout_ms=10_000)
    return DeleteTopicsRequest(topic_names=[name], timeout_ms=10_000)


def create_partitions(name: str, count: int, validate_only: bool = False) -> CreatePartitionsRequest:
    return CreatePartitionsRequest(
        topics=[CreatePartitionsTopic(name=name, count=count, assignments=None)],
        timeout_ms=10_000,
        validate_only=validate_only,
    )


def init_pid(txn: str | None, producer_id: int = -1, epoch: int = -1) -> InitProducerIdRequest:
    return InitProducerIdRequest(
        transactional_id=txn,
        transaction_timeout_ms=60_000,
        producer_id=producer_id,
        producer_epoch=epoch,
    )


def _pid() -> int:
    return int(CTX.get("pid", -1))


def _epoch() -> int:
    return int(CTX.get("epoch", -1))


def add_partitions(txn: str, epoch_delta: int, version: int, partitions: list[int]) -> AddPartitionsToTxnRequest:
    topics = [AddPartitionsToTxnTopic(name=KNOWN, partitions=partitions)]
    if version >= 4:
        return AddPartitionsToTxnRequest(
            transactions=[
                AddPartitionsToTxnTransaction(
                    transactional_id=txn,
                    producer_id=_pid(),
                    producer_epoch=_epoch() + epoch_delta,
                    verify_only=False,
                    topics=topics,
                )
            ]
        )
    return AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn,
        v3_and_below_producer_id=_pid(),
        v3_and_below_producer_epoch=_epoch() + epoch_delta,
        v3_and_below_topics=topics,
    )


def txn_commit(group: str) -> TxnOffsetCommitRequest:
    return TxnOffsetCommitRequest(
        transactional_id=TXN,
        group_id=group,
        producer_id=_pid(),
        producer_epoch=_epoch(),
        generation_id=-1,
        member_id="",
        topics=[
            TxnOffsetCommitRequestTopic(
                name=KNOWN,
                partitions=[TxnOffsetCommitRequestPartition(partition_index=1, committed_offset=0)],
            )
        ],
    )


def _frame(
    api_key: int,
    version: int,
    correlation_id: int,
    body: bytes,
    size: int | None = None,
    flexible: bool = False,
) -> bytes:
    """A hand-built request header ("client" as client id; v2 with an empty tag
    section if `flexible`, else v1) and `body`; `size` overrides the length prefix."""
    payload = (
        struct.pack(">hhih", api_key, version, correlation_id, 6) + b"client" + (b"\x00" if flexible else b"") + body
    )
    return struct.pack(">i", len(payload) if size is None else size) + payload


def _txn_states(data: Any) -> Any:
    """DescribeTransactions: sorted; __consumer_offsets partition numbers dropped (they
    depend on offsets.topic.num.partitions, 1 on the reference broker)."""
    data = _sorted("transaction_states", "transactional_id")(data)
    for state in data.get("transaction_states", []):
        for t in state.get("topics", []):
            if t.get("topic") == "__consumer_offsets":
                t["partitions"] = ["p" for _ in t["partitions"]]
    return data


def _ranges_of(*keys: int) -> Callable[[Any], Any]:
    def post(data: Any) -> Any:
        data["api_keys"] = [k for k in data.get("api_keys", []) if k["api_key"] in keys]
        return data

    return post


def _steps_per_version(
    name: str,
    versions: tuple[int, ...],
    build: Callable[[int], Callable[[], Message]],
    **kw: Any,
) -> list[Step]:
    return [Step(f"{name}_v{v}", build(v), v, **kw) for v in versions]


ACL_FILTER: dict[str, Any] = {
    "resource_type_filter": 2,
    "resource_name_filter": KNOWN,
    "pattern_type_filter": 3,
    "principal_filter": None,
    "host_filter": None,
    "operation": 2,
    "permission_type": 1,
}

COVERAGE_SCRIPT: list[Step] = [
    # ApiVersions: every version, and one above the maximum (answered in v0)
    Step("api_versions_v0", lambda: ApiVersionsRequest(), 0, _api_ranges),
    Step(
        "api_versions_v4",
        lambda: ApiVersionsRequest(client_software_name="kafkapy-diff", client_software_version="1"),
        4,
        _api_ranges,
    ),
    Step(
        "apiversions_above_max_v6",
        lambda: ApiVersionsRequest(client_software_name="kafkapy-diff", client_software_version="1"),
        6,
        _ranges_of(18),
        raw=lambda cid: _frame(18, 6, cid, b"\x0dkafkapy-diff\x021\x00", flexible=True),
        answer_version=0,
    ),
    # Metadata, Produce, Fetch, ListOffsets: lowest and highest shared versions
    Step("metadata_known_v0", lambda: metadata(KNOWN), 0, _sort_topics),
    Step(
        "metadata_known_v12_ids",
        lambda: metadata(KNOWN, EMPTY),
        12,
        _sort_topics,
        save=_topic_ids,
    ),
    Step("produce_v3", lambda: produce(KNOWN, 1, _batch(2, 1)), 3),
    Step("produce_v11", lambda: produce(KNOWN, 1, _batch(2, 3)), 11),
    Step("produce_v11_unknown_topic", lambda: produce(MISSING, 0, _batch(1)), 11),
    Step("fetch_v4", lambda: fetch(KNOWN, 0, 0), 4),
    Step("fetch_v4_out_of_range", lambda: fetch(KNOWN, 0, 99), 4),
    Step(
        "fetch_v17",
        lambda: FetchRequest(
            replica_id=-1,
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=1,
            session_id=0,
            session_epoch=-1,
            topics=[
                FetchTopic(
                    topic_id=CTX["topic_ids"][KNOWN],
                    partitions=[FetchPartition(partition=0, fetch_offset=1, partition_max_bytes=1 << 20)],
                )
            ],
        ),
        17,
    ),
    Step(
        "fetch_v17_unknown_topic_id",
        lambda: FetchRequest(
            replica_id=-1,
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[
                FetchTopic(
                    topic_id=uuid.UUID(int=12345),
                    partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)],
                )
            ],
        ),
        17,
    ),
    Step("list_offsets_v9_latest", lambda: list_offsets(KNOWN, [0, 1], -1), 9),
    Step("list_offsets_v9_earliest", lambda: list_offsets(KNOWN, [0], -2), 9),
    Step("list_offsets_v9_max_timestamp", lambda: list_offsets(KNOWN, [0], -3), 9),
    Step("list_offsets_v9_unknown_topic", lambda: list_offsets(MISSING, [0], -1), 9),
    Step("list_offsets_v9_unknown_partition", lambda: list_offsets(KNOWN, [9], -1), 9),
    # DescribeTopicPartitions
    Step(
        "describe_topic_partitions_v0",
        lambda: DescribeTopicPartitionsRequest(
            topics=[DtpTopic(name=KNOWN), DtpTopic(name=MISSING)],
            response_partition_limit=2000,
        ),
        0,
        _sort_topics,
    ),
    # CreateTopics lowest shared version, DeleteTopics, CreatePartitions
    Step(
        "create_v2",
        lambda: create(topic(DOOMED), topic(DOOMED6), topic(GROW, 1)),
        2,
        _sort_topics,
    ),
    # Produce v0 (advertised by Kafka 4 for old librdkafka, KIP-896) on its own topic: Kafka closes the connection
    Step("produce_v0", lambda: produce(GROW, 0, _batch(1)), 0),
    Step("produce_v1", lambda: produce(GROW, 0, _batch(1)), 1),
    Step("produce_v2", lambda: produce(GROW, 0, _batch(1)), 2),
    Step("create_v2_exists", lambda: create(topic(KNOWN, 2)), 2),
    Step(
        "create_v2_bad_config",
        lambda: create(topic("diff-cfg3", 1, retention_ms="abc")),
        2,
    ),
    *_steps_per_version("delete_topics_unknown", (1, 6), lambda v: lambda: delete_topics(MISSING, v)),
    Step("delete_topics_v1", lambda: delete_topics(DOOMED, 1), 1),
    Step("delete_topics_v6", lambda: delete_topics(DOOMED6, 6), 6),
    *_steps_per_version(
        "create_partitions_unknown",
        (0, 3),
        lambda v: lambda: create_partitions(MISSING, 2),
    ),
    *_steps_per_version(
        "create_partitions_decrease",
        (0, 3),
        lambda v: lambda: create_partitions(KNOWN, 1),
    ),
    *_steps_per_version("create_partitions_same", (0, 3), lambda v: lambda: create_partitions(KNOWN, 2)),
    Step(
        "create_partitions_validate_only_v3",
        lambda: create_partitions(GROW, 4, True),
        3,
    ),
    Step("create_partitions_v0", lambda: create_partitions(GROW, 2), 0),
    Step("create_partitions_v3", lambda: create_partitions(GROW, 3), 3),
    Step("metadata_grown_v12", lambda: metadata(GROW), 12, _sort_topics),
    # DescribeConfigs, AlterConfigs, IncrementalAlterConfigs
    *_steps_per_version(
        "describe_configs",
        (1, 4),
        lambda v: lambda: describe_configs(2, KNOWN, ["cleanup.policy", "retention.ms", "segment.bytes"]),
    ),
    *_steps_per_version(
        "describe_configs_unknown_topic",
        (1, 4),
        lambda v: lambda: describe_configs(2, MISSING, None),
    ),
    *_steps_per_version(
        "describe_configs_unknown_key",
        (1, 4),
        lambda v: lambda: describe_configs(2, KNOWN, ["no.such.config"]),
    ),
    *_steps_per_version(
        "alter_configs",
        (0, 2),
        lambda v: lambda: alter_configs(KNOWN, retention_ms="3600000"),
    ),
    *_steps_per_version(
        "alter_configs_bad_value",
        (0, 2),
        lambda v: lambda: alter_configs(KNOWN, retention_ms="soon"),
    ),
    *_steps_per_version(
        "alter_configs_unknown_config",
        (0, 2),
        lambda v: lambda: alter_configs(KNOWN, no_such_config="1"),
    ),
    *_steps_per_version(
        "alter_configs_unknown_topic",
        (0, 2),
        lambda v: lambda: alter_configs(MISSING, retention_ms="1000"),
    ),
    Step(
        "alter_configs_validate_only_v2",
        lambda: alter_configs(KNOWN, True, cleanup_policy="compact"),
        2,
    ),
    Step(
        "describe_configs_after_alter_v4",
        lambda: describe_configs(2, KNOWN, ["retention.ms", "cleanup.policy"]),
        4,
    ),
    *_steps_per_version(
        "incremental_set",
        (0, 1),
        lambda v: lambda: incremental(KNOWN, ("retention.ms", 0, "7200000")),
    ),
    *_steps_per_version(
        "incremental_bad_value",
        (0, 1),
        lambda v: lambda: incremental(KNOWN, ("retention.ms", 0, "later")),
    ),
    *_steps_per_version(
        "incremental_unknown_config",
        (0, 1),
        lambda v: lambda: incremental(KNOWN, ("no.such.config", 0, "1")),
    ),
    *_steps_per_version(
        "incremental_unknown_topic",
        (0, 1),
        lambda v: lambda: incremental(MISSING, ("retention.ms", 0, "1")),
    ),
    *_steps_per_version(
        "incremental_append_non_list",
        (0, 1),
        lambda v: lambda: incremental(KNOWN, ("retention.ms", 2, "5")),
    ),
    Step(
        "incremental_delete_v1",
        lambda: incremental(KNOWN, ("retention.ms", 1, None)),
        1,
    ),
    Step(
        "incremental_append_list_v1",
        lambda: incremental(KNOWN, ("cleanup.policy", 2, "compact")),
        1,
    ),
    Step(
        "describe_configs_after_incremental_v4",
        lambda: describe_configs(2, KNOWN, ["retention.ms", "cleanup.policy"]),
        4,
    ),
    Step(
        "incremental_restore_v1",
        lambda: incremental(KNOWN, ("cleanup.policy", 0, "delete")),
        1,
    ),
    # OffsetForLeaderEpoch
    *_steps_per_version("offset_for_leader_epoch", (2, 4), lambda v: lambda: epoch_request(KNOWN, 0, 0)),
    *_steps_per_version(
        "offset_for_leader_epoch_future",
        (2, 4),
        lambda v: lambda: epoch_request(KNOWN, 0, 7),
    ),
    *_steps_per_version(
        "offset_for_leader_epoch_fenced",
        (2, 4),
        lambda v: lambda: epoch_request(KNOWN, 0, 0, 5),
    ),
    *_steps_per_version(
        "offset_for_leader_epoch_unknown_partition",
        (2, 4),
        lambda v: lambda: epoch_request(KNOWN, 8, 0),
    ),
    *_steps_per_version(
        "offset_for_leader_epoch_unknown_topic",
        (2, 4),
        lambda v: lambda: epoch_request(MISSING, 0, 0),
    ),
    # DescribeLogDirs (paths and sizes normalised)
    *_steps_per_version(
        "describe_log_dirs",
        (1, 4),
        lambda v: lambda: DescribeLogDirsRequest(topics=[DescribableLogDirTopic(topic=KNOWN, partitions=[0, 1])]),
    ),
    *_steps_per_version(
        "describe_log_dirs_unknown_topic",
        (1, 4),
        lambda v: lambda: DescribeLogDirsRequest(topics=[DescribableLogDirTopic(topic=MISSING, partitions=[0])]),
    ),
    # DescribeCluster
    *_steps_per_version(
        "describe_cluster",
        (0, 1, 2),
        lambda v: lambda: DescribeClusterRequest(include_cluster_authorized_operations=False),
    ),
    # ACLs without an authorizer
    *_steps_per_version("describe_acls", (1, 3), lambda v: lambda: DescribeAclsRequest(**ACL_FILTER)),
    *_steps_per_version(
        "create_acls",
        (1, 3),
        lambda v: (
            lambda: CreateAclsRequest(
                creations=[
                    AclCreation(
                        resource_type=2,
                        resource_name=KNOWN,
                        resource_pattern_type=3,
                        principal="User:x",
                        host="*",
                        operation=3,
                        permission_type=3,
                    )
                ]
            )
        ),
    ),
    *_steps_per_version(
        "delete_acls",
        (1, 3),
        lambda v: lambda: DeleteAclsRequest(filters=[DeleteAclsFilter(**ACL_FILTER)]),
    ),
    # FindCoordinator (group and transaction keys)
    *_steps_per_version(
        "find_coordinator_group",
        (0, 5),
        lambda v: lambda: find_coordinator(GROUP0, 0, v),
    ),
    *_steps_per_version("find_coordinator_txn", (1, 5), lambda v: lambda: find_coordinator(TXN, 1, v)),
    Step("find_coordinator_bad_key_type_v5", lambda: find_coordinator(GROUP0, 7, 5), 5),
    # classic group, lowest versions: join, sync, heartbeats (good, bad generation, unknown member), commits, leave
    Step(
        "join_group_v0",
        lambda: join(GROUP0),
        0,
        save=_save(member0=lambda r: r.member_id, gen0=lambda r: r.generation_id),
    ),
    Step(
        "sync_group_bad_generation_v0",
        lambda: sync(GROUP0, CTX["gen0"] + 5, CTX["member0"]),
        0,
    ),
    Step("sync_group_unknown_member_v0", lambda: sync(GROUP0, CTX["gen0"], "nobody"), 0),
    Step("sync_group_v0", lambda: sync(GROUP0, CTX["gen0"], CTX["member0"]), 0),
    Step("heartbeat_v0", lambda: heartbeat(GROUP0, CTX["gen0"], CTX["member0"]), 0),
    Step(
        "heartbeat_bad_generation_v0",
        lambda: heartbeat(GROUP0, CTX["gen0"] + 5, CTX["member0"]),
        0,
    ),
    Step(
        "heartbeat_unknown_member_v0",
        lambda: heartbeat(GROUP0, CTX["gen0"], "nobody"),
        0,
    ),
    Step("heartbeat_unknown_group_v0", lambda: heartbeat(NO_GROUP, 1, "nobody"), 0),
    Step(
        "offset_commit_bad_generation_v2",
        lambda: commit(GROUP0, CTX["gen0"] + 5, CTX["member0"]),
        2,
    ),
    Step(
        "offset_commit_unknown_member_v2",
        lambda: commit(GROUP0, CTX["gen0"], "nobody"),
        2,
    ),
    Step("offset_commit_v2", lambda: commit(GROUP0, CTX["gen0"], CTX["member0"]), 2),
    Step("offset_commit_simple_v2", lambda: commit("diff-simple", -1, "", 3), 2),
    Step(
        "offset_commit_unknown_partition_v2",
        lambda: OffsetCommitRequest(
            group_id="diff-simple",
            generation_id_or_member_epoch=-1,
            member_id="",
            retention_time_ms=-1,
            topics=[
                OffsetCommitRequestTopic(
                    name=KNOWN,
                    partitions=[OffsetCommitRequestPartition(partition_index=9, committed_offset=1)],
                )
            ],
        ),
        2,
    ),
    Step("offset_fetch_v1", lambda: offset_fetch(GROUP0, 1), 1),
    Step("offset_fetch_unknown_group_v1", lambda: offset_fetch(NO_GROUP, 1), 1),
    Step(
        "describe_groups_v0",
        lambda: describe_groups(GROUP0, NO_GROUP),
        0,
        _sorted("groups", "group_id"),
    ),
    Step("list_groups_v0", lambda: ListGroupsRequest(), 0, _sorted("groups", "group_id")),
    Step(
        "delete_groups_non_empty_v0",
        lambda: DeleteGroupsRequest(groups_names=[GROUP0]),
        0,
    ),
    Step("leave_group_unknown_member_v0", lambda: leave(GROUP0, "nobody", 0), 0),
    Step("leave_group_v0", lambda: leave(GROUP0, CTX["member0"], 0), 0),
    Step(
        "offset_delete_v0",
        lambda: OffsetDeleteRequest(
            group_id=GROUP0,
            topics=[
                OffsetDeleteRequestTopic(
                    name=KNOWN,
                    partitions=[OffsetDeleteRequestPartition(partition_index=0)],
                )
            ],
        ),
        0,
    ),
    Step(
        "offset_delete_unknown_group_v0",
        lambda: OffsetDeleteRequest(
            group_id=NO_GROUP,
            topics=[
                OffsetDeleteRequestTopic(
                    name=KNOWN,
                    partitions=[OffsetDeleteRequestPartition(partition_index=0)],
                )
            ],
        ),
        0,
    ),
    Step(
        "delete_groups_v0",
        lambda: DeleteGroupsRequest(groups_names=[GROUP0, NO_GROUP]),
        0,
        _sorted("results", "group_id"),
    ),
    # classic group, highest versions (KIP-394 member id required first)
    Step(
        "join_group_member_id_required_v9",
        lambda: join(GROUP9),
        9,
        save=_save(member9=lambda r: r.member_id),
    ),
    Step(
        "join_group_v9",
        lambda: join(GROUP9, CTX["member9"]),
        9,
        save=_save(gen9=lambda r: r.generation_id),
    ),
    Step("join_group_unknown_member_v9", lambda: join(GROUP9, "nobody"), 9),
    Step(
        "sync_group_bad_generation_v5",
        lambda: sync(GROUP9, CTX["gen9"] + 5, CTX["member9"]),
        5,
    ),
    Step("sync_group_v5", lambda: sync(GROUP9, CTX["gen9"], CTX["member9"]), 5),
    Step("heartbeat_v4", lambda: heartbeat(GROUP9, CTX["gen9"], CTX["member9"]), 4),
    Step(
        "heartbeat_bad_generation_v4",
        lambda: heartbeat(GROUP9, CTX["gen9"] + 5, CTX["member9"]),
        4,
    ),
    Step(
        "heartbeat_unknown_member_v4",
        lambda: heartbeat(GROUP9, CTX["gen9"], "nobody"),
        4,
    ),
    Step(
        "offset_commit_bad_generation_v9",
        lambda: commit(GROUP9, CTX["gen9"] + 5, CTX["member9"]),
        9,
    ),
    Step("offset_commit_v9", lambda: commit(GROUP9, CTX["gen9"], CTX["member9"], 4), 9),
    Step("offset_fetch_v9", lambda: offset_fetch(GROUP9, 9), 9),
    Step("offset_fetch_unknown_group_v9", lambda: offset_fetch(NO_GROUP, 9), 9),
    Step(
        "describe_groups_v5",
        lambda: describe_groups(GROUP9, NO_GROUP),
        5,
        _sorted("groups", "group_id"),
    ),
    Step(
        "list_groups_v5",
        lambda: ListGroupsRequest(states_filter=[], types_filter=[]),
        5,
        _sorted("groups", "group_id"),
    ),
    Step(
        "list_groups_stable_v5",
        lambda: ListGroupsRequest(states_filter=["Stable"], types_filter=["classic"]),
        5,
        _sorted("groups", "group_id"),
    ),
    Step("leave_group_unknown_member_v5", lambda: leave(GROUP9, "nobody", 5), 5),
    Step("leave_group_v5", lambda: leave(GROUP9, CTX["member9"], 5), 5),
    Step(
        "delete_groups_v2",
        lambda: DeleteGroupsRequest(groups_names=[GROUP9, NO_GROUP]),
        2,
        _sorted("results", "group_id"),
    ),
    # KIP-848 consumer groups
    *_steps_per_version(
        "consumer_group_heartbeat_unknown_member",
        (0, 1),
        lambda v: lambda: cgh("diff-cg", "no-such-member-id-000000", 3),
    ),
    Step(
        "consumer_group_heartbeat_join_no_topics_v1",
        lambda: cgh("diff-cg", "diff-member-id-0000000", 0, None),
        1,
    ),
    Step(
        "consumer_group_heartbeat_join_v1",
        lambda: cgh("diff-cg2", "diff-member-cg2-0000000", 0, [KNOWN]),
        1,
    ),
    Step(
        "consumer_group_heartbeat_unknown_member_in_group_v1",
        lambda: cgh("diff-cg2", "no-such-member-id-000000", 1),
        1,
    ),
    Step(
        "consumer_group_heartbeat_bad_epoch_v1",
        lambda: cgh("diff-cg2", "diff-member-cg2-0000000", 7),
        1,
    ),
    Step(
        "consumer_group_heartbeat_leave_v0",
        lambda: cgh("diff-cg2", "diff-member-cg2-0000000", -1),
        0,
    ),
    Step(
        "consumer_group_describe_v0",
        lambda: ConsumerGroupDescribeRequest(group_ids=[NO_GROUP], include_authorized_operations=False),
        0,
    ),
    Step(
        "consumer_group_describe_v1",
        lambda: ConsumerGroupDescribeRequest(group_ids=[NO_GROUP], include_authorized_operations=False),
        1,
    ),
    # idempotent and transactional producers
    *_steps_per_version("init_producer_id", (0, 5), lambda v: lambda: init_pid(None)),
    Step(
        "init_producer_id_txn_v5",
        lambda: init_pid(TXN),
        5,
        save=_save(pid=lambda r: r.producer_id, epoch=lambda r: r.producer_epoch),
    ),
    Step(
        "end_txn_unknown_txn_v0",
        lambda: EndTxnRequest(
            transactional_id="diff-no-txn",
            producer_id=_pid(),
            producer_epoch=_epoch(),
            committed=True,
        ),
        0,
    ),
    Step(
        "end_txn_unknown_txn_v4",
        lambda: EndTxnRequest(
            transactional_id="diff-no-txn",
            producer_id=_pid(),
            producer_epoch=_epoch(),
            committed=True,
        ),
        4,
    ),
    Step("add_partitions_wrong_epoch_v0", lambda: add_partitions(TXN, 3, 0, [0]), 0),
    Step("add_partitions_wrong_epoch_v5", lambda: add_partitions(TXN, 3, 5, [0]), 5),
    Step("add_partitions_v0", lambda: add_partitions(TXN, 0, 0, [0]), 0),
    Step("add_partitions_v5", lambda: add_partitions(TXN, 0, 5, [1]), 5),
    Step(
        "add_offsets_wrong_epoch_v0",
        lambda: AddOffsetsToTxnRequest(
            transactional_id=TXN,
            producer_id=_pid(),
            producer_epoch=_epoch() + 3,
            group_id="diff-txn-group",
        ),
        0,
    ),
    Step(
        "add_offsets_v4",
        lambda: AddOffsetsToTxnRequest(
            transactional_id=TXN,
            producer_id=_pid(),
            producer_epoch=_epoch(),
            group_id="diff-txn-group",
        ),
        4,
    ),
    Step("txn_offset_commit_v0", lambda: txn_commit("diff-txn-group"), 0),
    Step("txn_offset_commit_v4", lambda: txn_commit("diff-txn-group"), 4),
    Step(
        "describe_transactions_v0",
        lambda: DescribeTransactionsRequest(transactional_ids=[TXN, "diff-no-txn"]),
        0,
        _txn_states,
    ),
    Step(
        "list_transactions_v0",
        lambda: ListTransactionsRequest(state_filters=[], producer_id_filters=[]),
        0,
        _sorted("transaction_states", "transactional_id"),
    ),
    Step(
        "list_transactions_ongoing_v1",
        lambda: ListTransactionsRequest(state_filters=["Ongoing"], producer_id_filters=[], duration_filter=-1),
        1,
        _sorted("transaction_states", "transactional_id"),
    ),
    Step(
        "describe_producers_v0",
        lambda: DescribeProducersRequest(
            topics=[
                DpTopic(name=KNOWN, partition_indexes=[0, 9]),
                DpTopic(name=MISSING, partition_indexes=[0]),
            ]
        ),
        0,
        _sort_topics,
    ),
    Step(
        "end_txn_wrong_epoch_v4",
        lambda: EndTxnRequest(
            transactional_id=TXN,
            producer_id=_pid(),
            producer_epoch=_epoch() + 3,
            committed=True,
        ),
        4,
    ),
    Step(
        "end_txn_v0",
        lambda: EndTxnRequest(
            transactional_id=TXN,
            producer_id=_pid(),
            producer_epoch=_epoch(),
            committed=True,
        ),
        0,
    ),
    Step("init_producer_id_txn_again_v0", lambda: init_pid(TXN), 0),
    Step(
        "list_transactions_v1",
        lambda: ListTransactionsRequest(state_filters=[], producer_id_filters=[], duration_filter=-1),
        1,
        _sorted("transaction_states", "transactional_id"),
    ),
    Step(
        "list_transactions_v2",
        lambda: ListTransactionsRequest(state_filters=[], producer_id_filters=[], transactional_id_pattern="diff-.*"),
        2,
        _sorted("transaction_states", "transactional_id"),
    ),
    Step(
        "write_txn_markers_v1",
        lambda: WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=424242,
                    producer_epoch=0,
                    transaction_result=False,
                    coordinator_epoch=0,
                    topics=[WritableTxnMarkerTopic(name=MISSING, partition_indexes=[0])],
                )
            ]
        ),
        1,
    ),
    Step(
        "write_txn_markers_v2",
        lambda: WriteTxnMarkersRequest(
            markers=[
                WritableTxnMarker(
                    producer_id=424243,
                    producer_epoch=0,
                    transaction_result=False,
                    coordinator_epoch=0,
                    topics=[WritableTxnMarkerTopic(name=MISSING, partition_indexes=[0])],
                    transaction_version=2,
                )
            ]
        ),
        2,
    ),
    # DeleteRecords last: it moves log start offsets
    *_steps_per_version(
        "delete_records_out_of_range",
        (0, 2),
        lambda v: lambda: delete_records(KNOWN, 0, 99),
    ),
    *_steps_per_version(
        "delete_records_unknown_partition",
        (0, 2),
        lambda v: lambda: delete_records(KNOWN, 9, 0),
    ),
    *_steps_per_version(
        "delete_records_unknown_topic",
        (0, 2),
        lambda v: lambda: delete_records(MISSING, 0, 0),
    ),
    Step("delete_records_v0", lambda: delete_records(KNOWN, 0, 1), 0),
    Step("delete_records_v2", lambda: delete_records(KNOWN, 0, 2), 2),
    Step("delete_records_high_watermark_v2", lambda: delete_records(EMPTY, 0, -1), 2),
    Step("list_offsets_v9_after_delete_records", lambda: list_offsets(KNOWN, [0], -2), 9),
    Step("fetch_v12_below_log_start", lambda: fetch(KNOWN, 0, 0), 12),
    # malformed and oversized frames: closed or answered?
    Step(
        "raw_oversized_frame",
        lambda: ApiVersionsRequest(),
        0,
        raw=lambda cid: struct.pack(">i", 300 * 1024 * 1024) + b"\x00\x12",
    ),
    Step(
        "raw_negative_size",
        lambda: ApiVersionsRequest(),
        0,
        raw=lambda cid: struct.pack(">i", -5) + b"\x00" * 8,
    ),
    Step(
        "raw_unknown_api_key",
        lambda: ApiVersionsRequest(),
        0,
        raw=lambda cid: _frame(9999, 0, cid, b""),
    ),
    Step(
        "raw_truncated_metadata",
        lambda: MetadataRequest(),
        1,
        raw=lambda cid: _frame(3, 1, cid, b"\x00\x00\x00\x05\x00"),
    ),
    Step(
        "raw_metadata_above_max",
        lambda: MetadataRequest(),
        12,
        raw=lambda cid: _frame(3, 99, cid, b"\x00\x00\x00\x00"),
    ),
    Step(
        "raw_produce_garbage_body",
        lambda: ProduceRequest(),
        3,
        raw=lambda cid: _frame(0, 3, cid, b"\xff" * 7),
    ),
    Step(
        "raw_truncated_header",
        lambda: ApiVersionsRequest(),
        0,
        raw=lambda cid: struct.pack(">i", 3) + b"\x00\x12\x00",
    ),
    Step("after_malformed_metadata", lambda: metadata(KNOWN), 1, _sort_topics),
]

SCRIPT += COVERAGE_SCRIPT


def _sweep(
    name: str,
    api: int,
    build: Callable[[int], Message],
    post: Callable[[Any], Any] | None = None,
) -> list[Step]:
    """`build(version)` at every version kafkapy and Kafka 4.3.1 both serve (SHARED)."""
    lo, hi = SHARED[api]

    def at(v: int) -> Callable[[], Message]:
        return lambda: build(v)

    return [Step(f"sweep_{name}_v{v}", at(v), v, post) for v in range(lo, hi + 1)]


# (lowest, highest) version both serve, by API key: the sweep below sends every one of them
SHARED: dict[int, tuple[int, int]] = {
    0: (3, 13),  # Produce v0-2: Kafka 4 closes the connection (produce_v0)
    1: (4, 18),
    2: (1, 11),
    3: (0, 13),
    8: (2, 10),
    9: (1, 10),
    10: (0, 6),
    11: (0, 9),
    12: (0, 4),
    13: (0, 5),
    14: (0, 5),
    15: (0, 6),
    16: (0, 5),
    19: (2, 7),
    20: (1, 6),
    21: (0, 2),
    22: (0, 5),
    23: (2, 4),
    24: (0, 5),
    25: (0, 4),
    26: (0, 5),
    28: (0, 5),
    29: (1, 3),
    30: (1, 3),
    31: (1, 3),
    32: (1, 4),
    33: (0, 2),
    35: (1, 5),
    37: (0, 3),
    42: (0, 2),
}


def _fetch_any(version: int) -> FetchRequest:
    req = fetch(EMPTY, 0, 0)
    if version >= 13:
        req.topics[0].topic = ""
        req.topics[0].topic_id = CTX["topic_ids"][EMPTY]
    return req


# Every shared version of every API kafkapy serves, with requests that change no state
# (or the same state on both brokers), after the flows above.
SWEEP_SCRIPT: list[Step] = [
    Step("api_versions_v1", lambda: ApiVersionsRequest(), 1, _api_ranges),
    Step("api_versions_v2", lambda: ApiVersionsRequest(), 2, _api_ranges),
    *_sweep("list_groups", 16, lambda v: ListGroupsRequest(), _sorted("groups", "group_id")),
    *_sweep("produce_unknown_topic", 0, lambda v: produce(MISSING, 0, _batch(1))),
    *_sweep("fetch_empty", 1, _fetch_any),
    *_sweep("list_offsets_latest", 2, lambda v: list_offsets(KNOWN, [1], -1)),
    *_sweep("metadata", 3, lambda v: metadata(KNOWN), _sort_topics),
    *_sweep("offset_commit_simple", 8, lambda v: commit("diff-simple", -1, "", 3, v)),
    *_sweep("offset_fetch_simple", 9, lambda v: offset_fetch("diff-simple", v)),
    *_sweep("find_coordinator", 10, lambda v: find_coordinator("diff-simple", 0, v)),
    *_sweep("join_group_unknown_member", 11, lambda v: join(NO_GROUP, "nobody")),
    *_sweep("heartbeat_unknown_group", 12, lambda v: heartbeat(NO_GROUP, 1, "nobody")),
    *_sweep("leave_group_unknown_group", 13, lambda v: leave(NO_GROUP, "nobody", v)),
    *_sweep("sync_group_unknown_group", 14, lambda v: sync(NO_GROUP, 1, "nobody")),
    *_sweep("describe_groups_unknown", 15, lambda v: describe_groups(NO_GROUP)),
    *_sweep("create_topics_exists", 19, lambda v: create(topic(KNOWN, 2))),
    *_sweep("delete_topics_unknown", 20, lambda v: delete_topics(MISSING, v)),
    *_sweep("delete_records_out_of_range", 21, lambda v: delete_records(KNOWN, 1, 99)),
    *_sweep("init_producer_id", 22, lambda v: init_pid(None)),
    *_sweep("offset_for_leader_epoch", 23, lambda v: epoch_request(KNOWN, 1, 0)),
    *_sweep(
        "add_partitions_unknown_txn",
        24,
        lambda v: AddPartitionsToTxnRequest(
            transactions=[
                AddPartitionsToTxnTransaction(
                    transactional_id="diff-no-txn",
                    producer_id=777,
                    producer_epoch=0,
                    topics=[AddPartitionsToTxnTopic(name=KNOWN, partitions=[0])],
                )
            ],
            v3_and_below_transactional_id="diff-no-txn",
            v3_and_below_producer_id=777,
            v3_and_below_producer_epoch=0,
            v3_and_below_topics=[AddPartitionsToTxnTopic(name=KNOWN, partitions=[0])],
        ),
    ),
    *_sweep(
        "add_offsets_unknown_txn",
        25,
        lambda v: AddOffsetsToTxnRequest(
            transactional_id="diff-no-txn",
            producer_id=777,
            producer_epoch=0,
            group_id="diff-simple",
        ),
    ),
    *_sweep(
        "end_txn_unknown_txn",
        26,
        lambda v: EndTxnRequest(
            transactional_id="diff-no-txn",
            producer_id=777,
            producer_epoch=0,
            committed=False,
        ),
    ),
    *_sweep("describe_acls", 29, lambda v: DescribeAclsRequest(**ACL_FILTER)),
    *_sweep(
        "create_acls",
        30,
        lambda v: CreateAclsRequest(
            creations=[
                AclCreation(
                    resource_type=2,
                    resource_name=KNOWN,
                    resource_pattern_type=3,
                    principal="User:x",
                    host="*",
                    operation=3,
                    permission_type=3,
                )
            ]
        ),
    ),
    *_sweep("delete_acls", 31, lambda v: DeleteAclsRequest(filters=[DeleteAclsFilter(**ACL_FILTER)])),
    *_sweep("describe_configs", 32, lambda v: describe_configs(2, KNOWN, ["retention.ms"])),
    *_sweep(
        "alter_configs_validate_only",
        33,
        lambda v: alter_configs(KNOWN, True, cleanup_policy="compact"),
    ),
    *_sweep(
        "describe_log_dirs",
        35,
        lambda v: DescribeLogDirsRequest(topics=[DescribableLogDirTopic(topic=EMPTY, partitions=[0])]),
    ),
    *_sweep("create_partitions_same", 37, lambda v: create_partitions(KNOWN, 2)),
    *_sweep(
        "delete_groups_unknown",
        42,
        lambda v: DeleteGroupsRequest(groups_names=[NO_GROUP]),
    ),
    *_sweep(
        "txn_offset_commit_unknown_txn",
        28,
        lambda v: TxnOffsetCommitRequest(
            transactional_id="diff-no-txn",
            group_id="diff-simple",
            producer_id=777,
            producer_epoch=0,
            generation_id=-1,
            member_id="",
            topics=[
                TxnOffsetCommitRequestTopic(
                    name=KNOWN,
                    partitions=[TxnOffsetCommitRequestPartition(partition_index=1, committed_offset=0)],
                )
            ],
        ),
    ),
]

SCRIPT += SWEEP_SCRIPT


# ---------------------------------------------------------------- bad input: what kafkapy does not serve


def _default(api: int) -> Callable[[], Message]:
    """The API's request with every field at its default (empty lists, zero ids)."""
    return lambda: api_spec(api).request_type()()


def _every_version(name: str, build: Callable[[], Message], lo: int, hi: int) -> list[Step]:
    return [Step(f"{name}_v{v}", build, v) for v in range(lo, hi + 1)]


def _elect(
    election_type: int, partitions: list[tuple[str, list[int]]] | None, timeout_ms: int
) -> Callable[[], Message]:
    return lambda: ElectLeadersRequest(
        election_type=election_type,
        topic_partitions=None
        if partitions is None
        else [ElectTopicPartitions(topic=name, partitions=indexes) for name, indexes in partitions],
        timeout_ms=timeout_ms,
    )


def _quotas(*components: tuple[str, int, str | None]) -> Callable[[], Message]:
    return lambda: DescribeClientQuotasRequest(
        components=[QuotaComponent(entity_type=t, match_type=m, match=x) for t, m, x in components], strict=False
    )


# APIs Kafka 4.3.1 serves on a broker listener that kafkapy answers without
# the feature (SASL, delegation tokens, quotas, SCRAM, reassignments, client
# metrics: every version both serve), the ones it does not serve (Kafka's
# versions within kafkapy's codec), versions outside kafkapy's served
# ranges, and APIs Kafka does not expose on a broker listener.
BAD_INPUT_SCRIPT: list[Step] = [
    *_every_version("sasl_handshake", lambda: SaslHandshakeRequest(mechanism="PLAIN"), 0, 1),
    *_every_version("sasl_authenticate", lambda: SaslAuthenticateRequest(auth_bytes=b"\x00u\x00p"), 0, 2),
    *_every_version("create_delegation_token", _default(38), 1, 3),
    *_every_version("renew_delegation_token", _default(39), 1, 2),
    *_every_version("expire_delegation_token", _default(40), 1, 2),
    *_every_version("describe_delegation_token", _default(41), 1, 3),
    Step("list_partition_reassignments_v0", lambda: ListPartitionReassignmentsRequest(topics=None), 0),
    Step(
        "list_partition_reassignments_topic_v0",
        lambda: ListPartitionReassignmentsRequest(
            topics=[ListPartitionReassignmentsTopics(name=KNOWN, partition_indexes=[0, 1])]
        ),
        0,
    ),
    *_every_version("describe_client_quotas", _quotas(), 0, 1),
    Step("describe_client_quotas_user_v1", _quotas(("user", 0, "alice"), ("client-id", 1, None)), 1),
    Step("describe_client_quotas_ip_v1", _quotas(("ip", 2, None)), 1),
    Step("describe_client_quotas_exact_null_v1", _quotas(("user", 0, None)), 1),
    Step("describe_client_quotas_default_match_v1", _quotas(("user", 1, "x")), 1),
    Step("describe_client_quotas_bad_match_type_v1", _quotas(("user", 7, None)), 1),
    Step("describe_client_quotas_unknown_entity_v1", _quotas(("nope", 2, None)), 1),
    Step("describe_client_quotas_twice_v1", _quotas(("user", 2, None), ("user", 2, None)), 1),
    Step("describe_client_quotas_ip_and_user_v1", _quotas(("ip", 2, None), ("user", 2, None)), 1),
    Step("describe_user_scram_credentials_all_v0", lambda: DescribeUserScramCredentialsRequest(users=None), 0),
    Step(
        "describe_user_scram_credentials_named_v0",
        lambda: DescribeUserScramCredentialsRequest(users=[ScramUser(name="alice")]),
        0,
    ),
    Step(
        "describe_user_scram_credentials_twice_v0",
        lambda: DescribeUserScramCredentialsRequest(users=[ScramUser(name="bob"), ScramUser(name="bob")]),
        0,
    ),
    Step("list_client_metrics_resources_v0", _default(74), 0),
    # v1 is ListConfigResources (KIP-1142): by resource type; an unknown type refuses the request
    Step("list_config_resources_client_metrics_v1", lambda: ListClientMetricsResourcesRequest(resource_types=[16]), 1),
    Step("list_config_resources_groups_v1", lambda: ListClientMetricsResourcesRequest(resource_types=[32]), 1),
    Step("list_config_resources_unknown_type_v1", lambda: ListClientMetricsResourcesRequest(resource_types=[2, 99]), 1),
    # an empty AlterReplicaLogDirs: empty results (the JBOD scenario is interop/diff_log_dirs.py)
    *_every_version("alter_replica_log_dirs", _default(34), 1, 2),
    # Kafka serves these; kafkapy answers UNSUPPORTED_VERSION where the
    # response has a top-level error code and closes the connection otherwise
    *_every_version("elect_leaders", _default(43), 0, 2),
    # a timeout of 0 or less: Kafka's controller answers REQUEST_TIMED_OUT before it looks at the request
    *_every_version("elect_leaders_timeout_0", _elect(0, [(KNOWN, [1, 0]), (MISSING, [0]), (KNOWN, [0])], 0), 0, 2),
    Step("elect_leaders_timeout_negative_unclean_v1", _elect(1, [(KNOWN, [0])], -1), 1),
    Step("elect_leaders_timeout_0_bad_type_v2", _elect(7, [(KNOWN, [0])], 0), 2),
    *_every_version("elect_leaders_timeout_0_all", _elect(0, None, 0), 0, 2),
    Step("elect_leaders_timeout_0_empty_v2", _elect(0, [], 0), 2),
    Step("alter_partition_reassignments_v0", _default(45), 0),
    Step("alter_partition_reassignments_v1", _default(45), 1),
    *_every_version("alter_client_quotas", _default(49), 0, 1),
    Step("alter_user_scram_credentials_v0", _default(51), 0),
    *_every_version("describe_quorum", _default(55), 0, 2),
    *_every_version("update_features", _default(57), 0, 2),
    # no broker 7 on either side (Kafka's node is 1, kafkapy's 0); an empty cluster id is another cluster's
    Step("unregister_broker_v0", lambda: UnregisterBrokerRequest(broker_id=7), 0),
    Step("add_raft_voter_v0", _default(80), 0),
    Step("add_raft_voter_v1", _default(80), 1),
    Step("remove_raft_voter_v0", _default(81), 0),
    # served by Kafka although not advertised (no client-telemetry plugin)
    Step("get_telemetry_subscriptions_v0", _default(71), 0),
    Step("push_telemetry_v0", _default(72), 0),
    # share groups' early-access v0 (Kafka 4.3.1 and kafkapy serve v1+: closed); ReadShareGroupState v0 is served
    Step("share_group_heartbeat_v0", _default(76), 0),
    Step("share_fetch_v0", _default(78), 0),
    Step("read_share_group_state_v0", _default(84), 0),
    # versions outside kafkapy's served ranges
    Step("fetch_v3_below_served", lambda: fetch(KNOWN, 0, 0), 3),
    Step("describe_acls_v0_below_served", _default(29), 0),
    # not exposed on a broker listener
    Step("leader_and_isr_v7", _default(4), 7),
    Step("broker_heartbeat_v1", _default(63), 1),
    Step("vote_v1", _default(52), 1),
    Step("after_bad_input_metadata", lambda: metadata(KNOWN), 1, _sort_topics),
]

SCRIPT += BAD_INPUT_SCRIPT


# Produce error codes as Kafka chooses them (issue 14), on a topic of its own with a small
# max.message.bytes; last in the script so no earlier answer sees the topic or its records
LIMITS = "diff-produce-limits"
LIMIT_BYTES = 200


def _recent(n: int, pad: int = 1) -> bytes:
    """``n`` records stamped now: T0's old timestamps would let time retention move the log start offset."""
    now = int(time.time() * 1000)
    return bytes(records.build_batch([(b"k", b"v" * pad, [], now + i) for i in range(n)]))


def _with_count(n: int, count: int) -> bytes:
    """A batch of ``n`` records whose header claims ``count`` (lastOffsetDelta stays n - 1); CRC fixed."""
    b = bytearray(_recent(n))
    struct.pack_into(">i", b, records.RECORDS_COUNT_OFFSET, count)
    struct.pack_into(">I", b, records.CRC_OFFSET, records.compute_crc(b, 0, len(b)))
    return bytes(b)


def _batch_of_size(size: int) -> bytes:
    """One record, padded so the whole batch (12-byte log overhead included) is ``size`` bytes."""
    for pad in range(size):
        b = _recent(1, pad)
        if len(b) == size:
            return b
    raise ValueError(f"no one-record batch of {size} bytes")


def _transactional_batch() -> bytes:
    return bytes(
        records.build_batch(
            [(b"k", b"v", [], int(time.time() * 1000))],
            producer_id=4242,
            producer_epoch=0,
            base_sequence=0,
            is_transactional=True,
        )
    )


def _control_batch() -> bytes:
    return bytes(
        records.build_control_batch(
            records.ControlRecordType.COMMIT,
            producer_id=4242,
            producer_epoch=1,
            coordinator_epoch=0,
            timestamp=int(time.time() * 1000),
        )
    )


def _zstd_batch() -> bytes:
    return bytes(records.build_batch([(b"k", b"v" * 50, [], int(time.time() * 1000))], compression=4))


PRODUCE_ERRORS_SCRIPT: list[Step] = [
    Step("create_produce_limits", lambda: create(topic(LIMITS, max_message_bytes=str(LIMIT_BYTES))), 4),
    # records count against lastOffsetDelta + 1: INVALID_RECORD (LogValidator), not CORRUPT_MESSAGE
    Step("produce_count_below_last_offset_delta", lambda: produce(LIMITS, 0, _with_count(3, 2)), 9),
    Step("produce_count_above_last_offset_delta", lambda: produce(LIMITS, 0, _with_count(2, 3)), 9),
    Step("produce_count_zero", lambda: produce(LIMITS, 0, _with_count(1, 0)), 9),
    Step("produce_count_negative", lambda: produce(LIMITS, 0, _with_count(1, -1)), 9),
    # max.message.bytes bounds the whole batch, log overhead included
    Step("produce_at_max_message_bytes", lambda: produce(LIMITS, 0, _batch_of_size(LIMIT_BYTES)), 9),
    Step("produce_above_max_message_bytes", lambda: produce(LIMITS, 0, _batch_of_size(LIMIT_BYTES + 1)), 9),
    Step("produce_above_max_message_bytes_by_12", lambda: produce(LIMITS, 0, _batch_of_size(LIMIT_BYTES + 12)), 9),
    # a transactional batch in a request without a transactional id: the whole request is refused
    *_every_version("produce_transactional_no_id", lambda: produce(LIMITS, 0, _transactional_batch()), 3, 11),
    # a control batch is transactional too: the same answer, before Kafka looks for control batches
    Step("produce_control_no_transactional_id", lambda: produce(LIMITS, 0, _control_batch()), 9),
    # zstd needs Produce v7 (KIP-110)
    *_every_version("produce_zstd", lambda: produce(LIMITS, 0, _zstd_batch()), 3, 8),
    Step("produce_limits_list_offsets", lambda: list_offsets(LIMITS, [0], -1), 1),
]

SCRIPT += PRODUCE_ERRORS_SCRIPT


# record validation (issue 14): interop/diff_records.py
from interop import diff_configs, diff_records

SCRIPT += diff_records.steps()
# Streams groups (KIP-1071): interop/diff_streams_groups.py
from interop import diff_streams_groups

SCRIPT += diff_streams_groups.steps()
# Share groups (KIP-932): error paths whose answers are stable on both brokers, last in the script
# (the first share request makes __share_group_state): an unknown group, an empty member id, no share
# session, a classic group's id; the share coordinator's RPCs on one key of KNOWN's partition 0.
SHARE_GROUP = "diff-share-none"  # never joined
SHARE_STATE = "diff-share-state"  # its key KNOWN:0's share state is initialized, written and deleted


def _share_hb(group: str, member: str, epoch: int, topics: list[str] | None = None) -> ShareGroupHeartbeatRequest:
    return ShareGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, subscribed_topic_names=topics
    )


def _share_fetch(member: str, epoch: int) -> ShareFetchRequest:
    return ShareFetchRequest(
        group_id=SHARE_GROUP,
        member_id=member,
        share_session_epoch=epoch,
        max_wait_ms=0,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=10,
        batch_size=10,
        topics=[],
        forgotten_topics_data=[],
    )


def _share_key_post(data: Any) -> Any:
    for c in data.get("coordinators", []):
        c["key"] = "set"  # "group:topic id:partition": the topic ids differ
    return data


def _state_topics(cls: Any, part: Any, **fields: Any) -> list[Any]:
    return [cls(topic_id=CTX["topic_ids"][KNOWN], partitions=[part(partition=0, **fields)])]


def _share_summary() -> Message:
    return ReadShareGroupStateSummaryRequest(
        group_id=SHARE_STATE, topics=_state_topics(ReadStateSummaryData, SummaryPartition, leader_epoch=-1)
    )


def _share_read() -> Message:
    return ReadShareGroupStateRequest(
        group_id=SHARE_STATE, topics=_state_topics(ReadStateData, ReadPartition, leader_epoch=1)
    )


def _share_write(batches: list[StateBatch]) -> Message:
    return WriteShareGroupStateRequest(
        group_id=SHARE_STATE,
        topics=_state_topics(
            WriteStateData, WritePartition, state_epoch=1, leader_epoch=1, start_offset=5, state_batches=batches
        ),
    )


SHARE_SCRIPT: list[Step] = [
    Step("share_heartbeat_unknown_group_v1", lambda: _share_hb(SHARE_GROUP, "m", 5), 1),
    Step("share_heartbeat_empty_member_v1", lambda: _share_hb(SHARE_GROUP, "", 0, [KNOWN]), 1),
    Step("share_heartbeat_join_without_topics_v1", lambda: _share_hb(SHARE_GROUP, "m", 0), 1),
    # diff-simple: a classic group of simple commits (no members, offsets kept)
    Step("share_heartbeat_classic_group_v1", lambda: _share_hb("diff-simple", "m", 0, [KNOWN]), 1),
    Step("share_group_describe_unknown_v1", lambda: ShareGroupDescribeRequest(group_ids=[SHARE_GROUP]), 1),
    Step("share_group_describe_classic_v1", lambda: ShareGroupDescribeRequest(group_ids=["diff-simple"]), 1),
    *[Step(f"share_fetch_no_session_v{v}", lambda: _share_fetch("m", 3), v) for v in (1, 2)],
    *[
        Step(
            f"share_acknowledge_epoch_0_v{v}",
            lambda: ShareAcknowledgeRequest(group_id=SHARE_GROUP, member_id="m", share_session_epoch=0, topics=[]),
            v,
        )
        for v in (1, 2)
    ],
    *[
        Step(
            f"describe_share_group_offsets_unknown_v{v}",
            lambda: DescribeShareGroupOffsetsRequest(
                groups=[
                    DescribeShareGroupOffsetsRequestGroup(
                        group_id=SHARE_GROUP,
                        topics=[DescribeShareGroupOffsetsRequestTopic(topic_name=KNOWN, partitions=[0])],
                    )
                ]
            ),
            v,
        )
        for v in (0, 1)
    ],
    Step(
        "alter_share_group_offsets_unknown_topic_v0",
        lambda: AlterShareGroupOffsetsRequest(
            group_id="diff-share-alter",
            topics=[
                AlterShareGroupOffsetsRequestTopic(
                    topic_name=MISSING,
                    partitions=[AlterShareGroupOffsetsRequestPartition(partition_index=0, start_offset=0)],
                )
            ],
        ),
        0,
    ),
    Step(
        "delete_share_group_offsets_unknown_group_v0",
        lambda: DeleteShareGroupOffsetsRequest(
            group_id=SHARE_GROUP, topics=[DeleteShareGroupOffsetsRequestTopic(topic_name=KNOWN)]
        ),
        0,
    ),
    # the share coordinator: FindCoordinator SHARE makes __share_group_state on Kafka
    Step(
        "find_coordinator_share_v6",
        lambda: FindCoordinatorRequest(
            key_type=2, coordinator_keys=[f"{SHARE_STATE}:{uuid_text(CTX['topic_ids'][KNOWN])}:0"]
        ),
        6,
        _share_key_post,
    ),
    Step("read_share_group_state_summary_no_state_v0", _share_summary, 0),
    Step("read_share_group_state_uninitialized_v0", _share_read, 0),
    *[Step(f"write_share_group_state_uninitialized_v{v}", lambda: _share_write([]), v) for v in (0, 1)],
    Step(
        "initialize_share_group_state_v0",
        lambda: InitializeShareGroupStateRequest(
            group_id=SHARE_STATE,
            topics=_state_topics(InitializeStateData, InitPartition, state_epoch=1, start_offset=5),
        ),
        0,
    ),
    Step("write_share_group_state_v0", lambda: _share_write([StateBatch(5, 9, 0, 1)]), 0),
    Step("write_share_group_state_v1", lambda: _share_write([StateBatch(10, 10, 2, 1)]), 1),
    Step("read_share_group_state_v0_written", _share_read, 0),
    Step("read_share_group_state_summary_v1", _share_summary, 1),
    Step(
        "delete_share_group_state_v0",
        lambda: DeleteShareGroupStateRequest(
            group_id=SHARE_STATE, topics=_state_topics(DeleteStateData, DeletePartition)
        ),
        0,
    ),
    Step("read_share_group_state_summary_deleted_v1", _share_summary, 1),
]

SCRIPT += SHARE_SCRIPT
# config validation (issue 14): right after metadata_all, which lists every diff- topic created before it
_AT = [step.name for step in SCRIPT].index("metadata_all") + 1
SCRIPT[_AT:_AT] = diff_configs.steps()


RETRIABLE = {
    14,
    15,
    16,
    51,
}  # coordinator loading / not available / not coordinator, CONCURRENT_TRANSACTIONS


def _codes(value: Any) -> set[int]:
    """Every error code in an answer (as plain data)."""
    if isinstance(value, dict):
        return {c for k, v in value.items() for c in ([v] if k == "error_code" else _codes(v))}
    if isinstance(value, list):
        return {c for v in value for c in _codes(v)}
    return set()


def run_script(bootstrap: str, steps: list[Step] | None = None, settle_s: float = 0.05) -> dict[str, Any]:
    """Every step's normalised answer, by name. A broker that closes the
    connection answers {"closed": true} (the next step reconnects); one that
    keeps a malformed request's connection open without answering, {"no_answer": true}.
    Coordinator errors while a coordinator loads (both brokers create their
    internal topics on first use) are retried, so the recorded answer is the settled one.
    `settle_s`: the pause after each topic creation or deletion, for Kafka's asynchronous
    controller; kafkapy's single broker has applied it when it answers (0 there)."""
    answers: dict[str, Any] = {}
    CTX.clear()
    conn = Conn(bootstrap)
    try:
        for step in steps or SCRIPT:
            for attempt in range(40):
                try:
                    body = step.build()
                except KeyError as e:  # an earlier step did not give what this one needs
                    answers[step.name] = {"missing_context": str(e)}
                    break
                if step.raw:
                    conn.sock.settimeout(3.0)
                try:
                    resp = conn.call(
                        body,
                        step.version,
                        step.raw(conn.correlation_id + 1) if step.raw else None,
                        step.answer_version,
                    )
                except TimeoutError:
                    answers[step.name] = {"no_answer": True}
                    resp = None
                except (ConnectionError, OSError):
                    answers[step.name] = {"closed": True}
                    resp = None
                except FAULTS as e:  # an answer this codec cannot read
                    answers[step.name] = {"undecodable": type(e).__name__}
                    resp = None
                if resp is None:
                    conn.close()
                    conn = Conn(bootstrap)
                    break
                conn.sock.settimeout(15.0)
                data = normalise(to_data(resp))
                if _codes(data) & (RETRIABLE | step.retriable) and attempt < 39:
                    if os.environ.get("DIFFERENTIAL_DEBUG"):
                        print(
                            f"retry {step.name}: {sorted(_codes(data))}",
                            file=sys.stderr,
                        )
                    time.sleep(0.25)
                    continue
                if step.save:
                    step.save(resp)
                answers[step.name] = step.post(data) if step.post else data
                if step.inspect:
                    answers[step.name]["inspected"] = to_data(step.inspect(resp))
                break
            if step.name.startswith(("create_", "delete_topics")):
                time.sleep(settle_s)  # Kafka creates asynchronously; let metadata catch up
    finally:
        conn.close()
    return answers


def api_ranges(answer: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in answer["api_keys"]}


def compare_api_versions(kafka: dict[str, Any], ours: dict[str, Any]) -> dict[str, list[tuple[int, Any, Any]]]:
    """ApiVersions ranges: kafkapy's against Kafka's, by API key."""
    k, o = api_ranges(kafka), api_ranges(ours)
    return {
        "only_kafka": sorted((key, k[key], None) for key in k if key not in o),
        "only_kafkapy": sorted((key, None, o[key]) for key in o if key not in k),
        "different_range": sorted((key, k[key], o[key]) for key in k if key in o and k[key] != o[key]),
    }


def compare(kafka: dict[str, Any], ours: dict[str, Any]) -> dict[str, list[tuple[str, Any, Any]]]:
    """Differences per step (ApiVersions excluded: see compare_api_versions)."""
    out: dict[str, list[tuple[str, Any, Any]]] = {}
    for name, answer in kafka.items():
        if name.startswith("api_versions"):
            continue
        d = diff(answer, ours.get(name, "<missing>"))
        if d:
            out[name] = d
    return out


# ---------------------------------------------------------------- CLI


def regenerate() -> Path:
    import tempfile

    from interop.apache_kafka import start_kafka

    with tempfile.TemporaryDirectory(prefix="golden-kafka-") as tmp:
        kafka = start_kafka(Path(tmp))
        try:
            time.sleep(1.0)  # let the controller settle (first CreateTopics right after start)
            answers = run_script(kafka.bootstrap)
        finally:
            kafka.stop()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "kafka_version": kafka.version,
        "regenerate": "python -m interop.differential regenerate",
        "responses": answers,
    }
    GOLDEN_FILE.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return GOLDEN_FILE


def load_golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN_FILE.read_text())
    return data


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "compare"
    if cmd == "regenerate":
        print(f"wrote {regenerate()}")
        return 0
    if cmd == "compare":
        import tempfile

        from interop._common import start_broker

        golden = load_golden()["responses"]
        with tempfile.TemporaryDirectory(prefix="diff-kafkapy-") as tmp:
            broker = start_broker(Path(tmp) / "data")
            try:
                ours = run_script(broker.bootstrap)
            finally:
                broker.stop()
        print(json.dumps(compare_api_versions(golden["api_versions_v3"], ours["api_versions_v3"])))
        for name, diffs in compare(golden, ours).items():
            for path, k, o in diffs:
                print(f"{name}: {path}: kafka={k!r} kafkapy={o!r}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
