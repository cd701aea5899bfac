#!/usr/bin/env python3
"""Fuzz a live kafkapy broker with the structure-aware protocol fuzzer (tests/fuzz/engine.py).

    python scripts/fuzz.py --minutes 10              # every api and version, new broker
    python scripts/fuzz.py --minutes 2 --api Produce # one api (name or key), all its versions
    python scripts/fuzz.py --seed 1000 --chunk 200   # other hypothesis seeds
    python scripts/fuzz.py --bootstrap 127.0.0.1:9092 --pid 1234 --log broker.log  # a running broker

Prints progress every chunk and, at the end, the figures and every finding; exits 1 when
something was found (a crash, a stall, a hang, an ill-formed answer, a server error in the log,
a closed connection without a log line, RSS past --rss-bound-mib over its start, lost data).
docs/reliability.md ("Fuzzing") describes the checks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafkapy.testing import BrokerFactory
from tests.fuzz.engine import MUTATIONS, Driver, Finding, fuzz_pairs, run

BROKER_SETTINGS = {"group.initial.rebalance.delay.ms": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--api", help="only this api (name such as Produce, or key)")
    parser.add_argument("--seed", type=int, default=0, help="first hypothesis seed (one per chunk)")
    parser.add_argument("--chunk", type=int, default=100, help="examples per hypothesis run")
    parser.add_argument("--mutation", action="append", choices=MUTATIONS, help="only these mutations")
    parser.add_argument("--case-timeout", type=float, default=10.0)
    parser.add_argument("--canary-bound", type=float, default=2.0, help="seconds a canary round may take")
    parser.add_argument("--rss-bound-mib", type=int, default=64, help="RSS growth allowed over the start")
    parser.add_argument("--bootstrap", help="fuzz a running broker (with --pid and --log)")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the broker's data and log in place")
    args = parser.parse_args()

    factory = None
    if args.bootstrap:
        if args.pid is None or args.log is None:
            parser.error("--bootstrap needs --pid and --log")
        host, port = args.bootstrap.rsplit(":", 1)
        pid, log = args.pid, args.log
    else:
        root = Path(tempfile.mkdtemp(prefix="kafkapy-fuzz-"))
        factory = BrokerFactory(root)
        broker = factory(settings=BROKER_SETTINGS)
        host, port, pid, log = broker.host, str(broker.port), broker.pid, broker.log_path
        print(f"broker pid {pid} on {broker.bootstrap}, log {log}", flush=True)
    driver = Driver(host=host, port=int(port), pid=pid, log_path=log, case_timeout=args.case_timeout)
    driver.canary_bound = args.canary_bound
    try:
        driver.setup()
        pairs = fuzz_pairs(driver.advertised(), args.api)
        print(f"{len(pairs)} api/versions; RSS at start {driver.stats.rss_start_kib // 1024} MiB", flush=True)
        last = [time.monotonic()]

        def progress(d: Driver) -> None:
            if time.monotonic() - last[0] >= 15:
                last[0] = time.monotonic()
                print(f"  {d.stats.summary()}; {len(d.findings)} findings", flush=True)

        mutations = tuple(args.mutation) if args.mutation else MUTATIONS
        run(
            driver,
            pairs,
            args.minutes * 60,
            first_seed=args.seed,
            chunk=args.chunk,
            mutations=mutations,
            progress=progress,
        )
    finally:
        if factory is not None:
            alive = driver.alive()
            factory.stop_all()
            if not alive or driver.findings or args.keep:
                print(f"broker log kept: {log}")
    stats = driver.stats
    growth = stats.rss_end_kib - stats.rss_start_kib
    if stats.rss_end_kib and growth > args.rss_bound_mib * 1024:
        driver.findings.append(
            Finding("memory", f"RSS grew by {growth // 1024} MiB (bound {args.rss_bound_mib} MiB)", "")
        )
    print(stats.summary())
    print("mutations:", dict(stats.by_mutation))
    print("closed by mutation:", dict(stats.closed_by_mutation))
    for f in driver.findings:
        print(f"FINDING [{f.kind}] {f.detail}\n    case: {f.case}")
    return 1 if driver.findings else 0


if __name__ == "__main__":
    sys.exit(main())
