"""Transactions against the broker process, with raw requests: coordinator APIs, LSO, aborted lists, restarts."""

from __future__ import annotations

import time

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.describe_producers_request import (
    DescribeProducersRequest,
    TopicRequest,
)
from kafkapy.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
)
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkapy.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestTopic,
)
from kafkapy.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient
from tests.server.test_idempotence import create_topic, init_pid

TOPIC = "txt"


def txn_batch(pid: int, epoch: int, seq: int, n: int = 2, tag: bytes = b"v") -> bytes:
    now = int(time.time() * 1000)
    recs = [(None, tag + b"%d" % (seq + i), [], now) for i in range(n)]
    return records.build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True)


def produce(c: RawClient, data: bytes, txn_id: str | None, topic: str = TOPIC) -> tuple[int, int]:
    req = ProduceRequest(
        transactional_id=txn_id, acks=-1, timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=data)])],
    )  # fmt: skip
    p = c.request(req, 9).responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def add_partitions(c: RawClient, txn_id: str, pid: int, epoch: int, topic: str = TOPIC, version: int = 3) -> int:
    req = AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0])],
    )  # fmt: skip
    return int(c.request(req, version).results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)


def end_txn(c: RawClient, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 3) -> int:
    req = EndTxnRequest(transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit)
    return int(c.request(req, version).error_code)


def fetch(c: RawClient, committed: bool, offset: int = 0) -> tuple[int, int, list[bytes], list[tuple[int, int]]]:
    req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=int(committed), topics=[
        FetchTopic(topic=TOPIC, partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])
    ])  # fmt: skip
    pd = c.request(req, 12).responses[0].partitions[0]
    vals = [r.value or b"" for h, r in records.iter_all_records(bytes(pd.records or b"")) if not h.is_control]
    aborted = [(a.producer_id, a.first_offset) for a in pd.aborted_transactions or []]
    return pd.high_watermark, pd.last_stable_offset, vals, aborted


def list_latest(c: RawClient, committed: bool) -> int:
    req = ListOffsetsRequest(replica_id=-1, isolation_level=int(committed), topics=[
        ListOffsetsTopic(name=TOPIC, partitions=[ListOffsetsPartition(partition_index=0, timestamp=-1)])
    ])  # fmt: skip
    return int(c.request(req, 5).topics[0].partitions[0].offset)


def init_txn(c: RawClient, txn_id: str, version: int = 4, timeout_ms: int = 60000) -> tuple[int, int]:
    err, pid, epoch = init_pid(c, version, transactional_id=txn_id, transaction_timeout_ms=timeout_ms)
    assert err == E.NONE
    return pid, epoch


def test_versions_and_find_coordinator(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        api = {k.api_key: (k.min_version, k.max_version) for k in c.request(ApiVersionsRequest(), 3).api_keys}
        assert api[24] == (0, 5) and api[25] == (0, 4) and api[26] == (0, 5) and api[27] == (0, 2)
        assert api[28] == (0, 6) and api[61] == (0, 0) and api[65] == (0, 0) and api[66] == (0, 2)
        r = c.request(FindCoordinatorRequest(key="my-txn", key_type=1), 3)
        assert r.error_code == 0 and r.port == kafka_broker.port
        r = c.request(FindCoordinatorRequest(key_type=1, coordinator_keys=["a", "b"]), 4)
        assert [x.error_code for x in r.coordinators] == [0, 0]


def test_commit_abort_lso_and_aborted_list(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tx-a")
        # Not added yet: refused (KIP-890 verification); a plain produce goes through.
        assert produce(c, txn_batch(pid, epoch, 0), "tx-a")[0] == E.INVALID_TXN_STATE
        assert produce(c, records.build_batch([(None, b"plain", [], None)]), None) == (0, 0)
        assert add_partitions(c, "tx-a", pid, epoch) == E.NONE
        assert produce(c, txn_batch(pid, epoch, 0), "tx-a") == (0, 1)
        hw, lso, vals, _ = fetch(c, committed=True)
        assert (hw, lso, vals) == (3, 1, [b"plain"])
        assert list_latest(c, committed=True) == 1 and list_latest(c, committed=False) == 3
        assert fetch(c, committed=False)[2] == [b"plain", b"v0", b"v1"]
        assert end_txn(c, "tx-a", pid, epoch, commit=False) == E.NONE
        hw, lso, vals, aborted = fetch(c, committed=True)
        assert hw == lso == 4 and aborted == [(pid, 1)]
        assert vals == [b"plain", b"v0", b"v1"]  # the client drops aborted records using the list
        assert end_txn(c, "tx-a", pid, epoch, commit=False) == E.NONE  # retried abort
        assert end_txn(c, "tx-a", pid, epoch, commit=True) == E.INVALID_TXN_STATE
        assert add_partitions(c, "tx-a", pid, epoch) == E.NONE
        assert produce(c, txn_batch(pid, epoch, 2, tag=b"c"), "tx-a") == (0, 4)
        assert end_txn(c, "tx-a", pid, epoch, commit=True) == E.NONE
        hw, lso, vals, aborted = fetch(c, committed=True, offset=4)
        assert hw == lso == 7 and vals == [b"c2", b"c3"] and aborted == []
        # Unknown ids, wrong producer ids, fencing per version.
        assert end_txn(c, "nope", pid, epoch, commit=True) == E.INVALID_PRODUCER_ID_MAPPING
        assert end_txn(c, "tx-a", pid + 1, epoch, commit=True) == E.INVALID_PRODUCER_ID_MAPPING
        pid2, epoch2 = init_txn(c, "tx-a")
        assert (pid2, epoch2) == (pid, epoch + 1)
        assert add_partitions(c, "tx-a", pid, epoch, version=2) == E.PRODUCER_FENCED
        assert add_partitions(c, "tx-a", pid, epoch, version=1) == E.INVALID_PRODUCER_EPOCH
        assert end_txn(c, "tx-a", pid, epoch, True, version=1) == E.INVALID_PRODUCER_EPOCH
        err, _, _ = init_pid(c, 4, transactional_id="tx-a", producer_id=pid, producer_epoch=epoch - 1 if epoch else 5)
        assert err == E.PRODUCER_FENCED
        err, _, _ = init_pid(c, 4, transactional_id="tx-a", transaction_timeout_ms=10**9)
        assert err == E.INVALID_TRANSACTION_TIMEOUT


def test_zombie_fenced_and_admin_apis(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tx-z")
        assert add_partitions(c, "tx-z", pid, epoch) == E.NONE
        assert produce(c, txn_batch(pid, epoch, 0), "tx-z") == (0, 0)
        r = c.request(DescribeTransactionsRequest(transactional_ids=["tx-z", "missing"]), 0).transaction_states
        assert (r[0].error_code, r[0].transaction_state, r[0].producer_id) == (0, "Ongoing", pid)
        assert [(t.topic, list(t.partitions)) for t in r[0].topics] == [(TOPIC, [0])]
        assert r[1].error_code == E.TRANSACTIONAL_ID_NOT_FOUND
        listed = c.request(ListTransactionsRequest(state_filters=["Ongoing", "Bogus"]), 1)
        assert [t.transactional_id for t in listed.transaction_states] == ["tx-z"]
        assert list(listed.unknown_state_filters) == ["Bogus"]
        prods = c.request(DescribeProducersRequest(topics=[TopicRequest(name=TOPIC, partition_indexes=[0, 9])]), 0)
        p0, p9 = prods.topics[0].partitions
        assert [(s.producer_id, s.current_txn_start_offset, s.last_sequence) for s in p0.active_producers] == [
            (pid, 0, 1)
        ]
        assert p9.error_code == E.UNKNOWN_TOPIC_OR_PARTITION
        # A new instance fences the zombie and aborts its transaction.
        pid2, epoch2 = init_txn(c, "tx-z")
        assert pid2 == pid and epoch2 == epoch + 2
        assert produce(c, txn_batch(pid, epoch, 2), "tx-z")[0] == E.INVALID_PRODUCER_EPOCH
        assert end_txn(c, "tx-z", pid, epoch, True) == E.PRODUCER_FENCED
        hw, lso, _, aborted = fetch(c, committed=True)
        assert hw == lso and aborted == [(pid, 0)]
        # WriteTxnMarkers (what a coordinator sends a partition leader).
        req = WriteTxnMarkersRequest(markers=[WritableTxnMarker(
            producer_id=pid, producer_epoch=epoch2, transaction_result=True, coordinator_epoch=0,
            topics=[WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0]), WritableTxnMarkerTopic(name="nope", partition_indexes=[0])],
        )])  # fmt: skip
        res = c.request(req, 1).markers[0].topics
        assert [p.error_code for t in res for p in t.partitions] == [0, E.UNKNOWN_TOPIC_OR_PARTITION]


def test_txn_offset_commit_visible_at_commit(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tx-o")
        add = AddOffsetsToTxnRequest(transactional_id="tx-o", producer_id=pid, producer_epoch=epoch, group_id="grp")
        assert c.request(add, 3).error_code == E.NONE
        commit = TxnOffsetCommitRequest(
            transactional_id="tx-o", group_id="grp", producer_id=pid, producer_epoch=epoch,
            topics=[TxnOffsetCommitRequestTopic(name=TOPIC, partitions=[TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=42)])],
        )  # fmt: skip
        assert c.request(commit, 3).topics[0].partitions[0].error_code == E.NONE

        def committed(require_stable: bool) -> tuple[int, int]:
            req = OffsetFetchRequest(
                group_id="grp",
                topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0])],
                require_stable=require_stable,
            )
            p = c.request(req, 7).topics[0].partitions[0]
            return p.error_code, p.committed_offset

        assert committed(False) == (0, -1)
        assert committed(True) == (E.UNSTABLE_OFFSET_COMMIT, -1)
        assert end_txn(c, "tx-o", pid, epoch, commit=True) == E.NONE
        assert committed(True) == (0, 42)
        # Outside a transaction that includes the group: refused.
        assert c.request(commit, 3).topics[0].partitions[0].error_code == E.INVALID_TXN_STATE


def test_ongoing_transaction_survives_broker_sigkill(kafka_broker_factory) -> None:  # type: ignore[no-untyped-def]
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tx-k")
        assert add_partitions(c, "tx-k", pid, epoch) == E.NONE
        assert produce(c, txn_batch(pid, epoch, 0), "tx-k") == (0, 0)
        pid_s, epoch_s = init_txn(c, "tx-short", timeout_ms=1500)
        assert add_partitions(c, "tx-short", pid_s, epoch_s) == E.NONE
        assert produce(c, txn_batch(pid_s, epoch_s, 0, tag=b"s"), "tx-short") == (0, 2)
    broker.restart(kill=True)
    with RawClient(broker.bootstrap) as c:
        hw, lso, vals, _ = fetch(c, committed=True)
        assert (hw, lso, vals) == (4, 0, [])
        assert produce(c, txn_batch(pid, epoch, 2), "tx-k") == (0, 4)  # the transaction goes on
        assert end_txn(c, "tx-k", pid, epoch, commit=True) == E.NONE
        deadline = time.time() + 15  # the short one times out and is aborted by the coordinator
        while time.time() < deadline and fetch(c, committed=True)[1] < 8:
            time.sleep(0.2)
        hw, lso, vals, aborted = fetch(c, committed=True)
        assert hw == lso == 8  # 6 records, a COMMIT and an ABORT marker
        assert aborted == [(pid_s, 2)]
        assert [v for v in vals if not v.startswith(b"s")] == [b"v0", b"v1", b"v2", b"v3"]
        assert end_txn(c, "tx-short", pid_s, epoch_s, commit=True) == E.PRODUCER_FENCED
