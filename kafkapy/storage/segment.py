"""One log segment: `<base_offset:020d>.log` plus its `.index` and `.timeindex`.

The .log file holds v2 record batches back to back, exactly as sent by
producers (with baseOffset rewritten). Appends go through an O_APPEND fd with
os.write; reads use os.pread on batch headers only and hand back a FileSlice
for sendfile, so record bytes never enter Python on the hot paths.

Concurrency: one writer (the event-loop thread) at a time. Reads (`read`,
`translate_offset`, header scans) may run in other threads alongside appends:
`size` only ever moves by whole batches, and readers snapshot it first.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from kafkapy.storage import _batch
from kafkapy.storage._batch import LOG_OVERHEAD, MIN_BATCH_LENGTH, PREFIX, PREFIX_SIZE
from kafkapy.storage.errors import LogClosedError
from kafkapy.storage.index import OffsetIndex, TimeIndex

log = structlog.get_logger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
_SCAN_CHUNK = 8192
_RECOVER_CHUNK = 1 << 20


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class FileSlice:
    """A byte range of a segment file, to be sent with sendfile.

    `file` is the segment's raw file object (shared; never seek it for
    reading — use os.pread/os.sendfile with explicit offsets).
    """

    file: io.FileIO
    position: int
    size: int

    def fileno(self) -> int:
        return self.file.fileno()

    def __len__(self) -> int:
        return self.size

    def read_bytes(self) -> bytes:
        """Copy the bytes into memory (tests, TLS fallback)."""
        return os.pread(self.file.fileno(), self.size, self.position)


@dataclass(slots=True)
class BatchLocation:
    """Where one batch sits in a segment, from its header alone."""

    position: int
    base_offset: int
    last_offset: int
    size: int
    max_timestamp: int
    leader_epoch: int
    attributes: int


class LogSegment:
    """A .log file with its sparse indexes. See module docstring for concurrency."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int = 4096,
        max_index_bytes: int = 10 * 1024 * 1024,
        suffix: str = "",
        create: bool = False,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.suffix = suffix
        stem = directory / segment_name(base_offset)
        self.log_path = Path(f"{stem}{LOG_SUFFIX}{suffix}")
        if create:
            fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        else:
            fd = os.open(self.log_path, os.O_RDWR | os.O_APPEND)
        self._file = io.FileIO(fd, "a+", closefd=True)
        self.size = os.fstat(fd).st_size
        # set when a failed append's bytes could not be cut off: the next append cuts them first
        self._torn = False
        self.index = OffsetIndex(Path(f"{stem}{INDEX_SUFFIX}{suffix}"), base_offset, max_index_bytes)
        self.time_index = TimeIndex(Path(f"{stem}{TIMEINDEX_SUFFIX}{suffix}"), base_offset, max_index_bytes)
        if create:
            # index writes that fail leave the index dirty, never the segment half made
            self.index.reset()
            self.time_index.reset()
        self._indexes_loaded = create
        self._bytes_since_index = 0
        self._next_offset: int | None = base_offset if create else None
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.created_ms = now_ms()
        self.closed = False

    # -- state ---------------------------------------------------------------

    @property
    def file(self) -> io.FileIO:
        return self._file

    @property
    def next_offset(self) -> int:
        """One past the last offset stored here (base offset when empty)."""
        if self._next_offset is None:
            self._load_tail()
        assert self._next_offset is not None
        return self._next_offset

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def last_modified_ms(self) -> int:
        return os.fstat(self._file.fileno()).st_mtime_ns // 1_000_000

    @property
    def largest_timestamp(self) -> int:
        """Largest record timestamp, or last-modified time if none (Kafka's rule)."""
        self.ensure_indexes()
        return self.max_timestamp if self.max_timestamp >= 0 else self.last_modified_ms

    def index_full(self) -> bool:
        self.ensure_indexes()
        return self.index.is_full or self.time_index.is_full

    def ensure_indexes(self) -> None:
        """Load the indexes from disk, rebuilding them from the log if doubtful."""
        if self._indexes_loaded:
            return
        ok = self.index.load(self.size)
        if ok:
            max_rel = None
            if self._next_offset is not None:
                max_rel = self._next_offset - self.base_offset
            ok = self.time_index.load(max_rel)
        if not ok:
            log.warning("index.rebuild", segment=str(self.log_path))
            self.rebuild_indexes()
            return
        self._indexes_loaded = True
        last = self.time_index.last_entry
        if last is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last

    def _load_tail(self) -> None:
        """Find next offset / max timestamp by scanning from the last index entry."""
        self.ensure_indexes()
        if self._next_offset is not None:
            return
        _, start = self.index.last_entry
        nxt = self.base_offset
        for loc in self.iter_batches(start):
            nxt = loc.last_offset + 1
            if loc.max_timestamp > self.max_timestamp:
                self.max_timestamp = loc.max_timestamp
                self.offset_of_max_timestamp = loc.last_offset
        self._next_offset = nxt
        self._bytes_since_index = self.size - start

    def first_batch_timestamp(self) -> int | None:
        if self.size < PREFIX_SIZE:
            return None
        timestamp: int = PREFIX.unpack_from(os.pread(self._file.fileno(), PREFIX_SIZE, 0))[8]
        return timestamp

    # -- append ----------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        largest_offset: int,
        max_timestamp: int,
        offset_of_max_timestamp: int,
    ) -> None:
        """Append whole batches whose offsets are already assigned.

        A write that fails (OSError: a full or failing disk) is cut off the file again before the
        error is raised, so the segment never holds part of a batch and nothing changed."""
        if self.closed:
            raise LogClosedError(str(self.log_path))
        self.ensure_indexes()
        n = len(data)
        if n == 0:
            return
        pos0 = self.size
        if self._torn:
            os.ftruncate(self._file.fileno(), pos0)  # raises while the disk still refuses
            self._torn = False
        since_before = self._bytes_since_index
        entries: list[tuple[int, int, int, int]] = []
        if self._bytes_since_index + n > self.index_interval_bytes:
            # Crossing the index interval: walk batch headers to place entries.
            p = 0
            since = self._bytes_since_index
            mts, mofs = self.max_timestamp, self.offset_of_max_timestamp
            while p < n:
                base, length, _, _, _, _, delta, _, bmax = PREFIX.unpack_from(data, p)
                if bmax > mts:
                    mts, mofs = bmax, base + delta
                if since > self.index_interval_bytes:
                    entries.append((base + delta, pos0 + p, mts, mofs))
                    since = 0
                since += length + LOG_OVERHEAD
                p += length + LOG_OVERHEAD
            self._bytes_since_index = since
        else:
            self._bytes_since_index += n
        try:
            self._write_all(data)
        except OSError:
            self._bytes_since_index = since_before
            self._cut_back(pos0)
            raise
        self.size = pos0 + n
        for off, pos, mts, mofs in entries:
            self.index.append(off, pos)
            self.time_index.maybe_append(mts, mofs)
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = offset_of_max_timestamp
        self._next_offset = largest_offset + 1

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        fd = self._file.fileno()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _cut_back(self, position: int) -> None:
        """Drop a failed write's bytes (ftruncate needs no free space); if even that fails, the
        next append retries it before writing."""
        try:
            os.ftruncate(self._file.fileno(), position)
        except OSError as exc:
            self._torn = True
            log.error("segment.cut_back_failed", segment=str(self.log_path), position=position, error=str(exc))

    def on_become_inactive(self) -> None:
        """Record the final max timestamp in the time index (on roll/close)."""
        if self._indexes_loaded and self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)

    # -- read ------------------------------------------------------------------

    def iter_batches(self, start_position: int = 0, end_position: int | None = None) -> Iterator[BatchLocation]:
        """Batch headers from `start_position`; stops at the first torn/bad header."""
        fd = self._file.fileno()
        end = self.size if end_position is None else end_position
        pos = start_position
        buf = b""
        buf_start = pos
        while pos + PREFIX_SIZE <= end:
            off = pos - buf_start
            if off < 0 or off + PREFIX_SIZE > len(buf):
                buf = os.pread(fd, _SCAN_CHUNK, pos)
                buf_start, off = pos, 0
                if len(buf) < PREFIX_SIZE:
                    return
            base, length, epoch, magic, _, attrs, delta, _, bmax = PREFIX.unpack_from(buf, off)
            size = length + LOG_OVERHEAD
            if magic != 2 or length < MIN_BATCH_LENGTH or pos + size > end:
                return
            yield BatchLocation(pos, base, base + delta, size, bmax, epoch, attrs)
            pos += size

    def translate_offset(self, offset: int, start_position: int | None = None) -> BatchLocation | None:
        """The first batch whose last offset is >= `offset`, or None."""
        self.ensure_indexes()
        start = self.index.lookup(offset) if start_position is None else start_position
        for loc in self.iter_batches(start):
            if loc.last_offset >= offset:
                return loc
        return None

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        max_position: int | None = None,
        min_one_message: bool = True,
    ) -> FileSlice | None:
        """Bytes from the batch holding `start_offset`, up to max_bytes/max_position.

        Like Kafka the slice may end inside a batch (clients drop the partial
        tail). With min_one_message a first batch larger than max_bytes is
        returned whole; without it such a read returns None.
        """
        limit = self.size if max_position is None else min(max_position, self.size)
        loc = self.translate_offset(start_offset)
        if loc is None or loc.position >= limit:
            return None
        if min_one_message:
            budget = max(max_bytes, loc.size)
        elif max_bytes < loc.size:
            return None
        else:
            budget = max_bytes
        return FileSlice(self._file, loc.position, min(limit - loc.position, budget))

    def read_bytes(self, position: int, size: int) -> bytes:
        return os.pread(self._file.fileno(), size, position)

    def find_batch_by_timestamp(self, timestamp: int, start_offset: int) -> BatchLocation | None:
        """First batch with max timestamp >= `timestamp` and last offset >= start_offset."""
        self.ensure_indexes()
        ts_offset = self.time_index.lookup(timestamp)
        start = self.index.lookup(max(ts_offset, start_offset))
        for loc in self.iter_batches(start):
            if loc.max_timestamp >= timestamp and loc.last_offset >= start_offset:
                return loc
        return None

    # -- recovery / truncation -------------------------------------------------

    def recover(
        self, on_batch: Callable[[BatchLocation], None] | None = None, *, from_offset: int | None = None
    ) -> int:
        """Validate batches (CRC included), rebuild indexes, cut a bad tail.

        With `from_offset` (a recovery point: data below it was fsynced along
        with the indexes) only the batches from the last index entry below it
        are checked. Returns the number of bytes truncated.
        """
        return self._rebuild(check_crc=True, on_batch=on_batch, from_offset=from_offset)

    def rebuild_indexes(self) -> None:
        self._rebuild(check_crc=False, on_batch=None)

    def _rebuild(
        self,
        *,
        check_crc: bool,
        on_batch: Callable[[BatchLocation], None] | None,
        from_offset: int | None = None,
    ) -> int:
        fd = self._file.fileno()
        file_size = os.fstat(fd).st_size
        since = 0
        pos = 0
        nxt = self.base_offset
        start = 0
        if from_offset is not None and from_offset > self.base_offset:
            self.size = file_size
            self.ensure_indexes()
            last_off, start = self.index.lookup_entry(from_offset - 1)
        if start > 0:
            # Keep index entries up to the batch at `start` (it lies below the
            # recovery point); that batch's entries are re-added by the scan.
            self.index.truncate_to_position(start)
            self.time_index.truncate_to_offset(last_off + 1)
            last_t = self.time_index.last_entry
            self.max_timestamp, self.offset_of_max_timestamp = last_t if last_t else (-1, -1)
            since = self.index_interval_bytes + 1
            pos = start
        else:
            self.index.reset()
            self.time_index.reset()
            self.max_timestamp = self.offset_of_max_timestamp = -1
        buf = b""
        buf_start = pos
        while pos < file_size:
            off = pos - buf_start
            if off + PREFIX_SIZE > len(buf):
                buf = os.pread(fd, _RECOVER_CHUNK, pos)
                buf_start, off = pos, 0
                if len(buf) < PREFIX_SIZE:
                    break
            base, length, epoch, magic, _, attrs, delta, _, bmax = PREFIX.unpack_from(buf, off)
            size = length + LOG_OVERHEAD
            if magic != 2 or length < MIN_BATCH_LENGTH or pos + size > file_size or delta < 0 or base < nxt:
                break
            if check_crc:
                if off + size > len(buf):
                    buf = os.pread(fd, max(_RECOVER_CHUNK, size), pos)
                    buf_start, off = pos, 0
                    if len(buf) < size:
                        break
                if not _batch.crc_ok(buf, off, length):
                    break
            last = base + delta
            if bmax > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = bmax, last
            if since > self.index_interval_bytes:
                self.index.append(last, pos)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                since = 0
            since += size
            if on_batch is not None:
                on_batch(BatchLocation(pos, base, last, size, bmax, epoch, attrs))
            nxt = last + 1
            pos += size
        truncated = file_size - pos
        if truncated:
            log.warning("segment.truncate_tail", segment=str(self.log_path), position=pos, bytes=truncated)
            os.ftruncate(fd, pos)
        self.size = pos
        self._bytes_since_index = since
        self._next_offset = nxt
        self._indexes_loaded = True
        return truncated

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= `offset`; returns bytes removed.

        A batch straddling `offset` is removed whole.
        """
        self.ensure_indexes()
        loc = self.translate_offset(offset)
        if loc is None:
            return 0
        removed = self.size - loc.position
        os.ftruncate(self._file.fileno(), loc.position)
        self.size = loc.position
        self.index.truncate_to_position(loc.position)
        self.time_index.truncate_to_offset(loc.base_offset)
        self.max_timestamp = self.offset_of_max_timestamp = -1
        last = self.time_index.last_entry
        if last is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last
        self._next_offset = None
        self._load_tail()
        return removed

    # -- lifecycle -------------------------------------------------------------

    def flush(self) -> None:
        os.fsync(self._file.fileno())
        self.index.flush()
        self.time_index.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.index.close()
        self.time_index.close()
        self._file.close()

    def set_last_modified_ms(self, ms: int) -> None:
        os.utime(self.log_path, ns=(ms * 1_000_000, ms * 1_000_000))

    def rename_suffix(self, suffix: str) -> None:
        """Rename the three files to carry `suffix` ("" for live files); fds stay valid."""
        stem = self.directory / segment_name(self.base_offset)
        # Indexes first, .log last: a renamed .log means the set is complete.
        for idx, ext in ((self.index, INDEX_SUFFIX), (self.time_index, TIMEINDEX_SUFFIX)):
            target = Path(f"{stem}{ext}{suffix}")
            if idx.path.exists():
                idx.rename(target)
            else:
                idx.path = target
        new_log = Path(f"{stem}{LOG_SUFFIX}{suffix}")
        os.replace(self.log_path, new_log)
        self.log_path = new_log
        self.suffix = suffix

    def delete_files(self) -> None:
        """Close and unlink the files (whatever their current suffix)."""
        self.close()
        for p in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path.name}, size={self.size})"
