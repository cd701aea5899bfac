"""Kafka's own tools against a kafkapy broker with two log dirs (JBOD): kafka-log-dirs --describe
(org.apache.kafka.tools.LogDirsCommand: DescribeLogDirs through the Java admin client) shows each
partition in its dir, kafka-reassign-partitions (ReassignPartitionsCommand) with `log_dirs` moves a
partition to the other dir (AlterPartitionReassignments, then AlterReplicaLogDirs; --verify polls
DescribeLogDirs until the move is done) while records are produced to it, and confluent-kafka reads
every record back afterwards."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop.adapters.java import TOOL_JVM, available, java_command
from kafkapy.testing import BrokerProcess, free_port

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_jbod_kafka_tools.py: {_missing} (scripts/test installs and builds it)")

TOPIC = "jbod-tools"
RECORDS = 2000
NODE = 0  # broker.id default


@pytest.fixture(scope="module")
def jbod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, list[str]]]:
    root = tmp_path_factory.mktemp("jbod-tools")
    dirs = [str(root / "a"), str(root / "b")]
    b = BrokerProcess(root / "a", root / "broker.log", port=free_port(), settings={"log.dirs": ",".join(dirs)})
    b.start()
    try:
        yield b, dirs
    finally:
        b.stop()


def tool(main: str, bootstrap: str, *args: str) -> str:
    cmd = java_command(main, "--bootstrap-server", bootstrap, *args, jvm_args=TOOL_JVM)
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def log_dirs(bootstrap: str) -> dict[str, list[dict[str, Any]]]:
    """kafka-log-dirs --describe: log dir -> its partitions of TOPIC."""
    out = tool("org.apache.kafka.tools.LogDirsCommand", bootstrap, "--describe", "--topic-list", TOPIC)
    doc = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    (broker,) = doc["brokers"]
    return {d["logDir"]: d["partitions"] for d in broker["logDirs"] if d["error"] is None}


def _produce(bootstrap: str, start: int, count: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(start, start + count):
        p.produce(TOPIC, value=b"r%06d" % i, partition=0)
    assert p.flush(30) == 0


def test_describe_and_move_with_kafka_tools(jbod: tuple[BrokerProcess, list[str]], tmp_path: Path) -> None:
    broker, dirs = jbod
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    _produce(bootstrap, 0, RECORDS)

    before = log_dirs(bootstrap)
    assert set(before) == set(dirs)  # both dirs, absolute paths as configured
    where = {p["partition"]: d for d, parts in before.items() for p in parts}
    assert sorted(where) == [f"{TOPIC}-0", f"{TOPIC}-1"] and where[f"{TOPIC}-0"] != where[f"{TOPIC}-1"]
    home = where[f"{TOPIC}-0"]
    other = next(d for d in dirs if d != home)
    size = next(p["size"] for p in before[home] if p["partition"] == f"{TOPIC}-0")
    assert size > RECORDS * 6

    plan = tmp_path / "move.json"
    plan.write_text(
        json.dumps(
            {
                "version": 1,
                "partitions": [
                    {"topic": TOPIC, "partition": 0, "replicas": [NODE], "log_dirs": [other]},
                ],
            }
        )
    )
    reassign = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
    executed = tool(reassign, bootstrap, "--execute", "--reassignment-json-file", str(plan))
    assert "Successfully started partition reassignment" in executed or "Successfully started" in executed
    _produce(bootstrap, RECORDS, 100)  # produced while it moves (or just after): served all along
    deadline = time.monotonic() + 60
    while True:
        verified = tool(reassign, bootstrap, "--verify", "--reassignment-json-file", str(plan))
        if f"Reassignment of replica {TOPIC}-0-{NODE} completed successfully" in verified:
            break
        assert time.monotonic() < deadline, verified
        time.sleep(0.5)

    after = log_dirs(bootstrap)
    moved = {p["partition"]: d for d, parts in after.items() for p in parts if not p["isFuture"]}
    assert moved == {f"{TOPIC}-0": other, f"{TOPIC}-1": where[f"{TOPIC}-1"]}
    assert (Path(other) / f"{TOPIC}-0").is_dir() and not (Path(home) / f"{TOPIC}-0").exists()

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "jbod-tools-check", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < RECORDS + 100 and time.monotonic() < deadline:
        for m in c.consume(500, 1.0):
            assert m.error() is None, m.error()
            got.append(m.value())
    c.close()
    assert got == [b"r%06d" % i for i in range(RECORDS + 100)]
