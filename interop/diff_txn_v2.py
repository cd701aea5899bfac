"""Transactions v2 (KIP-890 part 2) with raw requests, recorded against Apache Kafka 4.3.1 (golden file)
and compared with kafkapy by tests/server/test_transactions_v2.py.

One transactional id goes through: Produce v11 (verify only) and v12 (the partition added by the
leader), EndTxn v5 (epoch bumped, the new id and epoch answered), its retries, a stale or future
epoch, an unknown producer id, an abort with nothing open, EndTxn v4 on the same id, TxnOffsetCommit
v4 and v5 without AddOffsetsToTxn, AddPartitionsToTxn v5 verify-only and add, the markers' epochs;
a second id times out (transaction.timeout.ms 1000) and is then answered as a fenced producer.
Producer ids are normalised (P: the first, P+1...: others).

    python -m interop.diff_txn_v2 record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol import records
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).parent / "golden_kafka" / "txn_v2.json"
# the timed-out transaction is aborted within a second (Kafka's default checks every 10 s)
SETTINGS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}
TOPIC = "tv2-ref"
GROUP = "tv2-ref-group"
RETRIABLE = (14, 15, 16, 51)  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS


def _batch(pid: int, epoch: int, seq: int) -> bytes:
    now = int(time.time() * 1000)
    recs = [(None, b"r%d" % (seq + i), [], now) for i in range(2)]
    return records.build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True)


def _retry(call: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = call()
        code = out[0] if isinstance(out, tuple) else out
        if code not in RETRIABLE or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


class _Scenario:
    def __init__(self, c: RawClient) -> None:
        self.c = c
        self.pid = -1

    def rel(self, pid: int) -> str:
        return "-1" if pid < 0 else ("P" if pid == self.pid else f"P+{pid - self.pid}")

    def init(self, txn_id: str, timeout_ms: int = 60_000) -> tuple[int, int]:
        req = InitProducerIdRequest(transactional_id=txn_id, transaction_timeout_ms=timeout_ms)
        r = _retry(lambda: (int(self.c.request(req, 5).error_code), 0))
        assert r[0] == 0, r
        resp = self.c.request(req, 5)  # a second InitProducerId: the same id, next epoch
        return int(resp.producer_id), int(resp.producer_epoch)

    def produce(self, txn_id: str, pid: int, epoch: int, seq: int, version: int) -> int:
        req = ProduceRequest(
            transactional_id=txn_id, acks=-1, timeout_ms=10_000,
            topic_data=[TopicProduceData(name=TOPIC, partition_data=[
                PartitionProduceData(index=0, records=_batch(pid, epoch, seq))
            ])],
        )  # fmt: skip
        return int(self.c.request(req, version).responses[0].partition_responses[0].error_code)

    def end(self, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 5) -> list[Any]:
        req = EndTxnRequest(transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit)
        r = _retry(lambda: (int((resp := self.c.request(req, version)).error_code), resp))
        resp = r[1]
        return [r[0], self.rel(resp.producer_id), resp.producer_epoch]

    def offsets(self, txn_id: str, pid: int, epoch: int, offset: int, version: int) -> int:
        req = TxnOffsetCommitRequest(
            transactional_id=txn_id, group_id=GROUP, producer_id=pid, producer_epoch=epoch,
            topics=[TxnOffsetCommitRequestTopic(name=TOPIC, partitions=[
                TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=offset, committed_metadata="")
            ])],
        )  # fmt: skip
        return int(_retry(lambda: int(self.c.request(req, version).topics[0].partitions[0].error_code)))

    def committed(self) -> int:
        req = OffsetFetchRequest(group_id=GROUP, topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0])])
        r = self.c.request(req, 7)
        return int(r.topics[0].partitions[0].committed_offset) if r.topics else -1000 - int(r.error_code)

    def broker_add(self, txn_id: str, pid: int, epoch: int, verify_only: bool) -> int:
        req = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnTransaction(
            transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, verify_only=verify_only,
            topics=[AddPartitionsToTxnTopic(name=TOPIC, partitions=[0])],
        )])  # fmt: skip
        r = self.c.request(req, 5)
        if r.error_code:
            return int(r.error_code)
        return int(r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code)

    def markers(self) -> list[list[Any]]:
        """[producer, epoch, COMMIT 1 / ABORT 0] of each control batch, and the LSO = HW check."""
        req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, topics=[
            FetchTopic(topic=TOPIC, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])
        ])  # fmt: skip
        data = bytes(self.c.request(req, 12).responses[0].partitions[0].records or b"")
        return [
            [self.rel(h.producer_id), h.producer_epoch, int.from_bytes((r.key or b"\0\0\0\0")[2:4], "big")]
            for h, r in records.iter_all_records(data)
            if h.is_control
        ]


def run(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        c.request(
            CreateTopicsRequest(
                topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1)], timeout_ms=10_000
            ),
            7,
        )
        _retry(lambda: int(c.request(FindCoordinatorRequest(key="tv2-a", key_type=1), 3).error_code))
        _retry(lambda: int(c.request(FindCoordinatorRequest(key=GROUP, key_type=0), 3).error_code))
        s = _Scenario(c)
        pid, epoch = s.init("tv2-a")
        s.pid = pid
        out["init_epoch"] = epoch
        out["produce"] = [
            s.produce("tv2-a", pid, epoch, 0, 11),  # not in the transaction
            s.produce("tv2-a", pid, epoch, 0, 12),  # added by the leader
            s.produce("tv2-a", pid, epoch, 2, 11),  # now it is
        ]
        out["end_commit"] = s.end("tv2-a", pid, epoch, True)
        e1 = epoch + 1
        out["end_retries"] = [
            s.end("tv2-a", pid, epoch, True),  # the same end again
            s.end("tv2-a", pid, epoch, False),  # the other result at the old epoch
            s.end("tv2-a", pid, e1, True),  # a commit with nothing open
            s.end("tv2-a", pid, e1 + 2, True),  # a future epoch
            s.end("tv2-a", pid + 1, e1, True),  # another producer id
        ]
        out["end_empty_abort"] = s.end("tv2-a", pid, e1, False)
        e2 = e1 + 1
        out["produce_after"] = [s.produce("tv2-a", pid, e1, 0, 12), s.produce("tv2-a", pid, e2, 0, 12)]
        out["end_v4_on_v2_transaction"] = s.end("tv2-a", pid, e2, False, version=4)
        out["end_v5_after_v4"] = s.end("tv2-a", pid, e2, False)
        e3 = e2 + 1
        out["txn_offset_commit"] = [s.offsets("tv2-a", pid, e3, 5, 4), s.offsets("tv2-a", pid, e3, 5, 5)]
        out["txn_offset_commit_stale"] = s.offsets("tv2-a", pid, e2, 6, 5)
        out["end_offsets"] = s.end("tv2-a", pid, e3, True)
        time.sleep(0.5)
        out["committed"] = s.committed()
        e4 = e3 + 1
        out["broker_add"] = [
            s.broker_add("tv2-a", pid, e4, True),
            s.broker_add("tv2-a", pid, e4, False),
            s.broker_add("tv2-a", pid, e4, True),
            s.broker_add("tv2-a", pid, e3, True),
            s.broker_add("tv2-a", pid, e3, False),
        ]
        out["end_broker_added"] = s.end("tv2-a", pid, e4, False)
        time.sleep(0.5)
        out["markers"] = s.markers()
        # a transaction that times out: the coordinator aborts it under a fenced epoch
        tpid, tepoch = s.init("tv2-t", timeout_ms=1000)
        out["timeout_produce"] = s.produce("tv2-t", tpid, tepoch, 0, 12)
        time.sleep(4)
        out["timeout_after"] = [
            s.produce("tv2-t", tpid, tepoch, 2, 12),
            s.end("tv2-t", tpid, tepoch, True),
            s.end("tv2-t", tpid, tepoch, False),
        ]
        out["timeout_markers"] = [[m[1] - tepoch, m[2]] for m in s.markers() if m[0] != "P"]
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        print(record_golden(GOLDEN, "kafka-txn-v2-", run, settings=SETTINGS))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
