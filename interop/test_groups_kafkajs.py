"""kafkajs consumer groups (classic protocol) against a real broker process.

Each member is `node interop/node/group_member.js` (kafkajs's own Consumer),
printing JSON lines: two members split a 6-partition topic and every record
is consumed exactly once; committed offsets survive a broker restart.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")

from kafkapy.testing import BrokerFactory

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "group_member.js"
SETTINGS = {"group.initial.rebalance.delay.ms": 300, "group.min.session.timeout.ms": 1000}

if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
    pytest.skip("node or kafkajs is not installed (npm install in interop/node)", allow_module_level=True)


class NodeMember:
    """A kafkajs group member in a node process; its JSON lines are read by a thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT), bootstrap, group, topic, name],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.records: list[tuple[int, int, str | None]] = []
        self.assignment: set[int] = set()
        self.errors: list[str] = []
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = ev.get("event")
            if kind == "record":
                self.records.append((ev["partition"], ev["offset"], ev["value"]))
            elif kind == "assigned":
                self.assignment = set(ev["partitions"])
            elif kind == "error":
                self.errors.append(ev["error"])
            self.events.put(ev)

    def _send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev.get("event") == kind:
                return ev
        raise AssertionError(f"{self.name}: no {kind!r} within {timeout}s; errors {self.errors}")

    def commit(self) -> None:
        self._send("commit")
        self.wait_event("committed", 10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("stop")
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def create_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def produce(bootstrap: str, topic: str, n: int, start: int = 0, partitions: int = 6) -> None:
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(topic, str(i).encode(), partition=i % partitions)
    assert p.flush(10) == 0


def wait_until(cond: Callable[[], bool], timeout: float, what: str, members: list[NodeMember]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if m.errors:
                raise AssertionError(f"{m.name} failed: {m.errors[0]}")
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; assignments {[sorted(m.assignment) for m in members]}")


def test_two_members_split_and_resume_after_restart(kafka_broker_factory: BrokerFactory) -> None:
    broker = kafka_broker_factory(settings=SETTINGS)
    topic, group = "kjs-groups", "kjs-group"
    create_topic(broker.bootstrap, topic)
    members = [NodeMember(broker.bootstrap, group, topic, f"m{i}") for i in range(2)]
    try:

        def split() -> bool:
            a, b = (m.assignment for m in members)
            return len(a) == len(b) == 3 and a | b == set(range(6))

        wait_until(split, 30, "two kafkajs members to split six partitions", members)
        produce(broker.bootstrap, topic, 120)
        wait_until(lambda: sum(len(m.records) for m in members) >= 120, 30, "all records", members)
        time.sleep(0.5)
        got = [r for m in members for r in m.records]
        assert len({(p, o) for p, o, _ in got}) == len(got) == 120, "every record exactly once"
        assert sorted(int(v or -1) for _, _, v in got) == list(range(120))
        for m in members:
            assert {p for p, _, _ in m.records} <= m.assignment
            m.commit()
    finally:
        for m in members:
            m.stop()
    broker.restart()
    produce(broker.bootstrap, topic, 30, start=120)
    resumed = NodeMember(broker.bootstrap, group, topic, "again")
    try:
        wait_until(lambda: len(resumed.records) >= 30, 30, "the records after the commit", [resumed])
        time.sleep(0.5)
        assert sorted(int(v or -1) for _, _, v in resumed.records) == list(range(120, 150))
    finally:
        resumed.stop()
