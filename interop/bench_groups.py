"""Rebalance latency: the last of three members starts (and sends JoinGroup) -> all three consuming.

    python -m interop.bench_groups [--delays 0,300,3000] [--clients confluent-kafka,kafka-python] [--runs 3]

Records are produced first, so "consuming" is each member's first record.
Prints one markdown table row per (client, delay): median and max over runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from interop._common import start_broker
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
    args = ap.parse_args()
    print("| client | group.initial.rebalance.delay.ms | median (ms) | max (ms) |")
    print("|---|---:|---:|---:|")
    for delay in [int(d) for d in args.delays.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            settings = {"group.initial.rebalance.delay.ms": str(delay), "group.min.session.timeout.ms": "1000"}
            broker = start_broker(Path(tmp) / "data", settings)
            try:
                for client in args.clients.split(","):
                    times = [one_run(broker.bootstrap, client, r) * 1000 for r in range(args.runs)]
                    print(f"| {client} | {delay} | {statistics.median(times):.0f} | {max(times):.0f} |", flush=True)
            finally:
                broker.stop()


if __name__ == "__main__":
    main()
