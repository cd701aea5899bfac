"""KIP-848 consumer groups with librdkafka (confluent-kafka, `group.protocol=consumer`).

Server-side assignors `uniform` and `range` (`group.remote.assignor`): three
members split a 6-partition topic and every record is consumed exactly once;
a member that leaves, or dies (SIGKILL, no more heartbeats), has its
partitions moved within the session timeout; committed offsets survive a
broker restart; the group shows up as a consumer group in ListGroups and
ConsumerGroupDescribe.

`python -m interop.test_groups_consumer_protocol BOOTSTRAP GROUP TOPIC ASSIGNOR`
runs one member in a process of its own (printing its assignment), so a test
can SIGKILL it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interop.groups_driver import Member, Spec

confluent_kafka = pytest.importorskip("confluent_kafka")

from kafkapy.testing import BrokerFactory, BrokerProcess

SESSION_MS = 3000
SETTINGS = {
    "group.consumer.session.timeout.ms": SESSION_MS,
    "group.consumer.heartbeat.interval.ms": 200,
    "group.initial.rebalance.delay.ms": 0,
}
REPO = Path(__file__).resolve().parent.parent
_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{time.monotonic_ns() % 1_000_000}"


class Kip848:
    """A librdkafka consumer with the consumer group protocol (the broker assigns)."""

    name = "confluent-kafka"

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.c: Any = None
        self.parts: set[int] = set()
        self.assigns = 0

    def open(self) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.spec.bootstrap,
            "group.id": self.spec.group,
            "group.protocol": "consumer",
            "group.remote.assignor": self.spec.assignor,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": self.spec.auto_commit,
            "topic.metadata.refresh.interval.ms": 1000,
        }
        if self.spec.instance_id:
            conf["group.instance.id"] = self.spec.instance_id
        self.c = confluent_kafka.Consumer(conf)
        self.c.subscribe([self.spec.topic], on_assign=self._assigned)

    def _assigned(self, _consumer: Any, _parts: Any) -> None:
        self.assigns += 1

    def poll(self, timeout: float) -> list[tuple[int, int, bytes | None]]:
        msgs = self.c.consume(500, timeout)
        self.parts = {tp.partition for tp in self.c.assignment()}
        return [(m.partition(), m.offset(), m.value()) for m in msgs if not m.error()]

    def assignment(self) -> set[int]:
        return self.parts

    def commit(self) -> None:
        try:
            self.c.commit(asynchronous=False)
        except confluent_kafka.KafkaException as e:
            if "NO_OFFSET" not in str(e):
                raise

    def close(self) -> None:
        self.c.close()


@pytest.fixture(scope="module")
def broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    factory = BrokerFactory(tmp_path_factory.mktemp("kip848"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def broker(broker_factory: BrokerFactory) -> BrokerProcess:
    return broker_factory(settings=SETTINGS)


def create_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def produce(bootstrap: str, topic: str, n: int, start: int = 0, partitions: int = 6) -> None:
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(topic, str(i).encode(), partition=i % partitions)
    assert p.flush(10) == 0


def wait_until(cond: Callable[[], bool], timeout: float, what: str, members: list[Member] | tuple[()] = ()) -> float:
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
    return all(sets) and sum(map(len, sets)) == partitions and set().union(*sets) == set(range(partitions))


def start(spec: Spec, name: str) -> Member:
    return Member(name, Kip848(spec)).start()


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_members_split_partitions_exactly_once(broker: BrokerProcess, assignor: str) -> None:
    topic, group = unique("kip848-split"), unique("g")
    create_topic(broker.bootstrap, topic)
    spec = Spec(broker.bootstrap, group, topic, assignor)
    members = [start(spec, f"m{i}") for i in range(3)]
    try:
        # Reconciliation moves partitions one revocation at a time: wait for the balanced target.
        wait_until(
            lambda: split_ok(members) and sorted(len(m.assignment()) for m in members) == [2, 2, 2],
            20,
            "three members to split six partitions two each",
            members,
        )
        produce(broker.bootstrap, topic, 300)
        wait_until(lambda: sum(len(m.records()) for m in members) >= 300, 20, "all records", members)
        time.sleep(0.3)
        got = [g for m in members for g in m.records()]
        keys = [(g.partition, g.offset) for g in got]
        assert len(keys) == len(set(keys)) == 300, "every record exactly once across members"
        assert sorted(int(g.value or b"-1") for g in got) == list(range(300))
        for m in members:
            assert {g.partition for g in m.records()} <= m.assignment()
        if assignor == "range":  # contiguous ranges by member id
            assert sorted(sorted(m.assignment()) for m in members) == [[0, 1], [2, 3], [4, 5]]
        _check_admin_view(broker.bootstrap, group, assignor)
        _check_cli(broker.bootstrap, group, topic)
    finally:
        for m in members:
            m.stop()


def _check_admin_view(bootstrap: str, group: str, assignor: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    mine = [g for g in listed.valid if g.group_id == group]
    assert mine, "ListGroups shows the group"
    gtype = getattr(mine[0], "type", None)
    if gtype is not None:
        assert "CONSUMER" in str(gtype).upper()
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    assert len(desc.members) == 3
    assert sorted(p.partition for m in desc.members for p in m.assignment.topic_partitions) == list(range(6))
    if hasattr(desc, "type"):
        assert "CONSUMER" in str(desc.type).upper()


def _check_cli(bootstrap: str, group: str, topic: str) -> None:
    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "kafkapy", "groups", *args, "-b", bootstrap],
            check=False,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert f"{group}\t" in cli("list")
    members = cli("describe", group, "--members")
    assert members.count(f"{topic}(") == 3, members


def test_partitions_move_when_a_member_leaves_or_dies(broker: BrokerProcess) -> None:
    topic, group = unique("kip848-move"), unique("g")
    create_topic(broker.bootstrap, topic)
    victim = subprocess.Popen(
        [sys.executable, "-m", "interop.test_groups_consumer_protocol", broker.bootstrap, group, topic, "uniform"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    spec = Spec(broker.bootstrap, group, topic, "uniform")
    members = [start(spec, f"m{i}") for i in range(2)]
    try:
        wait_until(lambda: [len(m.assignment()) for m in members] == [2, 2], 20, "a three-way split", members)
        leaver, stayer = members
        leaver.stop()  # close() leaves the group (member epoch -1)
        took = wait_until(lambda: len(stayer.assignment()) == 3, 10, "the leaver's partitions to move", [stayer])
        assert took < 3
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        took = wait_until(
            lambda: stayer.assignment() == set(range(6)),
            SESSION_MS / 1000 + 10,
            "the dead member's partitions to move",
            [stayer],
        )
        assert took < SESSION_MS / 1000 + 3
        produce(broker.bootstrap, topic, 60)
        wait_until(lambda: len(stayer.records()) >= 60, 15, "the survivor to consume everything", [stayer])
    finally:
        for m in members:
            m.stop()
        if victim.poll() is None:
            victim.kill()
            victim.wait(5)


def test_committed_offsets_survive_broker_restart(kafka_broker_factory: BrokerFactory) -> None:
    broker = kafka_broker_factory(settings=SETTINGS)
    topic, group = "kip848-resume", unique("g")
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 120)
    m = start(Spec(broker.bootstrap, group, topic, "uniform"), "first")
    try:
        wait_until(lambda: len(m.records()) >= 120, 20, "the first 120 records", [m])
        m.commit()
    finally:
        m.stop()
    broker.restart()
    produce(broker.bootstrap, topic, 60, start=120)
    m = start(Spec(broker.bootstrap, group, topic, "range"), "second")
    try:
        wait_until(lambda: len(m.records()) >= 60, 20, "the records after the commit", [m])
        time.sleep(0.5)
        assert sorted(int(g.value or b"-1") for g in m.records()) == list(range(120, 180))
    finally:
        m.stop()


def test_classic_and_consumer_groups_do_not_mix(broker: BrokerProcess) -> None:
    topic, group = unique("kip848-mix"), unique("g")
    create_topic(broker.bootstrap, topic)
    member = start(Spec(broker.bootstrap, group, topic, "uniform"), "new")
    classic: Any = None
    try:
        wait_until(lambda: member.assignment() == set(range(6)), 20, "the consumer-protocol member", [member])
        classic = confluent_kafka.Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "session.timeout.ms": 6000,
            }
        )
        classic.subscribe([topic])
        errors: list[Any] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not errors:
            msg = classic.poll(0.2)
            if msg is not None and msg.error():
                errors.append(msg.error())
        assert errors and errors[0].code() == confluent_kafka.KafkaError.INCONSISTENT_GROUP_PROTOCOL
        assert member.assignment() == set(range(6))
    finally:
        if classic is not None:
            classic.close()
        member.stop()


def main(argv: list[str]) -> int:
    bootstrap, group, topic, assignor = argv[:4]
    m = Member("sub", Kip848(Spec(bootstrap, group, topic, assignor))).start()
    last: set[int] | None = None
    while True:
        time.sleep(0.05)
        parts = m.assignment()
        if parts != last:
            print("assigned", ",".join(map(str, sorted(parts))), flush=True)
            last = parts
        if m.error is not None:
            print("error", m.error, flush=True)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
