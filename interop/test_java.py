"""Apache Kafka's Java clients (interop/java, kafka-clients pinned in its
pom.xml) against a kafkapy broker process: every shared scenario, plus what
only the Java column has rows for (acks, AdminClient topic/cluster/group
calls, ListOffsets specs, automatic commits, seek by timestamp, KIP-848,
transactions: read_committed, fencing, sendOffsetsToTransaction; Admin
calls for quotas, SCRAM, tokens and APIs kafkapy does not serve).

One JVM (interop/adapters/java.py, `Driver serve`) answers every call of the
session; the broker is the module's own kafkapy process.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, Out, payload, unique_topic, wait_until
from interop.adapters.java import DRIVER44, JavaClient, JavaError, available, b64, to_in
from interop.scenarios import CODEC_IDS, Scenarios, by_offset

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_java.py: {_missing} (scripts/test installs and builds it)")

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
DESCRIBE_GROUPS = 15
DESCRIBE_QUORUM = 55
ELECT_LEADERS = 43


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
        res = self.adapter.call(
            "create_topics", b, topics=[{"name": topic, "partitions": 4, "configs": {"retention.ms": "12345"}}]
        )
        assert res["results"] == [{"name": topic, "exception": None}]
        created = res["created"][topic]
        assert created["partitions"] == 4 and created["replication_factor"] == 1
        assert created["configs"]["retention.ms"] == "12345"
        # errors Kafka gives, as the Java exceptions applications catch
        again = self.adapter.call(
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
        self.adapter.call("create_topics", b, topics=[{"name": dry, "partitions": 2}], validate_only=True)
        # describe
        desc = self.adapter.call("describe_topics", b, topics=[topic])["topics"][topic]
        assert [p["partition"] for p in desc["partitions"]] == [0, 1, 2, 3]
        assert desc["internal"] is False and desc["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA"
        assert all(p["leader"] >= 0 and p["replicas"] == [p["leader"]] == p["isr"] for p in desc["partitions"])
        missing = self.adapter.call("describe_topics", b, topics=[unique_topic("java-missing")])["results"][0]
        assert missing["exception"].endswith("UnknownTopicOrPartitionException")
        # partitions
        self.adapter.call("create_partitions", b, counts={topic: "6"})
        assert len(self.adapter.call("describe_topics", b, topics=[topic])["topics"][topic]["partitions"]) == 6
        # cluster
        cluster = self.adapter.call("describe_cluster", b)
        assert cluster["cluster_id"]
        assert [(n["host"], n["port"]) for n in cluster["nodes"]] == [(broker.host, broker.port)]
        # delete
        listed = self.adapter.call("list_topics", b)["topics"]
        assert topic in listed and dry not in listed
        assert self.adapter.call("delete_topics", b, topics=[topic])["results"] == [{"name": topic, "exception": None}]
        assert wait_until(lambda: topic not in self.adapter.call("list_topics", b)["topics"], timeout_s=15)
        gone = self.adapter.call("delete_topics", b, topics=[topic])["results"][0]
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
            res = self.adapter.call("list_offsets", b, topic=topic, partitions=[0], spec=s)
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
        groups = {g["group_id"]: g for g in self.adapter.call("list_groups", b)["groups"]}
        assert group in groups, sorted(groups)
        assert groups[group]["state"] == "EMPTY" or groups[group]["state"].lower() == "empty", groups[group]
        desc = self.adapter.call("describe_groups", b, groups=[group])["groups"][group]
        assert desc["state"].lower() == "empty" and desc["members"] == []
        assert desc["type"].lower() == "classic"
        offsets = self.adapter.call("group_offsets", b, group=group)["offsets"]
        assert offsets == {f"{topic}:0": 5, f"{topic}:1": 5}
        # An unknown group: GroupIdNotFoundException when the broker serves
        # DescribeGroups v6 (its error for unknown groups). The admin client
        # asks ConsumerGroupDescribe first and, on GROUP_ID_NOT_FOUND, falls
        # back to DescribeGroups, whose versions before 6 describe it as Dead.
        try:
            unknown = self.adapter.call("describe_groups", b, groups=[unique_topic("java-nogroup")])["groups"]
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
        assert wait_until(
            lambda: sum(self.adapter.call("group_offsets", b, group=group)["offsets"].values()) == 30, timeout_s=10
        )
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
        res = self.adapter.call("seek_to_time", b, topic=topic, partition=0, timestamp=base + 1050, count=5)
        assert res["offset"] == 11
        assert [r["offset"] for r in res["records"]][:5] == [11, 12, 13, 14, 15]
        after = self.adapter.call(
            "seek_to_time", b, topic=topic, partition=0, timestamp=base + 99_999, count=0, timeout_ms=100
        )
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
        desc = self.adapter.call("describe_groups", b, groups=[group])["groups"][group]
        assert desc["type"].lower() == "consumer"
        second = [Out(None, payload(100 + i), partition=i % 3) for i in range(9)]
        a.produce(b, topic, second)
        resumed = a.group_consume(b, topic, group, len(second), config=cfg)
        assert sorted(r.value or b"" for r in resumed) == sorted(r.value or b"" for r in second)

    # Admin calls for features kafkapy lacks ----------------------------------
    @pytest.mark.compat("admin-featureless")
    def test_admin_featureless_and_unserved_calls(self, broker: BrokerProcess) -> None:
        """Quotas, SCRAM, reassignments and delegation tokens answer as on a Kafka
        without them; an API the broker does not advertise fails the call with
        UnsupportedVersionException (the Admin checks ApiVersions), no hang."""
        b = broker.bootstrap
        topic = self.make_topic(broker)
        res = self.adapter.call("admin_misc", b, topic=topic)
        assert res["client_quotas"] == {"ok": "{}"}
        assert res["scram_all"] == {"ok": "{}"}
        assert res["scram_alice"]["exception"].endswith("ResourceNotFoundException")
        assert res["reassignments"] == {"ok": "{}"}
        assert res["delegation_tokens"]["exception"].endswith("UnsupportedByAuthenticationException")
        apis = advertised_apis(b)
        for name, key in (("metadata_quorum", DESCRIBE_QUORUM), ("elect_leaders", ELECT_LEADERS)):
            if key in apis:
                assert "ok" in res[name], res[name]
            else:
                assert res[name]["exception"].endswith("UnsupportedVersionException"), res[name]

    # transactions ----------------------------------------------------------
    @pytest.mark.compat("transactions")
    def test_transactions_commit_abort_read_committed(self, broker: BrokerProcess) -> None:
        b = broker.bootstrap
        topic = self.make_topic(broker, partitions=3)
        handle = unique_topic("java-txn")
        batches = [("c1", True, 30), ("a1", False, 15), ("c2", True, 12), ("a2", False, 9)]
        sent: dict[int, list[bytes]] = defaultdict(list)  # partition -> values in send order
        committed: set[bytes] = set()
        self.adapter.call("txn_init", b, handle=handle, transactional_id=handle)
        try:
            for tag, commit, n in batches:
                values = [f"{tag}-{i}".encode() for i in range(n)]
                recs = [{"key": b64(b"k"), "value": b64(v), "partition": i % 3} for i, v in enumerate(values)]
                self.adapter.call("txn_send", b, handle=handle, topic=topic, records=recs)
                self.adapter.call("txn_end", b, handle=handle, commit=commit)
                for i, v in enumerate(values):
                    sent[i % 3].append(v)
                if commit:
                    committed.update(values)
        finally:
            self.adapter.call("txn_close", b, handle=handle)
        rc = read_to_end(self.adapter, b, topic, "read_committed")
        ru = read_to_end(self.adapter, b, topic, "read_uncommitted")
        for p in range(3):
            assert rc[p] == [v for v in sent[p] if v in committed], f"read_committed, partition {p}"
            assert ru[p] == sent[p], f"read_uncommitted, partition {p}"

    @pytest.mark.compat("transactions")
    def test_transactions_zombie_is_fenced(self, broker: BrokerProcess) -> None:
        b = broker.bootstrap
        topic = self.make_topic(broker, partitions=2)
        txn_id = unique_topic("java-zombie")
        zombie, successor = f"{txn_id}-old", f"{txn_id}-new"
        self.adapter.call("txn_init", b, handle=zombie, transactional_id=txn_id)
        try:
            self.adapter.call(
                "txn_send",
                b,
                handle=zombie,
                topic=topic,
                records=[{"key": None, "value": b64(f"z-{i}".encode()), "partition": i % 2} for i in range(6)],
            )
            self.adapter.call(
                "txn_init", b, handle=successor, transactional_id=txn_id
            )  # bumps the epoch, aborts the zombie's
            with pytest.raises(JavaError) as fenced:
                self.adapter.call("txn_end", b, handle=zombie, commit=True)
            assert fenced.value.exception.endswith("ProducerFencedException"), fenced.value
            self.adapter.call(
                "txn_send",
                b,
                handle=successor,
                topic=topic,
                records=[{"key": None, "value": b64(f"s-{i}".encode()), "partition": i % 2} for i in range(4)],
            )
            self.adapter.call("txn_end", b, handle=successor, commit=True)
        finally:
            self.adapter.call("txn_close", b, handle=zombie, timeout_ms=0)
            self.adapter.call("txn_close", b, handle=successor)
        rc = read_to_end(self.adapter, b, topic, "read_committed")
        assert sorted(rc[0] + rc[1]) == sorted(f"s-{i}".encode() for i in range(4))

    @pytest.mark.compat("txn-send-offsets")
    def test_send_offsets_to_transaction(self, broker: BrokerProcess) -> None:
        a, b = self.adapter, broker.bootstrap
        source = self.make_topic(broker, partitions=2)
        sink = self.make_topic(broker, partitions=2)
        group, txn_id = unique_topic("java-eos"), unique_topic("java-eos-txn")
        a.produce(b, source, [Out(f"k{i}".encode(), f"v{i}".encode(), partition=i % 2) for i in range(20)])

        def transform(commit: bool, suffix: str) -> dict[str, int]:
            res = self.adapter.call(
                "eos_transform",
                b,
                input=source,
                output=sink,
                group=group,
                transactional_id=txn_id,
                count=20,
                suffix=suffix,
                commit=commit,
                timeout_s=120,
            )
            assert sorted(to_in(m).value or b"" for m in res["consumed"]) == sorted(f"v{i}".encode() for i in range(20))
            return {k: int(v) for k, v in res["offsets"].items()}

        offsets = transform(False, "-aborted")
        assert offsets == {f"{source}:0": 10, f"{source}:1": 10}
        time.sleep(0.5)
        assert self.adapter.call("group_offsets", b, group=group)["offsets"] == {}, "aborted: no offsets committed"
        assert read_to_end(self.adapter, b, sink, "read_committed") == {0: [], 1: []}
        # the same records again (nothing was committed), this time committed
        assert transform(True, "-done") == offsets
        assert wait_until(
            lambda: self.adapter.call("group_offsets", b, group=group)["offsets"] == offsets, timeout_s=15
        )
        rc = read_to_end(self.adapter, b, sink, "read_committed")
        assert sorted(rc[0] + rc[1]) == sorted(f"v{i}-done".encode() for i in range(20))
        assert rc[0] == [f"v{i}-done".encode() for i in range(0, 20, 2)]  # partition order kept
        ru = read_to_end(self.adapter, b, sink, "read_uncommitted")
        assert len(ru[0] + ru[1]) == 40


def read_to_end(adapter: JavaClient, bootstrap: str, topic: str, isolation: str) -> dict[int, list[bytes]]:
    """Values per partition in offset order, from the beginning to the end the isolation level sees."""
    res = adapter.call("read_to_end", bootstrap, topic=topic, config={"isolation.level": isolation})
    out: dict[int, list[bytes]] = {int(p): [] for p in res["end"]}
    for m in sorted(res["records"], key=lambda m: (m["partition"], m["offset"])):
        out[m["partition"]].append(to_in(m).value or b"")
    assert all(int(res["positions"][p]) >= int(e) for p, e in res["end"].items()), res["positions"]
    return out


class TestJava(JavaScenarios):
    adapter = JavaClient()


class Java44Client(JavaClient):
    name = "java44"


class TestJava44(JavaScenarios):
    """Every row above on Apache Kafka 4.4.0's clients: interop/java's driver on interop/java44's
    jars, each request at the version those clients choose against kafkapy by default."""

    adapter = Java44Client(DRIVER44)

    def test_the_driver_runs_on_the_4_4_0_clients(self) -> None:
        from interop.adapters.java import client_classpath

        jars = {Path(e).name for e in client_classpath(DRIVER44.release).split(os.pathsep)}
        assert "kafka-clients-4.4.0.jar" in jars and "kafka-streams-4.4.0.jar" in jars, sorted(jars)
        assert not [j for j in jars if j.endswith("-4.3.1.jar")], sorted(jars)


# the Java clients' own newest versions where they stop below the broker's: AddPartitionsToTxn v4+
# are the broker-to-coordinator form (KIP-890)
CLIENT_MAX = {"AddPartitionsToTxn": 3}


def test_the_4_4_0_clients_send_the_newest_versions_both_sides_serve(kafka_broker_factory: Any) -> None:
    """Producer (its defaults: idempotent), consumer (group.protocol=consumer), transactions and admin
    calls on Kafka 4.4.0's clients: every request the broker counted (RequestsPerSec by version) is at
    the newest version both Kafka 4.4.0 (interop/golden_kafka) and kafkapy serve, i.e. what those
    clients send to Apache Kafka 4.4.0 unless interop/test_api_versions_reference.py's GAPS says not."""
    from prometheus_client.parser import text_string_to_metric_families

    from interop.diff_api_versions import api_name, load, served
    from kafkapy.testing import free_port

    port = free_port()
    broker = kafka_broker_factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    a, b = Java44Client(DRIVER44), broker.bootstrap
    topic, group, txn = unique_topic("java44-v"), unique_topic("java44-g"), unique_topic("java44-t")
    a.create_topic(b, topic, 2)
    a.produce_with_defaults(b, topic, [f"v{i}".encode() for i in range(20)])
    a.group_consume(b, topic, group, 20, config={"group.protocol": "consumer"})
    a.call("txn_init", b, handle=txn, transactional_id=txn)
    try:
        a.call("txn_send", b, handle=txn, topic=topic, records=[{"key": None, "value": b64(b"t"), "partition": 0}])
        a.call("txn_end", b, handle=txn, commit=True)
    finally:
        a.call("txn_close", b, handle=txn)
    a.call("describe_cluster", b)
    a.call("describe_groups", b, groups=[group])
    a.call("list_offsets", b, topic=topic, partitions=[0], spec="max_timestamp")

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    used: dict[str, set[int]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "kafka_network_requestmetrics_requests_total" and s.value > 0:
                name = s.labels["request"]  # Kafka's metric names Fetch by who fetches
                used["Fetch" if name.startswith("Fetch") and name != "FetchSnapshot" else name].add(
                    int(s.labels["version"])
                )
    kafka44, ours = served(load("4.4.0")), advertised_apis(b)
    by_name = {api_name(k): k for k in ours}
    # GetTelemetrySubscriptions and PushTelemetry: Kafka 4.4.0 without a telemetry receiver does not
    # advertise them (GAPS), kafkapy does; the clients then send them at kafkapy's version
    expected = {
        name: {min(kafka44.get(k, ours[k])[1], ours[k][1], CLIENT_MAX.get(name, 999))}
        for name in used
        for k in [by_name[name]]
    }
    # (an ApiVersions asked at a version the broker does not serve is answered in v0 and not counted)
    assert dict(used) == expected, dict(used)
    for must in ("ApiVersions", "Produce", "Fetch", "ConsumerGroupHeartbeat", "EndTxn", "DescribeCluster"):
        assert must in used, sorted(used)
