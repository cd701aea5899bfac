"""Topic and broker config validation through a real broker: Kafka 4.3.1's error codes and
messages (checked against the reference broker by interop/diff_configs.py), and
internal.segment.bytes reaching the log."""

from __future__ import annotations

import time

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkapy.protocol.messages.describe_configs_request import DescribeConfigsRequest, DescribeConfigsResource
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient

TOPIC, BROKER = 2, 4
SET, DELETE, APPEND = 0, 1, 2


def create(c: RawClient, name: str, configs: dict[str, str | None]) -> tuple[int, str | None]:
    req = CreateTopicsRequest(
        topics=[
            CreatableTopic(
                name=name,
                num_partitions=1,
                replication_factor=1,
                configs=[CreatableTopicConfig(name=k, value=v) for k, v in configs.items()],
            )
        ],
        timeout_ms=5000,
    )
    t = c.request(req, 7).topics[0]
    return t.error_code, t.error_message


def alter(
    c: RawClient, rtype: int, name: str, *ops: tuple[str, int, str | None], validate_only: bool = False
) -> tuple[int, str | None]:
    req = IncrementalAlterConfigsRequest(
        resources=[
            AlterConfigsResource(
                resource_type=rtype,
                resource_name=name,
                configs=[AlterableConfig(name=n, config_operation=op, value=v) for n, op, v in ops],
            )
        ],
        validate_only=validate_only,
    )
    r = c.request(req, 1).responses[0]
    return r.error_code, r.error_message


def describe(c: RawClient, name: str, keys: list[str] | None) -> dict[str, str | None]:
    req = DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=TOPIC, resource_name=name, configuration_keys=keys)]
    )
    return {e.name: e.value for e in c.request(req, 4).results[0].configs}


def test_create_topics_refuses_as_kafka(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create(c, "cv-small", {"segment.bytes": "200"}) == (
            ErrorCode.INVALID_CONFIG,
            "Invalid value 200 for configuration segment.bytes: Value must be at least 1048576",
        )
        assert create(c, "cv-null", {"retention.ms": None}) == (
            ErrorCode.INVALID_CONFIG,
            "Null value not supported for topic configs: retention.ms",
        )
        assert create(c, "cv-lags", {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}) == (
            ErrorCode.INVALID_CONFIG,
            "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)",
        )
        assert create(c, "cv-zstd", {"compression.zstd.level": "23"}) == (
            ErrorCode.INVALID_CONFIG,
            "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22",
        )
        assert create(c, "cv-levels", {"compression.gzip.level": "9", "segment.bytes": "1048576"})[0] == 0
        # the name is checked first: taken, colliding, illegal
        assert create(c, "cv-levels", {"segment.bytes": "200"})[0] == ErrorCode.TOPIC_ALREADY_EXISTS
        assert create(c, "cv.dot", {})[0] == 0
        assert create(c, "cv_dot", {"segment.bytes": "200"}) == (
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            "Topic 'cv_dot' collides with existing topic: cv.dot",
        )
        assert create(c, "cv/bad", {"segment.bytes": "200"})[0] == ErrorCode.INVALID_TOPIC_EXCEPTION
        described = describe(c, "cv-levels", None)
        assert (described["compression.gzip.level"], described["compression.lz4.level"]) == ("9", "9")
        assert "internal.segment.bytes" not in described


def test_alterations_answer_as_kafka(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create(c, "cv-alter", {"min.compaction.lag.ms": "10"})[0] == 0
        assert alter(c, TOPIC, "cv-alter", ("max.compaction.lag.ms", SET, "5")) == (
            ErrorCode.INVALID_CONFIG,
            "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)",
        )
        assert alter(c, TOPIC, "cv-alter", ("segment.bytes", SET, None)) == (
            ErrorCode.INVALID_REQUEST,
            "Null value not supported for : segment.bytes",
        )
        assert alter(c, TOPIC, "cv-alter", ("no.such.config", DELETE, None)) == (0, None)
        assert alter(c, TOPIC, "cv-alter", ("cleanup.policy", APPEND, "")) == (
            ErrorCode.INVALID_CONFIG,
            "Configuration 'cleanup.policy' values must not be empty.",
        )
        assert alter(c, BROKER, "", ("log.segment.bytes", SET, "1048575"), validate_only=True) == (
            ErrorCode.INVALID_REQUEST,
            "Invalid value 1048575 for configuration log.segment.bytes: Value must be at least 1048576",
        )
        assert alter(c, BROKER, "", ("log.roll.ms", SET, "0"), validate_only=True) == (
            ErrorCode.INVALID_REQUEST,
            "requirement failed: log.roll.ms must be greater than or equal to 1",
        )
        assert alter(c, BROKER, "", ("num.partitions", SET, "3"), validate_only=True) == (
            ErrorCode.INVALID_REQUEST,
            "Cannot update these configs dynamically: [num.partitions]",
        )


def test_internal_segment_bytes_gives_small_segments(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create(c, "cv-segments", {"internal.segment.bytes": "2000"})[0] == 0
        assert describe(c, "cv-segments", ["internal.segment.bytes"]) == {"internal.segment.bytes": "2000"}
        now = int(time.time() * 1000)
        for i in range(10):
            batch = bytes(records.build_batch([(b"k", b"v" * 400, [], now + i)]))
            req = ProduceRequest(
                acks=-1,
                timeout_ms=5000,
                topic_data=[
                    TopicProduceData(name="cv-segments", partition_data=[PartitionProduceData(index=0, records=batch)])
                ],
            )
            assert c.request(req, 9).responses[0].partition_responses[0].error_code == 0
    segments = list((kafka_broker.data_dir / "cv-segments-0").glob("*.log"))
    assert len(segments) >= 3, segments
