"""Tiered storage (KIP-405): closed segments copied to an object store and read back from it."""

from __future__ import annotations

from pathlib import Path

from kafkapy.storage.remote.object_store import ObjectStore, ObjectStoreConfig


def open_object_store(config: ObjectStoreConfig) -> ObjectStore:
    """The store `config.kind` names: "s3" (S3ObjectStore) or "dir" (DirObjectStore on
    `config.directory`, below `config.prefix` when set). Imported here, on use, so that a broker
    without tiered storage never loads aiobotocore."""
    if config.kind == "s3":
        from kafkapy.storage.remote.s3 import S3ObjectStore

        return S3ObjectStore(config)
    if config.kind == "dir":
        from kafkapy.storage.remote.dir_store import DirObjectStore

        if not config.directory:
            raise ValueError('object store kind "dir" needs a directory')
        prefix = config.prefix.strip("/")
        return DirObjectStore(Path(config.directory) / prefix if prefix else Path(config.directory))
    raise ValueError(f'unknown object store kind {config.kind!r} (expected "s3" or "dir")')
