"""Sparse offset and time indexes of one log segment.

File formats follow Kafka (big-endian):
  .index      relative offset int32 + file position int32 (8 bytes/entry)
  .timeindex  timestamp int64 + relative offset int32   (12 bytes/entry)

Files are appended with plain os.write (no preallocation, so no trimming on
close) and mirrored in memory as arrays; lookups are binary searches over the
arrays. Indexes are caches: `load()` sanity-checks the file and returns False
when it is doubtful, and the segment then rebuilds it from the log.

Writes that fail (a full or failing disk) never fail the append that made
them: the memory arrays stay right, the file is cut back to its last whole
entry and rewritten whole from memory at the next flush or close (until then
it lacks the newest entries, which an index may: lookups only scan further).

Not safe for concurrent mutation: appends/truncates come from the event-loop
thread (or from a compaction thread on a private, not yet published index).
Lookups on a published index are safe alongside appends under the GIL.
"""

from __future__ import annotations

import errno
import os
import sys
from array import array
from bisect import bisect_right
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_BIG = sys.byteorder == "big"


def _to_native(raw: bytes, code: str) -> array[int]:
    a = array(code)
    a.frombytes(raw)
    if not _BIG:
        a.byteswap()
    return a


def _to_big(values: array[int]) -> bytes:
    if _BIG:
        return values.tobytes()
    a = array(values.typecode, values)
    a.byteswap()
    return a.tobytes()


class _IndexFile:
    """Shared file handling: lazy fd for appends, size limits, truncation."""

    entry_size: int = 0

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_bytes // self.entry_size)
        self._fd: int | None = None
        self._size = 0  # bytes of whole entries in the file while _fd is open
        self.dirty = False  # the file lacks entries the memory has (a write failed)

    def _write(self, data: bytes) -> None:
        if self.dirty:
            self._persist()  # the memory already holds the new entry
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._size = os.fstat(self._fd).st_size
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
            self._size += written
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        """Cut the file back to its whole entries; it is rewritten from memory later."""
        if not self.dirty:
            log.warning("index.write_failed", path=str(self.path), error=exc.strerror or str(exc))
        self.dirty = True
        try:
            if self._fd is not None:
                os.ftruncate(self._fd, self._size)
        except OSError:
            self._close_fd()
            try:
                os.truncate(self.path, 0)  # an empty index is a valid one
            except OSError:
                pass

    def _persist(self) -> None:
        raise NotImplementedError

    def _rewrite(self, data: bytes) -> None:
        """Replace the file content (used by truncate and rebuild)."""
        self._close_fd()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                if data and os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
            finally:
                os.close(fd)
            self.dirty = False
        except OSError as exc:
            self._size = 0
            self._write_failed(exc)

    def _read_file(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def flush(self) -> None:
        if self.dirty:
            self._persist()
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self.dirty:
            self._persist()
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rename(self, path: Path) -> None:
        os.replace(self.path, path)
        self.path = path


class OffsetIndex(_IndexFile):
    """Maps offsets to .log file positions; entry = (last offset of a batch, its position)."""

    entry_size = 8

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(path, base_offset, max_index_bytes)
        self._rel = array("i")
        self._pos = array("i")

    def __len__(self) -> int:
        return len(self._rel)

    @property
    def is_full(self) -> bool:
        return len(self._rel) >= self.max_entries

    @property
    def last_entry(self) -> tuple[int, int]:
        """(absolute offset, position) of the last entry, or (base, 0)."""
        if not self._rel:
            return self.base_offset, 0
        return self.base_offset + self._rel[-1], self._pos[-1]

    def load(self, log_size: int) -> bool:
        """Read the file; False (and empty) if missing or implausible."""
        raw = self._read_file()
        self._rel = array("i")
        self._pos = array("i")
        if raw is None or len(raw) % 8:
            return False
        both = _to_native(raw, "i")
        rel, pos = both[0::2], both[1::2]
        rl, pl = rel.tolist(), pos.tolist()
        # Strictly increasing offsets and positions, all inside the log.
        if rl != sorted(set(rl)) or pl != sorted(set(pl)):
            return False
        if rl and (rl[0] < 0 or pl[0] < 0 or pl[-1] >= max(log_size, 1)):
            return False
        self._rel, self._pos = rel, pos
        return True

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        if self._rel and rel <= self._rel[-1]:
            return
        self._rel.append(rel)
        self._pos.append(position)
        self._write(_to_big(array("i", (rel, position))))

    def lookup(self, offset: int) -> int:
        """File position of the largest entry <= offset (0 if none)."""
        i = bisect_right(self._rel, offset - self.base_offset)
        return self._pos[i - 1] if i else 0

    def lookup_entry(self, offset: int) -> tuple[int, int]:
        """(absolute offset, position) of the largest entry <= offset, or (base, 0)."""
        i = bisect_right(self._rel, offset - self.base_offset)
        if not i:
            return self.base_offset, 0
        return self.base_offset + self._rel[i - 1], self._pos[i - 1]

    def truncate_to_position(self, position: int) -> None:
        """Drop entries at or beyond `position` in the log."""
        i = bisect_right(self._pos, position - 1)
        if i == len(self._pos):
            return
        del self._rel[i:]
        del self._pos[i:]
        self._persist()

    def reset(self) -> None:
        self._rel = array("i")
        self._pos = array("i")
        self._rewrite(b"")

    def _persist(self) -> None:
        both = array("i", bytes(8 * len(self._rel)))
        both[0::2] = self._rel
        both[1::2] = self._pos
        self._rewrite(_to_big(both))

    def entries(self) -> list[tuple[int, int]]:
        """(absolute offset, position) pairs; for tests and tools."""
        return [(self.base_offset + r, p) for r, p in zip(self._rel, self._pos)]


class TimeIndex(_IndexFile):
    """Maps timestamps to offsets; timestamps strictly increase across entries."""

    entry_size = 12

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        super().__init__(path, base_offset, max_index_bytes)
        self._ts = array("q")
        self._rel = array("i")

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def is_full(self) -> bool:
        return len(self._ts) >= self.max_entries

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, absolute offset) of the last entry."""
        if not self._ts:
            return None
        return self._ts[-1], self.base_offset + self._rel[-1]

    def load(self, max_relative_offset: int | None = None) -> bool:
        raw = self._read_file()
        self._ts = array("q")
        self._rel = array("i")
        if raw is None or len(raw) % 12:
            return False
        n = len(raw) // 12
        ts = _to_native(b"".join(raw[i * 12 : i * 12 + 8] for i in range(n)), "q")
        rel = _to_native(b"".join(raw[i * 12 + 8 : i * 12 + 12] for i in range(n)), "i")
        tl, rl = ts.tolist(), rel.tolist()
        if tl != sorted(set(tl)) or rl != sorted(rl):
            return False
        if rl and (rl[0] < 0 or (max_relative_offset is not None and rl[-1] > max_relative_offset)):
            return False
        self._ts, self._rel = ts, rel
        return True

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if it advances the largest timestamp."""
        if self._ts and timestamp <= self._ts[-1]:
            return
        rel = offset - self.base_offset
        if self._rel and rel < self._rel[-1]:
            return
        self._ts.append(timestamp)
        self._rel.append(rel)
        self._write(_to_big(array("q", (timestamp,))) + _to_big(array("i", (rel,))))

    def lookup(self, timestamp: int) -> int:
        """Offset of the largest entry with timestamp <= `timestamp` (base if none)."""
        i = bisect_right(self._ts, timestamp)
        return self.base_offset + self._rel[i - 1] if i else self.base_offset

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries whose offset is >= `offset`."""
        i = bisect_right(self._rel, offset - self.base_offset - 1)
        if i == len(self._rel):
            return
        del self._ts[i:]
        del self._rel[i:]
        self._persist()

    def reset(self) -> None:
        self._ts = array("q")
        self._rel = array("i")
        self._rewrite(b"")

    def _persist(self) -> None:
        ts_b, rel_b = _to_big(self._ts), _to_big(self._rel)
        self._rewrite(b"".join(ts_b[i * 8 : i * 8 + 8] + rel_b[i * 4 : i * 4 + 4] for i in range(len(self._ts))))

    def entries(self) -> list[tuple[int, int]]:
        return [(t, self.base_offset + r) for t, r in zip(self._ts, self._rel)]
