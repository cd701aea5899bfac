"""Replica placement, leader election rules and rebalance plans: pure functions, no I/O.

- `assign_replicas`: where the replicas of new partitions go (CreateTopics,
  CreatePartitions). Without `existing` it follows Kafka's placement: leaders
  round-robin over the brokers sorted by id from a start broker, followers at
  a shift from the leader that grows by one each time the partition ids wrap
  around the broker list; rack-aware (every broker has a rack) it walks a
  broker list that alternates racks and skips brokers whose rack already holds
  a replica until every rack has one. With `existing` (CreatePartitions) each
  new partition goes to the least loaded brokers, so a topic that predates a
  broker's arrival evens out.
- `validate_manual_assignment`: explicit assignments, checked as Kafka does.
- `elect_leader`: the leader a partition gets from its replicas, ISR and the
  live brokers.
- `preferred_leader_imbalance`: the partitions `auto.leader.rebalance.enable`
  moves back to their preferred replica.
- `plan_rebalance` / `summarize_plan`: a target assignment spreading replicas
  and preferred leaders evenly over a set of brokers with the fewest moves.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo

INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39

K = TypeVar("K", bound=Hashable)


class AssignmentError(Exception):
    """An assignment that cannot be made; `code` is a Kafka error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------ placement


def _check_counts(num_partitions: int, replication_factor: int, live: int) -> None:
    if num_partitions <= 0:
        raise AssignmentError(INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise AssignmentError(INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > live:
        raise AssignmentError(
            INVALID_REPLICATION_FACTOR,
            f"Unable to replicate the partition {replication_factor} time(s): "
            f"The target replication factor of {replication_factor} cannot be reached "
            f"because only {live} broker(s) are registered.",
        )


def _follower_index(first: int, shift: int, j: int, n: int) -> int:
    """Position of the j-th follower candidate of a leader at `first` in a list of n brokers."""
    return (first + 1 + (shift + j) % (n - 1)) % n


def rack_alternated(brokers: Sequence[BrokerInfo]) -> list[int]:
    """Broker ids taking one broker from each rack in turn (racks and ids sorted)."""
    by_rack: dict[str, list[int]] = {}
    for b in sorted(brokers, key=lambda b: b.node_id):
        by_rack.setdefault(b.rack or "", []).append(b.node_id)
    queues = [deque(by_rack[r]) for r in sorted(by_rack)]
    out: list[int] = []
    while len(out) < len(brokers):
        for q in queues:
            if q:
                out.append(q.popleft())
    return out


def assign_replicas(
    num_partitions: int,
    replication_factor: int,
    brokers: Sequence[BrokerInfo],
    *,
    start_partition: int = 0,
    existing: Mapping[int, list[int]] | None = None,
    seed: int | None = None,
) -> dict[int, list[int]]:
    """{partition id: replicas} for partitions start_partition .. start_partition+num_partitions-1.

    replicas[0] is the preferred leader. Raises AssignmentError
    (INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR).
    """
    _check_counts(num_partitions, replication_factor, len(brokers))
    rng = random.Random(seed)
    racks = {b.node_id: b.rack for b in brokers}
    rack_aware = all(racks.values())
    if existing:
        return _assign_by_load(num_partitions, replication_factor, brokers, start_partition, existing, rack_aware)
    ids = rack_alternated(brokers) if rack_aware else sorted(b.node_id for b in brokers)
    n = len(ids)
    num_racks = len(set(racks.values())) if rack_aware else 1
    start = rng.randrange(n)
    shift = rng.randrange(n)
    out: dict[int, list[int]] = {}
    for pid in range(start_partition, start_partition + num_partitions):
        if pid > 0 and pid % n == 0:
            shift += 1
        first = (pid + start) % n
        chosen = [ids[first]]
        if not rack_aware:
            chosen += [ids[_follower_index(first, shift, j, n)] for j in range(replication_factor - 1)]
        else:
            used = {racks[ids[first]]}
            k = 0
            while len(chosen) < replication_factor:
                b = ids[_follower_index(first, shift * num_racks, k, n)]
                k += 1
                if b not in chosen and (racks[b] not in used or len(used) == num_racks):
                    chosen.append(b)
                    used.add(racks[b])
        out[pid] = chosen
    return out


def _assign_by_load(
    num_partitions: int,
    replication_factor: int,
    brokers: Sequence[BrokerInfo],
    start_partition: int,
    existing: Mapping[int, list[int]],
    rack_aware: bool,
) -> dict[int, list[int]]:
    ids = sorted(b.node_id for b in brokers)
    n = len(ids)
    racks = {b.node_id: b.rack for b in brokers}
    leaders: Counter[int] = Counter(r[0] for r in existing.values() if r)
    load: Counter[int] = Counter(b for r in existing.values() for b in r)
    out: dict[int, list[int]] = {}
    for pid in range(start_partition, start_partition + num_partitions):

        def rotation(b: int, pid: int = pid) -> int:
            return (ids.index(b) - pid) % n  # ties rotate so replica sets differ

        leader = min(ids, key=lambda b: (leaders[b], load[b], rotation(b)))
        chosen = [leader]
        used = {racks[leader]}
        while len(chosen) < replication_factor:
            free = [b for b in ids if b not in chosen]
            if rack_aware:
                fresh = [b for b in free if racks[b] not in used]
                free = fresh or free
            b = min(free, key=lambda b: (load[b], rotation(b)))
            chosen.append(b)
            used.add(racks[b])
        leaders[leader] += 1
        for b in chosen:
            load[b] += 1
        out[pid] = chosen
    return out


def validate_manual_assignment(
    assignment: Mapping[int, list[int]], live: set[int], *, start_partition: int = 0
) -> None:
    """Raise AssignmentError(INVALID_REPLICA_ASSIGNMENT) for an assignment Kafka refuses.

    Partition ids must run consecutively from `start_partition` (0 for
    CreateTopics); every replica list non-empty, without duplicates, of one
    length, naming registered brokers only.
    """
    if not assignment:
        raise AssignmentError(INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    ids = sorted(assignment)
    if ids != list(range(start_partition, start_partition + len(ids))):
        raise AssignmentError(
            INVALID_REPLICA_ASSIGNMENT,
            f"Partitions should be a consecutive {start_partition}-based integer sequence, got {ids}.",
        )
    lengths = set()
    for pid in ids:
        replicas = assignment[pid]
        if not replicas:
            raise AssignmentError(INVALID_REPLICA_ASSIGNMENT, f"Partition {pid} has an empty replica assignment.")
        if len(set(replicas)) != len(replicas):
            raise AssignmentError(
                INVALID_REPLICA_ASSIGNMENT, f"Duplicate replica assignment for partition {pid}: {replicas}."
            )
        unknown = sorted(set(replicas) - live)
        if unknown:
            raise AssignmentError(
                INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker(s) {unknown}, but no such broker is registered.",
            )
        lengths.add(len(replicas))
    if len(lengths) > 1:
        raise AssignmentError(
            INVALID_REPLICA_ASSIGNMENT,
            "All partitions in the manual partition assignment must have the same number of replicas.",
        )


# ------------------------------------------------------------------ leaders


def elect_leader(
    replicas: list[int], isr: list[int], live: set[int], *, unclean: bool, preferred_only: bool = False
) -> int | None:
    """The new leader, or None (the partition is offline / no election possible).

    Clean: the first replica in assignment order that is live and in the ISR.
    `unclean`: if there is none, the first live replica. `preferred_only`:
    replicas[0] if it is live and in the ISR, else None.
    """
    in_sync = set(isr)
    if preferred_only:
        if replicas and replicas[0] in live and replicas[0] in in_sync:
            return replicas[0]
        return None
    for r in replicas:
        if r in live and r in in_sync:
            return r
    if unclean:
        for r in replicas:
            if r in live:
                return r
    return None


def preferred_leader_imbalance(
    partitions: Mapping[K, PartitionInfo], live: set[int], *, percentage: int = 10
) -> list[K]:
    """Partitions whose leadership should move back to their preferred replica.

    As Kafka's controller: for each preferred broker, the share of the
    partitions it prefers that it does not lead; above `percentage`
    (leader.imbalance.per.broker.percentage) every such partition whose
    preferred replica is live and in the ISR is listed.
    """
    preferred: dict[int, list[K]] = {}
    for key, p in partitions.items():
        if p.replicas:
            preferred.setdefault(p.replicas[0], []).append(key)
    out: list[K] = []
    for broker in sorted(preferred):
        keys = preferred[broker]
        off = [k for k in keys if partitions[k].leader != broker]
        if not off or len(off) * 100 <= percentage * len(keys):
            continue
        if broker not in live:
            continue
        out.extend(k for k in off if broker in partitions[k].isr)
    return out


# ------------------------------------------------------------------ rebalance


@dataclass(slots=True, frozen=True)
class PlanSummary:
    """How much a plan moves."""

    partitions: int  # partitions in the assignment
    partitions_moved: int  # partitions whose replica set changes
    replica_moves: int  # replicas added on a new broker (as many are removed)
    leadership_moves: int  # partitions whose preferred leader (replicas[0]) changes
    reordered: int  # partitions whose replica list changes at all (what a reassignment submits)


def summarize_plan(before: Mapping[K, list[int]], after: Mapping[K, list[int]]) -> PlanSummary:
    moved = replicas = leaders = reordered = 0
    for key, old in before.items():
        new = after.get(key, old)
        added = len(set(new) - set(old))
        replicas += added
        moved += 1 if set(new) != set(old) else 0
        leaders += 1 if (new[:1] != old[:1]) else 0
        reordered += 1 if new != old else 0
    return PlanSummary(len(before), moved, replicas, leaders, reordered)


def _targets(total: int, ids: list[int], load: Counter[int]) -> dict[int, int]:
    """Even shares of `total` over ids; the larger shares go to the most loaded (fewest moves)."""
    base, extra = divmod(total, len(ids))
    order = sorted(ids, key=lambda b: (-load[b], b))
    return {b: base + (1 if i < extra else 0) for i, b in enumerate(order)}


def _order(keys: Iterable[K]) -> list[K]:
    """(topic, partition) keys interleaved by topic so every topic gives up its share of moves."""
    keys = list(keys)
    if not all(isinstance(k, tuple) and len(k) == 2 and isinstance(k[1], int) for k in keys):
        return keys
    counts: Counter[object] = Counter(k[0] for k in keys)  # type: ignore[index]
    return sorted(keys, key=lambda k: (k[1] / counts[k[0]], str(k[0]), k[1]))  # type: ignore[index]


@dataclass(slots=True)
class _Plan:
    ids: list[int]
    racks: dict[int, str | None]
    rack_aware: bool
    current: dict[Hashable, list[int]]

    def rack_ok(self, key: Hashable, pos: int, receiver: int) -> bool:
        """Moving replica `pos` of `key` to `receiver` keeps it as rack-diverse as before."""
        reps = self.current[key]
        if receiver in reps:
            return False
        if not self.rack_aware:
            return True
        before = {self.racks[b] for b in reps if b in self.racks}
        after = {self.racks[b] for i, b in enumerate(reps) if i != pos and b in self.racks}
        after.add(self.racks[receiver])
        return len(after) >= len(before)


def plan_rebalance(
    assignment: Mapping[tuple[str, int], list[int]],
    brokers: Sequence[BrokerInfo],
    *,
    racks: bool = True,
) -> dict[tuple[str, int], list[int]]:
    """A target assignment over `brokers` with the same replication factors.

    Replica counts per broker end within one of each other and preferred
    leaders (replicas[0]) too, whenever the distinct-broker (and, with racks,
    rack-diversity) constraints allow. Replicas on brokers not in `brokers`
    all move. The number of replica moves is the minimum, the sum over brokers
    of their replicas above their share, unless a chain of moves is needed
    (only when a partition already holds every under-loaded broker); leadership
    changes are likewise the minimum for the chosen replica sets. Moved replicas
    take the position of the replica they replace.
    """
    ids = sorted({b.node_id for b in brokers})
    if not ids:
        raise AssignmentError(INVALID_REPLICATION_FACTOR, "No broker to place replicas on.")
    rack_of = {b.node_id: b.rack for b in brokers}
    rack_aware = racks and all(rack_of.values()) and len(set(rack_of.values())) > 1
    widest = max((len(set(r)) for r in assignment.values()), default=0)
    if widest > len(ids):
        raise AssignmentError(
            INVALID_REPLICATION_FACTOR,
            f"A partition has {widest} replicas but only {len(ids)} broker(s) are given.",
        )
    keys = _order(assignment)
    plan = _Plan(ids, rack_of, rack_aware, {k: list(dict.fromkeys(assignment[k])) for k in keys})
    original: dict[Hashable, list[int]] = {k: list(assignment[k]) for k in keys}
    _balance_replicas(plan, keys, original)
    _balance_leaders(plan, keys, original)
    stranded = sorted({b for reps in plan.current.values() for b in reps} - set(ids))
    if stranded:
        raise AssignmentError(
            INVALID_REPLICA_ASSIGNMENT, f"Cannot move every replica off broker(s) {stranded} under the constraints."
        )
    return {k: plan.current[k] for k in assignment}


Edge = tuple[Hashable, int, int]  # (partition key, from broker, to broker)


def _cheapest_chain(
    sources: Iterable[int],
    is_sink: Callable[[int], bool],
    edges: Callable[[int], Iterable[tuple[Hashable, int, int]]],
) -> list[Edge] | None:
    """Cheapest path of moves from a source broker to a sink broker (0-1 BFS).

    `edges(u)` yields (key, v, cost) with cost 0 or 1.
    """
    dist: dict[int, int] = {}
    parent: dict[int, tuple[int, Hashable] | None] = {}
    queue: deque[tuple[int, int]] = deque()
    for s in sources:
        dist[s], parent[s] = 0, None
        queue.append((0, s))
    starts = set(dist)
    done: set[int] = set()
    while queue:
        d, u = queue.popleft()
        if u in done or d != dist[u]:
            continue
        done.add(u)
        if u not in starts and is_sink(u):
            path: list[Edge] = []
            node = u
            while (step := parent[node]) is not None:
                path.append((step[1], step[0], node))
                node = step[0]
            return path[::-1]
        for key, v, cost in edges(u):
            nd = d + cost
            if v in done or nd >= dist.get(v, nd + 1):
                continue
            dist[v], parent[v] = nd, (u, key)
            if cost:
                queue.append((nd, v))
            else:
                queue.appendleft((nd, v))
    return None


def _even_out(
    count: Counter[int],
    ids: list[int],
    target: Mapping[int, int],
    edges: Callable[[int], Iterable[tuple[Hashable, int, int]]],
    apply: Callable[[Edge], bool],
) -> None:
    """Move units along chains until every broker is at its target, else until max - min <= 1."""

    def run(sources: Callable[[], list[int]], is_sink: Callable[[int], bool]) -> None:
        while True:
            starts = sources()
            if not starts:
                return
            path = _cheapest_chain(starts, is_sink, edges)
            if path is None:
                return
            for step in path:
                if not apply(step):
                    return

    def excess(b: int) -> int:
        return count[b] - target.get(b, 0)

    run(lambda: [b for b in sorted(count) if excess(b) > 0], lambda b: excess(b) < 0)

    def top() -> int:
        return max(count[b] for b in ids)

    # the shares went to brokers that cannot pass them on: balance max against min instead
    run(
        lambda: [b for b in ids if count[b] == top()] if top() - min(count[b] for b in ids) > 1 else [],
        lambda b: b in target and count[b] <= top() - 2,
    )


def _balance_replicas(plan: _Plan, keys: Sequence[Hashable], original: Mapping[Hashable, list[int]]) -> None:
    load: Counter[int] = Counter(b for reps in plan.current.values() for b in reps)
    target = _targets(sum(load.values()), plan.ids, load)

    def excess(b: int) -> int:
        return load[b] - target.get(b, 0)

    # Direct moves: over-loaded broker -> the most under-loaded one not in the partition.
    for key in keys:
        reps = plan.current[key]
        donors = [i for i, b in enumerate(reps) if excess(b) > 0]
        # brokers leaving first, then followers (leaderships are balanced afterwards), then the most loaded
        donors.sort(key=lambda i: (reps[i] in target, i == 0, -excess(reps[i]), i))
        for i in donors:
            d = reps[i]
            if excess(d) <= 0:
                continue
            receivers = [r for r in plan.ids if excess(r) < 0 and plan.rack_ok(key, i, r)]
            if not receivers:
                continue
            r = min(receivers, key=lambda r: (excess(r), r))
            reps[i] = r
            load[d] -= 1
            load[r] += 1

    holders: dict[int, list[Hashable]] = {}
    for key in keys:
        for b in plan.current[key]:
            holders.setdefault(b, []).append(key)

    def edges(u: int) -> Iterable[tuple[Hashable, int, int]]:
        for key in holders.get(u, []):
            pos = plan.current[key].index(u)
            cost = 1 if u in original[key] else 0  # moving an added replica again costs nothing
            for v in plan.ids:
                if plan.rack_ok(key, pos, v):
                    yield key, v, cost

    def apply(step: Edge) -> bool:
        key, src, dst = step
        reps = plan.current[key]
        if src not in reps or dst in reps:
            return False
        reps[reps.index(src)] = dst
        holders[src].remove(key)
        holders.setdefault(dst, []).append(key)
        load[src] -= 1
        load[dst] += 1
        return True

    _even_out(load, plan.ids, target, edges, apply)


def _balance_leaders(plan: _Plan, keys: Sequence[Hashable], original: Mapping[Hashable, list[int]]) -> None:
    lead: Counter[int] = Counter(plan.current[k][0] for k in keys if plan.current[k])
    target = _targets(sum(lead.values()), plan.ids, lead)

    def excess(b: int) -> int:
        return lead[b] - target.get(b, 0)

    led: dict[int, list[Hashable]] = {}
    for key in keys:
        if plan.current[key]:
            led.setdefault(plan.current[key][0], []).append(key)

    def promote(key: Hashable, b: int) -> None:
        reps = plan.current[key]
        old = reps[0]
        lead[old] -= 1
        led[old].remove(key)
        reps.remove(b)
        reps.insert(0, b)
        lead[b] += 1
        led.setdefault(b, []).append(key)

    def changed(key: Hashable) -> bool:
        return plan.current[key][:1] != original[key][:1]

    # Partitions whose preferred leader changes anyway go first: re-choosing costs nothing.
    for key in sorted(keys, key=lambda k: not changed(k)):
        reps = plan.current[key]
        if not reps or excess(reps[0]) <= 0:
            continue
        options = [b for b in reps[1:] if excess(b) < 0]
        if options:
            promote(key, min(options, key=lambda b: (excess(b), b)))

    def edges(u: int) -> Iterable[tuple[Hashable, int, int]]:
        for key in list(led.get(u, [])):
            cost = 1 if not changed(key) else 0
            for v in plan.current[key][1:]:
                yield key, v, cost

    def apply(step: Edge) -> bool:
        key, src, dst = step
        reps = plan.current[key]
        if reps[:1] != [src] or dst not in reps:
            return False
        promote(key, dst)
        return True

    _even_out(lead, plan.ids, target, edges, apply)
