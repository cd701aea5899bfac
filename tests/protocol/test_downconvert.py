"""Down-conversion of v2 batches to magic 0/1 message sets (Fetch v0-3)."""

from __future__ import annotations

import lz4.frame
import pytest

from kafkapy.protocol import compression as C
from kafkapy.protocol import legacy as L
from kafkapy.protocol import records as R
from kafkapy.protocol.downconvert import convert_batch, down_convert, down_convert_magic
from kafkapy.protocol.errors import UnsupportedCompressionError

TS = 1_700_000_000_000


def _batch(
    base: int,
    n: int,
    codec: int = 0,
    *,
    log_append: int | None = None,
    txn: bool = False,
    deltas: list[int] | None = None,
) -> bytes:
    deltas = deltas if deltas is not None else list(range(n))
    recs = [
        R.Record(
            offset=base + d,
            timestamp=TS + d,
            key=f"k{base + d}".encode(),
            value=f"v{base + d}".encode(),
            offset_delta=d,
        )
        for d in deltas
    ]
    recs[0].headers = [("h", b"x")]
    return R.build_batch(
        recs,
        base_offset=base,
        compression=codec,
        timestamp_type=1 if log_append is not None else 0,
        max_timestamp=log_append,
        producer_id=7 if txn else -1,
        producer_epoch=0 if txn else -1,
        base_sequence=0 if txn else -1,
        is_transactional=txn,
    )


def _marker(base: int) -> bytes:
    return R.build_control_batch(
        R.ControlRecordType.ABORT, producer_id=7, producer_epoch=0, coordinator_epoch=0, timestamp=TS, base_offset=base
    )


def _msgs(buf: bytes) -> list[tuple[int, int, int, bytes | None, bytes | None]]:
    return [(m.offset, m.magic, m.timestamp, m.key, m.value) for m in L.iter_message_set(buf)]


def test_magic_for_version() -> None:
    assert [down_convert_magic(v) for v in range(6)] == [0, 0, 1, 1, None, None]


@pytest.mark.parametrize("magic", [0, 1])
def test_uncompressed_one_message_per_record_from_fetch_offset(magic: int) -> None:
    buf = _batch(10, 4)
    out = down_convert(buf, magic, 12, 1 << 20)
    ts = [TS + 2, TS + 3] if magic == 1 else [-1, -1]
    assert _msgs(out.data) == [
        (12, magic, ts[0], b"k12", b"v12"),
        (13, magic, ts[1], b"k13", b"v13"),
    ]
    assert out.records == 2 and out.next_offset == 14
    # no wrapper: each message is a top-level entry with no codec
    assert all(m.compression == 0 for m in L.iter_message_set(out.data))


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4])
@pytest.mark.parametrize("magic", [0, 1])
def test_compressed_batch_becomes_one_wrapper_of_the_same_codec(codec: int, magic: int) -> None:
    buf = _batch(100, 5, codec)
    out = down_convert(buf, magic, 102, 1 << 20)
    wrapper, end = L.read_message(out.data)
    assert end == len(out.data)
    assert wrapper.compression == codec and wrapper.magic == magic
    assert wrapper.offset == 104  # the last inner offset
    if magic == 1:
        assert wrapper.timestamp == TS + 4  # the largest inner timestamp
    # the whole batch, records below the fetch offset included (old consumers skip them)
    assert [(o, k) for o, _m, _t, k, _v in _msgs(out.data)] == [(100 + i, f"k{100 + i}".encode()) for i in range(5)]


def test_magic1_inner_offsets_are_relative_and_keep_gaps() -> None:
    buf = _batch(50, 3, C.GZIP, deltas=[0, 3, 7])  # a compacted batch
    (entry,) = convert_batch(buf, R.read_batch_header(buf), 1, 50)
    wrapper, _ = L.read_message(entry)
    assert wrapper.offset == 57
    payload = C.decompress(C.GZIP, wrapper.value or b"", 1 << 20)
    inner = []
    pos = 0
    while pos < len(payload):
        m, pos = L.read_message(payload, pos)
        inner.append(m.offset)
    assert inner == [0, 3, 7]
    assert [o for o, *_ in _msgs(entry)] == [50, 53, 57]


def test_magic0_inner_offsets_are_absolute_and_lz4_has_the_old_checksum() -> None:
    buf = _batch(20, 3, C.LZ4)
    (entry,) = convert_batch(buf, R.read_batch_header(buf), 0, 20)
    wrapper, _ = L.read_message(entry)
    value = wrapper.value or b""
    assert value == L.break_lz4_header_checksum(L.fix_lz4_header_checksum(value))
    with pytest.raises(RuntimeError):
        lz4.frame.decompress(value)  # strict readers reject the 0.8/0.9 checksum
    payload = lz4.frame.decompress(L.fix_lz4_header_checksum(value))
    m, _ = L.read_message(payload)
    assert m.offset == 20
    assert [o for o, *_ in _msgs(entry)] == [20, 21, 22]


@pytest.mark.parametrize("codec", [C.NONE, C.GZIP])
def test_log_append_time_kept_for_magic1(codec: int) -> None:
    append = TS + 999
    buf = _batch(0, 3, codec, log_append=append)
    out = down_convert(buf, 1, 0, 1 << 20)
    msgs = list(L.iter_message_set(out.data))
    assert [m.timestamp for m in msgs] == [append] * 3
    assert all(m.timestamp_type == 1 for m in msgs)
    top, _ = L.read_message(out.data)
    assert top.attributes & L.TIMESTAMP_TYPE_MASK


def test_control_batches_dropped_aborted_data_kept() -> None:
    buf = _batch(0, 2, txn=True) + _marker(2) + _batch(3, 1)
    out = down_convert(buf, 1, 0, 1 << 20)
    assert [(o, v) for o, _m, _t, _k, v in _msgs(out.data)] == [(0, b"v0"), (1, b"v1"), (3, b"v3")]
    assert out.next_offset == 4


def test_only_control_batches_convert_to_nothing() -> None:
    out = down_convert(_marker(5), 1, 5, 1 << 20)
    assert out.data == b"" and out.next_offset == 6 and out.records == 0


def test_zstd_first_raises_later_stops_before_it() -> None:
    zstd = _batch(2, 2, C.ZSTD)
    with pytest.raises(UnsupportedCompressionError):
        down_convert(zstd, 1, 2, 1 << 20)
    with pytest.raises(UnsupportedCompressionError):
        down_convert(_marker(1) + zstd, 1, 1, 1 << 20)
    out = down_convert(_batch(0, 2) + zstd, 1, 0, 1 << 20)
    assert [o for o, *_ in _msgs(out.data)] == [0, 1]
    assert out.next_offset == 2


def test_max_bytes_whole_messages_first_batch_whole() -> None:
    buf = _batch(0, 4) + _batch(4, 6)
    full = down_convert(buf, 1, 0, 1 << 20).data
    size = len(full) // 10  # same-sized messages (one-digit offsets)
    # the first batch's messages always go whole (as Kafka's first converted batch)
    assert len(down_convert(buf, 1, 0, 1).data) == 4 * size
    assert len(down_convert(buf, 1, 2, 1).data) == 2 * size  # from mid-batch: what follows the fetch offset
    # then whole messages up to the limit
    assert len(down_convert(buf, 1, 0, 6 * size + 5).data) == 6 * size
    wrapped = _batch(0, 5, C.GZIP) + _batch(5, 5, C.GZIP)
    first = down_convert(wrapped, 1, 0, 10)
    assert [o for o, *_ in _msgs(first.data)] == [0, 1, 2, 3, 4]
    # a control batch first: the first batch with messages goes whole
    assert [o for o, *_ in _msgs(down_convert(_marker(0) + _batch(1, 3), 1, 0, 1).data)] == [1, 2, 3]


def test_trailing_partial_batch_ignored() -> None:
    buf = _batch(0, 2) + _batch(2, 2)[:-5]
    out = down_convert(buf, 0, 0, 1 << 20)
    assert [o for o, *_ in _msgs(out.data)] == [0, 1]
    assert out.next_offset == 2


def test_null_key_and_value_survive() -> None:
    buf = R.build_batch([(None, None, (), TS)], base_offset=3)
    out = down_convert(buf, 1, 3, 1 << 20)
    assert _msgs(out.data) == [(3, 1, TS, None, None)]
