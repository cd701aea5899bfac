"""Transactions v2 (KIP-890 part 2) against the broker process, with raw requests: Produce v12 and
TxnOffsetCommit v5 add their partitions without AddPartitionsToTxn/AddOffsetsToTxn, EndTxn v5 bumps the
epoch at every end and answers the new one, retries and stale epochs, a restart in between."""

from __future__ import annotations

import json

import pytest

from interop import diff_txn_v2
from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient
from tests.server.test_idempotence import create_topic
from tests.server.test_transactions import TOPIC, fetch, init_txn, txn_batch


def produce(c: RawClient, data: bytes, txn_id: str, version: int = 12, partition: int = 0) -> tuple[int, int]:
    req = ProduceRequest(
        transactional_id=txn_id, acks=-1, timeout_ms=5000,
        topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=partition, records=data)])],
    )  # fmt: skip
    p = c.request(req, version).responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def end_txn(c: RawClient, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 5) -> tuple[int, int, int]:
    r = c.request(
        EndTxnRequest(transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit), version
    )
    return int(r.error_code), r.producer_id, r.producer_epoch


def txn_offset_commit(c: RawClient, txn_id: str, pid: int, epoch: int, offset: int, version: int = 5) -> int:
    req = TxnOffsetCommitRequest(
        transactional_id=txn_id, group_id="g2", producer_id=pid, producer_epoch=epoch,
        topics=[TxnOffsetCommitRequestTopic(name=TOPIC, partitions=[
            TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=offset, committed_metadata="")
        ])],
    )  # fmt: skip
    return int(c.request(req, version).topics[0].partitions[0].error_code)


def committed_offset(c: RawClient) -> int:
    req = OffsetFetchRequest(
        group_id="g2", topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0])], require_stable=False
    )
    return int(c.request(req, 7).topics[0].partitions[0].committed_offset)


def markers(c: RawClient) -> list[tuple[int, int]]:
    """(producer epoch, control type) of every control batch in the partition."""
    req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, topics=[
        FetchTopic(topic=TOPIC, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])
    ])  # fmt: skip
    data = bytes(c.request(req, 12).responses[0].partitions[0].records or b"")
    out = []
    for h, r in records.iter_all_records(data):
        if h.is_control and r.key is not None:
            out.append((h.producer_epoch, int.from_bytes(r.key[2:4], "big")))
    return out


def test_epoch_bumped_at_every_end(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tv2")
        assert epoch == 0
        # Produce v12 adds the partition itself; v11 only verifies, so it is refused
        assert produce(c, txn_batch(pid, 0, 0), "tv2", version=11)[0] == E.TRANSACTION_ABORTABLE
        assert produce(c, txn_batch(pid, 0, 0), "tv2") == (E.NONE, 0)
        assert produce(c, txn_batch(pid, 0, 2), "tv2", version=11) == (E.NONE, 2)  # now in the transaction
        assert fetch(c, committed=True)[1] == 0  # the LSO waits for the end
        assert end_txn(c, "tv2", pid, 0, commit=True) == (E.NONE, pid, 1)
        hw, lso, vals, _ = fetch(c, committed=True)
        assert (hw, lso, vals) == (5, 5, [b"v0", b"v1", b"v2", b"v3"])
        assert markers(c) == [(1, 1)]  # a COMMIT marker written under the bumped epoch
        # retries of the same end answer the current id and epoch; anything else is refused
        assert end_txn(c, "tv2", pid, 0, commit=True) == (E.NONE, pid, 1)
        assert end_txn(c, "tv2", pid, 0, commit=False)[0] == E.INVALID_TXN_STATE
        assert end_txn(c, "tv2", pid, 1, commit=True)[0] == E.INVALID_TXN_STATE
        assert end_txn(c, "tv2", pid, 3, commit=True)[0] == E.PRODUCER_FENCED
        assert end_txn(c, "tv2", pid + 1, 1, commit=True)[0] == E.INVALID_PRODUCER_ID_MAPPING
        # an abort with nothing open bumps the epoch too
        assert end_txn(c, "tv2", pid, 1, commit=False) == (E.NONE, pid, 2)
        assert markers(c) == [(1, 1)]
        # the old epoch is fenced on the partition, the new one starts a transaction
        assert produce(c, txn_batch(pid, 1, 0), "tv2")[0] == E.INVALID_PRODUCER_EPOCH
        assert produce(c, txn_batch(pid, 2, 0, tag=b"a"), "tv2") == (E.NONE, 5)
        assert end_txn(c, "tv2", pid, 2, commit=False) == (E.NONE, pid, 3)
        hw, lso, vals, aborted = fetch(c, committed=True)
        assert hw == lso == 8 and aborted == [(pid, 5)]
        assert markers(c) == [(1, 1), (3, 0)]
        # EndTxn v4 from the same id: the classic rules (a repeated abort is fine, no bump, no ids)
        assert end_txn(c, "tv2", pid, 3, commit=False, version=4) == (E.NONE, -1, -1)
        assert end_txn(c, "tv2", pid, 3, commit=True, version=4) == (E.INVALID_TXN_STATE, -1, -1)
        assert end_txn(c, "tv2", pid, 3, commit=False) == (E.NONE, pid, 4)


def test_txn_offset_commit_v5_adds_the_offsets_partition(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tv2-offsets")
        # v4 needs AddOffsetsToTxn first; v5 (transactions v2) adds the group's partition itself
        assert txn_offset_commit(c, "tv2-offsets", pid, epoch, 7, version=4) == E.TRANSACTION_ABORTABLE
        assert txn_offset_commit(c, "tv2-offsets", pid, epoch, 7) == E.NONE
        assert committed_offset(c) == -1  # pending until the commit
        assert txn_offset_commit(c, "tv2-offsets", pid, epoch + 1, 8) == E.INVALID_PRODUCER_EPOCH
        assert end_txn(c, "tv2-offsets", pid, epoch, commit=True) == (E.NONE, pid, epoch + 1)
        assert committed_offset(c) == 7
        # the next transaction under the new epoch; the old one is refused
        assert txn_offset_commit(c, "tv2-offsets", pid, epoch, 9) == E.INVALID_PRODUCER_EPOCH
        assert txn_offset_commit(c, "tv2-offsets", pid, epoch + 1, 9) == E.NONE
        assert end_txn(c, "tv2-offsets", pid, epoch + 1, commit=False) == (E.NONE, pid, epoch + 2)
        assert committed_offset(c) == 7


def test_broker_add_and_verify_only(kafka_broker: BrokerProcess) -> None:
    """AddPartitionsToTxn v5, the broker-to-coordinator form: verify-only checks, an add starts the
    transaction (transactions v2)."""
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tv2-broker")

        def ask(verify_only: bool, ep: int = epoch) -> int:
            req = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnTransaction(
                transactional_id="tv2-broker", producer_id=pid, producer_epoch=ep, verify_only=verify_only,
                topics=[AddPartitionsToTxnTopic(name=TOPIC, partitions=[0])],
            )])  # fmt: skip
            r = c.request(req, 5)
            assert r.error_code == E.NONE
            return int(r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code)

        assert ask(verify_only=True) == E.TRANSACTION_ABORTABLE
        assert ask(verify_only=False) == E.NONE
        assert ask(verify_only=True) == E.NONE
        assert ask(verify_only=True, ep=epoch + 1) == E.TRANSACTION_ABORTABLE
        assert end_txn(c, "tv2-broker", pid, epoch, commit=True) == (E.NONE, pid, epoch + 1)
        assert ask(verify_only=True) == E.PRODUCER_FENCED
        assert ask(verify_only=False) == E.PRODUCER_FENCED


def test_bumped_epoch_survives_restart(kafka_broker_factory) -> None:  # type: ignore[no-untyped-def]
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        create_topic(c, TOPIC)
        pid, epoch = init_txn(c, "tv2-restart")
        assert produce(c, txn_batch(pid, epoch, 0), "tv2-restart") == (E.NONE, 0)
        assert end_txn(c, "tv2-restart", pid, epoch, commit=True) == (E.NONE, pid, epoch + 1)
        assert produce(c, txn_batch(pid, epoch + 1, 0), "tv2-restart") == (E.NONE, 3)
    broker.restart(kill=True)
    with RawClient(broker.bootstrap) as c:
        # the retry of the first end still answers the bumped epoch (records of transactions v2 reloaded)
        assert end_txn(c, "tv2-restart", pid, epoch, commit=True)[0] == E.PRODUCER_FENCED  # a transaction is open
        assert end_txn(c, "tv2-restart", pid, epoch + 1, commit=False) == (E.NONE, pid, epoch + 2)
        assert end_txn(c, "tv2-restart", pid, epoch + 1, commit=False) == (E.NONE, pid, epoch + 2)
        hw, lso, vals, aborted = fetch(c, committed=True)
        assert hw == lso == 6 and aborted == [(pid, 3)] and vals[:2] == [b"v0", b"v1"]


@pytest.fixture(scope="module")
def reference_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from kafkapy.testing import BrokerFactory

    factory = BrokerFactory(tmp_path_factory.mktemp("tv2-ref"))
    try:
        broker = factory(settings=diff_txn_v2.SETTINGS)
        return diff_txn_v2.run(broker.bootstrap)
    finally:
        factory.stop_all()


@pytest.mark.parametrize("section", sorted(diff_txn_v2.load()))
def test_answers_as_kafka(reference_answers: dict[str, object], section: str) -> None:
    """interop/diff_txn_v2.py's scenario: kafkapy answers as Apache Kafka 4.3.1 did (golden file)."""
    golden = diff_txn_v2.load()[section]
    got = reference_answers[section]
    assert got == golden, json.dumps({"kafkapy": got, "kafka": golden}, indent=1)
