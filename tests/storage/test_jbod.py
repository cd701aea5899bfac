"""Several data directories (JBOD, `log.dirs`): placement of new partitions, moving a partition's log
to another directory while it is served (KIP-113), restarts in the middle of a move, a failing
directory taking only its own partitions' writes."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

import pytest

from kafkapy.protocol.records import iter_all_records
from kafkapy.storage import log_manager as log_manager_module
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import LogDirError, StorageError
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.log_manager import (
    CLEAN_SHUTDOWN_FILE,
    FUTURE_DIR_SUFFIX,
    MOVED_DIR_SUFFIX,
    LogManager,
    parse_suffixed_dir,
)
from tests.storage.helpers import make_batch
from tests.storage.test_disk_errors import disk


def _cfg() -> LogConfig:
    return LogConfig(segment_bytes=4096, file_delete_delay_ms=0, retention_ms=-1)


def _dirs(tmp_path: Path, n: int = 2) -> list[Path]:
    return [tmp_path / f"d{i}" for i in range(n)]


def _values(plog: PartitionLog) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:  # a read stops at the end of a segment
        got = [(r.offset, r.value) for _, r in iter_all_records(plog.read_bytes(offset, 1 << 30))]
        out += [g for g in got if g[0] >= offset]
        offset = got[-1][0] + 1
    return out


def _fill(plog: PartitionLog, batches: int, *, epoch: int = 0) -> None:
    for i in range(batches):
        plog.append(make_batch([(b"k", b"v%d" % i)], pad=300), leader_epoch=epoch)


def _move_all(lm: LogManager, chunk: int = 1 << 20) -> int:
    steps = 0
    while lm.copy_futures(chunk):
        steps += 1
        assert steps < 10_000
    return steps


def test_one_directory_is_as_before(tmp_path: Path) -> None:
    lm = LogManager(tmp_path, _cfg())
    assert lm.data_dirs == [tmp_path] and lm.data_dir == tmp_path and lm.health is lm.healths[tmp_path]
    plog = lm.create("t", 0)
    assert plog.directory == tmp_path / "t-0"
    lm.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()


def test_new_partitions_go_to_the_directory_with_fewest(tmp_path: Path) -> None:
    d0, d1, d2 = _dirs(tmp_path, 3)
    lm = LogManager([d0, d1, d2], _cfg())
    placed = [lm.create("t", i).directory.parent for i in range(7)]
    # ties go to the first in log.dirs
    assert placed == [d0, d1, d2, d0, d1, d2, d0]
    lm.delete("t", 1)
    lm.delete("t", 4)
    assert lm.create("u", 0).directory.parent == d1  # now the emptiest
    lm.close()
    assert all((d / CLEAN_SHUTDOWN_FILE).exists() for d in (d0, d1, d2))
    again = LogManager([d0, d1, d2], _cfg())
    assert again.loaded_clean
    assert {k: again.get(*k).directory.parent for k in again.partitions()} == {  # type: ignore[union-attr]
        ("t", 0): d0,
        ("t", 2): d2,
        ("t", 3): d0,
        ("t", 5): d2,
        ("t", 6): d0,
        ("u", 0): d1,
    }
    again.close()


def test_a_preferred_directory_and_offline_ones(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    lm.prefer_dir("t", 0, d1)
    assert lm.create("t", 0).directory.parent == d1  # AlterReplicaLogDirs named it first
    assert lm.create("t", 1).directory.parent == d0
    lm.healths[d0].state = "failed"
    assert lm.create("t", 2).directory.parent == d1  # only online directories get new partitions
    lm.healths[d0].state = "online"
    lm.close()


def test_a_partition_in_two_directories_refuses_to_start(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    lm.create("t", 0)
    lm.close()
    shutil.copytree(d0 / "t-0", d1 / "t-0")
    with pytest.raises(StorageError, match="two data directories"):
        LogManager([d0, d1], _cfg())


def test_move_copies_while_served_then_swaps(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    tid = uuid.uuid4()
    plog = lm.create("t", 0, topic_id=tid)
    _fill(plog, 40)
    plog.delete_records_before(5)
    before = _values(plog)
    assert lm.move("t", 0, d1)
    fut = lm.future("t", 0)
    assert fut is not None and fut.dest == d1
    assert parse_suffixed_dir(fut.log.directory.name, FUTURE_DIR_SUFFIX) == ("t", 0)
    assert not lm.move("t", 0, d1)  # already moving there
    # a few chunks in, the partition takes appends: the copy follows them
    assert lm.copy_futures(2000)
    assert lm.get("t", 0) is plog and plog.directory.parent == d0
    plog.append(make_batch([(b"k", b"late")]), leader_epoch=1)
    _move_all(lm, 2000)
    assert lm.future("t", 0) is None
    assert lm.get("t", 0) is plog  # the same object serves on, now from the new directory
    assert plog.directory == d1 / "t-0"
    assert _values(plog) == [*before, (40, b"late")]
    assert plog.log_start_offset == 5 and plog.high_watermark == 41
    assert plog.latest_epoch == 1
    assert lm.topic_id("t", 0) == tid
    plog.append(make_batch([(b"k", b"after")]), leader_epoch=1)
    assert not (d0 / "t-0").exists()
    lm.tick()  # file.delete.delay.ms 0: the old files go
    assert not any(p.name.endswith(MOVED_DIR_SUFFIX) for p in d0.iterdir())
    lm.close()
    again = LogManager([d0, d1], _cfg())
    moved = again.get("t", 0)
    assert moved is not None and moved.directory == d1 / "t-0"
    assert _values(moved) == [*before, (40, b"late"), (41, b"after")]
    assert moved.log_start_offset == 5
    again.close()


def test_move_back_cancel_and_delete(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    plog = lm.create("t", 0)
    _fill(plog, 40)
    assert lm.move("t", 0, d1)
    copy_dir = lm.future("t", 0).log.directory  # type: ignore[union-attr]
    assert not lm.move("t", 0, d0)  # back to where it is: the copy is dropped
    assert lm.future("t", 0) is None and not copy_dir.exists()
    assert lm.move("t", 0, d1)
    lm.copy_futures(500)
    copy_dir = lm.future("t", 0).log.directory  # type: ignore[union-attr]
    lm.delete("t", 0)  # a deleted partition's move goes with it
    assert lm.future("t", 0) is None and not copy_dir.exists()
    lm.close()


def test_a_follower_truncation_during_a_move_is_followed(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg(), auto_high_watermark=False)
    plog = lm.create("t", 0)
    for i in range(10):
        plog.append_as_follower(make_batch([(b"k", b"a%d" % i)], base_offset=i, leader_epoch=0))
    assert lm.move("t", 0, d1)
    while (fut := lm.future("t", 0)) is not None and fut.log.log_end_offset < 8:
        lm.copy_futures(50)  # a batch at a time
    assert fut is not None and fut.log.log_end_offset == 8
    # the follower is truncated and rewritten at a new epoch: the copy drops what it has beyond 6
    plog.truncate_to(6)
    for i in range(6, 9):
        plog.append_as_follower(make_batch([(b"k", b"b%d" % i)], base_offset=i, leader_epoch=1))
    _move_all(lm)
    assert plog.directory.parent == d1 and plog.log_end_offset == 9
    assert [v for _, v in _values(plog)] == [*(b"a%d" % i for i in range(6)), b"b6", b"b7", b"b8"]
    lm.close()


def _crash(lm: LogManager) -> None:
    """Drop the manager without closing anything (a killed process): no clean-shutdown marker."""
    for plog in lm.logs():
        plog.delete_files_only()
    for _, fut in lm.futures():
        fut.log.delete_files_only()


def test_restart_during_the_copy_resumes_the_move(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    plog = lm.create("t", 0)
    _fill(plog, 30)
    plog.flush()
    want = _values(plog)
    lm.move("t", 0, d1)
    lm.copy_futures(500)
    assert lm.future("t", 0) is not None
    _crash(lm)
    again = LogManager([d0, d1], _cfg())
    served = again.get("t", 0)
    assert served is not None and served.directory.parent == d0 and _values(served) == want
    fut = again.future("t", 0)
    assert fut is not None and fut.dest == d1 and 0 < fut.log.log_end_offset < 30
    _move_all(again)
    assert served.directory == d1 / "t-0" and _values(served) == want
    again.close()


def test_restart_between_the_renames_finishes_the_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    plog = lm.create("t", 0)
    _fill(plog, 20)
    want = _values(plog)
    lm.move("t", 0, d1)
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: object, dst: object) -> None:
        calls.append(str(dst))
        if str(dst).endswith("/t-0"):  # the copy's rename: the process dies first
            raise SystemExit("killed")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit):
        _move_all(lm)
    monkeypatch.setattr(os, "replace", real_replace)
    assert any(c.endswith(MOVED_DIR_SUFFIX) for c in calls)
    assert not (d0 / "t-0").exists() and not (d1 / "t-0").exists()
    _crash(lm)
    again = LogManager([d0, d1], _cfg())
    served = again.get("t", 0)
    assert served is not None and served.directory == d1 / "t-0" and _values(served) == want
    assert again.future("t", 0) is None
    assert sorted(p.name for p in d0.iterdir()) == []  # the source is gone
    again.close()


def test_restart_after_the_swap_drops_the_old_files(tmp_path: Path) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], LogConfig(segment_bytes=4096, file_delete_delay_ms=60_000, retention_ms=-1))
    plog = lm.create("t", 0)
    _fill(plog, 20)
    want = _values(plog)
    lm.move("t", 0, d1)
    _move_all(lm)
    assert [p.name.endswith(MOVED_DIR_SUFFIX) for p in d0.iterdir()] == [True]  # kept for reads in flight
    _crash(lm)
    again = LogManager([d0, d1], _cfg())
    served = again.get("t", 0)
    assert served is not None and served.directory == d1 / "t-0" and _values(served) == want
    assert list(d0.iterdir()) == []
    again.close()


def test_a_failing_directory_refuses_only_its_own_partitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d0, d1 = _dirs(tmp_path)
    told: list[tuple[str, str]] = []
    lm = LogManager([d0, d1], _cfg())
    for d, h in lm.healths.items():
        h.listener = lambda state, d=d: told.append((d.name, state))  # type: ignore[misc]
    a, b = lm.create("t", 0), lm.create("t", 1)
    assert (a.directory.parent, b.directory.parent) == (d0, d1)
    with disk(monkeypatch, d1, code=errno.EIO):
        with pytest.raises(LogDirError):
            b.append(make_batch(1), leader_epoch=0)
        a.append(make_batch(1), leader_epoch=0)  # the other directory takes writes
        assert lm.healths[d1].state == "failed" and lm.healths[d0].online
        with pytest.raises(LogDirError):
            lm.move("t", 0, d1)  # no copy is started while a directory is offline
        assert lm.future("t", 0) is None
        assert lm.create("t", 2).directory.parent == d0  # new partitions avoid it
    lm.tick()  # the probe write succeeds again
    assert lm.healths[d1].online
    assert told == [("d1", "failed"), ("d1", "online")]
    lm.close()


def test_move_of_a_compacted_log_keeps_offsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d0, d1 = _dirs(tmp_path)
    monkeypatch.setattr(log_manager_module, "MOVE_CHUNK", 512)
    lm = LogManager([d0, d1], LogConfig(segment_bytes=1024, cleanup_policy="compact", file_delete_delay_ms=0))
    plog = lm.create("t", 0)
    for i in range(60):
        plog.append(make_batch([(b"k%d" % (i % 5), b"v%d" % i)], pad=50), leader_epoch=0)
    plog.high_watermark = plog.log_end_offset
    plog.roll()
    plog.compact()
    want = _values(plog)
    assert len(want) < 60
    lm.move("t", 0, d1)
    _move_all(lm)
    assert plog.directory.parent == d1 and _values(plog) == want and plog.log_end_offset == 60
    lm.close()


def test_a_refused_rename_puts_the_source_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d0, d1 = _dirs(tmp_path)
    lm = LogManager([d0, d1], _cfg())
    plog = lm.create("t", 0)
    _fill(plog, 20)
    want = _values(plog)
    lm.move("t", 0, d1)
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if str(dst).endswith("/t-0") and str(src).endswith(FUTURE_DIR_SUFFIX):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    assert not lm.copy_futures(1 << 20)  # the move is given up
    monkeypatch.setattr(os, "replace", real_replace)
    assert lm.future("t", 0) is None and lm.healths[d1].state == "failed"
    assert plog.directory == d0 / "t-0" and (d0 / "t-0").is_dir() and list(d1.iterdir()) == []
    plog.append(make_batch([(b"k", b"more")]), leader_epoch=0)
    assert _values(plog) == [*want, (20, b"more")]
    lm.close()
