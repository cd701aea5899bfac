"""The object store a tiered log copies its segments to: what the remote log manager needs of it.

Implementations: `s3.S3ObjectStore` (any S3-compatible server) and `dir_store.DirObjectStore`
(a directory, e.g. a shared mount; also what the storage tests use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ObjectStoreError(Exception):
    """A failed object store call. `retriable`: worth trying again later (unreachable, throttled,
    5xx, timeout, partial body); not retriable: refused (credentials, no such bucket)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class ObjectNotFoundError(ObjectStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no such object: {key}", retriable=False)
        self.key = key


class ObjectStore(Protocol):
    async def put_file(self, key: str, path: Path, length: int) -> None:
        """Store the first `length` bytes of `path` under `key` (a segment file may be longer than
        its data: preallocated or index files). Raises ObjectStoreError."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (end None: to its end; fewer when the object is shorter).
        Raises ObjectNotFoundError, ObjectStoreError."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete objects; keys that do not exist are not an error."""
        ...

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object whose key starts with `prefix`, sorted by key."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True, frozen=True)
class ObjectStoreConfig:
    """Where remote segments go. `kind` "s3" (endpoint, bucket, region, keys) or "dir" (`directory`).
    Credentials None: the standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, ...)."""

    kind: str = "s3"
    endpoint: str | None = None
    bucket: str = "kafkapy"
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    directory: str | None = None
    request_timeout_ms: int = 30_000
    path_style: bool = True
