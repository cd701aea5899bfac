"""Whole message definitions the shared spec folder does not have.

Each entry says a message's wire layout (field order, types, versions) in the shape of Kafka's
message definitions, written for this project from the KIPs and Kafka's protocol guide (for 4.4.0's
new messages, checked against that release's answers). `generate.py` emits a codec for every entry
whose name the shared folder lacks, after the shared folder's own.
"""

from __future__ import annotations

from typing import Any

NEW_MESSAGES: dict[str, dict[str, Any]] = {
    # AlterShareGroupOffsetsRequest (api key 91, KIP-932) as Apache Kafka 4.3.1 serves it.
    "AlterShareGroupOffsetsRequest": {
        "apiKey": 91,
        "type": "request",
        "listeners": ["broker"],
        "name": "AlterShareGroupOffsetsRequest",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "GroupId", "type": "string", "versions": "0+", "entityType": "groupId"},
            {
                "name": "Topics",
                "type": "[]AlterShareGroupOffsetsRequestTopic",
                "versions": "0+",
                "fields": [
                    {
                        "name": "TopicName",
                        "type": "string",
                        "versions": "0+",
                        "entityType": "topicName",
                        "mapKey": True,
                    },
                    {
                        "name": "Partitions",
                        "type": "[]AlterShareGroupOffsetsRequestPartition",
                        "versions": "0+",
                        "fields": [
                            {"name": "PartitionIndex", "type": "int32", "versions": "0+"},
                            {"name": "StartOffset", "type": "int64", "versions": "0+"},
                        ],
                    },
                ],
            },
        ],
    },
    # AlterShareGroupOffsetsResponse (api key 91, KIP-932) as Apache Kafka 4.3.1 serves it.
    "AlterShareGroupOffsetsResponse": {
        "apiKey": 91,
        "type": "response",
        "name": "AlterShareGroupOffsetsResponse",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
            {"name": "ErrorMessage", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {
                "name": "Responses",
                "type": "[]AlterShareGroupOffsetsResponseTopic",
                "versions": "0+",
                "fields": [
                    {
                        "name": "TopicName",
                        "type": "string",
                        "versions": "0+",
                        "entityType": "topicName",
                        "mapKey": True,
                    },
                    {"name": "TopicId", "type": "uuid", "versions": "0+"},
                    {
                        "name": "Partitions",
                        "type": "[]AlterShareGroupOffsetsResponsePartition",
                        "versions": "0+",
                        "fields": [
                            {"name": "PartitionIndex", "type": "int32", "versions": "0+"},
                            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
                            {
                                "name": "ErrorMessage",
                                "type": "string",
                                "versions": "0+",
                                "nullableVersions": "0+",
                                "default": "null",
                            },
                        ],
                    },
                ],
            },
        ],
    },
    # DeleteShareGroupOffsetsRequest (api key 92, KIP-932) as Apache Kafka 4.3.1 serves it.
    "DeleteShareGroupOffsetsRequest": {
        "apiKey": 92,
        "type": "request",
        "listeners": ["broker"],
        "name": "DeleteShareGroupOffsetsRequest",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "GroupId", "type": "string", "versions": "0+", "entityType": "groupId"},
            {
                "name": "Topics",
                "type": "[]DeleteShareGroupOffsetsRequestTopic",
                "versions": "0+",
                "fields": [{"name": "TopicName", "type": "string", "versions": "0+", "entityType": "topicName"}],
            },
        ],
    },
    # DeleteShareGroupOffsetsResponse (api key 92, KIP-932) as Apache Kafka 4.3.1 serves it.
    "DeleteShareGroupOffsetsResponse": {
        "apiKey": 92,
        "type": "response",
        "name": "DeleteShareGroupOffsetsResponse",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
            {"name": "ErrorMessage", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {
                "name": "Responses",
                "type": "[]DeleteShareGroupOffsetsResponseTopic",
                "versions": "0+",
                "fields": [
                    {"name": "TopicName", "type": "string", "versions": "0+", "entityType": "topicName"},
                    {"name": "TopicId", "type": "uuid", "versions": "0+"},
                    {"name": "ErrorCode", "type": "int16", "versions": "0+"},
                    {
                        "name": "ErrorMessage",
                        "type": "string",
                        "versions": "0+",
                        "nullableVersions": "0+",
                        "default": "null",
                    },
                ],
            },
        ],
    },
    # DescribeShareGroupOffsetsRequest (api key 90, KIP-932) as Apache Kafka 4.3.1 serves it.
    "DescribeShareGroupOffsetsRequest": {
        "apiKey": 90,
        "type": "request",
        "listeners": ["broker"],
        "name": "DescribeShareGroupOffsetsRequest",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {
                "name": "Groups",
                "type": "[]DescribeShareGroupOffsetsRequestGroup",
                "versions": "0+",
                "fields": [
                    {"name": "GroupId", "type": "string", "versions": "0+", "entityType": "groupId"},
                    {
                        "name": "Topics",
                        "type": "[]DescribeShareGroupOffsetsRequestTopic",
                        "versions": "0+",
                        "nullableVersions": "0+",
                        "fields": [
                            {"name": "TopicName", "type": "string", "versions": "0+", "entityType": "topicName"},
                            {"name": "Partitions", "type": "[]int32", "versions": "0+"},
                        ],
                    },
                ],
            }
        ],
    },
    # DescribeShareGroupOffsetsResponse (api key 90, KIP-932) as Apache Kafka 4.3.1 serves it.
    "DescribeShareGroupOffsetsResponse": {
        "apiKey": 90,
        "type": "response",
        "name": "DescribeShareGroupOffsetsResponse",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {
                "name": "Groups",
                "type": "[]DescribeShareGroupOffsetsResponseGroup",
                "versions": "0+",
                "fields": [
                    {"name": "GroupId", "type": "string", "versions": "0+", "entityType": "groupId"},
                    {
                        "name": "Topics",
                        "type": "[]DescribeShareGroupOffsetsResponseTopic",
                        "versions": "0+",
                        "fields": [
                            {"name": "TopicName", "type": "string", "versions": "0+", "entityType": "topicName"},
                            {"name": "TopicId", "type": "uuid", "versions": "0+"},
                            {
                                "name": "Partitions",
                                "type": "[]DescribeShareGroupOffsetsResponsePartition",
                                "versions": "0+",
                                "fields": [
                                    {"name": "PartitionIndex", "type": "int32", "versions": "0+"},
                                    {"name": "StartOffset", "type": "int64", "versions": "0+"},
                                    {"name": "LeaderEpoch", "type": "int32", "versions": "0+"},
                                    {
                                        "name": "Lag",
                                        "type": "int64",
                                        "versions": "1+",
                                        "default": "-1",
                                        "ignorable": True,
                                    },
                                    {"name": "ErrorCode", "type": "int16", "versions": "0+"},
                                    {
                                        "name": "ErrorMessage",
                                        "type": "string",
                                        "versions": "0+",
                                        "nullableVersions": "0+",
                                        "default": "null",
                                    },
                                ],
                            },
                        ],
                    },
                    {"name": "ErrorCode", "type": "int16", "versions": "0+"},
                    {
                        "name": "ErrorMessage",
                        "type": "string",
                        "versions": "0+",
                        "nullableVersions": "0+",
                        "default": "null",
                    },
                ],
            },
        ],
    },
    # StreamsGroupDescribe (api key 89, KIP-1071): v0 as Apache Kafka 4.3.1 serves it; v1 (4.4.0, KIP-1331)
    # adds IncludeTopologyDescription.
    "StreamsGroupDescribeRequest": {
        "apiKey": 89,
        "type": "request",
        "listeners": ["broker"],
        "name": "StreamsGroupDescribeRequest",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "GroupIds", "type": "[]string", "versions": "0+"},
            {"name": "IncludeAuthorizedOperations", "type": "bool", "versions": "0+"},
            {"name": "IncludeTopologyDescription", "type": "bool", "versions": "1+", "default": "false"},
        ],
    },
    # StreamsGroupDescribe (api key 89, KIP-1071): v0 as Apache Kafka 4.3.1 serves it; v1 (4.4.0) adds the
    # topology description and its status (KIP-1331) and AssignorName (KIP-1357).
    "StreamsGroupDescribeResponse": {
        "apiKey": 89,
        "type": "response",
        "name": "StreamsGroupDescribeResponse",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {
                "name": "Groups",
                "type": "[]DescribedGroup",
                "versions": "0+",
                "fields": [
                    {"name": "ErrorCode", "type": "int16", "versions": "0+"},
                    {
                        "name": "ErrorMessage",
                        "type": "string",
                        "versions": "0+",
                        "nullableVersions": "0+",
                        "default": "null",
                    },
                    {"name": "GroupId", "type": "string", "versions": "0+"},
                    {"name": "GroupState", "type": "string", "versions": "0+"},
                    {"name": "GroupEpoch", "type": "int32", "versions": "0+"},
                    {"name": "AssignmentEpoch", "type": "int32", "versions": "0+"},
                    {
                        "name": "Topology",
                        "type": "Topology",
                        "versions": "0+",
                        "nullableVersions": "0+",
                        "default": "null",
                        "fields": [
                            {"name": "Epoch", "type": "int32", "versions": "0+"},
                            {
                                "name": "Subtopologies",
                                "type": "[]Subtopology",
                                "versions": "0+",
                                "nullableVersions": "0+",
                                "default": "null",
                                "fields": [
                                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                                    {"name": "SourceTopics", "type": "[]string", "versions": "0+"},
                                    {"name": "RepartitionSinkTopics", "type": "[]string", "versions": "0+"},
                                    {"name": "StateChangelogTopics", "type": "[]TopicInfo", "versions": "0+"},
                                    {"name": "RepartitionSourceTopics", "type": "[]TopicInfo", "versions": "0+"},
                                ],
                            },
                        ],
                    },
                    {
                        "name": "Members",
                        "type": "[]Member",
                        "versions": "0+",
                        "fields": [
                            {"name": "MemberId", "type": "string", "versions": "0+"},
                            {"name": "MemberEpoch", "type": "int32", "versions": "0+"},
                            {
                                "name": "InstanceId",
                                "type": "string",
                                "versions": "0+",
                                "nullableVersions": "0+",
                                "default": "null",
                            },
                            {
                                "name": "RackId",
                                "type": "string",
                                "versions": "0+",
                                "nullableVersions": "0+",
                                "default": "null",
                            },
                            {"name": "ClientId", "type": "string", "versions": "0+"},
                            {"name": "ClientHost", "type": "string", "versions": "0+"},
                            {"name": "TopologyEpoch", "type": "int32", "versions": "0+"},
                            {"name": "ProcessId", "type": "string", "versions": "0+"},
                            {
                                "name": "UserEndpoint",
                                "type": "Endpoint",
                                "versions": "0+",
                                "nullableVersions": "0+",
                                "default": "null",
                            },
                            {"name": "ClientTags", "type": "[]KeyValue", "versions": "0+"},
                            {"name": "TaskOffsets", "type": "[]TaskOffset", "versions": "0+"},
                            {"name": "TaskEndOffsets", "type": "[]TaskOffset", "versions": "0+"},
                            {"name": "Assignment", "type": "Assignment", "versions": "0+"},
                            {"name": "TargetAssignment", "type": "Assignment", "versions": "0+"},
                            {"name": "IsClassic", "type": "bool", "versions": "0+"},
                        ],
                    },
                    {"name": "AuthorizedOperations", "type": "int32", "versions": "0+", "default": "-2147483648"},
                    {
                        "name": "TopologyDescription",
                        "type": "TopologyDescription",
                        "versions": "1+",
                        "nullableVersions": "1+",
                        "default": "null",
                    },
                    {"name": "TopologyDescriptionStatus", "type": "int8", "versions": "1+", "default": "0"},
                    {
                        "name": "AssignorName",
                        "type": "string",
                        "versions": "1+",
                        "nullableVersions": "1+",
                        "default": "null",
                        "ignorable": True,
                    },
                ],
            },
        ],
        "commonStructs": [
            {
                "name": "Endpoint",
                "versions": "0+",
                "fields": [
                    {"name": "Host", "type": "string", "versions": "0+"},
                    {"name": "Port", "type": "uint16", "versions": "0+"},
                ],
            },
            {
                "name": "TaskOffset",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Partition", "type": "int32", "versions": "0+"},
                    {"name": "Offset", "type": "int64", "versions": "0+"},
                ],
            },
            {
                "name": "Assignment",
                "versions": "0+",
                "fields": [
                    {"name": "ActiveTasks", "type": "[]TaskIds", "versions": "0+"},
                    {"name": "StandbyTasks", "type": "[]TaskIds", "versions": "0+"},
                    {"name": "WarmupTasks", "type": "[]TaskIds", "versions": "0+"},
                ],
            },
            {
                "name": "TaskIds",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "[]int32", "versions": "0+"},
                ],
            },
            {
                "name": "KeyValue",
                "versions": "0+",
                "fields": [
                    {"name": "Key", "type": "string", "versions": "0+"},
                    {"name": "Value", "type": "string", "versions": "0+"},
                ],
            },
            {
                "name": "TopicInfo",
                "versions": "0+",
                "fields": [
                    {"name": "Name", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "int32", "versions": "0+"},
                    {"name": "ReplicationFactor", "type": "int16", "versions": "0+"},
                    {"name": "TopicConfigs", "type": "[]KeyValue", "versions": "0+"},
                ],
            },
            {
                "name": "TopologyDescription",
                "versions": "1+",
                "fields": [
                    {"name": "Subtopologies", "type": "[]TopologyDescriptionSubtopology", "versions": "1+"},
                    {"name": "GlobalStores", "type": "[]TopologyDescriptionGlobalStore", "versions": "1+"},
                ],
            },
            {
                "name": "TopologyDescriptionSubtopology",
                "versions": "1+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "1+"},
                    {"name": "Nodes", "type": "[]TopologyDescriptionNode", "versions": "1+"},
                ],
            },
            {
                "name": "TopologyDescriptionNode",
                "versions": "1+",
                "fields": [
                    {"name": "Name", "type": "string", "versions": "1+"},
                    {"name": "NodeType", "type": "int8", "versions": "1+"},
                    {"name": "SourceTopics", "type": "[]string", "versions": "1+"},
                    {
                        "name": "SinkTopic",
                        "type": "string",
                        "versions": "1+",
                        "nullableVersions": "1+",
                        "default": "null",
                    },
                    {"name": "Stores", "type": "[]string", "versions": "1+"},
                    {"name": "Successors", "type": "[]string", "versions": "1+"},
                ],
            },
            {
                "name": "TopologyDescriptionGlobalStore",
                "versions": "1+",
                "fields": [
                    {"name": "Source", "type": "TopologyDescriptionNode", "versions": "1+"},
                    {"name": "Processor", "type": "TopologyDescriptionNode", "versions": "1+"},
                ],
            },
        ],
    },
    # StreamsGroupHeartbeat (api key 88, KIP-1071): v0 as Apache Kafka 4.3.1 serves it, v1 (4.4.0) the same request.
    "StreamsGroupHeartbeatRequest": {
        "apiKey": 88,
        "type": "request",
        "listeners": ["broker"],
        "name": "StreamsGroupHeartbeatRequest",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "GroupId", "type": "string", "versions": "0+"},
            {"name": "MemberId", "type": "string", "versions": "0+"},
            {"name": "MemberEpoch", "type": "int32", "versions": "0+"},
            {"name": "EndpointInformationEpoch", "type": "int32", "versions": "0+"},
            {"name": "InstanceId", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "RackId", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "RebalanceTimeoutMs", "type": "int32", "versions": "0+", "default": -1},
            {
                "name": "Topology",
                "type": "Topology",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
                "fields": [
                    {"name": "Epoch", "type": "int32", "versions": "0+"},
                    {
                        "name": "Subtopologies",
                        "type": "[]Subtopology",
                        "versions": "0+",
                        "fields": [
                            {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                            {"name": "SourceTopics", "type": "[]string", "versions": "0+"},
                            {"name": "SourceTopicRegex", "type": "[]string", "versions": "0+"},
                            {"name": "StateChangelogTopics", "type": "[]TopicInfo", "versions": "0+"},
                            {"name": "RepartitionSinkTopics", "type": "[]string", "versions": "0+"},
                            {"name": "RepartitionSourceTopics", "type": "[]TopicInfo", "versions": "0+"},
                            {
                                "name": "CopartitionGroups",
                                "type": "[]CopartitionGroup",
                                "versions": "0+",
                                "fields": [
                                    {"name": "SourceTopics", "type": "[]int16", "versions": "0+"},
                                    {"name": "SourceTopicRegex", "type": "[]int16", "versions": "0+"},
                                    {"name": "RepartitionSourceTopics", "type": "[]int16", "versions": "0+"},
                                ],
                            },
                        ],
                    },
                ],
            },
            {"name": "ActiveTasks", "type": "[]TaskIds", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {
                "name": "StandbyTasks",
                "type": "[]TaskIds",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
            },
            {"name": "WarmupTasks", "type": "[]TaskIds", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "ProcessId", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "UserEndpoint", "type": "Endpoint", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "ClientTags", "type": "[]KeyValue", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {
                "name": "TaskOffsets",
                "type": "[]TaskOffset",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
            },
            {
                "name": "TaskEndOffsets",
                "type": "[]TaskOffset",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
            },
            {"name": "ShutdownApplication", "type": "bool", "versions": "0+", "default": False},
        ],
        "commonStructs": [
            {
                "name": "KeyValue",
                "versions": "0+",
                "fields": [
                    {"name": "Key", "type": "string", "versions": "0+"},
                    {"name": "Value", "type": "string", "versions": "0+"},
                ],
            },
            {
                "name": "TopicInfo",
                "versions": "0+",
                "fields": [
                    {"name": "Name", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "int32", "versions": "0+"},
                    {"name": "ReplicationFactor", "type": "int16", "versions": "0+"},
                    {"name": "TopicConfigs", "type": "[]KeyValue", "versions": "0+"},
                ],
            },
            {
                "name": "Endpoint",
                "versions": "0+",
                "fields": [
                    {"name": "Host", "type": "string", "versions": "0+"},
                    {"name": "Port", "type": "uint16", "versions": "0+"},
                ],
            },
            {
                "name": "TaskOffset",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Partition", "type": "int32", "versions": "0+"},
                    {"name": "Offset", "type": "int64", "versions": "0+"},
                ],
            },
            {
                "name": "TaskIds",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "[]int32", "versions": "0+"},
                ],
            },
        ],
    },
    # StreamsGroupHeartbeat (api key 88, KIP-1071): v0 as Apache Kafka 4.3.1 serves it; v1 (4.4.0, KIP-1331)
    # adds TopologyDescriptionRequired and an int64 AcceptableRecoveryLag (v0's int32 one is v0 only).
    "StreamsGroupHeartbeatResponse": {
        "apiKey": 88,
        "type": "response",
        "name": "StreamsGroupHeartbeatResponse",
        "validVersions": "0-1",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
            {"name": "ErrorMessage", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "MemberId", "type": "string", "versions": "0+"},
            {"name": "MemberEpoch", "type": "int32", "versions": "0+"},
            {"name": "HeartbeatIntervalMs", "type": "int32", "versions": "0+"},
            {"name": "AcceptableRecoveryLagLegacy", "type": "int32", "versions": "0"},
            {"name": "TaskOffsetIntervalMs", "type": "int32", "versions": "0+"},
            {"name": "AcceptableRecoveryLag", "type": "int64", "versions": "1+", "default": "-1", "ignorable": True},
            {"name": "Status", "type": "[]Status", "versions": "0+", "nullableVersions": "0+"},
            {"name": "ActiveTasks", "type": "[]TaskIds", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {
                "name": "StandbyTasks",
                "type": "[]TaskIds",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
            },
            {"name": "WarmupTasks", "type": "[]TaskIds", "versions": "0+", "nullableVersions": "0+", "default": "null"},
            {"name": "TopologyDescriptionRequired", "type": "bool", "versions": "1+", "default": "false"},
            {"name": "EndpointInformationEpoch", "type": "int32", "versions": "0+"},
            {
                "name": "PartitionsByUserEndpoint",
                "type": "[]EndpointToPartitions",
                "versions": "0+",
                "nullableVersions": "0+",
                "default": "null",
                "fields": [
                    {"name": "UserEndpoint", "type": "Endpoint", "versions": "0+"},
                    {"name": "ActivePartitions", "type": "[]TopicPartition", "versions": "0+"},
                    {"name": "StandbyPartitions", "type": "[]TopicPartition", "versions": "0+"},
                ],
            },
        ],
        "commonStructs": [
            {
                "name": "Status",
                "versions": "0+",
                "fields": [
                    {"name": "StatusCode", "type": "int8", "versions": "0+"},
                    {"name": "StatusDetail", "type": "string", "versions": "0+"},
                ],
            },
            {
                "name": "TopicPartition",
                "versions": "0+",
                "fields": [
                    {"name": "Topic", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "[]int32", "versions": "0+"},
                ],
            },
            {
                "name": "TaskIds",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Partitions", "type": "[]int32", "versions": "0+"},
                ],
            },
            {
                "name": "Endpoint",
                "versions": "0+",
                "fields": [
                    {"name": "Host", "type": "string", "versions": "0+"},
                    {"name": "Port", "type": "uint16", "versions": "0+"},
                ],
            },
        ],
    },
    # StreamsGroupTopologyDescriptionUpdateRequest (api key 93, KIP-1331) as Apache Kafka 4.4.0 serves it:
    # a Streams group member pushes its topology's description.
    "StreamsGroupTopologyDescriptionUpdateRequest": {
        "apiKey": 93,
        "type": "request",
        "listeners": ["broker"],
        "name": "StreamsGroupTopologyDescriptionUpdateRequest",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "GroupId", "type": "string", "versions": "0+", "entityType": "groupId"},
            {"name": "MemberId", "type": "string", "versions": "0+"},
            {"name": "TopologyEpoch", "type": "int32", "versions": "0+"},
            {"name": "TopologyDescription", "type": "TopologyDescription", "versions": "0+"},
        ],
        "commonStructs": [
            {
                "name": "TopologyDescription",
                "versions": "0+",
                "fields": [
                    {"name": "Subtopologies", "type": "[]TopologyDescriptionSubtopology", "versions": "0+"},
                    {"name": "GlobalStores", "type": "[]TopologyDescriptionGlobalStore", "versions": "0+"},
                ],
            },
            {
                "name": "TopologyDescriptionSubtopology",
                "versions": "0+",
                "fields": [
                    {"name": "SubtopologyId", "type": "string", "versions": "0+"},
                    {"name": "Nodes", "type": "[]TopologyDescriptionNode", "versions": "0+"},
                ],
            },
            {
                "name": "TopologyDescriptionNode",
                "versions": "0+",
                "fields": [
                    {"name": "Name", "type": "string", "versions": "0+"},
                    {"name": "NodeType", "type": "int8", "versions": "0+"},
                    {"name": "SourceTopics", "type": "[]string", "versions": "0+", "entityType": "topicName"},
                    {
                        "name": "SinkTopic",
                        "type": "string",
                        "versions": "0+",
                        "entityType": "topicName",
                        "nullableVersions": "0+",
                        "default": "null",
                    },
                    {"name": "Stores", "type": "[]string", "versions": "0+"},
                    {"name": "Successors", "type": "[]string", "versions": "0+"},
                ],
            },
            {
                "name": "TopologyDescriptionGlobalStore",
                "versions": "0+",
                "fields": [
                    {"name": "Source", "type": "TopologyDescriptionNode", "versions": "0+"},
                    {"name": "Processor", "type": "TopologyDescriptionNode", "versions": "0+"},
                ],
            },
        ],
    },
    # StreamsGroupTopologyDescriptionUpdateResponse (api key 93, KIP-1331) as Apache Kafka 4.4.0 serves it.
    "StreamsGroupTopologyDescriptionUpdateResponse": {
        "apiKey": 93,
        "type": "response",
        "name": "StreamsGroupTopologyDescriptionUpdateResponse",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
            {"name": "ErrorMessage", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
        ],
    },
    # UnregisterControllerRequest (api key 94) as Apache Kafka 4.4.0 serves it: remove a controller's
    # registration.
    "UnregisterControllerRequest": {
        "apiKey": 94,
        "type": "request",
        "listeners": ["broker", "controller"],
        "name": "UnregisterControllerRequest",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [{"name": "ControllerId", "type": "int32", "versions": "0+", "entityType": "brokerId"}],
    },
    # UnregisterControllerResponse (api key 94) as Apache Kafka 4.4.0 serves it.
    "UnregisterControllerResponse": {
        "apiKey": 94,
        "type": "response",
        "name": "UnregisterControllerResponse",
        "validVersions": "0",
        "flexibleVersions": "0+",
        "fields": [
            {"name": "ThrottleTimeMs", "type": "int32", "versions": "0+"},
            {"name": "ErrorCode", "type": "int16", "versions": "0+"},
            {"name": "ErrorMessage", "type": "string", "versions": "0+", "nullableVersions": "0+", "default": "null"},
        ],
    },
}
