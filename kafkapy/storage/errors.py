"""Typed errors of the storage layer.

Storage knows nothing about Kafka error codes; the server maps these
exceptions to protocol errors (OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, ...).
"""

from __future__ import annotations

import errno as errno_codes


class StorageError(Exception):
    """Base class of every error raised by kafkapy.storage."""


class CorruptLogError(StorageError):
    """On-disk data that fails its structure or CRC checks."""


class InvalidRecordsError(StorageError):
    """Record bytes handed to append that are not valid v2 batches."""


class RecordTooLargeError(InvalidRecordsError):
    """A batch larger than max.message.bytes."""


class OffsetOutOfRangeError(StorageError):
    """A requested offset outside [log_start_offset, log_end_offset]."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class OffsetMovedToTieredStorageError(Exception):
    """A read of an offset in [log start, local log start) of a tiered log: the data is in the
    object store only (the remote log manager reads it). Not a StorageError on purpose: no handler
    of storage errors may mistake it for a failure."""

    def __init__(self, offset: int, local_log_start_offset: int, log_start_offset: int) -> None:
        super().__init__(
            f"offset {offset} is in remote storage (log start {log_start_offset}, local start {local_log_start_offset})"
        )
        self.offset = offset
        self.local_log_start_offset = local_log_start_offset
        self.log_start_offset = log_start_offset


class LogClosedError(StorageError):
    """An operation on a log or segment that has been closed or deleted."""


class LogExistsError(StorageError):
    """Creating a partition log that is already present."""


class LogDirError(StorageError):
    """A write to the data directory failed (Kafka's KafkaStorageException): the disk is full (ENOSPC,
    EDQUOT) or failing (EIO, EROFS, ...). Whatever the failed call had written is rolled back, so the
    log holds only whole batches; `full` tells the two cases apart."""

    FULL_ERRNOS = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT})

    def __init__(self, path: str, errno: int | None, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.errno = errno
        self.detail = detail

    @property
    def full(self) -> bool:
        return self.errno in self.FULL_ERRNOS

    @classmethod
    def from_os(cls, exc: OSError, path: object) -> LogDirError:
        return cls(str(path), exc.errno, exc.strerror or str(exc))
