"""The KIP-1071 Streams group state machine and its assignor, driven without sockets or clocks."""

from __future__ import annotations

from uuid import UUID

from kafkapy.coordinator.consumer_group import TopicImage, TopicMeta
from kafkapy.coordinator.streams_assignor import AssignorMember, assign
from kafkapy.coordinator.streams_group import (
    CopartitionGroup,
    HeartbeatRequest,
    HeartbeatResult,
    MemberState,
    Status,
    StreamsGroup,
    StreamsGroupLimits,
    StreamsGroupState,
    Subtopology,
    TaskSet,
    TopicConfig,
    Topology,
    configure,
)
from kafkapy.protocol.error_codes import ErrorCode as E

S = StreamsGroupState
REPART, CHANGELOG = "app-by-word-repartition", "app-counts-changelog"
# the word count: 0 reads `lines` and writes the repartition topic; 1 reads it and keeps a store
WORD_COUNT = Topology(
    0,
    (
        Subtopology("0", ("lines",), repartition_sink_topics=(REPART,)),
        Subtopology(
            "1",
            state_changelog_topics=(TopicConfig(CHANGELOG, configs=(("cleanup.policy", "compact"),)),),
            repartition_source_topics=(TopicConfig(REPART),),
        ),
    ),
)


def group(name: str = "app") -> StreamsGroup:
    return StreamsGroup(name, StreamsGroupLimits(initial_rebalance_delay_ms=0))


def image(lines: int = 3, internal: bool = True, **extra: int) -> TopicImage:
    topics = {"lines": lines, **extra}
    if internal:
        topics |= {REPART: lines, CHANGELOG: lines}
    return TopicImage.of(TopicMeta(n, UUID(int=i + 1), p) for i, (n, p) in enumerate(sorted(topics.items())))


def join(
    g: StreamsGroup, mid: str, *, img: TopicImage | None = None, topology: Topology = WORD_COUNT, process: str = ""
) -> HeartbeatResult:
    return g.heartbeat(
        HeartbeatRequest(mid, 0, rebalance_timeout_ms=30_000, topology=topology, active={}, standby={}, warmup={},
                         process_id=process or f"p-{mid}", client_id="c", client_host="/h"),
        img or image(),
        0,
    )  # fmt: skip


def beat(
    g: StreamsGroup, mid: str, epoch: int, active: dict[str, frozenset[int]] | None = None, now: int = 0
) -> HeartbeatResult:
    tasks = None if active is None else {}
    return g.heartbeat(HeartbeatRequest(mid, epoch, active=active, standby=tasks, warmup=tasks), image(), now)


def active(res: HeartbeatResult) -> set[tuple[str, int]]:
    assert res.tasks is not None
    return {(s, p) for s, ps in res.tasks.active.items() for p in ps}


# ---------------------------------------------------------------- topology


def test_configure_derives_repartition_and_changelog_partitions() -> None:
    c = configure(WORD_COUNT, image(lines=4, internal=False))
    assert [s for s, _ in c.statuses] == [Status.MISSING_INTERNAL_TOPICS]
    assert {(t.name, t.partitions) for t in c.missing_internal} == {(REPART, 4), (CHANGELOG, 4)}
    [changelog] = [t for t in c.missing_internal if t.name == CHANGELOG]
    assert dict(changelog.configs) == {"cleanup.policy": "compact"}  # created with the topology's configs
    ready = configure(WORD_COUNT, image(lines=4))
    assert ready.ready and {s: x.tasks for s, x in ready.subtopologies.items()} == {"0": 4, "1": 4}


def test_configure_reports_missing_sources_and_wrong_internal_partitions() -> None:
    c = configure(WORD_COUNT, TopicImage.of([]))
    assert c.statuses == [(Status.MISSING_SOURCE_TOPICS, "Source topics lines are missing.")]
    assert not c.missing_internal
    wrong = TopicImage.of(
        [TopicMeta("lines", UUID(int=1), 3), TopicMeta(REPART, UUID(int=2), 3), TopicMeta(CHANGELOG, UUID(int=3), 5)]
    )
    assert [s for s, _ in configure(WORD_COUNT, wrong).statuses] == [Status.INCORRECTLY_PARTITIONED_TOPICS]


def test_configure_copartition_groups() -> None:
    join_topology = Topology(0, (Subtopology("0", ("a", "b"), copartition_groups=(CopartitionGroup((0, 1)),)),))
    ok = TopicImage.of([TopicMeta("a", UUID(int=1), 2), TopicMeta("b", UUID(int=2), 2)])
    assert configure(join_topology, ok).ready
    bad = TopicImage.of([TopicMeta("a", UUID(int=1), 2), TopicMeta("b", UUID(int=2), 3)])
    [(status, detail)] = configure(join_topology, bad).statuses
    assert status is Status.INCORRECTLY_PARTITIONED_TOPICS and "a, b" in detail


# ---------------------------------------------------------------- the heartbeat


def test_first_member_gets_every_task_when_topics_exist() -> None:
    g = group()
    res = join(g, "m1")
    assert res.error == E.NONE and res.member_epoch == 1 and res.statuses == []
    assert active(res) == {("0", 0), ("0", 1), ("0", 2), ("1", 0), ("1", 1), ("1", 2)}
    assert g.state is S.STABLE and g.topology == WORD_COUNT


def test_missing_internal_topics_then_created() -> None:
    g = group()
    res = join(g, "m1", img=image(internal=False))
    assert [s for s, _ in res.statuses] == [Status.MISSING_INTERNAL_TOPICS]
    assert {t.name for t in res.create_topics} == {REPART, CHANGELOG}
    assert res.tasks == TaskSet() and g.state is S.NOT_READY
    res = beat(g, "m1", res.member_epoch)  # the topics exist now: a new epoch with tasks
    assert res.statuses == [] and res.member_epoch == 2 and len(active(res)) == 6


def test_a_new_group_delays_its_first_assignment() -> None:
    g = StreamsGroup("app")  # Kafka's default group.streams.initial.rebalance.delay.ms: 3 s
    res = join(g, "m1")
    assert res.member_epoch == 1 and res.tasks == TaskSet()
    assert res.statuses == [
        (Status.ASSIGNMENT_DELAYED, "Assignment delayed due to the configured initial rebalance delay.")
    ]
    assert g.next_deadline() == 3000
    g.tick(3000, image())  # the delay ends: a new group epoch, assigned at the next heartbeat
    assert g.group_epoch == 2 and g.assignment_epoch == 1
    res = beat(g, "m1", 1, {}, now=3500)
    assert res.statuses == [] and res.member_epoch == 2 and len(active(res)) == 6


def test_validation_errors() -> None:
    g = group()
    assert g.heartbeat(HeartbeatRequest("", 0), image(), 0).error == E.INVALID_REQUEST
    no_topology = HeartbeatRequest("m", 0, rebalance_timeout_ms=1, active={}, standby={}, warmup={}, process_id="p")
    assert g.heartbeat(no_topology, image(), 0).error == E.INVALID_REQUEST
    assert beat(g, "ghost", 3).error == E.UNKNOWN_MEMBER_ID
    half = HeartbeatRequest("ghost", 3, active={})  # tasks: all null or none
    assert g.heartbeat(half, image(), 0).error == E.INVALID_REQUEST
    join(g, "m1")
    assert beat(g, "m1", 7).error == E.FENCED_MEMBER_EPOCH


def test_topology_mismatch_at_the_same_epoch_and_stale_topology() -> None:
    g = group()
    join(g, "m1")
    other = Topology(0, (Subtopology("0", ("lines",)),))
    assert join(g, "m2", topology=other).error == E.STREAMS_INVALID_TOPOLOGY_EPOCH
    newer = Topology(1, WORD_COUNT.subtopologies)
    assert join(g, "m2", topology=newer).error == E.INVALID_REQUEST
    g2 = group("app2")
    join(g2, "m1", topology=newer)
    res = join(g2, "m2", topology=WORD_COUNT)
    assert res.error == E.NONE and [s for s, _ in res.statuses] == [Status.STALE_TOPOLOGY]


def test_second_member_waits_for_the_first_to_revoke() -> None:
    g = group()
    r1 = join(g, "m1")
    owned = r1.tasks.active if r1.tasks else {}
    r2 = join(g, "m2")
    assert r2.member_epoch == 2 and active(r2) == set()  # its tasks are still m1's
    assert g.members["m2"].current.state is MemberState.UNRELEASED_TASKS
    r1 = beat(g, "m1", 1, dict(owned))
    assert r1.member_epoch == 1 and g.members["m1"].current.state is MemberState.UNREVOKED_TASKS
    kept = active(r1)
    assert len(kept) == 3
    r1 = beat(g, "m1", 1, {s: frozenset(p for (t, p) in kept if t == s) for s in ("0", "1")})
    assert r1.member_epoch == 2 and g.members["m1"].current.state is MemberState.STABLE
    r2 = beat(g, "m2", 2, {})
    assert active(r2) | kept == {(s, p) for s in "01" for p in range(3)} and not active(r2) & kept
    assert g.state is S.STABLE


def test_leave_and_session_timeout_bump_the_epoch() -> None:
    g = StreamsGroup("app", StreamsGroupLimits(session_timeout_ms=1000, initial_rebalance_delay_ms=0))
    join(g, "m1")
    join(g, "m2")
    epoch = g.group_epoch
    assert g.heartbeat(HeartbeatRequest("m2", -1), image(), 0).member_epoch == -1
    assert set(g.members) == {"m1"} and g.group_epoch == epoch + 1
    g.tick(5000, image())
    assert not g.members and g.state is S.EMPTY and g.topology == WORD_COUNT


def test_commit_validation_uses_member_epochs() -> None:
    g = group()
    join(g, "m1")
    assert g.validate_commit("m1", 1) == E.NONE
    assert g.validate_commit("m1", 0) == E.STALE_MEMBER_EPOCH
    assert g.validate_commit("x", 1) == E.UNKNOWN_MEMBER_ID


def test_shutdown_request_reaches_every_member() -> None:
    g = group()
    join(g, "m1")
    join(g, "m2")
    g.heartbeat(HeartbeatRequest("m1", 1, shutdown_application=True), image(), 0)
    assert Status.SHUTDOWN_APPLICATION in [s for s, _ in beat(g, "m2", 2).statuses]


def test_records_replayed_rebuild_the_group() -> None:
    g = group()
    records = []
    join(g, "m1")
    records += g.take_pending()
    join(g, "m2")
    records += g.take_pending()
    copy = StreamsGroup("app")
    for key, value in records:
        copy.replay(key, value)
    assert copy.group_epoch == g.group_epoch and copy.assignment_epoch == g.assignment_epoch
    assert copy.target == g.target and copy.topology == g.topology
    assert {m: x.current for m, x in copy.members.items()} == {m: x.current for m, x in g.members.items()}


# ---------------------------------------------------------------- the assignor


def test_assignor_balances_and_sticks() -> None:
    tasks = {"0": 4, "1": 4}
    out = assign({"a": AssignorMember("pa"), "b": AssignorMember("pb")}, tasks, frozenset(), 0)
    assert len(out["a"].active) == len(out["b"].active) == 4
    prev_a = frozenset(out["a"].active)
    again = assign(
        {"a": AssignorMember("pa", prev_a), "b": AssignorMember("pb"), "c": AssignorMember("pc")}, tasks, frozenset(), 0
    )
    assert sorted(len(x.active) for x in again.values()) == [2, 3, 3]
    assert again["a"].active <= prev_a  # a keeps what it had, up to its share


def test_assignor_standbys_on_other_processes() -> None:
    members = {"a": AssignorMember("p1"), "b": AssignorMember("p1"), "c": AssignorMember("p2")}
    out = assign(members, {"0": 3, "1": 3}, frozenset({"1"}), 1)
    owner = {t: m for m, x in out.items() for t in x.active}
    standbys = [(t, m) for m, x in out.items() for t in x.standby]
    assert {t for t, _ in standbys} == {("1", 0), ("1", 1), ("1", 2)}  # stateless subtopology 0: none
    for t, m in standbys:
        assert members[m].process_id != members[owner[t]].process_id


# ---------------------------------------------------------------- records (Kafka's layouts)


def test_records_encode_and_decode_in_kafkas_layouts() -> None:
    from kafkapy.coordinator.streams_records import (
        decode_key,
        decode_value,
        encode_key,
        encode_value,
        is_streams_group_key,
    )

    g = group()
    join(g, "m1")
    g.heartbeat(
        HeartbeatRequest(
            "m2", 0, instance_id="i2", rack_id="r", rebalance_timeout_ms=1, topology=WORD_COUNT, active={},
            standby={}, warmup={}, process_id="p2", user_endpoint=("h", 8080), client_tags=(("zone", "a"),),
        ),
        image(),
        0,
    )  # fmt: skip
    beat(g, "m1", 1, dict(g.members["m1"].current.tasks.active))  # m1 revoking: pending revocation recorded
    records = g.take_pending()
    kinds = {k.kind for k, _ in records}
    assert len(kinds) == 6  # every record type
    copy = group()
    for key, value in records:
        data = encode_key(key)
        assert is_streams_group_key(data) and decode_key(data) == key
        if value is not None:
            assert decode_value(key, encode_value(value)) == value
        copy.replay(key, None if value is None else decode_value(key, encode_value(value)))
    assert copy.members["m2"].meta == g.members["m2"].meta and copy.topology == g.topology
    assert {m: x.current for m, x in copy.members.items()} == {m: x.current for m, x in g.members.items()}
    # the topology record's bytes as Kafka's StreamsGroupTopologyValue v0 lays them out (start)
    [(_, topo)] = [(k, v) for k, v in records if k.kind.name == "TOPOLOGY"]
    assert topo is not None
    data = encode_value(topo)
    assert (
        data[:2] == b"\x00\x00" and data[2:6] == b"\x00\x00\x00\x00" and data[6] == 3
    )  # version, epoch, 2 subtopologies
    assert encode_key(records[0][0])[:2] in (b"\x00\x11", b"\x00\x13", b"\x00\x17")  # types 17, 19, 23
