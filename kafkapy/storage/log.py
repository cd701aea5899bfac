"""PartitionLog: the log of one partition directory `<data_dir>/<topic>-<partition>/`.

Owns the ordered segments, offsets (log start, high watermark, log end,
recovery point, last stable offset), the leader epoch cache, producer
state, the aborted-transaction indexes (txn_index.py), retention,
DeleteRecords and the per-partition state checkpoint
(`partition-offsets.checkpoint`).

Concurrency: append/read/truncate/retention/flush are called from one thread
(the broker's event loop). The segment list is a copy-on-write snapshot, so
readers never lock; mutations of the list take `_lock`, which lets a
compaction thread (see cleaner.py) swap cleaned segments in atomically while
the loop keeps appending to the active segment.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from kafkapy.storage._batch import (
    PREFIX,
    RecordsSummary,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_records,
)
from kafkapy.storage.checkpoint import fsync_dir, read_checkpoint, write_checkpoint
from kafkapy.storage.config import LogConfig
from kafkapy.storage.epoch_cache import LeaderEpochCache
from kafkapy.storage.errors import CorruptLogError, LogClosedError, OffsetOutOfRangeError, StorageError
from kafkapy.storage.producer_state import (
    BATCH_PREFIX,
    CONTROL_MASK,
    DEFAULT_EXPIRATION_MS,
    TRANSACTIONAL_MASK,
    CompletedTxn,
    ProducerStateManager,
    Staged,
    read_marker,
)
from kafkapy.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIMEINDEX_SUFFIX,
    BatchLocation,
    FileSlice,
    LogSegment,
    now_ms,
)
from kafkapy.storage.txn_index import TXNINDEX_SUFFIX, AbortedTxn, TransactionIndex, txn_index_path

if TYPE_CHECKING:
    from kafkapy.storage.cleaner import CleanResult

log = structlog.get_logger(__name__)

STATE_FILE = "partition-offsets.checkpoint"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
INT32_MAX = (1 << 31) - 1

# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3


@dataclass(slots=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the batches were stamped LogAppendTime
    log_start_offset: int
    record_count: int = 0
    duplicate: bool = False  # an idempotent retry: the original offsets, nothing written
    completed: list[CompletedTxn] | None = None  # transactions closed by markers in this append


@dataclass(slots=True)
class ReadResult:
    """What a fetch gets: file regions to sendfile plus the partition offsets."""

    slices: list[FileSlice]
    high_watermark: int
    log_start_offset: int
    log_end_offset: int

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slices)


@dataclass(slots=True)
class OffsetAndTimestamp:
    offset: int
    timestamp: int
    leader_epoch: int = -1


@dataclass(slots=True, frozen=True)
class _SegmentView:
    """Immutable snapshot of the segment list (copy-on-write)."""

    bases: tuple[int, ...]
    segments: tuple[LogSegment, ...]


@dataclass(slots=True)
class _PendingDelete:
    segment: LogSegment
    due_ms: int


@dataclass(slots=True)
class _State:
    log_start_offset: int = 0
    recovery_point: int = 0
    high_watermark: int = 0
    cleaner_offset: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """`<topic>-<partition>` -> (topic, partition), None for other names."""
    topic, sep, part = name.rpartition("-")
    if not sep or not topic or not part.isdigit():
        return None
    return topic, int(part)


class PartitionLog:
    """One partition's log. See the module docstring for concurrency."""

    def __init__(
        self,
        directory: Path | str,
        config: LogConfig | None = None,
        *,
        clean_shutdown: bool = False,
        auto_high_watermark: bool = True,
        sync: bool = True,
        create: bool = True,
        producer_id_expiration_ms: int = DEFAULT_EXPIRATION_MS,
    ) -> None:
        self.directory = Path(directory)
        parsed = parse_partition_dir(self.directory.name)
        self.topic, self.partition = parsed if parsed else (self.directory.name, 0)
        self.config = config or LogConfig()
        self.auto_high_watermark = auto_high_watermark
        # Called after every append (leader or follower) with this log; replication sets it.
        self.append_listener: Callable[[PartitionLog], None] | None = None
        self._sync = sync
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._pending_deletes: list[_PendingDelete] = []
        self._closed = False
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms()
        self._max_pos_cache: tuple[int, int, int | None] | None = None
        self.segments_recovered = 0
        if not self.directory.is_dir():
            if not create:
                raise StorageError(f"no such partition directory {self.directory}")
            self.directory.mkdir(parents=True)
        self.epoch_cache = LeaderEpochCache(self.directory, sync=sync)
        self.producer_state = ProducerStateManager(self.directory, expiration_ms=producer_id_expiration_ms, sync=sync)
        self._txn_indexes: dict[int, TransactionIndex] = {}
        self._load(clean_shutdown)

    # -- loading ---------------------------------------------------------------

    def _new_segment(self, base_offset: int, *, suffix: str = "", create: bool = False) -> LogSegment:
        return LogSegment(
            self.directory,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_bytes=self.config.segment_index_bytes,
            suffix=suffix,
            create=create,
        )

    def _read_state(self) -> _State:
        state = _State()
        try:
            lines = read_checkpoint(self.directory / STATE_FILE) or []
            for ln in lines:
                key, value = ln.split()
                if key in ("log_start_offset", "recovery_point", "high_watermark", "cleaner_offset"):
                    setattr(state, key, int(value))
                else:
                    state.extra[key] = int(value)
        except (CorruptLogError, ValueError):
            log.warning("log.state_corrupt", dir=str(self.directory))
            return _State()
        return state

    def _complete_swaps_and_cleanup(self) -> set[int]:
        """Finish interrupted compaction swaps, drop temp and deleted files.

        Returns the base offsets of segments completed from .swap files.
        """
        for name in os.listdir(self.directory):
            if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, ".tmp")):
                (self.directory / name).unlink(missing_ok=True)
        names = os.listdir(self.directory)
        swapped: set[int] = set()
        complete = {n[: -len(LOG_SUFFIX + SWAP_SUFFIX)] for n in names if n.endswith(LOG_SUFFIX + SWAP_SUFFIX)}
        for name in sorted(names, key=lambda n: n.endswith(LOG_SUFFIX + SWAP_SUFFIX)):
            if not name.endswith(SWAP_SUFFIX):
                continue
            stem = name.split(".", 1)[0]
            if stem not in complete:
                # The .log was never renamed: the swap set is incomplete.
                (self.directory / name).unlink(missing_ok=True)
                continue
            target = self.directory / name[: -len(SWAP_SUFFIX)]
            os.replace(self.directory / name, target)
            if stem.isdigit():
                swapped.add(int(stem))
            log.info("log.swap_completed", file=str(target))
        # Index files without a log are orphans.
        for name in os.listdir(self.directory):
            for ext in (INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
                if name.endswith(ext):
                    stem = name[: -len(ext)]
                    if not (self.directory / (stem + LOG_SUFFIX)).exists():
                        (self.directory / name).unlink(missing_ok=True)
        return swapped

    def _load(self, clean: bool) -> None:
        t0 = time.perf_counter()
        state = self._read_state()
        swapped = self._complete_swaps_and_cleanup()
        bases = sorted(
            int(n[: -len(LOG_SUFFIX)])
            for n in os.listdir(self.directory)
            if n.endswith(LOG_SUFFIX) and n[: -len(LOG_SUFFIX)].isdigit()
        )
        segments = [self._new_segment(b) for b in bases]
        for seg in segments:
            if seg.base_offset in swapped:
                seg.recover()
                self.segments_recovered += 1
        recovery_point = state.recovery_point
        if not clean:
            i = 0
            while i < len(segments):
                seg = segments[i]
                nxt_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
                if nxt_base is not None and nxt_base <= recovery_point:
                    i += 1
                    continue
                from_offset = recovery_point if seg.base_offset < recovery_point else None
                truncated = seg.recover(on_batch=self._recover_epoch, from_offset=from_offset)
                self.segments_recovered += 1
                if truncated and i + 1 < len(segments):
                    for later in segments[i + 1 :]:
                        log.warning("log.drop_after_corruption", segment=str(later.log_path))
                        later.delete_files()
                    segments = segments[: i + 1]
                i += 1
        if not segments:
            segments = [self._new_segment(state.log_start_offset, create=True)]
        active = segments[-1]
        first_ts = active.first_batch_timestamp()
        if first_ts is not None and first_ts > 0:
            active.created_ms = min(first_ts, now_ms())
        self._view = _SegmentView(tuple(s.base_offset for s in segments), tuple(segments))
        self._log_end_offset = active.next_offset
        self._log_start_offset = min(max(state.log_start_offset, segments[0].base_offset), self._log_end_offset)
        self._cleaner_offset = max(state.cleaner_offset, self._log_start_offset)
        if clean:
            self._recovery_point = self._log_end_offset
        else:
            for seg in segments:
                if seg.next_offset > recovery_point:
                    seg.flush()
            self._recovery_point = self._log_end_offset
        if self.auto_high_watermark:
            self._high_watermark = self._log_end_offset
        else:
            self._high_watermark = min(max(state.high_watermark, self._log_start_offset), self._log_end_offset)
        self.epoch_cache.truncate_from_end(self._log_end_offset)
        self.epoch_cache.truncate_from_start(self._log_start_offset)
        self._load_txn_indexes()
        self._rebuild_producer_state()
        self._write_state()
        log.info(
            "log.loaded",
            dir=str(self.directory),
            segments=len(segments),
            recovered=self.segments_recovered,
            log_start_offset=self._log_start_offset,
            log_end_offset=self._log_end_offset,
            clean=clean,
            ms=round((time.perf_counter() - t0) * 1000, 2),
        )

    def _rebuild_producer_state(self) -> None:
        """Last snapshot at or below the log end, then the batch headers after it.

        Aborted-transaction index entries of markers at or after the
        snapshot are dropped and re-added from the markers replayed.
        """
        ps = self.producer_state
        start = ps.load_snapshot(self._log_end_offset)
        start = self._log_start_offset if start is None else max(start, self._log_start_offset)
        scanned = 0
        view = self._view
        for idx in self._txn_indexes.values():
            idx.truncate_from(start)
        completed: list[CompletedTxn] = []
        for i, seg in enumerate(view.segments if start < self._log_end_offset else ()):
            nxt = view.bases[i + 1] if i + 1 < len(view.segments) else None
            if (nxt is not None and nxt <= start) or seg.size == 0:
                continue
            pos = 0
            if start > seg.base_offset:
                loc = seg.translate_offset(start)
                if loc is None:
                    continue
                pos = loc.position
            scanned += ps.replay_file(seg.file.fileno(), pos, seg.size, start, completed)
            self._index_aborted(seg.base_offset, completed)
            completed.clear()
        if scanned:
            log.info("log.producer_state_rebuilt", dir=str(self.directory), from_offset=start, batches=scanned)

    # -- transactions --------------------------------------------------------------

    def _txn_index(self, base_offset: int) -> TransactionIndex:
        idx = self._txn_indexes.get(base_offset)
        if idx is None:
            idx = self._txn_indexes[base_offset] = TransactionIndex(
                txn_index_path(self.directory, base_offset), base_offset, self._sync
            )
        return idx

    def _index_aborted(self, segment_base: int, completed: list[CompletedTxn]) -> None:
        for c in completed:
            if c.aborted:
                self._txn_index(segment_base).append(
                    AbortedTxn(c.producer_id, c.first_offset, c.last_offset, c.last_stable_offset)
                )

    @property
    def last_stable_offset(self) -> int:
        """min(first offset of the open transactions, high watermark)."""
        first = self.producer_state.first_unstable_offset
        hw = self._high_watermark
        return hw if first is None or first > hw else first

    def aborted_transactions(self, fetch_offset: int, upper: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper) (read_committed fetches)."""
        out: list[AbortedTxn] = []
        if not self._txn_indexes:
            return out
        view = self._view
        for i in range(max(bisect_right(view.bases, fetch_offset) - 1, 0), len(view.bases)):
            idx = self._txn_indexes.get(view.bases[i])
            if idx is not None and idx.collect(fetch_offset, upper, out):
                break
        return out

    def _load_txn_indexes(self) -> None:
        for base in self._view.bases:
            if txn_index_path(self.directory, base).exists():
                self._txn_index(base)

    def _recover_epoch(self, loc: BatchLocation) -> None:
        if loc.leader_epoch > self.epoch_cache.latest_epoch:
            self.epoch_cache.assign(loc.leader_epoch, loc.base_offset)

    # -- offsets -----------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, value: int) -> None:
        self._high_watermark = min(max(value, self._log_start_offset), self._log_end_offset)

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def active_segment(self) -> LogSegment:
        return self._view.segments[-1]

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return self._view.segments

    @property
    def size(self) -> int:
        return sum(s.size for s in self._view.segments)

    @property
    def latest_epoch(self) -> int:
        return self.epoch_cache.latest_epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset), (-1, -1) when unknown."""
        return self.epoch_cache.end_offset_for(epoch, self._log_end_offset)

    # -- append ------------------------------------------------------------------

    def append(
        self,
        records: bytearray | memoryview | bytes,
        *,
        leader_epoch: int,
        log_append_time_ms: int | None = None,
        from_coordinator: bool = False,
    ) -> AppendResult:
        """Append validated batches as leader: assign offsets in place, write.

        Transaction markers (control batches) close their producer's open
        transaction; `from_coordinator` batches (transactional offset
        commits) carry no sequence and are checked by epoch only.

        `records` is rewritten in place (baseOffset, partitionLeaderEpoch and,
        for LogAppendTime, maxTimestamp + CRC). Pass a bytearray or writable
        memoryview; bytes are copied first. With `log_append_time_ms` None
        and message.timestamp.type=LogAppendTime the wall clock is used.
        """
        self._check_open()
        buf = memoryview(bytearray(records) if isinstance(records, bytes) else records)
        if log_append_time_ms is None and self.config.log_append_time:
            log_append_time_ms = now_ms()
        n = len(buf)
        base = nxt = self._log_end_offset
        pos = count = 0
        max_ts = off_max = -1
        staged: list[Staged] | None = None
        while pos < n:
            _, length, _, _, _, attrs, delta, _, bmax, pid, pepoch, seq = BATCH_PREFIX.unpack_from(buf, pos)
            set_base_offset(buf, pos, nxt)
            set_partition_leader_epoch(buf, pos, leader_epoch)
            if log_append_time_ms is not None:
                set_log_append_time(buf, pos, log_append_time_ms)
                bmax = log_append_time_ms
            if pid >= 0 and attrs & CONTROL_MASK:
                if staged is None:
                    staged = []
                marker = read_marker(buf, pos, length)
                if marker is not None:
                    self.producer_state.check_marker(pid, pepoch, marker[1], marker[0], nxt, bmax, staged)
            elif pid >= 0 and from_coordinator and seq < 0:
                if staged is None:
                    staged = []
                self.producer_state.check_coordinator_batch(
                    pid, pepoch, nxt, delta, bmax, staged, bool(attrs & TRANSACTIONAL_MASK)
                )
            elif pid >= 0:
                # Idempotent producer: one check per batch (raises ProducerStateError).
                if staged is None:
                    staged = []
                dup = self.producer_state.check_batch(
                    pid, pepoch, seq, delta, nxt, bmax, staged, bool(attrs & TRANSACTIONAL_MASK)
                )
                if dup is not None:
                    ts = dup.timestamp if self.config.log_append_time else -1
                    return AppendResult(dup.first_offset, dup.last_offset, ts, self._log_start_offset, 0, True)
            last = nxt + delta
            if bmax > max_ts:
                max_ts, off_max = bmax, last
            nxt = last + 1
            count += delta + 1
            pos += length + 12
        if nxt == base:
            raise StorageError("append of no batches")
        self._append_to_segment(buf, base, nxt - 1, max_ts, off_max)
        completed = None
        if staged:
            completed = self.producer_state.apply(staged)
            if completed:
                self._index_aborted(self._view.bases[-1], completed)
        if leader_epoch > self.epoch_cache.latest_epoch:
            self.epoch_cache.assign(leader_epoch, base)
        self._after_append(nxt, count)
        return AppendResult(
            base,
            nxt - 1,
            -1 if log_append_time_ms is None else log_append_time_ms,
            self._log_start_offset,
            count,
            completed=completed or None,
        )

    def append_as_follower(self, records: bytes | bytearray | memoryview) -> AppendResult:
        """Append batches that already carry offsets/epochs (replication)."""
        self._check_open()
        buf = memoryview(records)
        n = len(buf)
        pos = count = 0
        first = -1
        nxt = self._log_end_offset
        max_ts = off_max = -1
        epochs: list[tuple[int, int]] = []
        while pos < n:
            b, length, epoch, _, _, _, delta, _, bmax = PREFIX.unpack_from(buf, pos)
            if b < nxt:
                raise StorageError(f"follower append offset {b} < log end offset {nxt}")
            if first < 0:
                first = b
            if bmax > max_ts:
                max_ts, off_max = bmax, b + delta
            epochs.append((epoch, b))
            nxt = b + delta + 1
            count += delta + 1
            pos += length + 12
        if first < 0:
            raise StorageError("append of no batches")
        self._append_to_segment(buf, first, nxt - 1, max_ts, off_max)
        completed = self.producer_state.replay_buffer(buf)
        if completed:
            self._index_aborted(self._view.bases[-1], completed)
        for epoch, b in epochs:
            if epoch > self.epoch_cache.latest_epoch:
                self.epoch_cache.assign(epoch, b)
        self._after_append(nxt, count)
        return AppendResult(first, nxt - 1, -1, self._log_start_offset, count)

    def _append_to_segment(self, buf: memoryview, first: int, last: int, max_ts: int, off_max: int) -> None:
        seg = self._view.segments[-1]
        now = now_ms()
        if seg.size > 0 and (
            seg.size + len(buf) > self.config.segment_bytes
            or now - seg.created_ms >= self.config.segment_ms
            or last - seg.base_offset > INT32_MAX
            or seg.index_full()
        ):
            seg = self.roll(first)
        seg.append(buf, last, max_ts, off_max)

    def _after_append(self, next_offset: int, count: int) -> None:
        self._log_end_offset = next_offset
        if self.auto_high_watermark:
            self._high_watermark = next_offset
        self._unflushed_messages += count
        if self._unflushed_messages >= self.config.flush_interval_messages:
            self.flush()
        if self.append_listener is not None:
            self.append_listener(self)

    def roll(self, base_offset: int | None = None) -> LogSegment:
        """Close the active segment and start a new one at `base_offset` (default LEO)."""
        base = self._log_end_offset if base_offset is None else base_offset
        with self._lock:
            old = self._view.segments[-1]
            if old.size == 0 and old.base_offset == base:
                return old
            old.on_become_inactive()
            old.index.close()
            old.time_index.close()
            if old.size == 0:
                # An empty active segment is replaced rather than kept.
                segs = self._view.segments[:-1]
                old.delete_files()
            else:
                segs = self._view.segments
            new = self._new_segment(base, create=True)
            segs = segs + (new,)
            self._view = _SegmentView(tuple(s.base_offset for s in segs), segs)
        # The state now covers every batch below `base` (updates follow writes).
        self.producer_state.take_snapshot(base)
        log.info("log.roll", dir=str(self.directory), base_offset=base)
        return new

    # -- read --------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> ReadResult:
        """File regions starting at the batch holding `offset`.

        `max_offset` (exclusive, e.g. the high watermark) caps what is
        returned. Raises OffsetOutOfRangeError outside [log start, log end].
        """
        leo = self._log_end_offset
        lso = self._log_start_offset
        if offset < lso or offset > leo:
            raise OffsetOutOfRangeError(offset, lso, leo)
        result = ReadResult([], self._high_watermark, lso, leo)
        upper = leo if max_offset is None else min(max_offset, leo)
        if offset >= upper:
            return result
        view = self._view
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
                result.slices.append(sl)
                break
            i += 1
        return result

    def _position_of(self, seg: LogSegment, offset: int) -> int | None:
        """File position in `seg` of the batch holding `offset` (cached for the HW)."""
        cached = self._max_pos_cache
        if cached is not None and cached[0] == offset and cached[1] == seg.base_offset:
            return cached[2]
        loc = seg.translate_offset(offset)
        pos = loc.position if loc is not None else None
        self._max_pos_cache = (offset, seg.base_offset, pos)
        return pos

    def read_bytes(self, offset: int, max_bytes: int, **kw: object) -> bytes:
        """Convenience for tests/tools: the bytes `read` would send."""
        res = self.read(offset, max_bytes, **kw)  # type: ignore[arg-type]
        return b"".join(s.read_bytes() for s in res.slices)

    # -- timestamps ----------------------------------------------------------------

    def list_offset(self, timestamp: int) -> OffsetAndTimestamp | None:
        """ListOffsets: -2 earliest, -1 latest (log end), -3 max timestamp, else by time."""
        if timestamp == EARLIEST_TIMESTAMP:
            off = self._log_start_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.epoch_for_offset(off))
        if timestamp == LATEST_TIMESTAMP:
            off = self._log_end_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.latest_epoch)
        if timestamp == MAX_TIMESTAMP:
            return self.max_timestamp_offset()
        return self.offset_for_timestamp(timestamp)

    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None:
        """First record with timestamp >= `timestamp` at or after the log start."""
        lso = self._log_start_offset
        for seg in self._view.segments:
            if seg.size == 0 or seg.largest_timestamp < timestamp:
                continue
            loc = seg.find_batch_by_timestamp(timestamp, lso)
            if loc is None:
                continue
            found = self._record_at_or_after(seg, loc, lambda off, ts: ts >= timestamp and off >= lso)
            if found is not None:
                return found
        return None

    def max_timestamp_offset(self) -> OffsetAndTimestamp | None:
        """The record with the largest timestamp (ListOffsets -3)."""
        best: LogSegment | None = None
        for seg in self._view.segments:
            seg.ensure_indexes()
            if seg.size and seg.max_timestamp >= 0 and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None:
            return None
        target = best.max_timestamp
        loc = best.find_batch_by_timestamp(target, self._log_start_offset)
        if loc is None:
            return None
        return self._record_at_or_after(best, loc, lambda off, ts: ts >= target)

    def _record_at_or_after(self, seg: LogSegment, loc: BatchLocation, pred) -> OffsetAndTimestamp | None:  # type: ignore[no-untyped-def]
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

    # -- truncation, retention, DeleteRecords ----------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Follower truncation: drop everything at or after `offset`."""
        if offset >= self._log_end_offset:
            return
        with self._lock:
            view = self._view
            keep = [s for s in view.segments if s.base_offset < offset] or []
            drop = [s for s in view.segments if s.base_offset >= offset]
            if not keep:
                new = self._new_segment(offset, create=True) if all(s.base_offset != offset for s in drop) else None
                if new is None:
                    first = drop.pop(0)
                    first.truncate_to(offset)
                    new = first
                keep = [new]
            else:
                keep[-1].truncate_to(offset)
            for s in drop:
                self._schedule_delete(s)
            segs = tuple(keep)
            self._view = _SegmentView(tuple(s.base_offset for s in segs), segs)
            self._max_pos_cache = None
            self._log_end_offset = max(segs[-1].next_offset, segs[-1].base_offset)
            self._log_start_offset = min(self._log_start_offset, self._log_end_offset)
            self._high_watermark = min(self._high_watermark, self._log_end_offset)
            self._recovery_point = min(self._recovery_point, self._log_end_offset)
            self.epoch_cache.truncate_from_end(self._log_end_offset)
            self._rebuild_producer_state()
        log.info("log.truncated", dir=str(self.directory), log_end_offset=self._log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop all data and restart the log at `offset` (follower far behind)."""
        with self._lock:
            for s in self._view.segments:
                self._schedule_delete(s)
            new = self._new_segment(offset, create=True)
            self._view = _SegmentView((offset,), (new,))
            self._max_pos_cache = None
            self._log_start_offset = self._log_end_offset = self._high_watermark = offset
            self._recovery_point = offset
            self.epoch_cache.clear()
            self.producer_state.clear()
            self.producer_state.delete_all_snapshots()
        self._write_state()

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset`; returns the new one.

        Raises OffsetOutOfRangeError beyond the high watermark. Whole segments
        below the new start are deleted.
        """
        if offset > self._high_watermark or offset < 0:
            raise OffsetOutOfRangeError(offset, self._log_start_offset, self._high_watermark)
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self.epoch_cache.truncate_from_start(offset)
            self._delete_segments(lambda seg, nxt: nxt is not None and nxt <= offset, "log_start_offset")
            self._write_state()
        return self._log_start_offset

    def apply_retention(self, now: int | None = None) -> int:
        """Delete old closed segments by retention.ms / retention.bytes; returns count."""
        if not self.config.delete:
            return 0
        now = now_ms() if now is None else now
        deleted = 0
        if self.config.retention_ms >= 0:
            horizon = now - self.config.retention_ms
            deleted += self._delete_segments(lambda seg, nxt: seg.largest_timestamp < horizon, "retention_ms")
        if self.config.retention_bytes >= 0:
            excess = self.size - self.config.retention_bytes
            if excess > 0:

                def over(seg: LogSegment, nxt: int | None) -> bool:
                    nonlocal excess
                    if excess - seg.size >= 0:
                        excess -= seg.size
                        return True
                    return False

                deleted += self._delete_segments(over, "retention_bytes")
        return deleted

    def _delete_segments(self, predicate, reason: str) -> int:  # type: ignore[no-untyped-def]
        """Delete the oldest closed segments while predicate(segment, next_base) holds."""
        with self._lock:
            view = self._view
            doomed: list[LogSegment] = []
            for i, seg in enumerate(view.segments[:-1]):
                if not predicate(seg, view.bases[i + 1]):
                    break
                doomed.append(seg)
            if not doomed:
                return 0
            segs = view.segments[len(doomed) :]
            self._view = _SegmentView(tuple(s.base_offset for s in segs), segs)
            self._max_pos_cache = None
            new_start = max(self._log_start_offset, segs[0].base_offset)
            for seg in doomed:
                self._schedule_delete(seg)
        if new_start != self._log_start_offset:
            self._log_start_offset = new_start
            self.epoch_cache.truncate_from_start(new_start)
            self._write_state()
        log.info("log.segments_deleted", dir=str(self.directory), count=len(doomed), reason=reason)
        return len(doomed)

    def _schedule_delete(self, seg: LogSegment) -> None:
        """Rename to .deleted now; close and unlink after file.delete.delay.ms.

        The delay keeps in-flight sendfile()s of the old fds working.
        """
        try:
            seg.rename_suffix(DELETED_SUFFIX)
        except FileNotFoundError:
            pass
        idx = self._txn_indexes.pop(seg.base_offset, None)
        if idx is not None:
            idx.delete()
        else:
            txn_index_path(self.directory, seg.base_offset).unlink(missing_ok=True)
        self._pending_deletes.append(_PendingDelete(seg, now_ms() + self.config.file_delete_delay_ms))

    def purge_deleted(self, now: int | None = None, *, force: bool = False) -> int:
        """Unlink segments whose deletion delay has passed."""
        now = now_ms() if now is None else now
        with self._lock:
            due = [p for p in self._pending_deletes if force or p.due_ms <= now]
            self._pending_deletes = [p for p in self._pending_deletes if not (force or p.due_ms <= now)]
        for p in due:
            p.segment.delete_files()
        return len(due)

    # -- compaction hooks (see cleaner.py) -----------------------------------------

    @property
    def cleaner_offset(self) -> int:
        """Offsets below this were compacted by the last cleaner run."""
        return self._cleaner_offset

    def cleanable_segments(self, now: int) -> list[LogSegment]:
        """Closed segments eligible for compaction: below the high watermark and
        older than min.compaction.lag.ms, oldest first."""
        view = self._view
        out: list[LogSegment] = []
        lag_horizon = now - self.config.min_compaction_lag_ms
        for i, seg in enumerate(view.segments[:-1]):
            if view.bases[i + 1] > self._high_watermark or seg.largest_timestamp > lag_horizon:
                break
            out.append(seg)
        return out

    def replace_segments(self, pairs: list[tuple[LogSegment, LogSegment]], *, cleaner_offset: int) -> int:
        """Swap cleaned segments (named `.swap`) in for live ones; returns how many.

        Pairs whose old segment is no longer live (deleted or truncated
        meanwhile) are discarded.
        """
        done = 0
        with self._lock:
            segs = list(self._view.segments)
            for old, new in pairs:
                try:
                    i = next(k for k, s in enumerate(segs) if s is old)
                except StopIteration:
                    new.delete_files()
                    continue
                if i == len(segs) - 1:
                    new.delete_files()
                    continue
                old.rename_suffix(DELETED_SUFFIX)
                new.rename_suffix("")
                new.index.close()
                new.time_index.close()
                segs[i] = new
                self._pending_deletes.append(_PendingDelete(old, now_ms() + self.config.file_delete_delay_ms))
                done += 1
            self._view = _SegmentView(tuple(s.base_offset for s in segs), tuple(segs))
            self._max_pos_cache = None
            if done:
                self._cleaner_offset = max(self._cleaner_offset, cleaner_offset)
        if done:
            self._write_state()
        return done

    def compact(self, now: int | None = None) -> CleanResult:
        """Run compaction in the calling thread (see cleaner.compact)."""
        from kafkapy.storage.cleaner import compact

        return compact(self, now_ms() if now is None else now)

    def validate_records(self, records: bytes | bytearray | memoryview) -> RecordsSummary:
        """Validate a produce buffer against this log's max.message.bytes."""
        return validate_records(records, max_batch_bytes=self.config.max_message_bytes)

    # -- flush / lifecycle ---------------------------------------------------------

    def flush(self) -> None:
        """fsync every segment holding offsets >= the recovery point, then checkpoint."""
        self._check_open()
        leo = self._log_end_offset
        view = self._view
        for i, seg in enumerate(view.segments):
            nxt = view.bases[i + 1] if i + 1 < len(view.segments) else None
            if nxt is not None and nxt <= self._recovery_point:
                continue
            seg.flush()
        fsync_dir(self.directory) if self._sync else None
        self._recovery_point = leo
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms()
        self._write_state()

    def flush_rolled_segments(self) -> bool:
        """fsync segments closed by rolls since the last flush (Kafka flushes
        them on roll); moves the recovery point to the active segment's base."""
        view = self._view
        active_base = view.bases[-1]
        if self._recovery_point >= active_base or self._closed:
            return False
        for i, seg in enumerate(view.segments[:-1]):
            if view.bases[i + 1] > self._recovery_point:
                seg.flush()
        if self._sync:
            fsync_dir(self.directory)
        self._recovery_point = active_base
        self._write_state()
        return True

    def maybe_flush(self, now: int | None = None) -> bool:
        """Flush when flush.ms has elapsed since the last flush."""
        now = now_ms() if now is None else now
        if self._recovery_point < self._log_end_offset and now - self._last_flush_ms >= self.config.flush_interval_ms:
            self.flush()
            return True
        return False

    def _write_state(self) -> None:
        entries = [
            f"log_start_offset {self._log_start_offset}",
            f"recovery_point {self._recovery_point}",
            f"high_watermark {self._high_watermark}",
            f"cleaner_offset {self._cleaner_offset}",
        ]
        with self._state_lock:
            write_checkpoint(self.directory / STATE_FILE, entries, sync=self._sync)

    def checkpoint(self) -> None:
        """Persist offsets (HW, log start, recovery point) without fsyncing data."""
        self._write_state()

    def close(self) -> None:
        """Flush and close every segment."""
        if self._closed:
            return
        self.flush()
        self.producer_state.take_snapshot(self._log_end_offset)
        with self._lock:
            self.active_segment.on_become_inactive()
            for seg in self._view.segments:
                seg.close()
            self._closed = True
        self.purge_deleted(force=True)
        log.info("log.closed", dir=str(self.directory))

    def delete_files_only(self) -> None:
        """Close every file without flushing (the directory is going away)."""
        with self._lock:
            for seg in self._view.segments:
                seg.close()
            self._closed = True
        self.purge_deleted(force=True)

    def delete(self) -> None:
        """Close without flushing and remove the directory."""
        self.delete_files_only()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(str(self.directory))

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory.name}, start={self._log_start_offset}, "
            f"end={self._log_end_offset}, segments={len(self._view.segments)})"
        )
