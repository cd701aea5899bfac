from __future__ import annotations

from pathlib import Path

import pytest

from kafkapy.protocol.records import build_batch, iter_records
from kafkapy.storage.config import LogConfig
from kafkapy.storage.epoch_cache import LeaderEpochCache
from kafkapy.storage.errors import InvalidRecordsError, OffsetOutOfRangeError, RecordTooLargeError
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.segment import now_ms
from tests.storage.helpers import make_batch, parse_batches


def cfg(**kw: object) -> LogConfig:
    base: dict[str, object] = dict(segment_bytes=2048, index_interval_bytes=128)
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def all_records(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    for seg in log.segments:
        for loc in seg.iter_batches():
            data = seg.read_bytes(loc.position, loc.size)
            out.extend((r.offset, r.key, r.value) for r in iter_records(data))
    return out


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", cfg())
    # Batch i holds 3 records with timestamps 100*i + 0, 10, 20.
    for i in range(60):
        log.append(make_batch(3, timestamps=[100 * i, 100 * i + 10, 100 * i + 20], pad=20), leader_epoch=0)
    assert len(log.segments) > 3
    for ts, expect in [
        (0, (0, 0)),
        (5, (1, 10)),
        (10, (1, 10)),
        (21, (3, 100)),
        (2515, (77, 2520)),
        (5920, (179, 5920)),
    ]:
        r = log.offset_for_timestamp(ts)
        assert r is not None and (r.offset, r.timestamp) == expect, ts
    assert log.offset_for_timestamp(5921) is None
    m = log.list_offset(-3)
    assert m is not None and (m.offset, m.timestamp) == (179, 5920)
    assert log.list_offset(-2).offset == 0  # type: ignore[union-attr]
    assert log.list_offset(-1).offset == 180  # type: ignore[union-attr]
    # Reopen (clean): timestamps come from the time indexes.
    log.close()
    log = PartitionLog(tmp_path / "t-0", cfg(), clean_shutdown=True)
    assert log.offset_for_timestamp(2515).offset == 77  # type: ignore[union-attr]
    assert log.list_offset(-3).offset == 179  # type: ignore[union-attr]
    log.close()


def test_retention_by_time_and_size(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", cfg(retention_ms=1000, file_delete_delay_ms=0))
    for i in range(40):
        log.append(make_batch(2, timestamp=10_000 + i * 100, pad=100), leader_epoch=0)
    nseg = len(log.segments)
    assert nseg > 4
    # Horizon 12_000: segments whose max timestamp < 12_000 go.
    deleted = log.apply_retention(13_000)
    assert deleted > 0
    assert all(s.largest_timestamp >= 12_000 for s in log.segments[:-1])
    first = log.segments[0].base_offset
    assert log.log_start_offset == first
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    assert parse_batches(log.read_bytes(first, 100))[0][0] == first
    # Everything expired: the active segment stays.
    log.apply_retention(10**9)
    assert len(log.segments) == 1
    assert log.purge_deleted(now_ms() + 1) > 0
    assert not list(log.directory.glob("*.deleted"))
    log.close()

    log = PartitionLog(tmp_path / "u-0", cfg(retention_bytes=5000, retention_ms=-1))
    for _ in range(40):
        log.append(make_batch(2, pad=100), leader_epoch=0)
    log.apply_retention(now_ms())
    assert log.size - log.active_segment.size <= 5000
    assert log.size > 5000 - 2048
    log.close()


def test_delete_records_persisted(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, cfg())
    for _ in range(50):
        log.append(make_batch(2, pad=50), leader_epoch=0)
    nseg = len(log.segments)
    assert log.delete_records_before(41) == 41
    assert len(log.segments) < nseg
    assert log.segments[0].base_offset <= 41
    with pytest.raises(OffsetOutOfRangeError):
        log.read(40, 100)
    assert parse_batches(log.read_bytes(41, 10))[0][:2] == (40, 41)  # batch holding 41
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(101)
    log.close()
    log = PartitionLog(d, cfg(), clean_shutdown=True)
    assert log.log_start_offset == 41
    log.close()


def test_leader_epoch_cache(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, cfg())
    log.append(make_batch(5), leader_epoch=0)
    log.append(make_batch(5), leader_epoch=0)
    log.append(make_batch(5), leader_epoch=2)
    log.append(make_batch(5), leader_epoch=5)
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(0, 0), (2, 10), (5, 15)]
    assert log.end_offset_for_epoch(5) == (5, 20)
    assert log.end_offset_for_epoch(0) == (0, 10)
    assert log.end_offset_for_epoch(1) == (0, 10)
    assert log.end_offset_for_epoch(3) == (2, 15)
    assert log.end_offset_for_epoch(6) == (-1, -1)
    log.truncate_to(12)
    assert log.log_end_offset == 10  # the straddling batch goes whole
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(0, 0)]
    log.append(make_batch(1), leader_epoch=7)
    log.close()
    cache = LeaderEpochCache(d)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(0, 0), (7, 10)]
    # Unclean restart without the checkpoint: rebuilt from batch headers.
    (d / "leader-epoch-checkpoint").unlink()
    (d / "partition-offsets.checkpoint").unlink()
    log = PartitionLog(d, cfg())
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(0, 0), (7, 10)]
    log.close()


def test_follower_append_and_truncation(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", cfg(), auto_high_watermark=False)
    r = log.append_as_follower(make_batch(3, base_offset=100, leader_epoch=4))
    assert (r.base_offset, r.last_offset) == (100, 102)
    assert log.log_end_offset == 103 and log.high_watermark == 0
    log.high_watermark = 101
    assert log.high_watermark == 101
    data = log.read_bytes(100, 1000, max_offset=log.high_watermark)
    assert data == b""  # the batch straddles the HW
    log.high_watermark = 103
    assert parse_batches(log.read_bytes(100, 1000, max_offset=103))[0][:2] == (100, 102)
    assert log.latest_epoch == 4
    log.truncate_fully_and_start_at(500)
    assert log.log_start_offset == log.log_end_offset == 500
    log.close()


def test_validate_records(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", cfg(max_message_bytes=500))
    b = make_batch(2)
    s = log.validate_records(b + make_batch(3))
    assert (s.batch_count, s.record_count) == (2, 5)
    bad = bytearray(b)
    bad[-1] ^= 1
    with pytest.raises(InvalidRecordsError):
        log.validate_records(bad)
    with pytest.raises(InvalidRecordsError):
        log.validate_records(b[:-3])
    with pytest.raises(RecordTooLargeError):
        log.validate_records(make_batch(3, pad=500))
    log.close()


def test_compaction_keeps_latest_per_key_and_offsets(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    c = cfg(cleanup_policy="compact", segment_bytes=1024, delete_retention_ms=0, file_delete_delay_ms=0)
    log = PartitionLog(d, c)
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    off = 0
    for i in range(120):
        key = b"key-%d" % (i % 7)
        value = None if i % 23 == 22 else b"value-%d" % i
        b = bytearray(build_batch([(key, value, [], 1000 + i), (b"other-%d" % (i % 3), b"o%d" % i, [], 1000 + i)]))
        r = log.append(b, leader_epoch=0)
        latest[key] = (r.base_offset, value)
        latest[b"other-%d" % (i % 3)] = (r.base_offset + 1, b"o%d" % i)
        off = r.last_offset
    before = all_records(log)
    active_base = log.active_segment.base_offset
    size_before = log.size
    res = log.compact(now_ms() + 10_000)
    assert res.segments_cleaned == len(log.segments) - 1
    assert log.size < size_before
    after = all_records(log)
    closed = [r for r in after if r[0] < active_base]
    # Closed segments: at most the latest record per key, at its original offset.
    keys_seen = [k for _, k, _ in closed]
    assert len(keys_seen) == len(set(keys_seen))
    latest_closed: dict[bytes | None, tuple[int, bytes | None]] = {}
    for o, k, v in before:
        if o < active_base:
            latest_closed[k] = (o, v)
    live = {k: ov for k, ov in latest_closed.items() if ov[1] is not None}
    assert {k: (o, v) for o, k, v in closed} == live  # tombstones expired
    # The active segment is untouched; nothing after it lost.
    assert [r for r in after if r[0] >= active_base] == [r for r in before if r[0] >= active_base]
    assert log.log_end_offset == off + 1
    # Reads by offset still work across the gaps.
    for o, _, _ in closed[:5]:
        assert parse_batches(log.read_bytes(o, 10))[0][1] >= o
    log.purge_deleted(force=True)
    log.close()
    log = PartitionLog(d, c)
    assert all_records(log) == after
    assert not list(d.glob("*.swap")) and not list(d.glob("*.cleaned"))
    log.close()


def test_compaction_interrupted_swap_completes_on_load(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    c = cfg(cleanup_policy="compact", segment_bytes=1024)
    log = PartitionLog(d, c)
    for i in range(40):
        log.append(bytearray(build_batch([(b"k%d" % (i % 2), b"v" * 50, [], 1000)])), leader_epoch=0)
    from kafkapy.storage.cleaner import CleanResult, build_offset_map, clean_segment

    segs = log.cleanable_segments(now_ms())
    m = build_offset_map(segs)
    cleaned = clean_segment(segs[0], m, drop_tombstones=False, result=CleanResult())
    cleaned.rename_suffix(".swap")
    cleaned.close()
    log.flush()
    log.close()
    assert list(d.glob("*.log.swap"))
    log = PartitionLog(d, c, clean_shutdown=True)
    assert not list(d.glob("*.swap"))
    assert log.segments[0].size < segs[0].size
    assert log.log_end_offset == 40
    log.close()
