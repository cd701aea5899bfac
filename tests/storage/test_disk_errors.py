"""A full or failing disk under the storage layer: every failed write is rolled back (no half batch,
no offsets given twice, nothing acknowledged lost), raised as LogDirError, and the log dir's state
is logged once. Faults are injected by wrapping os.write / os.ftruncate for the files of one
directory; tests/server/test_disk_full.py does the same on a real full file system."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kafkapy.storage import log_manager as log_manager_module
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import LogDirError
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.log_manager import LogManager
from tests.storage.helpers import make_batch, parse_batches


def _config(**kw: object) -> LogConfig:
    base: dict[str, object] = dict(segment_bytes=64 * 1024, index_interval_bytes=256)
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def _read_all(log: PartitionLog) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    off = log.log_start_offset
    while off < log.log_end_offset:
        batches = parse_batches(log.read_bytes(off, 1 << 20))
        assert batches, off
        out.extend(batches)
        off = batches[-1][1] + 1
    return out


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@contextmanager
def disk(
    monkeypatch: pytest.MonkeyPatch,
    under: Path,
    *,
    budget: int = 0,
    code: int = errno.ENOSPC,
    suffixes: tuple[str, ...] = (),
    ftruncate_fails: bool = False,
) -> Iterator[None]:
    """Writes to files under `under` (of `suffixes`, if given) get `budget` more bytes, then a
    short write and `code`, as a file system that fills up mid-write answers."""
    real_write, real_ftruncate = os.write, os.ftruncate
    left = [budget]
    prefix = str(under)

    def ours(fd: int) -> bool:
        path = _path_of(fd)
        return path.startswith(prefix) and (not suffixes or path.endswith(suffixes))

    def write(fd: int, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not ours(fd):
            return real_write(fd, data)
        if left[0] <= 0:
            raise OSError(code, os.strerror(code))
        n = real_write(fd, memoryview(data)[: left[0]])
        left[0] -= n
        return n

    def ftruncate(fd: int, length: int) -> None:
        if ftruncate_fails and ours(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_ftruncate(fd, length)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "ftruncate", ftruncate)
    try:
        yield
    finally:
        monkeypatch.setattr(os, "write", real_write)
        monkeypatch.setattr(os, "ftruncate", real_ftruncate)


def _append_n(log: PartitionLog, n: int, *, epoch: int = 0, pad: int = 200) -> None:
    for _ in range(n):
        log.append(make_batch(3, pad=pad), leader_epoch=epoch)


def test_a_write_cut_short_by_a_full_disk_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, _config())
    _append_n(log, 5)
    before, size, leo = _read_all(log), log.active_segment.size, log.log_end_offset
    with disk(monkeypatch, d, budget=100), pytest.raises(LogDirError) as info:
        log.append(make_batch(3, pad=2000), leader_epoch=0)
    assert info.value.full
    assert (log.log_end_offset, log.active_segment.size) == (leo, size)
    assert os.path.getsize(log.active_segment.log_path) == size  # the 100 bytes written were cut off
    assert _read_all(log) == before
    # space again: the next append takes the next offsets, and a crash recovers every batch
    log.append(make_batch(3, pad=2000), leader_epoch=0)
    assert [b[0] for b in _read_all(log)] == [0, 3, 6, 9, 12, 15]
    log.active_segment.flush()
    reopened = PartitionLog(d, _config(), clean_shutdown=False)
    assert _read_all(reopened) == _read_all(log)
    assert reopened.log_end_offset == 18


def test_bytes_that_cannot_be_cut_off_are_cut_before_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, _config())
    _append_n(log, 2)
    good = _read_all(log)
    with disk(monkeypatch, d, budget=50, ftruncate_fails=True), pytest.raises(LogDirError):
        log.append(make_batch(3), leader_epoch=0)
    seg = log.active_segment
    assert os.path.getsize(seg.log_path) == seg.size + 50  # a torn tail nobody reads
    assert _read_all(log) == good
    # a crash now: recovery cuts the torn tail and keeps every whole batch
    assert _read_all(PartitionLog(d, _config(), clean_shutdown=False)) == good
    log.append(make_batch(3), leader_epoch=0)  # the disk works again: the tail goes first
    assert [b[0] for b in _read_all(log)] == [0, 3, 6]
    assert os.path.getsize(seg.log_path) == seg.size


def test_a_new_leader_epoch_that_cannot_be_recorded_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, _config())
    _append_n(log, 2, epoch=0)
    with disk(monkeypatch, d, suffixes=(".tmp",)), pytest.raises(LogDirError):
        log.append(make_batch(3), leader_epoch=1)  # leader-epoch-checkpoint.tmp refused
    assert (log.latest_epoch, log.log_end_offset) == (0, 6)
    log.append(make_batch(3), leader_epoch=1)
    assert log.end_offset_for_epoch(0) == (0, 6)
    assert log.latest_epoch == 1


def test_index_writes_that_fail_do_not_fail_the_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, _config(index_interval_bytes=64))
    _append_n(log, 3)
    with disk(monkeypatch, d, suffixes=(".index", ".timeindex")):
        _append_n(log, 6)  # index entries in memory only
    seg = log.active_segment
    assert seg.index.dirty  # (the time index got no new entry: every batch has the same timestamp)
    entries = seg.index.entries()
    assert len(entries) >= 8
    log.close()  # the flush rewrites the indexes whole
    assert not seg.index.dirty
    reopened = PartitionLog(d, _config(index_interval_bytes=64), clean_shutdown=True)
    reopened.active_segment.ensure_indexes()
    assert reopened.active_segment.index.entries() == entries
    assert [b[0] for b in _read_all(reopened)] == list(range(0, 27, 3))


def test_log_dir_state_is_logged_once_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    told: list[str] = []
    manager = LogManager(data, _config(), checkpoint_interval_ms=0)
    manager.health.listener = told.append
    log = manager.create("t", 0)
    _append_n(log, 2)
    monkeypatch.setattr(log_manager_module, "free_bytes", lambda path: (0, 1 << 30))
    with capture_logs() as logs:
        with disk(monkeypatch, data):
            for _ in range(20):
                with pytest.raises(LogDirError):
                    log.append(make_batch(3), leader_epoch=0)
            manager.tick()  # housekeeping on a full disk: no exception, no traceback
            manager.tick()
            assert manager.health.state == "full"
        manager.tick()
        assert manager.health.state == "full"  # writable, but not the margin of free space yet
        monkeypatch.setattr(log_manager_module, "free_bytes", lambda path: (1 << 30, 1 << 31))
        manager.tick()
    events = [e["event"] for e in logs if e["event"].startswith("log_dir.")]
    assert events == ["log_dir.full", "log_dir.online"]
    full = next(e for e in logs if e["event"] == "log_dir.full")
    assert full["data_dir"] == str(data) and full["log_level"] == "error"
    assert told == ["full", "online"]
    assert not any("exception" in e or e["log_level"] == "critical" for e in logs)
    assert not list(data.rglob("*.tmp"))  # no half-written checkpoint left behind
    log.append(make_batch(3), leader_epoch=0)
    assert log.log_end_offset == 9
    manager.close()


def test_a_failing_disk_stays_failed_until_a_probe_write_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    manager = LogManager(data, _config())
    log = manager.create("t", 0)
    with capture_logs() as logs:
        with disk(monkeypatch, data, code=errno.EROFS):
            with pytest.raises(LogDirError) as info:
                log.append(make_batch(3), leader_epoch=0)
            assert not info.value.full
            # an ENOSPC afterwards does not make a failed dir "full"
            manager.tick()
            assert manager.health.state == "failed"
        manager.tick()  # the probe file is written and fsynced: back online
    assert manager.health.state == "online"
    assert [e["event"] for e in logs if e["event"].startswith("log_dir.")] == ["log_dir.failed", "log_dir.online"]
    log.append(make_batch(3), leader_epoch=0)
    manager.close()
