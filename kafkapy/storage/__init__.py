"""Partition log storage: segments, indexes, partition logs, the log manager.

Layering (each module documents its own concurrency rules):
index (OffsetIndex, TimeIndex) < segment (LogSegment) < log (PartitionLog)
< log_manager (LogManager); cleaner does compaction. Storage never imports
kafkapy.server or generated message classes.
"""

from kafkapy.storage._batch import RecordsSummary, validate_records
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import (
    CorruptLogError,
    InvalidRecordsError,
    LogClosedError,
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
