"""v2 batch header access for storage hot paths, on top of protocol.records.

Rewrites and CRC come from kafkapy.protocol.records. The one local addition
is PREFIX, a struct for the first 43 header bytes unpacked into a plain
tuple, so header scans and offset assignment allocate no BatchHeader per
batch. Pure functions; safe for concurrent use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kafkapy.protocol import errors as _protocol_errors
from kafkapy.protocol import records as _records
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.records import (
    BATCH_HEADER_SIZE,
    CONTROL_MASK,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    TIMESTAMP_TYPE_MASK,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)
from kafkapy.storage.errors import InvalidRecordsError, RecordTooLargeError

__all__ = [
    "BATCH_HEADER_SIZE",
    "CONTROL_MASK",
    "LOG_OVERHEAD",
    "MIN_BATCH_LENGTH",
    "PREFIX",
    "PREFIX_SIZE",
    "TIMESTAMP_TYPE_MASK",
    "RecordsSummary",
    "crc_ok",
    "set_base_offset",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "validate_records",
]

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
# lastOffsetDelta, baseTimestamp, maxTimestamp.
PREFIX = struct.Struct(">qiibIhiqq")
PREFIX_SIZE = PREFIX.size
_U32 = struct.Struct(">I")


@dataclass(slots=True)
class RecordsSummary:
    """What validate_records learned from a produce buffer."""

    batch_count: int
    record_count: int
    max_timestamp: int
    size: int


def crc_ok(buf: bytes | bytearray | memoryview, pos: int, length: int) -> bool:
    """True when the stored CRC matches; `length` is the batchLength field."""
    stored: int = _U32.unpack_from(buf, pos + 17)[0]
    return _records.compute_crc(buf, pos, length + LOG_OVERHEAD) == stored


def validate_records(
    buf: bytes | bytearray | memoryview,
    *,
    max_batch_bytes: int | None = None,
    allow_control: bool = False,
) -> RecordsSummary:
    """Check a produce buffer (whole v2 batches, CRCs, sizes) before append.

    Raises InvalidRecordsError / RecordTooLargeError. Per-batch work only.
    """
    try:
        headers = _records.validate_records(buf, max_batch_bytes)
    except _protocol_errors.RecordTooLargeError as exc:
        raise RecordTooLargeError(str(exc)) from exc
    except DecodeError as exc:
        raise InvalidRecordsError(str(exc)) from exc
    count = 0
    max_ts = -1
    for h in headers:
        if h.is_control and not allow_control:
            raise InvalidRecordsError("control batches cannot be produced")
        count += h.records_count
        max_ts = max(max_ts, h.max_timestamp)
    return RecordsSummary(len(headers), count, max_ts, len(buf))
