"""LogValidator (kafkapy/storage/log_validator.py): each check and rewrite on hand-built batches.

The same cases run against Apache Kafka 4.3.1 in the differential harness (interop/diff_records.py);
here the answers are checked in detail (codes, record errors, the bytes written back).
"""

from __future__ import annotations

import dataclasses
import zlib

import pytest

from interop.raw_batches import raw_batch, rec
from kafkapy.protocol import compression, records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log_validator import BatchRejected, Policy, validate_for_append

NOW = 1_800_000_000_000
HOUR = 3_600_000


def run(data: bytes, cfg: LogConfig | None = None, **policy: object) -> bytearray:
    buf = bytearray(data)
    headers = records.validate_records(buf, 1 << 20)
    p = Policy.of(cfg or LogConfig())
    if policy:
        p = dataclasses.replace(p, **policy)  # type: ignore[arg-type]
    out = validate_for_append(buf, headers, p, NOW, "t-0")
    return bytearray(out)


def rejected(data: bytes, cfg: LogConfig | None = None, **policy: object) -> BatchRejected:
    with pytest.raises(BatchRejected) as e:
        run(data, cfg, **policy)
    return e.value


def three(**kw: object) -> bytes:
    kw.setdefault("base_ts", NOW)
    return raw_batch(rec(0, 0) + rec(1, 1) + rec(2, 2), 3, **kw)  # type: ignore[arg-type]


def header(buf: bytes | bytearray) -> records.BatchHeader:
    return records.validate_batch(buf)  # CRC checked too


def test_good_batch_is_kept_in_place_unchanged() -> None:
    data = three(max_ts=NOW + 2)
    assert run(data) == bytearray(data)


@pytest.mark.parametrize("max_ts", [-1, NOW - 5000, NOW + 5000, NOW])
def test_max_timestamp_is_recomputed_from_the_records(max_ts: int) -> None:
    out = run(three(max_ts=max_ts))
    h = header(out)
    assert h.max_timestamp == NOW + 2
    assert h.timestamp_type == 0


def test_records_without_timestamps_keep_max_unset() -> None:
    h = header(run(raw_batch(rec(0), 1, base_ts=-1, max_ts=-1)))
    assert h.max_timestamp == -1


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("count above records", raw_batch(rec(0) + rec(1), 3)),
        ("count below records", raw_batch(rec(0) + rec(1) + rec(2), 2)),
        ("length past the end", raw_batch(rec(0) + rec(1, length_fix=5), 2)),
        ("length short", raw_batch(rec(0) + rec(1, length_fix=-2) + b"\x00\x00", 2)),
        ("length zero", raw_batch(rec(0) + b"\x00", 2)),
        ("trailing bytes", raw_batch(rec(0) + rec(1) + b"\x07\x07", 2)),
        ("negative header count", raw_batch(rec(0)[:-1] + b"\x03", 1)),
        ("offset deltas repeat", raw_batch(rec(0) + rec(0) + rec(2), 3)),
        ("offset deltas swapped", raw_batch(rec(1) + rec(0), 2)),
        ("gzip offset deltas", raw_batch(rec(0) + rec(0), 2, codec=1)),
        ("gzip count above records", raw_batch(rec(0) + rec(1), 3, codec=1)),
        ("producer id without sequence", three(pid=7, epoch=0, seq=-1)),
        ("base offset not 0", three(base_offset=5)),
        ("control batch", three(attrs=records.CONTROL_MASK, pid=7, epoch=0, seq=0)),
    ],
)
def test_invalid_record(name: str, data: bytes) -> None:
    e = rejected(data)
    assert e.code == ErrorCode.INVALID_RECORD, name
    assert not e.per_record


@pytest.mark.parametrize(
    "data",
    [
        three(codec=5),
        three(codec=7),
        raw_batch(b"\x1f\x8b\x08\x00garbage", 1, codec=1, compress=False),
        raw_batch(b"\x28\xb5\x2f\xfdgarbage", 1, codec=4, compress=False),
        raw_batch(b"\xff\xff\xff\xff\xff\xff\x01" + rec(0)[1:], 1),  # record length varint over 5 bytes
    ],
)
def test_what_kafka_fails_on_without_a_specific_error(data: bytes) -> None:
    assert rejected(data).code == ErrorCode.UNKNOWN_SERVER_ERROR


def test_decompression_is_bounded() -> None:
    bomb = raw_batch(rec(0, value=bytes(200_000)), 1, codec=1)
    assert len(bomb) < 2000
    assert rejected(bomb, max_inflated=100_000).code == ErrorCode.MESSAGE_TOO_LARGE
    assert header(run(bomb)).records_count == 1


def test_compacted_topic_names_each_record_without_key() -> None:
    cfg = LogConfig(cleanup_policy="compact")
    e = rejected(raw_batch(rec(0) + rec(1, key=None) + rec(2, key=None), 3), cfg)
    assert e.code == ErrorCode.INVALID_RECORD
    assert [i for i, _ in e.errors] == [1, 2]
    assert "Compacted topic cannot accept message without key in topic partition t-0." in e.errors[0][1]
    assert e.message.startswith("One or more records have been rejected due to 2 record errors in total")
    assert run(three(), cfg)


def test_timestamp_window_names_each_record_out_of_range() -> None:
    cfg = LogConfig(message_timestamp_before_max_ms=HOUR, message_timestamp_after_max_ms=HOUR)
    old = raw_batch(rec(0, 0) + rec(1, 2 * HOUR) + rec(2, 2 * HOUR), 3, base_ts=NOW - 2 * HOUR)
    e = rejected(old, cfg)
    assert e.code == ErrorCode.INVALID_TIMESTAMP
    assert [i for i, _ in e.errors] == [0]
    assert e.errors[0][1] == (
        f"Timestamp {NOW - 2 * HOUR} of message with offset 0 is out of range. "
        f"The timestamp should be within [{NOW - HOUR}, {NOW + HOUR}]"
    )
    assert e.message == "One or more records have been rejected due to invalid timestamp"
    new = raw_batch(rec(0, 0) + rec(1, 2 * HOUR), 2, base_ts=NOW)
    assert [i for i, _ in rejected(new, cfg).errors] == [1]
    assert [i for i, _ in rejected(three(codec=1, base_ts=NOW - 3 * HOUR), cfg).errors] == [0, 1, 2]
    assert run(raw_batch(rec(0), 1, base_ts=-1, max_ts=-1), cfg)  # no timestamp: not checked


def test_older_difference_max_ms_applies_where_before_and_after_are_unset() -> None:
    cfg = LogConfig(message_timestamp_difference_max_ms=HOUR)
    assert rejected(three(base_ts=NOW - 2 * HOUR), cfg).code == ErrorCode.INVALID_TIMESTAMP
    cfg = LogConfig(message_timestamp_difference_max_ms=HOUR, message_timestamp_before_max_ms=3 * HOUR)
    assert run(three(base_ts=NOW - 2 * HOUR), cfg)


def test_key_error_wins_over_timestamp_error_for_a_record() -> None:
    cfg = LogConfig(cleanup_policy="compact", message_timestamp_before_max_ms=HOUR)
    e = rejected(raw_batch(rec(0, key=None) + rec(1, -2 * HOUR), 2, base_ts=NOW), cfg)
    # one record has a timestamp error: the whole answer is INVALID_TIMESTAMP, as Kafka's
    assert e.code == ErrorCode.INVALID_TIMESTAMP
    assert [i for i, _ in e.errors] == [0, 1]
    assert "without key" in e.errors[0][1]


def test_log_append_time_set_by_a_producer() -> None:
    # CreateTime topic: refused when the batch has no max timestamp, else kept as CreateTime
    e = rejected(three(attrs=records.TIMESTAMP_TYPE_MASK, max_ts=-1))
    assert e.code == ErrorCode.INVALID_TIMESTAMP
    assert len(e.errors) == 3
    h = header(run(three(attrs=records.TIMESTAMP_TYPE_MASK, max_ts=NOW - 7)))
    assert (h.timestamp_type, h.max_timestamp) == (0, NOW - 7)
    # LogAppendTime topic: always refused
    cfg = LogConfig(message_timestamp_type="LogAppendTime")
    assert rejected(three(attrs=records.TIMESTAMP_TYPE_MASK), cfg).code == ErrorCode.INVALID_TIMESTAMP
    assert run(three(), cfg)


@pytest.mark.parametrize("source", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("target", ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_recompression_to_the_topic_codec(source: int, target: str) -> None:
    codec = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[target]
    data = raw_batch(
        rec(0, 0, value=b"x" * 300) + rec(1, 5, key=None, headers=[(b"h", b"v")]) + rec(2, 2),
        3,
        base_ts=NOW,
        max_ts=-1,
        codec=source,
        pid=9,
        epoch=2,
        seq=40,
    )
    out = run(data, LogConfig(compression_type=target))
    h = header(out)
    assert h.compression == codec
    assert (h.max_timestamp, h.producer_id, h.producer_epoch, h.base_sequence) == (NOW + 5, 9, 2, 40)
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records.iter_records(out)]
    assert got == [
        (0, NOW, b"k", b"x" * 300, []),
        (1, NOW + 5, None, b"v", [("h", b"v")]),
        (2, NOW + 2, b"k", b"v", []),
    ]


def test_gzip_level_is_applied() -> None:
    payload = b"".join(rec(i, value=bytes(range(256)) * 8) for i in range(20))
    data = raw_batch(payload, 20, base_ts=NOW)
    fast = run(data, LogConfig(compression_type="gzip"), target_level=1)
    best = run(data, LogConfig(compression_type="gzip"), target_level=9)
    body = memoryview(best)[records.RECORDS_OFFSET :]
    assert zlib.decompress(bytes(body), 31) == payload
    assert len(best) <= len(fast)
    assert compression.decompress(1, memoryview(fast)[records.RECORDS_OFFSET :], 1 << 20) == payload
