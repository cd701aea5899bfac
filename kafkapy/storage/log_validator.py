"""LogValidator: Kafka's checks of produced batches, record by record, before they are appended.

`validate_for_append` takes the batches of one partition's produce data (already checked by header,
size and CRC: `records.validate_records`) and, as Kafka's LogValidator does:

- refuses control batches and producer ids without a sequence (INVALID_RECORD);
- walks every record (`record_scan.scan_records`: lengths, fields, offset deltas, the count against
  the bytes), decompressing compressed batches within a bound;
- checks each record's timestamp against message.timestamp.before/after.max.ms (INVALID_TIMESTAMP)
  and, on compacted topics, that it has a key (INVALID_RECORD), naming each failing record;
- rewrites the batch header where the producer got it wrong (maxTimestamp recomputed from the
  records, the timestamp type CreateTime) with a new CRC, in place;
- recompresses a batch whose codec differs from the topic's compression.type.

Nothing is copied for an uncompressed batch kept as it is. Answers that Kafka 4.3.1 gives
(interop/diff_records.py) and where kafkapy differs are in docs/compatibility.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from kafkapy.protocol import compression, records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from kafkapy.protocol.record_scan import OVERLONG_LENGTH, record_timestamps, scan_records
from kafkapy.protocol.records import BatchHeader
from kafkapy.storage.config import LogConfig

_NO_TIMESTAMP: Final = -1
_LONG_MAX: Final = (1 << 63) - 1
# A compressed batch may inflate to at most this many times the topic's max.message.bytes
# (and at least 64 MiB): the decompression bound that protects the broker.
_INFLATE_FACTOR: Final = 4
_CODECS: Final = {"uncompressed": compression.NONE, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_ATTRS_MAXTS: Final = struct.Struct(">hiqq")


class BatchRejected(Exception):
    """The append is refused with ``code``; ``errors`` name records (batch index, message) when
    the refusal is about particular records (Produce v8+ record_errors), and ``message`` is then
    the response's error_message."""

    def __init__(self, code: int, message: str, errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []

    @property
    def per_record(self) -> bool:
        return bool(self.errors)


@dataclass(slots=True, frozen=True)
class Policy:
    """What LogValidator needs of a topic's config."""

    create_time: bool
    before_max_ms: int
    after_max_ms: int
    compacted: bool
    target_codec: int | None  # None: keep the producer's (compression.type=producer)
    target_level: int | None
    max_inflated: int

    @classmethod
    def of(cls, cfg: LogConfig) -> Policy:
        before, after = cfg.message_timestamp_before_max_ms, cfg.message_timestamp_after_max_ms
        diff = cfg.message_timestamp_difference_max_ms
        # Kafka 3.6-3.9: the older message.timestamp.difference.max.ms applies where before/after are unset
        if before == _LONG_MAX:
            before = diff
        if after == _LONG_MAX:
            after = diff
        target = _CODECS.get(cfg.compression_type)
        return cls(
            create_time=not cfg.log_append_time,
            before_max_ms=before,
            after_max_ms=after,
            compacted=cfg.compact,
            target_codec=target,
            target_level=_level(cfg, target),
            max_inflated=max(records.DEFAULT_MAX_UNCOMPRESSED, _INFLATE_FACTOR * cfg.max_message_bytes),
        )


def _level(cfg: LogConfig, codec: int | None) -> int | None:
    """The topic's compression level for ``codec`` (KIP-390); None: the codec's default."""
    if codec == compression.GZIP:
        return None if cfg.compression_gzip_level == -1 else cfg.compression_gzip_level
    if codec == compression.LZ4:
        return cfg.compression_lz4_level
    if codec == compression.ZSTD:
        return cfg.compression_zstd_level
    return None


def validate_for_append(
    buf: bytearray | memoryview, headers: list[BatchHeader], policy: Policy, now: int, where: str
) -> bytearray | memoryview:
    """Check and fix the batches in ``buf`` (their ``headers`` as `validate_records` gave them);
    returns the bytes to append (``buf`` itself unless a batch was recompressed). Raises
    `BatchRejected`. ``where`` names the partition in messages ("topic-partition")."""
    pos = 0
    rebuilt: list[bytearray | memoryview] | None = None
    view = memoryview(buf)
    for h in headers:
        size = h.batch_length + records.LOG_OVERHEAD
        new = _validate_batch(view, pos, h, policy, now, where)
        if new is not None and rebuilt is None:
            rebuilt = [view[:pos]]
        if rebuilt is not None:
            rebuilt.append(new if new is not None else view[pos : pos + size])
        pos += size
    if rebuilt is None:
        return buf
    return bytearray(b"".join(rebuilt))


def _validate_batch(
    buf: memoryview, pos: int, h: BatchHeader, policy: Policy, now: int, where: str
) -> bytearray | None:
    """One batch: None when it is kept in ``buf`` (possibly with its header rewritten), else the
    batch to store instead (recompressed)."""
    if h.base_offset != 0:
        raise BatchRejected(
            ErrorCode.INVALID_RECORD,
            f"The baseOffset of the record batch in the append to {where} should be 0, but it is {h.base_offset}",
        )
    attrs = h.attributes
    if attrs & records.CONTROL_MASK:
        raise BatchRejected(ErrorCode.INVALID_RECORD, f"Clients are not allowed to write control records in {where}")
    if h.producer_id >= 0 and h.base_sequence < 0:
        raise BatchRejected(
            ErrorCode.INVALID_RECORD,
            f"Invalid sequence number {h.base_sequence} in record batch with producerId {h.producer_id} in {where}",
        )
    codec = attrs & records.COMPRESSION_MASK
    if codec > compression.ZSTD:
        # Kafka fails on an unknown codec id without a specific error
        raise BatchRejected(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {codec}")
    size = h.batch_length + records.LOG_OVERHEAD
    start, end = pos + records.RECORDS_OFFSET, pos + size
    data: bytes | memoryview = buf
    if codec != compression.NONE:
        try:
            data = compression.decompress(codec, buf[start:end], policy.max_inflated)
        except RecordTooLargeError as e:
            raise BatchRejected(ErrorCode.MESSAGE_TOO_LARGE, f"Compressed batch inflates too far: {e}") from None
        except CorruptRecordError as e:
            # Kafka answers an undecodable payload with UNKNOWN_SERVER_ERROR
            raise BatchRejected(ErrorCode.UNKNOWN_SERVER_ERROR, f"Failed to decompress record stream: {e}") from None
        start, end = 0, len(data)
    try:
        lo, hi, keyless = scan_records(data, start, end, h.records_count)
    except InvalidRecordError as e:
        msg = str(e)
        code = ErrorCode.UNKNOWN_SERVER_ERROR if msg == OVERLONG_LENGTH else ErrorCode.INVALID_RECORD
        raise BatchRejected(code, f"{msg} in {where}") from None
    append_time_flag = attrs & records.TIMESTAMP_TYPE_MASK
    if append_time_flag:
        # a producer's LogAppendTime batch: Kafka reads every record's timestamp as maxTimestamp
        first = last = h.max_timestamp
    else:
        first, last = h.base_timestamp + lo, h.base_timestamp + hi
    if (
        (policy.compacted and keyless)
        or (policy.create_time and (first < now - policy.before_max_ms or last > now + policy.after_max_ms))
        or (append_time_flag and (not policy.create_time or h.max_timestamp == _NO_TIMESTAMP))
    ):
        _record_errors(data, start, end, h, policy, now, where)
    max_ts = last if last > _NO_TIMESTAMP else _NO_TIMESTAMP
    target = policy.target_codec
    if target is not None and target != codec:
        return _recompress(buf, pos, h, data[start:end], target, policy.target_level, max_ts, policy.create_time)
    if policy.create_time and (append_time_flag or h.max_timestamp != max_ts):
        _ATTRS_MAXTS.pack_into(
            buf,
            pos + records.ATTRIBUTES_OFFSET,
            attrs & ~records.TIMESTAMP_TYPE_MASK,
            h.last_offset_delta,
            h.base_timestamp,
            max_ts,
        )
        struct.pack_into(">I", buf, pos + records.CRC_OFFSET, records.compute_crc(buf, pos, size))
    return None


def _record_errors(
    data: bytes | memoryview, start: int, end: int, h: BatchHeader, policy: Policy, now: int, where: str
) -> None:
    """The slow path, once a batch is known to hold a failing record: name each one, as Kafka does."""
    errors: list[tuple[int, str]] = []
    timestamp_error = False
    append_time_flag = bool(h.attributes & records.TIMESTAMP_TYPE_MASK)
    lower, upper = now - policy.before_max_ms, now + policy.after_max_ms
    for i, (delta, has_key) in enumerate(record_timestamps(data, start, end, h.records_count)):
        ts = h.max_timestamp if append_time_flag else h.base_timestamp + delta
        if policy.compacted and not has_key:
            errors.append((i, f"Compacted topic cannot accept message without key in topic partition {where}."))
        elif policy.create_time and ts != _NO_TIMESTAMP:
            if ts < lower or ts > upper:
                timestamp_error = True
                errors.append(
                    (
                        i,
                        f"Timestamp {ts} of message with offset {i} is out of range. "
                        f"The timestamp should be within [{lower}, {upper}]",
                    )
                )
        elif append_time_flag:
            timestamp_error = True
            errors.append(
                (
                    i,
                    f"Invalid timestamp type in message with offset {i}. "
                    "Producer should not set timestamp type to LogAppendTime.",
                )
            )
    if not errors:
        return
    if timestamp_error:
        raise BatchRejected(
            ErrorCode.INVALID_TIMESTAMP, "One or more records have been rejected due to invalid timestamp", errors
        )
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    raise BatchRejected(
        ErrorCode.INVALID_RECORD,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]",
        errors,
    )


def _recompress(
    buf: memoryview,
    pos: int,
    h: BatchHeader,
    payload: bytes | memoryview,
    codec: int,
    level: int | None,
    max_ts: int,
    create_time: bool,
) -> bytearray:
    """The batch with its records (``payload``, uncompressed) stored with ``codec`` (compression.type)."""
    body = compression.compress(codec, payload, level)
    attrs = (h.attributes & ~records.COMPRESSION_MASK) | codec
    if create_time:
        attrs &= ~records.TIMESTAMP_TYPE_MASK
    out = bytearray(buf[pos : pos + records.RECORDS_OFFSET])
    out += body
    struct.pack_into(">i", out, records.BATCH_LENGTH_OFFSET, len(out) - records.LOG_OVERHEAD)
    _ATTRS_MAXTS.pack_into(out, records.ATTRIBUTES_OFFSET, attrs, h.last_offset_delta, h.base_timestamp, max_ts)
    struct.pack_into(">I", out, records.CRC_OFFSET, records.compute_crc(out, 0, len(out)))
    return out
