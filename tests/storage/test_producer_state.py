"""Producer state: dedup window, sequence/epoch checks, snapshots, rebuild, truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkapy.protocol.records import build_batch, iter_all_records
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.producer_state import (
    INT32_MAX,
    InvalidProducerEpochError,
    InvalidSequenceError,
    OutOfOrderSequenceError,
    PendingBatch,
    ProducerStateManager,
    add_sequence,
)

PID = 1000


def batch(seq: int, n: int = 1, *, pid: int = PID, epoch: int = 0, ts: int | None = None, tag: str = "v") -> bytearray:
    recs = [(None, f"{tag}{seq + i}".encode(), [], ts) for i in range(n)]
    return bytearray(build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq))


def values(plog: PartitionLog) -> list[bytes]:
    data = plog.read_bytes(plog.log_start_offset, 1 << 24)
    return [r.value or b"" for _, r in iter_all_records(data)]


@pytest.fixture
def plog(tmp_path: Path) -> PartitionLog:
    return PartitionLog(tmp_path / "t-0", sync=False)


# -- ProducerStateManager alone ---------------------------------------------------------


def check(ps: ProducerStateManager, seq: int, n: int = 1, *, epoch: int = 0, offset: int = 0) -> object:
    staged: list[PendingBatch] = []
    dup = ps.check_batch(PID, epoch, seq, n - 1, offset, 1, staged)
    ps.apply(staged)
    return dup


def test_sequences_in_order_then_duplicate_within_last_five(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    for i in range(7):
        assert check(ps, i * 2, 2, offset=i * 2) is None
    entry = ps.producers[PID]
    assert len(entry.batches) == 5 and entry.last_seq == 13
    dup = check(ps, 4, 2)  # batch 2 of 7: still in the window
    assert dup is not None and dup.first_offset == 4 and dup.last_offset == 5
    with pytest.raises(OutOfOrderSequenceError):
        check(ps, 2, 2)  # fell out of the window
    with pytest.raises(OutOfOrderSequenceError):
        check(ps, 4, 1)  # same first sequence, different range: not a duplicate


def test_gap_and_unknown_producer(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    assert check(ps, 42) is None, "an unknown producer is accepted at any sequence (KIP-360)"
    with pytest.raises(OutOfOrderSequenceError):
        check(ps, 44)
    assert check(ps, 43) is None
    with pytest.raises(InvalidSequenceError):
        check(ps, -1)


def test_epoch_rules(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    check(ps, 0, epoch=3)
    check(ps, 1, epoch=3)
    with pytest.raises(InvalidProducerEpochError):
        check(ps, 2, epoch=2)
    with pytest.raises(OutOfOrderSequenceError):
        check(ps, 2, epoch=4)  # a new epoch restarts at 0
    assert check(ps, 0, epoch=4) is None
    assert ps.producers[PID].epoch == 4 and len(ps.producers[PID].batches) == 1
    assert check(ps, 0, epoch=4) is not None, "retry in the new epoch is a duplicate"
    with pytest.raises(InvalidProducerEpochError):
        check(ps, 0, epoch=3)


def test_sequence_wraps_at_int32_max(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    assert add_sequence(INT32_MAX - 1, 3) == 1
    check(ps, INT32_MAX - 4, 5)  # last sequence INT32_MAX
    assert ps.producers[PID].last_seq == INT32_MAX
    assert check(ps, 0, 3) is None
    check(ps, 3)
    b = ps.producers[PID].batches
    assert (b[0].first_seq, b[0].last_seq) == (INT32_MAX - 4, INT32_MAX)
    with pytest.raises(OutOfOrderSequenceError):
        check(ps, INT32_MAX - 1, 4)  # before the window and not next


def test_wrap_inside_one_batch(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    check(ps, INT32_MAX - 1, 4)  # sequences MAX-1, MAX, 0, 1
    assert ps.producers[PID].last_seq == 1
    assert check(ps, INT32_MAX - 1, 4) is not None
    assert check(ps, 2) is None


def test_chained_batches_in_one_append(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path)
    staged: list[PendingBatch] = []
    assert ps.check_batch(PID, 0, 0, 1, 0, 1, staged) is None
    assert ps.check_batch(PID, 0, 2, 0, 2, 1, staged) is None
    with pytest.raises(OutOfOrderSequenceError):
        ps.check_batch(PID, 0, 5, 0, 3, 1, list(staged))
    assert PID not in ps.producers, "nothing applied before the write"
    ps.apply(staged)
    assert ps.producers[PID].last_seq == 2


def test_expiration(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path, expiration_ms=1000)
    staged: list[PendingBatch] = []
    ps.check_batch(PID, 0, 0, 0, 0, 5_000, staged)
    ps.check_batch(PID + 1, 0, 0, 0, 1, 9_000, staged)
    ps.apply(staged)
    assert ps.remove_expired(6_500) == 1
    assert list(ps.producers) == [PID + 1]


def test_snapshot_roundtrip_and_corruption(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path, sync=False)
    for i in range(3):
        check(ps, i, offset=i)
    staged: list[PendingBatch] = []
    ps.check_batch(7, 2, 10, 4, 3, 99, staged)
    ps.apply(staged)
    ps.take_snapshot(8)
    ps2 = ProducerStateManager(tmp_path)
    assert ps2.load_snapshot(8) == 8
    assert ps2.producers == ps.producers
    assert ps2.load_snapshot(7) is None and not ps2.snapshot_offsets(), "snapshots past the log end go"
    ps.take_snapshot(3)
    ps.take_snapshot(8)
    raw = bytearray(ps.snapshot_path(8).read_bytes())
    raw[-1] ^= 0xFF
    ps.snapshot_path(8).write_bytes(raw)
    assert ps2.load_snapshot(100) == 3, "a corrupt snapshot is skipped for an older one"
    assert ps2.snapshot_offsets() == [3]


def test_keeps_a_few_snapshots(tmp_path: Path) -> None:
    ps = ProducerStateManager(tmp_path, sync=False)
    for off in (1, 2, 3, 4, 5):
        ps.take_snapshot(off)
    assert ps.snapshot_offsets() == [3, 4, 5]


# -- through PartitionLog ------------------------------------------------------------


def test_log_duplicate_is_not_written(plog: PartitionLog) -> None:
    r1 = plog.append(batch(0, 3), leader_epoch=0)
    r2 = plog.append(batch(3, 2), leader_epoch=0)
    again = plog.append(batch(0, 3), leader_epoch=0)
    assert again.duplicate and (again.base_offset, again.last_offset) == (r1.base_offset, r1.last_offset)
    assert plog.log_end_offset == 5
    with pytest.raises(OutOfOrderSequenceError):
        plog.append(batch(9), leader_epoch=0)
    assert plog.log_end_offset == 5
    assert plog.append(batch(5), leader_epoch=0).base_offset == 5
    assert r2.base_offset == 3
    assert values(plog) == [b"v0", b"v1", b"v2", b"v3", b"v4", b"v5"]
    plain = plog.append(bytearray(build_batch([(None, b"plain", [], None)])), leader_epoch=0)
    assert plain.base_offset == 6 and not plain.duplicate


def test_log_state_survives_clean_restart(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    plog = PartitionLog(d, sync=False)
    plog.append(batch(0, 2), leader_epoch=0)
    plog.append(batch(2), leader_epoch=0)
    plog.close()
    assert (d / f"{3:020d}.snapshot").exists()
    plog = PartitionLog(d, clean_shutdown=True, sync=False)
    assert plog.append(batch(2), leader_epoch=0).duplicate
    assert plog.append(batch(3), leader_epoch=0).base_offset == 3


def test_log_state_rebuilt_from_headers_without_snapshot(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    plog = PartitionLog(d, sync=False)
    for s in range(0, 12, 2):
        plog.append(batch(s, 2), leader_epoch=0)
    plog.append(batch(0, pid=77, epoch=5), leader_epoch=0)
    plog.flush()
    # No close (crash): no snapshot at the log end; none at all here.
    assert not list(d.glob("*.snapshot"))
    plog2 = PartitionLog(d, clean_shutdown=False, sync=False)
    entry = plog2.producer_state.producers[PID]
    assert entry.last_seq == 11 and len(entry.batches) == 5
    assert plog2.producer_state.producers[77].epoch == 5
    assert plog2.append(batch(8, 2), leader_epoch=0).duplicate
    with pytest.raises(InvalidProducerEpochError):
        plog2.append(batch(1, pid=77, epoch=4), leader_epoch=0)


def test_log_snapshot_on_roll_then_scan_after_it(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    cfg = LogConfig(segment_bytes=300)
    plog = PartitionLog(d, cfg, sync=False)
    for s in range(10):
        plog.append(batch(s, tag="x" * 40), leader_epoch=0)
    assert len(plog.segments) > 2
    snaps = plog.producer_state.snapshot_offsets()
    assert snaps and snaps[-1] == plog.active_segment.base_offset
    plog.flush()
    plog2 = PartitionLog(d, cfg, clean_shutdown=False, sync=False)
    assert plog2.producer_state.producers[PID].last_seq == 9
    assert plog2.producer_state.producers == plog.producer_state.producers
    assert plog2.append(batch(9, tag="x" * 40), leader_epoch=0).duplicate
    assert plog2.append(batch(10, tag="x" * 40), leader_epoch=0).base_offset == 10


def test_log_truncation_rewinds_producer_state(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    cfg = LogConfig(segment_bytes=300)
    plog = PartitionLog(d, cfg, sync=False)
    for s in range(10):
        plog.append(batch(s, tag="x" * 40), leader_epoch=0)
    plog.truncate_to(4)
    assert plog.log_end_offset == 4
    assert all(off <= 4 for off in plog.producer_state.snapshot_offsets())
    assert plog.producer_state.producers[PID].last_seq == 3
    assert plog.append(batch(4, tag="x" * 40), leader_epoch=0).base_offset == 4
    plog.truncate_fully_and_start_at(100)
    assert not plog.producer_state.producers and not plog.producer_state.snapshot_offsets()


def test_follower_append_updates_state(tmp_path: Path) -> None:
    plog = PartitionLog(tmp_path / "t-0", sync=False)
    b = batch(0, 2)
    b[0:8] = (0).to_bytes(8, "big")
    plog.append_as_follower(b)
    assert plog.producer_state.producers[PID].last_seq == 1
