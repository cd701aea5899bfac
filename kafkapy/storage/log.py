"""PartitionLog: the log of one partition directory `<data_dir>/<topic>-<partition>/`.

The facade the rest of the broker uses (Kafka calls its counterpart
UnifiedLog). It owns the partition offsets above the segment files (log
start offset, high watermark, last stable offset, cleaner offset), the
leader epoch cache and the producer state, checks and stamps appended
batches, and answers reads, ListOffsets, DeleteRecords and compaction.
The work is split by seam:

- log_loader.py: opening the directory, recovery after an unclean shutdown,
  rebuilding indexes and producer state;
- local_log.py: the segment list (append, roll, read, truncate, flush), the
  log end offset and recovery point, the aborted-transaction indexes;
- retention.py: which segments retention deletes and the compaction swap
  (cleaner.py builds the cleaned segments);
- offset_checkpoint.py: `partition-offsets.checkpoint`.

Concurrency: append/read/truncate/retention/flush are called from one thread
(the broker's event loop). The segment list is a copy-on-write snapshot, so
readers never lock; mutations of the list take the LocalLog's lock, which
lets a compaction thread swap cleaned segments in atomically while the loop
keeps appending to the active segment.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import structlog

from kafkapy.storage import retention
from kafkapy.storage._batch import (
    PREFIX,
    RecordsSummary,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_records,
)
from kafkapy.storage.cleaner import CleanResult, compact
from kafkapy.storage.config import LogConfig
from kafkapy.storage.epoch_cache import LeaderEpochCache
from kafkapy.storage.errors import (
    LogClosedError,
    LogDirError,
    OffsetMovedToTieredStorageError,
    OffsetOutOfRangeError,
    StorageError,
)
from kafkapy.storage.local_log import LocalLog, OffsetAndTimestamp
from kafkapy.storage.log_loader import load_log, rebuild_producer_state
from kafkapy.storage.offset_checkpoint import OffsetCheckpoint
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
from kafkapy.storage.segment import FileSlice, LogSegment, now_ms
from kafkapy.storage.txn_index import AbortedTxn

__all__ = ["AppendResult", "OffsetAndTimestamp", "PartitionLog", "ReadResult", "parse_partition_dir"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _disk_io(method: Callable[Concatenate[PartitionLog, P], R]) -> Callable[Concatenate[PartitionLog, P], R]:
    """An OSError of `method` (a full or failing disk) becomes a LogDirError, told to the log's
    `dir_listener`; the method left the log consistent (see each method)."""

    @functools.wraps(method)
    def wrapper(self: PartitionLog, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise self.disk_error(exc) from exc

    return wrapper


# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6


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
        self._config = config or LogConfig()
        self.auto_high_watermark = auto_high_watermark
        # Called after every append (leader or follower) with this log; replication sets it.
        self.append_listener: Callable[[PartitionLog], None] | None = None
        # Called with each flush's time in ms (fsync of segments); the log manager sets it.
        self.flush_listener: Callable[[float], None] | None = None
        # Called with every failed write to the directory (a full or failing disk); the log manager sets it.
        self.dir_listener: Callable[[LogDirError], None] | None = None
        self._sync = sync
        self._closed = False
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms()
        if not self.directory.is_dir():
            if not create:
                raise StorageError(f"no such partition directory {self.directory}")
            self.directory.mkdir(parents=True)
        self.epoch_cache = LeaderEpochCache(self.directory, sync=sync)
        self.producer_state = ProducerStateManager(self.directory, expiration_ms=producer_id_expiration_ms, sync=sync)
        self._checkpoint = OffsetCheckpoint(self.directory, sync=sync)
        loaded = load_log(
            self.directory,
            self._config,
            clean=clean_shutdown,
            checkpoint=self._checkpoint,
            epoch_cache=self.epoch_cache,
            producer_state=self.producer_state,
            auto_high_watermark=auto_high_watermark,
            sync=sync,
            # The producer state covers every batch below a new segment (updates follow writes).
            on_roll=self.producer_state.take_snapshot,
        )
        self._local: LocalLog = loaded.local
        self._log_start_offset = loaded.log_start_offset
        self._high_watermark = loaded.high_watermark
        self._cleaner_offset = loaded.cleaner_offset
        self.segments_recovered = loaded.segments_recovered
        # Tiered storage: the last offset known copied to the object store (-1 none); the remote
        # log manager sets it. Local retention deletes only segments at or below it.
        self.remote_copied_up_to = -1

    @property
    def config(self) -> LogConfig:
        return self._config

    @config.setter
    def config(self, value: LogConfig) -> None:
        self._config = value
        self._local.config = value

    # -- transactions --------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """min(first offset of the open transactions, high watermark)."""
        first = self.producer_state.first_unstable_offset
        hw = self._high_watermark
        return hw if first is None or first > hw else first

    def aborted_transactions(self, fetch_offset: int, upper: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper) (read_committed fetches)."""
        return self._local.aborted_transactions(fetch_offset, upper)

    # -- offsets -----------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._local.log_end_offset

    @property
    def tiered(self) -> bool:
        """remote.storage.enable: closed segments are copied to an object store; offsets in
        [log start, local log start) are there only."""
        return self._config.remote_storage_enable

    @property
    def local_log_start_offset(self) -> int:
        """The first offset held in the local segments (the log start offset unless tiered)."""
        return max(self._log_start_offset, self._local.view.bases[0])

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, value: int) -> None:
        self._high_watermark = min(max(value, self._log_start_offset), self._local.log_end_offset)

    @property
    def recovery_point(self) -> int:
        return self._local.recovery_point

    @property
    def active_segment(self) -> LogSegment:
        return self._local.view.segments[-1]

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return self._local.view.segments

    @property
    def size(self) -> int:
        return self._local.size

    @property
    def latest_epoch(self) -> int:
        return self.epoch_cache.latest_epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset), (-1, -1) when unknown."""
        return self.epoch_cache.end_offset_for(epoch, self._local.log_end_offset)

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
        local = self._local
        buf = memoryview(bytearray(records) if isinstance(records, bytes) else records)
        if log_append_time_ms is None and self._config.log_append_time:
            log_append_time_ms = now_ms()
        n = len(buf)
        base = nxt = local.log_end_offset
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
                    ts = dup.timestamp if self._config.log_append_time else -1
                    return AppendResult(dup.first_offset, dup.last_offset, ts, self._log_start_offset, 0, True)
            last = nxt + delta
            if bmax > max_ts:
                max_ts, off_max = bmax, last
            nxt = last + 1
            count += delta + 1
            pos += length + 12
        if nxt == base:
            raise StorageError("append of no batches")
        try:
            # The epoch first (Kafka's order): an epoch starting at the log end with nothing written
            # yet is what a new leader has anyway. A failed write changes nothing (see LogSegment.append).
            if leader_epoch > self.epoch_cache.latest_epoch:
                self.epoch_cache.assign(leader_epoch, base)
            local.append(buf, base, nxt - 1, max_ts, off_max)
        except OSError as exc:
            raise self.disk_error(exc) from exc
        # Written: from here on nothing fails the append but a flush it asks for (flush.messages).
        completed = None
        if staged:
            completed = self.producer_state.apply(staged)
            if completed:
                local.index_aborted(local.view.bases[-1], completed)
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
        local = self._local
        buf = memoryview(records)
        n = len(buf)
        pos = count = 0
        first = -1
        nxt = local.log_end_offset
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
        try:
            for epoch, b in epochs:
                if epoch > self.epoch_cache.latest_epoch:
                    self.epoch_cache.assign(epoch, b)
            local.append(buf, first, nxt - 1, max_ts, off_max)
        except OSError as exc:
            raise self.disk_error(exc) from exc
        completed = self.producer_state.replay_buffer(buf)
        if completed:
            local.index_aborted(local.view.bases[-1], completed)
        self._after_append(nxt, count)
        return AppendResult(first, nxt - 1, -1, self._log_start_offset, count)

    def _after_append(self, next_offset: int, count: int) -> None:
        self._local.log_end_offset = next_offset
        if self.auto_high_watermark:
            self._high_watermark = next_offset
        self._unflushed_messages += count
        if self.append_listener is not None:
            self.append_listener(self)
        if self._unflushed_messages >= self._config.flush_interval_messages:
            # flush.messages: the append is answered after the fsync; a flush that fails answers the
            # append with the error (the batch is in the log, as after a timed-out acks=all produce)
            self.flush()

    def disk_error(self, exc: OSError) -> LogDirError:
        """The LogDirError for a failed write here, told to `dir_listener`."""
        err = LogDirError.from_os(exc, exc.filename or self.directory)
        if self.dir_listener is not None:
            self.dir_listener(err)
        return err

    @_disk_io
    def roll(self, base_offset: int | None = None) -> LogSegment:
        """Close the active segment and start a new one at `base_offset` (default LEO)."""
        return self._local.roll(base_offset)

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
        returned. Raises OffsetOutOfRangeError outside [log start, log end],
        OffsetMovedToTieredStorageError in [log start, local log start) of a
        tiered log (read those from the remote log manager).
        """
        local = self._local
        leo = local.log_end_offset
        lso = self._log_start_offset
        if offset < lso or offset > leo:
            raise OffsetOutOfRangeError(offset, lso, leo)
        if offset < local.view.bases[0] and self._config.remote_storage_enable:
            raise OffsetMovedToTieredStorageError(offset, self.local_log_start_offset, lso)
        result = ReadResult([], self._high_watermark, lso, leo)
        upper = leo if max_offset is None else min(max_offset, leo)
        if offset >= upper:
            return result
        sl = local.read(offset, max_bytes, upper, min_one_message)
        if sl is not None:
            result.slices.append(sl)
        return result

    def read_bytes(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_message: bool = True
    ) -> bytes:
        """Convenience for tests/tools: the bytes `read` would send."""
        res = self.read(offset, max_bytes, max_offset=max_offset, min_one_message=min_one_message)
        return b"".join(s.read_bytes() for s in res.slices)

    # -- timestamps ----------------------------------------------------------------

    def list_offset(self, timestamp: int) -> OffsetAndTimestamp | None:
        """ListOffsets: -2 earliest, -1 latest (log end), -3 max timestamp, -4 earliest local,
        -5 latest tiered (offset -1: none), -6 earliest pending upload (offset -1 untiered), else by
        time (the local segments only; the remote log manager searches the remote ones)."""
        if timestamp == EARLIEST_TIMESTAMP:
            off = self._log_start_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.epoch_for_offset(off))
        if timestamp == EARLIEST_LOCAL_TIMESTAMP:
            off = self.local_log_start_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.epoch_for_offset(off))
        if timestamp == LATEST_TIERED_TIMESTAMP:
            off = self.remote_copied_up_to if self.tiered else -1
            return OffsetAndTimestamp(off, -1, self.epoch_cache.epoch_for_offset(off) if off >= 0 else -1)
        if timestamp == EARLIEST_PENDING_UPLOAD_TIMESTAMP:
            if not self.tiered:
                return OffsetAndTimestamp(-1, -1, -1)
            copied = self.remote_copied_up_to
            off = max(copied + 1, self.local_log_start_offset) if copied >= 0 else self.local_log_start_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.epoch_for_offset(off))
        if timestamp == LATEST_TIMESTAMP:
            off = self._local.log_end_offset
            return OffsetAndTimestamp(off, -1, self.epoch_cache.latest_epoch)
        if timestamp == MAX_TIMESTAMP:
            return self.max_timestamp_offset()
        return self.offset_for_timestamp(timestamp)

    def offset_for_timestamp(self, timestamp: int) -> OffsetAndTimestamp | None:
        """First record with timestamp >= `timestamp` at or after the log start."""
        return self._local.offset_for_timestamp(timestamp, self._log_start_offset)

    def max_timestamp_offset(self) -> OffsetAndTimestamp | None:
        """The record with the largest timestamp (ListOffsets -3)."""
        return self._local.max_timestamp_offset(self._log_start_offset)

    # -- truncation, retention, DeleteRecords ----------------------------------------

    @_disk_io
    def truncate_to(self, offset: int) -> None:
        """Follower truncation: drop everything at or after `offset`."""
        local = self._local
        if offset >= local.log_end_offset:
            return
        with local.lock:
            local.truncate_to(offset)
            leo = local.log_end_offset
            self._log_start_offset = min(self._log_start_offset, leo)
            self._high_watermark = min(self._high_watermark, leo)
            self.epoch_cache.truncate_from_end(leo)
            rebuild_producer_state(local, self.producer_state, self._log_start_offset)
        log.info("log.truncated", dir=str(self.directory), log_end_offset=local.log_end_offset)

    @_disk_io
    def truncate_fully_and_start_at(self, offset: int, log_start_offset: int | None = None) -> None:
        """Drop all data and restart the log at `offset` (follower far behind). A tiered log's
        follower passes the leader's `log_start_offset` (below `offset`: the rest is remote)."""
        with self._local.lock:
            self._local.truncate_fully_and_start_at(offset)
            self._log_start_offset = self._high_watermark = offset
            if log_start_offset is not None and self.tiered:
                self._log_start_offset = min(log_start_offset, offset)
            self.epoch_cache.clear()
            self.producer_state.clear()
            self.producer_state.delete_all_snapshots()
        self._write_state()

    @_disk_io
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
            self._delete_segments(retention.below_offset(offset), "log_start_offset")
            self._write_state()
        return self._log_start_offset

    @_disk_io
    def advance_log_start_offset(self, offset: int) -> int:
        """Move the log start offset up to `offset` (capped at the log end; remote segments below it
        expired) and delete the local segments wholly below it; returns the new log start."""
        offset = min(offset, self._local.log_end_offset)
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self._high_watermark = max(self._high_watermark, offset)
            self.epoch_cache.truncate_from_start(offset)
            self._delete_segments(retention.below_offset(offset), "log_start_offset")
            self._write_state()
        return self._log_start_offset

    @_disk_io
    def apply_retention(self, now: int | None = None) -> int:
        """Delete old closed segments by retention.ms / retention.bytes; returns count.

        A tiered log applies local.retention.ms / local.retention.bytes instead, to segments
        already copied (end offset <= remote_copied_up_to) only, and keeps its log start offset
        (total retention is the remote log manager's, see advance_log_start_offset)."""
        config = self._config
        if not config.delete:
            return 0
        now = now_ms() if now is None else now
        if config.remote_storage_enable:
            return self._apply_local_retention(now)
        deleted = 0
        if config.retention_ms >= 0:
            deleted += self._delete_segments(retention.older_than(now - config.retention_ms), "retention_ms")
        if config.retention_bytes >= 0:
            excess = self.size - config.retention_bytes
            if excess > 0:
                deleted += self._delete_segments(retention.exceeding_size(excess), "retention_bytes")
        return deleted

    def _apply_local_retention(self, now: int) -> int:
        config = self._config
        copied = self.remote_copied_up_to
        deleted = 0
        # below the log start offset (DeleteRecords, remote expiry): gone whatever was copied
        deleted += self._delete_segments(retention.below_offset(self._log_start_offset), "log_start_offset")
        if config.remote_log_copy_disable:
            # KIP-950: copying stopped, local data expires by retention.ms / retention.bytes, copied
            # or not; the log start moves only past what the object store does not hold
            if config.retention_ms >= 0:
                deleted += self._delete_uncopied(retention.older_than(now - config.retention_ms), "retention_ms")
            if config.retention_bytes >= 0:
                excess = self.size - config.retention_bytes
                if excess > 0:
                    deleted += self._delete_uncopied(retention.exceeding_size(excess), "retention_bytes")
            return deleted
        if copied < 0:
            return deleted
        ms = config.effective_local_retention_ms
        if ms >= 0:
            deleted += self._delete_local(
                retention.copied(copied, retention.older_than(now - ms)), "local_retention_ms"
            )
        limit = config.effective_local_retention_bytes
        if limit >= 0:
            excess = self.size - limit
            if excess > 0:
                pred = retention.copied(copied, retention.exceeding_size(excess))
                deleted += self._delete_local(pred, "local_retention_bytes")
        return deleted

    def _delete_uncopied(self, predicate: retention.SegmentPredicate, reason: str) -> int:
        """Delete the oldest closed segments while predicate holds; when some were not copied, the
        log start offset moves to the first offset left."""
        count, first_base = retention.delete_oldest_segments(self._local, predicate)
        if count and first_base - 1 > self.remote_copied_up_to and first_base > self._log_start_offset:
            self._log_start_offset = first_base
            self.epoch_cache.truncate_from_start(first_base)
            self._write_state()
        if count:
            log.info("log.segments_deleted", dir=str(self.directory), count=count, reason=reason)
        return count

    def _delete_local(self, predicate: retention.SegmentPredicate, reason: str) -> int:
        """Delete the oldest closed segments while predicate holds, keeping the log start offset."""
        count, _ = retention.delete_oldest_segments(self._local, predicate)
        if count:
            log.info("log.segments_deleted", dir=str(self.directory), count=count, reason=reason)
        return count

    def _delete_segments(self, predicate: retention.SegmentPredicate, reason: str) -> int:
        """Delete the oldest closed segments while predicate(segment, next_base) holds."""
        count, first_base = retention.delete_oldest_segments(self._local, predicate)
        if not count:
            return 0
        new_start = max(self._log_start_offset, first_base)
        if new_start != self._log_start_offset:
            self._log_start_offset = new_start
            self.epoch_cache.truncate_from_start(new_start)
            self._write_state()
        log.info("log.segments_deleted", dir=str(self.directory), count=count, reason=reason)
        return count

    def purge_deleted(self, now: int | None = None, *, force: bool = False) -> int:
        """Unlink segments whose deletion delay has passed."""
        return self._local.purge_deleted(now, force=force)

    # -- compaction hooks (see cleaner.py) -----------------------------------------

    @property
    def cleaner_offset(self) -> int:
        """Offsets below this were compacted by the last cleaner run."""
        return self._cleaner_offset

    def cleanable_segments(self, now: int) -> list[LogSegment]:
        """Closed segments eligible for compaction: below the high watermark and
        older than min.compaction.lag.ms, oldest first."""
        return retention.cleanable_segments(self._local, self._high_watermark, now - self._config.min_compaction_lag_ms)

    @_disk_io
    def replace_segments(self, pairs: list[tuple[LogSegment, LogSegment]], *, cleaner_offset: int) -> int:
        """Swap cleaned segments (named `.swap`) in for live ones; returns how many.

        Pairs whose old segment is no longer live (deleted or truncated
        meanwhile) are discarded.
        """
        with self._local.lock:
            done = retention.swap_cleaned_segments(self._local, pairs)
            if done:
                self._cleaner_offset = max(self._cleaner_offset, cleaner_offset)
        if done:
            self._write_state()
        return done

    def compact(self, now: int | None = None) -> CleanResult:
        """Run compaction in the calling thread (see cleaner.compact)."""
        return compact(self, now_ms() if now is None else now)

    def validate_records(self, records: bytes | bytearray | memoryview) -> RecordsSummary:
        """Validate a produce buffer against this log's max.message.bytes."""
        return validate_records(records, max_batch_bytes=self._config.max_message_bytes)

    # -- flush / lifecycle ---------------------------------------------------------

    @_disk_io
    def flush(self) -> None:
        """fsync every segment holding offsets >= the recovery point, then checkpoint.

        Raises LogDirError when the disk refuses (the recovery point then stays where it was)."""
        self._check_open()
        listener = self.flush_listener
        began = time.perf_counter()
        self.epoch_cache.persist_if_dirty()
        self._local.flush()
        if listener is not None:
            listener((time.perf_counter() - began) * 1000.0)
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms()
        self._write_state(sync_dir=False)

    @_disk_io
    def flush_rolled_segments(self) -> bool:
        """fsync segments closed by rolls since the last flush (Kafka flushes
        them on roll); moves the recovery point to the active segment's base."""
        if self._closed:
            return False
        began = time.perf_counter()
        if not self._local.flush_rolled_segments():
            return False
        if self.flush_listener is not None:
            self.flush_listener((time.perf_counter() - began) * 1000.0)
        self._write_state()
        return True

    def maybe_flush(self, now: int | None = None) -> bool:
        """Flush when flush.ms has elapsed since the last flush."""
        now = now_ms() if now is None else now
        local = self._local
        if local.recovery_point < local.log_end_offset and now - self._last_flush_ms >= self._config.flush_interval_ms:
            self.flush()
            return True
        return False

    def _write_state(self, *, sync_dir: bool = True) -> None:
        self._checkpoint.write(
            self._log_start_offset,
            self._local.recovery_point,
            self._high_watermark,
            self._cleaner_offset,
            sync_dir=sync_dir,
        )

    @_disk_io
    def checkpoint(self) -> None:
        """Persist offsets (HW, log start, recovery point) without fsyncing data."""
        self._write_state()

    @_disk_io
    def close(self) -> None:
        """Flush and close every segment (LogDirError if the disk refuses: the log stays open)."""
        if self._closed:
            return
        self.flush()
        self.producer_state.take_snapshot(self._local.log_end_offset)
        with self._local.lock:
            self._local.close_segments(finish_active=True)
            self._closed = True
        self.purge_deleted(force=True)
        log.info("log.closed", dir=str(self.directory))

    def delete_files_only(self) -> None:
        """Close every file without flushing (the directory is going away)."""
        with self._local.lock:
            self._local.close_segments(finish_active=False)
            self._closed = True
        self.purge_deleted(force=True)

    def delete(self) -> None:
        """Close without flushing and remove the directory."""
        self.delete_files_only()
        shutil.rmtree(self.directory, ignore_errors=True)

    _STORAGE = (
        "directory",
        "epoch_cache",
        "producer_state",
        "_checkpoint",
        "_local",
        "segments_recovered",
        "_unflushed_messages",
        "_last_flush_ms",
        "_closed",
    )

    def swap_storage(self, other: PartitionLog) -> None:
        """Serve from `other`'s files and hand it ours (a move to another data directory: `other` is the
        reopened copy, which then holds the old files until they are deleted). This log keeps its
        listeners, config and offsets (log start, high watermark, cleaner): the copy has the same batches at
        the same offsets."""
        for name in self._STORAGE:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs)
            setattr(other, name, mine)
        self.high_watermark = self._high_watermark
        self._write_state()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(str(self.directory))

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory.name}, start={self._log_start_offset}, "
            f"end={self._local.log_end_offset}, segments={len(self._local.view.segments)})"
        )
