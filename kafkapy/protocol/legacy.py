"""Legacy message sets (magic v0 and v1), read and converted to v2 batches.

Message layout (big-endian), per Kafka's docs and KIP-32:

    offset int64 | messageSize int32 | crc uint32 | magic int8 |
    attributes int8 | timestamp int64 (v1 only) | key bytes | value bytes

``bytes`` is an int32 length (-1 = null) then the data; the CRC-32 (IEEE,
``zlib.crc32``) covers magic through the end of the message. A compressed
message ("wrapper") carries a nested message set as its value. Inner offsets
are absolute in v0 and relative (0..n-1) in v1, where the wrapper's offset is
the absolute offset of the last inner message. A v1 wrapper with the
LogAppendTime attribute gives its timestamp to every inner message.

kafkapy stores only v2: `convert_to_v2` turns a message set into one v2
batch, keeping the source compression codec by default.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from kafkapy.protocol import compression as _codecs
from kafkapy.protocol import records as _records
from kafkapy.protocol.errors import CorruptRecordError, EncodeError

Buffer = bytes | bytearray | memoryview

MAGIC_V0: Final = 0
MAGIC_V1: Final = 1
LOG_OVERHEAD: Final = 12  # offset + messageSize
MAGIC_OFFSET: Final = 16  # same position as a v2 batch's magic byte
COMPRESSION_MASK: Final = 0x07
TIMESTAMP_TYPE_MASK: Final = 0x08
NO_TIMESTAMP: Final = -1
DEFAULT_MAX_UNCOMPRESSED: Final = _records.DEFAULT_MAX_UNCOMPRESSED

_OFFSET_SIZE: Final = struct.Struct(">qi")
_V0_HEADER: Final = struct.Struct(">Ibb")  # crc, magic, attributes
_V1_HEADER: Final = struct.Struct(">Ibbq")  # + timestamp
_INT32: Final = struct.Struct(">i")
# messageSize of the smallest message: crc + magic + attributes + 2 null lengths.
_MIN_SIZE_V0: Final = 14
_MIN_SIZE_V1: Final = 22


@dataclass(slots=True)
class LegacyMessage:
    """One (inner, uncompressed) legacy message with its absolute offset."""

    offset: int
    magic: int
    attributes: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    crc: int

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return (self.attributes & TIMESTAMP_TYPE_MASK) >> 3 if self.magic >= MAGIC_V1 else 0


def is_legacy(buf: Buffer, pos: int = 0) -> bool:
    """True if the entry at ``pos`` has magic 0 or 1 (peeks the byte at +16)."""
    if len(buf) - pos <= MAGIC_OFFSET:
        return False
    return buf[pos + MAGIC_OFFSET] in (MAGIC_V0, MAGIC_V1)


def read_message(buf: Buffer, pos: int = 0) -> tuple[LegacyMessage, int]:
    """Parse and CRC-check the message at ``pos``; returns it and the next position."""
    end = len(buf)
    if end - pos < LOG_OVERHEAD:
        raise CorruptRecordError("truncated legacy message header")
    offset, size = _OFFSET_SIZE.unpack_from(buf, pos)
    body = pos + LOG_OVERHEAD
    mend = body + size
    if size < _MIN_SIZE_V0 or mend > end:
        raise CorruptRecordError(f"legacy message size {size} out of range")
    magic = buf[body + 4]
    if magic == MAGIC_V0:
        crc, magic, attributes = _V0_HEADER.unpack_from(buf, body)
        timestamp = NO_TIMESTAMP
        p = body + _V0_HEADER.size
    elif magic == MAGIC_V1:
        if size < _MIN_SIZE_V1:
            raise CorruptRecordError(f"legacy v1 message size {size} too small")
        crc, magic, attributes, timestamp = _V1_HEADER.unpack_from(buf, body)
        p = body + _V1_HEADER.size
    else:
        raise CorruptRecordError(f"legacy message magic {magic}")
    if zlib.crc32(memoryview(buf)[body + 4 : mend]) != crc:
        raise CorruptRecordError("legacy message CRC mismatch")
    key, p = _read_bytes(buf, p, mend)
    value, p = _read_bytes(buf, p, mend)
    if p != mend:
        raise CorruptRecordError("legacy message size does not match its fields")
    return LegacyMessage(offset, magic, attributes, timestamp, key, value, crc), mend


def _read_bytes(buf: Buffer, p: int, end: int) -> tuple[bytes | None, int]:
    if end - p < 4:
        raise CorruptRecordError("truncated legacy bytes length")
    (n,) = _INT32.unpack_from(buf, p)
    p += 4
    if n < 0:
        if n != -1:
            raise CorruptRecordError(f"legacy bytes length {n}")
        return None, p
    if n > end - p:
        raise CorruptRecordError(f"legacy bytes length {n} out of range")
    return bytes(buf[p : p + n]), p + n


def iter_message_set(
    buf: Buffer,
    *,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    allow_partial: bool = False,
) -> Iterator[LegacyMessage]:
    """Yield every message, unwrapping compressed wrappers (one level, as Kafka).

    ``max_uncompressed`` bounds the total decompressed bytes. With
    ``allow_partial`` a truncated trailing message ends the iteration (as at
    the end of a fetch response) instead of raising.
    """
    budget = max_uncompressed
    pos = 0
    end = len(buf)
    while pos < end:
        if allow_partial:
            if end - pos < LOG_OVERHEAD:
                return
            (size,) = _INT32.unpack_from(buf, pos + 8)
            if size >= 0 and LOG_OVERHEAD + size > end - pos:
                return
        msg, pos = read_message(buf, pos)
        if msg.compression == _codecs.NONE:
            yield msg
            continue
        inner, inflated = _unwrap(msg, budget)
        budget -= inflated
        yield from inner


def _unwrap(wrapper: LegacyMessage, budget: int) -> tuple[list[LegacyMessage], int]:
    """Inner messages of a wrapper, and how many bytes were inflated."""
    if wrapper.value is None:
        raise CorruptRecordError("compressed legacy message has a null value")
    codec = wrapper.compression
    data: Buffer = wrapper.value
    if codec == _codecs.LZ4 and wrapper.magic == MAGIC_V0:
        data = fix_lz4_header_checksum(data)
    payload = _codecs.decompress(codec, data, max(budget, 0))
    inner: list[LegacyMessage] = []
    pos = 0
    while pos < len(payload):
        msg, pos = read_message(payload, pos)
        if msg.compression != _codecs.NONE:
            raise CorruptRecordError("nested compressed legacy message")
        if msg.magic != wrapper.magic:
            raise CorruptRecordError("inner message magic differs from its wrapper")
        inner.append(msg)
    if not inner:
        raise CorruptRecordError("compressed legacy message holds no messages")
    if wrapper.magic == MAGIC_V1:
        # Relative inner offsets: the wrapper holds the last absolute offset.
        shift = wrapper.offset - inner[-1].offset
        log_append = wrapper.attributes & TIMESTAMP_TYPE_MASK
        for m in inner:
            m.offset += shift
            if log_append:
                m.timestamp = wrapper.timestamp
                m.attributes |= TIMESTAMP_TYPE_MASK
    return inner, len(payload)


# --- LZ4 header checksum of Kafka 0.8-0.9 (magic v0) -----------------------

_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
_M32: Final = 0xFFFFFFFF
_P1: Final = 2654435761
_P2: Final = 2246822519
_P3: Final = 3266489917
_P4: Final = 668265263
_P5: Final = 374761393


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 of a short input (for LZ4 frame header checksums)."""
    n = len(data)
    p = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M32
        v2 = (seed + _P2) & _M32
        v3 = seed & _M32
        v4 = (seed - _P1) & _M32
        while p + 16 <= n:
            a, b, c, d = struct.unpack_from("<IIII", data, p)
            v1 = (_rotl((v1 + a * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl((v2 + b * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl((v3 + c * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl((v4 + d * _P2) & _M32, 13) * _P1) & _M32
            p += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while p + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, p)
        h = (_rotl((h + lane * _P3) & _M32, 17) * _P4) & _M32
        p += 4
    while p < n:
        h = (_rotl((h + data[p] * _P5) & _M32, 11) * _P1) & _M32
        p += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


def _lz4_descriptor_end(data: Buffer) -> int:
    """Index of the header-checksum byte of the LZ4 frame in ``data``."""
    if len(data) < 7 or bytes(data[:4]) != _LZ4_MAGIC:
        raise CorruptRecordError("lz4: bad frame magic")
    flg = data[4]
    hc = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if hc >= len(data):
        raise CorruptRecordError("lz4: truncated frame header")
    return hc


def fix_lz4_header_checksum(data: Buffer) -> bytes:
    """Rewrite the frame header checksum to the correct one.

    Kafka 0.8/0.9 producers hashed the magic bytes too (a known bug), so
    magic-v0 LZ4 payloads fail a strict LZ4 reader unless fixed first.
    """
    hc = _lz4_descriptor_end(data)
    out = bytearray(data)
    out[hc] = (xxh32(bytes(out[4:hc])) >> 8) & 0xFF
    return bytes(out)


def break_lz4_header_checksum(data: bytes) -> bytes:
    """Write the 0.8/0.9 frame-header checksum (over magic + descriptor), as Kafka
    wrote magic-0 LZ4 wrappers (producers of that time, and down-conversion to magic 0)."""
    hc = _lz4_descriptor_end(data)
    out = bytearray(data)
    out[hc] = (xxh32(bytes(out[:hc])) >> 8) & 0xFF
    return bytes(out)


# --- building (tests and tools) ------------------------------------------------

LegacyInput = tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, int]


def _encode_message(
    out: bytearray,
    magic: int,
    offset: int,
    attributes: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
) -> None:
    body = bytearray()
    body.append(magic)
    body.append(attributes)
    if magic == MAGIC_V1:
        body += struct.pack(">q", timestamp)
    for part in (key, value):
        if part is None:
            body += _INT32.pack(-1)
        else:
            body += _INT32.pack(len(part))
            body += part
    out += _OFFSET_SIZE.pack(offset, len(body) + 4)
    out += struct.pack(">I", zlib.crc32(body))
    out += body


def build_message_set(
    magic: int,
    records: Sequence[LegacyInput],
    compression: int = 0,
    *,
    base_offset: int = 0,
    timestamp_type: int = 0,
    wrapper_timestamp: int | None = None,
) -> bytes:
    """Encode a v0/v1 message set; compressed sets get one wrapper message.

    ``records`` holds ``(key, value)`` or ``(key, value, timestamp)``
    (timestamps are ignored by v0; missing ones are -1). Magic-0 LZ4 is
    written with the 0.8/0.9 header checksum, as those producers did.
    """
    if magic not in (MAGIC_V0, MAGIC_V1):
        raise EncodeError(f"legacy magic {magic}")
    if compression not in _codecs.CODEC_NAMES or compression == _codecs.ZSTD:
        raise EncodeError(f"codec {compression} not allowed in legacy messages")
    ts_attr = TIMESTAMP_TYPE_MASK if (magic == MAGIC_V1 and timestamp_type) else 0
    stamps = [r[2] if len(r) > 2 else NO_TIMESTAMP for r in records]
    out = bytearray()
    if compression == _codecs.NONE:
        for i, (r, ts) in enumerate(zip(records, stamps)):
            _encode_message(out, magic, base_offset + i, ts_attr, ts, r[0], r[1])
        return bytes(out)
    inner = bytearray()
    for i, (r, ts) in enumerate(zip(records, stamps)):
        inner_offset = i if magic == MAGIC_V1 else base_offset + i
        _encode_message(inner, magic, inner_offset, 0, ts, r[0], r[1])
    payload = _codecs.compress(compression, inner)
    if compression == _codecs.LZ4 and magic == MAGIC_V0:
        payload = break_lz4_header_checksum(payload)
    if wrapper_timestamp is None:
        wrapper_timestamp = max(stamps) if stamps else NO_TIMESTAMP
    _encode_message(
        out,
        magic,
        base_offset + len(records) - 1,
        compression | ts_attr,
        wrapper_timestamp,
        None,
        payload,
    )
    return bytes(out)


# --- conversion to v2 ----------------------------------------------------------


def convert_to_v2(
    buf: Buffer,
    *,
    timestamp_now_ms: int | None,
    compression: int | None = None,
    assign_offsets: bool = True,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
) -> bytes:
    """Convert a whole legacy message set into one v2 record batch.

    - compression: ``None`` keeps the codec of the first compressed wrapper
      (uncompressed input stays uncompressed); an int forces a codec.
    - offsets: with ``assign_offsets`` (the produce path) records get deltas
      0..n-1 from base offset 0, as producers' offsets are placeholders;
      otherwise source offsets are kept (they must increase).
    - timestamps: v0 messages have none. Kafka up-converts them to -1
      (``timestamp_now_ms=None`` does that); an int stamps them instead.
      If the first message is LogAppendTime, the batch is LogAppendTime.
    The v2 batch has no producer id, sequence or leader epoch (-1).
    """
    messages = list(iter_message_set(buf, max_uncompressed=max_uncompressed))
    if not messages:
        raise CorruptRecordError("empty legacy message set")
    if compression is None:
        compression = _first_codec(buf)
    v0_ts = NO_TIMESTAMP if timestamp_now_ms is None else timestamp_now_ms
    first = messages[0]
    base_offset = 0 if assign_offsets else first.offset
    items: list[_records.Record] = []
    for i, m in enumerate(messages):
        delta = i if assign_offsets else m.offset - base_offset
        ts = m.timestamp if m.magic == MAGIC_V1 else v0_ts
        items.append(
            _records.Record(offset=base_offset + delta, timestamp=ts, key=m.key, value=m.value, offset_delta=delta)
        )
    if not assign_offsets and any(b.offset_delta <= a.offset_delta for a, b in itertools.pairwise(items)):
        raise CorruptRecordError("legacy offsets do not increase")
    return _records.build_batch(
        items,
        base_offset=base_offset,
        compression=compression,
        timestamp_type=first.timestamp_type,
    )


def _first_codec(buf: Buffer) -> int:
    pos = 0
    end = len(buf)
    while end - pos > MAGIC_OFFSET + 1:
        (size,) = _INT32.unpack_from(buf, pos + 8)
        codec = buf[pos + MAGIC_OFFSET + 1] & COMPRESSION_MASK
        if codec:
            return codec
        pos += LOG_OVERHEAD + size
    return _codecs.NONE
