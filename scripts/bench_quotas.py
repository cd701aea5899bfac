#!/usr/bin/env python3
"""`scripts/bench_quotas.py`: what client quotas cost on the produce path (docs/quotas.md).

1. Micro: `QuotaManager.governs` for a client no quota governs while others have one (the whole
   per-request cost for it), and `QuotaManager.record` for a governed client (sensor lookup,
   sampled-rate record, throttle computation), in µs per call.
2. On broker processes: Produce requests (acks=1, one 1 KiB record per batch, one connection,
   sequential) to a broker with no quota configured, with quotas configured for other clients only,
   and with the producer's own client-id governed by a producer_byte_rate and a request_percentage
   far above what it sends (recorded every request, never throttled); median and p99 latency,
   requests/s and the broker's CPU time per request (/proc), the configurations interleaved round by
   round after an unrecorded warm-up round.

    python scripts/bench_quotas.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from interop import diff_quotas as dq
from interop import differential as d
from kafkapy.server.quotas import PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, QuotaManager
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient

TOPIC = "bench-quotas"
CLIENT = "bench-producer"


def micro(n: int = 200_000) -> dict[str, float]:
    m = QuotaManager()
    m.update({(("client-id", CLIENT),): {PRODUCER_BYTE_RATE: 1e12}, (("client-id", "other"),): {REQUEST_PERCENTAGE: 1}})
    out: dict[str, float] = {}
    began = time.perf_counter()
    for _ in range(n):
        m.governs("User:ANONYMOUS", "someone")
    out["QuotaManager.governs, a client no quota governs (all the dispatcher does for it)"] = (
        (time.perf_counter() - began) / n * 1e6
    )
    began = time.perf_counter()
    for i in range(n):
        m.record("User:ANONYMOUS", CLIENT, PRODUCER_BYTE_RATE, 1100, i * 1e-5)
    out["QuotaManager.record, a governed client (once per quota key a request counts on)"] = (
        (time.perf_counter() - began) / n * 1e6
    )
    return out


def start(
    root: Path, name: str, quotas: list[tuple[list[tuple[str, str | None]], list[tuple[str, float, bool]]]]
) -> BrokerProcess:
    b = BrokerProcess(root / name / "data", root / name / "broker.log").start()
    with RawClient(b.bootstrap) as c:
        assert c.request(d.create(d.topic(TOPIC, 1)), 7).topics[0].error_code == 0
        if quotas:
            assert all(e["error"] == 0 for e in dq.alter(c, *quotas))
    return b


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(b: BrokerProcess, data: bytes, requests: int, cpu: list[float] | None = None) -> list[float]:
    times: list[float] = []
    before = cpu_seconds(b.pid)
    with RawClient(b.bootstrap) as c:
        for _ in range(requests):
            began = time.perf_counter()
            r: Any = dq.request(c, d.produce(TOPIC, 0, data, acks=1), 9, client_id=CLIENT)
            times.append(time.perf_counter() - began)
            assert r.throttle_time_ms == 0
    if cpu is not None:
        cpu.append(cpu_seconds(b.pid) - before)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    for name, us in micro().items():
        print(f"{name}: {us:.2f} µs")
    root = Path(tempfile.mkdtemp(prefix="bench-quotas-"))
    configs = {
        "no quota": [],
        "others' quotas": [([("client-id", "other")], [("producer_byte_rate", 1000.0, False)])],
        "governed, never throttled": [
            ([("client-id", CLIENT)], [("producer_byte_rate", 1e12, False), ("request_percentage", 1e6, False)])
        ],
    }
    brokers = {name: start(root, name, quotas) for name, quotas in configs.items()}
    data = dq.batch(1024)
    samples: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for b in brokers.values():
            run_round(b, data, min(300, args.requests))  # warm-up, not recorded
        for _ in range(args.rounds):
            for name, b in brokers.items():
                samples[name] += run_round(b, data, args.requests, cpu[name])
    finally:
        for b in brokers.values():
            b.stop()
    base = statistics.median(samples["no quota"])
    base_cpu = sum(cpu["no quota"]) / len(samples["no quota"])
    for name, times in samples.items():
        per_request_cpu = sum(cpu[name]) / len(times)
        times.sort()
        median, p99 = statistics.median(times), times[int(len(times) * 0.99)]
        print(
            f"{name:28s} median {median * 1e6:7.1f} µs  p99 {p99 * 1e6:7.1f} µs  "
            f"{1 / statistics.mean(times):8.0f} req/s  median vs none {100 * (median / base - 1):+5.1f} %  "
            f"broker CPU {per_request_cpu * 1e6:6.1f} µs/request ({100 * (per_request_cpu / base_cpu - 1):+5.1f} %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
