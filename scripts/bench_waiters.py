#!/usr/bin/env python3
"""`scripts/bench waiters`: what idle long-polling consumers cost a kafkapy broker while another partition is written.

One kafkapy broker on 127.0.0.1. Two topics: `idle` with --waiters partitions
(default 1000) that nobody writes, and `load` with one partition.

  * waiters: a separate client process opens --waiters TCP connections, one
    per consumer, and on each keeps exactly one Fetch (v11, no fetch session)
    in flight for its own partition of `idle`, at the log end, with
    max_wait_ms=--max-wait-ms (default 500, the Java consumer's
    fetch.max.wait.ms) and min_bytes=1. When an answer comes back (empty,
    after max_wait_ms) the same request goes out again. This is 1000
    consumers each long-polling its own idle partition: Kafka processes one
    request per connection at a time, so the same number of requests
    multiplexed over fewer connections would not all be waiting at once.
  * producer: this process writes --mb MB of --size B records to `load`
    partition 0, --batch-records records per batch, one batch per Produce
    request (v8, acks=1), --inflight requests pipelined on one connection.
    The batch is built once and sent again and again (no idempotence, so the
    broker appends every copy), which keeps the client's CPU small: the
    client shares the 2 cores with the broker.

Each round runs both setups on the same broker, alternating which goes first:
"with waiters" (waiter process up and every connection's first Fetch sent,
then a settle pause) and "without" (no waiter process). In each, broker CPU
(utime+stime of the broker PID from /proc/PID/stat) is taken over --idle-s
seconds without producing (the cost of the waiters' expiries alone), then
over the produce. Reported per setup, median over --repeats rounds: produce
MB/s, broker CPU ms per produced MB, and the ratio with / without. The
expiry-corrected ratio subtracts the idle CPU rate with waiters times the
produce's duration from the CPU with waiters: what is left is the cost that
appends cause in the waiters.

The broker runs the kafkapy that `python -m kafkapy` imports from the
repository this script sits in (its working directory; PYTHONPATH applies);
the path is printed. Everything is bounded in time (--time-box per produce),
traffic is loopback only, and processes are stopped by their PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_broker as bb

from kafkapy.client import KafkaClient
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.produce_response import ProduceResponse
from kafkapy.protocol.records import build_batch

IDLE_TOPIC = "idle"
LOAD_TOPIC = "load"
FETCH_VERSION = 11
PRODUCE_VERSION = 8
HOST = bb.HOST


# --------------------------------------------------------------------------- waiter process


def fetch_request(partition: int, max_wait_ms: int) -> bytes:
    body = FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=50 * 1024 * 1024,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic=IDLE_TOPIC,
                partitions=[FetchPartition(partition=partition, fetch_offset=0, partition_max_bytes=1024 * 1024)],
            )
        ],
    )
    return encode_request(body, FETCH_VERSION, 1, client_id=f"bench-waiter-{partition}")


async def _one_waiter(port: int, partition: int, max_wait_ms: int, started: list[int], answers: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    request = fetch_request(partition, max_wait_ms)
    writer.write(request)
    started[0] += 1
    while True:
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        await reader.readexactly(size)
        answers[0] += 1
        writer.write(request)


async def _waiters_main(port: int, n: int, max_wait_ms: int) -> None:
    started, answers = [0], [0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks: list[asyncio.Task[None]] = []
    for p in range(n):  # connect one by one: a burst of 1000 SYNs can overflow the listen backlog
        tasks.append(asyncio.create_task(_one_waiter(port, p, max_wait_ms, started, answers)))
        if p % 50 == 49:
            await asyncio.sleep(0.01)
    deadline = loop.time() + 30
    while started[0] < n and loop.time() < deadline:
        failed = [t for t in tasks if t.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.01)
    print(f"ready {started[0]}", flush=True)
    await stop.wait()
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    print(f"answers {answers[0]} failed {len(failed)}", flush=True)


def waiters_child(argv: list[str]) -> int:
    port, n, max_wait_ms = (int(a) for a in argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_waiters_main(port, n, max_wait_ms))
    return 0


@dataclass(slots=True)
class Waiters:
    """The waiter process: started by Popen, stopped by its PID."""

    port: int
    n: int
    max_wait_ms: int
    proc: subprocess.Popen[bytes] | None = None
    answers: int = -1
    failed: int = -1

    def start(self, timeout: float = 60.0) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--_waiters", str(self.port), str(self.n)]
        self.proc = subprocess.Popen([*argv, str(self.max_wait_ms)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()
            if self.proc.poll() is not None and not line:
                break
        if not line.startswith(b"ready ") or int(line.split()[1]) != self.n:
            self.stop()
            raise RuntimeError(f"waiters not ready: {line!r}")

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                out, _ = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate(timeout=10)
            for line in out.decode(errors="replace").splitlines():
                parts = line.split()
                if parts[:1] == ["answers"] and len(parts) == 4:
                    self.answers, self.failed = int(parts[1]), int(parts[3])
        self.proc = None


# --------------------------------------------------------------------------- producer


@dataclass(slots=True)
class ProduceResult:
    mb: float
    seconds: float
    requests: int
    errors: int
    timed_out: bool

    @property
    def mb_s(self) -> float:
        return self.mb / self.seconds if self.seconds > 0 else float("nan")


def produce_request(size: int, batch_records: int) -> bytes:
    value = os.urandom(size)
    batch = build_batch([(None, value, (), None) for _ in range(batch_records)])
    body = ProduceRequest(
        acks=1,
        timeout_ms=30000,
        topic_data=[TopicProduceData(name=LOAD_TOPIC, partition_data=[PartitionProduceData(index=0, records=batch)])],
    )
    return encode_request(body, PRODUCE_VERSION, 1, client_id="bench-producer")


def _recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", bb._recv_exact(sock, 4))
    return bb._recv_exact(sock, size)


def produce(port: int, request: bytes, count: int, inflight: int, payload: int, time_box: float) -> ProduceResult:
    """`count` copies of `request`, `inflight` pipelined, each answer checked; seconds from first send to last answer."""
    errors = sent = done = 0
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        end = t0 + time_box
        while done < count:
            while sent < count and sent - done < inflight and time.perf_counter() < end:
                sock.sendall(request)
                sent += 1
            if done == sent:
                break
            _, resp = decode_response(0, PRODUCE_VERSION, _recv_frame(sock))
            done += 1
            assert isinstance(resp, ProduceResponse)
            for t in resp.responses:
                errors += sum(p.error_code != 0 for p in t.partition_responses)
        seconds = time.perf_counter() - t0
    return ProduceResult(done * payload / 1e6, seconds, done, errors, done < count)


# --------------------------------------------------------------------------- bench


@dataclass(slots=True)
class Phase:
    setup: str  # "with" | "without"
    idle_cpu_s: float
    idle_s: float
    produce: ProduceResult
    cpu_s: float
    waiter_answers: int = -1
    load: str = ""

    @property
    def cpu_ms_per_mb(self) -> float:
        return self.cpu_s * 1e3 / self.produce.mb if self.produce.mb else float("nan")

    @property
    def idle_rate(self) -> float:
        """Broker CPU seconds per second while nothing is produced."""
        return self.idle_cpu_s / self.idle_s


@dataclass(slots=True)
class Results:
    phases: list[Phase] = field(default_factory=list)

    def of(self, setup: str) -> list[Phase]:
        return [p for p in self.phases if p.setup == setup]


async def create_topics(port: int, waiters: int) -> None:
    async with KafkaClient(f"{HOST}:{port}") as client:
        await client.create_topic(IDLE_TOPIC, partitions=waiters, replication_factor=1)
        await client.create_topic(LOAD_TOPIC, partitions=1, replication_factor=1)
        await client.wait_for_topic(IDLE_TOPIC)
        await client.wait_for_topic(LOAD_TOPIC)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def kafkapy_imported_from(env: dict[str, str]) -> str:
    """Where `python -m kafkapy`, run as the bench runs the broker (cwd = REPO), imports kafkapy from."""
    out = subprocess.run(
        [sys.executable, "-c", "import kafkapy; print(kafkapy.__file__)"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout.decode().strip()


def run_phase(broker: bb.Broker, setup: str, args: argparse.Namespace, request: bytes, payload: int) -> Phase:
    waiters = Waiters(broker.port, args.waiters, args.max_wait_ms) if setup == "with" else None
    try:
        if waiters is not None:
            waiters.start()
        time.sleep(args.settle_s)
        c0, t0 = broker.cpu_s(), time.perf_counter()
        time.sleep(args.idle_s)
        idle_cpu, idle_s = broker.cpu_s() - c0, time.perf_counter() - t0
        load = loadavg()
        c1 = broker.cpu_s()
        result = produce(broker.port, request, args.requests, args.inflight, payload, args.time_box)
        cpu = broker.cpu_s() - c1
    finally:
        if waiters is not None:
            waiters.stop()
            # Fetches of the closed connections may still wait at the broker until max_wait_ms (woken by every
            # append meanwhile): let them expire, so that the next phase does not pay for them.
            time.sleep(args.max_wait_ms / 1000 + 0.5)
    answers = waiters.answers if waiters is not None else -1
    return Phase(setup, idle_cpu, idle_s, result, cpu, answers, load)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in[:1] == ["--_waiters"]:
        return waiters_child(args_in[1:])
    ap = argparse.ArgumentParser(prog="scripts/bench waiters", description=__doc__.split("\n\n")[0])
    ap.add_argument("--waiters", type=int, default=1000, help="idle partitions, one waiting consumer each (1000)")
    ap.add_argument("--max-wait-ms", type=int, default=500, help="the waiters' Fetch max_wait_ms (default 500)")
    ap.add_argument("--mb", type=float, default=128.0, help="MB produced per phase (default 128)")
    ap.add_argument("--size", type=int, default=1024, help="record value size in bytes (default 1024)")
    ap.add_argument("--batch-records", type=int, default=16, help="records per batch and request (default 16)")
    ap.add_argument("--inflight", type=int, default=4, help="pipelined Produce requests (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of with / without, alternating (default 3)")
    ap.add_argument("--idle-s", type=float, default=2.0, help="seconds of idle CPU measured per phase (default 2)")
    ap.add_argument("--settle-s", type=float, default=1.0, help="pause after the waiters start (default 1)")
    ap.add_argument("--time-box", type=float, default=120.0, help="max seconds per produce (default 120)")
    ap.add_argument("--data-root", default=None, help="broker data dir parent (default: a new dir in $TMPDIR)")
    args = ap.parse_args(args_in)
    for name in ("waiters", "batch_records", "inflight", "repeats", "size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")

    command = " ".join(["scripts/bench waiters", *args_in])
    bb.compile_kafkapy()
    root = Path(args.data_root or tempfile.mkdtemp(prefix="kafkapy-bench-waiters-"))
    root.mkdir(parents=True, exist_ok=True)
    request = produce_request(args.size, args.batch_records)
    payload = args.size * args.batch_records
    args.requests = max(1, round(args.mb * 1e6 / payload))
    imported = kafkapy_imported_from(dict(os.environ))
    broker = bb.Broker("kafkapy", "kafkapy", bb.kafkapy_argv, root)
    res = Results()
    t_start = time.perf_counter()
    print(f"[bench] {command}", flush=True)
    print(f"[bench] broker imports kafkapy from {imported}; load average {loadavg()}", flush=True)
    try:
        broker.start()
        pid = broker.proc.pid if broker.proc else 0
        print(f"[bench] broker pid {pid}, cwd {os.readlink(f'/proc/{pid}/cwd')}", flush=True)
        asyncio.run(create_topics(broker.port, args.waiters))
        # one unrecorded produce: first appends, segment creation, bytecode warm
        produce(broker.port, request, max(1, args.requests // 8), args.inflight, payload, args.time_box)
        for rnd in range(args.repeats):
            order = ("with", "without") if rnd % 2 == 0 else ("without", "with")
            for setup in order:
                ph = run_phase(broker, setup, args, request, payload)
                res.phases.append(ph)
                pr = ph.produce
                print(
                    f"[bench] round {rnd + 1}/{args.repeats} {setup:7s} waiters: produce {pr.mb:.0f} MB "
                    f"{pr.mb_s:7.1f} MB/s in {pr.seconds:.2f} s, broker CPU {ph.cpu_s:.2f} s = "
                    f"{ph.cpu_ms_per_mb:.2f} ms/MB; idle {ph.idle_rate:.3f} CPU-s/s; "
                    f"errors {pr.errors}{' TIMED OUT' if pr.timed_out else ''}; "
                    f"waiter answers {ph.waiter_answers}; load {ph.load}",
                    flush=True,
                )
    finally:
        broker.stop()
        if args.data_root is None:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    print(report(args, res, time.perf_counter() - t_start, command, imported))
    return 0


def report(args: argparse.Namespace, res: Results, wall_s: float, command: str, imported: str) -> str:
    med = statistics.median
    w, wo = res.of("with"), res.of("without")
    cpu_w, cpu_wo = med(p.cpu_ms_per_mb for p in w), med(p.cpu_ms_per_mb for p in wo)
    mbs_w, mbs_wo = med(p.produce.mb_s for p in w), med(p.produce.mb_s for p in wo)
    idle_w, idle_wo = med(p.idle_rate for p in w), med(p.idle_rate for p in wo)
    corrected = med((p.cpu_s - p.idle_rate * p.produce.seconds) * 1e3 / p.produce.mb for p in w)
    ratios = [a.cpu_ms_per_mb / b.cpu_ms_per_mb for a, b in zip(w, wo)]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `{command}` ({wall_s / 60:.1f} min);"
        f" broker kafkapy from {imported}; load averages during the produces: " + ", ".join(p.load for p in res.phases),
        "",
        f"{args.waiters} waiters (one connection each, Fetch v{FETCH_VERSION} max_wait_ms={args.max_wait_ms} "
        f"min_bytes=1); producer: {args.requests} Produce v{PRODUCE_VERSION} requests of {args.batch_records} x "
        f"{args.size} B (acks=1, {args.inflight} in flight) = {args.requests * args.batch_records * args.size / 1e6:.0f}"
        f" MB per phase; median of {args.repeats} alternating rounds",
        "",
        "| | with waiters | without | with / without |",
        "|---|---:|---:|---:|",
        f"| broker CPU per produced MB (ms) | {cpu_w:.2f} | {cpu_wo:.2f} | **{cpu_w / cpu_wo:.2f}x** |",
        f"| same, minus the waiters' idle expiry CPU (ms) | {corrected:.2f} | {cpu_wo:.2f} | {corrected / cpu_wo:.2f}x |",
        f"| produce MB/s | {mbs_w:.1f} | {mbs_wo:.1f} | {mbs_w / mbs_wo:.2f}x |",
        f"| broker CPU while idle (CPU-s per s) | {idle_w:.3f} | {idle_wo:.3f} | |",
        "",
        "per round, CPU ms/MB with / without (ratio): "
        + "; ".join(f"{a.cpu_ms_per_mb:.2f} / {b.cpu_ms_per_mb:.2f} ({r:.2f}x)" for a, b, r in zip(w, wo, ratios)),
        "per round, MB/s with / without: "
        + "; ".join(f"{a.produce.mb_s:.1f} / {b.produce.mb_s:.1f}" for a, b in zip(w, wo)),
    ]
    if any(p.produce.errors or p.produce.timed_out for p in res.phases):
        lines.append(
            "WARNING: produce errors or time-outs: "
            + ", ".join(
                f"{p.setup}: {p.produce.errors} errors{' timed out' if p.produce.timed_out else ''}" for p in res.phases
            )
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
