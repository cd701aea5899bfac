#!/usr/bin/env python3
"""`scripts/bench connections`: connections and memory under load, long form (docs/reliability.md,
"Connections and memory"; the short form is tests/load/test_connections_load.py).

One broker process with queued.max.request.bytes = --pool; the load of tests/load/workload.py:
--idle idle connections (5,000), --producers producers (200) sending 1 MiB acks=all batches as fast
as the broker answers for --duration seconds, --slowloris connections trickling a byte a second
(a tenth of them the prefix of a 1 MiB frame), a latency probe in its own process before and
during the load. Then everything acknowledged is read back.

Checks, each printed with PASS or FAIL (exit status 1 on any FAIL):
- broker RSS <= RSS once connected + pool + 16 MiB (the bound stated in docs/reliability.md);
- nothing acknowledged lost or changed, no produce refused, the sampled idle connections answer;
- the probe's p99 under load <= --factor x its unloaded p99 (taken as at least --floor-ms: a
  sub-millisecond baseline on a shared machine varies 0.4-2.5 ms from run to run).

    scripts/bench connections [--idle 5000] [--producers 200] [--duration 30] [--slowloris 100]
                              [--pool 67108864] [--factor 150] [--floor-ms 2] [--no-pool-too]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafkapy.testing import BrokerFactory
from tests.load.workload import MIB, LoadResult, LoadSpec, raise_fd_limit, run

SLACK = 16 * MIB


def one(spec: LoadSpec, pool: int) -> LoadResult:
    root = Path(tempfile.mkdtemp(prefix="bench-connections-"))
    factory = BrokerFactory(root)
    try:
        broker = factory(settings={"queued.max.request.bytes": pool, "message.max.bytes": 2_000_000})
        return run(broker.host, broker.port, broker.pid, spec)
    finally:
        factory.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog=sys.argv[0], description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--producers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--slowloris", type=int, default=100)
    parser.add_argument("--pool", type=int, default=64 * MIB, help="queued.max.request.bytes")
    parser.add_argument("--factor", type=float, default=150.0, help="allowed p99 under load / unloaded p99")
    parser.add_argument("--floor-ms", type=float, default=2.0, help="the unloaded p99 taken as at least this")
    parser.add_argument("--no-pool-too", action="store_true", help="also run once with the pool off (-1)")
    args = parser.parse_args(sys.argv[1:])
    spec = LoadSpec(
        idle=args.idle,
        producers=args.producers,
        duration_s=args.duration,
        slowloris=args.slowloris,
        slowloris_large=max(1, args.slowloris // 10),
        partitions=16,
        baseline_s=5.0,
    )
    raise_fd_limit(spec.idle + spec.producers + spec.slowloris + 2048)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    started = time.monotonic()
    result = one(spec, args.pool)
    summary = result.summary()
    summary["pool_MiB"] = args.pool / MIB
    summary["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=1))
    bound_kib = result.rss_connected_kib + (max(args.pool, 0) + SLACK) // 1024
    base = max(result.pct(result.baseline_ms, 0.99), args.floor_ms)
    checks = [
        (
            f"RSS max {result.rss_max_kib / 1024:.1f} MiB <= connected {result.rss_connected_kib / 1024:.1f} "
            f"+ pool {args.pool / MIB:.0f} + {SLACK // MIB} MiB = {bound_kib / 1024:.1f} MiB",
            result.rss_max_kib <= bound_kib,
        ),
        (f"acknowledged batches read back: {result.acked_batches}, missing {len(result.missing)}", not result.missing),
        (f"produce errors: {result.produce_errors}", result.produce_errors == 0),
        (
            f"idle connections answering afterwards: {result.idle_sample_answered}/{result.idle_sample}",
            result.idle_sample_answered == result.idle_sample,
        ),
        (
            f"probe p99 loaded {result.pct(result.loaded_ms, 0.99):.1f} ms <= {args.factor:g} x "
            f"max(unloaded p99, {args.floor_ms:g} ms) = {args.factor * base:.1f} ms",
            result.pct(result.loaded_ms, 0.99) <= args.factor * base,
        ),
    ]
    for text, ok in checks:
        print(("PASS " if ok else "FAIL ") + text)
    for line in result.missing[:10]:
        print("  missing:", line)
    if args.no_pool_too:
        off = one(spec, -1)
        print("# the same load with queued.max.request.bytes=-1 (no pool):")
        print(json.dumps(off.summary(), indent=1))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
