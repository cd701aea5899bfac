"""Producer state of one partition: idempotent-producer deduplication (KIP-98, KIP-360).

For every producer id seen on the partition we keep its epoch and the
metadata (sequence range, offset range, timestamp) of its last five
batches. A produce append is checked per BATCH from the v2 header alone
(producerId, producerEpoch, baseSequence, lastOffsetDelta), as current
Kafka does:

- epoch below the producer's: InvalidProducerEpochError;
- epoch above it: the sequence must restart at 0 (else OutOfOrderSequenceError);
- same epoch: a batch equal to one of the last five (same first and last
  sequence) is a duplicate, acknowledged with its original offsets and not
  written again; the next sequence (int32 wrap) appends; anything else is
  OutOfOrderSequenceError;
- unknown producer: any sequence is accepted (its state may have been lost
  to expiration or retention; Kafka >= 2.5 does the same).

Checks stage their updates; the log applies them only after the write
succeeded. State is snapshotted to `<offset:020d>.snapshot` (state of all
batches below that offset) on segment roll and clean shutdown, and rebuilt
on load from the last usable snapshot plus the batch headers after it.

Snapshot format (own, big-endian): magic "KPPS", version u16, crc32 u32 of
everything after it, producer count u32, then per producer: id i64, epoch
i16, last timestamp i64, batch count u8, and per batch: first seq i32, last
seq i32, first offset i64, last offset i64, timestamp i64.

Concurrency: used only from the thread that appends (the event loop).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.storage.checkpoint import write_atomic

log = structlog.get_logger(__name__)

SNAPSHOT_SUFFIX = ".snapshot"
MAX_BATCHES = 5  # batches remembered per producer (max.in.flight.requests.per.connection <= 5)
SNAPSHOTS_KEPT = 3
DEFAULT_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms
INT32_MAX = (1 << 31) - 1
NO_EPOCH = -1
NO_SEQUENCE = -1
CONTROL_MASK = 0x20

# A v2 batch header up to baseSequence: baseOffset, batchLength,
# partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence.
BATCH_PREFIX = struct.Struct(">qiibIhiqqqhi")
_LOG_OVERHEAD = 12
_MIN_BATCH_LENGTH = 49
_SCAN_CHUNK = 1 << 20

_MAGIC = b"KPPS"
_VERSION = 1
_FILE_HEAD = struct.Struct(">4sHI")  # magic, version, crc32
_COUNT = struct.Struct(">I")
_PRODUCER = struct.Struct(">qhqB")
_BATCH = struct.Struct(">iiqqq")


class ProducerStateError(Exception):
    """A batch refused by producer-state checks (not a storage failure)."""

    def __init__(self, producer_id: int, message: str) -> None:
        super().__init__(message)
        self.producer_id = producer_id


class OutOfOrderSequenceError(ProducerStateError):
    """Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER."""


class InvalidProducerEpochError(ProducerStateError):
    """Kafka's INVALID_PRODUCER_EPOCH (an older epoch than the partition has seen)."""


class InvalidSequenceError(ProducerStateError):
    """A producer id with no base sequence: Kafka's INVALID_RECORD."""


class CorruptSnapshotError(Exception):
    pass


def add_sequence(seq: int, delta: int) -> int:
    """`seq + delta`, wrapping from INT32_MAX back to 0 like producer sequences."""
    s = seq + delta
    return s - INT32_MAX - 1 if s > INT32_MAX else s


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


@dataclass(slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int = NO_EPOCH
    batches: list[BatchMetadata] = field(default_factory=list)  # oldest first, <= MAX_BATCHES
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for b in self.batches:
            if b.first_seq == first_seq and b.last_seq == last_seq:
                return b
        return None


@dataclass(slots=True)
class PendingBatch:
    """A checked batch, applied to the state once the log write succeeded."""

    producer_id: int
    epoch: int
    meta: BatchMetadata


class ProducerStateManager:
    """Producer entries of one partition plus their snapshot files."""

    def __init__(
        self, directory: Path | str, *, expiration_ms: int = DEFAULT_EXPIRATION_MS, sync: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.expiration_ms = expiration_ms
        self._sync = sync
        self.producers: dict[int, ProducerEntry] = {}

    # -- produce path ------------------------------------------------------------

    def check_batch(
        self,
        producer_id: int,
        epoch: int,
        first_seq: int,
        last_offset_delta: int,
        first_offset: int,
        timestamp: int,
        staged: list[PendingBatch],
    ) -> BatchMetadata | None:
        """Validate one client batch; stage its update in `staged`.

        Returns the original batch's metadata when the batch is a duplicate
        (then nothing is staged). Raises a ProducerStateError otherwise-refused.
        """
        if first_seq < 0:
            raise InvalidSequenceError(producer_id, f"invalid sequence {first_seq} for producer {producer_id}")
        last_seq = first_seq + last_offset_delta
        if last_seq > INT32_MAX:
            last_seq -= INT32_MAX + 1
        entry = self.producers.get(producer_id)
        if staged:
            prev = next((p for p in reversed(staged) if p.producer_id == producer_id), None)
        else:
            prev = None
        if prev is not None:  # an earlier batch of the same append
            cur_epoch, cur_last = prev.epoch, prev.meta.last_seq
        elif entry is not None:
            cur_epoch, cur_last = entry.epoch, entry.last_seq
            # In sequence can't be a duplicate; check the window only otherwise.
            if not (epoch == cur_epoch and in_sequence(cur_last, first_seq)):
                dup = entry.find_duplicate(epoch, first_seq, last_seq)
                if dup is not None:
                    return dup
        else:
            cur_epoch, cur_last = NO_EPOCH, NO_SEQUENCE
        if epoch != cur_epoch:
            if epoch < cur_epoch:
                raise InvalidProducerEpochError(
                    producer_id, f"producer {producer_id}: epoch {epoch} is older than the current {cur_epoch}"
                )
            if cur_epoch != NO_EPOCH and first_seq != 0:
                raise OutOfOrderSequenceError(
                    producer_id, f"producer {producer_id}: new epoch {epoch} must start at sequence 0, got {first_seq}"
                )
        elif not in_sequence(cur_last, first_seq):
            raise OutOfOrderSequenceError(
                producer_id, f"producer {producer_id}: sequence {first_seq} does not follow {cur_last}"
            )
        meta = BatchMetadata(first_seq, last_seq, first_offset, first_offset + last_offset_delta, timestamp)
        staged.append(PendingBatch(producer_id, epoch, meta))
        return None

    def apply(self, staged: Iterable[PendingBatch]) -> None:
        """Record batches that were written to the log."""
        for p in staged:
            self._record(p.producer_id, p.epoch, p.meta)

    def _record(self, producer_id: int, epoch: int, meta: BatchMetadata | None) -> None:
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(producer_id)
        if epoch != entry.epoch:
            # The window holds one epoch only: a new epoch forgets the old batches.
            entry.epoch = epoch
            entry.batches.clear()
        if meta is not None:
            batches = entry.batches
            batches.append(meta)
            if len(batches) > MAX_BATCHES:
                del batches[0]
            entry.last_timestamp = meta.timestamp

    def replay(
        self, producer_id: int, epoch: int, first_seq: int, last_offset_delta: int, base_offset: int,
        max_timestamp: int, attributes: int,
    ) -> None:
        """Apply a batch already in the log (recovery, replication): no checks."""
        if producer_id < 0:
            return
        if attributes & CONTROL_MASK or first_seq < 0:
            entry = self.producers.get(producer_id)
            if entry is None or epoch > entry.epoch:
                self._record(producer_id, epoch, None)
            return
        meta = BatchMetadata(
            first_seq, add_sequence(first_seq, last_offset_delta), base_offset,
            base_offset + last_offset_delta, max_timestamp,
        )  # fmt: skip
        self._record(producer_id, epoch, meta)

    def replay_buffer(self, buf: bytes | bytearray | memoryview) -> None:
        """Replay every batch of a buffer of whole v2 batches."""
        n = len(buf)
        pos = 0
        while pos + BATCH_PREFIX.size <= n:
            base, length, _, _, _, attrs, delta, _, bmax, pid, epoch, seq = BATCH_PREFIX.unpack_from(buf, pos)
            if pid >= 0:
                self.replay(pid, epoch, seq, delta, base, bmax, attrs)
            pos += length + _LOG_OVERHEAD

    def replay_file(self, fd: int, start_position: int, end_position: int, from_offset: int) -> int:
        """Replay the batch headers of a segment file region; returns batches seen.

        Reads headers only (records are skipped); batches whose last offset is
        below `from_offset` are ignored. Stops at the first torn header.
        """
        pos = start_position
        buf = b""
        buf_start = pos
        count = 0
        size = BATCH_PREFIX.size
        while pos + size <= end_position:
            off = pos - buf_start
            if off + size > len(buf):
                buf = os.pread(fd, _SCAN_CHUNK, pos)
                buf_start, off = pos, 0
                if len(buf) < size:
                    break
            base, length, _, magic, _, attrs, delta, _, bmax, pid, epoch, seq = BATCH_PREFIX.unpack_from(buf, off)
            if magic != 2 or length < _MIN_BATCH_LENGTH:
                break
            if pid >= 0 and base + delta >= from_offset:
                self.replay(pid, epoch, seq, delta, base, bmax, attrs)
            count += 1
            pos += length + _LOG_OVERHEAD
        return count

    # -- housekeeping ------------------------------------------------------------

    def remove_expired(self, now_ms: int) -> int:
        """Drop producers idle for producer.id.expiration.ms (by their last batch timestamp)."""
        horizon = now_ms - self.expiration_ms
        doomed = [pid for pid, e in self.producers.items() if e.last_timestamp <= horizon]
        for pid in doomed:
            del self.producers[pid]
        if doomed:
            log.info("producer_state.expired", dir=str(self.directory), producers=len(doomed))
        return len(doomed)

    def clear(self) -> None:
        self.producers.clear()

    # -- snapshots ---------------------------------------------------------------

    def snapshot_path(self, offset: int) -> Path:
        return self.directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files on disk, ascending."""
        out = []
        for name in os.listdir(self.directory):
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            if name.endswith(SNAPSHOT_SUFFIX) and stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def take_snapshot(self, offset: int) -> Path:
        """Write the state (of every batch below `offset`) atomically; keep the newest few."""
        parts = [_COUNT.pack(len(self.producers))]
        for e in self.producers.values():
            parts.append(_PRODUCER.pack(e.producer_id, e.epoch, e.last_timestamp, len(e.batches)))
            parts.extend(_BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp) for b in e.batches)
        body = b"".join(parts)
        path = self.snapshot_path(offset)
        write_atomic(path, _FILE_HEAD.pack(_MAGIC, _VERSION, zlib.crc32(body)) + body, sync=self._sync)
        for old in self.snapshot_offsets()[:-SNAPSHOTS_KEPT]:
            self.snapshot_path(old).unlink(missing_ok=True)
        return path

    def delete_snapshots_after(self, offset: int) -> None:
        """Remove snapshots of offsets above `offset` (the log was truncated there)."""
        for off in self.snapshot_offsets():
            if off > offset:
                self.snapshot_path(off).unlink(missing_ok=True)

    def delete_all_snapshots(self) -> None:
        for off in self.snapshot_offsets():
            self.snapshot_path(off).unlink(missing_ok=True)

    def load_snapshot(self, max_offset: int) -> int | None:
        """Replace the state by the newest valid snapshot at or below `max_offset`.

        Snapshots above it (data lost to recovery) and corrupt ones are
        deleted. Returns the snapshot's offset, None when there is none
        (the state is then empty).
        """
        self.producers.clear()
        self.delete_snapshots_after(max_offset)
        for off in reversed(self.snapshot_offsets()):
            path = self.snapshot_path(off)
            try:
                self.producers = _decode(path.read_bytes())
                return off
            except (CorruptSnapshotError, OSError) as exc:
                log.warning("producer_state.snapshot_corrupt", path=str(path), error=str(exc))
                path.unlink(missing_ok=True)
        return None


def _decode(data: bytes) -> dict[int, ProducerEntry]:
    try:
        magic, version, crc = _FILE_HEAD.unpack_from(data, 0)
        body = memoryview(data)[_FILE_HEAD.size :]
        if magic != _MAGIC or version != _VERSION:
            raise CorruptSnapshotError(f"bad magic/version {magic!r}/{version}")
        if zlib.crc32(body) != crc:
            raise CorruptSnapshotError("checksum mismatch")
        (count,) = _COUNT.unpack_from(body, 0)
        pos = _COUNT.size
        out: dict[int, ProducerEntry] = {}
        for _ in range(count):
            pid, epoch, last_ts, nb = _PRODUCER.unpack_from(body, pos)
            pos += _PRODUCER.size
            batches = []
            for _ in range(nb):
                batches.append(BatchMetadata(*_BATCH.unpack_from(body, pos)))
                pos += _BATCH.size
            out[pid] = ProducerEntry(pid, epoch, batches, last_ts)
        if pos != len(body):
            raise CorruptSnapshotError("trailing bytes")
        return out
    except struct.error as exc:
        raise CorruptSnapshotError(str(exc)) from exc
