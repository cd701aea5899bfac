"""The classic group state machine, driven without sockets or clocks."""

from __future__ import annotations

import pytest

from kafkapy.coordinator.group import (
    VALID_PREVIOUS,
    ClassicGroup,
    GroupLimits,
    GroupState,
    IllegalTransition,
    JoinRequest,
)
from kafkapy.protocol.error_codes import ErrorCode as E

S = GroupState
DELAY = 100


def make(delay: int = DELAY, **kw: int) -> ClassicGroup:
    return ClassicGroup("g", GroupLimits(initial_rebalance_delay_ms=delay, **kw))


def req(
    member_id: str = "",
    *,
    protocols: list[tuple[str, bytes]] | None = None,
    instance: str | None = None,
    session: int = 10_000,
    rebalance: int = 30_000,
    ptype: str = "consumer",
    v4: bool = True,
    client: str = "c",
) -> JoinRequest:
    return JoinRequest(
        member_id,
        instance,
        client,
        "/127.0.0.1",
        session,
        rebalance,
        ptype,
        protocols if protocols is not None else [("range", b"r")],
        v4,
    )


def join_new(g: ClassicGroup, now: int, **kw: object) -> str:
    """KIP-394 round trip: MEMBER_ID_REQUIRED, then the parked rejoin."""
    mid, res, _ = g.join(req(**kw), now)  # type: ignore[arg-type]
    assert res is not None and res.error == E.MEMBER_ID_REQUIRED and res.member_id == mid
    assert mid.startswith("c-")
    mid2, res, _ = g.join(req(mid, **kw), now)  # type: ignore[arg-type]
    assert mid2 == mid and res is None  # parked until the rebalance completes
    return mid


def stable_group(n: int = 2) -> tuple[ClassicGroup, list[str]]:
    g = make()
    ids = [join_new(g, 0) for _ in range(n)]
    fx = g.tick(DELAY)
    assert g.state is S.COMPLETING_REBALANCE and set(fx.joins) == set(ids)
    leader = g.leader_id
    assert leader is not None
    followers = [m for m in ids if m != leader]
    for f in followers:
        res, _ = g.sync(f, None, 1, None, None, {}, DELAY)
        assert res is None  # waits for the leader
    res, fx = g.sync(leader, None, 1, None, None, {m: m.encode() for m in ids}, DELAY)
    assert res is not None and res.assignment == leader.encode()
    assert fx.persist and {m: r.assignment for m, r in fx.syncs.items()} == {f: f.encode() for f in followers}
    assert g.state is S.STABLE
    return g, ids


def test_transition_table_is_the_only_way() -> None:
    assert VALID_PREVIOUS[S.STABLE] == {S.COMPLETING_REBALANCE}
    g = make()
    with pytest.raises(IllegalTransition):
        g._transition(S.STABLE, 0)


def test_initial_delay_then_leader_gets_all_metadata() -> None:
    g = make()
    a = join_new(g, 0, protocols=[("range", b"A")])
    assert g.state is S.PREPARING_REBALANCE and g.next_deadline() == DELAY
    b = join_new(g, 50, protocols=[("range", b"B")])
    assert g.next_deadline() == 50 + DELAY  # a new member restarts the delay
    assert not g.tick(100).joins
    fx = g.tick(150)
    assert g.generation == 1 and g.protocol_name == "range" and g.leader_id == a
    assert sorted(md for _, _, md in fx.joins[a].members) == [b"A", b"B"]
    assert fx.joins[b].members == [] and fx.joins[b].leader == a


def test_no_delay_completes_at_once_and_second_member_rebalances() -> None:
    g = make(delay=0)
    mid, res, _ = g.join(req(v4=False), 0)
    assert res is not None and res.error == E.NONE and res.generation_id == 1 and res.leader == mid
    res, _ = g.sync(mid, None, 1, None, None, {mid: b"x"}, 0)
    assert res is not None and res.assignment == b"x"
    other, res2, _ = g.join(req(v4=False), 1)
    assert res2 is None and g.state is S.PREPARING_REBALANCE
    assert g.heartbeat(mid, None, 1, 2) == E.REBALANCE_IN_PROGRESS
    _, res, fx = g.join(req(mid), 3)
    assert res is not None and res.generation_id == 2 and fx.joins[other].generation_id == 2


def test_generation_and_member_checks() -> None:
    g, (a, _b) = stable_group()
    assert g.heartbeat(a, None, 1, 200) == E.NONE
    assert g.heartbeat(a, None, 0, 200) == E.ILLEGAL_GENERATION
    assert g.heartbeat("nobody", None, 1, 200) == E.UNKNOWN_MEMBER_ID
    res, _ = g.sync(a, None, 7, None, None, {}, 200)
    assert res is not None and res.error == E.ILLEGAL_GENERATION
    res, _ = g.sync(a, None, 1, "consumer", "roundrobin", {}, 200)
    assert res is not None and res.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert g.validate_commit(a, None, 1, 200) == E.NONE
    assert g.validate_commit("", None, -1, 200) == E.UNKNOWN_MEMBER_ID  # simple commits need an empty group
    assert g.validate_commit(a, None, 2, 200) == E.ILLEGAL_GENERATION


def test_protocol_selection_by_votes_among_common() -> None:
    g = make()
    join_new(g, 0, protocols=[("sticky", b""), ("range", b"")])
    join_new(g, 0, protocols=[("roundrobin", b""), ("range", b""), ("sticky", b"")])
    join_new(g, 0, protocols=[("range", b""), ("sticky", b"")])
    g.tick(DELAY)
    assert g.protocol_name in ("sticky", "range")  # roundrobin is not common
    g2 = make()
    join_new(g2, 0, protocols=[("sticky", b""), ("range", b"")])
    join_new(g2, 0, protocols=[("sticky", b""), ("range", b"")])
    join_new(g2, 0, protocols=[("range", b""), ("sticky", b"")])
    g2.tick(DELAY)
    assert g2.protocol_name == "sticky"


def test_inconsistent_protocols_and_types() -> None:
    g = make()
    join_new(g, 0, protocols=[("range", b"")])
    _, res, _ = g.join(req(protocols=[("roundrobin", b"")]), 1)
    assert res is not None and res.error == E.INCONSISTENT_GROUP_PROTOCOL
    _, res, _ = g.join(req(ptype="connect"), 1)
    assert res is not None and res.error == E.INCONSISTENT_GROUP_PROTOCOL
    _, res, _ = g.join(req(protocols=[]), 1)
    assert res is not None and res.error == E.INCONSISTENT_GROUP_PROTOCOL


def test_any_protocol_type() -> None:
    g = make()
    a = join_new(g, 0, ptype="connect", protocols=[("sessioned", b"w1"), ("default", b"w1")])
    fx = g.tick(DELAY)
    assert fx.joins[a].protocol_type == "connect" and fx.joins[a].protocol_name == "sessioned"


def test_session_timeout_bounds_and_max_size() -> None:
    g = make(min_session_timeout_ms=6000, max_session_timeout_ms=60000, max_size=2)
    _, res, _ = g.join(req(session=100), 0)
    assert res is not None and res.error == E.INVALID_SESSION_TIMEOUT
    _, res, _ = g.join(req(session=600_000), 0)
    assert res is not None and res.error == E.INVALID_SESSION_TIMEOUT
    join_new(g, 0)
    join_new(g, 0)
    _, res, _ = g.join(req(), 0)
    assert res is not None and res.error == E.GROUP_MAX_SIZE_REACHED


def test_session_expiry_moves_to_rebalance_then_empty() -> None:
    g, (a, b) = stable_group()
    assert g.next_deadline() == DELAY + 10_000
    g.heartbeat(a, None, 1, 5000)
    fx = g.tick(DELAY + 10_000)  # b missed its session
    assert b not in g.members and g.state is S.PREPARING_REBALANCE
    _, res, fx = g.join(req(a), 10_200)
    assert res is not None and res.generation_id == 2 and res.members and res.leader == a
    g.sync(a, None, 2, None, None, {a: b"all"}, 10_200)
    fx = g.tick(10_200 + 10_000)
    assert g.state is S.EMPTY and g.generation == 3 and fx.persist


def test_rebalance_timeout_drops_members_that_do_not_rejoin() -> None:
    g, (a, b) = stable_group()
    _, res, _ = g.join(req(a, protocols=[("range", b"new")], rebalance=5000), 1000)
    assert res is None and g.state is S.PREPARING_REBALANCE
    assert g.join_deadline_ms == 1000 + 30_000  # the largest rebalance timeout of the members
    g.heartbeat(b, None, 1, 20_000)
    fx = g.tick(31_000)
    assert b not in g.members and fx.joins[a].generation_id == 2 and g.state is S.COMPLETING_REBALANCE


def test_rejoin_during_rebalance_resets_pending_syncs() -> None:
    g = make()
    a, b = join_new(g, 0), join_new(g, 0)
    g.tick(DELAY)
    follower = b if g.leader_id == a else a
    res, _ = g.sync(follower, None, 1, None, None, {}, 200)
    assert res is None
    _, res, fx = g.join(req(g.leader_id or "", protocols=[("range", b"changed")]), 300)
    assert fx.syncs[follower].error == E.REBALANCE_IN_PROGRESS and g.state is S.PREPARING_REBALANCE


def test_leave_and_batched_leave() -> None:
    g, (a, b) = stable_group()
    out, fx = g.leave([(a, None), ("ghost", None)], 500)
    assert out == [(a, None, E.NONE), ("ghost", None, E.UNKNOWN_MEMBER_ID)]
    assert g.state is S.PREPARING_REBALANCE
    out, fx = g.leave([(b, None)], 600)
    assert g.state is S.EMPTY and fx.persist and g.generation == 2


def test_static_member_rejoin_without_rebalance_fences_old_id() -> None:
    g = make()
    old = g.join(req(instance="i1"), 0)[0]  # static members skip MEMBER_ID_REQUIRED
    other = join_new(g, 0)
    g.tick(DELAY)
    leader = g.leader_id
    g.sync(other if leader == old else old, None, 1, None, None, {}, DELAY)
    g.sync(leader or "", None, 1, None, None, {old: b"p-old", other: b"p-other"}, DELAY)
    assert g.state is S.STABLE
    new, res, fx = g.join(req(instance="i1"), 1000)
    assert res is not None and res.error == E.NONE and new != old and res.generation_id == 1
    assert g.state is S.STABLE and fx.persist and g.static_members["i1"] == new
    assert g.members[new].assignment == b"p-old"
    assert g.heartbeat(old, "i1", 1, 1001) == E.FENCED_INSTANCE_ID
    res2, _ = g.sync(new, "i1", 1, None, None, {}, 1002)
    assert res2 is not None and res2.assignment == b"p-old"
    out, _ = g.leave([(old, "i1")], 1003)
    assert out[0][2] == E.FENCED_INSTANCE_ID


def test_static_member_rejoin_with_new_protocol_rebalances() -> None:
    g = make()
    old = g.join(req(instance="i1"), 0)[0]
    g.tick(DELAY)
    g.sync(old, "i1", 1, None, None, {old: b"x"}, DELAY)
    new, res, _ = g.join(req(instance="i1", protocols=[("roundrobin", b"")]), 500)
    assert res is not None and res.generation_id == 2  # rebalanced; it is alone so it completes at once
    assert new in g.members and old not in g.members


def test_pending_member_that_never_rejoins_is_dropped() -> None:
    g = make()
    a = join_new(g, 0)
    _, res, _ = g.join(req(session=6000), 10)
    assert res is not None and res.error == E.MEMBER_ID_REQUIRED
    fx = g.tick(DELAY)  # the delay is over: the rebalance goes on without the pending member
    assert g.state is S.COMPLETING_REBALANCE and a in fx.joins and g.pending_members
    g.tick(10 + 6000)
    assert not g.pending_members


def test_simple_commit_on_empty_group_and_dead_group() -> None:
    g = make()
    assert g.validate_commit("", None, -1, 0) == E.NONE
    g.mark_dead(1)
    assert g.validate_commit("", None, -1, 2) == E.COORDINATOR_NOT_AVAILABLE
    _, res, _ = g.join(req(), 3)
    assert res is not None and res.error == E.COORDINATOR_NOT_AVAILABLE


def test_commit_during_completing_rebalance() -> None:
    g = make()
    a = join_new(g, 0)
    g.tick(DELAY)
    assert g.validate_commit(a, None, 1, DELAY) == E.REBALANCE_IN_PROGRESS


def test_record_round_trip_restores_stable_group() -> None:
    g, (a, b) = stable_group()
    back = ClassicGroup.from_record("g", g.to_record(), g.limits, 1000)
    assert back.state is S.STABLE and back.generation == 1 and back.leader_id == g.leader_id
    assert {m: x.assignment for m, x in back.members.items()} == {a: a.encode(), b: b.encode()}
    assert back.heartbeat(a, None, 1, 1001) == E.NONE
