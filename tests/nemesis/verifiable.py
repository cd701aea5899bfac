"""Kafka's own VerifiableProducer and VerifiableConsumer (kafka-tools, interop/java) as a second checker.

As Kafka's system tests use them (ProduceConsumeValidateTest): the producer (idempotent, acks=all)
writes increasing integers to its own topic during the faults and prints each acknowledgement
(`producer_send_success`, with partition and offset) or failure; after the heal, the consumer
(read_committed, a fresh group, `--verbose`) prints each record it reads. Every acknowledged value
must be read, at its partition and offset; duplicates are counted.
"""

from __future__ import annotations

import itertools
import json
import selectors
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interop.adapters.java import TOOL_JVM, java_command
from tests.nemesis.net import Net

TOPIC = "nemj"


@dataclass(slots=True)
class JavaProducer:
    process: subprocess.Popen[bytes]
    out: Path


@dataclass(slots=True)
class JavaResult:
    acked: int = 0
    failed: int = 0
    consumed: int = 0
    lost: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    duplicated: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.moved and self.acked > 0

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["lost"], d["moved"] = len(self.lost), len(self.moved)
        d["gap_total_s"] = round(sum(g[1] for g in self.gaps), 1)
        d["gap_max_s"] = round(max((g[1] for g in self.gaps), default=0.0), 1)
        d["gaps"] = len(self.gaps)
        d["ok"] = self.ok
        return d


def start_producer(net: Net, bootstrap: str, root: Path, seconds: float, rate: int = 50) -> JavaProducer:
    conf = root / "verifiable-producer.properties"
    conf.write_text(
        "enable.idempotence=true\nretries=2147483647\nrequest.timeout.ms=5000\ndelivery.timeout.ms=20000\nlinger.ms=5\n"
    )
    out = root / "verifiable-producer.jsonl"
    cmd = net.exec_prefix("client") + java_command(
        "org.apache.kafka.tools.VerifiableProducer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        TOPIC,
        "--acks",
        "-1",
        "--throughput",
        str(rate),
        "--max-messages",
        str(int(seconds * rate)),
        "--command-config",
        str(conf),
        jvm_args=TOOL_JVM,
    )
    with open(out, "wb") as f, open(root / "verifiable-producer.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=f, stderr=err, start_new_session=True)
    return JavaProducer(proc, out)


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def check(net: Net, bootstrap: str, root: Path, producer: JavaProducer, timeout: float = 45.0) -> JavaResult:
    if producer.process.poll() is None:
        producer.process.send_signal(signal.SIGTERM)
        producer.process.wait(15)
    r = JavaResult()
    acked: dict[str, tuple[int, int]] = {}
    ack_times: list[float] = []
    for e in _events(producer.out):
        if e.get("name") == "producer_send_success":
            acked[e["value"]] = (e["partition"], e["offset"])
            ack_times.append(e["timestamp"] / 1000)
        elif e.get("name") == "producer_send_error":
            r.failed += 1
    r.acked = len(acked)
    ack_times.sort()
    t0 = ack_times[0] if ack_times else 0.0
    r.gaps = [(round(a - t0, 1), round(b - a, 1)) for a, b in itertools.pairwise(ack_times) if b - a > 1]

    conf = root / "verifiable-consumer.properties"
    conf.write_text("isolation.level=read_committed\n")
    cmd = net.exec_prefix("client") + java_command(
        "org.apache.kafka.tools.VerifiableConsumer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        TOPIC,
        "--group-id",
        f"nemesis-verifiable-{time.time_ns()}",
        "--reset-policy",
        "earliest",
        "--enable-autocommit",
        "--verbose",
        "--command-config",
        str(conf),
        jvm_args=TOOL_JVM,
    )
    seen: dict[str, list[tuple[int, int]]] = {}
    with open(root / "verifiable-consumer.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        with open(root / "verifiable-consumer.jsonl", "wb") as keep:
            while time.monotonic() < deadline and not acked.keys() <= seen.keys():
                if not sel.select(0.5):
                    continue
                chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    break
                keep.write(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.startswith(b"{"):
                        continue
                    e = json.loads(line)
                    if e.get("name") == "record_data":
                        seen.setdefault(e["value"], []).append((e["partition"], e["offset"]))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        sel.close()
    r.consumed = sum(len(v) for v in seen.values())
    r.duplicated = sum(len(set(v)) - 1 for v in seen.values() if len(set(v)) > 1)
    for value, where in acked.items():
        if value not in seen:
            r.lost.append(value)
        elif where not in seen[value]:
            r.moved.append(value)
    return r
