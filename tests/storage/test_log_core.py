from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import OffsetOutOfRangeError
from kafkapy.storage.log import PartitionLog
from tests.storage.helpers import make_batch, parse_batches


def small_config(**kw: object) -> LogConfig:
    base = dict(segment_bytes=4096, index_interval_bytes=256)
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def read_all(log: PartitionLog, start: int = 0) -> list[tuple[int, int, int]]:
    out = []
    off = start
    while off < log.log_end_offset:
        data = log.read_bytes(off, 1 << 20)
        batches = parse_batches(data)
        assert batches, off
        out.extend(batches)
        off = batches[-1][1] + 1
    return out


def test_append_read_round_trip_across_rolls(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", small_config())
    expected = []
    for i in range(200):
        n = 1 + i % 5
        r = log.append(make_batch(n, pad=i % 50), leader_epoch=0)
        assert r.base_offset == (expected[-1][1] + 1 if expected else 0)
        assert r.last_offset == r.base_offset + n - 1
        expected.append((r.base_offset, r.last_offset))
    assert len(log.segments) > 5
    got = [(base, last) for base, last, _ in read_all(log)]
    assert got == expected
    # Every offset, including ones inside batches, reads from its batch.
    for base, last in expected[::7]:
        for off in (base, last):
            data = log.read_bytes(off, 1)
            assert parse_batches(data)[0][:2] == (base, last)
    log.close()
    log2 = PartitionLog(tmp_path / "t-0", small_config(), clean_shutdown=True)
    assert log2.log_end_offset == expected[-1][1] + 1
    assert [(base, last) for base, last, _ in read_all(log2)] == expected
    assert log2.segments_recovered == 0
    log2.close()


def test_read_max_bytes_and_min_one_message(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig())
    sizes = []
    for _ in range(5):
        b = make_batch(3, pad=300)
        sizes.append(len(b))
        log.append(b, leader_epoch=0)
    res = log.read(0, 10)
    assert res.size == sizes[0]  # first batch whole despite max_bytes
    res = log.read(0, 10, min_one_message=False)
    assert res.slices == []
    res = log.read(0, sizes[0] + 10)
    assert res.size == sizes[0] + 10  # partial tail, like Kafka
    assert len(parse_batches(res.slices[0].read_bytes())) == 1
    res = log.read(4, 1 << 20)
    assert parse_batches(log.read_bytes(4, 1 << 20))[0][0] == 3
    assert res.high_watermark == 15 and res.log_end_offset == 15
    # max_offset (high watermark) caps the data at a batch boundary.
    data = log.read_bytes(0, 1 << 20, max_offset=6)
    assert [b[0] for b in parse_batches(data)] == [0, 3]
    assert len(data) == sizes[0] + sizes[1]
    assert log.read(6, 100, max_offset=6).slices == []
    assert log.read(15, 100).slices == []
    with pytest.raises(OffsetOutOfRangeError):
        log.read(16, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    log.close()


def test_log_append_time(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig())
    r = log.append(make_batch(2, timestamp=5), leader_epoch=3, log_append_time_ms=12345)
    assert r.log_append_time == 12345
    data = log.read_bytes(0, 1000)
    import struct

    import crc32c

    assert struct.unpack_from(">q", data, 35)[0] == 12345
    assert struct.unpack_from(">h", data, 21)[0] & 0x08
    assert struct.unpack_from(">i", data, 12)[0] == 3
    assert struct.unpack_from(">I", data, 17)[0] == crc32c.crc32c(data[21:])
    log.close()


def test_truncated_tail_repaired_on_recovery(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, small_config(segment_bytes=1 << 20))
    for _ in range(20):
        log.append(make_batch(2, pad=40), leader_epoch=0)
    leo = log.log_end_offset
    seg_path = log.active_segment.log_path
    log.flush()
    # Simulate a crash: no close, and a torn write at the tail.
    size = seg_path.stat().st_size
    tail = make_batch(2)
    with open(seg_path, "ab") as f:
        f.write(tail[: len(tail) // 2])
    log2 = PartitionLog(d, small_config(segment_bytes=1 << 20))
    assert log2.log_end_offset == leo
    assert seg_path.stat().st_size == size
    assert log2.append(make_batch(1), leader_epoch=0).base_offset == leo
    log2.close()


def test_garbage_and_bad_crc_truncated(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, small_config(segment_bytes=1 << 20))
    for _ in range(10):
        log.append(make_batch(1, pad=10), leader_epoch=0)
    seg_path = log.active_segment.log_path
    good = seg_path.stat().st_size
    log.append(make_batch(1, pad=10), leader_epoch=0)
    # Corrupt one byte of the last batch's records: CRC must catch it.
    with open(seg_path, "r+b") as f:
        f.seek(good + 70)
        b = f.read(1)
        f.seek(good + 70)
        f.write(bytes([b[0] ^ 0xFF]))
        f.seek(0, 2)
        f.write(os.urandom(500))
    log2 = PartitionLog(d, small_config(segment_bytes=1 << 20))
    assert log2.log_end_offset == 10
    assert seg_path.stat().st_size == good
    log2.close()


def test_corrupt_index_rebuilt(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    cfg = small_config(segment_bytes=1 << 20, index_interval_bytes=100)
    log = PartitionLog(d, cfg)
    for i in range(100):
        log.append(make_batch(1 + i % 3, pad=30), leader_epoch=0)
    expected = read_all(log)
    idx = log.active_segment.index.path
    entries = len(log.active_segment.index)
    assert entries > 10
    log.close()
    idx.write_bytes(os.urandom(8 * entries))
    log2 = PartitionLog(d, cfg, clean_shutdown=True)
    assert read_all(log2) == expected
    assert len(log2.active_segment.index) == entries
    log2.close()
    idx.write_bytes(b"\x00\x01\x02")  # not a multiple of the entry size
    log3 = PartitionLog(d, cfg, clean_shutdown=True)
    assert read_all(log3) == expected
    log3.close()


def test_crash_without_close_or_flush_loses_nothing(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, small_config())
    offsets = [log.append(make_batch(3, pad=20), leader_epoch=0).last_offset for _ in range(100)]
    # No flush, no close: os.write data lives in the page cache.
    log2 = PartitionLog(d, small_config())
    assert log2.log_end_offset == offsets[-1] + 1
    assert len(read_all(log2)) == 100
    assert log2.segments_recovered >= 1
    log2.close()


def test_unclean_open_recovers_only_after_recovery_point(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog(d, small_config())
    for _ in range(100):
        log.append(make_batch(3, pad=20), leader_epoch=0)
    log.flush()
    nseg = len(log.segments)
    for _ in range(3):
        log.append(make_batch(3, pad=20), leader_epoch=0)
    log2 = PartitionLog(d, small_config())
    assert 1 <= log2.segments_recovered < nseg
    assert log2.log_end_offset == 309
    log2.close()


def test_partial_recovery_from_recovery_point(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    cfg = small_config(segment_bytes=1 << 20, index_interval_bytes=200)
    log = PartitionLog(d, cfg)
    for i in range(50):
        log.append(make_batch(2, pad=60, timestamp=100 + i), leader_epoch=0)
    log.flush()
    entries = log.active_segment.index.entries()
    for i in range(50, 60):
        log.append(make_batch(2, pad=60, timestamp=100 + i), leader_epoch=0)
    path = log.active_segment.log_path
    with open(path, "ab") as f:
        f.write(b"\x00" * 100)  # torn tail after the recovery point
    log2 = PartitionLog(d, cfg)
    seg = log2.active_segment
    assert log2.log_end_offset == 120
    assert seg.index.entries()[: len(entries)] == entries
    seg_ref = log2.segments[0]
    full = list(seg_ref.index.entries())
    full_t = list(seg_ref.time_index.entries())
    seg_ref.rebuild_indexes()
    assert seg_ref.index.entries() == full
    assert seg_ref.time_index.entries() == full_t
    assert seg_ref.max_timestamp == 159
    r = log2.offset_for_timestamp(155)
    assert r is not None and r.offset == 110
    log2.close()
