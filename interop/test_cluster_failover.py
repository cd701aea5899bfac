"""Interop clients through a leader failover on a 3-broker kafkapy cluster.

Each client keeps producing (acks=all, idempotent) to a partition with three
replicas while the partition's leader is SIGKILLed; it must carry on with the
new leader by itself. Then the same client reads the partition back from the
new leader, the old one still down: every acknowledged record is there
exactly once, at the offset it was acknowledged with. One cluster (etcd + three `kafkapy broker` processes) serves the module;
the killed broker is restarted after each client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop._common import Out
from kafkapy.local_cluster import LocalCluster, wait_until

SETTINGS = {
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
}
BEFORE = 100  # acknowledgements before the kill
AFTER = 100  # ... and after it


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("failover"), 3, dict(SETTINGS)).start()
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Acks:
    """What the producer was told: value -> offset, plus failed sends."""

    acked: dict[bytes, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # monotonic time of each acknowledgement
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, value: bytes, offset: int) -> None:
        with self.lock:
            self.acked[value] = offset
            self.times.append(time.monotonic())

    def failed(self, why: object) -> None:
        with self.lock:
            self.errors.append(str(why))

    def count(self) -> int:
        return len(self.acked)


ProduceLoop = Callable[[str, str, Acks, threading.Event], None]
Reader = Callable[[str, str, int], list[tuple[int, bytes]]]


# ---------------------------------------------------------------- librdkafka


def rdkafka_produce(bootstrap: str, topic: str, acks: Acks, stop: threading.Event) -> None:
    def cb(err: Any, msg: Any) -> None:
        (acks.failed(err) if err is not None else acks.ok(msg.value(), msg.offset()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
                  "socket.timeout.ms": 5000, "request.timeout.ms": 4000, "topic.metadata.refresh.interval.ms": 1000})  # fmt: skip
    i = 0
    while not stop.is_set():
        try:
            p.produce(topic, b"rdkafka-%d" % i, partition=0, on_delivery=cb)
            i += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0.002)
    p.flush(60)


def rdkafka_read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "failover-check",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.offset() or 0, m.value() or b""))
    finally:
        c.close()
    return out


# ---------------------------------------------------------------- kafka-python


def kafka_python_produce(bootstrap: str, topic: str, acks: Acks, stop: threading.Event) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True, linger_ms=2,
                      request_timeout_ms=4000, metadata_max_age_ms=1000, retry_backoff_ms=100,
                      delivery_timeout_ms=60000, max_block_ms=30000)  # fmt: skip
    i = 0
    try:
        while not stop.is_set():
            batch = [b"kafka-python-%d" % (i + k) for k in range(20)]
            i += len(batch)
            futures = [(v, p.send(topic, v, partition=0)) for v in batch]
            for v, f in futures:
                try:
                    acks.ok(v, f.get(timeout=60).offset)
                except Exception as e:
                    acks.failed(repr(e))
    finally:
        p.close(timeout=10)


def kafka_python_read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                out.extend((r.offset, r.value) for r in records)
    finally:
        c.close()
    return out


# ---------------------------------------------------------------- aiokafka


def aiokafka_produce(bootstrap: str, topic: str, acks: Acks, stop: threading.Event) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2,
                             request_timeout_ms=4000, metadata_max_age_ms=1000, retry_backoff_ms=100)  # fmt: skip
        await p.start()
        i = 0
        try:
            while not stop.is_set():
                batch = [b"aiokafka-%d" % (i + k) for k in range(20)]
                i += len(batch)
                futures = [await p.send(topic, v, partition=0) for v in batch]
                for v, res in zip(
                    batch,
                    await asyncio.gather(*futures, return_exceptions=True),
                    strict=True,
                ):
                    (acks.failed(repr(res)) if isinstance(res, BaseException) else acks.ok(v, res.offset))
        finally:
            await p.stop()

    asyncio.run(run())


def aiokafka_read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATP

    async def run() -> list[tuple[int, bytes]]:
        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await c.start()
        out: list[tuple[int, bytes]] = []
        try:
            c.assign([ATP(topic, 0)])
            await c.seek_to_beginning()
            deadline = time.monotonic() + 30
            while len(out) < count and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=500)).values():
                    out.extend((r.offset, r.value) for r in records)
        finally:
            await c.stop()
        return out

    return asyncio.run(run())


# ---------------------------------------------------------------- kafkajs


def kafkajs_produce(bootstrap: str, topic: str, acks: Acks, stop: threading.Event) -> None:
    from interop.adapters.kafkajs import NODE, NODE_DIR

    proc = subprocess.Popen([NODE, str(NODE_DIR / "failover_produce.js")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=NODE_DIR)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    prefix = "kafkajs-"
    proc.stdin.write(
        json.dumps(
            {
                "bootstrap": bootstrap,
                "topic": topic,
                "partition": 0,
                "prefix": prefix,
                "chunk": 10,
            }
        ).encode()
        + b"\n"
    )
    proc.stdin.flush()

    def stopper() -> None:
        stop.wait()
        try:
            proc.stdin.write(b"stop\n")  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass

    threading.Thread(target=stopper, daemon=True).start()
    try:
        for raw in proc.stdout:
            line = json.loads(raw)
            if line.get("done"):
                break
            if "error" in line:
                acks.failed(line["error"])
                if line.get("fatal"):
                    break
                continue
            for k in range(line["n"]):
                acks.ok(f"{prefix}{line['first'] + k}".encode(), line["base"] + k)
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def kafkajs_read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    from interop.adapters.kafkajs import KafkajsClient

    records = KafkajsClient().consume(bootstrap.split(",", maxsplit=1)[0], topic, {0: 0}, count, timeout_s=30)
    return [(r.offset, r.value or b"") for r in records]


# ---------------------------------------------------------------- Java clients


def java_produce(bootstrap: str, topic: str, acks: Acks, stop: threading.Event) -> None:
    """Batches of 50 through the Java driver, each by an idempotent KafkaProducer."""
    from interop.adapters import java

    config = {"acks": "all", "enable.idempotence": "true", "request.timeout.ms": "4000", "metadata.max.age.ms": "1000",
              "retry.backoff.ms": "100", "delivery.timeout.ms": "60000"}  # fmt: skip
    i = 0
    while not stop.is_set():
        batch = [b"java-%d" % (i + k) for k in range(50)]
        i += len(batch)
        records = [java.out_json(Out(None, v, partition=0)) for v in batch]
        try:
            res = java.call(
                "produce",
                bootstrap,
                timeout_s=90,
                topic=topic,
                records=records,
                config=config,
            )
        except Exception as e:
            acks.failed(repr(e))
            continue
        for v, off in zip(batch, res["offsets"], strict=True):
            (acks.ok(v, off[1]) if off is not None else acks.failed(f"{v!r} not acknowledged"))
        acks.errors.extend(str(e) for e in res["errors"])


def java_read(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    from interop.adapters.java import JavaClient

    return [(r.offset, r.value or b"") for r in JavaClient().consume(bootstrap, topic, {0: 0}, count, timeout_s=30)]


def _java_missing() -> str | None:
    from interop.adapters import java

    return java.available()


def _kafkajs_missing() -> str | None:
    from interop.adapters import kafkajs

    return kafkajs.available()


CLIENTS: dict[str, tuple[ProduceLoop, Reader, Callable[[], str | None] | None]] = {
    "librdkafka": (rdkafka_produce, rdkafka_read, None),
    "kafka-python": (kafka_python_produce, kafka_python_read, None),
    "aiokafka": (aiokafka_produce, aiokafka_read, None),
    "kafkajs": (kafkajs_produce, kafkajs_read, _kafkajs_missing),
    "java": (java_produce, java_read, _java_missing),
}


# ---------------------------------------------------------------- the scenario


_ADMINS: dict[str, AdminClient] = {}


def _admin(cluster: LocalCluster) -> AdminClient:
    """One per cluster for the session: a client freed with a request in flight is destroyed
    on librdkafka's own thread when it completes, which aborts the process."""
    key = str(cluster.root)
    if key not in _ADMINS:
        bootstrap = ",".join(b.bootstrap for b in cluster.brokers.values())
        _ADMINS[key] = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    return _ADMINS[key]


def _partition(cluster: LocalCluster, topic: str) -> Any:
    a = _admin(cluster)
    return a.list_topics(topic, timeout=10).topics[topic].partitions[0]


def _ready(cluster: LocalCluster, topic: str) -> None:
    for b in cluster.brokers.values():
        if not b.running:
            b.start()
    a = _admin(cluster)
    a.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(15)
    wait_until(
        lambda: (p := _partition(cluster, topic)).leader >= 0 and len(p.isrs) == 3,
        timeout=60,
        what="full ISR",
    )


@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_produces_and_consumes_through_a_leader_failover(cluster: LocalCluster, client: str) -> None:
    produce, read, missing = CLIENTS[client]
    why = missing() if missing is not None else None
    if why:
        pytest.skip(why)
    topic = f"failover-{client}"
    _ready(cluster, topic)
    bootstrap = cluster.bootstrap  # all three brokers, the one about to die included
    acks, stop = Acks(), threading.Event()
    worker = threading.Thread(target=produce, args=(bootstrap, topic, acks, stop), daemon=True)
    worker.start()
    try:
        wait_until(
            lambda: acks.count() >= BEFORE,
            timeout=30,
            what=f"{client}: first acknowledgements",
        )
        leader = _partition(cluster, topic).leader
        killed_at = time.monotonic()
        before = acks.count()
        cluster.brokers[leader].kill()
        wait_until(
            lambda: acks.count() >= before + AFTER,
            timeout=40,
            what=f"{client}: acknowledgements after the failover",
        )
        assert _partition(cluster, topic).leader not in (-1, leader)
    finally:
        stop.set()
        worker.join(90)
    assert not worker.is_alive()
    times = sorted(acks.times)
    stall = max(b - a for a, b in itertools.pairwise(times) if b > killed_at)
    print(f"\n{client}: {acks.count()} acknowledged; longest pause in acknowledgements after the kill {stall:.2f}s")
    assert not acks.errors, acks.errors[:5]
    high = max(acks.acked.values()) + 1
    try:
        got = read(cluster.bootstrap, topic, high)  # from the new leader, the old one still down
    finally:
        cluster.brokers[leader].start()  # back for the next client; it catches up as a follower
    counts = Counter(v for _, v in got)
    assert not [v for v, n in counts.items() if n > 1], "duplicates in the log"
    at = {v: off for off, v in got}
    missing_acked = [v for v in acks.acked if v not in at]
    assert not missing_acked, f"{len(missing_acked)} acknowledged records lost, e.g. {missing_acked[:3]}"
    assert {v: at[v] for v in acks.acked} == acks.acked  # each where the producer was told
