#!/usr/bin/env python3
"""Transactional commit latency against one kafkapy broker.

confluent-kafka runs N transactions of RECORDS records of SIZE bytes each
(spread over P partitions, linger.ms=5) and times, per transaction,
`commit_transaction()` (flush of the records still queued, EndTxn: the
PrepareCommit record, a marker per partition, CompleteCommit) and the whole
transaction (begin to commit returned). Reports p50/p99/max of both, plus
the same for `send_offsets_to_transaction` + commit when --offsets is set.

  python scripts/bench_transactions.py [--transactions 300] [--records 100] [--size 100] [--partitions 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafkapy.testing import BrokerProcess


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def run(
    bootstrap: str, topic: str, n: int, records: int, size: int, partitions: int, offsets: bool
) -> tuple[list[float], list[float]]:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(20)
    p = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{topic}", "linger.ms": 5})
    p.init_transactions(30)
    group = None
    if offsets:
        c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-g-{topic}"})
        group = c.consumer_group_metadata()
    payload = b"x" * size
    commit_ms: list[float] = []
    txn_ms: list[float] = []
    for t in range(n + 5):  # 5 warm-up transactions
        t0 = time.perf_counter()
        p.begin_transaction()
        for i in range(records):
            p.produce(topic, payload, partition=i % partitions)
        if group is not None:
            p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, t)], group, 30)
        t1 = time.perf_counter()
        p.commit_transaction(30)
        t2 = time.perf_counter()
        if t >= 5:
            commit_ms.append((t2 - t1) * 1000)
            txn_ms.append((t2 - t0) * 1000)
    return commit_ms, txn_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transactions", type=int, default=300)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kpbench-txn-") as root:
        broker = BrokerProcess(data_dir=Path(root) / "data", log_path=Path(root) / "broker.log").start()
        try:
            for offsets in (False, True):
                commit, whole = run(
                    broker.bootstrap,
                    f"bench-txn-{int(offsets)}",
                    args.transactions,
                    args.records,
                    args.size,
                    args.partitions,
                    offsets,
                )
                rows.append((offsets, commit, whole))
        finally:
            broker.stop()
    print("| transaction | commit_transaction() p50 / p99 / max (ms) | begin to committed p50 / p99 / max (ms) |")
    print("| --- | ---: | ---: |")
    for offsets, commit, whole in rows:
        name = f"{args.records} x {args.size} B over {args.partitions} partitions" + (
            " + send_offsets_to_transaction" if offsets else ""
        )
        print(
            f"| {name} | {pct(commit, 50):.1f} / {pct(commit, 99):.1f} / {max(commit):.1f} | "
            f"{pct(whole, 50):.1f} / {pct(whole, 99):.1f} / {max(whole):.1f} |"
        )
    print(
        f"\n({args.transactions} transactions each after 5 warm-up; mean commit {statistics.mean(rows[0][1]):.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
