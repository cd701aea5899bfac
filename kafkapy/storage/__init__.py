"""Partition log storage: segments, indexes, partition logs, the log manager.

Layering (each module documents its own concurrency rules):
index (OffsetIndex, TimeIndex) < segment (LogSegment) < local_log (LocalLog,
the segment list) < log_loader (loading and recovery), retention (retention
and the compaction swap) < log (PartitionLog, the facade) < log_manager
(LogManager). offset_checkpoint writes a partition's offsets; cleaner builds
compacted segments against a narrow protocol and never imports log. Storage
never imports kafkapy.server or generated message classes.
"""

from kafkapy.storage._batch import RecordsSummary, validate_records
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import (
    CorruptLogError,
    InvalidRecordsError,
    LogClosedError,
    LogDirError,
    LogExistsError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from kafkapy.storage.log import AppendResult, OffsetAndTimestamp, PartitionLog, ReadResult
from kafkapy.storage.log_manager import LogManager
from kafkapy.storage.segment import FileSlice, LogSegment

__all__ = [
    "AppendResult",
    "CorruptLogError",
    "FileSlice",
    "InvalidRecordsError",
    "LogClosedError",
    "LogConfig",
    "LogDirError",
    "LogExistsError",
    "LogManager",
    "LogSegment",
    "OffsetAndTimestamp",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
    "RecordTooLargeError",
    "RecordsSummary",
    "StorageError",
    "validate_records",
]
