#!/usr/bin/env python3
"""Network partitions, kills, pauses and etcd restarts against a 3-broker cluster in network
namespaces, with a checked history (tests/nemesis/; docs/reliability.md, "Network partitions").

    python scripts/nemesis.py --minutes 10                 # every fault, seed 0
    python scripts/nemesis.py --minutes 5 --seed 7 --java  # and Kafka's VerifiableProducer/Consumer
    python scripts/nemesis.py --fault leader-alone --fault kill --hold 3 10

Needs root (ip netns, nft). Prints each fault as it is applied, then the figures (JSON) and any
violation; exits 1 on a violation. The run's directory (logs, history.jsonl, report.json) is kept
with --keep or on a violation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.nemesis.net import netns_available
from tests.nemesis.runner import EXTRA_FAULTS, FAULTS, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--java", action="store_true", help="also Kafka's VerifiableProducer and VerifiableConsumer")
    parser.add_argument(
        "--fault", action="append", choices=FAULTS + EXTRA_FAULTS, help="only these faults (repeatable)"
    )
    parser.add_argument("--hold", nargs=2, type=float, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    parser.add_argument("--calm", nargs=2, type=float, default=(2.0, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--rate", type=float, default=100.0, help="idempotent producer's sends per second")
    parser.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    why = netns_available()
    if why is not None:
        print(f"network namespaces are not usable here: {why}", file=sys.stderr)
        return 2
    root = args.dir or Path(tempfile.mkdtemp(prefix="nemesis-"))
    report = run(
        root,
        args.minutes * 60,
        args.seed,
        java=args.java,
        faults=tuple(args.fault or FAULTS),
        rate=args.rate,
        hold=(args.hold[0], args.hold[1]),
        calm=(args.calm[0], args.calm[1]),
    )
    print(json.dumps(report.summary(), indent=1))
    for ev in report.faults:
        print(f"  {ev['fault']:<17} node {ev.get('node', '-')!s:<2} held {ev['hold']:>4} s, gap {ev['gap_s']} s")
    for problem in report.result.problems():
        print(f"VIOLATION: {problem}")
    if report.java is not None and not report.java.ok:
        print(f"VIOLATION (Kafka's verifiable clients): {report.java.summary()}")
    if report.ok and not args.keep and args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"run directory: {root}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
