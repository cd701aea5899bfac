#!/usr/bin/env python3
"""`scripts/bench_tls.py`: TLS produce and consume MB/s and produce latency, kafkapy against Apache Kafka.

Three brokers in the same run, measured interleaved so the noise of a shared machine falls
on all alike:
  * kafkapy with an SSL listener (PEM keystore: encrypted PKCS#8 key + chain, as in docs/security.md);
  * Apache Kafka (the jars interop/java pins, KRaft combined mode, kafka-server-start.sh's JVM options,
    --kafka-heap) with an SSL listener (PKCS12 keystore: Java's PEM key store cannot read the
    PBES2/AES-256 encrypted EC key the test PKI writes);
  * kafkapy on PLAINTEXT, for the cost of TLS itself (plaintext fetches use sendfile).
Certificates come from interop/certs.py (EC P-256 CA and broker certificate); the clients are
librdkafka (confluent-kafka) with security.protocol=SSL and hostname verification, the negotiated
protocol and cipher are printed per broker. The load is scripts/bench_broker.py's: after one unrecorded
warm-up round (--warmup-messages), produce N messages of --size bytes to a --partitions topic (acks=all, linger.ms=5), consume them back with
assign() from offset 0, each on a fresh topic, --repeats rounds; then sequential single-message
produce (acks=all, one in flight) for the produce latency p50/p99, and produce-to-consume of one
message at a time (a consumer assigned at the end of a 1-partition topic) for the end-to-end latency. Broker CPU seconds per run are read
from /proc.

Kernel TLS is not measured: Python 3.11's ssl has no kTLS option (ssl.OP_ENABLE_KTLS is 3.12+);
the script prints whether this interpreter and kernel would offer it.

The figures and their reading are in docs/performance.md, "TLS" (written by hand: the script only prints).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
HOST = "127.0.0.1"


def _bench_broker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_broker", REPO / "scripts" / "bench_broker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_broker"] = module
    spec.loader.exec_module(module)
    return module


bb = _bench_broker()
SECURITY: dict[str, dict[str, Any]] = {}  # bootstrap -> librdkafka security settings
_plain_conf = bb.common_conf


def _secure_conf(bootstrap: str) -> dict[str, Any]:
    return {**_plain_conf(bootstrap), **SECURITY.get(bootstrap, {})}


bb.common_conf = _secure_conf  # every client bench_broker builds gets the target's TLS settings


@dataclass(slots=True)
class Target:
    name: str
    bootstrap: str
    pid: int
    stop: Any
    tls: bool
    produce: list[float] = field(default_factory=list)
    consume: list[float] = field(default_factory=list)
    produce_cpu: list[float] = field(default_factory=list)  # broker CPU s per produce run
    consume_cpu: list[float] = field(default_factory=list)
    mb_per_run: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    cipher: str = ""


def _ports(log_path: Path) -> dict[str, int]:
    import json

    for line in log_path.read_text(errors="replace").splitlines():
        if '"broker_ready"' in line:
            event = json.loads(line)
            return {item.partition("://")[0]: int(item.rpartition(":")[2]) for item in str(event["listen"]).split(",")}
    raise RuntimeError("no broker_ready line")


def launch_kafkapy(repo: Path, data_dir: Path, settings: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m kafkapy broker` imported from the checkout `repo`; returns once it logs broker_ready."""
    data_dir.mkdir(parents=True)
    log_path = data_dir.with_suffix(".log")
    cmd = [sys.executable, "-m", "kafkapy", "broker", "--listen", f"{HOST}:0", "--data-dir", str(data_dir)]
    cmd += ["--log-format", "json"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if '"broker_ready"' in log_path.read_text(errors="replace"):
            return proc, log_path
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"kafkapy ({repo}) did not start:\n{log_path.read_text(errors='replace')[-3000:]}")


def start_kafkapy(root: Path, pki: Any, tls: bool, repo: Path = REPO, name: str = "") -> Target:
    from interop.certs import broker_pem_settings

    settings = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "1"}
    if tls:
        settings.update(
            {
                "listeners": "SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                "listener.security.protocol.map": "SSL:SSL,INTERNAL:PLAINTEXT",
                "inter.broker.listener.name": "INTERNAL",
                **broker_pem_settings(pki),
            }
        )
    name = name or ("kafkapy-tls" if tls else "kafkapy-plain")
    proc, log_path = launch_kafkapy(repo, root / name / "data", settings)
    port = _ports(log_path)["SSL" if tls else "PLAINTEXT"]

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    return Target(name, f"{HOST}:{port}", proc.pid, stop, tls)


def start_kafka(root: Path, pki: Any, heap: str) -> Target:
    from interop import apache_kafka as ak
    from interop.adapters.java import java_command
    from interop.certs import broker_p12_settings

    workdir = root / "kafka-tls"
    workdir.mkdir(parents=True)
    port, controller, tls_port = ak.free_port(), ak.free_port(), ak.free_port()
    settings = {
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller},SSL://{HOST}:{tls_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port},SSL://{HOST}:{tls_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL",
        "group.initial.rebalance.delay.ms": "0",
        **broker_p12_settings(pki),
    }
    config = ak.write_config(workdir, port, controller, settings)
    log4j = workdir / "log4j2.properties"
    log4j.write_text(ak.LOG4J2.format(log=workdir / "server.log"))
    fmt = java_command(
        ak.STORAGE_TOOL,
        "format",
        "-t",
        ak.random_cluster_id(),
        "-c",
        str(config),
        jvm_args=("-Xmx256m", f"-Dlog4j2.configurationFile={log4j}"),
    )
    subprocess.run(fmt, check=True, capture_output=True, timeout=180)
    jvm = (f"-Xmx{heap}", f"-Xms{heap}", *bb.KAFKA_JVM_OPTS, f"-Dlog4j2.configurationFile={log4j}")
    out = open(workdir / "stdout.log", "wb")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen(
        java_command(ak.KAFKA_MAIN, str(config), jvm_args=jvm),
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not ak._metadata_lists_broker(HOST, port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"Apache Kafka did not start:\n{(workdir / 'stdout.log').read_text()[-3000:]}")
        time.sleep(0.2)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()

    return Target("kafka-tls", f"{HOST}:{tls_port}", proc.pid, stop, True)


def negotiated(target: Target, ca: Path) -> str:
    """Protocol and cipher a default Python client gets (librdkafka's OpenSSL offers the same suites)."""
    context = ssl.create_default_context(cafile=str(ca))
    host, _, port = target.bootstrap.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        name, version, _ = tls.cipher() or ("?", "?", 0)
        return f"{version} {name}"


def ktls_note() -> str:
    python = "ssl.OP_ENABLE_KTLS present" if hasattr(ssl, "OP_ENABLE_KTLS") else "no ssl.OP_ENABLE_KTLS"
    try:
        ulp = Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    except OSError:
        ulp = []
    kernel = "kernel offers the tls ULP" if "tls" in ulp else f"kernel ULPs: {' '.join(ulp) or 'none'} (no tls)"
    return f"Python {platform.python_version()} ({ssl.OPENSSL_VERSION}): {python}; {kernel}"


def measure(args: argparse.Namespace, targets: list[Target]) -> None:
    size, parts = args.size, args.partitions
    for t in targets:  # unrecorded: connections, page cache, the JVM's JIT
        topic = f"tls-warmup-{t.name}"
        bb.create_topic(t.bootstrap, topic, parts)
        p = bb.produce_run(t.bootstrap, topic, args.warmup_messages, size, parts, args.time_box)
        bb.consume_run(t.bootstrap, topic, p["ok"], size, parts, args.time_box)
    for rnd in range(args.repeats):
        for t in targets[rnd % len(targets) :] + targets[: rnd % len(targets)]:  # each leads a round in turn
            topic = f"tls-bench-{rnd}-{t.name}"
            bb.create_topic(t.bootstrap, topic, parts)
            cpu0 = bb.proc_cpu_s(t.pid)
            p = bb.produce_run(t.bootstrap, topic, args.messages, size, parts, args.time_box)
            cpu1 = bb.proc_cpu_s(t.pid)
            c = bb.consume_run(t.bootstrap, topic, p["ok"], size, parts, args.time_box)
            cpu2 = bb.proc_cpu_s(t.pid)
            if p["errors"] or p["undelivered"] or not c["complete"]:
                raise RuntimeError(f"{t.name}: produce {p} consume {c}\n" + "\n".join(bb.RDSINK.lines[-10:]))
            t.produce.append(p["mb_s"])
            t.consume.append(c["mb_s"])
            t.produce_cpu.append(cpu1 - cpu0)
            t.consume_cpu.append(cpu2 - cpu1)
            t.mb_per_run.append(p["ok"] * size / 1e6)
            print(
                f"  round {rnd + 1} {t.name:<14} produce {p['mb_s']:7.1f} MB/s  consume {c['mb_s']:7.1f} MB/s",
                flush=True,
            )
    producers = []
    for t in targets:
        topic = f"tls-latency-{t.name}"
        bb.create_topic(t.bootstrap, topic, parts)
        lp = bb.LatencyProducer(t.bootstrap, topic, size, parts)
        for _ in range(50):
            lp.one(record=False)
        producers.append((t, lp))
    ends = []
    for t in targets:
        topic = f"tls-e2e-{t.name}"
        bb.create_topic(t.bootstrap, topic, 1)
        e2e = EndToEnd(t.bootstrap, topic, size)
        for _ in range(50):
            e2e.one(record=False)
        ends.append((t, e2e))
    block = max(1, args.latency_count // 10)
    for _ in range(10):
        for (_t, lp), (_t2, e2e) in zip(producers, ends, strict=True):
            for _ in range(block):
                lp.one()
            for _ in range(block):
                e2e.one()
    for (t, lp), (_t, e2e) in zip(producers, ends, strict=True):
        lp.close()
        e2e.close()
        if lp.errors or e2e.lost:
            raise RuntimeError(f"{t.name}: latency errors {dict(lp.errors)}, {e2e.lost} end-to-end lost")
        t.latency = lp.samples
        t.e2e = e2e.samples


class EndToEnd:
    """One producer (acks=all, linger.ms=0) and one consumer assigned to the topic's end: the time
    from produce() of one message to the consumer's poll() returning it (fetch long-poll included)."""

    def __init__(self, bootstrap: str, topic: str, size: int) -> None:
        from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

        self.producer = Producer({**bb.common_conf(bootstrap), "acks": "all", "linger.ms": 0})
        conf = {
            **bb.common_conf(bootstrap),
            "group.id": "tls-bench-e2e",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
            "fetch.min.bytes": 1,
        }
        self.consumer = Consumer(conf)
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
        self.topic = topic
        self.payload = os.urandom(size)
        self.samples: list[float] = []
        self.lost = 0
        self.consumer.poll(1.0)  # joins the fetch loop at the end

    def one(self, record: bool = True) -> None:
        t0 = time.perf_counter()
        self.producer.produce(self.topic, self.payload, partition=0)
        self.producer.poll(0)
        end = t0 + 10.0
        while time.perf_counter() < end:
            msg = self.consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                if record:
                    self.samples.append(time.perf_counter() - t0)
                return
        self.lost += 1

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(args: argparse.Namespace, targets: list[Target], note: str) -> str:
    by = {t.name: t for t in targets}
    ours, plain, kafka = by.get("kafkapy-tls"), by.get("kafkapy-plain"), by.get("kafka-tls")
    base = by.get("kafkapy-tls-base")
    others = [o for o in (kafka, plain, base) if o is not None]

    def row(label: str, get: Any, fmt: str, higher_better: bool = True) -> str:
        cells = [format(get(t), fmt) for t in targets]
        ratios = [bb.fmt_ratio(get(ours), get(other)) if ours is not None else "n/a" for other in others]
        return f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |"

    def cpu_per_gb(series: list[float], t: Target) -> float:
        return sum(series) / (sum(t.mb_per_run) / 1000) if t.mb_per_run else float("nan")

    header = (
        "| | " + " | ".join(t.name for t in targets) + " | " + " | ".join(f"kafkapy-tls / {o.name}" for o in others)
    )
    lines = [
        header + " |",
        "|" + "---|" * (len(targets) + len(others) + 1),
        row("produce MB/s (median)", lambda t: med(t.produce), ".1f"),
        row("consume MB/s (median)", lambda t: med(t.consume), ".1f"),
        row("produce latency p50 ms", lambda t: bb.pct(t.latency, 50) * 1000, ".2f"),
        row("produce latency p99 ms", lambda t: bb.pct(t.latency, 99) * 1000, ".2f"),
        row("end-to-end latency p50 ms", lambda t: bb.pct(t.e2e, 50) * 1000, ".2f"),
        row("end-to-end latency p99 ms", lambda t: bb.pct(t.e2e, 99) * 1000, ".2f"),
        row("broker CPU s per GB produced", lambda t: cpu_per_gb(t.produce_cpu, t), ".1f"),
        row("broker CPU s per GB consumed", lambda t: cpu_per_gb(t.consume_cpu, t), ".1f"),
    ]
    ciphers = ", ".join(f"{t.name}: {t.cipher}" for t in targets if t.tls)
    setup = (
        f"One unrecorded warm-up round of {args.warmup_messages} messages, then {args.repeats} interleaved rounds (the order rotating) of {args.messages} x {args.size} B messages to {args.partitions} "
        f"partitions (acks=all, linger.ms=5; consume by assign() from 0), produce latency (acks=all, "
        f"one in flight) and end-to-end latency (produce to a consumer at the end of a 1-partition topic) "
        f"over {len(targets[0].latency)} sequential messages each per broker, in 10 interleaved blocks; librdkafka {_librdkafka()}; "
        f"TLS: {ciphers}; {bb.machine()}; {note}."
    )
    return "\n".join(lines) + "\n\n" + setup + "\n"


def _librdkafka() -> str:
    import confluent_kafka

    return str(confluent_kafka.libversion()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench_tls.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000, help="messages per produce run (default 100000)")
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    ap.add_argument("--partitions", type=int, default=6, help="partitions (default 6)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--time-box", type=float, default=90.0, help="seconds per run at most (default 90)")
    ap.add_argument("--warmup-messages", type=int, default=50_000, help="unrecorded first round (default 50000)")
    ap.add_argument("--latency-count", type=int, default=2000, help="latency samples per broker (default 2000)")
    ap.add_argument("--kafka-heap", default="1g", help="Apache Kafka's -Xmx/-Xms (default 1g)")
    ap.add_argument("--no-kafka", action="store_true", help="leave Apache Kafka out")
    ap.add_argument("--no-plain", action="store_true", help="leave plaintext kafkapy out")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another kafkapy checkout (e.g. `git archive <commit> | tar -x -C DIR`) measured too, as kafkapy-tls-base",
    )
    args = ap.parse_args(argv)

    from interop.certs import make_pki

    note = ktls_note()
    print(note, flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    pki = make_pki(root / "pki")
    targets: list[Target] = []
    try:
        targets.append(start_kafkapy(root, pki, tls=True))
        if args.baseline is not None:
            targets.append(start_kafkapy(root, pki, tls=True, repo=args.baseline.resolve(), name="kafkapy-tls-base"))
        if not args.no_kafka:
            targets.append(start_kafka(root, pki, args.kafka_heap))
        if not args.no_plain:
            targets.append(start_kafkapy(root, pki, tls=False))
        for t in targets:
            if t.tls:
                SECURITY[t.bootstrap] = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
                t.cipher = negotiated(t, pki.ca)
            print(f"{t.name}: {t.bootstrap} (pid {t.pid}) {t.cipher}", flush=True)
        measure(args, targets)
    finally:
        for t in targets:
            t.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    body = report(args, targets, "kernel TLS: " + note)
    print("\n" + body)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
