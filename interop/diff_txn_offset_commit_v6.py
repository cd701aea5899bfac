"""TxnOffsetCommit v6 (KIP-1319: topics by id; GROUP_ID_NOT_FOUND, STALE_MEMBER_EPOCH) with raw requests,
recorded against Apache Kafka 4.4.0 (golden file) and compared with kafkapy by
tests/server/test_txn_offset_commit_v6.py.

One transactional id (transactions v2: the group's partition is added by the commit itself) commits to:
an unknown group at v6 and at v5, an unknown topic id, a consumer-protocol group (a member joined with
ConsumerGroupHeartbeat) as that member, at a stale epoch, as an unknown member, and the same at v5. Topic
ids are normalised ("known", "unknown").

    python -m interop.diff_txn_offset_commit_v6 record   # against Apache Kafka 4.4.0 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from interop.apache_kafka import REFERENCE_44
from kafkapy.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopic
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).parent / "golden_kafka" / "txn_offset_commit_v6.json"
TOPIC = "tx6-topic"
UNKNOWN = uuid.UUID("5a0c1d2e-3f40-4152-8637-48596a7b8c9d")
RETRIABLE = (14, 15, 16, 51)


def _retry(call: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = call()
        if out not in RETRIABLE or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        c.request(
            CreateTopicsRequest(
                topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1)], timeout_ms=10_000
            ),
            7,
        )
        time.sleep(0.5)
        known = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=TOPIC)]), 12).topics[0].topic_id
        _retry(lambda: int(c.request(FindCoordinatorRequest(key="tx6", key_type=1), 3).error_code))
        _retry(lambda: int(c.request(FindCoordinatorRequest(key="tx6-cg", key_type=0), 3).error_code))
        init = InitProducerIdRequest(transactional_id="tx6", transaction_timeout_ms=60_000)
        _retry(lambda: int(c.request(init, 5).error_code))
        r = c.request(init, 5)
        pid, epoch = r.producer_id, r.producer_epoch

        def commit(group: str, version: int, member: str = "", gen: int = -1, tid: uuid.UUID = known) -> list[Any]:
            req = TxnOffsetCommitRequest(
                transactional_id="tx6", group_id=group, producer_id=pid, producer_epoch=epoch,
                generation_id=gen, member_id=member,
                topics=[TxnOffsetCommitRequestTopic(name=TOPIC, topic_id=tid, partitions=[
                    TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=3, committed_metadata="")
                ])],
            )  # fmt: skip
            resp = c.request(req, version)
            return [
                [t.name, "known" if t.topic_id == known else "zero" if t.topic_id.int == 0 else "unknown"]
                + [[p.partition_index, p.error_code] for p in t.partitions]
                for t in resp.topics
            ]

        out["unknown_group_v6"] = commit("tx6-none-6", 6)
        out["unknown_group_v5"] = commit("tx6-none-5", 5)
        out["unknown_group_member_v6"] = commit("tx6-none-m", 6, "someone", 3)
        out["unknown_group_member_v5"] = commit("tx6-none-m5", 5, "someone", 3)
        out["unknown_topic_id_v6"] = commit("tx6-none-6", 6, tid=UNKNOWN)
        hb = ConsumerGroupHeartbeatRequest(
            group_id="tx6-cg", member_id=str(uuid.uuid4()), member_epoch=0, rebalance_timeout_ms=30_000,
            subscribed_topic_names=[TOPIC], topic_partitions=[],
        )  # fmt: skip
        joined = c.request(hb, 1)
        out["heartbeat"] = joined.error_code  # (the member epoch it starts at is the group coordinator's business)
        member, mepoch = hb.member_id, joined.member_epoch
        out["member_v6"] = commit("tx6-cg", 6, member, mepoch)
        out["stale_epoch_v6"] = commit("tx6-cg", 6, member, mepoch - 1)
        out["unknown_member_v6"] = commit("tx6-cg", 6, "nobody", mepoch)
        out["stale_epoch_v5"] = commit("tx6-cg", 5, member, mepoch - 1)
        out["unknown_member_v5"] = commit("tx6-cg", 5, "nobody", mepoch)
        out["no_member_v6"] = commit("tx6-cg", 6)
        out["no_member_v5"] = commit("tx6-cg", 5)
        end = c.request(EndTxnRequest(transactional_id="tx6", producer_id=pid, producer_epoch=epoch, committed=True), 5)
        out["end"] = end.error_code
        time.sleep(0.5)
        fetched = c.request(
            OffsetFetchRequest(group_id="tx6-cg", topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0])]),
            7,
        )
        out["committed"] = [p.committed_offset for t in fetched.topics for p in t.partitions]
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record_golden(GOLDEN, "kafka-tx6-", run, release=REFERENCE_44))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
