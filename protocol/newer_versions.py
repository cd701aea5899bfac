"""Message versions newer than the shared spec folder's (a late-2024 Kafka trunk).

The folder stops before some versions Apache Kafka 4.x serves. Each entry below
says what such a version adds on the wire, written for this project from the KIPs
and Kafka's protocol documentation; `generate.py` applies them to the parsed
JSON definitions before it emits the codecs. A field is placed after the field
it follows on the wire (`after`), inside the struct named by `struct` (the
message itself when empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class NewField:
    struct: str  # struct type name ("" = the message's top level)
    after: str  # the field it follows
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewVersions:
    valid_to: int  # the newest version
    fields: tuple[NewField, ...] = field(default=())
    note: str = ""
    # (struct, field, key, value): a field attribute the newer versions change, e.g.
    # ("S", "F", "versions", "0") for a field they dropped
    changed: tuple[tuple[str, str, str, str], ...] = field(default=())


def _topic_id(versions: str) -> dict[str, Any]:
    return {"name": "TopicId", "type": "uuid", "versions": versions, "ignorable": True, "about": "The topic id."}


NEWER: dict[str, NewVersions] = {
    # KIP-1043: v6 answers GROUP_ID_NOT_FOUND for an unknown group, with a message.
    "DescribeGroupsRequest": NewVersions(6, note="v6: GROUP_ID_NOT_FOUND for unknown groups (KIP-1043)"),
    "DescribeGroupsResponse": NewVersions(
        6,
        (
            NewField(
                "DescribedGroup",
                "ErrorCode",
                {
                    "name": "ErrorMessage",
                    "type": "string",
                    "versions": "6+",
                    "nullableVersions": "6+",
                    "default": "null",
                    "about": "Why the group could not be described, or null.",
                },
            ),
        ),
        note="v6: ErrorMessage per group (KIP-1043)",
    ),
    # KIP-1073: fenced brokers in DescribeCluster.
    "DescribeClusterRequest": NewVersions(
        2,
        (
            NewField(
                "",
                "EndpointType",
                {
                    "name": "IncludeFencedBrokers",
                    "type": "bool",
                    "versions": "2+",
                    "about": "List fenced brokers too.",
                },
            ),
        ),
        note="v2: IncludeFencedBrokers (KIP-1073)",
    ),
    "DescribeClusterResponse": NewVersions(
        2,
        (
            NewField(
                "DescribeClusterBroker",
                "Rack",
                {"name": "IsFenced", "type": "bool", "versions": "2+", "about": "Whether the broker is fenced."},
            ),
        ),
        note="v2: IsFenced per broker (KIP-1073)",
    ),
    # KIP-1152: a transactional id pattern filter.
    "ListTransactionsRequest": NewVersions(
        2,
        (
            NewField(
                "",
                "DurationFilter",
                {
                    "name": "TransactionalIdPattern",
                    "type": "string",
                    "versions": "2+",
                    "nullableVersions": "2+",
                    "default": "null",
                    "about": "A regular expression the transactional ids must match; null or empty: all.",
                },
            ),
        ),
        note="v2: TransactionalIdPattern (KIP-1152)",
    ),
    "ListTransactionsResponse": NewVersions(2, note="v2: may answer INVALID_REGULAR_EXPRESSION (KIP-1152)"),
    # KIP-1099: the member type in ConsumerGroupDescribe.
    "ConsumerGroupDescribeRequest": NewVersions(1, note="v1: same request as v0"),
    "ConsumerGroupDescribeResponse": NewVersions(
        1,
        (
            NewField(
                "Member",
                "TargetAssignment",
                {
                    "name": "MemberType",
                    "type": "int8",
                    "versions": "1+",
                    "default": "-1",
                    "about": "-1 unknown, 0 a classic-protocol member, 1 a consumer-protocol member.",
                },
            ),
        ),
        note="v1: MemberType (KIP-1099)",
    ),
    # KIP-860: a reassignment may be refused when it changes the replication factor.
    "AlterPartitionReassignmentsRequest": NewVersions(
        1,
        (
            NewField(
                "",
                "TimeoutMs",
                {
                    "name": "AllowReplicationFactorChange",
                    "type": "bool",
                    "versions": "1+",
                    "default": "true",
                    "about": "Whether a reassignment may change a partition's replication factor.",
                },
            ),
        ),
        note="v1: AllowReplicationFactorChange (KIP-860)",
    ),
    "AlterPartitionReassignmentsResponse": NewVersions(
        1,
        (
            NewField(
                "",
                "ThrottleTimeMs",
                {
                    "name": "AllowReplicationFactorChange",
                    "type": "bool",
                    "versions": "1+",
                    "default": "true",
                    "about": "The request's AllowReplicationFactorChange, echoed.",
                },
            ),
        ),
        note="v1: AllowReplicationFactorChange echoed (KIP-860)",
    ),
    # KIP-1228: the transaction version a marker was written under.
    "WriteTxnMarkersRequest": NewVersions(
        2,
        (
            NewField(
                "WritableTxnMarker",
                "CoordinatorEpoch",
                {
                    "name": "TransactionVersion",
                    "type": "int8",
                    "versions": "2+",
                    "default": "0",
                    "about": "The transaction version (0 or 1: before transactions v2, 2: transactions v2).",
                },
            ),
        ),
        note="v2: TransactionVersion per marker (KIP-1228)",
    ),
    "WriteTxnMarkersResponse": NewVersions(2, note="v2: same response as v1 (KIP-1228)"),
    # KIP-890 part 2: same layout; the version tells the broker the client runs transactions v2.
    # KIP-516 (v13): topics by id instead of name.
    "ProduceRequest": NewVersions(
        13,
        (
            NewField(
                "TopicProduceData",
                "Name",
                {"name": "TopicId", "type": "uuid", "versions": "13+", "mapKey": True, "about": "The topic id."},
            ),
        ),
        note="v12: same request as v11 (KIP-890 part 2, transactions v2); v13: TopicId instead of Name (KIP-516)",
        changed=(("TopicProduceData", "Name", "versions", "0-12"),),
    ),
    "ProduceResponse": NewVersions(
        13,
        (
            NewField(
                "TopicProduceResponse",
                "Name",
                {"name": "TopicId", "type": "uuid", "versions": "13+", "mapKey": True, "about": "The topic id."},
            ),
        ),
        note="v12: same response as v11 (KIP-890 part 2); v13: TopicId instead of Name (KIP-516)",
        changed=(("TopicProduceResponse", "Name", "versions", "0-12"),),
    ),
    # KIP-1319 (v6, Kafka 4.4.0): topics by id; GROUP_ID_NOT_FOUND, STALE_MEMBER_EPOCH, UNKNOWN_TOPIC_ID.
    "TxnOffsetCommitRequest": NewVersions(
        6,
        (
            NewField(
                "TxnOffsetCommitRequestTopic",
                "Name",
                {"name": "TopicId", "type": "uuid", "versions": "6+", "about": "The topic id."},
            ),
        ),
        note="v5: same request as v4 (KIP-890 part 2, transactions v2); v6: TopicId instead of Name (KIP-1319)",
        changed=(("TxnOffsetCommitRequestTopic", "Name", "versions", "0-5"),),
    ),
    "TxnOffsetCommitResponse": NewVersions(
        6,
        (
            NewField(
                "TxnOffsetCommitResponseTopic",
                "Name",
                {"name": "TopicId", "type": "uuid", "versions": "6+", "about": "The topic id."},
            ),
        ),
        note="v5: same response as v4 (KIP-890 part 2); v6: TopicId instead of Name (KIP-1319)",
        changed=(("TxnOffsetCommitResponseTopic", "Name", "versions", "0-5"),),
    ),
    # KIP-1066: whether a log directory is cordoned (no new partitions placed there).
    "DescribeLogDirsRequest": NewVersions(5, note="v5: same request as v4"),
    "DescribeLogDirsResponse": NewVersions(
        5,
        (
            NewField(
                "DescribeLogDirsResult",
                "UsableBytes",
                {
                    "name": "IsCordoned",
                    "type": "bool",
                    "versions": "5+",
                    "default": "false",
                    "about": "Whether the log directory is cordoned.",
                },
            ),
        ),
        note="v5: IsCordoned per log dir (KIP-1066)",
    ),
    # KIP-932: share groups. v0 was early access; Kafka 4.x serves v1 (same layout for the
    # heartbeat and describe), ShareFetch/ShareAcknowledge v2.
    "ShareGroupHeartbeatRequest": NewVersions(1, note="v1: same request as v0 (KIP-932)"),
    "ShareGroupHeartbeatResponse": NewVersions(1, note="v1: same response as v0 (KIP-932)"),
    "ShareGroupDescribeRequest": NewVersions(1, note="v1: same request as v0 (KIP-932)"),
    "ShareGroupDescribeResponse": NewVersions(1, note="v1: same response as v0 (KIP-932)"),
    "ShareFetchRequest": NewVersions(
        2,
        (
            NewField(
                "",
                "MaxBytes",
                {"name": "MaxRecords", "type": "int32", "versions": "1+", "about": "The maximum records to fetch."},
            ),
            NewField(
                "",
                "MaxRecords",
                {
                    "name": "BatchSize",
                    "type": "int32",
                    "versions": "1+",
                    "about": "The optimal number of records per acquired batch.",
                },
            ),
            NewField(
                "",
                "BatchSize",
                {
                    "name": "ShareAcquireMode",
                    "type": "int8",
                    "versions": "2+",
                    "default": "0",
                    "about": "0 batch-optimized, 1 record-limit.",
                },
            ),
            NewField(
                "",
                "ShareAcquireMode",
                {
                    "name": "IsRenewAck",
                    "type": "bool",
                    "versions": "2+",
                    "default": "false",
                    "about": "Whether the acknowledgements include RENEW.",
                },
            ),
        ),
        note="v1: MaxRecords, BatchSize, no PartitionMaxBytes; v2: ShareAcquireMode, IsRenewAck (KIP-932, KIP-1206, KIP-1222)",
        changed=(("FetchPartition", "PartitionMaxBytes", "versions", "0"),),
    ),
    "ShareFetchResponse": NewVersions(
        2,
        (
            NewField(
                "",
                "ErrorMessage",
                {
                    "name": "AcquisitionLockTimeoutMs",
                    "type": "int32",
                    "versions": "1+",
                    "about": "The acquisition lock timeout of the fetched records.",
                },
            ),
        ),
        note="v1: AcquisitionLockTimeoutMs, Records not nullable (KIP-932); v2: same as v1",
        changed=(("PartitionData", "Records", "nullableVersions", "0"),),
    ),
    "ShareAcknowledgeRequest": NewVersions(
        2,
        (
            NewField(
                "",
                "ShareSessionEpoch",
                {
                    "name": "IsRenewAck",
                    "type": "bool",
                    "versions": "2+",
                    "default": "false",
                    "about": "Whether the acknowledgements include RENEW.",
                },
            ),
        ),
        note="v1: same as v0 (KIP-932); v2: IsRenewAck (KIP-1222)",
    ),
    "ShareAcknowledgeResponse": NewVersions(
        2,
        (
            NewField(
                "",
                "ErrorMessage",
                {
                    "name": "AcquisitionLockTimeoutMs",
                    "type": "int32",
                    "versions": "2+",
                    "about": "The acquisition lock timeout of the renewed records.",
                },
            ),
        ),
        note="v1: same as v0 (KIP-932); v2: AcquisitionLockTimeoutMs (KIP-1222)",
    ),
    # KIP-1166: a follower's high watermark in Fetch (tagged; consumers leave it at the default).
    "FetchRequest": NewVersions(
        18,
        (
            NewField(
                "FetchPartition",
                "ReplicaDirectoryId",
                {
                    "name": "HighWatermark",
                    "type": "int64",
                    "versions": "18+",
                    "taggedVersions": "18+",
                    "tag": 1,
                    "default": "9223372036854775807",
                    "ignorable": True,
                    "about": "The follower's high watermark: -1 unknown, 2^63-1 not sent.",
                },
            ),
        ),
        note="v18: HighWatermark per partition (KIP-1166)",
    ),
    "FetchResponse": NewVersions(18, note="v18: same response as v17"),
    # KIP-1023: v11 may ask for the earliest pending upload offset (timestamp -6).
    "ListOffsetsRequest": NewVersions(11, note="v11: timestamp -6, earliest pending upload (KIP-1023)"),
    "ListOffsetsResponse": NewVersions(11, note="v11: same response as v10"),
    # KIP-1102: a top-level error code in Metadata (REBOOTSTRAP_REQUIRED).
    "MetadataRequest": NewVersions(13, note="v13: same request as v12"),
    "MetadataResponse": NewVersions(
        13,
        (
            NewField(
                "",
                "ClusterAuthorizedOperations",
                {"name": "ErrorCode", "type": "int16", "versions": "13+", "about": "The top-level error code."},
            ),
        ),
        note="v13: top-level ErrorCode (KIP-1102)",
    ),
    # KIP-848: OffsetCommit and OffsetFetch name topics by id from v10.
    "OffsetCommitRequest": NewVersions(
        10,
        (NewField("OffsetCommitRequestTopic", "Name", _topic_id("10+")),),
        note="v10: TopicId instead of Name (KIP-848)",
        changed=(("OffsetCommitRequestTopic", "Name", "versions", "0-9"),),
    ),
    "OffsetCommitResponse": NewVersions(
        10,
        (NewField("OffsetCommitResponseTopic", "Name", _topic_id("10+")),),
        note="v10: TopicId instead of Name (KIP-848)",
        changed=(("OffsetCommitResponseTopic", "Name", "versions", "0-9"),),
    ),
    "OffsetFetchRequest": NewVersions(
        10,
        (NewField("OffsetFetchRequestTopics", "Name", _topic_id("10+")),),
        note="v10: TopicId instead of Name (KIP-848)",
        changed=(("OffsetFetchRequestTopics", "Name", "versions", "8-9"),),
    ),
    "OffsetFetchResponse": NewVersions(
        10,
        (NewField("OffsetFetchResponseTopics", "Name", _topic_id("10+")),),
        note="v10: TopicId instead of Name (KIP-848)",
        changed=(("OffsetFetchResponseTopics", "Name", "versions", "8-9"),),
    ),
    # Kafka 4.4.0: an error message per group in DeleteGroups.
    "DeleteGroupsRequest": NewVersions(3, note="v3: same request as v2"),
    "DeleteGroupsResponse": NewVersions(
        3,
        (
            NewField(
                "DeletableGroupResult",
                "ErrorCode",
                {
                    "name": "ErrorMessage",
                    "type": "string",
                    "versions": "3+",
                    "nullableVersions": "3+",
                    "default": "null",
                    "ignorable": True,
                    "about": "The group's error message, or null.",
                },
            ),
        ),
        note="v3: ErrorMessage per group",
    ),
    # KIP-1242 (Kafka 4.4.0): the client names the cluster and node it expects to reach.
    "ApiVersionsRequest": NewVersions(
        5,
        (
            NewField(
                "",
                "ClientSoftwareVersion",
                {
                    "name": "ClusterId",
                    "type": "string",
                    "versions": "5+",
                    "nullableVersions": "5+",
                    "default": "null",
                    "ignorable": True,
                    "about": "The cluster id the client expects, or null.",
                },
            ),
            NewField(
                "",
                "ClusterId",
                {
                    "name": "NodeId",
                    "type": "int32",
                    "versions": "5+",
                    "default": "-1",
                    "ignorable": True,
                    "about": "The node id the client expects, or -1.",
                },
            ),
        ),
        note="v5: ClusterId and NodeId (KIP-1242)",
    ),
    "ApiVersionsResponse": NewVersions(5, note="v5: same response as v4, may answer REBOOTSTRAP_REQUIRED (KIP-1242)"),
    # KIP-1142: ListClientMetricsResources becomes ListConfigResources, for any resource type.
    "ListClientMetricsResourcesRequest": NewVersions(
        1,
        (
            NewField(
                "",
                "",
                {
                    "name": "ResourceTypes",
                    "type": "[]int8",
                    "versions": "1+",
                    "about": "The resource types to list; empty: the default ones.",
                },
            ),
        ),
        note="v1: ListConfigResources, ResourceTypes (KIP-1142)",
    ),
    "ListClientMetricsResourcesResponse": NewVersions(
        1,
        (
            NewField(
                "ClientMetricsResource",
                "Name",
                {
                    "name": "ResourceType",
                    "type": "int8",
                    "versions": "1+",
                    "default": "16",
                    "about": "The resource type (16: client metrics).",
                },
            ),
        ),
        note="v1: ResourceType per resource (KIP-1142)",
    ),
    # KIP-1186: v1 may ask for the answer before the new voter set is committed.
    "AddRaftVoterRequest": NewVersions(
        1,
        (
            NewField(
                "",
                "Listeners",
                {
                    "name": "AckWhenCommitted",
                    "type": "bool",
                    "versions": "1+",
                    "default": "true",
                    "about": "Answer once the new voter set is committed (false: once it is written).",
                },
            ),
        ),
        note="v1: AckWhenCommitted (KIP-1186)",
    ),
    "AddRaftVoterResponse": NewVersions(1, note="v1: as v0 (KIP-1186)"),
    # KIP-932 share coordinator RPCs as Kafka 4.3.1 serves them: v1 adds DeliveryCompleteCount; the
    # summary's LeaderEpoch is in v0 already (the shared folder's unreleased v0 lacks it).
    "WriteShareGroupStateRequest": NewVersions(
        1,
        (
            NewField(
                "PartitionData",
                "StartOffset",
                {
                    "name": "DeliveryCompleteCount",
                    "type": "int32",
                    "versions": "1+",
                    "default": "-1",
                    "about": "Offsets from the start offset whose delivery is complete (-1: not written).",
                },
            ),
        ),
        note="v1: DeliveryCompleteCount (KIP-932)",
    ),
    "WriteShareGroupStateResponse": NewVersions(1, note="v1: as v0"),
    "ReadShareGroupStateSummaryRequest": NewVersions(1, note="v1: as v0"),
    "ReadShareGroupStateSummaryResponse": NewVersions(
        1,
        (
            NewField(
                "PartitionResult",
                "StateEpoch",
                {"name": "LeaderEpoch", "type": "int32", "versions": "0+", "about": "The leader epoch."},
            ),
            NewField(
                "PartitionResult",
                "StartOffset",
                {
                    "name": "DeliveryCompleteCount",
                    "type": "int32",
                    "versions": "1+",
                    "default": "-1",
                    "about": "Offsets from the start offset whose delivery is complete (-1: not known).",
                },
            ),
        ),
        note="v0: LeaderEpoch; v1: DeliveryCompleteCount (KIP-932)",
    ),
}


def _fields_of(d: dict[str, Any], struct: str) -> list[dict[str, Any]] | None:
    """The field list of `struct` in a raw definition (the top level when `struct` is empty)."""
    if not struct:
        fields: list[dict[str, Any]] = d["fields"]
        return fields
    for cs in d.get("commonStructs", []):
        if cs["name"] == struct:
            found: list[dict[str, Any]] = cs["fields"]
            return found
    stack = list(d["fields"])
    while stack:
        f = stack.pop()
        if "fields" in f:
            if f["type"].strip().removeprefix("[]") == struct:
                inner: list[dict[str, Any]] = f["fields"]
                return inner
            stack.extend(f["fields"])
    return None


def amend(d: dict[str, Any]) -> bool:
    """Apply the newer versions of definition `d` in place; True if it had any."""
    newer = NEWER.get(d["name"])
    if newer is None:
        return False
    lo, _, hi = d["validVersions"].partition("-")
    if int(hi or lo) >= newer.valid_to:
        return False  # the spec folder already has them
    d["validVersions"] = f"{lo}-{newer.valid_to}"
    d["latestVersionUnstable"] = False  # the versions listed here are released ones
    for nf in newer.fields:
        fields = _fields_of(d, nf.struct)
        if fields is None:
            raise SystemExit(f"{d['name']}: no struct {nf.struct!r} for {nf.definition['name']}")
        names = [f["name"] for f in fields]
        if nf.after and nf.after not in names:
            raise SystemExit(f"{d['name']}: no field {nf.after} in {nf.struct or 'the top level'}")
        fields.insert(names.index(nf.after) + 1 if nf.after else 0, dict(nf.definition))  # after "": first
    for struct, name, key, value in newer.changed:
        found = [f for f in _fields_of(d, struct) or [] if f["name"] == name]
        if not found:
            raise SystemExit(f"{d['name']}: no field {name} in {struct or 'the top level'}")
        found[0][key] = value
    return True
