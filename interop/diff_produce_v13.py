"""Produce v13 (KIP-516: topics named by id) with raw requests, recorded against Apache Kafka 4.3.1
(golden file) and compared with kafkapy by tests/server/test_produce_v13.py.

A known topic by its id (two partitions, acks -1 and 1), an unknown id, the zero id, a request mixing a
known and an unknown id, a transactional batch for an unknown id, and v12 by name beside them. Topic ids
are normalised ("known", "zero", "unknown").

    python -m interop.diff_produce_v13 record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol import records
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).parent / "golden_kafka" / "produce_v13.json"
TOPIC = "produce-v13"
UNKNOWN = uuid.UUID("6c3b8f7e-1d2a-4b5c-9e8f-0a1b2c3d4e5f")
ZERO = uuid.UUID(int=0)


def _batch(n: int, transactional: bool = False) -> bytes:
    now = int(time.time() * 1000)
    recs = [(None, b"v%d" % i, [], now) for i in range(n)]
    if transactional:
        return records.build_batch(recs, producer_id=4242, producer_epoch=0, base_sequence=0, is_transactional=True)
    return records.build_batch(recs)


def _topic_id(c: RawClient) -> uuid.UUID:
    deadline = time.monotonic() + 20
    while True:
        r = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=TOPIC)]), 12)
        t = r.topics[0]
        if (t.error_code == 0 and len(t.partitions) == 2) or time.monotonic() > deadline:
            return t.topic_id
        time.sleep(0.2)


def _answer(resp: Any, known: uuid.UUID) -> list[Any]:
    def label(tid: uuid.UUID) -> str:
        return "known" if tid == known else "zero" if tid == ZERO else "unknown"

    return [
        {
            "topic": label(t.topic_id),
            "name": t.name,
            "partitions": [
                [p.index, p.error_code, p.base_offset, p.log_start_offset, p.error_message, len(p.record_errors)]
                for p in t.partition_responses
            ],
        }
        for t in resp.responses
    ]


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        c.request(
            CreateTopicsRequest(
                topics=[CreatableTopic(name=TOPIC, num_partitions=2, replication_factor=1)], timeout_ms=10_000
            ),
            7,
        )
        known = _topic_id(c)

        def produce(topics: list[tuple[uuid.UUID, list[int]]], acks: int = -1, txn: str | None = None) -> list[Any]:
            req = ProduceRequest(
                transactional_id=txn, acks=acks, timeout_ms=10_000,
                topic_data=[
                    TopicProduceData(topic_id=tid, partition_data=[
                        PartitionProduceData(index=i, records=_batch(2, txn is not None)) for i in parts
                    ])
                    for tid, parts in topics
                ],
            )  # fmt: skip
            return _answer(c.request(req, 13), known)

        out["known"] = produce([(known, [0, 1])])
        out["known_acks_1"] = produce([(known, [1])], acks=1)
        out["unknown"] = produce([(UNKNOWN, [0])])
        out["zero"] = produce([(ZERO, [0])])
        out["mixed"] = produce([(UNKNOWN, [0]), (known, [0])])
        out["unknown_partition"] = produce([(known, [5])])
        out["transactional_unknown"] = produce([(UNKNOWN, [0])], txn="v13-txn")
        v12 = ProduceRequest(
            acks=-1, timeout_ms=10_000,
            topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=0, records=_batch(1))])],
        )  # fmt: skip
        out["v12_by_name"] = _answer(c.request(v12, 12), known)
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record_golden(GOLDEN, "kafka-produce-v13-", run))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
