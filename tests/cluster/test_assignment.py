"""Replica placement, leader election and rebalance plans (kafkapy.cluster.assignment)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kafkapy.cluster.assignment import (
    AssignmentError,
    assign_replicas,
    elect_leader,
    plan_rebalance,
    preferred_leader_imbalance,
    rack_alternated,
    summarize_plan,
    validate_manual_assignment,
)
from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo

Key = tuple[str, int]


def brokers(ids: Sequence[int], racks: Sequence[str] | None = None) -> list[BrokerInfo]:
    return [BrokerInfo(b, "127.0.0.1", 9092 + b, racks[i] if racks else None) for i, b in enumerate(ids)]


def replica_counts(assignment: Mapping[Any, list[int]]) -> Counter[int]:
    return Counter(b for reps in assignment.values() for b in reps)


def leader_counts(assignment: Mapping[Any, list[int]]) -> Counter[int]:
    return Counter(reps[0] for reps in assignment.values())


def spread(counts: Counter[int], ids: Sequence[int]) -> int:
    return max(counts[b] for b in ids) - min(counts[b] for b in ids)


def lower_bound(before: Mapping[Key, list[int]], ids: Sequence[int]) -> int:
    """Fewest replica moves that leave every broker within one of the others."""
    load = replica_counts(before)
    base, extra = divmod(sum(load.values()), len(ids))
    order = sorted(ids, key=lambda b: -load[b])
    share = {b: base + (1 if i < extra else 0) for i, b in enumerate(order)}
    return sum(max(0, n - share.get(b, 0)) for b, n in load.items())


def topic(name: str, assignment: Mapping[int, list[int]]) -> dict[Key, list[int]]:
    return {(name, p): list(r) for p, r in assignment.items()}


# ------------------------------------------------------------------ assign_replicas


@pytest.mark.parametrize("n,rf,parts", [(3, 3, 1000), (3, 1, 999), (5, 2, 50), (6, 3, 12), (1, 1, 7)])
def test_whole_rounds_spread_leaders_and_replicas_exactly(n: int, rf: int, parts: int) -> None:
    ids = list(range(n))
    out = assign_replicas(parts, rf, brokers(ids), seed=7)
    assert sorted(out) == list(range(parts))
    assert all(len(r) == rf and len(set(r)) == rf for r in out.values())
    assert spread(leader_counts(out), ids) <= 1
    if parts % n == 0:  # every broker leads and follows equally
        assert set(leader_counts(out).values()) == {parts // n}
        assert set(replica_counts(out).values()) == {parts * rf // n}


def test_followers_shift_so_replica_sets_differ() -> None:
    out = assign_replicas(12, 2, brokers(range(4)), seed=1)
    # the follower of a leader changes each time the partition ids wrap around the brokers
    followers_of: dict[int, set[int]] = {}
    for reps in out.values():
        followers_of.setdefault(reps[0], set()).add(reps[1])
    assert all(len(f) == 3 for f in followers_of.values())


def test_seed_makes_it_deterministic_and_seeds_differ() -> None:
    b = brokers(range(5))
    assert assign_replicas(20, 3, b, seed=3) == assign_replicas(20, 3, b, seed=3)
    assert len({str(assign_replicas(20, 3, b, seed=s)) for s in range(10)}) > 1


def test_broker_order_is_by_id_not_input_order() -> None:
    assert assign_replicas(9, 2, brokers([2, 0, 1]), seed=4) == assign_replicas(9, 2, brokers([0, 1, 2]), seed=4)


def test_start_partition_numbers_new_partitions() -> None:
    out = assign_replicas(3, 2, brokers(range(3)), start_partition=5, seed=0)
    assert sorted(out) == [5, 6, 7]


@pytest.mark.parametrize(
    "parts,rf,n,code",
    [(0, 1, 3, 37), (-1, 1, 3, 37), (3, 0, 3, 38), (3, 4, 3, 38), (1, 2, 1, 38)],
)
def test_bad_counts(parts: int, rf: int, n: int, code: int) -> None:
    with pytest.raises(AssignmentError) as err:
        assign_replicas(parts, rf, brokers(range(n)))
    assert err.value.code == code


def test_rf_above_brokers_message_is_kafkas() -> None:
    with pytest.raises(AssignmentError) as err:
        assign_replicas(3, 4, brokers(range(3)))
    assert (
        "target replication factor of 4 cannot be reached because only 3 broker(s) are registered" in err.value.message
    )


def test_rack_alternated_list() -> None:
    b = brokers([0, 1, 2, 3, 4, 5], ["a", "a", "a", "b", "c", "c"])
    assert rack_alternated(b) == [0, 3, 4, 1, 5, 2]


@given(
    racks=st.lists(st.sampled_from("abcd"), min_size=2, max_size=9),
    rf=st.integers(1, 4),
    parts=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
@settings(max_examples=200, deadline=None)
def test_rack_aware_uses_as_many_racks_as_possible(racks: list[str], rf: int, parts: int, seed: int) -> None:
    rf = min(rf, len(racks))
    b = brokers(range(len(racks)), racks)
    out = assign_replicas(parts, rf, b, seed=seed)
    distinct = len(set(racks))
    for reps in out.values():
        assert len(set(reps)) == rf
        assert len({racks[r] for r in reps}) == min(rf, distinct)
    assert spread(leader_counts(out), range(len(racks))) <= 1


def test_rack_aware_uneven_racks() -> None:
    racks = ["a", "a", "a", "b"]
    out = assign_replicas(40, 2, brokers(range(4), racks), seed=0)
    assert all({racks[r] for r in reps} == {"a", "b"} for reps in out.values())
    assert leader_counts(out)[3] == 10  # leaders still round-robin over every broker


def test_rack_unaware_when_a_broker_has_no_rack() -> None:
    b = brokers(range(4), ["a", "a", "a", "b"])
    b[1].rack = None
    assert assign_replicas(8, 2, b, seed=1) == assign_replicas(8, 2, brokers(range(4)), seed=1)


def test_create_partitions_fills_the_new_broker_first() -> None:
    existing = assign_replicas(6, 2, brokers(range(3)), seed=0)
    added = assign_replicas(2, 2, brokers(range(4)), start_partition=6, existing=existing, seed=0)
    assert sorted(added) == [6, 7]
    both = {**existing, **added}
    assert set(leader_counts(both).values()) == {2}  # broker 3 leads both new partitions
    assert all(len(set(r)) == 2 for r in added.values())
    assert added[6][1] != added[7][1]  # followers on two different old brokers
    assert sorted(replica_counts(both).values()) == [2, 4, 5, 5]


@given(
    n=st.integers(1, 7),
    rf=st.integers(1, 3),
    first=st.integers(1, 30),
    more=st.integers(1, 30),
    seed=st.integers(0, 100),
)
@settings(max_examples=150, deadline=None)
def test_create_partitions_keeps_leaders_even(n: int, rf: int, first: int, more: int, seed: int) -> None:
    rf = min(rf, n)
    b = brokers(range(n))
    existing = assign_replicas(first, rf, b, seed=seed)
    added = assign_replicas(more, rf, b, start_partition=first, existing=existing, seed=seed)
    both = {**existing, **added}
    assert sorted(both) == list(range(first + more))
    assert all(len(set(r)) == rf for r in added.values())
    assert spread(leader_counts(both), range(n)) <= 1


def test_create_partitions_rack_aware() -> None:
    racks = ["a", "b", "a", "b"]
    b = brokers(range(4), racks)
    existing = assign_replicas(4, 2, b, seed=0)
    added = assign_replicas(6, 2, b, start_partition=4, existing=existing)
    assert all({racks[x] for x in r} == {"a", "b"} for r in added.values())


# ------------------------------------------------------------------ manual assignments


@pytest.mark.parametrize(
    "assignment,code,words",
    [
        ({0: [1, 1]}, 39, "Duplicate"),
        ({0: [1, 7]}, 39, "[7]"),
        ({0: [1, 2], 1: [2]}, 39, "same number of replicas"),
        ({0: []}, 39, "empty"),
        ({1: [1]}, 39, "consecutive"),
        ({0: [1], 2: [2]}, 39, "consecutive"),
        ({}, 37, "larger than 0"),
    ],
)
def test_manual_assignment_refused(assignment: dict[int, list[int]], code: int, words: str) -> None:
    with pytest.raises(AssignmentError) as err:
        validate_manual_assignment(assignment, {1, 2, 3})
    assert err.value.code == code
    assert words in err.value.message


def test_manual_assignment_accepted() -> None:
    validate_manual_assignment({0: [1, 2], 1: [3, 1]}, {1, 2, 3})
    validate_manual_assignment({4: [1], 5: [2]}, {1, 2}, start_partition=4)


# ------------------------------------------------------------------ elections


@pytest.mark.parametrize(
    "replicas,isr,live,unclean,preferred,expected",
    [
        ([1, 2, 3], [1, 2, 3], {1, 2, 3}, False, False, 1),
        ([1, 2, 3], [3, 2], {1, 2, 3}, False, False, 2),  # assignment order, not ISR order
        ([1, 2, 3], [1, 3], {2, 3}, False, False, 3),
        ([1, 2, 3], [1], {2, 3}, False, False, None),  # offline
        ([1, 2, 3], [1], {2, 3}, True, False, 2),  # unclean: first live replica
        ([1, 2, 3], [], set(), True, False, None),
        ([1, 2, 3], [1, 2], {1, 2}, False, True, 1),
        ([1, 2, 3], [2, 3], {1, 2, 3}, False, True, None),  # preferred not in ISR
        ([1, 2, 3], [1, 2], {2, 3}, True, True, None),  # preferred dead
        ([4, 1], [1, 4], {1, 4, 9}, False, False, 4),
    ],
)
def test_elect_leader(
    replicas: list[int], isr: list[int], live: set[int], unclean: bool, preferred: bool, expected: int | None
) -> None:
    assert elect_leader(replicas, isr, live, unclean=unclean, preferred_only=preferred) == expected


def test_preferred_leader_imbalance_threshold() -> None:
    # broker 1 prefers 10 partitions and leads 9 of them: 10 % off, not above the default 10 %
    parts = {("t", i): PartitionInfo(i, 1, [1, 2], [1, 2]) for i in range(10)}
    parts[("t", 0)].leader = 2
    assert preferred_leader_imbalance(parts, {1, 2}) == []
    parts[("t", 1)].leader = 2  # 20 %
    assert preferred_leader_imbalance(parts, {1, 2}) == [("t", 0), ("t", 1)]
    assert preferred_leader_imbalance(parts, {1, 2}, percentage=25) == []
    assert preferred_leader_imbalance(parts, {1, 2}, percentage=0) == [("t", 0), ("t", 1)]
    parts[("t", 1)].isr = [2]  # the preferred replica must be in the ISR
    assert preferred_leader_imbalance(parts, {1, 2}) == [("t", 0)]
    assert preferred_leader_imbalance(parts, {2}) == []  # and live


# ------------------------------------------------------------------ rebalance


def test_fourth_broker_rf1_moves_exactly_250() -> None:
    before = topic("t", assign_replicas(1000, 1, brokers(range(3)), seed=0))
    after = plan_rebalance(before, brokers(range(4)))
    s = summarize_plan(before, after)
    # 334/333/333 replicas -> 250 each: 84 + 83 + 83 = 250 leave, all to broker 3
    assert (s.partitions_moved, s.replica_moves, s.leadership_moves) == (250, 250, 250)
    assert set(replica_counts(after).values()) == {250}


def test_fourth_broker_rf3_moves_750_replicas_and_250_leaderships() -> None:
    before = topic("t", assign_replicas(1000, 3, brokers(range(3)), seed=0))
    after = plan_rebalance(before, brokers(range(4)))
    s = summarize_plan(before, after)
    # every old broker holds all 1000 partitions; each must end with 750, so 3 x 250
    # replicas go to broker 3, which takes at most one replica of a partition:
    # 750 partitions touched. Leaders 334/333/333 -> 250 each: 250 leaderships move.
    assert s.replica_moves == 3000 - math.ceil(3000 / 4) * 3 == 750
    assert s.partitions_moved == 750
    assert s.leadership_moves == 250
    assert set(replica_counts(after).values()) == {750}
    assert set(leader_counts(after).values()) == {250}
    # no partition loses a replica it keeps: only the moved ones change, by one broker each
    for k, reps in after.items():
        assert len(set(reps) - set(before[k])) <= 1


def test_many_topics_each_give_their_share() -> None:
    before: dict[Key, list[int]] = {}
    for i, parts in enumerate([300, 60, 9]):
        before.update(topic(f"t{i}", assign_replicas(parts, 2, brokers(range(3)), seed=i)))
    after = plan_rebalance(before, brokers(range(4)))
    for i, parts in enumerate([300, 60, 9]):
        on_new = sum(1 for (t, _), reps in after.items() if t == f"t{i}" and 3 in reps)
        assert abs(on_new - parts * 2 / 4) <= 2  # each topic spreads onto the new broker
    assert summarize_plan(before, after).replica_moves == lower_bound(before, range(4))


def test_uneven_cluster_two_new_brokers() -> None:
    before = topic("t", assign_replicas(101, 3, brokers(range(5)), seed=2))
    ids = list(range(7))
    after = plan_rebalance(before, brokers(ids))
    s = summarize_plan(before, after)
    # 303 replicas over 7 brokers: shares 44, 44 (the two most loaded old brokers), 43 x 5;
    # the old brokers hold all 303 and keep 44 + 44 + 43 + 43 + 43
    assert s.replica_moves == lower_bound(before, ids) == 303 - (44 * 2 + 43 * 3) == 86
    assert spread(replica_counts(after), ids) <= 1
    assert spread(leader_counts(after), ids) <= 1


def test_already_balanced_moves_nothing() -> None:
    before = topic("t", assign_replicas(40, 3, brokers(range(4)), seed=5))
    after = plan_rebalance(before, brokers(range(4)))
    assert after == before
    assert summarize_plan(before, after).reordered == 0


def test_decommission_moves_only_that_brokers_replicas() -> None:
    before = plan_rebalance(topic("t", assign_replicas(1000, 3, brokers(range(3)), seed=0)), brokers(range(4)))
    after = plan_rebalance(before, brokers([0, 1, 3]))  # broker 2 leaves
    s = summarize_plan(before, after)
    assert s.replica_moves == replica_counts(before)[2] == 750
    assert all(2 not in reps for reps in after.values())
    for k, reps in after.items():
        assert set(before[k]) - set(reps) <= {2}
    assert set(replica_counts(after).values()) == {1000}
    assert set(leader_counts(after).values()) == {334, 333}


def test_rebalance_keeps_rack_diversity() -> None:
    racks = ["a", "b", "c", "a", "b", "c"]
    b = brokers(range(6), racks)
    before = topic("t", assign_replicas(60, 3, b[:3], seed=1))
    after = plan_rebalance(before, b)
    assert all({racks[x] for x in reps} == {"a", "b", "c"} for reps in after.values())
    assert spread(replica_counts(after), range(6)) <= 1
    assert summarize_plan(before, after).replica_moves == 90


def test_rebalance_without_racks_may_pair_a_rack() -> None:
    racks = ["a", "b", "a", "b"]
    before = topic("t", {0: [0, 1], 1: [0, 1], 2: [1, 0], 3: [1, 0]})
    with_racks = plan_rebalance(before, brokers(range(4), racks))
    assert all({racks[x] for x in reps} == {"a", "b"} for reps in with_racks.values())
    without = plan_rebalance(before, brokers(range(4), racks), racks=False)
    assert spread(replica_counts(without), range(4)) == 0


def test_rebalance_refuses_more_replicas_than_brokers() -> None:
    before = topic("t", {0: [0, 1, 2]})
    with pytest.raises(AssignmentError) as err:
        plan_rebalance(before, brokers([0, 1]))
    assert err.value.code == 38
    with pytest.raises(AssignmentError):
        plan_rebalance(before, [])


def test_rebalance_is_deterministic() -> None:
    before = topic("t", assign_replicas(100, 2, brokers(range(3)), seed=9))
    assert plan_rebalance(before, brokers(range(5))) == plan_rebalance(before, brokers(range(5)))


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[Key, list[int]], list[int]]:
    old = draw(st.integers(1, 6))
    rf = draw(st.integers(1, old))
    before: dict[Key, list[int]] = {}
    for t in range(draw(st.integers(1, 3))):
        for p in range(draw(st.integers(1, 25))):
            before[(f"t{t}", p)] = draw(st.permutations(range(old)))[:rf]
    new = sorted(draw(st.sets(st.integers(0, 9), min_size=rf, max_size=8)))
    return before, new


@given(clusters())
@example(({("t0", 0): [0, 1, 3], ("t0", 1): [0, 1, 3], ("t0", 2): [0, 2, 4]}, [0, 1, 2, 3]))  # bound of 1 unreachable
@settings(max_examples=300, deadline=None)
def test_rebalance_is_even_and_minimal(case: tuple[dict[Key, list[int]], list[int]]) -> None:
    before, ids = case
    after = plan_rebalance(before, brokers(ids))
    assert after.keys() == before.keys()
    for k, reps in after.items():
        assert len(reps) == len(before[k]) and len(set(reps)) == len(reps) and set(reps) <= set(ids)
    assert spread(replica_counts(after), ids) <= 1
    assert spread(leader_counts(after), ids) <= 1
    moves = summarize_plan(before, after).replica_moves
    assert moves >= lower_bound(before, ids)
    fewest = exact_fewest_moves(before, ids)
    if fewest is not None:  # small enough to search every even placement
        assert moves == fewest


def exact_fewest_moves(before: Mapping[Key, list[int]], ids: Sequence[int], limit: int = 20000) -> int | None:
    """Fewest replica moves over every placement with replica counts within one, or None when there
    are more than `limit` placements. (lower_bound can be unreachable: a replica's only spare
    broker may already hold that partition.)"""
    keys = sorted(before)
    choices = [list(itertools.combinations(sorted(ids), len(before[k]))) for k in keys]
    if math.prod(len(c) for c in choices) > limit:
        return None
    best: int | None = None
    for placement in itertools.product(*choices):
        counts = Counter(b for reps in placement for b in reps)
        if max(counts[b] for b in ids) - min(counts[b] for b in ids) > 1:
            continue
        moved = sum(len(set(before[k]) - set(reps)) for k, reps in zip(keys, placement, strict=True))
        best = moved if best is None else min(best, moved)
    return best
