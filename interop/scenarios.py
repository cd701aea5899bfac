"""The scenarios every client runs, written once against ClientAdapter.

A client's test module subclasses `Scenarios` with its adapter; the
`compat` marker names the docs/compatibility.md row a test feeds, and the
`codec` parameter is generated per client (interop/conftest.py) from the
codecs the client can produce.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import ClassVar

import pytest

from interop._common import MIB, BrokerProcess, ClientAdapter, In, Out, payload, unique_topic, wait_until

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def first_batch_codec(broker: BrokerProcess, topic: str, partition: int = 0) -> int:
    """Compression codec (attributes & 7) of the first record batch stored on disk.

    The broker stores batches as the producer sent them, so this tells which
    codec the client really used."""
    directory = broker.data_dir / f"{topic}-{partition}"
    segments = sorted(directory.glob("*.log"))
    assert segments, f"no segment files in {directory}"
    with open(segments[0], "rb") as f:
        header = f.read(23)
    assert len(header) == 23, "first batch header missing"
    assert header[16] == 2, f"magic {header[16]}, expected v2 batches"
    return int.from_bytes(header[21:23], "big") & 0x7


def by_offset(records: list[In]) -> list[In]:
    return sorted(records, key=lambda r: (r.partition, r.offset))


def helper_admin() -> ClientAdapter:
    """Topic creation for clients without an admin API (kcat): confluent-kafka's."""
    from interop.adapters.confluent import ConfluentClient

    return ConfluentClient()


class Scenarios:
    adapter: ClassVar[ClientAdapter]

    def make_topic(self, broker: BrokerProcess, partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        topic = unique_topic(self.adapter.name)
        creator = self.adapter if self.adapter.has_admin else helper_admin()
        creator.create_topic(broker.bootstrap, topic, partitions, configs)
        return topic

    # 1 -------------------------------------------------------------------
    @pytest.mark.compat("metadata")
    def test_metadata_topic_creation_and_listing(self, broker: BrokerProcess) -> None:
        a = self.adapter
        created: dict[str, int] = {}
        if a.has_admin:
            explicit = unique_topic(f"{a.name}-admin")
            a.create_topic(broker.bootstrap, explicit, 3)
            created[explicit] = 3
        auto = unique_topic(f"{a.name}-auto")
        a.trigger_auto_create(broker.bootstrap, auto)
        created[auto] = 1  # broker default num.partitions
        seen: dict[str, int] = {}

        def all_listed() -> bool:
            seen.clear()
            seen.update(a.list_topics(broker.bootstrap))
            return all(t in seen for t in created)

        assert wait_until(all_listed, timeout_s=15), f"created {created}, listed {sorted(seen)}"
        for topic, partitions in created.items():
            assert seen[topic] == partitions, f"{topic}: {seen[topic]} partitions, expected {partitions}"

    # 2 -------------------------------------------------------------------
    @pytest.mark.compat("codec")
    def test_codec_round_trip(self, broker: BrokerProcess, codec: str) -> None:
        topic = self.make_topic(broker)
        records = [Out(f"key-{i}".encode(), payload(i, 300)) for i in range(200)]
        self.adapter.produce(broker.bootstrap, topic, records, codec=codec)
        got = by_offset(self.adapter.consume(broker.bootstrap, topic, {0: 0}, len(records)))
        assert [r.offset for r in got] == list(range(len(records)))
        assert [(r.key, r.value) for r in got] == [(r.key, r.value) for r in records]
        assert first_batch_codec(broker, topic) == CODEC_IDS[codec], "stored batch codec differs from the one requested"

    # 3 -------------------------------------------------------------------
    @pytest.mark.compat("keys-headers-tombstones")
    def test_keys_headers_and_tombstones(self, broker: BrokerProcess) -> None:
        topic = self.make_topic(broker)
        records = [
            Out(b"k1", b"v1", (("h1", b"a"), ("h2", b"bb"))),
            Out(b"k2", None),  # tombstone
            Out(None, b"v3"),  # no key
            Out(b"k1", b"v4", (("dup", b"1"), ("dup", b"2"))),  # repeated header key, order kept
            Out(b"k5", b"v5", (("h", b"x"),)),
            Out(b"k2", None, (("why", b"deleted"),)),  # tombstone with a header
        ]
        self.adapter.produce(broker.bootstrap, topic, records)
        got = by_offset(self.adapter.consume(broker.bootstrap, topic, {0: 0}, len(records)))
        assert [r.offset for r in got] == list(range(len(records)))
        assert [(r.key, r.value) for r in got] == [(r.key, r.value) for r in records]
        assert [r.headers for r in got] == [r.headers for r in records]

    # 4 -------------------------------------------------------------------
    @pytest.mark.compat("key-ordering")
    def test_per_key_ordering_across_partitions(self, broker: BrokerProcess) -> None:
        topic = self.make_topic(broker, partitions=6)
        keys = [f"key-{k:02d}".encode() for k in range(12)]
        per_key = 40
        records = [Out(k, f"{k.decode()}:{seq}".encode()) for seq in range(per_key) for k in keys]
        self.adapter.produce(broker.bootstrap, topic, records)
        got = self.adapter.consume(broker.bootstrap, topic, {p: 0 for p in range(6)}, len(records))
        assert len(got) == len(records)
        partitions_of: dict[bytes, set[int]] = defaultdict(set)
        seqs: dict[bytes, list[int]] = defaultdict(list)
        offsets: dict[int, list[int]] = defaultdict(list)
        for r in by_offset(got):
            assert r.key is not None and r.value is not None
            partitions_of[r.key].add(r.partition)
            seqs[r.key].append(int(r.value.split(b":")[1]))
            offsets[r.partition].append(r.offset)
        for k in keys:
            assert len(partitions_of[k]) == 1, f"{k!r} landed on partitions {partitions_of[k]}"
            assert seqs[k] == list(range(per_key)), f"{k!r} out of order"
        assert len(offsets) > 1, "all keys on one partition: partitioner or metadata ignored"
        for p, offs in offsets.items():
            assert offs == list(range(len(offs))), f"partition {p} offsets not contiguous"

    # 5 -------------------------------------------------------------------
    @pytest.mark.compat("large-1mib")
    def test_one_mib_messages(self, large_broker: BrokerProcess) -> None:
        topic = self.make_topic(large_broker)
        records = [Out(f"big-{i}".encode(), payload(i, MIB)) for i in range(3)]
        self.adapter.produce(large_broker.bootstrap, topic, records, max_message_bytes=2_000_000)
        got = by_offset(
            self.adapter.consume(large_broker.bootstrap, topic, {0: 0}, len(records), max_message_bytes=2_000_000)
        )
        assert [r.offset for r in got] == [0, 1, 2]
        for sent, received in zip(records, got):
            assert received.key == sent.key
            assert received.value is not None and len(received.value) == MIB
            assert received.value == sent.value

    # 6 -------------------------------------------------------------------
    @pytest.mark.compat("roundtrip-10k")
    def test_ten_thousand_messages(self, broker: BrokerProcess) -> None:
        topic = self.make_topic(broker)
        n = 10_000
        records = [Out(None if i % 7 else f"k{i}".encode(), payload(i)) for i in range(n)]
        self.adapter.produce(broker.bootstrap, topic, records, codec="none")
        got = by_offset(self.adapter.consume(broker.bootstrap, topic, {0: 0}, n, timeout_s=60))
        assert len(got) == n, f"{len(got)} of {n} delivered"
        assert [r.offset for r in got] == list(range(n))
        assert [r.value for r in got] == [r.value for r in records]
        assert self.adapter.watermarks(broker.bootstrap, topic, 0) == (0, n)

    # 7 -------------------------------------------------------------------
    @pytest.mark.compat("offsets")
    def test_watermarks_and_offsets_for_times(self, broker: BrokerProcess) -> None:
        a = self.adapter
        topic = self.make_topic(broker)
        assert a.watermarks(broker.bootstrap, topic, 0) == (0, 0)
        n = 5
        base = (int(time.time() * 1000) // 1000 - 3600) * 1000  # an hour ago, whole second
        if a.sets_timestamps:
            a.produce(broker.bootstrap, topic, [Out(b"t", payload(i), timestamp_ms=base + 1000 * i) for i in range(n)])
        else:
            for i in range(n):
                a.produce(broker.bootstrap, topic, [Out(b"t", payload(i))])
                time.sleep(0.03)
        got = by_offset(a.consume(broker.bootstrap, topic, {0: 0}, n))
        stamps = [r.timestamp_ms for r in got]
        if a.sets_timestamps:
            assert stamps == [base + 1000 * i for i in range(n)], "CreateTime not preserved"
        assert stamps == sorted(stamps) and len(set(stamps)) == n
        assert a.watermarks(broker.bootstrap, topic, 0) == (0, n)
        for i, ts in enumerate(stamps):
            assert a.offset_for_time(broker.bootstrap, topic, 0, ts) == i, f"exact timestamp of offset {i}"
            assert a.offset_for_time(broker.bootstrap, topic, 0, ts - 1) == i, f"just before offset {i}"
        assert a.offset_for_time(broker.bootstrap, topic, 0, stamps[0] - 86_400_000) == 0
        none = n if getattr(a, "none_offset_is_high", False) else -1
        assert a.offset_for_time(broker.bootstrap, topic, 0, stamps[-1] + 1) == none, "timestamp after the last record"

    # 9 -------------------------------------------------------------------
    @pytest.mark.compat("producer-defaults")
    def test_producer_with_client_defaults(self, broker: BrokerProcess) -> None:
        """An application's producer as most are written: only the bootstrap
        address set. Clients whose default is an idempotent producer
        (kafka-python >= 3) need InitProducerId here."""
        topic = self.make_topic(broker)
        values = [payload(i) for i in range(10)]
        self.adapter.produce_with_defaults(broker.bootstrap, topic, values)
        got = by_offset(self.adapter.consume(broker.bootstrap, topic, {0: 0}, len(values)))
        assert [r.value for r in got] == values

    # 10 ------------------------------------------------------------------
    @pytest.mark.compat("consumer-group")
    def test_consumer_group_commit_and_resume(self, broker: BrokerProcess) -> None:
        """subscribe() in a group, consume, commit, close; a new member of the
        same group resumes after the committed offsets."""
        topic = self.make_topic(broker, partitions=3)
        group = unique_topic(f"{self.adapter.name}-group")
        first = [Out(None, payload(i), partition=i % 3) for i in range(30)]
        self.adapter.produce(broker.bootstrap, topic, first)
        got = self.adapter.group_consume(broker.bootstrap, topic, group, len(first))
        assert sorted(r.value or b"" for r in got) == sorted(r.value or b"" for r in first)
        second = [Out(None, payload(100 + i), partition=i % 3) for i in range(9)]
        self.adapter.produce(broker.bootstrap, topic, second)
        resumed = self.adapter.group_consume(broker.bootstrap, topic, group, len(second))
        assert sorted(r.value or b"" for r in resumed) == sorted(r.value or b"" for r in second), (
            "did not resume at the committed offsets"
        )

    # 8 -------------------------------------------------------------------
    @pytest.mark.compat("configs")
    def test_describe_and_alter_topic_configs(self, broker: BrokerProcess) -> None:
        a = self.adapter
        topic = self.make_topic(broker, configs={"retention.ms": "3600000", "cleanup.policy": "delete"})
        before = a.describe_topic_configs(broker.bootstrap, topic)
        assert before.get("retention.ms") == "3600000"
        assert before.get("cleanup.policy") == "delete"
        assert "segment.bytes" in before, "defaults are described too"
        a.alter_topic_configs(broker.bootstrap, topic, {"retention.ms": "7200000"})
        after = a.describe_topic_configs(broker.bootstrap, topic)
        assert after.get("retention.ms") == "7200000"
