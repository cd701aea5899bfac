"""Admin APIs against a real broker process: configs, DeleteRecords, OffsetForLeaderEpoch,
DescribeLogDirs, DescribeTopicPartitions. Real clients (confluent-kafka, kafka-python)
where they expose the API, kafkapy's own codec for exact error codes."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.alter_configs_request import (
    AlterableConfig,
    AlterConfigsRequest,
    AlterConfigsResource,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.delete_records_request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kafkapy.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkapy.protocol.messages.describe_log_dirs_request import (
    DescribableLogDirTopic,
    DescribeLogDirsRequest,
)
from kafkapy.protocol.messages.describe_topic_partitions_request import (
    Cursor,
    DescribeTopicPartitionsRequest,
    TopicRequest,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig as IncAlterable,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterConfigsResource as IncResource,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kafkapy.protocol.primitives import Message

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


# ---------------------------------------------------------------- the broker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kafkapy broker in its own process; yields host:port."""
    data = tmp_path_factory.mktemp("admin-broker")
    port = _free_port()
    cmd = [sys.executable, "-m", "kafkapy", "broker", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "data")]
    with open(data / "broker.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"broker did not start; see {log.name}") from None
                    time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def admin(broker: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker})


class Raw:
    """One blocking connection speaking kafkapy's codec."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.cid = 0

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def __call__(self, body: Message, version: int) -> Any:
        self.cid += 1
        self.sock.sendall(encode_request(body, version, self.cid))
        size = struct.unpack(">i", self._exact(4))[0]
        cid, resp = decode_response(body.API_KEY, version, self._exact(size))
        assert cid == self.cid
        return resp


@pytest.fixture()
def raw(broker: str) -> Iterator[Raw]:
    r = Raw(broker)
    yield r
    r.sock.close()


def new_topic(admin: AdminClient, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    for f in admin.create_topics([NewTopic(name, partitions, 1, config=config or {})]).values():
        f.result(10)
    return name


def produce(broker: str, topic: str, count: int, partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": broker, "linger.ms": 0})
    for i in range(count):
        p.produce(topic, value=b"v%d" % i, partition=partition)
    assert p.flush(10) == 0


def describe_topic(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    return admin.describe_configs([ConfigResource("topic", topic)])[ConfigResource("topic", topic)].result(10)


def kafka_error(fut: Any) -> Any:
    with pytest.raises(KafkaException) as info:
        fut.result(10)
    return info.value.args[0]


# ------------------------------------------------------------ ApiVersions


def test_api_versions_advertise_the_admin_apis(raw: Raw) -> None:
    resp = raw(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
    got = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert got[32] == (0, 4) and got[33] == (0, 2) and got[44] == (0, 1)
    assert got[21] == (0, 2) and got[23] == (0, 4) and got[35] == (0, 5) and got[75] == (0, 0)


# ------------------------------------------------------------ DescribeConfigs


def test_describe_topic_defaults_and_overrides(admin: AdminClient) -> None:
    topic = new_topic(admin, config={"retention.ms": "12345"})
    entries = describe_topic(admin, topic)
    retention = entries["retention.ms"]
    assert retention.value == "12345"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not retention.is_default and not retention.is_read_only
    syn = [(s.name, s.source) for s in retention.synonyms.values()]
    assert ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value) in syn
    assert syn[-1][1] == ConfigSource.DEFAULT_CONFIG.value and syn[-1][0].startswith("log.retention.")
    cleanup = entries["cleanup.policy"]
    assert cleanup.value == "delete" and cleanup.is_default
    assert cleanup.source == ConfigSource.DEFAULT_CONFIG.value


def test_describe_broker(admin: AdminClient) -> None:
    res = ConfigResource("broker", "0")
    entries = admin.describe_configs([res])[res].result(10)
    assert entries["num.partitions"].value == "1"
    assert entries["num.partitions"].is_read_only
    assert entries["log.retention.ms"].is_read_only is False  # dynamic in Kafka
    assert entries["log.dirs"].source in (ConfigSource.STATIC_BROKER_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value)


def test_describe_configs_raw_versions_and_errors(raw: Raw, admin: AdminClient) -> None:
    topic = new_topic(admin, config={"segment.ms": "600000"})
    for version in range(5):
        resp = raw(
            DescribeConfigsRequest(
                resources=[
                    DescribeConfigsResource(
                        resource_type=TOPIC, resource_name=topic, configuration_keys=["segment.ms", "nope"]
                    ),
                    DescribeConfigsResource(
                        resource_type=TOPIC, resource_name="missing-topic", configuration_keys=None
                    ),
                    DescribeConfigsResource(resource_type=TOPIC, resource_name="bad name!", configuration_keys=None),
                    DescribeConfigsResource(resource_type=BROKER, resource_name="7", configuration_keys=None),
                    DescribeConfigsResource(resource_type=BROKER, resource_name="x", configuration_keys=None),
                    DescribeConfigsResource(resource_type=BROKER, resource_name="", configuration_keys=None),
                    DescribeConfigsResource(resource_type=99, resource_name="x", configuration_keys=None),
                ],
                include_synonyms=True,
                include_documentation=True,
            ),
            version,
        )
        ok, missing, bad, other, notint, default, unknown = resp.results
        assert ok.error_code == 0 and [c.name for c in ok.configs] == ["segment.ms"]
        entry = ok.configs[0]
        assert entry.value == "600000"
        if version == 0:
            assert entry.is_default is False and entry.synonyms == []
        else:
            assert entry.config_source == 1  # DYNAMIC_TOPIC_CONFIG
            assert [s.source for s in entry.synonyms] == [1, 5]  # the override, then the broker default
            assert entry.synonyms[0].name == "segment.ms"
        if version >= 3:
            assert entry.config_type == 5  # LONG
            assert entry.documentation
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and missing.configs == []
        assert bad.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert other.error_code == ErrorCode.INVALID_REQUEST
        assert notint.error_code == ErrorCode.INVALID_REQUEST
        assert default.error_code == 0 and default.configs == []  # no dynamic cluster defaults
        assert unknown.error_code == ErrorCode.INVALID_REQUEST
    # Without include_synonyms / include_documentation the extras stay empty.
    resp = raw(
        DescribeConfigsRequest(
            resources=[DescribeConfigsResource(resource_type=TOPIC, resource_name=topic, configuration_keys=[])]
        ),
        4,
    )
    entries = resp.results[0].configs
    assert len(entries) > 20  # an empty key list means all, as in Kafka >= 2.6
    assert all(e.synonyms == [] and e.documentation is None for e in entries)


def test_kafka_python_describe_configs(broker: str, admin: AdminClient) -> None:
    kadmin = pytest.importorskip("kafka.admin")
    topic = new_topic(admin, config={"max.message.bytes": "2000"})
    client = kadmin.KafkaAdminClient(bootstrap_servers=broker)
    try:
        result = client.describe_configs([kadmin.ConfigResource("TOPIC", topic)], config_filter="all")
        text = repr(result)
        assert "max.message.bytes" in text and "2000" in text
    finally:
        client.close()


# ------------------------------------------------------------ Alter / IncrementalAlter


def test_incremental_alter_set_delete_append_subtract(admin: AdminClient) -> None:
    topic = new_topic(admin, config={"retention.bytes": "1000"})

    def alter(*entries: ConfigEntry) -> None:
        res = ConfigResource("topic", topic, incremental_configs=list(entries))
        admin.incremental_alter_configs([res])[res].result(10)

    alter(ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET))
    cfg = describe_topic(admin, topic)
    assert cfg["retention.ms"].value == "60000" and cfg["retention.bytes"].value == "1000"  # others kept

    alter(ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE))
    cfg = describe_topic(admin, topic)
    assert cfg["retention.bytes"].value == "-1" and cfg["retention.bytes"].is_default

    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    assert describe_topic(admin, topic)["cleanup.policy"].value == "delete,compact"
    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert describe_topic(admin, topic)["cleanup.policy"].value == "compact"


def test_incremental_alter_errors(admin: AdminClient) -> None:
    topic = new_topic(admin)

    def err(resource: ConfigResource) -> Any:
        return kafka_error(admin.incremental_alter_configs([resource])[resource])

    e = err(
        ConfigResource(
            "topic",
            topic,
            incremental_configs=[ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET)],
        )
    )
    assert e.code() == ErrorCode.INVALID_CONFIG and "Unknown topic config name" in e.str()
    e = err(
        ConfigResource(
            "topic",
            topic,
            incremental_configs=[ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)],
        )
    )
    assert e.code() == ErrorCode.INVALID_CONFIG
    e = err(
        ConfigResource(
            "topic",
            topic,
            incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)],
        )
    )
    assert e.code() == ErrorCode.INVALID_CONFIG and "not LIST" in e.str()
    e = err(
        ConfigResource(
            "topic",
            "no-such-topic",
            incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)],
        )
    )
    assert e.code() == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    e = err(
        ConfigResource(
            "broker",
            "0",
            incremental_configs=[ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)],
        )
    )
    assert e.code() == ErrorCode.INVALID_REQUEST and "Cannot update these configs dynamically" in e.str()
    e = err(
        ConfigResource(
            "broker",
            "0",
            incremental_configs=[ConfigEntry("log.retention.ms", "3", incremental_operation=AlterConfigOpType.SET)],
        )
    )
    assert e.code() == ErrorCode.INVALID_CONFIG
    # Nothing above changed the topic.
    assert all(c.is_default for c in describe_topic(admin, topic).values())


def test_validate_only_changes_nothing(admin: AdminClient) -> None:
    topic = new_topic(admin)
    res = ConfigResource(
        "topic",
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([res], validate_only=True)[res].result(10)
    assert describe_topic(admin, topic)["retention.ms"].is_default


def test_legacy_alter_replaces_all_overrides(admin: AdminClient) -> None:
    topic = new_topic(admin, config={"retention.ms": "70000", "segment.bytes": "1048576"})
    res = ConfigResource("topic", topic, set_config={"max.message.bytes": "4096"})
    admin.alter_configs([res])[res].result(10)
    cfg = describe_topic(admin, topic)
    assert cfg["max.message.bytes"].value == "4096"
    assert cfg["retention.ms"].is_default and cfg["segment.bytes"].is_default
    bad = ConfigResource("topic", topic, set_config={"unknown.name": "1"})
    e = kafka_error(admin.alter_configs([bad])[bad])
    assert e.code() == ErrorCode.INVALID_CONFIG and "Unknown topic config name: unknown.name" in e.str()


def test_alter_raw_duplicates_nulls_and_broker(raw: Raw, admin: AdminClient) -> None:
    topic = new_topic(admin)
    resp = raw(
        AlterConfigsRequest(
            resources=[
                AlterConfigsResource(
                    resource_type=TOPIC,
                    resource_name=topic,
                    configs=[
                        AlterableConfig(name="retention.ms", value="1"),
                        AlterableConfig(name="retention.ms", value="2"),
                    ],
                ),
                AlterConfigsResource(resource_type=BROKER, resource_name="", configs=[]),
                AlterConfigsResource(
                    resource_type=BROKER, resource_name="0", configs=[AlterableConfig(name="log.dirs", value="/x")]
                ),
                AlterConfigsResource(resource_type=BROKER, resource_name="abc", configs=[]),
            ]
        ),
        2,
    )
    codes = [r.error_code for r in resp.responses]
    assert codes == [ErrorCode.INVALID_REQUEST, 0, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST]
    assert [r.resource_name for r in resp.responses] == [topic, "", "0", "abc"]
    resp = raw(
        IncrementalAlterConfigsRequest(
            resources=[
                IncResource(
                    resource_type=TOPIC,
                    resource_name=topic,
                    configs=[IncAlterable(name="retention.ms", config_operation=SET, value=None)],
                ),
                IncResource(resource_type=TOPIC, resource_name=topic, configs=[]),
                IncResource(
                    resource_type=BROKER,
                    resource_name="0",
                    configs=[IncAlterable(name="num.partitions", config_operation=DELETE, value=None)],
                ),
                IncResource(
                    resource_type=TOPIC,
                    resource_name="other-" + topic,
                    configs=[IncAlterable(name="retention.ms", config_operation=9, value="1")],
                ),
            ]
        ),
        1,
    )
    codes = [r.error_code for r in resp.responses]
    # The topic appears twice: both entries fail as a duplicate resource.
    assert codes == [ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, 0, ErrorCode.INVALID_REQUEST]


def test_kafka_python_alter_configs(broker: str, admin: AdminClient) -> None:
    kadmin = pytest.importorskip("kafka.admin")
    topic = new_topic(admin)
    client = kadmin.KafkaAdminClient(bootstrap_servers=broker)
    try:
        client.alter_configs([kadmin.ConfigResource("TOPIC", topic, configs={"retention.ms": "99000"})])
        assert describe_topic(admin, topic)["retention.ms"].value == "99000"
        client.reset_configs([kadmin.ConfigResource("TOPIC", topic, configs={"retention.ms": None})])
        assert describe_topic(admin, topic)["retention.ms"].is_default
    finally:
        client.close()


# ------------------------------------------------------------ DeleteRecords


def test_delete_records(broker: str, admin: AdminClient) -> None:
    topic = new_topic(admin, partitions=2)
    produce(broker, topic, 10)
    tp = TopicPartition(topic, 0, 4)
    deleted = admin.delete_records([tp])[tp].result(10)
    assert deleted.low_watermark == 4  # the new low watermark
    # -1 means "up to the high watermark".
    tp = TopicPartition(topic, 0, -1)
    assert admin.delete_records([tp])[tp].result(10).low_watermark == 10
    # A lower offset than the current start is not an error: the start stays.
    tp = TopicPartition(topic, 0, 2)
    assert admin.delete_records([tp])[tp].result(10).low_watermark == 10
    # ListOffsets EARLIEST now reports the new start.
    from confluent_kafka.admin import OffsetSpec

    tp = TopicPartition(topic, 0)
    assert admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10).offset == 10
    tp = TopicPartition(topic, 1, 5)
    e = kafka_error(admin.delete_records([tp])[tp])
    assert e.code() == ErrorCode.OFFSET_OUT_OF_RANGE


def test_delete_records_raw_errors(broker: str, raw: Raw, admin: AdminClient) -> None:
    topic = new_topic(admin)
    compacted = new_topic(admin, config={"cleanup.policy": "compact"})
    produce(broker, topic, 3)
    resp = raw(
        DeleteRecordsRequest(
            topics=[
                DeleteRecordsTopic(
                    name=topic,
                    partitions=[
                        DeleteRecordsPartition(partition_index=0, offset=3),
                        DeleteRecordsPartition(partition_index=5, offset=0),
                    ],
                ),
                DeleteRecordsTopic(name="missing", partitions=[DeleteRecordsPartition(partition_index=0, offset=0)]),
                DeleteRecordsTopic(name=compacted, partitions=[DeleteRecordsPartition(partition_index=0, offset=0)]),
            ],
            timeout_ms=1000,
        ),
        2,
    )
    ok, bad_part = resp.topics[0].partitions
    assert (ok.error_code, ok.low_watermark) == (0, 3)
    assert (bad_part.error_code, bad_part.low_watermark) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)
    assert resp.topics[1].partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert resp.topics[2].partitions[0].error_code == ErrorCode.POLICY_VIOLATION


# ------------------------------------------------------------ OffsetForLeaderEpoch


def test_offset_for_leader_epoch(broker: str, raw: Raw, admin: AdminClient) -> None:
    topic = new_topic(admin, partitions=2)
    produce(broker, topic, 7)

    def ask(version: int, *parts: OffsetForLeaderPartition, name: str = topic) -> list[Any]:
        req = OffsetForLeaderEpochRequest(
            replica_id=-1, topics=[OffsetForLeaderTopic(topic=name, partitions=list(parts))]
        )
        return raw(req, version).topics[0].partitions

    for version in range(5):
        p0, p1, future, ahead = ask(
            version,
            OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=0),
            OffsetForLeaderPartition(partition=1, current_leader_epoch=0, leader_epoch=0),
            OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=5),
            OffsetForLeaderPartition(partition=0, current_leader_epoch=3 if version >= 2 else -1, leader_epoch=0),
        )
        assert (p0.error_code, p0.end_offset) == (0, 7)
        assert (p1.error_code, p1.end_offset) == (0, 0)  # empty partition: the leader's epoch starts at 0
        if version >= 1:
            assert p0.leader_epoch == 0
        assert (future.error_code, future.end_offset) == (0, -1)
        # current_leader_epoch exists from v2: a newer one than the broker's is unknown to it.
        assert ahead.error_code == (ErrorCode.UNKNOWN_LEADER_EPOCH if version >= 2 else 0)
    (missing,) = ask(4, OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=0), name="nope")
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    (missing,) = ask(4, OffsetForLeaderPartition(partition=9, current_leader_epoch=-1, leader_epoch=0))
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


# ------------------------------------------------------------ DescribeLogDirs


def test_describe_log_dirs(broker: str, raw: Raw, admin: AdminClient) -> None:
    topic = new_topic(admin, partitions=2)
    produce(broker, topic, 5, partition=1)
    for version in range(5):
        resp = raw(DescribeLogDirsRequest(topics=[DescribableLogDirTopic(topic=topic, partitions=[0, 1, 7])]), version)
        (result,) = resp.results
        assert result.error_code == 0 and os.path.isabs(result.log_dir)
        (t,) = result.topics
        sizes = {p.partition_index: p.partition_size for p in t.partitions}
        assert set(sizes) == {0, 1} and sizes[0] == 0 and sizes[1] > 0
        assert all(p.offset_lag == 0 and not p.is_future_key for p in t.partitions)
        if version >= 4:
            assert result.total_bytes > 0 and 0 <= result.usable_bytes <= result.total_bytes
    everything = raw(DescribeLogDirsRequest(topics=None), 4).results[0].topics
    assert topic in {t.name for t in everything}


def test_kafka_python_describe_log_dirs(broker: str, admin: AdminClient) -> None:
    kadmin = pytest.importorskip("kafka.admin")
    topic = new_topic(admin)
    client = kadmin.KafkaAdminClient(bootstrap_servers=broker)
    try:
        result = client.describe_log_dirs()
        assert topic in repr(result)
    finally:
        client.close()


# ------------------------------------------------------------ DescribeTopicPartitions


def test_describe_topic_partitions_pagination(raw: Raw, admin: AdminClient) -> None:
    a = new_topic(admin, partitions=3)
    b = new_topic(admin, partitions=2)
    first, second = sorted([a, b])
    sizes = {a: 3, b: 2}

    def page(cursor: Cursor | None, limit: int) -> Any:
        req = DescribeTopicPartitionsRequest(
            topics=[TopicRequest(name=b), TopicRequest(name=a), TopicRequest(name="zz-missing")],
            response_partition_limit=limit,
            cursor=cursor,
        )
        return raw(req, 0)

    seen: list[tuple[str, int]] = []
    cursor = None
    for _ in range(10):
        resp = page(cursor, 2)
        for t in resp.topics:
            if t.error_code == 0:
                assert t.topic_authorized_operations > 0 and not t.is_internal
                for p in t.partitions:
                    assert p.eligible_leader_replicas == [] and p.last_known_elr == []
                    seen.append((t.name, p.partition_index))
            else:
                assert (t.name, t.error_code) == ("zz-missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        cursor = resp.next_cursor
        if cursor is None:
            break
    expected = [(first, i) for i in range(sizes[first])] + [(second, i) for i in range(sizes[second])]
    assert seen == expected
    # Whole answer in one page.
    resp = page(None, 100)
    assert resp.next_cursor is None and [t.name for t in resp.topics] == [first, second, "zz-missing"]
    # A cursor naming a topic outside the request is invalid.
    resp = page(Cursor(topic_name="elsewhere", partition_index=0), 10)
    assert {t.error_code for t in resp.topics} == {ErrorCode.INVALID_REQUEST}


def test_describe_topic_partitions_all_topics(raw: Raw, admin: AdminClient) -> None:
    name = new_topic(admin, partitions=2)
    resp = raw(DescribeTopicPartitionsRequest(topics=[], response_partition_limit=2000), 0)
    by_name = {t.name: t for t in resp.topics}
    assert len(by_name[name].partitions) == 2
    assert by_name[name].partitions[0].leader_id == 0


def test_kafka_python_describe_topic_partitions(broker: str, admin: AdminClient) -> None:
    kadmin = pytest.importorskip("kafka.admin")
    name = new_topic(admin, partitions=3)
    client = kadmin.KafkaAdminClient(bootstrap_servers=broker)
    try:
        result = client.describe_topic_partitions([name])
        assert name in repr(result)
    finally:
        client.close()


def test_librdkafka_validates_position_with_offset_for_leader_epoch(broker: str, admin: AdminClient) -> None:
    """A position carrying a leader epoch makes librdkafka send OffsetForLeaderEpoch before fetching."""
    from confluent_kafka import Consumer

    topic = new_topic(admin)
    produce(broker, topic, 6)
    c = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        c.assign([TopicPartition(topic, 0, 3, leader_epoch=0)])
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                got.append(m.offset())
        assert got == [3, 4, 5]
    finally:
        c.close()
