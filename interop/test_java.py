"""Apache Kafka's Java clients (interop/java, kafka-clients pinned in its
pom.xml) against a kafkapy broker process: every shared scenario, plus what
only the Java column has rows for (acks, AdminClient topic/cluster/group
calls, ListOffsets specs, automatic commits, seek by timestamp, KIP-848).

One JVM (interop/adapters/java.py, `Driver serve`) answers every call of the
session; the broker is the module's own kafkapy process.
"""

from __future__ import annotations

import time

import pytest

from interop._common import BrokerProcess, Out, payload, unique_topic, wait_until
from interop.adapters.java import JavaClient, JavaError, available, call
from interop.scenarios import CODEC_IDS, Scenarios, by_offset

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_java.py: {_missing} (scripts/test installs and builds it)")

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
DESCRIBE_GROUPS = 15


def advertised_apis(bootstrap: str) -> dict[int, tuple[int, int]]:
    from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
    from tests.server.rawclient import RawClient

    with RawClient(bootstrap) as c:
        resp = c.request(ApiVersionsRequest(client_software_name="kafkapy-interop", client_software_version="1"), 3)
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


class JavaScenarios(Scenarios):
    """The Java-only rows, run by TestJava (kafkapy) and by the reference run
    against Apache Kafka (interop/test_apache_kafka_reference.py)."""

    adapter = JavaClient()  # type: ignore[assignment]  # the Java knobs (acks, idempotence) go beyond ClientAdapter

    # acks ---------------------------------------------------------------
    @pytest.mark.compat("acks")
    def test_acks_zero_one_all(self, broker: BrokerProcess) -> None:
        a = self.adapter
        topic = self.make_topic(broker)
        expected: list[Out] = []
        for acks in ("0", "1", "all"):
            batch = [Out(f"{acks}-{i}".encode(), payload(i, 100)) for i in range(50)]
            offsets = a.produce(broker.bootstrap, topic, batch, acks=acks)
            if acks == "0":
                assert all(o == -1 for _, o in offsets), "acks=0 has no offsets to report"
            else:
                start = len(expected)
                assert [o for _, o in offsets] == list(range(start, start + len(batch)))
            expected += batch
        got = by_offset(a.consume(broker.bootstrap, topic, {0: 0}, len(expected)))
        assert [(r.key, r.value) for r in got] == [(r.key, r.value) for r in expected]

    # idempotent producer, explicitly, every codec -----------------------
    @pytest.mark.compat("idempotent-codecs")
    def test_idempotent_producer_every_codec(self, broker: BrokerProcess) -> None:
        a = self.adapter
        topic = self.make_topic(broker, partitions=2)
        sent: list[Out] = []
        for codec in CODEC_IDS:
            batch = [Out(f"{codec}-{i}".encode(), payload(i, 200), (("c", codec.encode()),)) for i in range(40)]
            a.produce(broker.bootstrap, topic, batch, codec=codec, idempotence=True)
            sent += batch
        got = a.consume(broker.bootstrap, topic, {0: 0, 1: 0}, len(sent))
        assert sorted((r.key, r.value, r.headers) for r in got) == sorted((s.key, s.value, s.headers) for s in sent)
        for p in (0, 1):
            offs = [r.offset for r in by_offset(got) if r.partition == p]
            assert offs == list(range(len(offs)))

    # AdminClient: topics and cluster ------------------------------------
    @pytest.mark.compat("admin-topics")
    def test_admin_topics_and_cluster(self, broker: BrokerProcess) -> None:
        b = broker.bootstrap
        topic = unique_topic("java-admin")
        res = call("create_topics", b, topics=[{"name": topic, "partitions": 4, "configs": {"retention.ms": "12345"}}])
        assert res["results"] == [{"name": topic, "exception": None}]
        created = res["created"][topic]
        assert created["partitions"] == 4 and created["replication_factor"] == 1
        assert created["configs"]["retention.ms"] == "12345"
        # errors Kafka gives, as the Java exceptions applications catch
        again = call(
            "create_topics",
            b,
            topics=[
                {"name": topic, "partitions": 1},
                {"name": "bad/name", "partitions": 1},
                {"name": unique_topic("java-zero"), "partitions": 0},
                {"name": unique_topic("java-rf"), "partitions": 1, "replication_factor": 3},
                {"name": unique_topic("java-cfg"), "partitions": 1, "configs": {"cleanup.policy": "nope"}},
            ],
        )
        exceptions = [r["exception"].rsplit(".", 1)[-1] for r in again["results"]]
        by_name = {r["name"]: r["exception"].rsplit(".", 1)[-1] for r in again["results"]}
        assert by_name[topic] == "TopicExistsException", exceptions
        assert by_name["bad/name"] == "InvalidTopicException", exceptions
        assert sorted(exceptions).count("InvalidPartitionsException") == 1, exceptions
        assert "InvalidReplicationFactorException" in exceptions, exceptions
        assert "InvalidConfigurationException" in exceptions, exceptions
        # validate only creates nothing
        dry = unique_topic("java-dry")
        call("create_topics", b, topics=[{"name": dry, "partitions": 2}], validate_only=True)
        # describe
        desc = call("describe_topics", b, topics=[topic])["topics"][topic]
        assert [p["partition"] for p in desc["partitions"]] == [0, 1, 2, 3]
        assert desc["internal"] is False and desc["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA"
        assert all(p["leader"] >= 0 and p["replicas"] == [p["leader"]] == p["isr"] for p in desc["partitions"])
        missing = call("describe_topics", b, topics=[unique_topic("java-missing")])["results"][0]
        assert missing["exception"].endswith("UnknownTopicOrPartitionException")
        # partitions
        call("create_partitions", b, counts={topic: "6"})
        assert len(call("describe_topics", b, topics=[topic])["topics"][topic]["partitions"]) == 6
        # cluster
        cluster = call("describe_cluster", b)
        assert cluster["cluster_id"]
        assert [(n["host"], n["port"]) for n in cluster["nodes"]] == [(broker.host, broker.port)]
        # delete
        listed = call("list_topics", b)["topics"]
        assert topic in listed and dry not in listed
        assert call("delete_topics", b, topics=[topic])["results"] == [{"name": topic, "exception": None}]
        assert wait_until(lambda: topic not in call("list_topics", b)["topics"], timeout_s=15)
        gone = call("delete_topics", b, topics=[topic])["results"][0]
        assert gone["exception"].endswith("UnknownTopicOrPartitionException")

    # AdminClient: ListOffsets specs --------------------------------------
    @pytest.mark.compat("list-offsets")
    def test_admin_list_offsets(self, broker: BrokerProcess) -> None:
        a, b = self.adapter, broker.bootstrap
        topic = self.make_topic(broker)
        base = (int(time.time()) - 7200) * 1000
        stamps = [base + 1000 * i for i in (0, 1, 5, 2, 3)]  # max timestamp at offset 2
        a.produce(b, topic, [Out(b"k", payload(i), timestamp_ms=ts) for i, ts in enumerate(stamps)])

        def spec(s: str) -> tuple[int, int]:
            res = call("list_offsets", b, topic=topic, partitions=[0], spec=s)
            return res["offsets"]["0"], res["timestamps"]["0"]

        assert spec("earliest")[0] == 0
        assert spec("latest")[0] == 5
        assert spec("max_timestamp") == (2, base + 5000)
        assert spec(str(base + 1500))[0] == 2  # first record with timestamp >= target (offset 2: base+5000)
        assert spec(str(base + 2000)) == (2, base + 5000)
        assert spec(str(base))[0] == 0
        assert spec(str(base + 10_000))[0] == -1

    # consumer groups through the AdminClient ----------------------------
    @pytest.mark.compat("groups-admin")
    def test_admin_list_and_describe_groups(self, broker: BrokerProcess) -> None:
        a, b = self.adapter, broker.bootstrap
        topic = self.make_topic(broker, partitions=2)
        group = unique_topic("java-admin-group")
        a.produce(b, topic, [Out(None, payload(i), partition=i % 2) for i in range(10)])
        got = a.group_consume(b, topic, group, 10)
        assert len(got) == 10
        groups = {g["group_id"]: g for g in call("list_groups", b)["groups"]}
        assert group in groups, sorted(groups)
        assert groups[group]["state"] == "EMPTY" or groups[group]["state"].lower() == "empty", groups[group]
        desc = call("describe_groups", b, groups=[group])["groups"][group]
        assert desc["state"].lower() == "empty" and desc["members"] == []
        assert desc["type"].lower() == "classic"
        offsets = call("group_offsets", b, group=group)["offsets"]
        assert offsets == {f"{topic}:0": 5, f"{topic}:1": 5}
        # An unknown group: GroupIdNotFoundException when the broker serves
        # DescribeGroups v6 (its error for unknown groups). The admin client
        # asks ConsumerGroupDescribe first and, on GROUP_ID_NOT_FOUND, falls
        # back to DescribeGroups, whose versions before 6 describe it as Dead.
        try:
            unknown = call("describe_groups", b, groups=[unique_topic("java-nogroup")])["groups"]
        except JavaError as e:
            assert e.exception.endswith("GroupIdNotFoundException"), e
        else:
            apis = advertised_apis(b)
            assert apis[DESCRIBE_GROUPS][1] < 6, "GroupIdNotFound expected"
            assert [g["state"].lower() for g in unknown.values()] == ["dead"]

    # consumer: automatic commits -----------------------------------------
    @pytest.mark.compat("group-auto-commit")
    def test_group_automatic_commits(self, broker: BrokerProcess) -> None:
        a, b = self.adapter, broker.bootstrap
        topic = self.make_topic(broker, partitions=3)
        group = unique_topic("java-auto")
        first = [Out(None, payload(i), partition=i % 3) for i in range(30)]
        a.produce(b, topic, first)
        got = a.group_consume(b, topic, group, len(first), commit="auto")
        assert sorted(r.value or b"" for r in got) == sorted(r.value or b"" for r in first)
        assert wait_until(lambda: sum(call("group_offsets", b, group=group)["offsets"].values()) == 30, timeout_s=10)
        second = [Out(None, payload(100 + i), partition=i % 3) for i in range(6)]
        a.produce(b, topic, second)
        resumed = a.group_consume(b, topic, group, len(second), commit="auto")
        assert sorted(r.value or b"" for r in resumed) == sorted(r.value or b"" for r in second)

    # consumer: seek by timestamp -----------------------------------------
    @pytest.mark.compat("seek-by-timestamp")
    def test_seek_by_timestamp(self, broker: BrokerProcess) -> None:
        a, b = self.adapter, broker.bootstrap
        topic = self.make_topic(broker)
        base = (int(time.time()) - 3600) * 1000
        a.produce(b, topic, [Out(b"t", payload(i), timestamp_ms=base + 100 * i) for i in range(20)])
        res = call("seek_to_time", b, topic=topic, partition=0, timestamp=base + 1050, count=5)
        assert res["offset"] == 11
        assert [r["offset"] for r in res["records"]][:5] == [11, 12, 13, 14, 15]
        after = call("seek_to_time", b, topic=topic, partition=0, timestamp=base + 99_999, count=0, timeout_ms=100)
        assert after["offset"] == -1

    # KIP-848 --------------------------------------------------------------
    @pytest.mark.compat("group-protocol-consumer")
    def test_group_protocol_consumer(self, broker: BrokerProcess) -> None:
        if CONSUMER_GROUP_HEARTBEAT not in advertised_apis(broker.bootstrap):
            pytest.skip("not yet supported by kafkapy: ConsumerGroupHeartbeat (KIP-848) is not advertised")
        a, b = self.adapter, broker.bootstrap
        topic = self.make_topic(broker, partitions=3)
        group = unique_topic("java-kip848")
        first = [Out(None, payload(i), partition=i % 3) for i in range(30)]
        a.produce(b, topic, first)
        cfg = {"group.protocol": "consumer"}
        got = a.group_consume(b, topic, group, len(first), config=cfg)
        assert sorted(r.value or b"" for r in got) == sorted(r.value or b"" for r in first)
        desc = call("describe_groups", b, groups=[group])["groups"][group]
        assert desc["type"].lower() == "consumer"
        second = [Out(None, payload(100 + i), partition=i % 3) for i in range(9)]
        a.produce(b, topic, second)
        resumed = a.group_consume(b, topic, group, len(second), config=cfg)
        assert sorted(r.value or b"" for r in resumed) == sorted(r.value or b"" for r in second)


class TestJava(JavaScenarios):
    adapter = JavaClient()

