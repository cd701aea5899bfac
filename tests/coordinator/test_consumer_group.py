"""The KIP-848 consumer group state machine, driven without sockets or clocks."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest

from kafkapy.coordinator.consumer_assignors import TP, MemberSpec, range_, uniform
from kafkapy.coordinator.consumer_group import (
    ConsumerGroup,
    ConsumerGroupLimits,
    ConsumerGroups,
    ConsumerGroupState,
    HeartbeatRequest,
    HeartbeatResult,
    MemberState,
    TopicImage,
    TopicMeta,
)
from kafkapy.coordinator.consumer_records import (
    CgKey,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from kafkapy.protocol.error_codes import ErrorCode as E

T1 = TopicMeta("t1", UUID(int=1), 6)
T2 = TopicMeta("t2", UUID(int=2), 3)
S = ConsumerGroupState


def image(*topics: TopicMeta) -> TopicImage:
    return TopicImage.of(topics or (T1, T2))


def make(**kw: object) -> ConsumerGroup:
    return ConsumerGroup("g", ConsumerGroupLimits(**kw))  # type: ignore[arg-type]


def join(
    g: ConsumerGroup,
    mid: str,
    topics: list[str] | None = None,
    now: int = 0,
    *,
    instance: str | None = None,
    assignor: str | None = None,
    regex: str | None = None,
    img: TopicImage | None = None,
) -> HeartbeatResult:
    return g.heartbeat(
        HeartbeatRequest(
            mid, 0, instance, None, 30_000, topics if regex is None else None, regex, assignor, {}, "c", "/h"
        ),
        img or image(),
        now,
    )


def hb(
    g: ConsumerGroup,
    mid: str,
    epoch: int,
    owned: dict[UUID, frozenset[int]] | None = None,
    now: int = 0,
    *,
    instance: str | None = None,
    img: TopicImage | None = None,
) -> HeartbeatResult:
    return g.heartbeat(HeartbeatRequest(mid, epoch, instance, owned=owned), img or image(), now)


def parts(r: HeartbeatResult | dict[UUID, frozenset[int]] | None, topic: TopicMeta = T1) -> set[int]:
    a = r.assignment if isinstance(r, HeartbeatResult) else r
    assert a is not None
    return set(a.get(topic.topic_id, frozenset()))


def converge(g: ConsumerGroup, owned: dict[str, dict[UUID, frozenset[int]]], rounds: int = 6, now: int = 0) -> None:
    """Heartbeat every member, each reporting what it was last told it owns, until nothing changes."""
    for _ in range(rounds):
        for mid in list(g.members):
            m = g.members[mid]
            r = hb(g, mid, m.member_epoch, owned.get(mid, {}), now)
            assert r.error == E.NONE, r
            if r.assignment is not None:
                owned[mid] = r.assignment


def no_overlap(g: ConsumerGroup) -> None:
    seen: set[TP] = set()
    for m in g.members.values():
        mine = {(t, p) for t, ps in m.assigned.items() for p in ps} | {
            (t, p) for t, ps in m.pending_revocation.items() for p in ps
        }
        assert not (mine & seen), "a partition is held by two members"
        seen |= mine


# ---------------------------------------------------------------- joining and epochs


def test_first_member_gets_everything_and_epochs_move() -> None:
    g = make()
    r = join(g, "a", ["t1"])
    assert r.error == E.NONE and r.member_id == "a" and r.member_epoch == 1
    assert parts(r) == set(range(6)) and g.group_epoch == g.assignment_epoch == 1
    assert g.state is S.STABLE
    assert hb(g, "a", 1).assignment is None  # nothing changed: no assignment sent


def test_server_generates_member_id_when_empty() -> None:
    g = make()
    r = join(g, "", ["t1"])
    assert r.error == E.NONE and r.member_id and r.member_id in g.members


def test_second_member_waits_for_revocation() -> None:
    g = make()
    join(g, "a", ["t1"])
    rb = join(g, "b", ["t1"])
    # b is at epoch 2 but its partitions are still a's: nothing yet
    assert rb.member_epoch == 2 and parts(rb) == set() and g.members["b"].state is MemberState.UNRELEASED_PARTITIONS
    assert g.state is S.RECONCILING
    ra = hb(g, "a", 1)
    assert ra.member_epoch == 1, "a keeps its epoch until it revoked"
    keep = parts(ra)
    assert len(keep) == 3 and g.members["a"].state is MemberState.UNREVOKED_PARTITIONS
    # still owned by a: b gets nothing
    assert parts(hb(g, "b", 2, {})) == set()
    # a reports it revoked: it moves to epoch 2; b then receives the rest
    ra = hb(g, "a", 1, {T1.topic_id: frozenset(keep)})
    assert ra.member_epoch == 2 and g.members["a"].state is MemberState.STABLE
    rb = hb(g, "b", 2, {})
    assert parts(rb) == set(range(6)) - keep and g.state is S.STABLE
    no_overlap(g)


def test_unrevoked_member_that_does_not_report_stays() -> None:
    g = make()
    join(g, "a", ["t1"])
    join(g, "b", ["t1"])
    hb(g, "a", 1)
    assert hb(g, "a", 1, None).member_epoch == 1  # owned not sent: still revoking
    assert g.members["a"].state is MemberState.UNREVOKED_PARTITIONS
    still = {T1.topic_id: frozenset(range(6))}
    assert hb(g, "a", 1, still).member_epoch == 1


def test_three_members_split_six_partitions_uniformly() -> None:
    g = make()
    owned: dict[str, dict[UUID, frozenset[int]]] = {}
    for mid in "abc":
        r = join(g, mid, ["t1"])
        owned[mid] = r.assignment or {}
        converge(g, owned)
    assert g.state is S.STABLE
    sizes = sorted(len(parts(g.members[m].assigned)) for m in "abc")
    assert sizes == [2, 2, 2]
    assert set().union(*(parts(g.members[m].assigned) for m in "abc")) == set(range(6))
    no_overlap(g)


def test_fenced_epochs() -> None:
    g = make()
    join(g, "a", ["t1"])
    assert hb(g, "a", 5).error == E.FENCED_MEMBER_EPOCH
    join(g, "b", ["t1"])
    owned: dict[str, dict[UUID, frozenset[int]]] = {"a": {T1.topic_id: frozenset(range(6))}}
    converge(g, owned)
    a = g.members["a"]
    assert a.member_epoch == 2 and a.previous_member_epoch == 1
    # the previous epoch is fine if the member owns nothing beyond its assignment (a lost response)
    assert hb(g, "a", 1, owned["a"]).error == E.NONE
    assert hb(g, "a", 1, {T1.topic_id: frozenset(range(6))}).error == E.FENCED_MEMBER_EPOCH


def test_unknown_member_and_bad_requests() -> None:
    g = make()
    assert hb(g, "nobody", 3).error == E.UNKNOWN_MEMBER_ID
    r = g.heartbeat(HeartbeatRequest("x", 0, rebalance_timeout_ms=-1, subscribed_topic_names=["t1"]), image(), 0)
    assert r.error == E.INVALID_REQUEST
    r = g.heartbeat(HeartbeatRequest("x", 0, rebalance_timeout_ms=1000), image(), 0)
    assert r.error == E.INVALID_REQUEST  # no subscription
    r = g.heartbeat(
        HeartbeatRequest(
            "x", 0, rebalance_timeout_ms=1000, subscribed_topic_names=["t1"], owned={T1.topic_id: frozenset({0})}
        ),
        image(),
        0,
    )
    assert r.error == E.INVALID_REQUEST
    assert hb(g, "", 3).error == E.INVALID_REQUEST
    assert g.heartbeat(HeartbeatRequest("x", -2), image(), 0).error == E.INVALID_REQUEST  # -2 needs an instance id


def test_unsupported_assignor_and_assignor_choice() -> None:
    g = make()
    assert join(g, "a", ["t1"], assignor="sticky").error == E.UNSUPPORTED_ASSIGNOR
    assert join(g, "a", ["t1"], assignor="range").error == E.NONE
    assert g.preferred_assignor() == "range"
    g2 = make(assignors=("range", "uniform"))
    join(g2, "a", ["t1"])
    assert g2.preferred_assignor() == "range"
    assert (
        join(make(), "a", ["t1"], assignor="org.apache.kafka.coordinator.group.assignor.UniformAssignor").error
        == E.NONE
    )


def test_group_max_size() -> None:
    g = make(max_size=2)
    assert join(g, "a", ["t1"]).error == E.NONE
    assert join(g, "b", ["t1"]).error == E.NONE
    assert join(g, "c", ["t1"]).error == E.GROUP_MAX_SIZE_REACHED
    assert "c" not in g.members


# ---------------------------------------------------------------- leaving, timeouts


def test_leave_moves_partitions_to_the_others() -> None:
    g = make()
    owned: dict[str, dict[UUID, frozenset[int]]] = {}
    for mid in "ab":
        owned[mid] = join(g, mid, ["t1"]).assignment or {}
        converge(g, owned)
    epoch = g.group_epoch
    r = g.heartbeat(HeartbeatRequest("b", -1), image(), 0)
    assert r.error == E.NONE and r.member_epoch == -1 and "b" not in g.members
    assert g.group_epoch == epoch + 1 and g.state is S.ASSIGNING
    converge(g, owned)
    assert parts(g.members["a"].assigned) == set(range(6)) and g.state is S.STABLE


def test_session_timeout_fences_member() -> None:
    g = make(session_timeout_ms=1000)
    join(g, "a", ["t1"], now=0)
    join(g, "b", ["t1"], now=0)
    hb(g, "a", 1, None, now=800)
    assert g.next_deadline() == 1000
    g.tick(1000, image())
    assert "b" not in g.members and "a" in g.members
    converge(g, {"a": {T1.topic_id: frozenset(range(6))}}, now=900)
    assert parts(g.members["a"].assigned) == set(range(6))


def test_rebalance_timeout_fences_a_member_that_does_not_revoke() -> None:
    g = make()
    join(g, "a", ["t1"], now=0)
    join(g, "b", ["t1"], now=0)
    hb(g, "a", 1, None, now=10)  # a must revoke within 30 s
    assert g.members["a"].rebalance_deadline_ms == 30_010
    g.tick(30_010, image())
    assert "a" not in g.members
    r = hb(g, "b", 2, {}, now=30_020)
    assert parts(r) == set(range(6))


def test_static_member_temporary_leave_and_replacement() -> None:
    g = make()
    owned: dict[str, dict[UUID, frozenset[int]]] = {}
    owned["a"] = join(g, "a", ["t1"], instance="ia").assignment or {}
    owned["b"] = join(g, "b", ["t1"], instance="ib").assignment or {}
    converge(g, owned)
    epoch, mine = g.group_epoch, parts(g.members["b"].assigned)
    r = g.heartbeat(HeartbeatRequest("b", -2, "ib"), image(), 0)
    assert r.error == E.NONE and r.member_epoch == -2 and g.group_epoch == epoch
    # another process with the same instance id while b is away gets b's partitions, no new epoch
    r = join(g, "b2", ["t1"], instance="ib")
    assert r.error == E.NONE and parts(r) == mine and g.group_epoch == epoch and "b" not in g.members
    assert g.static_members["ib"] == "b2"
    # the instance is now active: a third process is refused; the old id is fenced
    assert join(g, "b3", ["t1"], instance="ib").error == E.UNRELEASED_INSTANCE_ID
    assert hb(g, "b", 2, instance="ib").error in (E.FENCED_INSTANCE_ID, E.UNKNOWN_MEMBER_ID)


def test_static_member_permanent_leave() -> None:
    g = make()
    join(g, "a", ["t1"], instance="ia")
    assert g.heartbeat(HeartbeatRequest("zzz", -1, "ia"), image(), 0).error == E.FENCED_INSTANCE_ID
    assert g.heartbeat(HeartbeatRequest("a", -1, "ia"), image(), 0).error == E.NONE
    assert g.is_empty and g.state is S.EMPTY and not g.static_members


# ---------------------------------------------------------------- subscriptions and metadata


def test_subscription_change_and_new_topic_bump_epoch() -> None:
    g = make()
    join(g, "a", ["t1", "t9"], img=image(T1))
    e = g.group_epoch
    # t9 appears: the group sees new metadata on the next heartbeat
    t9 = TopicMeta("t9", UUID(int=9), 2)
    r = hb(g, "a", e, None, img=image(T1, t9))
    assert g.group_epoch == e + 1 and parts(r, t9) == {0, 1}
    r = g.heartbeat(HeartbeatRequest("a", g.members["a"].member_epoch, subscribed_topic_names=["t2"]), image(T1, T2), 0)
    assert g.members["a"].state is MemberState.UNREVOKED_PARTITIONS  # must give up t1 and t9 first
    r = hb(g, "a", g.members["a"].member_epoch, {}, img=image(T1, T2))
    assert parts(r, T2) == {0, 1, 2} and parts(r, T1) == set()


def test_regex_subscription() -> None:
    g = make()
    r = join(g, "a", None, regex="t[0-9]")
    assert parts(r, T1) == set(range(6)) and parts(r, T2) == {0, 1, 2}
    assert join(g, "b", None, regex="(").error == E.INVALID_REQUEST


def test_regex_subscription_matches_internal_topics() -> None:
    # Kafka 4.3.1 matches a regex against every topic, internal ones too (checked on the reference broker)
    offsets = TopicMeta("__consumer_offsets", UUID(int=50), 2)
    dunder = TopicMeta("__user", UUID(int=51), 1)
    img = image(T1, offsets, dunder)
    r = join(make(), "a", None, regex="__consumer_offsets", img=img)
    assert parts(r, offsets) == {0, 1} and parts(r, T1) == set() and parts(r, dunder) == set()
    r = join(make(), "a", None, regex=".*", img=img)
    assert parts(r, offsets) == {0, 1} and parts(r, dunder) == {0} and parts(r, T1) == set(range(6))


# ---------------------------------------------------------------- offsets, deletion


def test_commit_validation() -> None:
    g = make()
    assert g.validate_commit("", -1) == E.NONE  # simple commit to an empty group
    join(g, "a", ["t1"])
    assert g.validate_commit("", -1) == E.UNKNOWN_MEMBER_ID
    assert g.validate_commit("a", 1) == E.NONE
    assert g.validate_commit("a", 0) == E.STALE_MEMBER_EPOCH
    assert g.validate_commit("a", 7) == E.STALE_MEMBER_EPOCH
    assert g.validate_commit("x", 1) == E.UNKNOWN_MEMBER_ID


def test_delete_needs_an_empty_group() -> None:
    g = make()
    join(g, "a", ["t1"])
    assert g.delete() == E.NON_EMPTY_GROUP
    g.heartbeat(HeartbeatRequest("a", -1), image(), 0)
    g.take_pending()
    assert g.delete() == E.NONE and g.state is S.DEAD
    assert {k.record_type for k, v in g.take_pending() if v is None} == {3, 6}


# ---------------------------------------------------------------- persistence


def test_replaying_the_records_rebuilds_the_group() -> None:
    g = make()
    owned: dict[str, dict[UUID, frozenset[int]]] = {}
    owned["a"] = join(g, "a", ["t1", "t2"], instance="ia").assignment or {}
    owned["b"] = join(g, "b", ["t1"], assignor="range").assignment or {}
    converge(g, owned, rounds=2)
    hb(g, "a", g.members["a"].member_epoch)  # leave some reconciliation in flight
    records = g.take_pending()
    # through the wire format, as loading reads them
    wire = [(encode_key(k), None if v is None else encode_value(v)) for k, v in records]
    groups = ConsumerGroups(ConsumerGroupLimits())
    for kb, vb in wire:
        key = decode_key(kb)
        groups.replay(key, None if vb is None else decode_value(key, vb))
    h = groups.get("g")
    assert h is not None
    assert (h.group_epoch, h.assignment_epoch, h.metadata_hash) == (g.group_epoch, g.assignment_epoch, g.metadata_hash)
    assert h.target == g.target and h.static_members == g.static_members
    for mid, m in g.members.items():
        n = h.members[mid]
        assert (n.member_epoch, n.previous_member_epoch, n.state, n.assigned, n.pending_revocation) == (
            m.member_epoch,
            m.previous_member_epoch,
            m.state,
            m.assigned,
            m.pending_revocation,
        )
        assert n.metadata_value() == m.metadata_value()
    assert h._owners == g._owners
    assert h.state is g.state


def test_tombstoned_group_is_forgotten_on_replay() -> None:
    groups = ConsumerGroups()
    g = groups.get_or_create("g")
    join(g, "a", ["t1"])
    g.heartbeat(HeartbeatRequest("a", -1), image(), 0)
    g.delete()
    fresh = ConsumerGroups()
    for k, v in g.take_pending():
        fresh.replay(k, v)
    assert fresh.get("g") is None and "g" not in fresh.groups


def test_record_keys_round_trip() -> None:
    for key in (CgKey(3, "g"), CgKey(5, "g", "m"), CgKey(6, "g"), CgKey(7, "g", "m"), CgKey(8, "g", "m")):
        assert decode_key(encode_key(key)) == key


# ---------------------------------------------------------------- assignors


def _spec(*topics: UUID) -> MemberSpec:
    return MemberSpec(frozenset(topics))


@pytest.mark.parametrize("members", [1, 2, 3, 4, 5, 7])
def test_uniform_balances_and_covers(members: int) -> None:
    t = uuid.uuid4()
    specs = {f"m{i}": _spec(t) for i in range(members)}
    out = uniform(specs, {t: 6}, {})
    sizes = sorted(len(v) for v in out.values())
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == 6
    assert set().union(*out.values()) == {(t, p) for p in range(6)}


def test_uniform_is_sticky() -> None:
    t = uuid.uuid4()
    specs = {"a": _spec(t), "b": _spec(t)}
    first = uniform(specs, {t: 6}, {})
    specs["c"] = _spec(t)
    second = uniform(specs, {t: 6}, {k: frozenset(v) for k, v in first.items()})
    moved = sum(len(first[m] - second[m]) for m in ("a", "b"))
    assert moved == 2 and all(len(v) == 2 for v in second.values())


def test_uniform_heterogeneous_subscriptions() -> None:
    t1, t2 = UUID(int=1), UUID(int=2)
    out = uniform({"a": _spec(t1), "b": _spec(t1, t2), "c": _spec(t2)}, {t1: 4, t2: 4}, {})
    assert all(tp[0] == t1 for tp in out["a"]) and all(tp[0] == t2 for tp in out["c"])
    sizes = sorted(len(v) for v in out.values())
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == 8


def test_range_co_partitions() -> None:
    t1, t2 = UUID(int=1), UUID(int=2)
    out = range_({"a": _spec(t1, t2), "b": _spec(t1, t2)}, {t1: 3, t2: 3}, {})
    assert out["a"] == {(t1, 0), (t1, 1), (t2, 0), (t2, 1)}
    assert out["b"] == {(t1, 2), (t2, 2)}
