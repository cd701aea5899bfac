"""Kafka's own MirrorMaker 2 (dedicated mode, interop/mirror.py) between two
independent kafkapy brokers, `us` and `eu`, replicating us -> eu.

One MM2 process serves the whole module (it takes ~10 s to start); the tests
run in file order and each uses its own topics and groups. Clients are
confluent-kafka (librdkafka), so the records MM2 reads and writes come from a
client other than MM2's own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic  # type: ignore[attr-defined]

from interop.adapters.java import available
from interop.mirror import MirrorMakerProcess, start_mirror_maker
from kafkapy.testing import BrokerProcess

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_mirrormaker.py: {_missing} (scripts/test installs and builds it)")

T = TypeVar("T")
BASE_TS = 1_700_000_000_000


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 40.0, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except KafkaException as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


Client = str | Mapping[str, Any]  # a bootstrap address, or a whole client config (e.g. SASL_SSL)


def client_conf(client: Client, **extra: Any) -> dict[str, Any]:
    """The librdkafka config for `client`, with `extra` settings under it."""
    base = {"bootstrap.servers": client} if isinstance(client, str) else dict(client)
    return {**extra, **base}


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def topics(bootstrap: str) -> dict[str, int]:
    md = admin(bootstrap).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def create_topic(bootstrap: str, name: str, partitions: int, config: dict[str, str] | None = None) -> None:
    client = admin(bootstrap)
    for future in client.create_topics([NewTopic(name, partitions, 1, config=config or {})]).values():
        future.result(15)


Record = tuple[int, bytes | None, bytes, list[tuple[str, bytes]], int]


def produce(client: Client, topic: str, records: list[Record]) -> None:
    """records: (partition, key, value, headers, timestamp)."""
    producer = Producer(client_conf(client, acks="all", **{"enable.idempotence": False}))
    errors: list[Any] = []
    for partition, key, value, headers, ts in records:
        producer.produce(
            topic,
            value=value,
            key=key,
            partition=partition,
            headers=list(headers),
            timestamp=ts,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0, "produce did not complete"
    assert not errors, errors


def read_all(client: Client, topic: str, partitions: int, expect: int, timeout: float = 40.0) -> list[Any]:
    """Every record of `topic` from offset 0 until `expect` were read (or timeout)."""
    consumer = Consumer(
        client_conf(
            client,
            **{
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
        )
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                continue
            out.append(msg)
    finally:
        consumer.close()
    return out


def committed(client: Client, group: str, topic: str, partition: int) -> int:
    consumer = Consumer(client_conf(client, **{"group.id": group, "enable.auto.commit": False}))
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def start_kafkapy(root: Path, name: str) -> BrokerProcess:
    broker = BrokerProcess(
        data_dir=root / name / "data",
        log_path=root / name / "broker.log",
        settings={"group.initial.rebalance.delay.ms": "0"},
    )
    broker.log_path.parent.mkdir(parents=True, exist_ok=True)
    return broker.start()


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrokerProcess]]:
    root = tmp_path_factory.mktemp("regions")
    brokers = {"us": start_kafkapy(root, "us"), "eu": start_kafkapy(root, "eu")}
    try:
        yield brokers
    finally:
        for broker in brokers.values():
            broker.stop()


@pytest.fixture(scope="module")
def mm2(regions: dict[str, BrokerProcess], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorMakerProcess]:
    # the topics exist before MM2 starts, except `grow` and the restart topics, created later
    create_topic(regions["us"].bootstrap, "orders", 3, {"retention.ms": "987654321", "cleanup.policy": "delete"})
    create_topic(regions["us"].bootstrap, "failover", 1)
    mm = start_mirror_maker(
        tmp_path_factory.mktemp("mm2"),
        {alias: b.bootstrap for alias, b in regions.items()},
        [("us", "eu")],
        topics="orders|failover|grow.*|restart.*",
        groups="app.*",
    )
    try:
        yield mm
    finally:
        code = mm.stop()
        errors = mm.errors()
        if code not in (0, 143, None) or errors:
            print(f"\nMirrorMaker ({mm.log_path}) exited with {code}; errors:\n" + "\n".join(errors[-10:]))


def _record(i: int, partitions: int) -> Record:
    return (
        i % partitions,
        f"key-{i}".encode(),
        f"value-{i}".encode(),
        [("seq", str(i).encode()), ("region", b"us")],
        BASE_TS + i,
    )


def test_records_arrive_in_order_with_keys_headers_timestamps(
    regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess
) -> None:
    us, eu = regions["us"].bootstrap, regions["eu"].bootstrap
    sent = [_record(i, 3) for i in range(60)]
    produce(us, "orders", sent)
    wait_for("us.orders on eu with 3 partitions", lambda: topics(eu).get("us.orders") == 3)
    got = read_all(eu, "us.orders", 3, len(sent))
    assert len(got) == len(sent), f"{len(got)} of {len(sent)} records replicated"
    for partition in range(3):
        want = [r for r in sent if r[0] == partition]
        have = [m for m in got if m.partition() == partition]
        assert [m.offset() for m in have] == list(range(len(want)))
        assert [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in have] == [
            (k, v, h, ts) for _, k, v, h, ts in want
        ]


def test_topic_configs_synced(regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess) -> None:
    eu = regions["eu"].bootstrap

    def retention() -> str | None:
        client = admin(eu)
        [future] = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "us.orders")]).values()
        value = future.result(10)["retention.ms"].value
        return value if value == "987654321" else None

    assert wait_for("retention.ms of us.orders synced to eu", retention, timeout=30) == "987654321"


def test_new_partitions_synced(regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess) -> None:
    us, eu = regions["us"].bootstrap, regions["eu"].bootstrap
    create_topic(us, "grow", 1)
    produce(us, "grow", [_record(0, 1)])
    wait_for("us.grow on eu", lambda: topics(eu).get("us.grow") == 1)
    client = admin(us)
    for future in client.create_partitions([NewPartitions("grow", 4)]).values():
        future.result(15)
    wait_for("us.grow grown to 4 partitions on eu", lambda: topics(eu).get("us.grow") == 4, timeout=40)
    produce(us, "grow", [(3, b"k", b"in-new-partition", [], BASE_TS + 7)])
    got = wait_for(
        "the record of the new partition on eu",
        lambda: [m for m in read_all(eu, "us.grow", 4, 2, timeout=5) if m.partition() == 3],
    )
    assert [(m.offset(), m.value(), m.timestamp()[1]) for m in got] == [(0, b"in-new-partition", BASE_TS + 7)]


def test_heartbeats_and_checkpoints_topics(regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess) -> None:
    eu = regions["eu"].bootstrap

    def internal_topics() -> dict[str, int] | None:
        found = topics(eu)
        return found if {"heartbeats", "us.heartbeats", "us.checkpoints.internal"} <= set(found) else None

    on_eu = wait_for("heartbeats, us.heartbeats and us.checkpoints.internal on eu", internal_topics)
    assert "mm2-offset-syncs.eu.internal" in topics(regions["us"].bootstrap)
    # MirrorHeartbeatConnector keeps emitting on eu (emit.heartbeats.interval.seconds=1)
    beats = read_all(eu, "heartbeats", on_eu["heartbeats"], 2, timeout=20)
    assert len(beats) >= 2, "fewer than 2 heartbeats on eu"
    # so far (no broker restarted yet) MM2 logged no error: no request it sent
    # to kafkapy failed (DescribeAcls for the topic ACL sync included)
    assert mm2.errors() == []


def consume_group(client: Client, group: str, topic: str, count: int, commit: bool, timeout: float = 60) -> list[bytes]:
    consumer = Consumer(
        client_conf(client, **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout  # an Apache Kafka group on a loaded machine can take long to form
    try:
        while len(seen) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                seen.append(msg.value() or b"")
                if commit and len(seen) == count:
                    consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return seen


def test_group_offsets_translated_for_failover(regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess) -> None:
    us, eu = regions["us"].bootstrap, regions["eu"].bootstrap
    values = [f"f-{i}".encode() for i in range(150)]
    produce(us, "failover", [(0, f"k{i}".encode(), v, [], BASE_TS + i) for i, v in enumerate(values[:100])])
    wait_for("us.failover on eu fully replicated", lambda: len(read_all(eu, "us.failover", 1, 100, timeout=5)) == 100)

    # 1. the application is behind (60 of 100 consumed and committed on us):
    # the translated offset never skips a record, and resuming on eu loses none
    assert consume_group(us, "app-failover", "failover", 60, commit=True) == values[:60]
    assert committed(us, "app-failover", "failover", 0) == 60
    translated = wait_for(
        "app-failover's offset on us.failover translated on eu",
        lambda: ((o := committed(eu, "app-failover", "us.failover", 0)) > 0 and o) or None,
        timeout=40,
    )
    assert 0 < translated <= 60, f"translated offset {translated} (committed 60 on us)"

    # 2. the application catches up (100 of 100 committed on us) and the us
    # region goes away: eu's group offset follows within the checkpoint
    # interval, and the consumer failing over re-reads nothing it had processed
    assert consume_group(us, "app-failover", "failover", 40, commit=True) == values[60:100]
    assert committed(us, "app-failover", "failover", 0) == 100
    translated = wait_for(
        "app-failover's offset on eu following the commit of 100 on us",
        lambda: ((o := committed(eu, "app-failover", "us.failover", 0)) >= 100 and o) or None,
        timeout=40,
    )
    assert translated == 100
    produce(us, "failover", [(0, f"k{i}".encode(), values[i], [], BASE_TS + i) for i in range(100, 150)])
    wait_for("the 50 new records on eu", lambda: len(read_all(eu, "us.failover", 1, 150, timeout=5)) == 150)
    assert consume_group(eu, "app-failover", "us.failover", 50, commit=False) == values[100:150]


def _in_order_once(values: list[bytes]) -> list[bytes]:
    """The values without re-deliveries (MM2 is at-least-once in dedicated mode)."""
    seen: set[bytes] = set()
    out = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


@pytest.mark.parametrize("region,kill", [("us", True), ("eu", False)], ids=["kill-restart-us", "stop-restart-eu"])
def test_survives_broker_restart(
    regions: dict[str, BrokerProcess], mm2: MirrorMakerProcess, region: str, kill: bool
) -> None:
    us_broker = regions["us"]
    eu = regions["eu"].bootstrap
    topic = f"restart-{region}"
    create_topic(us_broker.bootstrap, topic, 1)
    before: list[Record] = [(0, None, f"{region}-before-{i}".encode(), [], BASE_TS + i) for i in range(20)]
    produce(us_broker.bootstrap, topic, before)
    wait_for(
        f"us.{topic} replicated before the restart",
        lambda: len(read_all(eu, f"us.{topic}", 1, len(before), timeout=5)) == len(before),
        timeout=40,
    )

    regions[region].restart(kill=kill)
    after: list[Record] = [(0, None, f"{region}-after-{i}".encode(), [], BASE_TS + 100 + i) for i in range(20)]
    produce(us_broker.bootstrap, topic, after)
    want = [r[2] for r in before + after]

    def replicated() -> list[bytes] | None:
        values = _in_order_once([m.value() for m in read_all(eu, f"us.{topic}", 1, 60, timeout=4)])
        return values if len(values) >= len(want) else None

    values = wait_for(f"us.{topic} replicated after the {region} restart", replicated, timeout=60)
    assert values == want
    assert mm2.running, "MirrorMaker exited"
