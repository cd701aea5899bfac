"""Partition side of transactions: open transactions, LSO, markers, the aborted-transaction index."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkapy.protocol.records import ControlRecordType, build_batch, build_control_batch
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.producer_state import (
    InvalidProducerEpochError,
    InvalidTxnStateError,
)
from kafkapy.storage.txn_index import AbortedTxn

P1, P2 = 1000, 2000


def txn_batch(pid: int, seq: int, n: int = 2, epoch: int = 0, transactional: bool = True) -> bytearray:
    recs = [(None, f"{pid}-{seq + i}".encode(), [], None) for i in range(n)]
    return bytearray(
        build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=transactional)
    )


def marker(pid: int, commit: bool, epoch: int = 0, coordinator_epoch: int = 0) -> bytearray:
    ctype = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    return bytearray(
        build_control_batch(
            ctype, producer_id=pid, producer_epoch=epoch, coordinator_epoch=coordinator_epoch, timestamp=1
        )
    )


def plain(n: int = 1) -> bytearray:
    return bytearray(build_batch([(None, b"x", [], None)] * n))


@pytest.fixture
def plog(tmp_path: Path) -> PartitionLog:
    return PartitionLog(tmp_path / "t-0", sync=False)


def test_lso_follows_open_transactions(plog: PartitionLog) -> None:
    plog.append(plain(3), leader_epoch=0)
    assert plog.last_stable_offset == 3
    plog.append(txn_batch(P1, 0), leader_epoch=0)  # 3-4
    plog.append(txn_batch(P2, 0), leader_epoch=0)  # 5-6
    plog.append(plain(), leader_epoch=0)  # 7
    assert plog.last_stable_offset == 3
    plog.append(txn_batch(P1, 2), leader_epoch=0)  # 8-9, same transaction
    res = plog.append(marker(P1, commit=True), leader_epoch=0)  # 10
    assert res.completed and not res.completed[0].aborted
    assert plog.last_stable_offset == 5
    res = plog.append(marker(P2, commit=False), leader_epoch=0)  # 11
    assert res.completed and res.completed[0].aborted
    assert plog.last_stable_offset == plog.high_watermark == 12
    assert plog.aborted_transactions(0, 12) == [AbortedTxn(P2, 5, 11, 12)]
    assert plog.aborted_transactions(12, 12) == []
    assert plog.aborted_transactions(0, 5) == []  # starts at 5: not in [0, 5)


def test_marker_without_transaction_and_stale_epoch(plog: PartitionLog) -> None:
    res = plog.append(marker(P1, commit=False), leader_epoch=0)
    assert res.completed is None and plog.aborted_transactions(0, 10) == []
    plog.append(txn_batch(P1, 0, epoch=3), leader_epoch=0)
    with pytest.raises(InvalidProducerEpochError):
        plog.append(marker(P1, commit=True, epoch=2), leader_epoch=0)
    assert plog.last_stable_offset == 1


def test_plain_batch_inside_open_transaction_refused(plog: PartitionLog) -> None:
    plog.append(txn_batch(P1, 0), leader_epoch=0)
    with pytest.raises(InvalidTxnStateError):
        plog.append(txn_batch(P1, 2, transactional=False), leader_epoch=0)


@pytest.mark.parametrize("clean", [True, False])
def test_state_and_index_survive_restart(tmp_path: Path, clean: bool) -> None:
    d = tmp_path / "t-0"
    plog = PartitionLog(d, LogConfig(segment_bytes=300), sync=False)
    for i in range(6):
        pid = P1 + i
        plog.append(txn_batch(pid, 0), leader_epoch=0)
        plog.append(marker(pid, commit=i % 2 == 0), leader_epoch=0)
    plog.append(txn_batch(P2, 0), leader_epoch=0)  # left open
    lso = plog.last_stable_offset
    aborted = plog.aborted_transactions(0, lso)
    assert [a.producer_id for a in aborted] == [P1 + 1, P1 + 3, P1 + 5]
    assert len(plog.segments) > 1
    if clean:
        plog.close()
    else:
        plog.flush()
        for s in plog.segments:
            s.file.close()
    again = PartitionLog(d, LogConfig(segment_bytes=300), sync=False, clean_shutdown=clean)
    assert again.last_stable_offset == lso
    assert again.aborted_transactions(0, lso) == aborted
    again.append(marker(P2, commit=False), leader_epoch=0)
    assert again.last_stable_offset == again.log_end_offset
    assert again.aborted_transactions(lso, again.log_end_offset)[-1].producer_id == P2


def test_rebuild_without_snapshots_and_index_files(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    plog = PartitionLog(d, LogConfig(segment_bytes=250), sync=False)
    for i in range(5):
        plog.append(txn_batch(P1, 2 * i), leader_epoch=0)
        plog.append(marker(P1, commit=False), leader_epoch=0)
    expected = plog.aborted_transactions(0, plog.log_end_offset)
    plog.close()
    for f in d.iterdir():
        if f.suffix in (".snapshot", ".txnindex"):
            f.unlink()
    again = PartitionLog(d, LogConfig(segment_bytes=250), sync=False, clean_shutdown=True)
    assert again.aborted_transactions(0, again.log_end_offset) == expected
    assert len(expected) == 5


def test_truncation_drops_index_entries_and_reopens(plog: PartitionLog) -> None:
    plog.append(txn_batch(P1, 0), leader_epoch=0)  # 0-1
    plog.append(marker(P1, commit=False), leader_epoch=0)  # 2
    plog.append(txn_batch(P2, 0), leader_epoch=0)  # 3-4
    plog.append(marker(P2, commit=False), leader_epoch=0)  # 5
    plog.truncate_to(5)
    assert [a.producer_id for a in plog.aborted_transactions(0, 10)] == [P1]
    assert plog.last_stable_offset == 3  # P2's transaction is open again


def test_retention_deletes_txn_index(tmp_path: Path) -> None:
    plog = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=200), sync=False)
    plog.append(txn_batch(P1, 0), leader_epoch=0)
    plog.append(marker(P1, commit=False), leader_epoch=0)
    for _ in range(5):
        plog.append(plain(3), leader_epoch=0)
    files = list((tmp_path / "t-0").glob("*.txnindex"))
    assert len(files) == 1
    plog.delete_records_before(plog.segments[-1].base_offset)
    assert not files[0].exists()
    assert plog.aborted_transactions(plog.log_start_offset, plog.log_end_offset) == []
