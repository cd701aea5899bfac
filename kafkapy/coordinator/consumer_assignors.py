"""Server-side assignors of consumer-protocol (KIP-848) groups: `uniform` and `range`.

An assignor maps each member to a set of (topic id, partition) pairs, given
what every member subscribes to (topic ids), the partition count of each
topic and the previous target assignment (for stickiness). Pure functions.

uniform  Balanced and sticky. Every member keeps what it had where it is still
         subscribed; unowned partitions go to the least-loaded subscribed
         member; then partitions move from the most- to the least-loaded
         eligible member while the two differ by more than one. With equal
         subscriptions, every member ends with floor(P/M) or ceil(P/M).
range    Per topic, the subscribed members (by member id) take contiguous
         ranges, the first P % M of them one partition more, so topics with
         equal partition counts are co-partitioned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

TP = tuple[UUID, int]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    subscribed: frozenset[UUID]  # topic ids the member subscribes to (existing topics only)
    instance_id: str | None = None


Assignor = Callable[[Mapping[str, MemberSpec], Mapping[UUID, int], Mapping[str, frozenset[TP]]], dict[str, set[TP]]]


def _sorted_tps(topics: Mapping[UUID, int], ids: set[UUID]) -> list[TP]:
    return [(t, p) for t in sorted(ids, key=str) for p in range(topics[t])]


def uniform(
    members: Mapping[str, MemberSpec], topics: Mapping[UUID, int], previous: Mapping[str, frozenset[TP]]
) -> dict[str, set[TP]]:
    out: dict[str, set[TP]] = {m: set() for m in members}
    if not members:
        return out
    subscribed = {t for spec in members.values() for t in spec.subscribed if t in topics}
    all_tps = _sorted_tps(topics, subscribed)
    eligible: dict[UUID, list[str]] = {
        t: sorted(m for m, s in members.items() if t in s.subscribed) for t in subscribed
    }
    owner: dict[TP, str] = {}
    # 1. stickiness: keep previous partitions that are still valid
    for m in sorted(members):
        for tp in sorted(previous.get(m, ()), key=lambda x: (str(x[0]), x[1])):
            t, p = tp
            if t in topics and p < topics[t] and t in members[m].subscribed and tp not in owner:
                owner[tp] = m
                out[m].add(tp)
    # 2. unowned partitions to the least-loaded eligible member (fewest eligible members first)
    unowned = [tp for tp in all_tps if tp not in owner]
    unowned.sort(key=lambda tp: (len(eligible[tp[0]]), str(tp[0]), tp[1]))
    for tp in unowned:
        m = min(eligible[tp[0]], key=lambda x: (len(out[x]), x))
        owner[tp] = m
        out[m].add(tp)
    # 3. balance: move from loaded to light eligible members while they differ by more than one
    _balance(out, members, eligible)
    return out


def _balance(out: dict[str, set[TP]], members: Mapping[str, MemberSpec], eligible: Mapping[UUID, list[str]]) -> None:
    homogeneous = len({s.subscribed for s in members.values()}) == 1
    while True:
        moved = False
        for src in sorted(out, key=lambda x: (-len(out[x]), x)):
            n = len(out[src])
            if homogeneous:
                dst = min(out, key=lambda x: (len(out[x]), x))
                if n - len(out[dst]) <= 1:
                    return
                # any of src's partitions will do: move the highest
                tp = max(out[src], key=lambda x: (str(x[0]), x[1]))
                out[src].discard(tp)
                out[dst].add(tp)
                moved = True
                break
            best: tuple[int, str, TP] | None = None
            for tp in out[src]:
                for cand in eligible[tp[0]]:
                    load = len(out[cand])
                    if n - load > 1 and (best is None or (load, cand) < best[:2]):
                        best = (load, cand, tp)
            if best is not None:
                out[src].discard(best[2])
                out[best[1]].add(best[2])
                moved = True
                break
        if not moved:
            return


def range_(
    members: Mapping[str, MemberSpec], topics: Mapping[UUID, int], previous: Mapping[str, frozenset[TP]]
) -> dict[str, set[TP]]:
    out: dict[str, set[TP]] = {m: set() for m in members}
    subscribed = {t for spec in members.values() for t in spec.subscribed if t in topics}
    for t in sorted(subscribed, key=str):
        subs = sorted(m for m, s in members.items() if t in s.subscribed)
        count = topics[t]
        per, extra = divmod(count, len(subs))
        start = 0
        for i, m in enumerate(subs):
            n = per + (1 if i < extra else 0)
            out[m].update((t, p) for p in range(start, start + n))
            start += n
    return out


ASSIGNORS: Mapping[str, Assignor] = {"uniform": uniform, "range": range_}


def assignor_name(configured: str) -> str:
    """'uniform' from 'uniform' or 'org.apache.kafka.coordinator.group.assignor.UniformAssignor'."""
    return configured.rsplit(".", 1)[-1].lower().removesuffix("assignor")
