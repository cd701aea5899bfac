"""The history checker: what the workload's clients saw against what the log holds at the end.

Safety, for the idempotent producer's topic: every acknowledged value is in the final read
exactly once, at the offset its acknowledgement named; no value that was never sent; values of
one partition in the order they were sent; everything the concurrent read_committed consumer read
is what the final read holds at that offset (nothing read was later lost or replaced). For the
transactional topic: every committed transaction's records exactly once, none of an aborted one
(neither in the final read nor in the concurrent one), a transaction whose outcome the client could
not learn all or nothing. Availability: the gaps between acknowledgements longer than `gap_s`.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Result:
    sent: int = 0
    acked: int = 0
    failed: int = 0  # delivery reports with an error (the record may or may not be in the log)
    lost: list[int] = field(default_factory=list)  # acked, not in the final read
    duplicated: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)  # acked at one offset, found at another
    phantom: list[str] = field(default_factory=list)  # read, never sent
    out_of_order: int = 0
    failed_but_present: int = 0  # a failed delivery whose record made it (allowed)
    reads: int = 0
    reads_diverged: list[str] = field(default_factory=list)  # read concurrently, different/absent at the end
    final_complete: bool = False
    txns: dict[str, int] = field(default_factory=dict)  # outcome -> count
    txn_violations: list[str] = field(default_factory=list)
    # per partition, each stretch without an acknowledgement longer than gap_s: (start, unix time;
    # length, s; partition)
    gaps: list[tuple[float, float, int]] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.moved
            or self.phantom
            or self.out_of_order
            or self.reads_diverged
            or self.txn_violations
            or not self.final_complete
        )

    def problems(self) -> list[str]:
        out = []
        for name in ("lost", "duplicated", "moved", "phantom", "reads_diverged", "txn_violations"):
            items = getattr(self, name)
            if items:
                out.append(f"{name}: {len(items)} (first: {items[:5]})")
        if self.out_of_order:
            out.append(f"out_of_order: {self.out_of_order}")
        if not self.final_complete:
            out.append("the final read did not reach the end offsets")
        return out

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("lost", "duplicated", "moved", "phantom", "reads_diverged", "txn_violations"):
            d[name] = len(d[name])
        d["gap_total_s"] = round(sum(g[1] for g in self.gaps), 1)
        d["gap_max_s"] = round(max((g[1] for g in self.gaps), default=0.0), 1)
        d["gaps"] = len(self.gaps)
        # the share of partition-time without acknowledgements (3 partitions)
        d["unavailable"] = round(d["gap_total_s"] / (3 * self.duration_s), 3) if self.duration_s else 0.0
        d["ok"] = self.ok
        return d


def load(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a SIGKILL of the workload
    return events


def check(events: list[dict[str, Any]], topic: str = "nem", txn_topic: str = "nemtx", gap_s: float = 1.0) -> Result:
    r = Result()
    sent: dict[int, int] = {}
    acked: dict[int, tuple[int, int]] = {}
    failed: set[int] = set()
    ack_times: list[tuple[float, int]] = []
    final: dict[tuple[int, int], str] = {}
    final_tx: dict[tuple[int, int], str] = {}
    reads: list[dict[str, Any]] = []
    txns: dict[int, dict[str, Any]] = {}
    times = [e["t"] for e in events if "t" in e]
    t0 = min(times, default=0.0)
    for e in events:
        k = e.get("k")
        if k == "send":
            sent[e["v"]] = e["p"]
        elif k == "ack":
            acked[e["v"]] = (e["p"], e["o"])
            ack_times.append((e["t"], e["p"]))
        elif k == "fail":
            failed.add(e["v"])
        elif k == "final":
            (final if e["topic"] == topic else final_tx)[(e["p"], e["o"])] = e["v"]
        elif k == "read":
            reads.append(e)
        elif k == "txn":
            txns[e["n"]] = e
        elif k == "final_done":
            r.final_complete = True
    r.sent, r.acked, r.failed = len(sent), len(acked), len(failed - acked.keys())

    # the idempotent producer's topic
    counts = Counter(final.values())
    r.duplicated = sorted(int(v) for v, n in counts.items() if n > 1)
    present = {int(v) for v in counts if v.isdigit()}
    r.phantom = sorted(v for v in counts if not v.isdigit() or int(v) not in sent)
    for v, (p, o) in acked.items():
        if v not in present:
            r.lost.append(v)
        elif final.get((p, o)) != str(v):
            r.moved.append(v)
    r.lost.sort()
    r.failed_but_present = len((failed - acked.keys()) & present)
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (p, o), text in final.items():
        if text.isdigit():
            by_partition[p].append((o, int(text)))
    for rows in by_partition.values():
        values = [v for _, v in sorted(rows)]
        r.out_of_order += sum(1 for a, b in itertools.pairwise(values) if b <= a)

    # what the concurrent consumer read must still be there
    r.reads = len(reads)
    for e in reads:
        where = final if e["topic"] == topic else final_tx
        if where.get((e["p"], e["o"])) != e["v"]:
            r.reads_diverged.append(f"{e['topic']}/{e['p']}@{e['o']}={e['v']}")

    # transactions
    tx_counts = Counter(final_tx.values())
    tx_read = {e["v"] for e in reads if e["topic"] == txn_topic}
    known: set[str] = set()
    outcomes: Counter[str] = Counter()
    for n, t in txns.items():
        outcomes[t["outcome"]] += 1
        values = t["values"]
        known.update(values)
        there = [tx_counts.get(v, 0) for v in values]
        if any(c > 1 for c in there):
            r.txn_violations.append(f"txn {n} {t['outcome']}: a record read twice")
        if t["outcome"] == "committed" and not all(there):
            r.txn_violations.append(f"txn {n} committed: {there.count(0)} of its records missing")
        elif t["outcome"] == "aborted" and (any(there) or tx_read & set(values)):
            r.txn_violations.append(f"txn {n} aborted: its records were read")
        elif t["outcome"] == "unknown" and any(there) and not all(there):
            r.txn_violations.append(f"txn {n} unknown: partly visible")
    r.txns = dict(outcomes)
    # a transaction started but never reported (the workload was still in it at the end) is not "known":
    r.phantom += sorted(v for v in tx_counts if v not in known and not _in_last_txn(v, txns))

    # availability: stretches without an acknowledgement, per partition (a partition whose leader
    # is cut off stalls on its own; the others keep acknowledging)
    by_p: dict[int, list[float]] = defaultdict(list)
    for when, p in ack_times:
        by_p[p].append(when)
    for p, ts in sorted(by_p.items()):
        ts.sort()
        for a, b in itertools.pairwise(ts):
            if b - a > gap_s:
                r.gaps.append((round(a, 1), round(b - a, 1), p))
    last = max((e["t"] for e in events if e.get("k") in ("send", "ack")), default=t0)
    r.duration_s = round(last - t0, 1)
    return r


def _in_last_txn(value: str, txns: dict[int, dict[str, Any]]) -> bool:
    n = int(value.split("-", maxsplit=1)[0]) if value.split("-", maxsplit=1)[0].isdigit() else -1
    return n > max(txns, default=0)
