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

Transactions (KIP-98): a transactional batch opens the producer's
transaction at its base offset unless one is open; a transaction marker
(control batch, COMMIT or ABORT) from the coordinator closes it. The
manager keeps the first offset of every open transaction, so the log's
last stable offset is min(those, high watermark); a closed transaction is
returned as a `CompletedTxn` so the log can index aborted ones. A
non-transactional batch from a producer with an open transaction is
refused (InvalidTxnStateError), as in Kafka.

Checks stage their updates; the log applies them only after the write
succeeded. State is snapshotted to `<offset:020d>.snapshot` (state of all
batches below that offset) on segment roll and clean shutdown, and rebuilt
on load from the last usable snapshot plus the batch headers after it.

Snapshot format (own, big-endian): magic "KPPS", version u16, crc32 u32 of
everything after it, producer count u32, then per producer: id i64, epoch
i16, last timestamp i64, batch count u8, [version 2: open transaction's
first offset i64 (-1: none), coordinator epoch i32], and per batch: first
seq i32, last seq i32, first offset i64, last offset i64, timestamp i64.
Version 1 files (no transaction fields) are still read.

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
TRANSACTIONAL_MASK = 0x10
MARKER_ABORT = 0
MARKER_COMMIT = 1

# A v2 batch header up to baseSequence: baseOffset, batchLength,
# partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence.
BATCH_PREFIX = struct.Struct(">qiibIhiqqqhi")
_LOG_OVERHEAD = 12
_MIN_BATCH_LENGTH = 49
_SCAN_CHUNK = 1 << 20

_MAGIC = b"KPPS"
_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FILE_HEAD = struct.Struct(">4sHI")  # magic, version, crc32
_COUNT = struct.Struct(">I")
_PRODUCER = struct.Struct(">qhqB")
_BATCH = struct.Struct(">iiqqq")
_TXN = struct.Struct(">qi")


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


class InvalidTxnStateError(ProducerStateError):
    """Kafka's INVALID_TXN_STATE: e.g. a non-transactional batch inside an open transaction."""


class CoordinatorFencedError(ProducerStateError):
    """A marker from an older coordinator epoch: TRANSACTION_COORDINATOR_FENCED."""


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
    txn_first_offset: int = -1  # first offset of the open transaction, -1: none
    coordinator_epoch: int = -1  # of the last marker

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
    transactional: bool = False


@dataclass(slots=True)
class PendingMarker:
    """A checked transaction marker at `offset`, applied once written."""

    producer_id: int
    epoch: int
    coordinator_epoch: int
    control_type: int
    offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction closed by a marker: [first_offset, last_offset (the marker)]."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool
    last_stable_offset: int  # the partition's first unstable offset once this one closed


Staged = PendingBatch | PendingMarker


class ProducerStateManager:
    """Producer entries of one partition plus their snapshot files."""

    def __init__(self, directory: Path | str, *, expiration_ms: int = DEFAULT_EXPIRATION_MS, sync: bool = True) -> None:
        self.directory = Path(directory)
        self.expiration_ms = expiration_ms
        self._sync = sync
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self._first_unstable: int | None = None

    # -- transactions ------------------------------------------------------------

    @property
    def first_unstable_offset(self) -> int | None:
        """The smallest first offset of an open transaction (None: none open)."""
        return self._first_unstable

    def _open_txn(self, entry: ProducerEntry, first_offset: int) -> None:
        if entry.txn_first_offset < 0:
            entry.txn_first_offset = first_offset
            self.ongoing[entry.producer_id] = first_offset
            if self._first_unstable is None or first_offset < self._first_unstable:
                self._first_unstable = first_offset

    def _close_txn(self, entry: ProducerEntry, marker: PendingMarker) -> CompletedTxn | None:
        first = entry.txn_first_offset
        if first < 0:
            return None
        entry.txn_first_offset = -1
        self.ongoing.pop(entry.producer_id, None)
        self._first_unstable = min(self.ongoing.values()) if self.ongoing else None
        lso = marker.offset + 1 if self._first_unstable is None else min(self._first_unstable, marker.offset + 1)
        return CompletedTxn(entry.producer_id, first, marker.offset, marker.control_type == MARKER_ABORT, lso)

    def _reindex_ongoing(self) -> None:
        self.ongoing = {pid: e.txn_first_offset for pid, e in self.producers.items() if e.txn_first_offset >= 0}
        self._first_unstable = min(self.ongoing.values()) if self.ongoing else None

    def check_marker(
        self,
        producer_id: int,
        epoch: int,
        coordinator_epoch: int,
        control_type: int,
        offset: int,
        timestamp: int,
        staged: list[Staged],
    ) -> None:
        """Validate a transaction marker written by the coordinator; stage it."""
        entry = self.producers.get(producer_id)
        if entry is not None:
            if epoch < entry.epoch:
                raise InvalidProducerEpochError(
                    producer_id, f"marker epoch {epoch} for producer {producer_id} is older than {entry.epoch}"
                )
            if coordinator_epoch < entry.coordinator_epoch:
                raise CoordinatorFencedError(
                    producer_id, f"marker coordinator epoch {coordinator_epoch} < {entry.coordinator_epoch}"
                )
        staged.append(PendingMarker(producer_id, epoch, coordinator_epoch, control_type, offset, timestamp))

    # -- produce path ------------------------------------------------------------

    def check_batch(
        self,
        producer_id: int,
        epoch: int,
        first_seq: int,
        last_offset_delta: int,
        first_offset: int,
        timestamp: int,
        staged: list[Staged],
        transactional: bool = False,
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
            prev = next(
                (p for p in reversed(staged) if isinstance(p, PendingBatch) and p.producer_id == producer_id), None
            )
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
        if not transactional and entry is not None and entry.txn_first_offset >= 0 and epoch == entry.epoch:
            raise InvalidTxnStateError(
                producer_id, f"producer {producer_id} sent a non-transactional batch inside its open transaction"
            )
        meta = BatchMetadata(first_seq, last_seq, first_offset, first_offset + last_offset_delta, timestamp)
        staged.append(PendingBatch(producer_id, epoch, meta, transactional))
        return None

    def check_coordinator_batch(
        self,
        producer_id: int,
        epoch: int,
        first_offset: int,
        last_offset_delta: int,
        timestamp: int,
        staged: list[Staged],
        transactional: bool,
    ) -> None:
        """A batch the coordinator writes for a producer (transactional offsets): epoch check only."""
        entry = self.producers.get(producer_id)
        if entry is not None and epoch < entry.epoch:
            raise InvalidProducerEpochError(
                producer_id, f"producer {producer_id}: epoch {epoch} is older than the current {entry.epoch}"
            )
        meta = BatchMetadata(NO_SEQUENCE, NO_SEQUENCE, first_offset, first_offset + last_offset_delta, timestamp)
        staged.append(PendingBatch(producer_id, epoch, meta, transactional))

    def apply(self, staged: Iterable[Staged]) -> list[CompletedTxn]:
        """Record batches and markers that were written to the log; returns closed transactions."""
        done: list[CompletedTxn] = []
        for p in staged:
            if isinstance(p, PendingBatch):
                entry = self._record(p.producer_id, p.epoch, p.meta if p.meta.first_seq >= 0 else None)
                if p.meta.first_seq < 0:
                    entry.last_timestamp = max(entry.last_timestamp, p.meta.timestamp)
                if p.transactional:
                    self._open_txn(entry, p.meta.first_offset)
            else:
                c = self._apply_marker(p)
                if c is not None:
                    done.append(c)
        return done

    def _apply_marker(self, m: PendingMarker) -> CompletedTxn | None:
        entry = self.producers.get(m.producer_id)
        if entry is None or m.epoch > entry.epoch:
            entry = self._record(m.producer_id, m.epoch, None)
        entry.coordinator_epoch = max(entry.coordinator_epoch, m.coordinator_epoch)
        entry.last_timestamp = max(entry.last_timestamp, m.timestamp)
        return self._close_txn(entry, m)

    def _record(self, producer_id: int, epoch: int, meta: BatchMetadata | None) -> ProducerEntry:
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
        return entry

    def replay(
        self,
        producer_id: int,
        epoch: int,
        first_seq: int,
        last_offset_delta: int,
        base_offset: int,
        max_timestamp: int,
        attributes: int,
        marker: tuple[int, int] | None = None,
    ) -> CompletedTxn | None:
        """Apply a batch already in the log (recovery, replication): no checks.

        `marker` is (control type, coordinator epoch) of a control batch.
        Returns the transaction a marker closed.
        """
        if producer_id < 0:
            return None
        if attributes & CONTROL_MASK:
            if marker is not None and marker[0] in (MARKER_ABORT, MARKER_COMMIT):
                return self._apply_marker(
                    PendingMarker(producer_id, epoch, marker[1], marker[0], base_offset, max_timestamp)
                )
            entry = self.producers.get(producer_id)
            if entry is None or epoch > entry.epoch:
                self._record(producer_id, epoch, None)
            return None
        if first_seq < 0:
            entry = self.producers.get(producer_id)
            if entry is None or epoch > entry.epoch:
                entry = self._record(producer_id, epoch, None)
        else:
            meta = BatchMetadata(
                first_seq, add_sequence(first_seq, last_offset_delta), base_offset,
                base_offset + last_offset_delta, max_timestamp,
            )  # fmt: skip
            entry = self._record(producer_id, epoch, meta)
        if attributes & TRANSACTIONAL_MASK:
            self._open_txn(entry, base_offset)
        return None

    def replay_buffer(self, buf: bytes | bytearray | memoryview) -> list[CompletedTxn]:
        """Replay every batch of a buffer of whole v2 batches."""
        n = len(buf)
        pos = 0
        done: list[CompletedTxn] = []
        while pos + BATCH_PREFIX.size <= n:
            base, length, _, _, _, attrs, delta, _, bmax, pid, epoch, seq = BATCH_PREFIX.unpack_from(buf, pos)
            if pid >= 0:
                marker = read_marker(buf, pos, length) if attrs & CONTROL_MASK else None
                c = self.replay(pid, epoch, seq, delta, base, bmax, attrs, marker)
                if c is not None:
                    done.append(c)
            pos += length + _LOG_OVERHEAD
        return done

    def replay_file(
        self,
        fd: int,
        start_position: int,
        end_position: int,
        from_offset: int,
        completed: list[CompletedTxn] | None = None,
    ) -> int:
        """Replay the batch headers of a segment file region; returns batches seen.

        Reads headers only (records are skipped, except the one marker of a
        control batch); batches whose last offset is below `from_offset` are
        ignored. Stops at the first torn header. Transactions closed by
        markers are appended to `completed`.
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
                marker = None
                if attrs & CONTROL_MASK:
                    if off + _MARKER_SPAN > len(buf) and pos + _MARKER_SPAN <= end_position:
                        buf = os.pread(fd, _SCAN_CHUNK, pos)
                        buf_start, off = pos, 0
                    marker = read_marker(buf, off, length)
                c = self.replay(pid, epoch, seq, delta, base, bmax, attrs, marker)
                if c is not None and completed is not None:
                    completed.append(c)
            count += 1
            pos += length + _LOG_OVERHEAD
        return count

    # -- housekeeping ------------------------------------------------------------

    def remove_expired(self, now_ms: int) -> int:
        """Drop producers idle for producer.id.expiration.ms (by their last batch timestamp)."""
        horizon = now_ms - self.expiration_ms
        doomed = [pid for pid, e in self.producers.items() if e.last_timestamp <= horizon and e.txn_first_offset < 0]
        for pid in doomed:
            del self.producers[pid]
        if doomed:
            log.info("producer_state.expired", dir=str(self.directory), producers=len(doomed))
        return len(doomed)

    def clear(self) -> None:
        self.producers.clear()
        self._reindex_ongoing()

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
            parts.append(_TXN.pack(e.txn_first_offset, e.coordinator_epoch))
            parts.extend(
                _BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp) for b in e.batches
            )
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
        self._reindex_ongoing()
        self.delete_snapshots_after(max_offset)
        for off in reversed(self.snapshot_offsets()):
            path = self.snapshot_path(off)
            try:
                self.producers = _decode(path.read_bytes())
                self._reindex_ongoing()
                return off
            except (CorruptSnapshotError, OSError) as exc:
                log.warning("producer_state.snapshot_corrupt", path=str(path), error=str(exc))
                path.unlink(missing_ok=True)
        return None


def _decode(data: bytes) -> dict[int, ProducerEntry]:
    try:
        magic, version, crc = _FILE_HEAD.unpack_from(data, 0)
        body = memoryview(data)[_FILE_HEAD.size :]
        if magic != _MAGIC or version not in _READABLE_VERSIONS:
            raise CorruptSnapshotError(f"bad magic/version {magic!r}/{version}")
        if zlib.crc32(body) != crc:
            raise CorruptSnapshotError("checksum mismatch")
        (count,) = _COUNT.unpack_from(body, 0)
        pos = _COUNT.size
        out: dict[int, ProducerEntry] = {}
        for _ in range(count):
            pid, epoch, last_ts, nb = _PRODUCER.unpack_from(body, pos)
            pos += _PRODUCER.size
            txn_first, coord_epoch = -1, -1
            if version >= 2:
                txn_first, coord_epoch = _TXN.unpack_from(body, pos)
                pos += _TXN.size
            batches = []
            for _ in range(nb):
                batches.append(BatchMetadata(*_BATCH.unpack_from(body, pos)))
                pos += _BATCH.size
            out[pid] = ProducerEntry(pid, epoch, batches, last_ts, txn_first, coord_epoch)
        if pos != len(body):
            raise CorruptSnapshotError("trailing bytes")
        return out
    except struct.error as exc:
        raise CorruptSnapshotError(str(exc)) from exc


# A control batch's one record: length, attributes, timestamp delta, offset
# delta, key length (varints; 5 bytes each at most) and the 4-byte key.
_RECORDS_START = 61
_MARKER_SPAN = _RECORDS_START + 5 * 4 + 1 + 4 + 6 + 5
_CONTROL_VALUE = struct.Struct(">hi")


def _varint_end(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(zigzag-decoded value, position after it)."""
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7


def read_marker(buf: bytes | bytearray | memoryview, pos: int, length: int) -> tuple[int, int] | None:
    """(control type, coordinator epoch) of the control batch at `pos`, None if unreadable."""
    end = pos + length + _LOG_OVERHEAD
    try:
        p = pos + _RECORDS_START
        _, p = _varint_end(buf, p)  # record length
        p += 1  # attributes
        _, p = _varint_end(buf, p)  # timestamp delta
        _, p = _varint_end(buf, p)  # offset delta
        klen, p = _varint_end(buf, p)
        if klen < 4 or p + 4 > min(end, len(buf)):
            return None
        (ctype,) = struct.unpack_from(">h", buf, p + 2)
        p += klen
        vlen, p = _varint_end(buf, p)
        coord_epoch = -1
        if vlen >= _CONTROL_VALUE.size and p + _CONTROL_VALUE.size <= len(buf):
            _, coord_epoch = _CONTROL_VALUE.unpack_from(buf, p)
        return ctype, coord_epoch
    except (IndexError, struct.error):
        return None
