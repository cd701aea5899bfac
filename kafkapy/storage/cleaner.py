"""Log compaction (cleanup.policy=compact): keep the latest record per key.

`compact(log, now_ms)` works in two phases:
  1. build (no lock; may run in a worker thread): read the closed, cleanable
     segments, build a key -> latest offset map, and write each cleaned
     segment to `<base>.log.cleaned` (+ indexes), fsync, rename to `.swap`;
  2. commit (`replace_segments`, see retention.py; under the log's lock,
     brief): for each cleaned segment whose source is still live, rename
     the old files to `.deleted`, the `.swap` files to live names, and
     publish a new segment list snapshot.
Appends to the active segment continue during phase 1; phase 2 only swaps
references. A crash mid-swap is finished on load (log_loader.py).

Offsets are preserved: a rewritten batch keeps its baseOffset and its
lastOffsetDelta (so producer sequence information survives); gaps are fine.

Per-record work lives here and only here. Limitations (simple but correct for
non-transactional data):
  * transactional and control batches are copied verbatim, never cleaned
    (aborted data is not removed, markers are never dropped);
  * a batch left with no records is dropped (Kafka keeps an empty batch to
    preserve idempotent-producer state);
  * segments are cleaned one-to-one (no merging of small cleaned segments);
  * the offset map is built over all cleanable segments each run, in memory
    (Kafka bounds it by log.cleaner.dedupe.buffer.size);
  * tombstone expiry uses the segment's last-modified time (pre-KIP-534 rule).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from kafkapy.protocol.records import (
    TIMESTAMP_TYPE_MASK,
    Record,
    build_batch,
    compute_crc,
    iter_records,
    read_batch_header,
)
from kafkapy.storage.config import LogConfig
from kafkapy.storage.segment import LogSegment

log = structlog.get_logger(__name__)

_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_MAX_UNCOMPRESSED = 256 * 1024 * 1024


@dataclass(slots=True)
class CleanResult:
    segments_cleaned: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    aborted: bool = False
    seconds: float = 0.0  # the run's wall time


class CleanableLog(Protocol):
    """What compaction needs of a partition log (PartitionLog implements it)."""

    @property
    def directory(self) -> Path: ...

    @property
    def config(self) -> LogConfig: ...

    @property
    def segments(self) -> tuple[LogSegment, ...]: ...

    @property
    def cleaner_offset(self) -> int: ...

    def cleanable_segments(self, now: int) -> list[LogSegment]: ...

    def replace_segments(self, pairs: list[tuple[LogSegment, LogSegment]], *, cleaner_offset: int) -> int: ...


def _batch_records(data: bytes) -> list[Record]:
    return list(iter_records(data, _MAX_UNCOMPRESSED, check_crc=False))


def build_offset_map(segments: list[LogSegment]) -> dict[bytes, int]:
    """key -> offset of its latest record over `segments` (oldest first)."""
    latest: dict[bytes, int] = {}
    for seg in segments:
        for loc in seg.iter_batches():
            if loc.attributes & 0x30:  # transactional / control: not cleaned
                continue
            for rec in _batch_records(seg.read_bytes(loc.position, loc.size)):
                if rec.key is not None:
                    latest[rec.key] = rec.offset
    return latest


def _rewrite_batch(data: bytes, keep: list[Record]) -> bytes:
    """A batch holding only `keep`, same base offset and lastOffsetDelta."""
    h = read_batch_header(data)
    lat = bool(h.attributes & TIMESTAMP_TYPE_MASK)
    out = bytearray(
        build_batch(
            keep,
            base_offset=h.base_offset,
            compression=h.compression,
            producer_id=h.producer_id,
            producer_epoch=h.producer_epoch,
            base_sequence=h.base_sequence,
            partition_leader_epoch=h.partition_leader_epoch,
            timestamp_type=1 if lat else 0,
            base_timestamp=keep[0].timestamp if not lat else h.base_timestamp,
            max_timestamp=h.max_timestamp if lat else None,
        )
    )
    # Keep the original last offset (Kafka does, for producer sequences).
    _I32.pack_into(out, 23, h.last_offset_delta)
    _U32.pack_into(out, 17, compute_crc(out, 0, len(out)))
    return bytes(out)


def clean_segment(
    seg: LogSegment, offset_map: dict[bytes, int], *, drop_tombstones: bool, result: CleanResult
) -> LogSegment:
    """Write the cleaned copy of `seg` as `.cleaned` files and return it (open)."""
    cleaned = LogSegment(
        seg.directory,
        seg.base_offset,
        index_interval_bytes=seg.index_interval_bytes,
        max_index_bytes=seg.index.max_entries * seg.index.entry_size,
        suffix=".cleaned",
        create=True,
    )
    try:
        for loc in seg.iter_batches():
            data = seg.read_bytes(loc.position, loc.size)
            if loc.attributes & 0x30:
                cleaned.append(data, loc.last_offset, loc.max_timestamp, loc.last_offset)
                continue
            records = _batch_records(data)
            keep: list[Record] = []
            for rec in records:
                if rec.key is None or offset_map.get(rec.key) != rec.offset:
                    continue
                if rec.value is None and drop_tombstones:
                    result.tombstones_removed += 1
                    continue
                keep.append(rec)
            result.records_removed += len(records) - len(keep)
            if len(keep) == len(records):
                cleaned.append(data, loc.last_offset, loc.max_timestamp, loc.last_offset)
            elif keep:
                new = _rewrite_batch(data, keep)
                max_ts = struct.unpack_from(">q", new, 35)[0]
                cleaned.append(new, loc.last_offset, max_ts, loc.last_offset)
        cleaned.on_become_inactive()
        cleaned.flush()
    except BaseException:
        cleaned.delete_files()  # a full disk must not keep the half-written copy
        raise
    return cleaned


def compact(plog: CleanableLog, now_ms: int) -> CleanResult:
    """Compact the closed, cleanable segments of `plog` (see module docstring)."""
    began = time.perf_counter()
    result = CleanResult()
    segments = plog.cleanable_segments(now_ms)
    if not segments:
        return result
    offset_map = build_offset_map(segments)
    horizon = now_ms - plog.config.delete_retention_ms
    staged: list[tuple[LogSegment, LogSegment]] = []
    try:
        for seg in segments:
            drop = seg.last_modified_ms < horizon
            cleaned = clean_segment(seg, offset_map, drop_tombstones=drop, result=result)
            cleaned.set_last_modified_ms(seg.last_modified_ms)
            cleaned.rename_suffix(".swap")
            staged.append((seg, cleaned))
            result.bytes_before += seg.size
            result.bytes_after += cleaned.size
    except Exception:
        for _, cleaned in staged:
            cleaned.delete_files()
        raise
    swapped = plog.replace_segments(staged, cleaner_offset=segments[-1].next_offset)
    result.segments_cleaned = swapped
    result.aborted = swapped < len(staged)
    result.seconds = time.perf_counter() - began
    log.info(
        "cleaner.compacted",
        dir=str(plog.directory),
        segments=swapped,
        bytes_before=result.bytes_before,
        bytes_after=result.bytes_after,
        records_removed=result.records_removed,
        tombstones_removed=result.tombstones_removed,
    )
    return result


def dirty_ratio(plog: CleanableLog) -> float:
    """Share of closed-segment bytes written since the last compaction."""
    closed = plog.segments[:-1]
    total = sum(s.size for s in closed)
    if total == 0:
        return 0.0
    dirty = sum(s.size for s in closed if s.base_offset >= plog.cleaner_offset)
    return dirty / total
