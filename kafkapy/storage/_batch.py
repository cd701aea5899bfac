"""Private v2 record-batch header helpers used by storage hot paths.

Only the fixed 61-byte header is touched; record bytes are never decoded
here. Pure functions over caller buffers, safe for concurrent use.
Record-level work (compaction, timestamp lookups) goes through
kafkapy.protocol.records instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

LOG_OVERHEAD = 12  # baseOffset int64 + batchLength int32
BATCH_HEADER_SIZE = 61
MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD
CRC_START = 21  # CRC-32C covers attributes .. end of batch

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
# lastOffsetDelta, baseTimestamp, maxTimestamp: the first 43 header bytes.
PREFIX = struct.Struct(">qiibIhiqq")
PREFIX_SIZE = PREFIX.size
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")

TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20


@dataclass(slots=True)
class RecordsSummary:
    """What validate_records learned from a buffer of batches."""

    batch_count: int
    record_count: int
    max_timestamp: int
    size: int


def unpack_prefix(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, ...]:
    """The 9 leading header fields of the batch at `pos`."""
    return PREFIX.unpack_from(buf, pos)


def set_base_offset(buf: bytearray | memoryview, pos: int, offset: int) -> None:
    _I64.pack_into(buf, pos, offset)


def set_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    _I32.pack_into(buf, pos + 12, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, ts: int) -> None:
    """Mark the batch LogAppendTime with max timestamp `ts`; rewrites the CRC."""
    attrs = _I16.unpack_from(buf, pos + 21)[0]
    _I16.pack_into(buf, pos + 21, attrs | TIMESTAMP_TYPE_BIT)
    _I64.pack_into(buf, pos + 35, ts)
    length = _I32.unpack_from(buf, pos + 8)[0]
    end = pos + LOG_OVERHEAD + length
    _U32.pack_into(buf, pos + 17, crc32c.crc32c(memoryview(buf)[pos + CRC_START : end]))


def crc_ok(buf: bytes | bytearray | memoryview, pos: int, length: int) -> bool:
    """True when the stored CRC matches; `length` is the batchLength field."""
    stored = _U32.unpack_from(buf, pos + 17)[0]
    end = pos + LOG_OVERHEAD + length
    return crc32c.crc32c(memoryview(buf)[pos + CRC_START : end]) == stored


def validate_records(
    buf: bytes | bytearray | memoryview,
    *,
    max_batch_bytes: int | None = None,
    allow_control: bool = False,
) -> RecordsSummary:
    """Check a produce buffer: whole v2 batches, CRCs, sizes.

    Raises InvalidRecordsError / RecordTooLargeError. Per-batch work only.
    """
    from kafkapy.storage.errors import InvalidRecordsError, RecordTooLargeError

    view = memoryview(buf)
    total = len(view)
    pos = 0
    batches = records = 0
    max_ts = -1
    if total == 0:
        raise InvalidRecordsError("empty records")
    while pos < total:
        if total - pos < BATCH_HEADER_SIZE:
            raise InvalidRecordsError(f"truncated batch header at {pos}")
        (_, length, _, magic, _, attrs, last_delta, _, bmax) = PREFIX.unpack_from(view, pos)
        if magic != 2:
            raise InvalidRecordsError(f"unsupported magic {magic} at {pos}")
        if length < MIN_BATCH_LENGTH:
            raise InvalidRecordsError(f"bad batch length {length} at {pos}")
        size = length + LOG_OVERHEAD
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise RecordTooLargeError(f"batch of {size} bytes > {max_batch_bytes}")
        if pos + size > total:
            raise InvalidRecordsError(f"truncated batch at {pos}")
        if not crc_ok(view, pos, length):
            raise InvalidRecordsError(f"CRC mismatch in batch at {pos}")
        if attrs & CONTROL_BIT and not allow_control:
            raise InvalidRecordsError("control batches cannot be produced")
        count = _I32.unpack_from(view, pos + 57)[0]
        if last_delta < 0 or count != last_delta + 1:
            raise InvalidRecordsError(
                f"records count {count} != lastOffsetDelta+1 ({last_delta + 1})"
            )
        batches += 1
        records += count
        if bmax > max_ts:
            max_ts = bmax
        pos += size
    return RecordsSummary(batches, records, max_ts, total)
