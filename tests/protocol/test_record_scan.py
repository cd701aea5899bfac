"""The record scan of the produce path: `scan_records_py` and its compiled twin `_scan.scan_records`.

Every case runs against both; they must agree on results, exception types and
messages. Where a C compiler and Python's headers are present the install
builds the extension, and its absence is a failure, not a skip.
"""

from __future__ import annotations

import os
import random
import shutil
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkapy.protocol import record_scan
from kafkapy.protocol import records as R
from kafkapy.protocol.errors import InvalidRecordError
from kafkapy.protocol.record_scan import scan_records_py

try:
    from kafkapy.protocol import _scan
except ImportError:
    _scan = None  # type: ignore[assignment]

Scan = Callable[..., tuple[int, int, int]]

IMPLS: list[Scan] = [scan_records_py]
if _scan is not None:
    IMPLS.append(_scan.scan_records)
IMPL_IDS = ["python", "compiled"][: len(IMPLS)]

BASE_TS = 1_700_000_000_000
STRUCTURE = "Found invalid record structure"


def _can_build_extensions() -> bool:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc.split()[0]) is not None and headers.is_file()


def test_compiled_scan_is_installed_and_used() -> None:
    if not _can_build_extensions():
        assert record_scan.scan_records is scan_records_py
        return
    assert _scan is not None, "a C compiler is here but kafkapy.protocol._scan is not built: pip install -e ."
    assert record_scan.scan_records is _scan.scan_records


# --- helpers ----------------------------------------------------------------


def uvarint(u: int) -> bytes:
    """Unsigned LEB128, any width (for raw and overlong encodings)."""
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def varint(v: int) -> bytes:
    """Zigzag varint of any Python int."""
    return uvarint(v << 1 if v >= 0 else ((-v) << 1) - 1)


def record(
    body_fields: bytes | None = None,
    *,
    ts: bytes = b"\x00",
    off: bytes = b"\x00",
    key: bytes = b"\x01",
    value: bytes = b"\x01",
    headers: bytes = b"\x00",
    length: bytes | None = None,
) -> bytes:
    """A record from raw field encodings; ``length`` defaults to the right one."""
    body = b"\x00" + ts + off + key + value + headers if body_fields is None else body_fields
    return (varint(len(body)) if length is None else length) + body


def body_of(records: list[Any]) -> tuple[bytes, int]:
    batch = R.build_batch(records)
    return batch[R.RECORDS_OFFSET :], len(records)


def outcome(fn: Scan, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:
        return (type(e), str(e))


def expected_of(records: list[Any]) -> tuple[int, int, int]:
    stamps = [r[3] for r in records]
    deltas = [t - stamps[0] for t in stamps]
    return min(deltas), max(deltas), sum(1 for r in records if r[0] is None)


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def scan(request: pytest.FixtureRequest) -> Scan:
    fn: Scan = request.param
    return fn


def assert_invalid(scan: Scan, data: bytes, count: int, message: str, start: int = 0, end: int | None = None) -> None:
    with pytest.raises(InvalidRecordError) as info:
        scan(data, start, len(data) if end is None else end, count)
    assert str(info.value) == message
    assert type(info.value) is InvalidRecordError


# --- good batches -----------------------------------------------------------

GOOD: dict[str, list[Any]] = {
    "one": [(b"k", b"v", [], BASE_TS)],
    "null keys and values": [
        (None, b"v", [], BASE_TS),
        (b"k", None, [], BASE_TS + 1),
        (None, None, [], BASE_TS + 2),
        (b"", b"", [], BASE_TS + 3),
    ],
    "headers": [
        (b"k", b"v", [("a", b"1"), ("b", None), ("", b"")], BASE_TS),
        (None, b"v", [("h" * 200, b"x" * 300)], BASE_TS - 5),
        (b"k", b"v", [(f"h{i}", None) for i in range(100)], BASE_TS + 7),
    ],
    "multi-byte varints": [
        (b"k" * 70, b"v" * 200, [], BASE_TS),
        (b"k" * 9000, b"v" * 20000, [("h", b"x" * 70_000)], BASE_TS + 64),
        (None, b"v" * 3_000_000, [], BASE_TS + 8192),
    ],
    "large and negative timestamp deltas": [
        (b"k", b"v", [], BASE_TS),
        (b"k", b"v", [], BASE_TS - 10**12),
        (b"k", b"v", [], BASE_TS + 2**40),
        (None, b"v", [], BASE_TS - 1),
        (None, b"v", [], 2**62),
        (None, b"v", [], -(2**62)),
    ],
    "offset deltas past one byte": [(None if i % 3 else b"k", b"v%d" % i, [], BASE_TS + i % 17) for i in range(300)],
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_batches(scan: Scan, name: str) -> None:
    records = GOOD[name]
    body, count = body_of(records)
    assert scan(body, 0, len(body), count) == expected_of(records)
    # bytes around the body are not looked at
    padded = b"\xff" * 7 + body + b"\x80" * 5
    assert scan(padded, 7, 7 + len(body), count) == expected_of(records)
    for buf in (bytearray(padded), memoryview(padded), memoryview(bytearray(padded)).toreadonly()):
        assert scan(buf, 7, 7 + len(body), count) == expected_of(records)
    assert scan(memoryview(padded)[7 : 7 + len(body)], 0, len(body), count) == expected_of(records)


def test_results_are_exact_python_ints(scan: Scan) -> None:
    # timestamp delta of 10 bytes: the reference keeps all 70 bits
    lowest = b"\xff" * 9 + b"\x7f"  # raw 2**70 - 1 -> -(2**69)
    highest = b"\xfe" + b"\xff" * 8 + b"\x7f"  # raw 2**70 - 2 -> 2**69 - 1
    data = record(ts=lowest, off=b"\x00") + record(ts=highest, off=b"\x02")
    assert scan(data, 0, len(data), 2) == (-(2**69), 2**69 - 1, 2)
    for ts, want in [
        (varint(-(2**63)), -(2**63)),
        (varint(2**63 - 1), 2**63 - 1),
        (varint(-(2**64)), -(2**64)),
        (varint(2**64), 2**64),
        (varint(-1), -1),
        (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 0),  # zero in ten bytes
    ]:
        data = record(ts=ts) + record(ts=b"\x00", off=b"\x02")
        assert scan(data, 0, len(data), 2) == (min(want, 0), max(want, 0), 2)


def test_timestamp_sentinels_match(scan: Scan) -> None:
    # deltas at and past the reference's starting bounds ((2**31 - 1) << 32 and its negation)
    bound = (2**31 - 1) << 32
    for ts in (bound - 1, bound, bound + 1, 2**63 - 1, -bound + 1, -bound, -bound - 1, 2**69 - 1, -(2**69)):
        data = record(ts=varint(ts))
        assert outcome(scan, data, 0, len(data), 1) == outcome(scan_records_py, data, 0, len(data), 1)


def test_five_byte_varints_beyond_int32(scan: Scan) -> None:
    # the reference takes whatever 5 bytes give (35 bits): so must the compiled one
    assert_invalid(scan, b"\xff\xff\xff\xff\x7f" + b"\x00" * 8, 1, _size_message(-(2**34), 8))
    assert_invalid(scan, b"\xfe\xff\xff\xff\x7f" + b"\x00" * 8, 1, _size_message(2**34 - 1, 8))
    data = record(off=b"\x80\x80\x80\x80\x40")
    assert_invalid(scan, data, 1, f"Record offset delta {2**33} is not 0: offset deltas must be 0, 1, 2, ... in order")
    data = record(off=b"\x80\x80\x80\x80\x00")  # zero in five bytes is fine
    assert scan(data, 0, len(data), 1) == (0, 0, 1)


def _size_message(length: int, remaining: int) -> str:
    return (
        f"Invalid record size: expected {length} bytes in record payload, "
        f"but the batch has only {remaining} remaining bytes."
    )


def _read_message(length: int, read: int) -> str:
    return f"Invalid record size: expected to read {length} bytes in record payload, but instead read {read}"


# --- malformed batches ------------------------------------------------------


def test_count(scan: Scan) -> None:
    body, count = body_of(GOOD["one"])
    for bad in (0, -1, -(2**31), -(2**80)):
        assert_invalid(scan, body, bad, f"Invalid reported count for record batch: {bad}")
    # more records than the bytes hold
    assert_invalid(scan, body, count + 1, STRUCTURE)
    assert_invalid(scan, body, 2**31 - 1, STRUCTURE)
    assert_invalid(scan, body, 2**80, STRUCTURE)
    # fewer: bytes are left over
    body, count = body_of(GOOD["null keys and values"])
    assert_invalid(scan, body, count - 1, "Incorrect declared batch size, records still remaining in file")
    # an empty body and a count
    assert_invalid(scan, b"", 1, STRUCTURE)


def test_truncated(scan: Scan) -> None:
    first, _ = body_of(GOOD["one"])
    last = record(key=varint(3) + b"key", value=varint(5) + b"value", off=varint(1))
    # cut in the last record: its length is more than the bytes left
    data = first + last[:-1]
    assert_invalid(scan, data, 2, _size_message(len(last) - 1, len(last) - 2))
    # cut right after a record length: the batch ends there
    assert_invalid(scan, first + last[:1], 2, "Incorrect declared batch size, premature EOF reached")
    # cut inside a record length varint
    assert_invalid(scan, first + b"\x80", 2, STRUCTURE)
    # cut inside a record's fields, the length cut to match
    cut = last[1:-3]
    assert_invalid(scan, first + varint(len(cut)) + cut, 2, STRUCTURE)


def test_record_length(scan: Scan) -> None:
    rec = record()
    assert_invalid(scan, varint(100) + rec[1:], 1, _size_message(100, len(rec) - 1))
    assert_invalid(scan, varint(0) + rec[1:], 1, _size_message(0, len(rec) - 1))
    assert_invalid(scan, varint(-1) + rec[1:], 1, _size_message(-1, len(rec) - 1))
    assert_invalid(scan, varint(0), 1, "Incorrect declared batch size, premature EOF reached")
    assert_invalid(scan, varint(-7), 1, "Incorrect declared batch size, premature EOF reached")
    # length 1: the attributes byte only, then no room for the timestamp
    assert_invalid(scan, varint(1) + b"\x00", 1, STRUCTURE)
    # a record longer than its fields
    body = b"\x00\x00\x00\x01\x01\x00"
    assert_invalid(scan, varint(len(body) + 1) + body + b"\x00", 1, _read_message(len(body) + 1, len(body)))


def test_fields_overrun_the_record(scan: Scan) -> None:
    # key longer than the record: the next field cannot be read
    assert_invalid(scan, record(key=varint(50)), 1, STRUCTURE)
    # key exactly to the end: the value length is missing
    data = record(b"\x00\x00\x00" + varint(3) + b"abc")
    assert_invalid(scan, data, 1, STRUCTURE)
    # value longer than the record: the header count is missing
    assert_invalid(scan, record(value=varint(50)), 1, STRUCTURE)
    # the last header value runs past the record
    hdr = varint(1) + varint(1) + b"h" + varint(10) + b"xy"
    data = record(headers=hdr)
    assert_invalid(scan, data, 1, _read_message(len(data) - 1, len(data) - 1 + 8))
    # a header key past the record, then no value length
    assert_invalid(scan, record(headers=varint(1) + varint(20) + b"h"), 1, STRUCTURE)
    # more headers than the record holds
    assert_invalid(scan, record(headers=varint(3) + varint(1) + b"h" + varint(-1)), 1, STRUCTURE)
    # timestamp, offset delta, key length missing
    assert_invalid(scan, record(b"\x00"), 1, STRUCTURE)
    assert_invalid(scan, record(b"\x00\x00"), 1, STRUCTURE)
    assert_invalid(scan, record(b"\x00\x00\x00"), 1, STRUCTURE)


def test_leftover_bytes(scan: Scan) -> None:
    body, count = body_of(GOOD["one"])
    for extra in (b"\x00", b"\x01\x02", body):
        assert_invalid(scan, body + extra, count, "Incorrect declared batch size, records still remaining in file")


def test_offset_deltas_in_order(scan: Scan) -> None:
    data = record(off=varint(0)) + record(off=varint(2))
    assert_invalid(scan, data, 2, "Record offset delta 2 is not 1: offset deltas must be 0, 1, 2, ... in order")
    data = record(off=varint(1))
    assert_invalid(scan, data, 1, "Record offset delta 1 is not 0: offset deltas must be 0, 1, 2, ... in order")
    data = record(off=varint(0)) + record(off=varint(-1))
    assert_invalid(scan, data, 2, "Record offset delta -1 is not 1: offset deltas must be 0, 1, 2, ... in order")
    # the offset check comes before the key's
    data = record(off=varint(3), key=varint(-2))
    assert_invalid(scan, data, 1, "Record offset delta 3 is not 0: offset deltas must be 0, 1, 2, ... in order")


def test_negative_lengths_and_counts(scan: Scan) -> None:
    assert_invalid(scan, record(headers=varint(-1)), 1, "Found invalid number of record headers -1")
    assert_invalid(scan, record(headers=varint(-300)), 1, "Found invalid number of record headers -300")
    assert_invalid(scan, record(headers=varint(1) + varint(-1) + varint(-1)), 1, "Invalid negative header key size -1")
    assert_invalid(scan, record(headers=varint(1) + varint(-5)), 1, "Invalid negative header key size -5")
    assert_invalid(scan, record(key=varint(-2)), 1, STRUCTURE)
    assert_invalid(scan, record(key=varint(-(2**31))), 1, STRUCTURE)
    assert_invalid(scan, record(value=varint(-2)), 1, STRUCTURE)
    assert_invalid(scan, record(headers=varint(1) + varint(1) + b"h" + varint(-2)), 1, STRUCTURE)
    # null header value and empty header key are fine
    data = record(headers=varint(1) + varint(0) + varint(-1))
    assert scan(data, 0, len(data), 1) == (0, 0, 1)


def test_overlong_varints(scan: Scan) -> None:
    six = b"\x80\x80\x80\x80\x80\x00"
    # a record length of more than 5 bytes: Kafka fails outside its record parser
    assert_invalid(scan, six + b"\x00" * 10, 1, "Varint is too long")
    assert_invalid(scan, record() + six + b"\x00" * 10, 2, "Varint is too long")
    assert_invalid(scan, b"\x80" * 5, 1, "Varint is too long")
    assert_invalid(scan, b"\x80" * 4, 1, STRUCTURE)  # the bytes end first
    assert_invalid(scan, record(off=six), 1, STRUCTURE)
    assert_invalid(scan, record(key=six), 1, STRUCTURE)
    assert_invalid(scan, record(value=six), 1, STRUCTURE)
    assert_invalid(scan, record(headers=six), 1, STRUCTURE)
    assert_invalid(scan, record(headers=varint(1) + six + varint(-1)), 1, STRUCTURE)
    assert_invalid(scan, record(headers=varint(1) + varint(0) + six), 1, STRUCTURE)
    eleven = b"\x80" * 10 + b"\x00"
    assert_invalid(scan, record(ts=eleven), 1, STRUCTURE)
    data = record(ts=b"\x80" * 9 + b"\x00")
    assert scan(data, 0, len(data), 1) == (0, 0, 1)


def test_start_end_out_of_range(scan: Scan) -> None:
    body, count = body_of(GOOD["one"])
    n = len(body)
    for start, end in [(-1, n), (0, n + 1), (5, 4), (n + 1, n + 1), (-(2**70), n), (0, 2**70), (2**70, 2**71)]:
        with pytest.raises(ValueError) as info:
            scan(body, start, end, count)
        assert str(info.value) == (
            f"scan_records: need 0 <= start <= end <= len(data), got start={start}, end={end}, len(data)={n}"
        )
    # checked before the count
    with pytest.raises(ValueError):
        scan(body, 0, n + 1, 0)
    # an empty range is in range
    assert_invalid(scan, body, 1, STRUCTURE, start=n, end=n)


def test_odd_inputs_match_the_reference() -> None:
    """Arguments the C path hands to the reference: same answer or same error."""
    body, count = body_of(GOOD["headers"])
    n = len(body)
    doubled = bytes(b for pair in zip(body, b"\x00" * n) for b in pair)
    released = memoryview(body)
    released.release()
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((body, 0, n, count), {}),
        ((), {"data": body, "start": 0, "end": n, "count": count}),
        ((body, 0), {"end": n, "count": count}),
        ((body, 0, n), {}),
        ((body, 0, n, count, 5), {}),
        ((body, True, n, count), {}),
        ((body, 0, n, True), {}),
        ((body, 0, n, False), {}),
        ((body, 0.0, n, count), {}),
        ((body, 0, n, 3.0), {}),
        ((body, "0", n, count), {}),
        ((memoryview(doubled)[::2], 0, n, count), {}),
        ((memoryview(body).cast("b"), 0, n, count), {}),
        ((memoryview(body).cast("c"), 0, n, count), {}),
        ((memoryview(body[: n - n % 4]).cast("i"), 0, 1, count), {}),
        ((memoryview(body[: n - n % 4]).cast("B", (4, (n - n % 4) // 4)), 0, 1, count), {}),
        ((released, 0, n, count), {}),
        ((list(body), 0, n, count), {}),
        ((bytearray(body), 0, n, count), {}),
        ((None, 0, 0, 1), {}),
        (("abc", 0, 3, 1), {}),
    ]
    for args, kwargs in cases:
        want = outcome(scan_records_py, *args, **kwargs)
        for fn in IMPLS:
            got = outcome(fn, *args, **kwargs)
            assert got == want, (args, kwargs)


# --- differential: random mutations -------------------------------------------


def _mutate(rng: random.Random, body: bytes, count: int) -> tuple[bytes, int]:
    data = bytearray(body)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.randrange(8)
        if kind == 0 and data:  # flip a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 2:  # truncate
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:  # insert bytes
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif kind == 4 and data:  # delete bytes
            i = rng.randrange(len(data))
            del data[i : i + rng.randrange(1, 4)]
        elif kind == 5 and data:  # a varint-ish value at a random place
            i = rng.randrange(len(data))
            v = rng.choice((0, -1, -2, 1, 63, 64, -65, 2**31 - 1, -(2**31), 2**34, 2**63 - 1, -(2**63)))
            data[i : i + rng.randrange(1, 3)] = varint(v)
        elif kind == 6 and data:  # set continuation bits
            i = rng.randrange(len(data))
            for j in range(i, min(len(data), i + rng.randrange(1, 12))):
                data[j] |= 0x80
        else:  # change the count
            count = rng.choice((count - 1, count + 1, 0, -1, rng.randrange(-3, 2 * abs(count) + 4)))
    return bytes(data), count


def _bases() -> list[tuple[bytes, int]]:
    shapes = [
        [(b"k", b"v", [], BASE_TS)],
        [(None, b"value", [("h", b"x"), ("n", None)], BASE_TS), (b"key", None, [], BASE_TS - 3)],
        [(b"k" * 70, b"v" * 130, [("hh" * 40, b"x" * 70)], BASE_TS + 2**20), (None, b"", [], BASE_TS - 2**35)],
        [(None if i % 2 else b"k", b"v" * (i % 5), [("a", b"b")] * (i % 3), BASE_TS + i * 1000) for i in range(70)],
    ]
    bases = [body_of(s) for s in shapes]
    # hand-made: a 10-byte timestamp delta and 5-byte fields
    raw = record(ts=b"\xff" * 9 + b"\x7f", off=b"\x80\x80\x80\x80\x00", key=b"\x82\x80\x80\x80\x00k")
    bases.append((raw + record(ts=varint(2**62), off=varint(1)), 2))
    return bases


def test_differential_random_mutations() -> None:
    assert len(IMPLS) == 2 or not _can_build_extensions()
    rng = random.Random(20261201)
    bases = _bases()
    kinds: dict[Any, int] = {}
    for _ in range(6000):
        body, count = rng.choice(bases)
        data, count = _mutate(rng, body, count)
        start = end = 0
        if rng.random() < 0.2:  # inside a larger buffer
            pre, post = rng.randrange(4), rng.randrange(4)
            data = bytes(rng.randrange(256) for _ in range(pre)) + data + bytes(rng.randrange(256) for _ in range(post))
            start, end = pre, len(data) - post
        else:
            end = len(data)
        buf: bytes | bytearray | memoryview = data
        if rng.random() < 0.1:
            buf = rng.choice((bytearray(data), memoryview(data)))
        want = outcome(scan_records_py, buf, start, end, count)
        kinds[want[0]] = kinds.get(want[0], 0) + 1
        for fn in IMPLS[1:]:
            assert outcome(fn, buf, start, end, count) == want, (data.hex(), start, end, count)
    # the mutations reach both accepted and rejected batches
    assert kinds.get("ok", 0) > 100
    assert kinds.get(InvalidRecordError, 0) > 1000


def test_buffers_are_released(scan: Scan) -> None:
    # a bytearray still exporting its buffer cannot be resized
    good, count = body_of(GOOD["headers"])
    for data, n, start, end in [(good, count, 0, len(good)), (good, count + 1, 0, len(good)), (good, 0, 0, len(good))]:
        for _ in range(2):
            buf = bytearray(data)
            view = memoryview(buf)
            for arg in (buf, view):
                try:
                    scan(arg, start, end, n)
                except InvalidRecordError:
                    pass
                with pytest.raises(ValueError):
                    scan(arg, start, len(buf) + 1, n)
            view.release()
            buf.extend(b"x")
