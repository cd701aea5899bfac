"""Transactions with real clients against a real broker process (issue 5).

confluent-kafka: commit and abort, read_committed sees only committed
records while read_uncommitted sees all; consume-transform-produce with
send_offsets_to_transaction loses and duplicates nothing when the
producer process is SIGKILLed mid-transaction and restarted with the same
transactional.id; a broker SIGKILLed mid-transaction: after the restart,
read_committed output is exactly what the producer saw committed.
kafkajs: transactions with commit, abort and sendOffsets.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from interop._common import BrokerProcess, unique_topic

ck = pytest.importorskip("confluent_kafka")

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "interop" / "node"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str, timeout_s: float = 30.0) -> list[bytes]:
    """Every record up to the end (the LSO under read_committed), assigned from the start."""
    c = ck.Consumer({
        "bootstrap.servers": bootstrap, "group.id": unique_topic("reader"), "isolation.level": isolation,
        "enable.partition.eof": True, "enable.auto.commit": False,
    })  # fmt: skip
    try:
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
        out: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError(str(m.error()))
            out.append(m.value())
        assert len(eof) == partitions, f"no EOF on {set(range(partitions)) - eof}"
        return out
    finally:
        c.close()


def txn_producer(bootstrap: str, txn_id: str) -> ck.Producer:
    p = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 2})
    p.init_transactions(30)
    return p


# ---------------------------------------------------------------- commit / abort


@pytest.mark.compat("transactions", client="confluent")
def test_confluent_commit_abort_read_committed(broker: BrokerProcess) -> None:
    topic = unique_topic("txn")
    create_topic(broker.bootstrap, topic, 3)
    p = txn_producer(broker.bootstrap, unique_topic("tid"))
    committed: list[bytes] = []
    everything: list[bytes] = []
    for t in range(6):
        p.begin_transaction()
        vals = [f"t{t}-{i}".encode() for i in range(50)]
        for i, v in enumerate(vals):
            p.produce(topic, v, partition=i % 3)
        everything += vals
        if t % 3 == 1:
            p.flush(10)
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
            committed += vals
    # An open transaction at the end: read_committed stops before it.
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"open-{i}".encode(), partition=i % 3)
    p.flush(10)
    assert sorted(read_all(broker.bootstrap, topic, 3, "read_committed")) == sorted(committed)
    assert sorted(read_all(broker.bootstrap, topic, 3, "read_uncommitted")) == sorted(
        everything + [f"open-{i}".encode() for i in range(10)]
    )
    p.commit_transaction(30)
    got = read_all(broker.bootstrap, topic, 3, "read_committed")
    assert sorted(got) == sorted(committed + [f"open-{i}".encode() for i in range(10)])


@pytest.mark.compat("transactions", client="confluent")
def test_confluent_zombie_fenced(broker: BrokerProcess) -> None:
    topic = unique_topic("txn-z")
    create_topic(broker.bootstrap, topic, 1)
    tid = unique_topic("tid-z")
    old = txn_producer(broker.bootstrap, tid)
    old.begin_transaction()
    old.produce(topic, b"zombie", partition=0)
    old.flush(10)
    new = txn_producer(broker.bootstrap, tid)  # fences `old` and aborts its transaction
    new.begin_transaction()
    new.produce(topic, b"fresh", partition=0)
    new.commit_transaction(30)
    with pytest.raises(ck.KafkaException) as info:
        old.commit_transaction(10)
    assert info.value.args[0].fatal() or info.value.args[0].code() in (
        ck.KafkaError._FENCED, ck.KafkaError.PRODUCER_FENCED, ck.KafkaError.INVALID_PRODUCER_EPOCH,
    )  # fmt: skip
    assert read_all(broker.bootstrap, topic, 1, "read_committed") == [b"fresh"]


# ---------------------------------------------------------------- consume-transform-produce


def _driver(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "interop.txn_driver", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_line(stream: IO[str], prefix: str, predicate: object, timeout_s: float) -> str:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.startswith(prefix) and predicate(line):
            return line
    raise AssertionError(f"no {prefix!r} line in {timeout_s}s")


@pytest.mark.compat("eos-producer-kill", client="confluent")
def test_confluent_consume_transform_produce_survives_producer_sigkill(broker: BrokerProcess) -> None:
    src, dst = unique_topic("eos-in"), unique_topic("eos-out")
    create_topic(broker.bootstrap, src, 3)
    create_topic(broker.bootstrap, dst, 3)
    n = 3000
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(src, b"%d" % i, partition=i % 3)
    assert p.flush(20) == 0
    group, tid = unique_topic("eos-g"), unique_topic("eos-tid")
    first = _driver("ctp", broker.bootstrap, src, dst, group, tid, "--pause", "0.2", "--idle", "30")
    try:
        assert first.stdout is not None
        _wait_line(first.stdout, "COMMITTED", lambda line: int(line.split()[1]) >= 300, 60)
        time.sleep(0.1)  # into the next transaction's pause: records written, not committed
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    uncommitted = read_all(broker.bootstrap, dst, 3, "read_uncommitted")
    # ends once it has committed up to the end of src (the --idle wait is the fallback)
    second = _driver("ctp", broker.bootstrap, src, dst, group, tid, "--idle", "4", "--until-end")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, out + err
    got = read_all(broker.bootstrap, dst, 3, "read_committed")
    expected = sorted(b"%d:t" % i for i in range(n))
    assert len(got) == len(set(got)), "duplicates under read_committed"
    assert sorted(got) == expected
    everything = read_all(broker.bootstrap, dst, 3, "read_uncommitted")
    assert len(everything) >= len(uncommitted) >= 300  # the killed transaction's records stay, aborted


# ---------------------------------------------------------------- broker SIGKILL


@pytest.fixture
def killable(kafka_broker_factory) -> Iterator[object]:  # type: ignore[no-untyped-def]
    yield kafka_broker_factory(settings={"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"})


@pytest.mark.compat("txn-broker-kill", client="confluent")
def test_confluent_broker_sigkill_mid_transaction(killable) -> None:  # type: ignore[no-untyped-def]
    b = killable
    topic = unique_topic("txn-k")
    create_topic(b.bootstrap, topic, 2)
    proc = _driver("produce", b.bootstrap, topic, unique_topic("tid-k"), "8", "100", "--pause", "1.0")
    outcome: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        _wait_line(proc.stdout, "COMMITTED", lambda line: line.split()[1] == "2", 60)
        _wait_line(proc.stdout, "BEGIN", lambda line: line.split()[1] == "3", 30)
        b.restart(kill=True)  # transaction 3 is open: records written, no EndTxn yet
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    for line in ["COMMITTED 0", "COMMITTED 1", "COMMITTED 2", *out.splitlines()]:
        word, _, t = line.partition(" ")
        if word in ("COMMITTED", "ABORTED"):
            outcome[int(t)] = word
    committed = sorted(f"{t}-{i}".encode() for t, w in outcome.items() if w == "COMMITTED" for i in range(100))
    deadline = time.monotonic() + 40  # an abandoned transaction is aborted once it times out
    got: list[bytes] = []
    while time.monotonic() < deadline:
        got = read_all(b.bootstrap, topic, 2, "read_committed")
        if sorted(got) == committed:
            break
        time.sleep(1)
    assert sorted(got) == committed, f"driver: {out!r} {err[-2000:]!r}"
    assert len(got) == len(set(got))


# ---------------------------------------------------------------- kafkajs


@pytest.mark.compat("transactions", client="kafkajs")
def test_kafkajs_transactions(broker: BrokerProcess) -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.skip("node or kafkajs not installed")
    topic = unique_topic("kjs-txn")
    create_topic(broker.bootstrap, topic, 2)
    txns = [
        {"values": [f"c0-{i}" for i in range(20)], "commit": True},
        {"values": [f"a1-{i}" for i in range(20)], "commit": False},
        {"values": [f"c2-{i}" for i in range(20)], "commit": True},
    ]
    group = unique_topic("kjs-g")
    req = {
        "bootstrap": broker.bootstrap, "topic": topic, "transactionalId": unique_topic("kjs-tid"),
        "transactions": txns, "offsets": {"group": group, "topic": topic, "partition": 0, "offset": 7},
    }  # fmt: skip
    out = subprocess.run(
        ["node", str(NODE_DIR / "transactions.js")],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    committed = sorted(v.encode() for t in txns if t["commit"] for v in t["values"])  # type: ignore[attr-defined]
    assert sorted(read_all(broker.bootstrap, topic, 2, "read_committed")) == committed
    assert len(read_all(broker.bootstrap, topic, 2, "read_uncommitted")) == 60
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        got = c.committed([ck.TopicPartition(topic, 0)], timeout=10)
        assert got[0].offset == 7  # committed by the last committed transaction's sendOffsets
    finally:
        c.close()


# ---------------------------------------------------------------- kafka-python


@pytest.mark.compat("transactions", client="kafka-python")
def test_kafka_python_transactions(broker: BrokerProcess) -> None:
    kafka = pytest.importorskip("kafka")
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    topic = unique_topic("kp-txn")
    create_topic(broker.bootstrap, topic, 2)
    group = unique_topic("kp-g")
    p = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique_topic("kp-tid"))
    try:
        p.init_transactions()
        committed: list[bytes] = []
        for t in range(4):
            p.begin_transaction()
            vals = [f"t{t}-{i}".encode() for i in range(25)]
            for i, v in enumerate(vals):
                p.send(topic, v, partition=i % 2)
            if t == 3:
                p.send_offsets_to_transaction({KTopicPartition(topic, 1): OffsetAndMetadata(5, "", -1)}, group)
            if t == 1:
                p.flush()
                p.abort_transaction()
            else:
                p.commit_transaction()
                committed += vals
    finally:
        p.close()
    assert sorted(read_all(broker.bootstrap, topic, 2, "read_committed")) == sorted(committed)
    assert len(read_all(broker.bootstrap, topic, 2, "read_uncommitted")) == 100
    c = kafka.KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        assert c.committed(KTopicPartition(topic, 1)) == 5
        c.assign([KTopicPartition(topic, 0)])
        expected = sorted(v for i, v in enumerate(committed) if i % 25 % 2 == 0)  # partition 0's share
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < len(expected):
            for msgs in c.poll(500).values():
                got += [m.value for m in msgs]
        assert sorted(got) == expected
    finally:
        c.close()
