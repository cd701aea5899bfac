"""A structure-aware protocol fuzzer against a live broker process (docs/reliability.md, "Fuzzing").

Requests come from hypothesis strategies derived from the generated codecs' `SCHEMA` tables (every
field type: ints, varints, strings, nullable values, arrays, compact forms, tagged fields, uuids,
bytes and record batches), for every API and version, then are sent as they are or after a
byte-level mutation of the encoded frame (truncation, flipped or inserted bytes, huge sizes and
counts, wrong api key or version, trailing garbage, a size prefix that lies, garbage record batches).

The driver sends each case on a fuzz connection, followed by an ApiVersions "sentinel" request,
and checks the broker's behaviour: every answer decodes with the response codec of the api and
version the frame claims, to the last byte, and carries the frame's correlation id; otherwise the
connection is closed and the broker's log names it. A canary connection produces to and fetches
from a topic the fuzzer never names every few cases: the broker must answer it within a bound (no
stall of other connections) and keep every acknowledged record. The process must stay alive, its
RSS bounded, and its log free of unexpected server errors (tracebacks, UNKNOWN_SERVER_ERROR).

Hypothesis runs in chunks of `chunk` examples, each with its own seed (deterministic for a seed),
only the generate phase (nothing is shrunk against a live broker) and no example database.
"""

from __future__ import annotations

import importlib
import os
import random
import re
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from kafkapy.protocol.api import APIS, ApiKey, api_spec
from kafkapy.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError
from kafkapy.protocol.frames import encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.api_versions_response import ApiVersionsResponse
from kafkapy.protocol.messages.response_header import ResponseHeader
from kafkapy.protocol.records import build_batch

# Names the strategies prefer to random text, so requests reach past "unknown topic/group".
FUZZ_TOPIC = "fuzz"
CANARY_TOPIC = "canary-not-fuzzed"
KNOWN_STRINGS = (FUZZ_TOPIC, "fuzz-2", "fuzz-group", "", "__consumer_offsets", "__transaction_state", "*", "PLAIN")
# a topic name's limit is 249 characters; strings past it and multi-byte ones
LONG_STRINGS = ("a" * 249, "a" * 250, "b" * 1000, "é" * 200, "\u0000" * 3, "../" * 5)
SENTINEL_CID = 0x5E571E00

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

MUTATIONS = (
    "none",
    "truncate",
    "flip",
    "insert",
    "delete",
    "smash_int",
    "smash_varint",
    "api_version",
    "api_key",
    "trailing",
    "huge_size",
    "short_eof",
)


def _in(version: int, spec: tuple[int, int] | None) -> bool:
    return spec is not None and spec[0] <= version <= spec[1]


@cache
def _int_strategy(name: str, typ: str) -> st.SearchStrategy[int]:
    lo, hi = INT_RANGES[typ]
    edges = sorted({v for v in (lo, hi, -1, 0, 1, 2, lo + 1, hi - 1) if lo <= v <= hi})
    if name.endswith("_ms") or "timeout" in name:
        # Waits (fetch max_wait_ms, join rebalance timeouts, produce timeouts) stay short so a case
        # answers promptly; Kafka holds such a request for as long as it says. Their edges too.
        return st.one_of(st.sampled_from([-1, 0, 1, 100]), st.integers(0, 300))
    if name in ("num_partitions", "count", "replication_factor", "max_num_offsets", "partition_count"):
        # Sizes of what the broker would create: small, or the type's edges that must be refused.
        return st.one_of(st.integers(-2, 4), st.sampled_from([v for v in edges if v < 0 or v > 2**20]))
    if name == "acks":
        return st.one_of(st.sampled_from([-1, 0, 1]), st.sampled_from(edges))
    if name in ("index", "partition", "partition_index", "partition_id"):
        return st.one_of(st.integers(0, 1), st.sampled_from(edges))  # the fuzz topic has two
    return st.one_of(st.sampled_from(edges), st.integers(-1, 10), st.integers(lo, hi))


@cache
def _string_strategy() -> st.SearchStrategy[str]:
    # the fuzz topic as often as all the rest, so requests reach past "unknown topic"
    return st.one_of(
        st.just(FUZZ_TOPIC), st.sampled_from(KNOWN_STRINGS), st.text(max_size=12), st.sampled_from(LONG_STRINGS)
    )


@cache
def _uuid_strategy() -> st.SearchStrategy[UUID]:
    return st.one_of(st.just(UUID(int=0)), st.just(UUID(int=1)), st.uuids())


@st.composite
def _records(draw: st.DrawFn) -> bytes | None:
    """A record batch for Produce: plain, valid with any header, valid then damaged, or garbage."""
    kind = draw(st.sampled_from(["plain", "plain", "valid", "damaged", "garbage", "none", "several"]))
    if kind == "none":
        return None
    if kind == "garbage":
        return draw(st.binary(max_size=128))
    count = draw(st.integers(0 if kind != "plain" else 1, 4))
    records = [
        (draw(st.none() | st.binary(max_size=8)), draw(st.none() | st.binary(max_size=32)), [], None)
        for _ in range(count)
    ]
    if kind == "plain":  # what a plain producer sends: stored, then read back by verify_stored
        return build_batch(records, compression=draw(st.sampled_from([0, 1, 2, 3, 4])))
    batch = build_batch(
        records,
        compression=draw(st.sampled_from([0, 0, 1, 2, 3, 4])) if count else 0,
        producer_id=draw(st.sampled_from([-1, -1, 0, 1, 2**63 - 1])),
        producer_epoch=draw(st.sampled_from([-1, 0, 32767])),
        base_sequence=draw(st.sampled_from([-1, 0, 5])),
        is_transactional=draw(st.booleans()),
        is_control=draw(st.booleans()) and draw(st.booleans()),
        base_offset=draw(st.sampled_from([0, 0, 7, -1])),
    )
    if kind == "several":
        return batch * draw(st.integers(2, 3))
    if kind == "damaged":
        data = bytearray(batch)
        rnd = draw(st.randoms(use_true_random=False))
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(data))
            data[pos] ^= rnd.randint(1, 255)
        if rnd.random() < 0.3:
            del data[rnd.randrange(len(data)) :]
        return bytes(data)
    return batch


_RECORDS = _records()
# One strategy object per distinct shape (the versions of a struct with the same fields share it):
# hypothesis validates and labels each strategy object once, most of a first draw's cost.
_SHAPES: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {}


def _field_strategy(
    module: ModuleType, name: str, typ: str, version: int, nullable: bool, depth: int, flexible: bool
) -> st.SearchStrategy[Any]:
    base: st.SearchStrategy[Any]
    if typ.startswith("[]"):
        inner = typ[2:]
        elem = _field_strategy(module, name, inner, version, False, depth + 1, flexible)
        base = st.lists(elem, max_size=3 if depth < 2 else 1)
    elif typ in INT_RANGES:
        base = _int_strategy(name, typ)
    elif typ == "bool":
        base = st.booleans()
    elif typ == "float64":
        base = st.floats()
    elif typ == "string":
        base = _string_strategy()
    elif typ == "bytes":
        base = st.binary(max_size=48)
    elif typ == "uuid":
        base = _uuid_strategy()
    elif typ == "records":
        return _RECORDS
    elif typ[0].isupper():
        base = _struct_strategy(module, typ, version, depth + 1, flexible)
    else:
        raise ValueError(f"unknown field type {typ} of {name}")
    return st.none() | base if nullable else base


@cache
def _tagged_unknown() -> st.SearchStrategy[list[tuple[int, bytes]] | None]:
    return st.none() | st.lists(
        st.tuples(st.integers(64, 2**31 - 1), st.binary(max_size=8)), max_size=2, unique_by=lambda t: t[0]
    )


def _struct_strategy(
    module: ModuleType, struct_name: str, version: int, depth: int, flexible: bool
) -> st.SearchStrategy[Any]:
    fields = [
        (name, typ, _in(version, nullable))
        for name, typ, versions, nullable, _tagged, _tag, _flex in module.SCHEMA[struct_name]
        if _in(version, versions)
    ]
    key = (module.__name__, struct_name, tuple(fields), flexible, min(depth, 2))
    if key not in _SHAPES:
        kwargs = {
            name: _field_strategy(module, name, typ, version, null, depth, flexible) for name, typ, null in fields
        }
        if flexible:
            kwargs["unknown_tagged_fields"] = _tagged_unknown()
        _SHAPES[key] = st.builds(getattr(module, struct_name), **kwargs)
    return _SHAPES[key]


@cache
def request_strategy(api_key: int, version: int) -> st.SearchStrategy[Any]:
    spec = api_spec(api_key)
    module = importlib.import_module("kafkapy.protocol.messages." + spec.request_module)
    return _struct_strategy(module, spec.request_class, version, 0, spec.is_flexible(version))


# ------------------------------------------------------------------ cases


@dataclass(slots=True)
class Case:
    api_key: int
    version: int
    body: Any
    client_id: str | None
    mutation: str
    rnd: random.Random

    def describe(self) -> str:
        name = api_spec(self.api_key).name if 0 <= self.api_key < len(APIS) else str(self.api_key)
        return f"{name} v{self.version} mutation={self.mutation} body={self.body!r}"[:1500]


def case_strategy(pairs: list[tuple[int, int]], mutations: tuple[str, ...] = MUTATIONS) -> st.SearchStrategy[Case]:
    weighted = ["none"] * len(mutations) + list(mutations) if "none" in mutations else list(mutations)

    built: dict[tuple[int, int], st.SearchStrategy[Case]] = {}

    def build(pair: tuple[int, int]) -> st.SearchStrategy[Case]:
        if pair not in built:
            built[pair] = _case_for(pair, weighted)
        return built[pair]

    return st.sampled_from(pairs).flatmap(build)


def _case_for(pair: tuple[int, int], weighted: list[str]) -> st.SearchStrategy[Case]:
    return st.builds(
        Case,
        st.just(pair[0]),
        st.just(pair[1]),
        request_strategy(*pair),
        st.one_of(st.just("fuzz"), st.none(), st.text(max_size=8)),
        st.sampled_from(weighted),
        st.randoms(use_true_random=False),
    )


_EDGE_INT32 = (b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x00\x7f\xff", b"\xff\xff\xff\xfe")


def mutate(frame: bytes, mutation: str, rnd: random.Random) -> tuple[bytes, bool]:
    """The bytes to send for a case, and whether the frame is whole (a sentinel may follow it)."""
    body = bytearray(frame[4:])
    if mutation == "truncate" and body:
        del body[rnd.randrange(len(body)) :]
    elif mutation == "flip" and body:
        for _ in range(rnd.randint(1, 4)):
            body[rnd.randrange(len(body))] ^= rnd.randint(1, 255)
    elif mutation == "insert":
        pos = rnd.randint(0, len(body))
        body[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
    elif mutation == "delete" and len(body) > 1:
        pos = rnd.randrange(len(body))
        del body[pos : pos + rnd.randint(1, 8)]
    elif mutation == "smash_int" and len(body) >= 4:
        pos = rnd.randrange(8, len(body) - 3) if len(body) > 12 else 0
        body[pos : pos + 4] = rnd.choice(_EDGE_INT32)
    elif mutation == "smash_varint" and body:
        pos = rnd.randrange(len(body))
        body[pos : pos + 1] = b"\xff" * rnd.randint(1, 6) + bytes([rnd.randrange(128)])
    elif mutation == "api_version" and len(body) >= 4:
        body[2:4] = struct.pack(">h", rnd.choice([-1, -32768, 32767, rnd.randint(0, 40)]))
    elif mutation == "api_key" and len(body) >= 2:
        body[0:2] = struct.pack(">h", rnd.choice([-1, -32768, 32767, rnd.randint(0, 120)]))
    elif mutation == "trailing":
        body += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
    elif mutation == "huge_size":
        return rnd.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\x10\x00\x00\x00"]) + bytes(
            body[:16]
        ), False
    elif mutation == "short_eof":
        # the size prefix promises more than is sent, then the client half-closes
        return struct.pack(">i", len(body) + rnd.randint(1, 64)) + bytes(body), False
    return struct.pack(">i", len(body)) + bytes(body), True


# ------------------------------------------------------------------ driver


@dataclass(slots=True)
class Finding:
    kind: str
    detail: str
    case: str


@dataclass(slots=True)
class Stats:
    cases: int = 0
    unencodable: int = 0
    answered: int = 0
    unanswered: int = 0  # no answer but the connection stayed open (acks=0 produce)
    closed: int = 0
    connections: int = 0
    canary_rounds: int = 0
    canary_max_s: float = 0.0
    canary_records: int = 0
    stored_batches: int = 0  # batches the fuzzer's produces stored, all read back
    rss_start_kib: int = 0
    rss_peak_kib: int = 0
    rss_end_kib: int = 0
    seconds: float = 0.0
    by_api: Counter[str] = field(default_factory=Counter)
    by_mutation: Counter[str] = field(default_factory=Counter)
    closed_by_mutation: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        return (
            f"{self.cases} cases in {self.seconds:.1f} s ({rate:.0f}/s) over {len(self.by_api)} api/versions: "
            f"{self.answered} answered, {self.unanswered} unanswered (acks=0), {self.closed} closed "
            f"({self.unencodable} unencodable skipped); {self.connections} connections; canary {self.canary_rounds} rounds, "
            f"max {self.canary_max_s * 1000:.0f} ms, {self.canary_records} records kept; "
            f"{self.stored_batches} fuzzed batches stored and readable; "
            + (
                f"RSS {self.rss_start_kib // 1024} MiB -> {self.rss_end_kib // 1024} MiB (peak {self.rss_peak_kib // 1024} MiB)"
                if self.rss_end_kib
                else f"RSS {self.rss_start_kib // 1024} MiB, peak so far {self.rss_peak_kib // 1024} MiB"
            )
        )


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Closed(Exception):
    pass


class _Timeout(Exception):
    pass


def _read_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks = []
    while n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout()
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(n, 1 << 20))
        except TimeoutError:
            raise _Timeout() from None
        except (ConnectionResetError, BrokenPipeError):
            raise _Closed() from None
        if not chunk:
            raise _Closed()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, deadline: float) -> bytes:
    (size,) = struct.unpack(">i", _read_exact(sock, 4, deadline))
    if size < 0 or size > 256 << 20:
        raise DecodeError(f"response size {size}")
    return _read_exact(sock, size, deadline)


def check_response(api_key: int, version: int, correlation_id: int, frame: bytes) -> str | None:
    """None when `frame` is a well-formed answer to the request; otherwise what is wrong."""
    try:
        spec = api_spec(api_key)
    except UnsupportedVersionError:
        return f"an answer to unknown api key {api_key}"
    versions = [version]
    if api_key == ApiKey.API_VERSIONS:
        versions = [v for v in (version, 0) if spec.min_version <= v <= spec.max_version]  # v0 for a bad one
    problems = []
    for v in versions:
        try:
            view = memoryview(frame)
            header, pos = ResponseHeader.decode_from(view, 0, spec.response_header_version(v))
            _, end = spec.response_type().decode_from(view, pos, v)
        except (DecodeError, UnsupportedVersionError) as e:
            problems.append(f"v{v}: {e}")
            continue
        if header.correlation_id != correlation_id:
            return f"correlation id {header.correlation_id}, expected {correlation_id}"
        if end != len(frame):
            problems.append(f"v{v}: {len(frame) - end} bytes after the response")
            continue
        return None
    return "; ".join(problems) or f"an answer to {spec.name} v{version}, a version it does not have"


@dataclass
class Driver:
    host: str
    port: int
    pid: int
    log_path: Path
    case_timeout: float = 10.0
    canary_every: int = 20
    canary_bound: float = 2.0
    stats: Stats = field(default_factory=Stats)
    findings: list[Finding] = field(default_factory=list)
    closed_ports: list[tuple[int, str]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _canary: socket.socket | None = None
    _canary_cid: int = 0
    _canary_values: list[bytes] = field(default_factory=list)
    _log_offset: int = 0
    _since_canary: int = 0
    _verified: dict[int, int] = field(default_factory=dict)  # fuzz topic partition -> offset read up to

    # -- set-up ---------------------------------------------------------

    def connect(self) -> socket.socket:
        if not self.alive():  # else the port may already belong to another process
            self.findings.append(Finding("crash", "the broker process is gone", ""))
            raise BrokerDied()
        sock = socket.create_connection((self.host, self.port), timeout=self.case_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connections += 1
        return sock

    def advertised(self) -> list[tuple[int, int]]:
        sock = self.connect()
        try:
            sock.sendall(encode_request(ApiVersionsRequest(), 0, 1))
            frame = read_frame(sock, time.monotonic() + self.case_timeout)
        finally:
            sock.close()
        resp = ApiVersionsResponse.decode(frame[4:], 0)
        return [(k.api_key, v) for k in resp.api_keys for v in range(k.min_version, k.max_version + 1)]

    def setup(self) -> None:
        """The fuzz and canary topics, the RSS baseline, the log offset."""
        from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest

        sock = self.connect()
        try:
            req = CreateTopicsRequest(
                topics=[
                    CreatableTopic(name=n, num_partitions=2, replication_factor=1) for n in (FUZZ_TOPIC, CANARY_TOPIC)
                ],
                timeout_ms=10_000,
            )
            sock.sendall(encode_request(req, 7, 1))
            read_frame(sock, time.monotonic() + 30)
        finally:
            sock.close()
        self.canary_round()  # warms up the produce and fetch paths before the baseline
        self.stats.rss_start_kib = self.stats.rss_peak_kib = rss_kib(self.pid)
        self._log_offset = self.log_path.stat().st_size

    # -- canary ---------------------------------------------------------

    def _canary_request(self, body: Any, version: int) -> Any:
        from kafkapy.protocol.frames import decode_response

        if self._canary is None:
            self._canary = self.connect()
        self._canary_cid += 1
        self._canary.sendall(encode_request(body, version, self._canary_cid, client_id="canary"))
        frame = read_frame(self._canary, time.monotonic() + max(self.canary_bound * 5, 10.0))
        cid, resp = decode_response(body.API_KEY, version, frame)
        if cid != self._canary_cid:
            raise AssertionError(f"canary correlation id {cid}, expected {self._canary_cid}")
        return resp

    def canary_round(self) -> None:
        """ApiVersions, a produce (acks=-1) and a fetch of it on the canary connection, timed."""
        from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
        from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

        started = time.monotonic()
        try:
            self._canary_request(ApiVersionsRequest(client_software_name="canary", client_software_version="1"), 3)
            value = f"canary-{len(self._canary_values)}".encode()
            batch = build_batch([(None, value, [], None)])
            produce = ProduceRequest(
                acks=-1,
                timeout_ms=10_000,
                topic_data=[
                    TopicProduceData(name=CANARY_TOPIC, partition_data=[PartitionProduceData(index=0, records=batch)])
                ],
            )
            resp = self._canary_request(produce, 8)
            part = resp.responses[0].partition_responses[0]
            if part.error_code != 0:
                raise AssertionError(f"canary produce error {part.error_code}")
            if part.base_offset != len(self._canary_values):
                raise AssertionError(
                    f"canary produce at offset {part.base_offset}, expected {len(self._canary_values)}"
                )
            self._canary_values.append(value)
            fetch = FetchRequest(
                replica_id=-1,
                max_wait_ms=0,
                min_bytes=0,
                max_bytes=1 << 20,
                topics=[
                    FetchTopic(
                        topic=CANARY_TOPIC,
                        partitions=[
                            FetchPartition(partition=0, fetch_offset=part.base_offset, partition_max_bytes=1 << 20)
                        ],
                    )
                ],
            )
            fresp = self._canary_request(fetch, 11)
            fpart = fresp.responses[0].partitions[0]
            if fpart.error_code != 0 or not fpart.records or value not in bytes(fpart.records):
                raise AssertionError(f"canary fetch of offset {part.base_offset}: error {fpart.error_code}")
        except (_Closed, _Timeout, OSError, DecodeError, AssertionError) as e:
            self.findings.append(Finding("canary", f"{type(e).__name__}: {e}", "canary round"))
            if self._canary is not None:
                self._canary.close()
                self._canary = None
            return
        took = time.monotonic() - started
        self.stats.canary_rounds += 1
        self.stats.canary_max_s = max(self.stats.canary_max_s, took)
        if took > self.canary_bound:
            self.findings.append(
                Finding("stall", f"canary round took {took:.2f} s (bound {self.canary_bound} s)", "canary")
            )

    def verify_canary_data(self) -> None:
        """Every acknowledged canary record is still there, in order."""
        from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
        from kafkapy.protocol.records import iter_all_records

        fetch = FetchRequest(
            replica_id=-1,
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=64 << 20,
            topics=[
                FetchTopic(
                    topic=CANARY_TOPIC,
                    partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=64 << 20)],
                )
            ],
        )
        try:
            resp = self._canary_request(fetch, 11)
            records = bytes(resp.responses[0].partitions[0].records or b"")
            values = [record.value for _, record in iter_all_records(records)]
        except Exception as e:
            self.findings.append(Finding("data", f"reading the canary topic back: {type(e).__name__}: {e}", "end"))
            return
        self.stats.canary_records = len(values)
        if values != self._canary_values:
            self.findings.append(
                Finding(
                    "data", f"canary topic holds {len(values)} records, {len(self._canary_values)} acknowledged", "end"
                )
            )

    def verify_stored(self, topic: str = FUZZ_TOPIC, partitions: int = 2) -> None:
        """What the fuzzer's produces stored is readable: every batch of the topic, fetched from its
        log start to its high watermark, passes its CRC and decodes record by record."""
        from kafkapy.protocol.error_codes import ErrorCode
        from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
        from kafkapy.protocol.records import iter_batches, iter_records, validate_batch

        for partition in range(partitions):
            offset, batches = self._verified.get(partition, 0), 0
            for _ in range(10_000):  # bounded: each round moves past at least one batch or stops
                fetch = FetchRequest(
                    replica_id=-1,
                    max_wait_ms=0,
                    min_bytes=0,
                    max_bytes=8 << 20,
                    isolation_level=0,
                    topics=[
                        FetchTopic(
                            topic=topic,
                            partitions=[
                                FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=8 << 20)
                            ],
                        )
                    ],
                )
                try:
                    part = self._canary_request(fetch, 11).responses[0].partitions[0]
                    if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE and offset != part.log_start_offset:
                        # the fuzzer's DeleteRecords moved the log start, or it deleted and made the topic again
                        offset = part.log_start_offset
                        continue
                    if part.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                        offset = 0  # the fuzzer deleted the topic, or made it again with fewer partitions
                        break
                    if part.error_code != 0:
                        self.findings.append(
                            Finding("stored", f"fetch {topic}-{partition}@{offset}: error {part.error_code}", "end")
                        )
                        break
                    data = bytes(part.records or b"")
                    asked = offset
                    for pos, _ in iter_batches(data):
                        header = validate_batch(data, pos)
                        for _record in iter_records(data, 64 << 20, pos=pos):
                            pass
                        offset = max(offset, header.base_offset + header.last_offset_delta + 1)
                        batches += 1
                    if offset <= asked or offset >= part.high_watermark:
                        break
                except Exception as e:
                    self.findings.append(
                        Finding("stored", f"{topic}-{partition} at offset {offset}: {type(e).__name__}: {e}", "end")
                    )
                    break
            self._verified[partition] = offset
            self.stats.stored_batches += batches

    # -- cases ----------------------------------------------------------

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    def run_case(self, case: Case) -> None:
        try:
            frame = encode_request(
                case.body, case.version, case.rnd.randint(0, 2**31 - 1) & ~0xFF, client_id=case.client_id
            )
        except (EncodeError, UnsupportedVersionError, ValueError, OverflowError, struct.error):
            self.stats.unencodable += 1
            return
        data, whole = mutate(frame, case.mutation, case.rnd)
        name = f"{api_spec(case.api_key).name} v{case.version}"
        self.stats.cases += 1
        self.stats.by_api[name] += 1
        self.stats.by_mutation[case.mutation] += 1
        if self._sock is None:
            self._sock = self.connect()
        sock = self._sock
        sent_key, sent_version, sent_cid = (
            struct.unpack(">hhi", data[4:12]) if whole and len(data) >= 12 else (-1, -1, -1)
        )
        deadline = time.monotonic() + self.case_timeout
        outcome = "closed"
        try:
            try:
                sock.settimeout(self.case_timeout)  # a send that cannot finish is a hang too
                if whole:
                    sentinel = encode_request(ApiVersionsRequest(), 0, SENTINEL_CID)
                    sock.sendall(data + sentinel)
                else:
                    sock.sendall(data)
                    sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                raise _Closed() from None
            except TimeoutError:
                raise _Timeout() from None
            if not whole:
                # the broker must close: a size it refuses, or the end of input inside a frame
                extra = read_frame(sock, deadline)
                self.findings.append(
                    Finding("answer", f"an answer ({len(extra)} bytes) to a cut frame", case.describe())
                )
                raise _Closed()
            first = read_frame(sock, deadline)
            (first_cid,) = struct.unpack_from(">i", first, 0) if len(first) >= 4 else (None,)
            if first_cid == SENTINEL_CID and sent_cid != SENTINEL_CID:
                if sent_key != ApiKey.PRODUCE:
                    self.findings.append(
                        Finding("answer", f"no answer to {name} but the connection stayed open", case.describe())
                    )
                outcome = "unanswered"
                sentinel_frame = first
            else:
                problem = check_response(sent_key, sent_version, sent_cid, first)
                if problem is not None:
                    self.findings.append(Finding("answer", problem, case.describe()))
                outcome = "answered"
                sentinel_frame = read_frame(sock, deadline)
            problem = check_response(ApiKey.API_VERSIONS, 0, SENTINEL_CID, sentinel_frame)
            if problem is not None:
                self.findings.append(Finding("answer", f"sentinel: {problem}", case.describe()))
        except _Closed:
            if case.mutation != "short_eof":  # not when the client ended the connection
                self.closed_ports.append((sock.getsockname()[1], f"{name} {case.mutation}"))
            self.stats.closed_by_mutation[case.mutation] += 1
            sock.close()
            self._sock = None
        except _Timeout:
            self.findings.append(
                Finding("hang", f"no answer and no close within {self.case_timeout} s", case.describe())
            )
            sock.close()
            self._sock = None
            outcome = "hang"
        except DecodeError as e:
            self.findings.append(Finding("answer", f"bad response frame: {e}", case.describe()))
            sock.close()
            self._sock = None
        if outcome == "answered":
            self.stats.answered += 1
        elif outcome == "unanswered":
            self.stats.unanswered += 1
        elif outcome == "closed":
            self.stats.closed += 1
        self._since_canary += 1
        if self._since_canary >= self.canary_every:
            self._since_canary = 0
            self.check_broker()

    def check_broker(self) -> None:
        if not self.alive():
            self.findings.append(Finding("crash", "the broker process is gone", ""))
            raise BrokerDied()
        self.canary_round()
        rss = rss_kib(self.pid)
        self.stats.rss_peak_kib = max(self.stats.rss_peak_kib, rss)

    # -- the log --------------------------------------------------------

    def check_log(self) -> None:
        """Unexpected server errors in the broker's log, and a log line for every closed connection."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode("utf-8", "replace")
        self._log_offset += len(text.encode())
        # Failures the broker did not expect: a traceback, a handler's exception answered
        # UNKNOWN_SERVER_ERROR, the network layer's catch-alls. (Some rejections of bad input log at
        # error level where Kafka's own do: those are expected.)
        bad = re.compile(
            r"Traceback|exception=|exc_info|level=critical|request_handler_failed|network_read_failed|network_write_failed|UNKNOWN_SERVER_ERROR"
        )
        seen: set[str] = set()
        for line in text.splitlines():
            if bad.search(line):
                event = re.search(r'event=("[^"]*"|\S+)', line)
                api = re.search(r"api=\S+", line)
                key = (event.group(1) if event else line[:80]) + (api.group(0) if api else "")
                if key not in seen:
                    seen.add(key)
                    self.findings.append(Finding("server-error", line[:2000], ""))
        mentioned = set(re.findall(r"127\.0\.0\.1:(\d+)", text))
        missing = [(port, what) for port, what in self.closed_ports if str(port) not in mentioned]
        for port, what in missing[:5]:
            self.findings.append(Finding("log", f"connection from port {port} closed without a log line", what))
        self.closed_ports.clear()

    def finish(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.alive():
            self.verify_canary_data()
            self.verify_stored()
            self.stats.rss_end_kib = rss_kib(self.pid)
            self.stats.rss_peak_kib = max(self.stats.rss_peak_kib, self.stats.rss_end_kib)
        elif not any(f.kind == "crash" for f in self.findings):
            self.findings.append(Finding("crash", "the broker process is gone", ""))
        time.sleep(0.2)  # the last close's log line
        self.check_log()
        if self._canary is not None:
            self._canary.close()
            self._canary = None


class BrokerDied(Exception):
    pass


def fuzz_pairs(advertised: list[tuple[int, int]], api: str | None = None) -> list[tuple[int, int]]:
    """Every advertised (api, version), plus every other one the codecs know (served or not)."""
    known = [(a.api_key, v) for a in APIS for v in range(a.min_version, a.max_version + 1)]
    pairs = sorted(set(advertised)) + [p for p in known if p not in set(advertised)][::3]
    if api:
        wanted = {a.api_key for a in APIS if a.name.lower() == api.lower() or str(a.api_key) == api}
        if not wanted:
            raise ValueError(f"unknown api {api}")
        pairs = [p for p in known if p[0] in wanted]
    return pairs


def run(
    driver: Driver,
    pairs: list[tuple[int, int]],
    budget_s: float,
    first_seed: int = 0,
    chunk: int = 100,
    mutations: tuple[str, ...] = MUTATIONS,
    progress: Any = None,
) -> None:
    """Fuzz for `budget_s` seconds (the chunk running when it ends finishes first)."""
    strategy = case_strategy(pairs, mutations)
    started = time.monotonic()
    end = started + budget_s
    n = first_seed
    died: list[bool] = []
    try:
        while time.monotonic() < end and not died:

            @seed(n)
            @settings(
                max_examples=chunk,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
                derandomize=False,
            )
            @given(strategy)
            def one(case: Case) -> None:
                if time.monotonic() < end and not died:
                    try:
                        driver.run_case(case)
                    except BrokerDied:  # not a failure for hypothesis to replay: stop
                        died.append(True)

            one()
            if died:
                break
            n += 1
            driver.check_broker()
            driver.verify_stored()
            driver.check_log()
            if progress is not None:
                driver.stats.seconds = time.monotonic() - started
                progress(driver)
    except BrokerDied:
        pass
    driver.stats.seconds = time.monotonic() - started
    driver.finish()
