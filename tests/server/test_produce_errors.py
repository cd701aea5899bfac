"""Produce error codes that need more than the differential harness's one-partition requests."""

from __future__ import annotations

import time

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient


def _create(c: RawClient, name: str, partitions: int) -> None:
    create = CreateTopicsRequest(
        topics=[CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, configs=[])],
        timeout_ms=5000,
    )
    assert c.request(create, 7).topics[0].error_code == 0


def _batch(transactional: bool) -> bytes:
    now = int(time.time() * 1000)
    if transactional:
        return bytes(
            records.build_batch(
                [(b"k", b"v", [], now)], producer_id=77, producer_epoch=0, base_sequence=0, is_transactional=True
            )
        )
    return bytes(records.build_batch([(b"k", b"v", [], now)]))


def test_transactional_batch_without_transactional_id_refuses_the_whole_request(kafka_broker) -> None:
    """Kafka 4.3.1 answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition of the request
    (the plain batch too) and appends nothing (observed on the reference broker, Produce v9)."""
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "txn-no-id", 2)
        req = ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topic_data=[
                TopicProduceData(
                    name="txn-no-id",
                    partition_data=[
                        PartitionProduceData(index=0, records=_batch(False)),
                        PartitionProduceData(index=1, records=_batch(True)),
                    ],
                )
            ],
        )
        parts = c.request(req, 9).responses[0].partition_responses
        assert sorted((p.index, p.error_code, p.base_offset) for p in parts) == [
            (0, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1),
            (1, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1),
        ]
        latest = ListOffsetsRequest(
            replica_id=-1,
            isolation_level=0,
            topics=[
                ListOffsetsTopic(
                    name="txn-no-id",
                    partitions=[
                        ListOffsetsPartition(partition_index=i, current_leader_epoch=-1, timestamp=-1) for i in (0, 1)
                    ],
                )
            ],
        )
        assert [p.offset for p in c.request(latest, 1).topics[0].partitions] == [0, 0]


def test_zstd_before_produce_v7_is_unsupported(kafka_broker) -> None:
    """zstd through Produce v0-6: UNSUPPORTED_COMPRESSION_TYPE (KIP-110). Kafka 4.3.1's answers for v3-6
    are in the differential harness, which cannot check v0-2: Kafka 4 closes the connection there."""
    batch = bytes(records.build_batch([(b"k", b"v" * 50, [], int(time.time() * 1000))], compression=4))
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "zstd-old", 1)
        req = ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topic_data=[
                TopicProduceData(name="zstd-old", partition_data=[PartitionProduceData(index=0, records=batch)])
            ],
        )
        codes = [c.request(req, v).responses[0].partition_responses[0].error_code for v in range(8)]
        assert codes == [ErrorCode.UNSUPPORTED_COMPRESSION_TYPE] * 7 + [ErrorCode.NONE]
