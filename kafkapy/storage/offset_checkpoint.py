"""The per-partition offsets checkpoint, `partition-offsets.checkpoint`.

One file per partition directory holding the log start offset, recovery
point, high watermark and cleaner offset, one `key value` entry per line in
the checkpoint format of checkpoint.py. Unknown keys are read into `extra`
and not written back.

Concurrency: `write` may be called from the event loop and from a compaction
thread (after a segment swap); a lock serializes the writers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.storage.checkpoint import read_checkpoint, write_checkpoint
from kafkapy.storage.errors import CorruptLogError

log = structlog.get_logger(__name__)

STATE_FILE = "partition-offsets.checkpoint"
_KEYS = ("log_start_offset", "recovery_point", "high_watermark", "cleaner_offset")


@dataclass(slots=True)
class PartitionOffsets:
    log_start_offset: int = 0
    recovery_point: int = 0
    high_watermark: int = 0
    cleaner_offset: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class OffsetCheckpoint:
    """Reads and atomically rewrites one partition's offsets checkpoint."""

    def __init__(self, directory: Path, *, sync: bool = True) -> None:
        self.path = directory / STATE_FILE
        self._sync = sync
        self._lock = threading.Lock()

    def read(self) -> PartitionOffsets:
        """The stored offsets; all zero when the file is absent or corrupt."""
        state = PartitionOffsets()
        try:
            for ln in read_checkpoint(self.path) or []:
                key, value = ln.split()
                if key == "log_start_offset":
                    state.log_start_offset = int(value)
                elif key == "recovery_point":
                    state.recovery_point = int(value)
                elif key == "high_watermark":
                    state.high_watermark = int(value)
                elif key == "cleaner_offset":
                    state.cleaner_offset = int(value)
                else:
                    state.extra[key] = int(value)
        except (CorruptLogError, ValueError):
            log.warning("log.state_corrupt", dir=str(self.path.parent))
            return PartitionOffsets()
        return state

    def write(
        self,
        log_start_offset: int,
        recovery_point: int,
        high_watermark: int,
        cleaner_offset: int,
        *,
        sync_dir: bool = True,
    ) -> None:
        """Rewrite the file; `sync_dir=False` (a flush moving the recovery point) leaves the
        rename's durability to the next write: losing it to a power cut keeps the older file,
        whose recovery point only makes recovery check more."""
        values = (log_start_offset, recovery_point, high_watermark, cleaner_offset)
        entries = [f"{key} {value}" for key, value in zip(_KEYS, values, strict=True)]
        with self._lock:
            write_checkpoint(self.path, entries, sync=self._sync, sync_dir=sync_dir)
