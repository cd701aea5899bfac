#!/usr/bin/env python3
"""Idempotent vs plain producer against one kafkapy broker (same run, interleaved).

confluent-kafka produces N messages of SIZE bytes to a P-partition topic,
acks=all, linger.ms=5, no compression, once with enable.idempotence=false and
once with true, alternating, each run on a fresh topic; reports the median
MB/s and broker CPU (utime+stime from /proc) per MB of each mode.

  python scripts/bench_idempotence.py [--messages 200000] [--size 1024] [--partitions 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafkapy.testing import BrokerProcess


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=5).topics.get(topic)
        if t and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic} not ready")


def run(broker: BrokerProcess, topic: str, idempotent: bool, n: int, size: int, partitions: int) -> tuple[float, float]:
    """Returns (MB/s, broker CPU ms per MB)."""
    from confluent_kafka import Producer

    p = Producer({
        "bootstrap.servers": broker.bootstrap,
        "enable.idempotence": idempotent,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })  # fmt: skip
    payload = os.urandom(size)
    failed = [0]

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failed[0] += 1

    p.produce(topic, payload, partition=0)
    p.flush(15)  # warm-up: metadata, connection, InitProducerId
    cpu0, t0 = cpu_s(broker.pid), time.perf_counter()
    i = 0
    while i < n:
        try:
            p.produce(topic, payload, partition=i % partitions, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.005)
            continue
        i += 1
        if (i & 255) == 0:
            p.poll(0)
    if p.flush(120) or failed[0]:
        raise RuntimeError(f"{failed[0]} messages failed")
    secs, cpu = time.perf_counter() - t0, cpu_s(broker.pid) - cpu0
    mb = n * size / 1e6
    return mb / secs, cpu * 1000 / mb


def micro(batches: int = 20_000, records_per_batch: int = 16, size: int = 1024) -> dict[bool, float]:
    """PartitionLog.append in-process: median microseconds per batch, with and without a producer id."""
    from kafkapy.protocol.records import build_batch
    from kafkapy.storage.log import PartitionLog

    recs = [(None, os.urandom(size), [], None) for _ in range(records_per_batch)]
    out: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="kpbench-idem-micro-") as root:
        for rep in range(10):
            idem = rep % 2 == 1
            plog = PartitionLog(Path(root) / f"t-{rep}", sync=False)
            pid = 1 if idem else -1
            work = [bytearray(build_batch(recs, producer_id=pid, producer_epoch=0 if idem else -1,
                                          base_sequence=i * records_per_batch if idem else -1))
                    for i in range(batches)]  # fmt: skip
            t0 = time.perf_counter()
            for b in work:
                plog.append(b, leader_epoch=0)
            out[idem].append((time.perf_counter() - t0) / batches * 1e6)
            plog.delete()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kpbench-idem-") as root:
        broker = BrokerProcess(data_dir=Path(root) / "data", log_path=Path(root) / "broker.log").start()
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        try:
            for r in range(args.repeats):
                order = (False, True) if r % 2 == 0 else (True, False)
                for idem in order:
                    topic = f"bench-{'idem' if idem else 'plain'}-{r}"
                    create_topic(broker.bootstrap, topic, args.partitions)
                    mbs, cpu = run(broker, topic, idem, args.messages, args.size, args.partitions)
                    results[idem].append((mbs, cpu))
                    print(
                        f"run {r + 1} {'idempotent' if idem else 'plain':10s} {mbs:7.1f} MB/s  {cpu:5.2f} ms CPU/MB",
                        flush=True,
                    )
        finally:
            broker.stop()
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in results.items()}
    print()
    print("| producer | MB/s (median) | broker CPU ms per MB (median) |")
    print("| --- | ---: | ---: |")
    print(f"| plain (enable.idempotence=false) | {med[False][0]:.1f} | {med[False][1]:.2f} |")
    print(f"| idempotent (enable.idempotence=true) | {med[True][0]:.1f} | {med[True][1]:.2f} |")
    print(f"| idempotent / plain | {med[True][0] / med[False][0]:.2f}x | {med[True][1] / med[False][1]:.2f}x |")
    m = micro()
    print()
    print(
        f"PartitionLog.append, 16 x {args.size} B records per batch: plain {m[False]:.2f} us/batch, "
        f"idempotent {m[True]:.2f} us/batch ({m[True] - m[False]:+.2f} us, {m[True] / m[False]:.3f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
