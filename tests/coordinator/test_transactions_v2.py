"""Transactions v2 (KIP-890 part 2) in the coordinator: value records v1, the epoch bump at every end,
the epoch overflow onto a new producer id, a crash between PrepareX and its markers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kafkapy.clock import now_ms
from kafkapy.coordinator.txn_records import TxnValue, decode_value, encode_value
from kafkapy.coordinator.txn_state import MAX_EPOCH, STATUS_CODES, TxnMetadata, TxnState
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.records import iter_all_records
from tests.coordinator.test_coordinator import run_async
from tests.coordinator.test_transactions import open_txn_state, pids, setup_txn, txn_batch

S = TxnState


def test_flexible_record_round_trip() -> None:
    v = TxnValue(42, 3, 60_000, STATUS_CODES[S.PREPARE_COMMIT], frozenset({("a", 0), ("b", 1)}), 5, 4, 41, 43, 2)
    raw = encode_value(v)
    assert raw[:2] == b"\x00\x01"  # Kafka's TransactionLogValue v1 (flexible) for transactions v2
    assert decode_value(raw) == v
    classic = TxnValue(42, 3, 60_000, STATUS_CODES[S.ONGOING], frozenset({("a", 0)}), 5, 4)
    assert encode_value(classic)[:2] == b"\x00\x00" and decode_value(encode_value(classic)) == classic


def _ongoing(epoch: int) -> TxnMetadata:
    md = TxnMetadata("t")
    md.apply(TxnValue(7, epoch, 60_000, STATUS_CODES[S.ONGOING], frozenset({("a", 0)}), 1, 1), loading=True)
    return md


def test_end_bumps_and_retries() -> None:
    md = _ongoing(4)
    d = md.end_txn_v2(7, 4, True, now_ms(), pids())
    assert d.error == E.NONE and (d.producer_id, d.producer_epoch) == (7, 5)
    md.apply(d.records[0])
    assert md.state is S.PREPARE_COMMIT and md.client_tv == 2
    assert md.end_txn_v2(7, 4, True, now_ms(), pids()).error == E.CONCURRENT_TRANSACTIONS
    assert md.end_txn_v2(7, 5, True, now_ms(), pids()).error == E.PRODUCER_FENCED
    md.apply(md.complete(now_ms()))
    retry = md.end_txn_v2(7, 4, True, now_ms(), pids())
    assert (retry.error, retry.producer_id, retry.producer_epoch, retry.records) == (E.NONE, 7, 5, [])
    assert md.end_txn_v2(7, 4, False, now_ms(), pids()).error == E.INVALID_TXN_STATE
    assert md.end_txn_v2(7, 5, True, now_ms(), pids()).error == E.INVALID_TXN_STATE
    empty_abort = md.end_txn_v2(7, 5, False, now_ms(), pids())
    assert (empty_abort.producer_epoch, empty_abort.records[0].partitions) == (6, frozenset())


def test_epoch_overflow_takes_a_new_producer_id() -> None:
    md = _ongoing(MAX_EPOCH)
    d = md.end_txn_v2(7, MAX_EPOCH, False, now_ms(), pids(100))
    assert (d.producer_id, d.producer_epoch) == (100, 0)
    prepare = d.records[0]
    assert (prepare.producer_id, prepare.producer_epoch, prepare.next_producer_id) == (7, MAX_EPOCH + 1, 100)
    md.apply(prepare)
    assert md.add_partitions(100, 0, [("a", 1)], now_ms(), producer_fenced=True, client_tv=2).error == (
        E.CONCURRENT_TRANSACTIONS
    )
    md.apply(md.complete(now_ms()))
    assert (md.producer_id, md.producer_epoch, md.previous_producer_id) == (100, 0, 7)
    retry = md.end_txn_v2(7, MAX_EPOCH, False, now_ms(), pids())
    assert (retry.error, retry.producer_id, retry.producer_epoch) == (E.NONE, 100, 0)
    assert md.add_partitions(100, 0, [("a", 1)], now_ms(), producer_fenced=True, client_tv=2).error == E.NONE


@run_async
async def test_markers_under_the_bumped_epoch_and_after_a_crash(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    pid, epoch = await setup_txn(state, coord, "a")
    out0 = state.logs.get("out", 0)
    assert out0 is not None
    out0.append(txn_batch(pid, epoch, 0), leader_epoch=0)
    d = coord.end_transaction("a", pid, epoch, True, producer_fenced=True, client_tv=2)
    assert (d.error, d.producer_id, d.producer_epoch) == (E.NONE, pid, epoch + 1)
    assert coord.txns["a"].state is S.COMPLETE_COMMIT
    # the next transaction adds as a partition leader would; the process dies before its markers
    assert coord.add_partitions("a", pid, epoch + 1, [("out", 0)], producer_fenced=True, client_tv=2) == E.NONE
    out0.append(txn_batch(pid, epoch + 1, 0), leader_epoch=0)
    md = coord.txns["a"]
    coord._write("a", md.end_txn_v2(pid, epoch + 1, False, now_ms(), pids()).records[0])
    await state.close()
    await asyncio.sleep(0)

    state = await open_txn_state(tmp_path)
    coord = state.txns
    md = coord.txns["a"]
    assert (md.state, md.producer_epoch, md.client_tv) == (S.COMPLETE_ABORT, epoch + 2, 2)
    out0 = state.logs.get("out", 0)
    assert out0 is not None and out0.last_stable_offset == out0.log_end_offset
    data = out0.read_bytes(0, 1 << 20)
    found = [(h.producer_epoch, h.is_control) for h, _ in iter_all_records(data) if h.is_control]
    assert found == [(epoch + 1, True), (epoch + 2, True)]
    await state.close()
