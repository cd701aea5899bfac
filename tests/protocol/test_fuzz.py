"""Fuzzing the decoders: malformed frames raise DecodeError and nothing else.

Valid request and response frames (drawn from the schema strategies of
test_roundtrip) are mutated: bit flips, truncations, 16/32-bit words and
varints overwritten with huge or negative values, bytes inserted and deleted.
Every result goes through `frames.decode_request` or `frames.decode_response`;
only DecodeError (and its subclasses) may come out, and the decoder may not
allocate much more than the input it was given (tracemalloc peak).
"""

from __future__ import annotations

import os
import random
import statistics
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkapy.protocol.api import APIS, ApiKey, ApiSpec, api_spec
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.frames import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from kafkapy.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)

from .test_roundtrip import message_strategy

# Words written over a random position: huge, negative and boundary lengths.
NASTY_INT32 = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0xFFFFFFFE, 0x00FFFFFF, 0x00010000)
NASTY_INT16 = (0x7FFF, 0xFFFF, 0x8000, 0xFFFE)
NASTY_VARINTS = (
    b"\xff\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\xff\xff",
    b"\x80\x80\x80\x80\x80\x01",
    b"\xfe\xff\xff\xff\x07",
)

# Decoding may build Python objects for what it reads, a bounded multiple of
# the input; a length prefix must never turn into an allocation of its value.
ALLOC_PER_BYTE = 400
ALLOC_SLACK = 256 * 1024


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    kind = rnd.randrange(7)
    if not b:
        return bytes(rnd.randbytes(rnd.randrange(1, 16)))
    pos = rnd.randrange(len(b))
    if kind == 0:  # flip bits
        for _ in range(rnd.randrange(1, 4)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
    elif kind == 1:  # truncate
        del b[rnd.randrange(len(b)) :]
    elif kind == 2:
        b[pos : pos + 4] = rnd.choice(NASTY_INT32).to_bytes(4, "big")
    elif kind == 3:
        b[pos : pos + 2] = rnd.choice(NASTY_INT16).to_bytes(2, "big")
    elif kind == 4:
        v = rnd.choice(NASTY_VARINTS)
        b[pos : pos + len(v)] = v
    elif kind == 5:  # insert junk
        b[pos:pos] = rnd.randbytes(rnd.randrange(1, 8))
    else:  # delete a span
        del b[pos : pos + rnd.randrange(1, 8)]
    return bytes(b)


def decode_checked(fn: Any, frame: bytes) -> None:
    """Run one decode: only DecodeError may escape, allocation stays bounded."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        fn(frame)
    except DecodeError:
        pass
    peak = tracemalloc.get_traced_memory()[1] - before
    assert peak < ALLOC_PER_BYTE * len(frame) + ALLOC_SLACK, f"decoding {len(frame)} bytes peaked at {peak} bytes"


def request_frame(api: ApiSpec, version: int, body: Any) -> bytes:
    return encode_request(body, version, correlation_id=7, client_id="fuzz")[4:]


def response_frame(api: ApiSpec, version: int, body: Any) -> bytes:
    return b"".join(bytes(p) for p in encode_response(api, version, 7, body))


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("KAFKAPY_FUZZ_EXAMPLES", "5")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
MUTATIONS_PER_EXAMPLE = 25


def versions_of(api: ApiSpec) -> st.SearchStrategy[int]:
    return st.integers(api.min_version, api.max_version)


@pytest.fixture(autouse=True, scope="module")
def _traced() -> Any:
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.name)
def test_mutated_requests_raise_only_decode_error(api: ApiSpec) -> None:
    @FUZZ_SETTINGS
    @given(st.data(), versions_of(api), st.integers(0, 2**32))
    def check(data: st.DataObject, version: int, seed: int) -> None:
        body = data.draw(message_strategy(api.request_type(), version))
        frame = request_frame(api, version, body)
        decode_request(frame)  # the valid frame decodes
        rnd = random.Random(seed)
        for _ in range(MUTATIONS_PER_EXAMPLE):
            decode_checked(decode_request, mutate(frame, rnd))

    check()


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.name)
def test_mutated_responses_raise_only_decode_error(api: ApiSpec) -> None:
    @FUZZ_SETTINGS
    @given(st.data(), versions_of(api), st.integers(0, 2**32))
    def check(data: st.DataObject, version: int, seed: int) -> None:
        body = data.draw(message_strategy(api.response_type(), version))
        frame = response_frame(api, version, body)

        def decode(f: bytes) -> None:
            decode_response(api.api_key, version, f)

        decode(frame)
        rnd = random.Random(seed)
        for _ in range(MUTATIONS_PER_EXAMPLE):
            decode_checked(decode, mutate(frame, rnd))

    check()


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(-2, max(a.api_key for a in APIS) + 2), st.integers(-1, 20), st.binary(max_size=200))
def test_random_frames_raise_only_decode_error(api_key: int, version: int, tail: bytes) -> None:
    # A plausible header start (key, version, correlation id), then noise.
    frame = (
        api_key.to_bytes(2, "big", signed=True) + version.to_bytes(2, "big", signed=True) + b"\x00\x00\x00\x01" + tail
    )
    decode_checked(decode_request, frame)
    decode_checked(decode_request, tail)


def test_huge_prefixes_do_not_allocate() -> None:
    """A records, bytes or array length claiming ~2 GiB is refused without allocating it."""
    body = ProduceRequest(
        acks=-1,
        timeout_ms=1000,
        topic_data=[TopicProduceData(name="t", partition_data=[PartitionProduceData(index=0, records=b"x" * 64)])],
    )
    for version in (3, 9):
        frame = bytearray(request_frame(api_spec(ApiKey.PRODUCE), version, body))
        at = frame.index(b"x" * 64)
        for nasty in NASTY_INT32:
            f = bytearray(frame)
            if version >= 9:  # compact records: a 5-byte uvarint replaces the 1-byte length
                f[at - 1 : at] = b"\xff\xff\xff\xff" + bytes([nasty & 0x0F])
            else:
                f[at - 4 : at] = nasty.to_bytes(4, "big")
            decode_checked(decode_request, bytes(f))
            if nasty == 0xFFFFFFFF and version < 9:
                continue  # -1 is a null records value: valid
            with pytest.raises(DecodeError) as err:
                decode_request(bytes(f))
            assert "records" in err.value.path


def _median_decode_seconds(frame: bytes, rounds: int = 40) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        decode_request(frame)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_produce_records_are_zero_copy_views() -> None:
    """Decoding a Produce request costs the same for 1 KiB and 10 MiB of records."""
    tracemalloc.stop()  # timing without the tracer
    frames = {}
    for size in (1024, 10 * 1024 * 1024):
        body = ProduceRequest(
            acks=-1,
            timeout_ms=30000,
            topic_data=[
                TopicProduceData(name="golden", partition_data=[PartitionProduceData(index=0, records=b"\x01" * size)])
            ],
        )
        frames[size] = request_frame(api_spec(ApiKey.PRODUCE), 9, body)
    for size, frame in frames.items():
        req = decode_request(frame)
        records = req.body.topic_data[0].partition_data[0].records  # type: ignore[attr-defined]
        assert isinstance(records, memoryview)
        assert records.obj is frame  # a view of the input, not a copy
        assert len(records) == size
    small = _median_decode_seconds(frames[1024])
    large = _median_decode_seconds(frames[10 * 1024 * 1024])
    assert large < small * 3 + 20e-6, f"1 KiB: {small * 1e6:.1f} us, 10 MiB: {large * 1e6:.1f} us"
    tracemalloc.start()
