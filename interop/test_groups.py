"""Consumer groups with real clients against a real broker process.

For confluent-kafka, kafka-python and aiokafka: three members split a
6-partition topic with every assignor the client offers, each record
consumed exactly once; a member that leaves or dies (SIGKILL) has its
partitions moved within the session timeout; committed offsets survive a
broker restart; a static member rejoins without a rebalance.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interop._common import BrokerProcess, start_broker
from interop.groups_driver import CLIENTS, SESSION_MS, Member, Spec

confluent_kafka = pytest.importorskip("confluent_kafka")

SETTINGS = {"group.initial.rebalance.delay.ms": "300", "group.min.session.timeout.ms": "1000"}
REPO = Path(__file__).resolve().parent.parent
CASES = [(c, a) for c, cls in CLIENTS.items() for a in cls.assignors]


@pytest.fixture(scope="module")
def gbroker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(tmp_path_factory.mktemp("groups") / "data", SETTINGS)
    try:
        yield b
    finally:
        b.stop()


_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{time.monotonic_ns() % 1_000_000}"


def create_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep it alive until the result arrives
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def produce(bootstrap: str, topic: str, n: int, start: int = 0, partitions: int = 6) -> None:
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(topic, str(i).encode(), partition=i % partitions)
    assert p.flush(10) == 0


def wait_until(cond: Callable[[], bool], timeout: float, what: str, members: list[Member] = ()) -> float:  # type: ignore[assignment]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for m in members:
            if m.error is not None:
                raise AssertionError(f"{m.name} failed: {m.error!r}")
        if cond():
            return time.monotonic() - t0
        time.sleep(0.02)
    state = {m.name: sorted(m.assignment()) for m in members}
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; assignments {state}")


def split_ok(members: list[Member], partitions: int = 6) -> bool:
    sets = [m.assignment() for m in members]
    union = set().union(*sets)
    return all(sets) and sum(map(len, sets)) == partitions and union == set(range(partitions))


def start(client: str, spec: Spec, name: str) -> Member:
    return Member(name, CLIENTS[client](spec)).start()  # type: ignore[arg-type]


def stop_all(members: list[Member]) -> None:
    for m in members:
        m.stop()


@pytest.mark.parametrize(("client", "assignor"), CASES)
def test_members_split_partitions_exactly_once(gbroker: BrokerProcess, client: str, assignor: str) -> None:
    topic, group = unique("split"), unique("g")
    create_topic(gbroker.bootstrap, topic)
    spec = Spec(gbroker.bootstrap, group, topic, assignor)
    members = [start(client, spec, f"m{i}") for i in range(3)]
    try:
        wait_until(lambda: split_ok(members), 30, "three members to split six partitions", members)
        produce(gbroker.bootstrap, topic, 300)
        wait_until(lambda: sum(len(m.records()) for m in members) >= 300, 30, "all records", members)
        time.sleep(0.3)
        got = [g for m in members for g in m.records()]
        keys = [(g.partition, g.offset) for g in got]
        assert len(keys) == len(set(keys)) == 300, "every record exactly once across members"
        assert sorted(int(g.value or b"-1") for g in got) == list(range(300))
        for m in members:  # each record came from a partition its consumer owned
            assert {g.partition for g in m.records()} <= m.assignment()
    finally:
        stop_all(members)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_partitions_move_when_a_member_leaves_or_dies(gbroker: BrokerProcess, client: str) -> None:
    topic, group = unique("move"), unique("g")
    create_topic(gbroker.bootstrap, topic)
    assignor = CLIENTS[client].assignors[0]
    spec = Spec(gbroker.bootstrap, group, topic, assignor)
    victim = subprocess.Popen(
        [sys.executable, "-m", "interop.groups_driver", client, gbroker.bootstrap, group, topic, assignor],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    members = [start(client, spec, f"m{i}") for i in range(2)]
    try:
        # The subprocess holds the two partitions the threads do not.
        wait_until(lambda: [len(m.assignment()) for m in members] == [2, 2], 30, "a three-way split", members)
        leaver, stayer = members
        leaver.stop()  # a clean close sends LeaveGroup
        wait_until(lambda: len(stayer.assignment()) == 3, 15, "the leaver's partitions to move", [stayer])
        victim.send_signal(signal.SIGKILL)  # no LeaveGroup, no more heartbeats
        victim.wait(5)
        took = wait_until(
            lambda: stayer.assignment() == set(range(6)),
            SESSION_MS / 1000 + 10,
            "the dead member's partitions to move",
            [stayer],
        )
        assert took < SESSION_MS / 1000 + 5
        produce(gbroker.bootstrap, topic, 60)
        wait_until(lambda: len(stayer.records()) >= 60, 20, "the survivor to consume everything", [stayer])
    finally:
        stop_all(members)
        if victim.poll() is None:
            victim.kill()
            victim.wait(5)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_committed_offsets_survive_broker_restart(tmp_path: Path, client: str) -> None:
    data = tmp_path / "data"
    broker = start_broker(data, SETTINGS)
    topic, group = "resume", unique("g")
    try:
        create_topic(broker.bootstrap, topic)
        produce(broker.bootstrap, topic, 120)
        m = start(client, Spec(broker.bootstrap, group, topic, CLIENTS[client].assignors[0]), "first")
        wait_until(lambda: len(m.records()) >= 120, 30, "the first 120 records", [m])
        m.commit()
        m.stop()
    finally:
        broker.stop()
    broker = start_broker(data, SETTINGS)
    try:
        produce(broker.bootstrap, topic, 60, start=120)
        m = start(client, Spec(broker.bootstrap, group, topic, CLIENTS[client].assignors[0]), "second")
        wait_until(lambda: len(m.records()) >= 60, 30, "the records after the commit", [m])
        time.sleep(0.5)
        values = sorted(int(g.value or b"-1") for g in m.records())
        assert values == list(range(120, 180)), "resumed exactly at the committed offsets"
        m.stop()
    finally:
        broker.stop()


def _settle(members: list[Member], quiet_s: float = 2.0, limit_s: float = 20.0) -> None:
    """Wait until no member has seen a new assignment for `quiet_s`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        seen = [m.impl.assigns for m in members]  # type: ignore[attr-defined]
        time.sleep(quiet_s)
        if seen == [m.impl.assigns for m in members]:  # type: ignore[attr-defined]
            return


@pytest.mark.parametrize("client", list(CLIENTS))
def test_static_member_rejoins_without_rebalance(gbroker: BrokerProcess, client: str) -> None:
    topic, group = unique("static"), unique("g")
    create_topic(gbroker.bootstrap, topic)
    assignor = CLIENTS[client].assignors[0]
    a = start(client, Spec(gbroker.bootstrap, group, topic, assignor, "inst-a"), "a")
    # a joins alone first, so it leads the group: the member restarted below is
    # a follower. (A restarted static *leader* gets the leader's role again and,
    # in kafka-python, may reassign before it has the topic's metadata and then
    # rejoin; that is the client's choice, not a broker rebalance.)
    wait_until(lambda: len(a.assignment()) == 6, 30, "a alone owns every partition", [a])
    b = start(client, Spec(gbroker.bootstrap, group, topic, assignor, "inst-b"), "b")
    b2: Member | None = None
    try:
        wait_until(lambda: split_ok([a, b]), 30, "two static members", [a, b])
        # A kafka-python leader that assigned before its metadata knew the new
        # topic rejoins once it does: let the group settle before measuring.
        _settle([a, b])
        before_a, before_b = a.assignment(), b.assignment()
        a_assigns = a.impl.assigns  # type: ignore[attr-defined]
        b.stop()  # a static member sends no LeaveGroup on close
        b2 = start(client, Spec(gbroker.bootstrap, group, topic, assignor, "inst-b"), "b2")
        wait_until(
            lambda: b2.assignment() == before_b, SESSION_MS / 1000 + 10, "the static member's partitions", [a, b2]
        )
        time.sleep(0.5)
        assert a.assignment() == before_a
        assert a.impl.assigns == a_assigns, "the other member saw no rebalance"  # type: ignore[attr-defined]
    finally:
        stop_all([a, b] + ([b2] if b2 else []))


def _cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkapy", "groups", *args, "-b", bootstrap],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_groups_cli_describe_reset_delete(gbroker: BrokerProcess) -> None:
    topic, group = unique("cli"), unique("g")
    create_topic(gbroker.bootstrap, topic)
    produce(gbroker.bootstrap, topic, 60)
    m = start("confluent-kafka", Spec(gbroker.bootstrap, group, topic, "range"), "m")
    try:
        wait_until(lambda: len(m.records()) >= 60, 30, "60 records", [m])
        m.commit()
        produce(gbroker.bootstrap, topic, 6)
        out = _cli(gbroker.bootstrap, "describe", group)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines() if line.startswith(group)]
        assert len(rows) == 6 and all(
            r[3] == "10" and r[4] == "11" and r[5] == "1" and r[7] == "/127.0.0.1" for r in rows
        )
        members = _cli(gbroker.bootstrap, "describe", group, "--members").stdout
        assert f"{topic}(0,1,2,3,4,5)" in members
        busy = _cli(gbroker.bootstrap, "reset-offsets", group, "--topic", topic, "--to-earliest")
        assert busy.returncode == 1 and "active members" in busy.stderr
        assert _cli(gbroker.bootstrap, "delete", group).returncode == 1  # NON_EMPTY_GROUP
    finally:
        m.stop()
    assert f"{group}\tEmpty" in _cli(gbroker.bootstrap, "list", "--state", "empty").stdout
    dry = _cli(gbroker.bootstrap, "reset-offsets", group, "--topic", f"{topic}:0,1", "--to-offset", "3", "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert _cli(gbroker.bootstrap, "reset-offsets", group, "--topic", topic, "--to-earliest").returncode == 0
    rows = [
        line.split()
        for line in _cli(gbroker.bootstrap, "describe", group).stdout.splitlines()
        if line.startswith(group)
    ]
    assert [r[3] for r in rows] == ["0"] * 6 and [r[5] for r in rows] == ["11"] * 6
    assert _cli(gbroker.bootstrap, "delete", group).returncode == 0
    assert group not in _cli(gbroker.bootstrap, "list").stdout
