"""Clients speaking the protocol of Kafka 0.8-0.10 (before 0.11's v2 record batches) against kafkapy.

They are today's clients pinned to old protocol versions, the way they talk to an old broker:

- librdkafka (confluent-kafka) with `api.version.request=false` and `broker.version.fallback`
  0.8.2.2 (Produce v0, Fetch v0, ListOffsets v0, Metadata v0) or 0.9.0.1 (Produce v1, Fetch v1);
  both read magic 0 messages. Values >= 0.10 make librdkafka ask ApiVersions, so it would not
  pick an old Fetch.
- kafka-python with `api_version` (0, 8, 2) (Fetch v0), (0, 9) (Fetch v1), (0, 10, 0) (Produce v2,
  Fetch v2: magic 1 with timestamps, ListOffsets v0) and (0, 10, 1) (Fetch v3, ListOffsets v1).
- kcat with `-X api.version.request=false -X broker.version.fallback=0.9.0.1`.

They read topics written by a modern producer too (gzip, snappy, lz4 batches, committed and
aborted transactions, headers): kafkapy down-converts as Kafka 3.x did. Aborted records are
returned (Fetch v0-3 has no read_committed); transaction markers never are.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from interop._common import BrokerProcess, unique_topic
from interop.adapters.kcat import KCAT

TS = 1_700_000_000_000
NO_TS = -1


@dataclass(frozen=True, slots=True)
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # -1: none (magic 0)


@dataclass(frozen=True, slots=True)
class OldClient:
    name: str
    magic: int  # the message format its fetch version reads
    codecs: tuple[str, ...] = ("gzip", "snappy", "lz4")  # it can read

    def produce(self, bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
        raise NotImplementedError

    def consume(self, bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Rec]:
        raise NotImplementedError

    def watermarks(self, bootstrap: str, topic: str) -> tuple[int, int]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Rdkafka(OldClient):
    fallback: str = "0.9.0.1"

    def conf(self, bootstrap: str) -> dict[str, object]:
        return {
            "bootstrap.servers": bootstrap,
            "api.version.request": False,
            "broker.version.fallback": self.fallback,
            "log_level": 3,  # the deprecation warnings of those two settings
        }

    def produce(self, bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
        p = Producer({**self.conf(bootstrap), "linger.ms": 5})
        errors: list[object] = []
        for key, value, ts in records:
            p.produce(topic, key=key, value=value, partition=0, timestamp=ts, on_delivery=lambda e, m: errors.append(e))
        assert p.flush(30) == 0
        assert errors == [None] * len(records)

    def consumer(self, bootstrap: str, **extra: object) -> Consumer:
        return Consumer(
            {**self.conf(bootstrap), "group.id": unique_topic("old-g"), "enable.auto.commit": False, **extra}
        )

    def consume(self, bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Rec]:
        c = self.consumer(bootstrap)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        try:
            return _poll_rdkafka(c, count, timeout_s)
        finally:
            c.close()

    def watermarks(self, bootstrap: str, topic: str) -> tuple[int, int]:
        c = self.consumer(bootstrap)
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
            return int(low), int(high)
        finally:
            c.close()


def _poll_rdkafka(c: Consumer, count: int, timeout_s: float) -> list[Rec]:
    out: list[Rec] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {m.error()}")
        ts_type, ts = m.timestamp()
        out.append(Rec(m.offset(), m.key(), m.value(), ts if ts_type != 0 else NO_TS))
    return out


@dataclass(frozen=True, slots=True)
class KafkaPython(OldClient):
    api_version: tuple[int, ...] = (0, 10, 0)

    def produce(self, bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
        p = KafkaProducer(bootstrap_servers=bootstrap, api_version=self.api_version, linger_ms=5)
        try:
            futures = [p.send(topic, key=k, value=v, partition=0, timestamp_ms=ts) for k, v, ts in records]
            for f in futures:
                f.get(timeout=30)
        finally:
            p.close()

    def consumer(self, bootstrap: str) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            api_version=self.api_version,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    def consume(self, bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Rec]:
        c = self.consumer(bootstrap)
        try:
            tp = KpTopicPartition(topic, 0)
            c.assign([tp])
            c.seek_to_beginning(tp)
            out: list[Rec] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for msgs in c.poll(500).values():
                    out += [
                        Rec(m.offset, m.key, m.value, m.timestamp if m.timestamp is not None else NO_TS) for m in msgs
                    ]
            return out
        finally:
            c.close()

    def watermarks(self, bootstrap: str, topic: str) -> tuple[int, int]:
        c = self.consumer(bootstrap)
        try:
            tp = KpTopicPartition(topic, 0)
            return int(c.beginning_offsets([tp])[tp]), int(c.end_offsets([tp])[tp])
        finally:
            c.close()


ALL_CODECS = ("gzip", "snappy", "lz4")
# kafka-python reads magic-0 LZ4 (the 0.8/0.9 frame checksum) only with the xxhash package,
# which the test environment lacks; librdkafka reads it here
NO_LZ4 = ("gzip", "snappy")
OLD_CLIENTS = [
    Rdkafka("librdkafka-0.8.2", 0, ALL_CODECS, "0.8.2.2"),
    Rdkafka("librdkafka-0.9.0", 0, ALL_CODECS, "0.9.0.1"),
    KafkaPython("kafka-python-0.8.2", 0, NO_LZ4, (0, 8, 2)),
    KafkaPython("kafka-python-0.9", 0, NO_LZ4, (0, 9)),
    KafkaPython("kafka-python-0.10.0", 1, ALL_CODECS, (0, 10, 0)),
    KafkaPython("kafka-python-0.10.1", 1, ALL_CODECS, (0, 10, 1)),
]
IDS = [c.name for c in OLD_CLIENTS]


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=10)
    fs[topic].result(timeout=20)


def _modern_produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]], **conf: object) -> list[Rec]:
    """Produce in one batch with a v2 client; returns the records with their offsets."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "acks": "all", **conf})
    got: list[Rec] = []

    def dr(err: object, msg: object) -> None:
        assert err is None, err
        got.append(Rec(msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))  # type: ignore[attr-defined]

    for key, value, ts in records:
        p.produce(topic, key=key, value=value, partition=0, timestamp=ts, headers=[("h", b"x")], on_delivery=dr)
    assert p.flush(30) == 0
    return sorted(got, key=lambda r: r.offset)


def _txn(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]], commit: bool) -> list[Rec]:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("old-txn"), "linger.ms": 5})
    got: list[Rec] = []

    def dr(err: object, msg: object) -> None:
        assert err is None, err
        got.append(Rec(msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))  # type: ignore[attr-defined]

    p.init_transactions(30)
    p.begin_transaction()
    for key, value, ts in records:
        p.produce(topic, key=key, value=value, partition=0, timestamp=ts, on_delivery=dr)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    return sorted(got, key=lambda r: r.offset)


def _recs(first: int, n: int, tag: str) -> list[tuple[bytes, bytes, int]]:
    # compressible values: librdkafka sends a batch uncompressed when compressing does not shrink it
    return [(f"{tag}-k{i}".encode(), f"{tag}-v{i}-".encode() + b"x" * 200, TS + first + i) for i in range(n)]


def _expect(recs: list[Rec], magic: int) -> list[Rec]:
    return [Rec(r.offset, r.key, r.value, r.timestamp if magic == 1 else NO_TS) for r in recs]


ModernTopic = tuple[str, list[Rec]]


def _write_modern(bs: str, codecs: tuple[str, ...]) -> ModernTopic:
    topic = unique_topic("old-modern")
    _create(bs, topic)
    written: list[Rec] = []
    written += _modern_produce(bs, topic, _recs(0, 5, "plain"))
    for i, codec in enumerate(codecs):
        written += _modern_produce(bs, topic, _recs(10 * (i + 1), 5, codec), **{"compression.type": codec})
    written += _txn(bs, topic, _recs(40, 3, "committed"), commit=True)
    written += _txn(bs, topic, _recs(50, 3, "aborted"), commit=False)
    written += _modern_produce(bs, topic, _recs(60, 2, "after"))
    offsets = [r.offset for r in written]
    assert len(set(offsets)) == len(offsets) and offsets[-1] == len(written) + 1  # two markers
    return topic, written


@pytest.fixture(scope="module")
def modern_topics(broker: BrokerProcess) -> Callable[[tuple[str, ...]], ModernTopic]:
    """Topics written by v2 clients: plain and compressed batches (one per codec given), a
    committed and an aborted transaction (their markers take an offset each), then plain
    records again. One topic per codec set, written once."""
    made: dict[tuple[str, ...], ModernTopic] = {}

    def get(codecs: tuple[str, ...]) -> ModernTopic:
        if codecs not in made:
            made[codecs] = _write_modern(broker.bootstrap, codecs)
        return made[codecs]

    return get


@pytest.mark.parametrize("client", OLD_CLIENTS, ids=IDS)
def test_old_client_produces_and_consumes(broker: BrokerProcess, client: OldClient) -> None:
    topic = unique_topic("old-own")
    _create(broker.bootstrap, topic)
    records = _recs(0, 20, "own")
    client.produce(broker.bootstrap, topic, records)
    got = client.consume(broker.bootstrap, topic, len(records))
    # Produce v0-1 messages carry no timestamp: kafkapy stores them as Kafka does (-1 or the
    # broker's time), and a magic 1 reader sees that; only magic 1 producers' times are checked
    assert [(r.offset, r.key, r.value) for r in got] == [(i, k, v) for i, (k, v, _ts) in enumerate(records)]
    if client.magic == 1:
        assert [r.timestamp for r in got] == [ts for _k, _v, ts in records]
    assert client.watermarks(broker.bootstrap, topic) == (0, 20)


@pytest.mark.parametrize("client", OLD_CLIENTS, ids=IDS)
def test_old_consumer_reads_a_modern_topic(
    broker: BrokerProcess, modern_topics: Callable[[tuple[str, ...]], ModernTopic], client: OldClient
) -> None:
    topic, written = modern_topics(client.codecs)
    got = client.consume(broker.bootstrap, topic, len(written))
    assert got == _expect(written, client.magic)
    low, high = client.watermarks(broker.bootstrap, topic)
    assert (low, high) == (0, written[-1].offset + 1)


def test_kcat_old_protocol(broker: BrokerProcess, modern_topics: Callable[[tuple[str, ...]], ModernTopic]) -> None:
    old = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0.1", "-X", "log_level=3"]
    topic, written = modern_topics(ALL_CODECS)
    out = _kcat(broker.bootstrap, [*old, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o %k %s\\n"])
    assert out.splitlines() == [f"{r.offset} {r.key.decode()} {r.value.decode()}" for r in written if r.key and r.value]
    own = unique_topic("old-kcat")
    _create(broker.bootstrap, own)
    _kcat(broker.bootstrap, [*old, "-P", "-t", own, "-p", "0", "-K:"], b"a:1\nb:2\nc:3\n")
    out = _kcat(broker.bootstrap, [*old, "-C", "-t", own, "-o", "beginning", "-e", "-f", "%o %k %s\\n"])
    assert out.splitlines() == ["0 a 1", "1 b 2", "2 c 3"]


def _kcat(bootstrap: str, args: list[str], stdin: bytes | None = None) -> str:
    proc = subprocess.run([KCAT, "-b", bootstrap, *args], input=stdin, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-800:]
    return proc.stdout.decode()


def test_old_consumer_starts_at_the_end_and_sees_new_records(broker: BrokerProcess) -> None:
    """OFFSET_END: librdkafka asks ListOffsets v0 for the latest offset (max_num_offsets 1)."""
    client = Rdkafka("librdkafka-0.9.0", 0, ALL_CODECS, "0.9.0.1")
    topic = unique_topic("old-latest")
    _create(broker.bootstrap, topic)
    _modern_produce(broker.bootstrap, topic, _recs(0, 4, "before"))
    c = client.consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert _poll_rdkafka(c, 1, 2.0) == []
        new = _modern_produce(broker.bootstrap, topic, _recs(10, 3, "new"))
        assert _poll_rdkafka(c, 3, 20.0) == _expect(new, 0)
    finally:
        c.close()


@pytest.mark.parametrize("fallback", ["0.9.0.1"])
def test_old_group_consumer_commits_and_resumes(broker: BrokerProcess, fallback: str) -> None:
    """The 0.9 group protocol (JoinGroup/SyncGroup v0, OffsetCommit v2, OffsetFetch v1) with Fetch v1."""
    client = Rdkafka("librdkafka-0.9.0", 0, ALL_CODECS, fallback)
    topic = unique_topic("old-group")
    group = unique_topic("old-group-g")
    _create(broker.bootstrap, topic)
    written = _modern_produce(broker.bootstrap, topic, _recs(0, 6, "g"))

    def member() -> Consumer:
        c = Consumer(
            {
                **client.conf(broker.bootstrap),
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        c.subscribe([topic])
        return c

    first = member()
    try:
        got = _poll_rdkafka(first, 4, 30.0)[:4]
        assert got == _expect(written[:4], 0)
        first.commit(offsets=[TopicPartition(topic, 0, got[-1].offset + 1)], asynchronous=False)
    finally:
        first.close()
    second = member()
    try:
        assert _poll_rdkafka(second, 2, 30.0) == _expect(written[4:], 0)
    finally:
        second.close()


def _with_zstd(broker: BrokerProcess) -> str:
    topic = unique_topic("old-zstd")
    _create(broker.bootstrap, topic)
    _modern_produce(broker.bootstrap, topic, _recs(0, 2, "plain"))
    _modern_produce(broker.bootstrap, topic, _recs(10, 2, "zstd"), **{"compression.type": "zstd"})
    return topic


def test_zstd_batches_reach_old_consumers_as_an_error(broker: BrokerProcess) -> None:
    """The records before the zstd batch arrive; at the zstd batch the old consumer gets
    UNSUPPORTED_COMPRESSION_TYPE, as from Kafka 2.1-3.x."""
    topic = _with_zstd(broker)
    c = Rdkafka("librdkafka-0.9.0", 0, ALL_CODECS, "0.9.0.1").consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        seen: list[int] = []
        error: KafkaError | None = None
        deadline = time.monotonic() + 20
        while error is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                error = m.error()
            else:
                seen.append(m.offset())
        assert seen == [0, 1]
        assert error is not None and error.code() == KafkaError.UNSUPPORTED_COMPRESSION_TYPE, error
    finally:
        c.close()


@pytest.mark.parametrize("api_version", [(0, 10, 0), (0, 10, 1)])
def test_log_append_time_reaches_magic1_readers(broker: BrokerProcess, api_version: tuple[int, ...]) -> None:
    """A LogAppendTime topic: Fetch v2-3 readers get the broker's append time, marked as such
    (timestamp type 1), for plain and compressed batches alike."""
    topic = unique_topic("old-lat")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"message.timestamp.type": "LogAppendTime"}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)], operation_timeout=10)[topic].result(timeout=20)
    before = int(time.time() * 1000)
    written = _modern_produce(broker.bootstrap, topic, _recs(0, 3, "lat"))
    written += _modern_produce(broker.bootstrap, topic, _recs(10, 3, "latz"), **{"compression.type": "gzip"})
    c = KafkaPython("kafka-python", 1, ALL_CODECS, api_version).consumer(broker.bootstrap)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(written) and time.monotonic() < deadline:
            for msgs in c.poll(500).values():
                got += [(m.offset, m.value, m.timestamp, m.timestamp_type) for m in msgs]
    finally:
        c.close()
    assert [(o, v) for o, v, _t, _tt in got] == [(r.offset, r.value) for r in written]
    assert all(tt == 1 for *_, tt in got)
    # the broker's time, not the producer's (TS is in 2023), the same within a batch
    assert [t for _o, _v, t, _tt in got] == [r.timestamp for r in written]
    assert all(t >= before for _o, _v, t, _tt in got)
