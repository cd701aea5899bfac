"""Magic v2 record batches (Kafka >= 0.11 message format).

Batch header layout (61 bytes, big-endian), per Kafka's "Message Format" docs:

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
    magic int8 | crc uint32 | attributes int16 | lastOffsetDelta int32 |
    baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
    producerEpoch int16 | baseSequence int32 | recordsCount int32 | records

``batchLength`` counts the bytes after itself; the CRC-32C covers attributes
through the end of the batch. The broker's hot path only touches headers:
`validate_batch` / `validate_records` check a batch by header + CRC, and the
``set_*`` helpers rewrite header fields in place. Per-record parsing
(`iter_records`) is for clients, tests, compaction and format conversion.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol

from kafkapy.protocol import compression as _codecs
from kafkapy.protocol.errors import (
    CorruptRecordError,
    EncodeError,
    InvalidRecordError,
    RecordTooLargeError,
)

Buffer = bytes | bytearray | memoryview
WritableBuffer = bytearray | memoryview

MAGIC_V2: Final = 2

# Field offsets inside a batch.
BASE_OFFSET_OFFSET: Final = 0
BATCH_LENGTH_OFFSET: Final = 8
PARTITION_LEADER_EPOCH_OFFSET: Final = 12
MAGIC_OFFSET: Final = 16
CRC_OFFSET: Final = 17
ATTRIBUTES_OFFSET: Final = 21
LAST_OFFSET_DELTA_OFFSET: Final = 23
BASE_TIMESTAMP_OFFSET: Final = 27
MAX_TIMESTAMP_OFFSET: Final = 35
PRODUCER_ID_OFFSET: Final = 43
PRODUCER_EPOCH_OFFSET: Final = 51
BASE_SEQUENCE_OFFSET: Final = 53
RECORDS_COUNT_OFFSET: Final = 57
RECORDS_OFFSET: Final = 61

BATCH_HEADER_SIZE: Final = 61
LOG_OVERHEAD: Final = 12  # baseOffset + batchLength
CRC_START: Final = ATTRIBUTES_OFFSET
# Smallest legal batchLength: a header with no records.
MIN_BATCH_LENGTH: Final = BATCH_HEADER_SIZE - LOG_OVERHEAD

# Attribute bits.
COMPRESSION_MASK: Final = 0x07
TIMESTAMP_TYPE_MASK: Final = 0x08
TRANSACTIONAL_MASK: Final = 0x10
CONTROL_MASK: Final = 0x20
DELETE_HORIZON_MASK: Final = 0x40

TIMESTAMP_CREATE_TIME: Final = 0
TIMESTAMP_LOG_APPEND_TIME: Final = 1

NO_TIMESTAMP: Final = -1
NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1
NO_SEQUENCE: Final = -1
NO_PARTITION_LEADER_EPOCH: Final = -1

INT32_MAX: Final = 2**31 - 1
DEFAULT_MAX_UNCOMPRESSED: Final = 64 * 1024 * 1024

_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_INT64: Final = struct.Struct(">q")
_INT32: Final = struct.Struct(">i")
_UINT32: Final = struct.Struct(">I")
_INT16: Final = struct.Struct(">h")
_ATTRS_MAXTS: Final = struct.Struct(">hiqq")  # attributes .. maxTimestamp
_CONTROL_KEY: Final = struct.Struct(">hh")
_CONTROL_VALUE: Final = struct.Struct(">hi")

assert _HEADER.size == BATCH_HEADER_SIZE


@dataclass(slots=True)
class BatchHeader:
    """The 61-byte header of a v2 record batch."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return (self.attributes & TIMESTAMP_TYPE_MASK) >> 3

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, including the log overhead."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record, wrapping at int32 max like Kafka; -1 if none."""
        if self.base_sequence < 0:
            return NO_SEQUENCE
        return _add_sequence(self.base_sequence, self.last_offset_delta)


def _add_sequence(base: int, delta: int) -> int:
    # Producer sequences wrap from INT32_MAX back to 0.
    if base > INT32_MAX - delta:
        return base + delta - INT32_MAX - 1
    return base + delta


def read_batch_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Unpack the header at ``pos`` (no checks beyond having 61 bytes)."""
    if pos < 0 or len(buf) - pos < BATCH_HEADER_SIZE:
        raise CorruptRecordError(f"record batch header needs {BATCH_HEADER_SIZE} bytes at {pos}, have {len(buf) - pos}")
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


@functools.cache
def _crc32c() -> Callable[[Buffer], int]:
    """The `crc32c` package's CRC-32C function, imported on first use.

    Importing that package costs ~25 ms (it loads importlib.metadata), which
    the broker's start-up need not pay before the first batch.
    """
    from crc32c import crc32c

    return crc32c


def compute_crc(buf: Buffer, pos: int, size: int) -> int:
    """CRC-32C of the batch at ``pos`` of ``size`` bytes, over attributes..end."""
    return _crc32c()(memoryview(buf)[pos + CRC_START : pos + size])


def validate_batch(buf: Buffer, pos: int = 0, max_size: int | None = None) -> BatchHeader:
    """Check the v2 batch at ``pos``: magic, length, CRC. Returns its header.

    ``max_size`` bounds the batch's total size (``size``, log overhead
    included). No per-record work is done.
    """
    header = read_batch_header(buf, pos)
    if header.magic != MAGIC_V2:
        raise CorruptRecordError(f"record batch magic {header.magic}, expected 2")
    if header.batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(f"record batch length {header.batch_length} too small")
    size = header.batch_length + LOG_OVERHEAD
    if max_size is not None and size > max_size:
        raise RecordTooLargeError(f"record batch of {size} bytes exceeds the limit of {max_size}")
    if size > len(buf) - pos:
        raise CorruptRecordError(f"record batch of {size} bytes truncated to {len(buf) - pos}")
    if compute_crc(buf, pos, size) != header.crc:
        raise CorruptRecordError("record batch CRC mismatch")
    if header.records_count < 0:
        raise InvalidRecordError(f"negative records count {header.records_count}")
    return header


def iter_batches(buf: Buffer, pos: int = 0) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each complete batch from ``pos``.

    A trailing partial batch (legal at the end of a fetch response) ends the
    iteration silently. Headers are not CRC-checked; use `validate_batch`.
    """
    end = len(buf)
    while end - pos >= LOG_OVERHEAD:
        (batch_length,) = _INT32.unpack_from(buf, pos + BATCH_LENGTH_OFFSET)
        size = batch_length + LOG_OVERHEAD
        if size > end - pos:
            return
        if batch_length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(f"record batch length {batch_length} too small at {pos}")
        header = BatchHeader(*_HEADER.unpack_from(buf, pos))
        if header.magic != MAGIC_V2:
            raise CorruptRecordError(f"record batch magic {header.magic} at {pos}, expected 2")
        yield pos, header
        pos += size


# Smallest legacy message (v0 with null key and value): size field >= 14.
_MIN_ENTRY_LENGTH: Final = 14


def split_complete(buf: Buffer, pos: int = 0) -> int:
    """Length of the prefix of ``buf`` (from ``pos``) made of complete entries.

    Works for v2 batches and legacy messages alike (both start with an int64
    offset and an int32 length); only lengths are checked.
    """
    start = pos
    end = len(buf)
    while end - pos >= LOG_OVERHEAD:
        (length,) = _INT32.unpack_from(buf, pos + BATCH_LENGTH_OFFSET)
        if length < _MIN_ENTRY_LENGTH:
            raise CorruptRecordError(f"entry length {length} too small at {pos}")
        if length + LOG_OVERHEAD > end - pos:
            break
        pos += length + LOG_OVERHEAD
    return pos - start


def validate_records(
    buf: Buffer,
    max_batch_bytes: int | None = None,
    *,
    strict_offsets: bool = True,
) -> list[BatchHeader]:
    """Validate a whole records blob as received in a produce request.

    Every byte must belong to a complete, CRC-valid v2 batch (no trailing
    garbage or partial batch). With ``strict_offsets`` each batch must hold
    at least one record and ``records_count == last_offset_delta + 1``, as
    producers always write. The broker may further require exactly one batch
    (Kafka does for produce v3+). Sum ``records_count`` for the total.
    """
    end = len(buf)
    if end == 0:
        raise CorruptRecordError("empty records")
    pos = 0
    headers: list[BatchHeader] = []
    while pos < end:
        if end - pos < BATCH_HEADER_SIZE:
            raise CorruptRecordError(f"{end - pos} trailing bytes after the last batch")
        header = validate_batch(buf, pos, max_batch_bytes)
        if strict_offsets and (header.records_count == 0 or header.records_count != header.last_offset_delta + 1):
            raise InvalidRecordError(
                f"batch at {pos}: records count {header.records_count} does not match "
                f"last offset delta {header.last_offset_delta}"
            )
        headers.append(header)
        pos += header.batch_length + LOG_OVERHEAD
    return headers


# --- in-place header rewrites -------------------------------------------------


def set_base_offset(buf: WritableBuffer, pos: int, offset: int) -> None:
    """Overwrite baseOffset (outside the CRC: no recompute)."""
    _INT64.pack_into(buf, pos + BASE_OFFSET_OFFSET, offset)


def set_partition_leader_epoch(buf: WritableBuffer, pos: int, epoch: int) -> None:
    """Overwrite partitionLeaderEpoch (outside the CRC: no recompute)."""
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: WritableBuffer, pos: int, ts: int, *, set_base_timestamp: bool = False) -> None:
    """Mark the batch LogAppendTime with max timestamp ``ts``; recompute the CRC.

    Readers take every record's timestamp from maxTimestamp under
    LogAppendTime. Kafka's broker leaves baseTimestamp holding the create
    time (KAFKA-5353); pass ``set_base_timestamp=True`` to overwrite it too.
    """
    (batch_length,) = _INT32.unpack_from(buf, pos + BATCH_LENGTH_OFFSET)
    attributes, last_delta, base_ts, _ = _ATTRS_MAXTS.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    _ATTRS_MAXTS.pack_into(
        buf,
        pos + ATTRIBUTES_OFFSET,
        attributes | TIMESTAMP_TYPE_MASK,
        last_delta,
        ts if set_base_timestamp else base_ts,
        ts,
    )
    _UINT32.pack_into(buf, pos + CRC_OFFSET, compute_crc(buf, pos, batch_length + LOG_OVERHEAD))


def assign_offsets(buf: WritableBuffer, headers: Sequence[BatchHeader], first_offset: int) -> int:
    """Give consecutive base offsets to the batches of a validated blob.

    ``headers`` is what `validate_records` returned for ``buf``. Returns the
    next offset after the last batch.
    """
    pos = 0
    offset = first_offset
    for h in headers:
        _INT64.pack_into(buf, pos, offset)
        h.base_offset = offset
        offset += h.last_offset_delta + 1
        pos += h.batch_length + LOG_OVERHEAD
    return offset


# --- varints (zigzag, as used inside v2 records) ---------------------------


def zigzag_encode(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def zigzag_decode(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def encode_varint(value: int) -> bytes:
    """Signed zigzag varint (also fits varlongs)."""
    v = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    if v < 0x80:
        return bytes((v,))
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def size_of_varint(value: int) -> int:
    v = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def decode_varint(buf: Buffer, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode a signed zigzag varint at ``pos``; returns ``(value, new_pos)``."""
    if end is None:
        end = len(buf)
    if pos >= end:
        raise CorruptRecordError("truncated varint")
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise CorruptRecordError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos


# --- records ----------------------------------------------------------------


Header = tuple[str, bytes | None]


@dataclass(slots=True)
class Record:
    """One record of a v2 batch, with absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)
    attributes: int = 0
    offset_delta: int = 0
    timestamp_delta: int = 0
    sequence: int = NO_SEQUENCE


class RecordLike(Protocol):
    """Anything with the fields `build_batch` reads from a record."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[Header]: ...
    @property
    def timestamp(self) -> int | None: ...


RecordInput = tuple[bytes | None, bytes | None, Sequence[Header], int | None] | RecordLike


def batch_records_payload(buf: Buffer, pos: int, header: BatchHeader, max_uncompressed: int) -> bytes:
    """The (decompressed) record bytes of the batch at ``pos``."""
    start = pos + RECORDS_OFFSET
    end = pos + header.batch_length + LOG_OVERHEAD
    body = memoryview(buf)[start:end]
    if header.compression == _codecs.NONE:
        return bytes(body)
    return _codecs.decompress(header.compression, body, max_uncompressed)


def iter_records(
    batch_buf: Buffer,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    *,
    pos: int = 0,
    check_crc: bool = True,
) -> Iterator[Record]:
    """Yield the records of the single batch at ``pos`` of ``batch_buf``.

    Decompression is bounded by ``max_uncompressed``; malformed records raise
    `CorruptRecordError`. Records are parsed one at a time as iterated.
    """
    header = validate_batch(batch_buf, pos) if check_crc else read_batch_header(batch_buf, pos)
    if not check_crc:
        if header.magic != MAGIC_V2:
            raise CorruptRecordError(f"record batch magic {header.magic}, expected 2")
        if header.batch_length < MIN_BATCH_LENGTH or header.batch_length + LOG_OVERHEAD > len(batch_buf) - pos:
            raise CorruptRecordError("record batch length out of range")
    data = batch_records_payload(batch_buf, pos, header, max_uncompressed)
    return _parse_records(data, header)


def _parse_records(data: bytes, header: BatchHeader) -> Iterator[Record]:
    # Single-byte varints (the common case) are decoded inline; anything
    # longer, or at the record's end, goes through decode_varint.
    end = len(data)
    p = 0
    base_offset = header.base_offset
    base_ts = header.base_timestamp
    log_append = header.attributes & TIMESTAMP_TYPE_MASK
    max_ts = header.max_timestamp
    base_seq = header.base_sequence
    dv = decode_varint
    for _ in range(header.records_count):
        length, p = dv(data, p, end)
        if length <= 0 or length > end - p:
            raise CorruptRecordError(f"record length {length} out of range")
        rend = p + length
        attributes = data[p]
        p += 1
        if p < rend and data[p] < 0x80:
            b = data[p]
            ts_delta = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            ts_delta, p = dv(data, p, rend)
        if p < rend and data[p] < 0x80:
            b = data[p]
            off_delta = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            off_delta, p = dv(data, p, rend)
        if p < rend and data[p] < 0x80:
            b = data[p]
            klen = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            klen, p = dv(data, p, rend)
        if klen < 0:
            if klen != -1:
                raise CorruptRecordError(f"key length {klen}")
            key = None
        else:
            if klen > rend - p:
                raise CorruptRecordError(f"key length {klen} out of range")
            key = data[p : p + klen]
            p += klen
        if p < rend and data[p] < 0x80:
            b = data[p]
            vlen = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            vlen, p = dv(data, p, rend)
        if vlen < 0:
            if vlen != -1:
                raise CorruptRecordError(f"value length {vlen}")
            value = None
        else:
            if vlen > rend - p:
                raise CorruptRecordError(f"value length {vlen} out of range")
            value = data[p : p + vlen]
            p += vlen
        hcount, p = dv(data, p, rend)
        headers: list[Header] = []
        if hcount:
            if hcount < 0:
                raise CorruptRecordError(f"header count {hcount}")
            p = _parse_headers(data, p, rend, hcount, headers)
        if p != rend:
            raise CorruptRecordError("record length does not match its fields")
        yield Record(
            base_offset + off_delta,
            max_ts if log_append else base_ts + ts_delta,
            key,
            value,
            headers,
            attributes,
            off_delta,
            ts_delta,
            _add_sequence(base_seq, off_delta) if base_seq >= 0 else NO_SEQUENCE,
        )
    if p != end:
        raise CorruptRecordError(f"{end - p} bytes after the last record of the batch")


def _parse_headers(data: bytes, p: int, rend: int, count: int, out: list[Header]) -> int:
    for _ in range(count):
        hklen, p = decode_varint(data, p, rend)
        if hklen < 0 or hklen > rend - p:
            raise CorruptRecordError(f"header key length {hklen} out of range")
        try:
            hkey = data[p : p + hklen].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError("header key is not UTF-8") from None
        p += hklen
        hvlen, p = decode_varint(data, p, rend)
        if hvlen < 0:
            if hvlen != -1:
                raise CorruptRecordError(f"header value length {hvlen}")
            out.append((hkey, None))
        else:
            if hvlen > rend - p:
                raise CorruptRecordError(f"header value length {hvlen} out of range")
            out.append((hkey, data[p : p + hvlen]))
            p += hvlen
    return p


def iter_all_records(
    records_blob: Buffer,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    *,
    check_crc: bool = True,
) -> Iterator[tuple[BatchHeader, Record]]:
    """Yield ``(batch header, record)`` for every record of every complete batch."""
    for pos, _header in iter_batches(records_blob):
        header = validate_batch(records_blob, pos) if check_crc else _header
        data = batch_records_payload(records_blob, pos, header, max_uncompressed)
        for record in _parse_records(data, header):
            yield header, record


# --- building -----------------------------------------------------------------


def _encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[Header],
) -> None:
    body = bytearray(b"\x00")  # record attributes: unused, always 0
    body += encode_varint(timestamp_delta)
    body += encode_varint(offset_delta)
    if key is None:
        body += b"\x01"  # zigzag(-1)
    else:
        body += encode_varint(len(key))
        body += key
    if value is None:
        body += b"\x01"
    else:
        body += encode_varint(len(value))
        body += value
    body += encode_varint(len(headers))
    for hkey, hval in headers:
        hk = hkey.encode("utf-8")
        body += encode_varint(len(hk))
        body += hk
        if hval is None:
            body += b"\x01"
        else:
            body += encode_varint(len(hval))
            body += hval
    out += encode_varint(len(body))
    out += body


def _unpack_input(
    item: RecordInput, index: int
) -> tuple[bytes | None, bytes | None, Sequence[Header], int | None, int]:
    if isinstance(item, (tuple, list)):
        key, value, headers, ts = item
        return key, value, headers, ts, index
    delta = getattr(item, "offset_delta", index)
    return item.key, item.value, item.headers, item.timestamp, delta


def build_batch(
    records: Sequence[RecordInput],
    *,
    base_offset: int = 0,
    compression: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    base_timestamp: int | None = None,
    max_timestamp: int | None = None,
    compression_level: int | None = None,
) -> bytes:
    """Encode a v2 batch with a correct CRC, max timestamp and last offset delta.

    ``records`` holds ``(key, value, headers, timestamp)`` tuples (offset
    deltas 0, 1, ...) or record objects (their ``offset_delta`` is kept when
    present). A ``None`` timestamp means "now". ``base_timestamp`` defaults
    to the first record's timestamp, as the Java producer does;
    ``max_timestamp`` defaults to the largest record timestamp (pass the
    append time for a LogAppendTime batch). An empty batch gets
    lastOffsetDelta -1 and timestamps -1.
    """
    items = [_unpack_input(r, i) for i, r in enumerate(records)]
    now: int | None = None
    stamps: list[int] = []
    for _k, _v, _h, ts, _d in items:
        if ts is not None:
            stamps.append(ts)
            continue
        if now is None:
            now = int(time.time() * 1000)
        stamps.append(now)
    if base_timestamp is None:
        base_timestamp = stamps[0] if stamps else NO_TIMESTAMP
    if max_timestamp is None:
        max_timestamp = max(stamps) if stamps else NO_TIMESTAMP
    body = bytearray()
    last_delta = -1
    for (key, value, headers, _ts, delta), ts in zip(items, stamps):
        if delta <= last_delta:
            raise EncodeError("record offset deltas must increase")
        last_delta = delta
        _encode_record(body, delta, ts - base_timestamp, key, value, headers)
    attributes = (
        (compression & COMPRESSION_MASK)
        | (TIMESTAMP_TYPE_MASK if timestamp_type else 0)
        | (TRANSACTIONAL_MASK if is_transactional else 0)
        | (CONTROL_MASK if is_control else 0)
    )
    if compression not in _codecs.CODEC_NAMES:
        raise EncodeError(f"unknown compression codec {compression}")
    payload = _codecs.compress(compression, body, compression_level) if compression else body
    batch_length = BATCH_HEADER_SIZE - LOG_OVERHEAD + len(payload)
    if batch_length > INT32_MAX:
        raise EncodeError("record batch too large")
    out = bytearray(BATCH_HEADER_SIZE)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        batch_length,
        partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        last_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(items),
    )
    out += payload
    _UINT32.pack_into(out, CRC_OFFSET, _crc32c()(memoryview(out)[CRC_START:]))
    return bytes(out)


# --- control batches --------------------------------------------------------


class ControlRecordType(IntEnum):
    """Type field of a control record key (transaction markers)."""

    ABORT = 0
    COMMIT = 1


@dataclass(slots=True)
class ControlRecord:
    """A parsed control record: key (version, type) + optional marker value."""

    version: int
    type: int
    value_version: int | None = None
    coordinator_epoch: int | None = None


CONTROL_RECORD_VERSION: Final = 0


def build_control_key(control_type: int, version: int = CONTROL_RECORD_VERSION) -> bytes:
    return _CONTROL_KEY.pack(version, control_type)


def build_control_value(coordinator_epoch: int, version: int = CONTROL_RECORD_VERSION) -> bytes:
    return _CONTROL_VALUE.pack(version, coordinator_epoch)


def parse_control_record(key: bytes | None, value: bytes | None) -> ControlRecord:
    """Parse a control record; the value is decoded for ABORT/COMMIT markers."""
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError("control record key shorter than 4 bytes")
    version, ctype = _CONTROL_KEY.unpack_from(key)
    record = ControlRecord(version=version, type=ctype)
    if ctype in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        if value is None or len(value) < _CONTROL_VALUE.size:
            raise CorruptRecordError("transaction marker value shorter than 6 bytes")
        record.value_version, record.coordinator_epoch = _CONTROL_VALUE.unpack_from(value)
    return record


def build_control_batch(
    control_type: int,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """A transactional control batch holding one ABORT/COMMIT marker."""
    return build_batch(
        [(build_control_key(control_type), build_control_value(coordinator_epoch), (), timestamp)],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
    )
