"""Tests of magic v2 record batches."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkapy.protocol import records as R
from kafkapy.protocol.errors import CorruptRecordError, DecodeError, RecordTooLargeError

CODECS = [0, 1, 2, 3, 4]

SAMPLE = [
    (b"k0", b"v0", [], 1_700_000_000_000),
    (None, b"value-without-key", [("h1", b"x"), ("h2", None)], 1_700_000_000_005),
    (b"key-without-value", None, [], 1_699_999_999_990),
    (None, None, [("empty", b"")], 1_700_000_000_001),
    (b"", b"", [], 1_700_000_000_002),
]


def _records_of(batch: bytes) -> list[tuple[object, ...]]:
    return [(r.key, r.value, r.headers, r.timestamp) for r in R.iter_records(batch)]


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec: int) -> None:
    batch = R.build_batch(
        SAMPLE,
        base_offset=100,
        compression=codec,
        producer_id=42,
        producer_epoch=3,
        base_sequence=9,
        partition_leader_epoch=7,
    )
    h = R.validate_batch(batch)
    assert h.size == len(batch)
    assert h.compression == codec
    assert h.base_offset == 100
    assert h.records_count == len(SAMPLE)
    assert h.last_offset_delta == len(SAMPLE) - 1
    assert h.last_offset == 104 and h.next_offset == 105
    assert h.base_timestamp == SAMPLE[0][3]
    assert h.max_timestamp == max(s[3] for s in SAMPLE)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (42, 3, 9)
    assert h.partition_leader_epoch == 7
    assert not h.is_transactional and not h.is_control
    assert h.timestamp_type == 0
    recs = list(R.iter_records(batch))
    assert [(r.key, r.value, r.headers, r.timestamp) for r in recs] == [(k, v, list(hs), ts) for k, v, hs, ts in SAMPLE]
    assert [r.offset for r in recs] == [100, 101, 102, 103, 104]
    assert [r.sequence for r in recs] == [9, 10, 11, 12, 13]
    assert h.last_sequence == 13


def test_header_constants() -> None:
    batch = R.build_batch(SAMPLE[:1])
    assert len(batch) >= R.BATCH_HEADER_SIZE == 61
    assert batch[R.MAGIC_OFFSET] == 2
    h = R.read_batch_header(batch)
    assert struct.unpack_from(">I", batch, R.CRC_OFFSET)[0] == h.crc
    assert struct.unpack_from(">i", batch, R.RECORDS_COUNT_OFFSET)[0] == 1


def test_records_from_record_objects_keep_offset_deltas() -> None:
    src = R.build_batch(SAMPLE)
    kept = [r for r in R.iter_records(src) if r.offset_delta in (0, 3)]
    rebuilt = R.build_batch(kept, base_offset=0)
    h = R.validate_batch(rebuilt)
    assert h.records_count == 2 and h.last_offset_delta == 3
    assert [r.offset for r in R.iter_records(rebuilt)] == [0, 3]


def test_empty_batch() -> None:
    batch = R.build_batch([])
    h = R.validate_batch(batch)
    assert h.records_count == 0 and h.last_offset_delta == -1
    assert list(R.iter_records(batch)) == []
    with pytest.raises(CorruptRecordError):
        R.validate_records(batch, None)


def test_sequence_wraps() -> None:
    batch = R.build_batch(SAMPLE[:3], base_sequence=R.INT32_MAX - 1)
    assert [r.sequence for r in R.iter_records(batch)] == [R.INT32_MAX - 1, R.INT32_MAX, 0]
    assert R.read_batch_header(batch).last_sequence == 0


@pytest.mark.parametrize("control_type", list(R.ControlRecordType))
def test_control_batch(control_type: R.ControlRecordType) -> None:
    batch = R.build_control_batch(
        control_type,
        producer_id=5,
        producer_epoch=1,
        coordinator_epoch=17,
        timestamp=1234,
        base_offset=50,
    )
    h = R.validate_batch(batch)
    assert h.is_control and h.is_transactional
    assert h.base_sequence == -1
    (rec,) = list(R.iter_records(batch))
    assert rec.key == struct.pack(">hh", 0, int(control_type))
    assert rec.value == struct.pack(">hi", 0, 17)
    parsed = R.parse_control_record(rec.key, rec.value)
    assert parsed.type == control_type
    assert parsed.version == 0 and parsed.coordinator_epoch == 17


def test_control_record_errors() -> None:
    with pytest.raises(CorruptRecordError):
        R.parse_control_record(b"\x00", b"")
    with pytest.raises(CorruptRecordError):
        R.parse_control_record(R.build_control_key(R.ControlRecordType.COMMIT), None)
    unknown = R.parse_control_record(R.build_control_key(3), None)
    assert unknown.type == 3 and unknown.coordinator_epoch is None


def test_crc_tampering_detected() -> None:
    batch = R.build_batch(SAMPLE)
    for i in range(R.CRC_START, len(batch)):
        bad = bytearray(batch)
        bad[i] ^= 0x01
        with pytest.raises(CorruptRecordError):
            R.validate_batch(bad)
    # Fields outside the CRC range may change freely.
    ok = bytearray(batch)
    ok[0] ^= 0xFF
    ok[R.PARTITION_LEADER_EPOCH_OFFSET] ^= 0xFF
    R.validate_batch(ok)


def test_validate_batch_errors() -> None:
    batch = R.build_batch(SAMPLE)
    with pytest.raises(CorruptRecordError):
        R.validate_batch(batch[:-1])
    with pytest.raises(CorruptRecordError):
        R.validate_batch(batch[:30])
    with pytest.raises(RecordTooLargeError):
        R.validate_batch(batch, max_size=len(batch) - 1)
    R.validate_batch(batch, max_size=len(batch))
    bad_magic = bytearray(batch)
    bad_magic[R.MAGIC_OFFSET] = 1
    with pytest.raises(CorruptRecordError):
        R.validate_batch(bad_magic)
    short = bytearray(batch)
    struct.pack_into(">i", short, 8, 10)
    with pytest.raises(CorruptRecordError):
        R.validate_batch(short)


def test_iter_batches_and_partial_tail() -> None:
    a = R.build_batch(SAMPLE[:2], base_offset=0)
    b = R.build_batch(SAMPLE[2:], base_offset=2, compression=4)
    blob = a + b
    assert [(p, h.base_offset) for p, h in R.iter_batches(blob)] == [(0, 0), (len(a), 2)]
    for cut in range(len(a), len(blob)):
        partial = blob[:cut]
        assert [p for p, _ in R.iter_batches(partial)] == [0]
        assert R.split_complete(partial) == len(a)
    assert R.split_complete(blob[: len(a) - 1]) == 0
    assert R.split_complete(blob) == len(blob)
    assert R.split_complete(b"") == 0
    got = [(h.base_offset, r.offset, r.value) for h, r in R.iter_all_records(blob + b[:20])]
    assert [o for _, o, _ in got] == [0, 1, 2, 3, 4]


def test_validate_records() -> None:
    a = R.build_batch(SAMPLE[:2])
    b = R.build_batch(SAMPLE[2:], compression=1)
    headers = R.validate_records(a + b, 10_000)
    assert sum(h.records_count for h in headers) == len(SAMPLE)
    with pytest.raises(CorruptRecordError):
        R.validate_records(a + b[:-1], 10_000)
    with pytest.raises(CorruptRecordError):
        R.validate_records(a + b"\x00" * 5, 10_000)
    with pytest.raises(CorruptRecordError):
        R.validate_records(b"", 10_000)
    with pytest.raises(RecordTooLargeError):
        R.validate_records(a, len(a) - 1)
    # A count that disagrees with lastOffsetDelta is rejected in strict mode.
    gap = R.build_batch([r for r in R.iter_records(R.build_batch(SAMPLE)) if r.offset_delta != 1])
    with pytest.raises(CorruptRecordError):
        R.validate_records(gap, None)
    assert len(R.validate_records(gap, None, strict_offsets=False)) == 1


def test_assign_offsets_in_place() -> None:
    blob = bytearray(R.build_batch(SAMPLE[:2]) + R.build_batch(SAMPLE[2:]))
    headers = R.validate_records(blob, None)
    assert R.assign_offsets(blob, headers, 1000) == 1005
    assert [h.base_offset for _, h in R.iter_batches(blob)] == [1000, 1002]
    assert [r.offset for _, r in R.iter_all_records(blob)] == [1000, 1001, 1002, 1003, 1004]


def test_in_place_rewrites() -> None:
    buf = bytearray(b"\xaa" * 7 + R.build_batch(SAMPLE, compression=3))
    pos = 7
    R.set_base_offset(buf, pos, 12345)
    R.set_partition_leader_epoch(buf, pos, 9)
    h = R.validate_batch(buf, pos)
    assert h.base_offset == 12345 and h.partition_leader_epoch == 9
    base_ts = h.base_timestamp
    R.set_log_append_time(memoryview(buf), pos, 1_800_000_000_000)
    h = R.validate_batch(buf, pos)
    assert h.timestamp_type == R.TIMESTAMP_LOG_APPEND_TIME
    assert h.max_timestamp == 1_800_000_000_000 and h.base_timestamp == base_ts
    assert h.compression == 3
    recs = list(R.iter_records(buf, pos=pos))
    assert {r.timestamp for r in recs} == {1_800_000_000_000}
    R.set_log_append_time(buf, pos, 1_900_000_000_000, set_base_timestamp=True)
    h = R.validate_batch(buf, pos)
    assert h.base_timestamp == h.max_timestamp == 1_900_000_000_000


def test_varints() -> None:
    for v in [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]:
        enc = R.encode_varint(v)
        assert len(enc) == R.size_of_varint(v)
        assert R.decode_varint(enc, 0) == (v, len(enc))
    assert R.encode_varint(-1) == b"\x01"
    assert R.encode_varint(1) == b"\x02"
    with pytest.raises(CorruptRecordError):
        R.decode_varint(b"\x80\x80", 0)
    with pytest.raises(CorruptRecordError):
        R.decode_varint(b"\xff" * 11, 0)


def test_bounded_decompression_of_records() -> None:
    big = [(None, b"\x00" * 1_000_000, [], 0)]
    batch = R.build_batch(big, compression=4)
    assert len(batch) < 1000
    with pytest.raises(RecordTooLargeError):
        list(R.iter_records(batch, max_uncompressed=100_000))
    assert len(list(R.iter_records(batch, max_uncompressed=2_000_000))) == 1


def _rebuild_with_body(batch: bytes, body: bytes, count: int) -> bytes:
    buf = bytearray(batch[: R.BATCH_HEADER_SIZE]) + body
    struct.pack_into(">i", buf, 8, len(buf) - R.LOG_OVERHEAD)
    struct.pack_into(">i", buf, R.RECORDS_COUNT_OFFSET, count)
    struct.pack_into(">I", buf, R.CRC_OFFSET, R.compute_crc(buf, 0, len(buf)))
    return bytes(buf)


def test_malformed_records_with_valid_crc() -> None:
    good = R.build_batch(SAMPLE)
    body = good[R.BATCH_HEADER_SIZE :]
    # Too many / too few records claimed, and truncated record bytes.
    for count in (len(SAMPLE) + 1, len(SAMPLE) - 1, 2**31 - 1):
        with pytest.raises(CorruptRecordError):
            list(R.iter_records(_rebuild_with_body(good, body, count)))
    with pytest.raises(CorruptRecordError):
        list(R.iter_records(_rebuild_with_body(good, body[:-3], len(SAMPLE))))
    # A record length larger than the rest of the batch.
    with pytest.raises(CorruptRecordError):
        list(R.iter_records(_rebuild_with_body(good, R.encode_varint(10**6) + b"\x00", 1)))


@pytest.mark.parametrize("codec", [0, 4])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_only_typed_errors(codec: int, data: st.DataObject) -> None:
    good = R.build_batch(SAMPLE, compression=codec)
    mode = data.draw(st.sampled_from(["flip", "truncate", "garbage", "body"]))
    if mode == "flip":
        buf = bytearray(good)
        for i in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=4)):
            buf[i] ^= data.draw(st.integers(1, 255))
        candidate = bytes(buf)
    elif mode == "truncate":
        candidate = good[: data.draw(st.integers(0, len(good)))]
    elif mode == "garbage":
        candidate = data.draw(st.binary(max_size=200))
    else:  # body garbage behind a valid header and CRC
        body = data.draw(st.binary(max_size=200))
        candidate = _rebuild_with_body(good, body, data.draw(st.integers(-2, 10)))
    for check in (True, False):
        try:
            list(R.iter_records(candidate, max_uncompressed=1 << 20, check_crc=check))
        except DecodeError:
            pass
    try:
        R.validate_records(candidate, 1 << 20)
    except DecodeError:
        pass
    try:
        list(R.iter_all_records(candidate, 1 << 20))
        R.split_complete(candidate)
    except DecodeError:
        pass


@given(
    st.lists(
        st.tuples(
            st.none() | st.binary(max_size=20),
            st.none() | st.binary(max_size=50),
            st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=3),
            st.integers(0, 2**41),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(CODECS),
)
@settings(max_examples=60, deadline=None)
def test_round_trip_property(recs: list[tuple[object, ...]], codec: int) -> None:
    batch = R.build_batch(recs, compression=codec)  # type: ignore[arg-type]
    R.validate_records(batch, None)
    assert _records_of(batch) == [(k, v, list(h), ts) for k, v, h, ts in recs]  # type: ignore[misc]


# --- kafka-python as an independent oracle (tests only) ------------------------

try:
    from kafka import codec as kc
    from kafka.record import default_records as kafka_records
except ImportError:  # kafka-python is an optional test oracle
    kafka_records = None


def _oracle_codecs() -> list[int]:
    if kafka_records is None:
        return []

    usable = [0, 1]
    if kc.has_snappy():
        usable.append(2)
    if kc.has_lz4():
        usable.append(3)
    if kc.has_zstd():
        usable.append(4)
    return usable


@pytest.mark.parametrize("codec", _oracle_codecs())
def test_oracle_kafka_python_reads_ours(codec: int) -> None:
    batch = R.build_batch(SAMPLE, compression=codec, producer_id=7, producer_epoch=2, base_sequence=3)
    kb = kafka_records.DefaultRecordBatch(bytearray(batch))
    assert kb.validate_crc()
    assert kb.compression_type == codec and kb.producer_id == 7 and kb.base_sequence == 3
    got = [(m.key, m.value, list(m.headers), m.timestamp, m.offset) for m in kb]
    assert got == [(k, v, list(h), ts, i) for i, (k, v, h, ts) in enumerate(SAMPLE)]


@pytest.mark.parametrize("codec", _oracle_codecs())
def test_oracle_we_read_kafka_python(codec: int) -> None:
    b = kafka_records.DefaultRecordBatchBuilder(2, codec, True, 11, 1, 0, 1 << 20)
    for i, (k, v, h, ts) in enumerate(SAMPLE):
        b.append(i, ts, k, v, h)
    raw = bytes(b.build())
    h = R.validate_batch(raw)
    assert h.is_transactional and h.producer_id == 11
    assert _records_of(raw) == [(k, v, list(hs), ts) for k, v, hs, ts in SAMPLE]
    if codec == 0:
        # Same bytes, except kafka-python writes leader epoch 0 and we honour it.
        ours = R.build_batch(
            SAMPLE,
            producer_id=11,
            producer_epoch=1,
            base_sequence=0,
            is_transactional=True,
            partition_leader_epoch=0,
        )
        assert ours == raw
