"""The aborted-transaction index of one segment: `<base offset>.txnindex`.

One entry per transaction aborted by a marker written into the segment,
appended when the ABORT marker is: producer id, first offset, last offset
(the marker's) and the partition's last stable offset once it closed.
Fetch under read_committed lists the aborted transactions overlapping the
fetched range (KIP-98) from these entries.

File layout (Kafka's): a sequence of 34-byte big-endian entries, each
version i16 (0), producer id i64, first offset i64, last offset i64, last
stable offset i64. Entries are in marker order (ascending last offset).
The file is a cache of what the log says: recovery rebuilds the entries of
markers after the producer-state snapshot it starts from, and a torn tail
entry is ignored.

Concurrency: the event loop only. Entries are kept in memory once read.
"""

from __future__ import annotations

import errno
import os
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

TXNINDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
_VERSION = 0


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def txn_index_path(directory: Path, base_offset: int) -> Path:
    return directory / f"{base_offset:020d}{TXNINDEX_SUFFIX}"


@dataclass(slots=True)
class TransactionIndex:
    path: Path
    base_offset: int
    sync: bool = True
    _entries: list[AbortedTxn] | None = None
    _lasts: list[int] = field(default_factory=list)  # last offsets, for bisect
    dirty: bool = False  # an entry is in memory only: a write failed (full disk); `persist` writes all

    @property
    def entries(self) -> list[AbortedTxn]:
        if self._entries is None:
            self._entries = self._read()
            self._lasts = [e.last_offset for e in self._entries]
        return self._entries

    def _read(self) -> list[AbortedTxn]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[AbortedTxn] = []
        usable = len(data) - len(data) % _ENTRY.size
        for pos in range(0, usable, _ENTRY.size):
            version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
            if version != _VERSION:
                log.warning("txn_index.bad_entry", path=str(self.path), position=pos, version=version)
                break
            out.append(AbortedTxn(pid, first, last, lso))
        if usable != len(data):
            log.warning("txn_index.torn_tail", path=str(self.path), bytes=len(data) - usable)
        return out

    def append(self, txn: AbortedTxn) -> None:
        entries = self.entries
        if entries and txn.last_offset <= entries[-1].last_offset:
            return  # already indexed (recovery replays markers it may have seen)
        entries.append(txn)
        self._lasts.append(txn.last_offset)
        if self.dirty:
            try:
                self.persist()
            except OSError:
                pass
            return
        data = _ENTRY.pack(_VERSION, txn.producer_id, txn.first_offset, txn.last_offset, txn.last_stable_offset)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    if os.write(fd, data) != len(data):
                        raise OSError(errno.ENOSPC, "short write")
                    if self.sync:
                        os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # a torn entry would be read as the end of the file
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            # the marker is in the log already: the entry stays in memory, the log's next flush
            # writes it (and fails until it can)
            log.warning("txn_index.write_failed", path=str(self.path), error=exc.strerror or str(exc))
            self.dirty = True

    def persist(self) -> None:
        """Rewrite the file from memory (tmp + rename); raises OSError when the disk refuses."""
        self._rewrite(self.entries)
        self.dirty = False

    def truncate_from(self, offset: int) -> None:
        """Drop entries whose marker is at or after `offset`."""
        entries = self.entries
        keep = bisect_left(self._lasts, offset)
        if keep == len(entries):
            return
        del entries[keep:]
        del self._lasts[keep:]
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        try:
            self._rewrite(entries)
            self.dirty = False
        except OSError:
            self.dirty = True  # the file may list more than the log holds: the next flush rewrites it
            raise

    def _rewrite(self, entries: list[AbortedTxn]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(
                b"".join(
                    _ENTRY.pack(_VERSION, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset)
                    for e in entries
                )
            )
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def collect(self, fetch_offset: int, upper: int, out: list[AbortedTxn]) -> bool:
        """Append entries overlapping [fetch_offset, upper) to `out`.

        Returns True once an entry shows that no later transaction can
        overlap the range (its last stable offset reached `upper`).
        """
        entries = self.entries
        for i in range(bisect_left(self._lasts, fetch_offset), len(entries)):
            e = entries[i]
            if e.first_offset < upper:
                out.append(e)
            if e.last_stable_offset >= upper:
                return True
        return False

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self._entries = []
        self._lasts = []
