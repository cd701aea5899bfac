"""The transaction coordinator: the state machine alone, then over a real broker state (records, restarts)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kafkapy.clock import now_ms
from kafkapy.coordinator.records import OffsetValue
from kafkapy.coordinator.transactions import TXN_TOPIC, TransactionCoordinator
from kafkapy.coordinator.txn_offsets import write_txn_offsets
from kafkapy.coordinator.txn_records import (
    TxnValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from kafkapy.coordinator.txn_state import (
    STATUS_CODES,
    VALID_PREVIOUS,
    IllegalTransition,
    TxnMetadata,
    TxnState,
    check_transition,
)
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.records import build_batch
from kafkapy.server.services import BrokerServices
from kafkapy.storage.producer_state import InvalidProducerEpochError
from tests.coordinator.test_coordinator import open_state, run_async

S = TxnState


def pids(start: int = 100) -> Any:
    counter = iter(range(start, 10_000))
    return lambda: next(counter)


def started(tid: str = "t", pid: int = 7, epoch: int = 0) -> TxnMetadata:
    md = TxnMetadata(tid)
    md.apply(TxnValue(pid, epoch, 60_000, STATUS_CODES[S.EMPTY], frozenset(), 1, -1), loading=True)
    return md


def apply_all(md: TxnMetadata, values: list[TxnValue]) -> None:
    for v in values:
        md.apply(v)


# ---------------------------------------------------------------- records and table


def test_record_codec_round_trip() -> None:
    v = TxnValue(42, 3, 60_000, STATUS_CODES[S.ONGOING], frozenset({("a", 0), ("a", 2), ("b", 1)}), 123, 100)
    assert decode_value(encode_value(v)) == v
    assert decode_key(encode_key("tx-é")) == "tx-é"
    # Kafka's v0 layout: version, pid, epoch, timeout, status, then the partitions array.
    raw = encode_value(v)
    assert raw[:2] == b"\x00\x00" and raw[2:10] == (42).to_bytes(8, "big") and raw[16] == 1


def test_transition_table() -> None:
    assert VALID_PREVIOUS[S.PREPARE_COMMIT] == {S.ONGOING}
    check_transition(S.ONGOING, S.PREPARE_EPOCH_FENCE)
    check_transition(S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT)
    for frm, to in [
        (S.EMPTY, S.PREPARE_COMMIT),
        (S.ONGOING, S.COMPLETE_COMMIT),
        (S.PREPARE_COMMIT, S.ONGOING),
        (S.PREPARE_ABORT, S.COMPLETE_COMMIT),
        (S.ONGOING, S.DEAD),
    ]:
        with pytest.raises(IllegalTransition):
            check_transition(frm, to)
    md = started()
    with pytest.raises(IllegalTransition):
        md.apply(TxnValue(7, 0, 60_000, STATUS_CODES[S.COMPLETE_COMMIT], frozenset(), 2, -1))


# ---------------------------------------------------------------- the machine alone


def test_init_bumps_epoch_and_kip360_retry() -> None:
    md = started()
    d = md.init_producer_id(-1, -1, 30_000, 10, pids(), producer_fenced=True)
    assert d.error == E.NONE and (d.producer_id, d.producer_epoch) == (7, 1)
    apply_all(md, d.records)
    assert md.timeout_ms == 30_000 and (md.last_producer_id, md.last_producer_epoch) == (7, 0)
    # v3+: the current id/epoch bumps; the replaced one is a retry answered without a bump.
    assert md.init_producer_id(7, 0, 30_000, 11, pids(), producer_fenced=True).producer_epoch == 1
    d = md.init_producer_id(7, 1, 30_000, 11, pids(), producer_fenced=True)
    assert d.producer_epoch == 2 and d.records
    apply_all(md, d.records)
    assert md.init_producer_id(7, 0, 30_000, 12, pids(), producer_fenced=True).error == E.PRODUCER_FENCED
    assert md.init_producer_id(7, 0, 30_000, 12, pids(), producer_fenced=False).error == E.INVALID_PRODUCER_EPOCH


def test_epoch_exhaustion_takes_a_new_producer_id() -> None:
    md = started(epoch=32766)
    d = md.init_producer_id(-1, -1, 1000, 1, pids(500), producer_fenced=True)
    assert (d.producer_id, d.producer_epoch) == (500, 0)


def test_add_partitions_end_txn_matrix() -> None:
    md = started()
    assert md.add_partitions(8, 0, [("a", 0)], 5, producer_fenced=True).error == E.INVALID_PRODUCER_ID_MAPPING
    assert md.add_partitions(7, 1, [("a", 0)], 5, producer_fenced=True).error == E.PRODUCER_FENCED
    assert md.add_partitions(7, 1, [("a", 0)], 5, producer_fenced=False).error == E.INVALID_PRODUCER_EPOCH
    assert md.end_txn(7, 0, True, 5, producer_fenced=True).error == E.INVALID_TXN_STATE  # Empty
    d = md.add_partitions(7, 0, [("a", 0)], 5, producer_fenced=True)
    apply_all(md, d.records)
    assert md.state is S.ONGOING and md.start_ms == 5
    assert md.add_partitions(7, 0, [("a", 0)], 6, producer_fenced=True).records == []  # nothing new
    apply_all(md, md.add_partitions(7, 0, [("b", 1)], 7, producer_fenced=True).records)
    assert md.partitions == {("a", 0), ("b", 1)} and md.start_ms == 5
    assert md.verify(7, 0, ("a", 0)) == E.NONE
    assert md.verify(7, 0, ("c", 0)) == E.INVALID_TXN_STATE
    d = md.end_txn(7, 0, True, 8, producer_fenced=True)
    apply_all(md, d.records)
    assert md.state is S.PREPARE_COMMIT
    assert md.end_txn(7, 0, True, 9, producer_fenced=True).error == E.CONCURRENT_TRANSACTIONS
    assert md.end_txn(7, 0, False, 9, producer_fenced=True).error == E.INVALID_TXN_STATE
    assert md.add_partitions(7, 0, [("a", 0)], 9, producer_fenced=True).error == E.CONCURRENT_TRANSACTIONS
    assert md.init_producer_id(-1, -1, 1000, 9, pids(), producer_fenced=True).error == E.CONCURRENT_TRANSACTIONS
    md.apply(md.complete(10))
    assert md.state is S.COMPLETE_COMMIT and md.partitions == frozenset()
    assert md.end_txn(7, 0, True, 11, producer_fenced=True).error == E.NONE  # a retried commit
    assert md.end_txn(7, 0, False, 11, producer_fenced=True).error == E.INVALID_TXN_STATE
    # A new transaction from CompleteCommit restarts the clock.
    apply_all(md, md.add_partitions(7, 0, [("a", 1)], 20, producer_fenced=True).records)
    assert md.start_ms == 20 and md.partitions == {("a", 1)}


def test_fence_timeout_and_expiry() -> None:
    md = started()
    apply_all(md, md.add_partitions(7, 0, [("a", 0)], 100, producer_fenced=True).records)
    assert not md.expired(60_100) and md.expired(60_101) and md.deadline() == 60_101
    assert md.init_producer_id(-1, -1, 1000, 200, pids(), producer_fenced=True).fence_first
    v = md.fence_and_abort(60_101)
    assert v.producer_epoch == 1 and v.status == STATUS_CODES[S.PREPARE_ABORT] and v.partitions == {("a", 0)}
    md.apply(v)
    md.apply(md.complete(60_102))
    assert md.state is S.COMPLETE_ABORT
    assert md.end_txn(7, 0, False, 60_103, producer_fenced=True).error == E.PRODUCER_FENCED
    assert md.id_expired(60_102 + 1000, 1000) and not md.id_expired(60_102 + 999, 1000)


# ---------------------------------------------------------------- over a real broker state


async def open_txn_state(data: Path, **settings: str) -> BrokerServices:
    state = await open_state(data, transaction_state_log_num_partitions="3", **settings)
    await state.producer_ids.ready()  # as InitProducerId's handler does before asking the coordinator
    return state


def txn_batch(pid: int, epoch: int, seq: int, n: int = 3) -> bytearray:
    recs = [(None, f"v{seq + i}".encode(), [], None) for i in range(n)]
    return bytearray(build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True))


async def setup_txn(state: BrokerServices, coord: TransactionCoordinator, tid: str = "tx") -> tuple[int, int]:
    if state.metadata.topic("out") is None:
        await state.metadata.create_topic("out", 2, 1)
    d = coord.init_producer_id(tid, 60_000, -1, -1, producer_fenced=True)
    assert d.error == E.NONE
    pid, epoch = d.producer_id, d.producer_epoch
    assert coord.add_partitions(tid, pid, epoch, [("out", 0), ("out", 1)], producer_fenced=True) == E.NONE
    return pid, epoch


@run_async
async def test_commit_and_abort_write_markers(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    pid, epoch = await setup_txn(state, coord)
    out0 = state.logs.get("out", 0)
    assert out0 is not None
    out0.append(txn_batch(pid, epoch, 0), leader_epoch=0)
    assert out0.last_stable_offset == 0
    assert coord.end_txn("tx", pid, epoch, True, producer_fenced=True) == E.NONE
    assert coord.txns["tx"].state is S.COMPLETE_COMMIT
    assert out0.last_stable_offset == out0.log_end_offset == 4  # 3 records + marker
    out1 = state.logs.get("out", 1)
    assert out1 is not None and out1.log_end_offset == 1  # a marker even where nothing was written
    # Next transaction, aborted.
    assert coord.add_partitions("tx", pid, epoch, [("out", 0)], producer_fenced=True) == E.NONE
    out0.append(txn_batch(pid, epoch, 3), leader_epoch=0)
    assert coord.end_txn("tx", pid, epoch, False, producer_fenced=True) == E.NONE
    assert [(a.producer_id, a.first_offset) for a in out0.aborted_transactions(0, 100)] == [(pid, 4)]
    assert coord.end_txn("nope", pid, epoch, False, producer_fenced=True) == E.INVALID_PRODUCER_ID_MAPPING
    await state.close()


@run_async
async def test_reinit_fences_and_aborts_ongoing(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    pid, epoch = await setup_txn(state, coord)
    out0 = state.logs.get("out", 0)
    assert out0 is not None
    out0.append(txn_batch(pid, epoch, 0), leader_epoch=0)
    d = coord.init_producer_id("tx", 60_000, -1, -1, producer_fenced=True)
    assert d.error == E.NONE and (d.producer_id, d.producer_epoch) == (pid, epoch + 2)
    assert out0.last_stable_offset == out0.log_end_offset
    assert out0.aborted_transactions(0, 100)[0].producer_id == pid
    # The zombie: its produce is fenced by the partition, its EndTxn by the coordinator.
    with pytest.raises(InvalidProducerEpochError):
        out0.append(txn_batch(pid, epoch, 3), leader_epoch=0)
    assert coord.end_txn("tx", pid, epoch, True, producer_fenced=True) == E.PRODUCER_FENCED
    assert coord.end_txn("tx", pid, epoch, True, producer_fenced=False) == E.INVALID_PRODUCER_EPOCH
    await state.close()


@run_async
async def test_timeout_aborts_with_fence(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    pid, epoch = await setup_txn(state, coord)
    coord.fire(now_ms() + 61_000)
    md = coord.txns["tx"]
    assert md.state is S.COMPLETE_ABORT and md.producer_epoch == epoch + 1
    assert coord.add_partitions("tx", pid, epoch, [("out", 0)], producer_fenced=True) == E.PRODUCER_FENCED
    await state.close()


@run_async
async def test_restart_resumes_prepared_and_keeps_ongoing(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    pid, epoch = await setup_txn(state, coord, "a")
    pid_b, epoch_b = await setup_txn(state, coord, "b")
    out0 = state.logs.get("out", 0)
    assert out0 is not None
    out0.append(txn_batch(pid, epoch, 0), leader_epoch=0)  # a: 0-2
    out0.append(txn_batch(pid_b, epoch_b, 0), leader_epoch=0)  # b: 3-5
    # "a" dies between PrepareCommit and its markers.
    md = coord.txns["a"]
    coord._write("a", md.end_txn(pid, epoch, True, now_ms(), producer_fenced=True).records[0])
    await state.close()
    await asyncio.sleep(0)

    state = await open_txn_state(tmp_path)
    assert state.metadata.topic(TXN_TOPIC) is not None  # what the broker checks at start
    coord = state.txns
    assert coord.txns["a"].state is S.COMPLETE_COMMIT
    assert coord.txns["b"].state is S.ONGOING and coord.txns["b"].partitions == {("out", 0), ("out", 1)}
    out0 = state.logs.get("out", 0)
    assert out0 is not None and out0.last_stable_offset == 3
    assert coord.end_txn("b", pid_b, epoch_b, True, producer_fenced=True) == E.NONE
    assert out0.last_stable_offset == out0.log_end_offset
    await state.close()


@run_async
async def test_txn_offsets_commit_abort_and_reload(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path)
    coord = state.txns
    groups = state.groups
    pid, epoch = await setup_txn(state, coord)
    gp = groups.partition_of("g")
    assert coord.add_partitions("tx", pid, epoch, [("__consumer_offsets", gp)], producer_fenced=True) == E.NONE
    write_txn_offsets(groups, "g", pid, epoch, [("in", 0, OffsetValue(10, -1, "", 1))])
    assert groups.offsets.get("g", "in", 0) is None and groups.txn_offsets.has_pending("g", ("in", 0))
    assert coord.end_txn("tx", pid, epoch, True, producer_fenced=True) == E.NONE
    v = groups.offsets.get("g", "in", 0)
    assert v is not None and v.offset == 10 and not groups.txn_offsets.has_pending("g", ("in", 0))
    # Aborted offsets vanish.
    assert coord.add_partitions("tx", pid, epoch, [("__consumer_offsets", gp)], producer_fenced=True) == E.NONE
    write_txn_offsets(groups, "g", pid, epoch, [("in", 0, OffsetValue(20, -1, "", 2))])
    assert coord.end_txn("tx", pid, epoch, False, producer_fenced=True) == E.NONE
    v = groups.offsets.get("g", "in", 0)
    assert v is not None and v.offset == 10
    # A pending commit at shutdown is pending after the restart, and commits then.
    assert coord.add_partitions("tx", pid, epoch, [("__consumer_offsets", gp)], producer_fenced=True) == E.NONE
    write_txn_offsets(groups, "g", pid, epoch, [("in", 0, OffsetValue(30, -1, "", 3))])
    await state.close()
    await asyncio.sleep(0)
    state = await open_txn_state(tmp_path)
    groups = state.groups
    coord = state.txns
    v = groups.offsets.get("g", "in", 0)
    assert v is not None and v.offset == 10 and groups.txn_offsets.has_pending("g", ("in", 0))
    # A stale epoch can't commit offsets.
    with pytest.raises(InvalidProducerEpochError):
        write_txn_offsets(groups, "g", pid, epoch - 1, [("in", 0, OffsetValue(99, -1, "", 3))])
    assert coord.end_txn("tx", pid, epoch, True, producer_fenced=True) == E.NONE
    v = groups.offsets.get("g", "in", 0)
    assert v is not None and v.offset == 30
    await state.close()


@run_async
async def test_transactional_id_expiration(tmp_path: Path) -> None:
    state = await open_txn_state(tmp_path, transactional_id_expiration_ms="1000")
    coord = state.txns
    assert coord.init_producer_id("idle", 60_000, -1, -1, producer_fenced=True).error == E.NONE
    await setup_txn(state, coord, "busy")  # ongoing: never expires as an id
    assert coord.expire_ids(now_ms() + 2000) == 1
    assert set(coord.txns) == {"busy"}
    await state.close()
    await asyncio.sleep(0)
    state = await open_txn_state(tmp_path)
    coord = state.txns
    assert set(coord.txns) == {"busy"}  # the tombstone replays
    info = state.metadata.topic(TXN_TOPIC)
    assert info is not None and len(info.partitions) == 3
    assert info.configs.get("cleanup.policy") == "compact"
    await state.close()
