"""The connections-and-memory load (issue 17; docs/reliability.md, "Connections and memory").

Against one broker process, from one asyncio driver process plus one probe process:

1. baseline: the probe (its own process, one connection, blocking socket) alternates a small
   acks=all Produce and a Metadata request for `baseline_s` on an otherwise idle broker: its latencies.
2. `idle` connections opened (each answers one ApiVersions, then sends nothing).
3. `slowloris` connections trickle one byte a second: most an ApiVersions request (answered after ~25
   s, then again), `slowloris_large` of them the size prefix of a 1 MiB frame then a byte a second
   (never complete).
4. `producers` connections each send record batches of `batch_bytes` (one record) with acks=all
   as fast as the broker answers (one in flight each) for `duration_s`, while the probe runs again and the
   broker's RSS (VmRSS of /proc/<pid>/status) is sampled every 100 ms.
5. Every acknowledged batch (its key names producer and sequence) and every acknowledged probe record
   is read back by Fetch and compared: none missing, none different (the record's key and value
   length at the acknowledged offset); a sample of the idle connections still answers.

`run()` returns a `LoadResult`; tests/load/test_connections_load.py (short form) and
scripts/bench_connections.py (long form) state and check the bounds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from kafkapy.protocol import records
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

TOPIC = "load"
PROBE_TOPIC = "load-probe"
MIB = 1 << 20


@dataclass(slots=True)
class LoadSpec:
    idle: int = 500
    producers: int = 20
    duration_s: float = 4.0  # the producers send for this long
    batch_bytes: int = MIB
    slowloris: int = 20
    slowloris_large: int = 4  # of `slowloris`: declare a 1 MiB frame, never finish it
    partitions: int = 8
    baseline_s: float = 3.0


@dataclass(slots=True)
class LoadResult:
    spec: LoadSpec
    rss_start_kib: int = 0  # before anything connected
    rss_connected_kib: int = 0  # idle and slow connections open, before the producers
    rss_max_kib: int = 0  # during the producers' phase
    connect_s: float = 0.0  # time to open the idle connections
    load_s: float = 0.0  # the producers' phase
    acked_batches: int = 0
    produce_errors: int = 0
    mb_per_s: float = 0.0
    baseline_ms: list[float] = field(default_factory=list)
    loaded_ms: list[float] = field(default_factory=list)
    probe_acked: int = 0
    missing: list[str] = field(default_factory=list)  # acknowledged, not read back as acknowledged
    idle_sample_answered: int = 0
    idle_sample: int = 0
    slowloris_answered: int = 0

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        base99, load99 = self.pct(self.baseline_ms, 0.99), self.pct(self.loaded_ms, 0.99)
        return {
            "idle": self.spec.idle,
            "producers": self.spec.producers,
            "slowloris": self.spec.slowloris,
            "connect_s": round(self.connect_s, 2),
            "load_s": round(self.load_s, 2),
            "acked_batches": self.acked_batches,
            "produce_errors": self.produce_errors,
            "MB/s": round(self.mb_per_s, 1),
            "rss_start_MiB": round(self.rss_start_kib / 1024, 1),
            "rss_connected_MiB": round(self.rss_connected_kib / 1024, 1),
            "rss_max_MiB": round(self.rss_max_kib / 1024, 1),
            "probe_p50_baseline_ms": round(self.pct(self.baseline_ms, 0.5), 2),
            "probe_p99_baseline_ms": round(base99, 2),
            "probe_p50_loaded_ms": round(self.pct(self.loaded_ms, 0.5), 2),
            "probe_p99_loaded_ms": round(load99, 2),
            "p99_factor": round(load99 / base99, 1) if base99 > 0 else None,
            "probe_requests_loaded": len(self.loaded_ms),
            "probe_acked": self.probe_acked,
            "missing": len(self.missing),
            "idle_sample_answered": f"{self.idle_sample_answered}/{self.idle_sample}",
            "slowloris_answered": self.slowloris_answered,
        }


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_fd_limit(wanted: int) -> None:
    """The soft RLIMIT_NOFILE up to `wanted` (at most the hard limit); a broker started after inherits it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _batch(key: bytes, size: int, filler: bytes) -> bytes:
    value = key + filler[: max(0, size - len(key))]
    return bytes(records.build_batch([(key, value, [], int(time.time() * 1000))]))


def _produce(topic: str, partition: int, data: bytes) -> ProduceRequest:
    return ProduceRequest(
        acks=-1,
        timeout_ms=30_000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=data)])],
    )


def _fetch(topic: str, partition: int, offset: int, max_bytes: int) -> FetchRequest:
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)],
            )
        ],
    )


# -- the probe process (blocking socket; its own process so the driver's loop does not add to its latency)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


# -- the driver


class _Client:
    """One connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cid = 0

    @classmethod
    async def open(cls, host: str, port: int) -> _Client:
        reader, writer = await asyncio.open_connection(host, port, limit=16 * MIB)
        return cls(reader, writer)

    async def request(self, body: Any, version: int, client_id: str = "load") -> Any:
        self.cid += 1
        self.writer.write(encode_request(body, version, self.cid, client_id=client_id))
        size = struct.unpack(">i", await self.reader.readexactly(4))[0]
        cid, response = decode_response(body.API_KEY, version, await self.reader.readexactly(size))
        assert cid == self.cid, (cid, self.cid)
        return response

    def close(self) -> None:
        self.writer.close()


async def _slowloris(host: str, port: int, large: bool, stop: asyncio.Event, answered: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        cid = 0
        while not stop.is_set():
            cid += 1
            if large:
                data = struct.pack(">i", MIB) + b"\x00" * 10_000  # never finished within the test
            else:
                data = encode_request(ApiVersionsRequest(), 0, cid, client_id="slowloris")
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                    return
                except TimeoutError:
                    pass
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            await reader.readexactly(size)
            answered[0] += 1
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _producer(
    client: _Client, index: int, spec: LoadSpec, filler: bytes, acked: dict[tuple[int, int], str], errors: list[str]
) -> None:
    partition = index % spec.partitions
    deadline = time.monotonic() + spec.duration_s
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        key = f"p{index}-s{seq}".encode()
        response = await client.request(_produce(TOPIC, partition, _batch(key, spec.batch_bytes, filler)), 9)
        part = response.responses[0].partition_responses[0]
        if part.error_code == 0:
            acked[(partition, part.base_offset)] = key.decode()
        else:
            errors.append(f"{key.decode()}: error {part.error_code}")


async def _read_back(client: _Client, topic: str, partition: int, value_size: int | None) -> dict[int, tuple[str, int]]:
    """offset -> (key, value length) of every record in the partition."""
    out: dict[int, tuple[str, int]] = {}
    offset = 0
    while True:
        response = await client.request(_fetch(topic, partition, offset, 8 * MIB), 12)
        part = response.responses[0].partitions[0]
        blob = part.records or b""
        got = 0
        for _, record in records.iter_all_records(blob):
            out[record.offset] = ((record.key or b"").decode(), len(record.value or b""))
            offset = record.offset + 1
            got += 1
        if offset >= part.high_watermark or got == 0:
            return out


def run(host: str, port: int, pid: int, spec: LoadSpec) -> LoadResult:
    """The whole load against the broker at host:port (process `pid`); see the module docstring."""
    raise_fd_limit(spec.idle + spec.producers + spec.slowloris + 1024)
    ctx = multiprocessing.get_context("fork")  # before the driver's event loop starts
    parent, child = ctx.Pipe()
    stop_flag = ctx.Event()
    proc = ctx.Process(target=_probe_main_flagged, args=(host, port, child, stop_flag), daemon=True)
    proc.start()
    try:
        return asyncio.run(_run_async(host, port, pid, spec, parent, stop_flag))
    finally:
        try:
            parent.send(None)
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _probe_main_flagged(host: str, port: int, pipe: Connection, stop_flag: Any) -> None:
    """The probe with a stop flag: a loaded run lasts until the driver sets it."""
    sock = socket.create_connection((host, port), timeout=60)
    cid = 0
    seq = 0
    filler = b"p" * 100
    while True:
        command = pipe.recv()
        if command is None:
            break
        duration = float(command[0])
        stop_flag.clear()
        latencies: list[float] = []
        acked: list[tuple[int, str]] = []
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not stop_flag.is_set():
            for kind in ("produce", "metadata"):
                cid += 1
                body: Any
                key = b""
                if kind == "produce":
                    seq += 1
                    key = f"probe-{seq}".encode()
                    body, version = _produce(PROBE_TOPIC, 0, _batch(key, 100, filler)), 9
                else:
                    body, version = MetadataRequest(topics=[MetadataRequestTopic(name=TOPIC)]), 9
                started = time.perf_counter()
                sock.sendall(encode_request(body, version, cid, client_id="load-probe"))
                size = struct.unpack(">i", _read_exact(sock, 4))[0]
                got_cid, response = decode_response(body.API_KEY, version, _read_exact(sock, size))
                latencies.append((time.perf_counter() - started) * 1000)
                assert got_cid == cid
                if kind == "produce":
                    part = response.responses[0].partition_responses[0]  # type: ignore[attr-defined]
                    if part.error_code == 0:
                        acked.append((part.base_offset, key.decode()))
        pipe.send((latencies, acked))
    sock.close()


async def _run_async(host: str, port: int, pid: int, spec: LoadSpec, probe: Connection, stop_flag: Any) -> LoadResult:
    loop = asyncio.get_running_loop()
    result = LoadResult(spec)
    result.rss_start_kib = rss_kib(pid)
    admin = await _Client.open(host, port)
    await admin.request(
        CreateTopicsRequest(
            topics=[
                CreatableTopic(name=TOPIC, num_partitions=spec.partitions, replication_factor=1),
                CreatableTopic(name=PROBE_TOPIC, num_partitions=1, replication_factor=1),
            ],
            timeout_ms=30_000,
        ),
        5,
    )
    probe.send((spec.baseline_s,))
    baseline, probe_acked = await loop.run_in_executor(None, probe.recv)
    result.baseline_ms = baseline

    started = time.monotonic()
    idle: list[_Client] = []
    for first in range(0, spec.idle, 200):
        batch = await asyncio.gather(*(_Client.open(host, port) for _ in range(min(200, spec.idle - first))))
        await asyncio.gather(*(c.request(ApiVersionsRequest(), 0) for c in batch))
        idle.extend(batch)
    result.connect_s = time.monotonic() - started

    stop = asyncio.Event()
    answered = [0]
    loris = [
        loop.create_task(_slowloris(host, port, i < spec.slowloris_large, stop, answered))
        for i in range(spec.slowloris)
    ]
    producers = list(await asyncio.gather(*(_Client.open(host, port) for _ in range(spec.producers))))
    await asyncio.sleep(1.0)
    result.rss_connected_kib = rss_kib(pid)

    rss_max = [result.rss_connected_kib]
    sampling = [True]

    async def sample() -> None:
        while sampling[0]:
            rss_max[0] = max(rss_max[0], rss_kib(pid))
            await asyncio.sleep(0.1)

    sampler = loop.create_task(sample())
    filler = os.urandom(256) * (spec.batch_bytes // 256 + 1)
    acked: dict[tuple[int, int], str] = {}
    errors: list[str] = []
    probe.send((3600.0,))  # until the stop flag below
    load_started = time.monotonic()
    await asyncio.gather(*(_producer(c, i, spec, filler, acked, errors) for i, c in enumerate(producers)))
    result.load_s = time.monotonic() - load_started
    stop_flag.set()
    loaded, loaded_acked = await loop.run_in_executor(None, probe.recv)
    sampling[0] = False
    await sampler
    result.loaded_ms = loaded
    result.rss_max_kib = rss_max[0]
    result.acked_batches = len(acked)
    result.produce_errors = len(errors)
    result.mb_per_s = len(acked) * spec.batch_bytes / MIB / max(result.load_s, 1e-9)

    stop.set()
    await asyncio.gather(*loris)
    result.slowloris_answered = answered[0]
    sample_idle = idle[:: max(1, len(idle) // 50)]
    result.idle_sample = len(sample_idle)
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(c.request(ApiVersionsRequest(), 0), 30) for c in sample_idle), return_exceptions=True
    )
    result.idle_sample_answered = sum(1 for o in outcomes if not isinstance(o, BaseException))
    for c in idle + producers:
        c.close()

    stored: dict[tuple[int, int], tuple[str, int]] = {}
    for partition in range(spec.partitions):
        for offset, found in (await _read_back(admin, TOPIC, partition, spec.batch_bytes)).items():
            stored[(partition, offset)] = found
    for where, key in acked.items():
        if stored.get(where) != (key, max(spec.batch_bytes, len(key))):
            result.missing.append(f"{TOPIC} {where}: acknowledged {key}, read {stored.get(where)}")
    probe_stored = await _read_back(admin, PROBE_TOPIC, 0, None)
    all_probe = probe_acked + loaded_acked
    result.probe_acked = len(all_probe)
    for offset, key in all_probe:
        if probe_stored.get(offset, ("", 0))[0] != key:
            result.missing.append(f"{PROBE_TOPIC} {offset}: acknowledged {key}, read {probe_stored.get(offset)}")
    admin.close()
    return result
