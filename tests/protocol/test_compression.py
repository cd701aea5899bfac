"""Tests of the record compression codecs."""

from __future__ import annotations

import gzip
import os
import struct

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkapy.protocol import compression as C
from kafkapy.protocol.errors import (
    CorruptRecordError,
    DecodeError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

CODECS = [C.NONE, C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD]
PAYLOADS = [b"", b"x", os.urandom(5000), b"kafka records " * 20_000]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("data", PAYLOADS, ids=["empty", "one", "random", "repetitive"])
def test_round_trip(codec: int, data: bytes) -> None:
    packed = C.compress(codec, data)
    assert C.decompress(codec, packed, len(data)) == data
    assert C.decompress(codec, memoryview(bytearray(packed)), len(data) + 10) == data


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD])
def test_bounded_decompression(codec: int) -> None:
    # A "zip bomb": 64 MiB of zeros compresses to a few KiB.
    bomb = C.compress(codec, bytes(64 << 20))
    assert len(bomb) < (4 << 20)
    with pytest.raises(RecordTooLargeError):
        C.decompress(codec, bomb, 1 << 20)
    data = b"a" * 1000
    with pytest.raises(RecordTooLargeError):
        C.decompress(codec, C.compress(codec, data), 999)
    assert C.decompress(codec, C.compress(codec, data), 1000) == data


def test_uncompressed_is_bounded_too() -> None:
    with pytest.raises(RecordTooLargeError):
        C.decompress(C.NONE, b"abc", 2)


def test_unknown_codec() -> None:
    for codec in (5, 7, -1):
        with pytest.raises(UnsupportedCompressionError):
            C.decompress(codec, b"abc", 100)
        with pytest.raises(UnsupportedCompressionError):
            C.compress(codec, b"abc")


def test_snappy_writes_xerial_frame() -> None:
    data = os.urandom(100) * 1000  # 100 KB: more than one 32 KiB block
    packed = C.compress(C.SNAPPY, data)
    assert packed[:8] == C.XERIAL_MAGIC
    assert struct.unpack_from(">ii", packed, 8) == (1, 1)
    pos, blocks, out = 16, 0, b""
    while pos < len(packed):
        (n,) = struct.unpack_from(">i", packed, pos)
        out += bytes(cramjam.snappy.decompress_raw(packed[pos + 4 : pos + 4 + n]))
        pos += 4 + n
        blocks += 1
    assert out == data and blocks == 4


def test_snappy_reads_hand_built_xerial_and_raw() -> None:
    parts = [b"hello " * 50, b"world " * 70, b""]
    frame = C.XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    for p in parts:
        block = bytes(cramjam.snappy.compress_raw(p))
        frame += struct.pack(">i", len(block)) + block
    assert C.decompress(C.SNAPPY, frame, 10_000) == b"".join(parts)
    raw = bytes(cramjam.snappy.compress_raw(b"raw snappy " * 10))
    assert C.decompress(C.SNAPPY, raw, 10_000) == b"raw snappy " * 10
    # Bounds apply across xerial blocks.
    with pytest.raises(RecordTooLargeError):
        C.decompress(C.SNAPPY, frame, len(parts[0]) + 10)
    # A block length pointing past the end.
    bad = C.XERIAL_MAGIC + struct.pack(">iii", 1, 1, 1000) + b"\x00"
    with pytest.raises(CorruptRecordError):
        C.decompress(C.SNAPPY, bad, 10_000)


def test_reads_other_producers_framing() -> None:
    data = b"interop " * 1000
    # gzip from the stdlib (mtime/header bytes differ from ours).
    assert C.decompress(C.GZIP, gzip.compress(data, 9), len(data)) == data
    # Concatenated gzip members.
    assert C.decompress(C.GZIP, gzip.compress(data) + gzip.compress(b"!"), 10**6) == data + b"!"
    # LZ4 frames with content size and checksums, linked blocks.
    lz = lz4.frame.compress(data, store_size=True, content_checksum=True, block_linked=True)
    assert C.decompress(C.LZ4, lz, len(data)) == data
    # zstd with and without content size, with checksum, and two frames.
    for kw in ({}, {"write_content_size": False}, {"write_checksum": True}):
        z = zstandard.ZstdCompressor(**kw).compress(data)
        assert C.decompress(C.ZSTD, z, len(data)) == data
    two = zstandard.ZstdCompressor().compress(b"a") + zstandard.ZstdCompressor().compress(b"b")
    assert C.decompress(C.ZSTD, two, 10) == b"ab"


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD])
def test_truncation_detected(codec: int) -> None:
    packed = C.compress(codec, os.urandom(3000) + b"z" * 50_000)
    for cut in sorted({1, 5, len(packed) // 3, len(packed) // 2, len(packed) - 1}):
        with pytest.raises(CorruptRecordError):
            C.decompress(codec, packed[:cut], 1 << 20)


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD])
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_garbage_only_typed_errors(codec: int, data: bytes) -> None:
    try:
        C.decompress(codec, data, 1 << 16)
    except DecodeError:
        pass


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_corrupted_stream_only_typed_errors(codec: int, data: st.DataObject) -> None:
    packed = bytearray(C.compress(codec, b"some record bytes " * 200))
    for i in data.draw(st.lists(st.integers(0, len(packed) - 1), min_size=1, max_size=3)):
        packed[i] ^= data.draw(st.integers(1, 255))
    try:
        C.decompress(codec, bytes(packed), 1 << 16)
    except DecodeError:
        pass


def test_codec_names() -> None:
    assert [C.codec_name(c) for c in CODECS] == ["none", "gzip", "snappy", "lz4", "zstd"]
    with pytest.raises(UnsupportedCompressionError):
        C.codec_name(9)
