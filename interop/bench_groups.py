"""Rebalance latency: the last of three members starts (and sends JoinGroup) -> all three consuming.

    python -m interop.bench_groups [--delays 0,300,3000] [--clients confluent-kafka,kafka-python]
                                   [--runs 3] [--no-kafka]

Records are produced first, so "consuming" is each member's first record.
The same runs go against kafkapy and against Apache Kafka (interop.apache_kafka,
the jars interop/java pins), alternating, with the same group settings.
Prints one markdown table row per (client, delay): median and max over runs
for each broker, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from interop._common import start_broker
from interop.apache_kafka import start_kafka
from interop.groups_driver import CLIENTS, Member, Spec
from interop.test_groups import create_topic, produce


def one_run(bootstrap: str, client: str, run: int) -> float:
    topic, group = f"bench-{client}-{run}-{time.monotonic_ns()}", f"bg-{run}-{time.monotonic_ns()}"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, 600)
    spec = Spec(bootstrap, group, topic, CLIENTS[client].assignors[0])
    members = [Member(f"m{i}", CLIENTS[client](spec)) for i in range(3)]  # type: ignore[arg-type]
    for m in members:
        m.start()
    last_start = time.monotonic()
    try:
        deadline = last_start + 60
        while time.monotonic() < deadline:
            if all(m.first_record_at is not None for m in members):
                return max(m.first_record_at or 0 for m in members) - last_start
            time.sleep(0.001)
        state = [(sorted(m.assignment()), m.first_record_at is not None, m.error) for m in members]
        raise TimeoutError(f"members did not all consume: {state}")
    finally:
        for m in members:
            m.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delays", default="0,300,3000")
    ap.add_argument("--clients", default="confluent-kafka,kafka-python")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-kafka", action="store_true", help="leave the Apache Kafka peer out")
    args = ap.parse_args()
    clients = args.clients.split(",")
    if args.no_kafka:
        print("| client | group.initial.rebalance.delay.ms | kafkapy median (ms) | kafkapy max (ms) |")
        print("|---|---:|---:|---:|")
    else:
        print(
            "| client | group.initial.rebalance.delay.ms | kafkapy median (ms) | kafkapy max (ms)"
            " | Kafka median (ms) | Kafka max (ms) | kafkapy / Kafka |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
    for delay in [int(d) for d in args.delays.split(",")]:
        settings = {"group.initial.rebalance.delay.ms": str(delay), "group.min.session.timeout.ms": "1000"}
        with tempfile.TemporaryDirectory() as tmp:
            brokers: dict[str, tuple[str, object]] = {}
            try:
                kp = start_broker(Path(tmp) / "data", settings)
                brokers["kafkapy"] = (kp.bootstrap, kp)
                if not args.no_kafka:
                    ak = start_kafka(Path(tmp) / "kafka", settings)
                    brokers["Kafka"] = (ak.bootstrap, ak)
                for client in clients:
                    times: dict[str, list[float]] = {name: [] for name in brokers}
                    for r in range(args.runs):
                        order = list(brokers) if r % 2 == 0 else list(reversed(brokers))
                        for name in order:
                            times[name].append(one_run(brokers[name][0], client, r) * 1000)
                    cells = []
                    for name in brokers:
                        cells += [f"{statistics.median(times[name]):.0f}", f"{max(times[name]):.0f}"]
                    if "Kafka" in brokers:
                        ratio = statistics.median(times["kafkapy"]) / statistics.median(times["Kafka"])
                        cells.append(f"{ratio:.2f}x")
                    print(f"| {client} | {delay} | " + " | ".join(cells) + " |", flush=True)
            finally:
                for _, proc in brokers.values():
                    proc.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
