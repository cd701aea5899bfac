"""Hand-built v2 record batches for validation tests (interop/diff_records.py, tests/storage):
every header field and record field as given, right or wrong, with a correct CRC."""

from __future__ import annotations

import struct
import time
from typing import Any

from kafkapy.protocol import compression, records
from kafkapy.protocol.records import encode_varint


def _now() -> int:
    return int(time.time() * 1000)


def rec(
    offset_delta: int,
    ts_delta: int = 0,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: list[tuple[bytes, bytes | None]] | None = None,
    *,
    length_fix: int = 0,
) -> bytes:
    """One v2 record, fields as given (no checks); ``length_fix`` is added to its length varint."""
    body = bytearray(b"\x00")
    body += encode_varint(ts_delta)
    body += encode_varint(offset_delta)
    body += b"\x01" if key is None else encode_varint(len(key)) + key
    body += b"\x01" if value is None else encode_varint(len(value)) + value
    hs = headers or []
    body += encode_varint(len(hs))
    for hk, hv in hs:
        body += encode_varint(len(hk)) + hk
        body += b"\x01" if hv is None else encode_varint(len(hv)) + hv
    return bytes(encode_varint(len(body) + length_fix) + body)


def raw_batch(
    payload: bytes,
    count: int,
    last_delta: int | None = None,
    *,
    codec: int = 0,
    compress: bool = True,
    base_ts: int | None = None,
    max_ts: int | None = None,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    attrs: int = 0,
    base_offset: int = 0,
) -> bytes:
    """A v2 batch around ``payload`` (record bytes), header fields as given, CRC right."""
    if codec in (1, 2, 3, 4) and compress:
        payload = compression.compress(codec, payload)
    base = _now() if base_ts is None else base_ts
    head = struct.pack(
        ">qiibIhiqqqhii",
        base_offset,
        records.BATCH_HEADER_SIZE - records.LOG_OVERHEAD + len(payload),
        -1,
        2,
        0,
        attrs | codec,
        count - 1 if last_delta is None else last_delta,
        base,
        base if max_ts is None else max_ts,
        pid,
        epoch,
        seq,
        count,
    )
    b = bytearray(head + payload)
    struct.pack_into(">I", b, records.CRC_OFFSET, records.compute_crc(b, 0, len(b)))
    return bytes(b)


def three(**kw: Any) -> bytes:
    """Three good records, 0-2 ms after the batch's base timestamp."""
    return raw_batch(rec(0, 0) + rec(1, 1) + rec(2, 2), 3, **kw)
