"""Leader epoch cache: epoch -> start offset, persisted in `leader-epoch-checkpoint`.

Used by OffsetForLeaderEpoch and follower truncation. Changes are rare (once
per leadership change), so every change rewrites the file atomically.
Not safe for concurrent mutation; called from the log's owner thread.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import structlog

from kafkapy.storage.checkpoint import read_checkpoint, write_checkpoint
from kafkapy.storage.errors import CorruptLogError

log = structlog.get_logger(__name__)

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@dataclass(slots=True)
class EpochEntry:
    epoch: int
    start_offset: int


class LeaderEpochCache:
    """Ordered epoch entries; epochs and start offsets both strictly increase."""

    def __init__(self, directory: Path, *, sync: bool = True) -> None:
        self.path = directory / FILE_NAME
        self._sync = sync
        self._entries: list[EpochEntry] = []
        self.dirty = False  # the file is behind the memory (a write failed)
        try:
            lines = read_checkpoint(self.path) or []
            for ln in lines:
                epoch, start = ln.split()
                self._entries.append(EpochEntry(int(epoch), int(start)))
        except (CorruptLogError, ValueError):
            log.warning("epoch_cache.corrupt", path=str(self.path))
            self._entries = []

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    @property
    def earliest_entry(self) -> EpochEntry | None:
        return self._entries[0] if self._entries else None

    def assign(self, epoch: int, start_offset: int, *, strict: bool = True) -> bool:
        """Record that `epoch` starts at `start_offset` if it is newer; True if changed.

        When the file cannot be written (OSError): strict (an append) puts the memory back and
        raises; otherwise (recovery, which read the epoch from the log) the entry stays in memory
        and the next flush writes it (`persist_if_dirty`)."""
        if epoch < 0:
            return False
        if self._entries:
            last = self._entries[-1]
            if epoch <= last.epoch:
                return False
            if start_offset < last.start_offset:
                # Conflicting history: drop entries that start after this one.
                self._entries = [e for e in self._entries if e.start_offset < start_offset]
        before = list(self._entries)
        self._entries.append(EpochEntry(epoch, start_offset))
        try:
            self._persist()
        except OSError:
            if not strict:
                return True
            self._entries = before  # the append this was for fails: nothing changed
            raise
        return True

    def epoch_for_offset(self, offset: int) -> int:
        starts = [e.start_offset for e in self._entries]
        i = bisect_right(starts, offset)
        return self._entries[i - 1].epoch if i else UNDEFINED_EPOCH

    def end_offset_for(self, requested: int, log_end_offset: int) -> tuple[int, int]:
        """(largest epoch <= requested, end offset of that epoch), Kafka's semantics."""
        if requested == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if requested == self._entries[-1].epoch:
            return requested, log_end_offset
        epochs = [e.epoch for e in self._entries]
        i = bisect_right(epochs, requested)
        if i == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        higher = self._entries[i]
        if i == 0:
            return requested, higher.start_offset
        return self._entries[i - 1].epoch, higher.start_offset

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop epochs starting at or after `end_offset` (log truncated to it)."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self._persist()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop epochs wholly before `start_offset`; the one spanning it now starts there."""
        i = bisect_right([e.start_offset for e in self._entries], start_offset)
        if i == 0:
            return
        changed = i > 1 or self._entries[i - 1].start_offset != start_offset
        if not changed:
            return
        spanning = EpochEntry(self._entries[i - 1].epoch, start_offset)
        self._entries = [spanning] + self._entries[i:]
        self._persist()

    def clear(self) -> None:
        self._entries = []
        self._persist()

    def persist_if_dirty(self) -> None:
        """Write the entries a failed write left in memory only (the log's flush calls this)."""
        if self.dirty:
            self._persist()

    def _persist(self) -> None:
        try:
            write_checkpoint(self.path, [f"{e.epoch} {e.start_offset}" for e in self._entries], sync=self._sync)
        except OSError:
            self.dirty = True
            raise
        self.dirty = False
