"""zstd through Produce v0-2: UNSUPPORTED_COMPRESSION_TYPE, as for v3-6 (KIP-110; Kafka 4.3.1's answers for
v3-6 are in the differential harness, which cannot check v0-2: Kafka 4 closes the connection there)."""

from __future__ import annotations

import time

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient


def test_zstd_before_produce_v7_is_unsupported(kafka_broker) -> None:
    batch = bytes(records.build_batch([(b"k", b"v" * 50, [], int(time.time() * 1000))], compression=4))
    with RawClient(kafka_broker.bootstrap) as c:
        create = CreateTopicsRequest(
            topics=[CreatableTopic(name="zstd-old", num_partitions=1, replication_factor=1, configs=[])],
            timeout_ms=5000,
        )
        assert c.request(create, 7).topics[0].error_code == 0
        req = ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topic_data=[
                TopicProduceData(name="zstd-old", partition_data=[PartitionProduceData(index=0, records=batch)])
            ],
        )
        codes = [c.request(req, v).responses[0].partition_responses[0].error_code for v in range(8)]
        assert codes == [ErrorCode.UNSUPPORTED_COMPRESSION_TYPE] * 7 + [ErrorCode.NONE]
