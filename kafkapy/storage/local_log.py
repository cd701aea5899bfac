"""LocalLog: the ordered segment files of one partition directory.

Owns the segment list, the log end offset, the recovery point, the
per-segment aborted-transaction indexes (txn_index.py) and the segments
waiting for deletion. It appends to the active segment (rolling a new one
when needed), finds the file region a read starts at, truncates, flushes and
closes. Log start offset, high watermark, producer state and the leader
epoch cache belong to PartitionLog (log.py), which drives this class.

Concurrency: called from one thread (the broker's event loop), except that a
compaction thread swaps cleaned segments in (retention.py). The segment list
is a copy-on-write snapshot (`view`), so readers never lock; every change of
the list takes `lock`.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from kafkapy.storage.checkpoint import fsync_dir
from kafkapy.storage.config import LogConfig
from kafkapy.storage.producer_state import CompletedTxn
from kafkapy.storage.segment import BatchLocation, FileSlice, LogSegment, now_ms
from kafkapy.storage.txn_index import AbortedTxn, TransactionIndex, txn_index_path

log = structlog.get_logger(__name__)

DELETED_SUFFIX = ".deleted"
INT32_MAX = (1 << 31) - 1


@dataclass(slots=True)
class OffsetAndTimestamp:
    offset: int
    timestamp: int
    leader_epoch: int = -1


@dataclass(slots=True, frozen=True)
class SegmentView:
    """Immutable snapshot of the segment list (copy-on-write)."""

    bases: tuple[int, ...]
    segments: tuple[LogSegment, ...]


@dataclass(slots=True)
class _PendingDelete:
    segment: LogSegment
    due_ms: int


def open_segment(
    directory: Path, config: LogConfig, base_offset: int, *, suffix: str = "", create: bool = False
) -> LogSegment:
    return LogSegment(
        directory,
        base_offset,
        index_interval_bytes=config.index_interval_bytes,
        max_index_bytes=config.segment_index_bytes,
        suffix=suffix,
        create=create,
    )


class LocalLog:
    """The segment list of one partition. See the module docstring."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: Sequence[LogSegment],
        *,
        recovery_point: int,
        sync: bool,
        on_roll: Callable[[int], object],
    ) -> None:
        self.directory = directory
        self.config = config
        self.lock = threading.RLock()
        self.view = SegmentView(tuple(s.base_offset for s in segments), tuple(segments))
        self.log_end_offset = segments[-1].next_offset
        self.recovery_point = recovery_point
        self.txn_indexes: dict[int, TransactionIndex] = {}
        self._sync = sync
        # Called with the new active segment's base offset after a roll.
        self._on_roll = on_roll
        self._pending_deletes: list[_PendingDelete] = []
        self._max_pos_cache: tuple[int, int, int | None] | None = None
        # files were created, renamed or removed since the directory was last fsynced
        self.dir_dirty = True

    # -- the segment list ------------------------------------------------------------

    def new_segment(self, base_offset: int, *, suffix: str = "", create: bool = False) -> LogSegment:
        return open_segment(self.directory, self.config, base_offset, suffix=suffix, create=create)

    def replace_view(self, segments: tuple[LogSegment, ...]) -> None:
        """Publish a new segment list (hold `lock`)."""
        self.dir_dirty = True
        self.view = SegmentView(tuple(s.base_offset for s in segments), segments)
        self._max_pos_cache = None

    @property
    def active_segment(self) -> LogSegment:
        return self.view.segments[-1]

    @property
    def size(self) -> int:
        return sum(s.size for s in self.view.segments)

    # -- append and roll -------------------------------------------------------------

    def append(self, buf: memoryview, first: int, last: int, max_ts: int, off_max: int) -> None:
        """Write batches [first, last] to the active segment, rolling first if it is full or old."""
        seg = self.view.segments[-1]
        now = now_ms()
        if seg.size > 0 and (
            seg.size + len(buf) > self.config.segment_bytes
            or now - seg.created_ms >= self.config.segment_ms
            or last - seg.base_offset > INT32_MAX
            or seg.index_full()
        ):
            seg = self.roll(first)
        seg.append(buf, last, max_ts, off_max)

    def roll(self, base_offset: int | None = None) -> LogSegment:
        """Close the active segment and start a new one at `base_offset` (default LEO)."""
        base = self.log_end_offset if base_offset is None else base_offset
        with self.lock:
            old = self.view.segments[-1]
            if old.size == 0 and old.base_offset == base:
                return old
            # The new file first: if the disk refuses it, the old segment stays active as it was.
            new = self.new_segment(base, create=True)
            old.on_become_inactive()
            old.index.close()
            old.time_index.close()
            if old.size == 0:
                # An empty active segment is replaced rather than kept.
                segs = self.view.segments[:-1]
                old.delete_files()
            else:
                segs = self.view.segments
            segs = segs + (new,)
            self.dir_dirty = True
            self.view = SegmentView(tuple(s.base_offset for s in segs), segs)
        try:
            self._on_roll(base)
        except OSError as exc:
            # the producer-state snapshot is a shortcut for recovery, which replays from an older one
            log.warning("log.roll_snapshot_failed", dir=str(self.directory), base_offset=base, error=str(exc))
        log.info("log.roll", dir=str(self.directory), base_offset=base)
        return new

    # -- read ------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, upper: int, min_one_message: bool) -> FileSlice | None:
        """The file region starting at the batch holding `offset`, ending before `upper`."""
        leo = self.log_end_offset
        view = self.view
        i = max(bisect_right(view.bases, offset) - 1, 0)
        count = len(view.segments)
        while i < count:
            seg = view.segments[i]
            if seg.base_offset >= upper:
                break
            max_pos = None
            if upper < leo and (i + 1 == count or view.bases[i + 1] > upper):
                max_pos = self._position_of(seg, upper)
            sl = seg.read(offset, max_bytes, max_pos, min_one_message)
            if sl is not None:
                return sl
            i += 1
        return None

    def _position_of(self, seg: LogSegment, offset: int) -> int | None:
        """File position in `seg` of the batch holding `offset` (cached for the HW)."""
        cached = self._max_pos_cache
        if cached is not None and cached[0] == offset and cached[1] == seg.base_offset:
            return cached[2]
        loc = seg.translate_offset(offset)
        pos = loc.position if loc is not None else None
        self._max_pos_cache = (offset, seg.base_offset, pos)
        return pos

    # -- timestamps ------------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int, log_start_offset: int) -> OffsetAndTimestamp | None:
        """First record with timestamp >= `timestamp` at or after `log_start_offset`."""
        lso = log_start_offset
        for seg in self.view.segments:
            if seg.size == 0 or seg.largest_timestamp < timestamp:
                continue
            loc = seg.find_batch_by_timestamp(timestamp, lso)
            if loc is None:
                continue
            found = _record_at_or_after(seg, loc, lambda off, ts: ts >= timestamp and off >= lso)
            if found is not None:
                return found
        return None

    def max_timestamp_offset(self, log_start_offset: int) -> OffsetAndTimestamp | None:
        """The record with the largest timestamp (ListOffsets -3)."""
        best: LogSegment | None = None
        for seg in self.view.segments:
            seg.ensure_indexes()
            if seg.size and seg.max_timestamp >= 0 and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None:
            return None
        target = best.max_timestamp
        loc = best.find_batch_by_timestamp(target, log_start_offset)
        if loc is None:
            return None
        return _record_at_or_after(best, loc, lambda off, ts: ts >= target)

    # -- truncation ------------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Drop everything at or after `offset` (< log end offset)."""
        with self.lock:
            view = self.view
            keep = [s for s in view.segments if s.base_offset < offset]
            drop = [s for s in view.segments if s.base_offset >= offset]
            if not keep:
                new = self.new_segment(offset, create=True) if all(s.base_offset != offset for s in drop) else None
                if new is None:
                    first = drop.pop(0)
                    first.truncate_to(offset)
                    new = first
                keep = [new]
            else:
                keep[-1].truncate_to(offset)
            for s in drop:
                self.schedule_delete(s)
            segs = tuple(keep)
            self.replace_view(segs)
            self.log_end_offset = max(segs[-1].next_offset, segs[-1].base_offset)
            self.recovery_point = min(self.recovery_point, self.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and start an empty one at `offset`."""
        with self.lock:
            for s in self.view.segments:
                self.schedule_delete(s)
            self.replace_view((self.new_segment(offset, create=True),))
            self.log_end_offset = offset
            self.recovery_point = offset

    # -- deletion --------------------------------------------------------------------

    def schedule_delete(self, seg: LogSegment) -> None:
        """Rename to .deleted now; close and unlink after file.delete.delay.ms.

        The delay keeps in-flight sendfile()s of the old fds working.
        """
        self.dir_dirty = True
        try:
            seg.rename_suffix(DELETED_SUFFIX)
        except FileNotFoundError:
            pass
        idx = self.txn_indexes.pop(seg.base_offset, None)
        if idx is not None:
            idx.delete()
        else:
            txn_index_path(self.directory, seg.base_offset).unlink(missing_ok=True)
        self.defer_delete(seg)

    def defer_delete(self, seg: LogSegment) -> None:
        """Unlink `seg` (already renamed) after file.delete.delay.ms."""
        self._pending_deletes.append(_PendingDelete(seg, now_ms() + self.config.file_delete_delay_ms))

    def purge_deleted(self, now: int | None = None, *, force: bool = False) -> int:
        """Unlink segments whose deletion delay has passed."""
        now = now_ms() if now is None else now
        with self.lock:
            due = [p for p in self._pending_deletes if force or p.due_ms <= now]
            self._pending_deletes = [p for p in self._pending_deletes if not (force or p.due_ms <= now)]
        for p in due:
            p.segment.delete_files()
        if due:
            self.dir_dirty = True
        return len(due)

    # -- aborted-transaction indexes ---------------------------------------------------

    def txn_index(self, base_offset: int) -> TransactionIndex:
        idx = self.txn_indexes.get(base_offset)
        if idx is None:
            self.dir_dirty = True  # its file may be new
            idx = self.txn_indexes[base_offset] = TransactionIndex(
                txn_index_path(self.directory, base_offset), base_offset, self._sync
            )
        return idx

    def index_aborted(self, segment_base: int, completed: list[CompletedTxn]) -> None:
        for c in completed:
            if c.aborted:
                self.txn_index(segment_base).append(
                    AbortedTxn(c.producer_id, c.first_offset, c.last_offset, c.last_stable_offset)
                )

    def load_txn_indexes(self) -> None:
        for base in self.view.bases:
            if txn_index_path(self.directory, base).exists():
                self.txn_index(base)

    def aborted_transactions(self, fetch_offset: int, upper: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper)."""
        out: list[AbortedTxn] = []
        if not self.txn_indexes:
            return out
        view = self.view
        for i in range(max(bisect_right(view.bases, fetch_offset) - 1, 0), len(view.bases)):
            idx = self.txn_indexes.get(view.bases[i])
            if idx is not None and idx.collect(fetch_offset, upper, out):
                break
        return out

    # -- flush and close -------------------------------------------------------------

    def flush(self) -> None:
        """fsync every segment holding offsets >= the recovery point; recovery point = LEO."""
        leo = self.log_end_offset
        view = self.view
        self.persist_txn_indexes()
        for i, seg in enumerate(view.segments):
            nxt = view.bases[i + 1] if i + 1 < len(view.segments) else None
            if nxt is not None and nxt <= self.recovery_point:
                continue
            seg.flush()
        self._sync_dir()
        self.recovery_point = leo

    def _sync_dir(self) -> None:
        """fsync the directory if files came or went since the last time (new segments' names)."""
        if self._sync and self.dir_dirty:
            self.dir_dirty = False
            try:
                fsync_dir(self.directory)
            except OSError:
                self.dir_dirty = True
                raise

    def flush_rolled_segments(self) -> bool:
        """fsync segments closed since the last flush; recovery point = active segment's base."""
        view = self.view
        active_base = view.bases[-1]
        if self.recovery_point >= active_base:
            return False
        self.persist_txn_indexes()
        for i, seg in enumerate(view.segments[:-1]):
            if view.bases[i + 1] > self.recovery_point:
                seg.flush()
        self._sync_dir()
        self.recovery_point = active_base
        return True

    def persist_txn_indexes(self) -> None:
        """Write the aborted-transaction entries a full disk kept in memory only (raises OSError while
        it still refuses), so that the recovery point never passes an entry not on disk."""
        for idx in self.txn_indexes.values():
            if idx.dirty:
                idx.persist()

    def close_segments(self, *, finish_active: bool) -> None:
        """Close every segment file (hold `lock`); `finish_active` first records the active
        segment's final max timestamp in its time index, as a roll does."""
        if finish_active:
            self.view.segments[-1].on_become_inactive()
        for seg in self.view.segments:
            seg.close()


def _record_at_or_after(
    seg: LogSegment, loc: BatchLocation, pred: Callable[[int, int], bool]
) -> OffsetAndTimestamp | None:
    """Decode the batches from `loc` on (per-record work, not a hot path)."""
    from kafkapy.protocol.records import iter_records

    for b in seg.iter_batches(loc.position):
        data = seg.read_bytes(b.position, b.size)
        if b.attributes & 0x08:  # LogAppendTime: every record has maxTimestamp
            for off in range(b.base_offset, b.last_offset + 1):
                if pred(off, b.max_timestamp):
                    return OffsetAndTimestamp(off, b.max_timestamp, b.leader_epoch)
            continue
        for rec in iter_records(data, check_crc=False):
            if pred(rec.offset, rec.timestamp):
                return OffsetAndTimestamp(rec.offset, rec.timestamp, b.leader_epoch)
    return None
