#!/usr/bin/env python3
"""`scripts/bench scan`: the produce path's record scan, compiled against pure Python.

kafkapy.protocol.record_scan walks every record of a produced batch (Kafka's
LogValidator checks). This times `scan_records_py` and the compiled
`kafkapy.protocol._scan.scan_records` on the same uncompressed batch bodies:
8-byte keys, values of 10 B, 100 B and 1 KiB, without headers and with two.
Each figure is the median over --repeats runs of a timed loop of about
--min-time seconds; ns/record is per record, MB/s counts the body's bytes.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafkapy.protocol import records as R
from kafkapy.protocol.record_scan import scan_records_py

Scan = Callable[[bytes, int, int, int], tuple[int, int, int]]

HEADERS = [("trace-id", b"0123456789abcdef"), ("content-type", b"application/json")]


def body(value_size: int, headers: bool, count: int) -> bytes:
    ts = 1_700_000_000_000
    recs = [
        (b"key-%04d" % (i % 10_000), bytes([i % 251]) * value_size, HEADERS if headers else [], ts + i % 50)
        for i in range(count)
    ]
    return R.build_batch(recs)[R.RECORDS_OFFSET :]


def measure(fn: Scan, data: bytes, count: int, repeats: int, min_time: float) -> float:
    """Median seconds per call."""
    n = len(data)
    fn(data, 0, n, count)
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn(data, 0, n, count)
        if time.perf_counter() - t0 >= min_time / 4:
            break
        loops *= 2
    loops = max(1, int(loops * min_time / max(time.perf_counter() - t0, 1e-9)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn(data, 0, n, count)
        samples.append((time.perf_counter() - t0) / loops)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench scan", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=1000, help="records per batch (default 1000)")
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per figure (default 9)")
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per timed run (default 0.1)")
    args = ap.parse_args()

    impls: list[tuple[str, Scan]] = [("python", scan_records_py)]
    try:
        from kafkapy.protocol import _scan
    except ImportError:
        print("kafkapy.protocol._scan is not built (no C compiler at install?): timing pure Python only\n")
    else:
        impls.append(("compiled", _scan.scan_records))

    print(f"Python {platform.python_version()} on {platform.machine()}, {args.records} records per batch,", end=" ")
    print(f"median of {args.repeats} runs\n")
    print(
        f"{'value':>6} {'headers':>7} {'body':>9}  "
        + "  ".join(f"{n + ' ns/rec':>16} {n + ' MB/s':>14}" for n, _ in impls)
    )
    for value_size in (10, 100, 1024):
        for headers in (False, True):
            data = body(value_size, headers, args.records)
            results = [fn(data, 0, len(data), args.records) for _, fn in impls]
            assert all(r == results[0] for r in results), results
            cells = []
            for _, fn in impls:
                t = measure(fn, data, args.records, args.repeats, args.min_time)
                cells.append(f"{t / args.records * 1e9:>16.1f} {len(data) / t / 1e6:>14.0f}")
            print(f"{value_size:>6} {'2' if headers else '0':>7} {len(data):>9}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
