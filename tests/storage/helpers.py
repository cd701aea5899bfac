"""Test-only v2 batch builder (uncompressed), independent of protocol.records."""

from __future__ import annotations

import struct

import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")


def _varint(value: int) -> bytes:
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes_field(b: bytes | None) -> bytes:
    return _varint(-1) if b is None else _varint(len(b)) + b


def make_batch(
    values: list[tuple[bytes | None, bytes | None]] | int,
    *,
    timestamp: int = 1_000,
    timestamps: list[int] | None = None,
    base_offset: int = 0,
    leader_epoch: int = -1,
    pad: int = 0,
    offset_deltas: list[int] | None = None,
) -> bytearray:
    """A CRC-valid v2 batch of (key, value) records; an int means that many records."""
    if isinstance(values, int):
        values = [(b"k%d" % i, b"v%d" % i + b"x" * pad) for i in range(values)]
    stamps = timestamps or [timestamp] * len(values)
    deltas = offset_deltas or list(range(len(values)))
    body = bytearray()
    for (key, value), ts, d in zip(values, stamps, deltas):
        rec = b"\x00" + _varint(ts - stamps[0]) + _varint(d) + _bytes_field(key) + _bytes_field(value) + _varint(0)
        body += _varint(len(rec)) + rec
    out = bytearray(61)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        49 + len(body),
        leader_epoch,
        2,
        0,
        0,
        deltas[-1],
        stamps[0],
        max(stamps),
        -1,
        -1,
        -1,
        len(values),
    )
    out += body
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return out


def parse_batches(data: bytes) -> list[tuple[int, int, int]]:
    """(base offset, last offset, size) of each complete batch in `data`."""
    out = []
    pos = 0
    while len(data) - pos >= 61:
        base, length = struct.unpack_from(">qi", data, pos)
        delta = struct.unpack_from(">i", data, pos + 23)[0]
        size = length + 12
        if pos + size > len(data):
            break
        out.append((base, base + delta, size))
        pos += size
    return out
