"""DirObjectStore: the ObjectStore over a local directory (a shared mount, or the storage tests).

A key `a/b/c` is the file `<directory>/a/b/c`. Writes go to a temporary file in the same directory,
renamed over the target, so a reader sees a whole object or none; with `sync` (the default) the
file and the rename are fsynced before the put returns, as the local copy may be deleted next. File I/O runs in worker threads
(asyncio.to_thread) so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from kafkapy.storage.checkpoint import fsync_dir
from kafkapy.storage.remote.object_store import ObjectNotFoundError, ObjectStoreError

_TMP_SUFFIX = ".part"
_COPY_CHUNK = 1 << 20


class DirObjectStore:
    """Objects as files under `directory` (see the module docstring)."""

    def __init__(self, directory: Path | str, *, sync: bool = True) -> None:
        self.directory = Path(directory)
        self._sync = sync

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or key.endswith(_TMP_SUFFIX):
            raise ObjectStoreError(f"invalid object key {key!r}", retriable=False)
        return self.directory.joinpath(*parts)

    def _write(self, key: str, chunks: Sequence[bytes] | None, src: Path | None, length: int) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            with open(tmp, "wb") as out:
                if chunks is not None:
                    for c in chunks:
                        out.write(c)
                elif src is not None:
                    with open(src, "rb") as inp:
                        left = length
                        while left > 0:
                            data = inp.read(min(left, _COPY_CHUNK))
                            if not data:
                                raise ObjectStoreError(f"{src} is shorter than {length} bytes", retriable=False)
                            out.write(data)
                            left -= len(data)
                if self._sync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, target)
            if self._sync:
                # the object outlives the local segment it copies: the rename must be durable too
                fsync_dir(target.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ObjectStoreError(f"put {key}: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def put_file(self, key: str, path: Path, length: int) -> None:
        await asyncio.to_thread(self._write, key, None, Path(path), length)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, [bytes(data)], None, len(data))

    def _read(self, key: str, start: int, end: int | None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(key) from exc
        except OSError as exc:
            raise ObjectStoreError(f"get {key}: {exc}") from exc

    async def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        return await asyncio.to_thread(self._read, key, start, end)

    def _delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise ObjectStoreError(f"delete {key}: {exc}") from exc
            # drop directories left empty, up to the store's root
            parent = path.parent
            while parent != self.directory and parent.is_relative_to(self.directory):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    async def delete(self, keys: Sequence[str]) -> None:
        await asyncio.to_thread(self._delete, list(keys))

    def _list(self, prefix: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        root = self.directory
        if not root.is_dir():
            return out
        # walk only below the deepest directory the prefix names
        head = prefix.rpartition("/")[0]
        start = root.joinpath(*head.split("/")) if head else root
        if not start.is_dir():
            return out
        for dirpath, _, files in os.walk(start):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    try:
                        size = os.stat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:
                        continue
                    out.append((key, size))
        out.sort()
        return out

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        return await asyncio.to_thread(self._list, prefix)

    async def close(self) -> None:
        return None
