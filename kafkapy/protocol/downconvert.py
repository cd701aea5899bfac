"""Down-conversion of stored v2 record batches to legacy message sets (Fetch v0-3).

Kafka 3.x answered Fetch v0-1 with magic 0 and v2-3 with magic 1 messages,
converting each v2 batch as follows (KIP-283, `RecordsUtil.downConvert`):

- control batches (transaction markers) are dropped: v0/v1 have none;
- an uncompressed batch becomes one message per record, records below the
  fetch offset left out (the fetch may start mid-batch);
- a compressed batch becomes one wrapper message of the same codec holding
  all its records (old consumers skip those below their fetch offset); inner
  offsets are absolute in magic 0 and relative to the first record in
  magic 1, the wrapper carrying the last record's offset;
- magic 1 keeps the timestamp type: CreateTime records keep their
  timestamps (a wrapper gets the largest), LogAppendTime ones all get the
  batch's max timestamp; magic 0 has no timestamps;
- record headers, producer ids and sequences are dropped;
- zstd does not exist before magic 2: a zstd batch cannot be converted.
  Kafka answers UNSUPPORTED_COMPRESSION_TYPE when the first batch to convert
  is zstd; `down_convert` raises `UnsupportedCompressionError` then, and
  stops before a later zstd batch (the next fetch starts there and gets the
  error).
- magic 0 LZ4 wrappers get the 0.8/0.9 frame-header checksum (over the magic
  bytes too), as Kafka wrote them for magic 0 and those consumers expect.

Only whole messages are returned: conversion stops before the first message
(or wrapper) that would take the output past ``max_bytes``, except that the
messages of the first batch that has any are always returned (Kafka too
always sends the first converted batch whole).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from kafkapy.protocol import compression as _codecs
from kafkapy.protocol import records as _records
from kafkapy.protocol.errors import EncodeError, UnsupportedCompressionError
from kafkapy.protocol.legacy import (
    MAGIC_V0,
    MAGIC_V1,
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_MASK,
    break_lz4_header_checksum,
)

Buffer = bytes | bytearray | memoryview

_OFFSET_SIZE: Final = struct.Struct(">qi")
_CRC: Final = struct.Struct(">I")
_INT32: Final = struct.Struct(">i")
_INT64: Final = struct.Struct(">q")


@dataclass(slots=True)
class DownConverted:
    """A converted message set and how far into the source it got."""

    data: bytes
    # offset after the last source batch consumed (converted or dropped); -1 if none was
    next_offset: int
    records: int  # messages written (inner messages counted one by one)


def _message(magic: int, offset: int, attributes: int, timestamp: int, key: bytes | None, value: bytes | None) -> bytes:
    body = bytearray((magic, attributes))
    if magic == MAGIC_V1:
        body += _INT64.pack(timestamp)
    for part in (key, value):
        if part is None:
            body += _INT32.pack(-1)
        else:
            body += _INT32.pack(len(part))
            body += part
    return _OFFSET_SIZE.pack(offset, len(body) + 4) + _CRC.pack(zlib.crc32(body)) + bytes(body)


def convert_batch(
    batch: Buffer,
    header: _records.BatchHeader,
    to_magic: int,
    fetch_offset: int,
    *,
    max_uncompressed: int = _records.DEFAULT_MAX_UNCOMPRESSED,
) -> list[bytes]:
    """The legacy entries (messages or one wrapper) for the v2 batch ``batch``.

    Control batches and uncompressed records below ``fetch_offset`` give no
    entries. Raises `UnsupportedCompressionError` for a zstd batch.
    """
    if to_magic not in (MAGIC_V0, MAGIC_V1):
        raise EncodeError(f"legacy magic {to_magic}")
    if header.is_control:
        return []
    codec = header.compression
    if codec == _codecs.ZSTD:
        raise UnsupportedCompressionError("zstd batches cannot be converted to magic 0/1")
    records = list(_records.iter_records(batch, max_uncompressed, check_crc=False))
    log_append = header.timestamp_type == _records.TIMESTAMP_LOG_APPEND_TIME
    ts_attr = TIMESTAMP_TYPE_MASK if (to_magic == MAGIC_V1 and log_append) else 0
    if codec == _codecs.NONE:
        return [
            _message(to_magic, r.offset, ts_attr, r.timestamp, r.key, r.value)
            for r in records
            if r.offset >= fetch_offset
        ]
    if not records:
        return []
    first = records[0].offset
    inner = bytearray()
    for r in records:
        inner_offset = r.offset - first if to_magic == MAGIC_V1 else r.offset
        inner += _message(to_magic, inner_offset, ts_attr, r.timestamp, r.key, r.value)
    payload = _codecs.compress(codec, inner)
    if codec == _codecs.LZ4 and to_magic == MAGIC_V0:
        payload = break_lz4_header_checksum(payload)
    # LogAppendTime records already carry the batch's max timestamp
    wrapper_ts = max((r.timestamp for r in records), default=NO_TIMESTAMP)
    return [_message(to_magic, records[-1].offset, codec | ts_attr, wrapper_ts, None, payload)]


def down_convert(
    buf: Buffer,
    to_magic: int,
    fetch_offset: int,
    max_bytes: int,
    *,
    max_uncompressed: int = _records.DEFAULT_MAX_UNCOMPRESSED,
) -> DownConverted:
    """Convert the complete v2 batches of ``buf`` (a fetch read) to a magic 0/1 message set.

    At most ``max_bytes`` of whole messages, but always those of the first batch. Raises
    `UnsupportedCompressionError` if the first batch that has messages to
    convert is zstd.
    """
    out = bytearray()
    count = 0
    next_offset = -1
    for pos, header in _records.iter_batches(buf):
        view = memoryview(buf)[pos : pos + header.size]
        try:
            entries = convert_batch(view, header, to_magic, fetch_offset, max_uncompressed=max_uncompressed)
        except UnsupportedCompressionError:
            if out:
                break
            raise
        first = not out  # the first batch with messages goes whole, as Kafka sends it
        for entry in entries:
            if not first and len(out) + len(entry) > max_bytes:
                return DownConverted(bytes(out), next_offset, count)
            out += entry
            count += 1
        next_offset = header.next_offset
    return DownConverted(bytes(out), next_offset, count)


def down_convert_magic(fetch_version: int) -> int | None:
    """The message format a Fetch version reads: magic 0 for v0-1, 1 for v2-3, None (v2 as stored) after."""
    if fetch_version <= 1:
        return MAGIC_V0
    if fetch_version <= 3:
        return MAGIC_V1
    return None


def legacy_entries(magic: int, entries: Sequence[tuple[int, int, bytes | None, bytes | None]]) -> bytes:
    """Uncompressed messages ``(offset, timestamp, key, value)`` (tests and tools)."""
    return b"".join(_message(magic, o, 0, ts, k, v) for o, ts, k, v in entries)
