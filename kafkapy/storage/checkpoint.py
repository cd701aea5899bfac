"""Small text checkpoint files written atomically (tmp + fsync + rename).

Format follows Kafka's checkpoint files: a version line, an entry-count
line, then one entry per line. Stateless functions; callers serialize writes
to the same path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from kafkapy.storage.errors import CorruptLogError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync: bool = True, sync_dir: bool = True) -> None:
    """Write `data` to `path` through a temporary file, renamed over it: a reader sees the old or the
    new content whole. A failed write (OSError, e.g. a full disk) removes the temporary file and
    leaves `path` as it was. `sync_dir=False` skips the directory's fsync: a power cut may then
    undo the rename (the old content stays, whole), for files where an older content is safe."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync and sync_dir:
        fsync_dir(path.parent)


def write_checkpoint(
    path: Path, entries: list[str], *, version: int = 0, sync: bool = True, sync_dir: bool = True
) -> None:
    text = f"{version}\n{len(entries)}\n" + "".join(e + "\n" for e in entries)
    write_atomic(path, text.encode(), sync=sync, sync_dir=sync_dir)


def read_checkpoint(path: Path, *, version: int = 0) -> list[str] | None:
    """Entry lines of a checkpoint file, None if absent; CorruptLogError if malformed."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        if int(lines[0]) != version:
            raise CorruptLogError(f"{path}: unsupported version {lines[0]}")
        count = int(lines[1])
    except (IndexError, ValueError) as exc:
        raise CorruptLogError(f"{path}: malformed header") from exc
    entries = [ln for ln in lines[2:] if ln.strip()]
    if len(entries) != count:
        raise CorruptLogError(f"{path}: expected {count} entries, found {len(entries)}")
    return entries
