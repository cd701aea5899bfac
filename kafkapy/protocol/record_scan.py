"""One pass over the records of a v2 batch, as Kafka's LogValidator walks them.

`scan_records` checks the structure of every record without building a
Python object per record: each length varint against the bytes left, the
fields against the record's length, offset deltas 0..count-1 in order, the
declared count against the bytes, and nothing left over. It returns what
the produce path needs to decide on the batch: the smallest and largest
timestamp delta and how many records have no key. Anything malformed raises
`InvalidRecordError` (Kafka's INVALID_RECORD) with Kafka's wording.

A compiled version of the same function (`kafkapy.protocol._scan`, built
from _scan.c at install when a C compiler is there) is used when importable;
`scan_records_py` is the reference, and the tests run both on the same cases.
KAFKAPY_NO_ACCELERATOR=1 in the environment makes the broker use the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from kafkapy.protocol.errors import InvalidRecordError

Buffer = bytes | bytearray | memoryview

# (min timestamp delta, max timestamp delta, records without a key)
ScanResult = tuple[int, int, int]

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


# A record length varint longer than 5 bytes: Kafka fails outside its record parser (UNKNOWN_SERVER_ERROR)
OVERLONG_LENGTH: Final = "Varint is too long"


def _varint(
    data: Buffer, p: int, end: int, max_bytes: int, overlong: str = "Found invalid record structure"
) -> tuple[int, int]:
    """A zigzag varint of at most ``max_bytes`` bytes at ``p``: (value, next position)."""
    result = 0
    shift = 0
    for _ in range(max_bytes):
        if p >= end:
            raise InvalidRecordError("Found invalid record structure")
        b = data[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), p
        shift += 7
    raise InvalidRecordError(overlong)


def scan_records_py(data: Buffer, start: int, end: int, count: int) -> ScanResult:
    """Walk ``count`` records in ``data[start:end]``; see the module docstring."""
    if not 0 <= start <= end <= len(data):
        raise ValueError(
            f"scan_records: need 0 <= start <= end <= len(data), got start={start}, end={end}, len(data)={len(data)}"
        )
    if count <= 0:
        raise InvalidRecordError(f"Invalid reported count for record batch: {count}")
    p = start
    lo = _INT32_MAX << 32
    hi = -lo
    keyless = 0
    vi = _varint
    for i in range(count):
        # record length (varint), then the body: attributes, timestampDelta (varlong),
        # offsetDelta, keyLength, key, valueLength, value, headerCount, headers
        if p < end and data[p] < 0x80:
            b = data[p]
            length = (b >> 1) ^ -(b & 1)
            p += 1
        elif p + 1 < end and data[p + 1] < 0x80:
            u = (data[p] & 0x7F) | (data[p + 1] << 7)
            length = (u >> 1) ^ -(u & 1)
            p += 2
        else:
            length, p = vi(data, p, end, 5, OVERLONG_LENGTH)
        if length <= 0 or length > end - p:
            if p >= end:
                raise InvalidRecordError("Incorrect declared batch size, premature EOF reached")
            raise InvalidRecordError(
                f"Invalid record size: expected {length} bytes in record payload, "
                f"but the batch has only {end - p} remaining bytes."
            )
        rend = p + length
        p += 1  # attributes
        if p < rend and data[p] < 0x80:
            b = data[p]
            ts = (b >> 1) ^ -(b & 1)
            p += 1
        elif p + 1 < rend and data[p + 1] < 0x80:
            u = (data[p] & 0x7F) | (data[p + 1] << 7)
            ts = (u >> 1) ^ -(u & 1)
            p += 2
        else:
            ts, p = vi(data, p, rend, 10)
        if p < rend and data[p] < 0x80:
            b = data[p]
            off = (b >> 1) ^ -(b & 1)
            p += 1
        elif p + 1 < rend and data[p + 1] < 0x80:
            u = (data[p] & 0x7F) | (data[p + 1] << 7)
            off = (u >> 1) ^ -(u & 1)
            p += 2
        else:
            off, p = vi(data, p, rend, 5)
        if off != i:
            raise InvalidRecordError(
                f"Record offset delta {off} is not {i}: offset deltas must be 0, 1, 2, ... in order"
            )
        if p < rend and data[p] < 0x80:
            b = data[p]
            klen = (b >> 1) ^ -(b & 1)
            p += 1
        elif p + 1 < rend and data[p + 1] < 0x80:
            u = (data[p] & 0x7F) | (data[p + 1] << 7)
            klen = (u >> 1) ^ -(u & 1)
            p += 2
        else:
            klen, p = vi(data, p, rend, 5)
        if klen >= 0:
            p += klen
        elif klen == -1:
            keyless += 1
        else:
            raise InvalidRecordError("Found invalid record structure")
        if p < rend and data[p] < 0x80:
            b = data[p]
            vlen = (b >> 1) ^ -(b & 1)
            p += 1
        elif p + 1 < rend and data[p + 1] < 0x80:
            u = (data[p] & 0x7F) | (data[p + 1] << 7)
            vlen = (u >> 1) ^ -(u & 1)
            p += 2
        else:
            vlen, p = vi(data, p, rend, 5)
        if vlen > 0:
            p += vlen
        elif vlen < -1:
            raise InvalidRecordError("Found invalid record structure")
        if p < rend and data[p] == 0:
            p += 1
        else:
            hcount, p = vi(data, p, rend, 5)
            if hcount < 0:
                raise InvalidRecordError(f"Found invalid number of record headers {hcount}")
            for _ in range(hcount):
                hk, p = vi(data, p, rend, 5)
                if hk < 0:
                    raise InvalidRecordError(f"Invalid negative header key size {hk}")
                p += hk
                hv, p = vi(data, p, rend, 5)
                if hv > 0:
                    p += hv
                elif hv < -1:
                    raise InvalidRecordError("Found invalid record structure")
        if p != rend:
            raise InvalidRecordError(
                f"Invalid record size: expected to read {length} bytes in record payload, but instead read "
                f"{length - (rend - p)}"
            )
        if ts < lo:  # noqa: PLR1730 (faster than min() in this loop)
            lo = ts
        if ts > hi:  # noqa: PLR1730
            hi = ts
    if p != end:
        raise InvalidRecordError("Incorrect declared batch size, records still remaining in file")
    return lo, hi, keyless


def record_timestamps(data: Buffer, start: int, end: int, count: int) -> list[tuple[int, bool]]:
    """Each record's (timestamp delta, has key), for the slow path that names the records in error.

    Only called on a batch `scan_records` accepted, so the structure is known to be sound.
    """
    out: list[tuple[int, bool]] = []
    p = start
    for _ in range(count):
        length, p = _varint(data, p, end, 5)
        rend = p + length
        ts, q = _varint(data, p + 1, rend, 10)
        _, q = _varint(data, q, rend, 5)
        klen, q = _varint(data, q, rend, 5)
        out.append((ts, klen >= 0))
        p = rend
    return out


def _load() -> Callable[[Buffer, int, int, int], ScanResult]:
    if os.environ.get("KAFKAPY_NO_ACCELERATOR"):  # benchmarks compare the two
        return scan_records_py
    try:
        from kafkapy.protocol._scan import scan_records as compiled  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return scan_records_py
    return compiled  # type: ignore[no-any-return, unused-ignore]


scan_records: Final[Callable[[Buffer, int, int, int], ScanResult]] = _load()
COMPILED: Final = scan_records is not scan_records_py  # reported in the broker_ready log line
