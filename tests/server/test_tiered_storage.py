"""Tiered storage end to end: a broker copies a topic's closed segments to an object store (SeaweedFS
over S3, or a directory), deletes the local copies, and clients read from offset 0 as before."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.testing import BrokerProcess, free_port
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic

confluent_kafka = pytest.importorskip("confluent_kafka")

TOPIC = "tiered"
RECORDS = 400


def broker_settings(store: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "remote.log.storage.system.enable": "true",
        "remote.log.manager.task.interval.ms": "200",
        "remote.log.manager.task.retry.backoff.ms": "100",
        "remote.log.manager.task.retry.backoff.max.ms": "400",
        "log.retention.check.interval.ms": "200",
        "kafkapy.metrics.listen": f"127.0.0.1:{free_port()}",
        **store,
        **more,
    }


def list_offset(bootstrap: str, ts: int) -> tuple[int, int, int]:
    """(error, offset, timestamp) of ListOffsets v11 for `ts`."""
    with RawClient(bootstrap) as c:
        req = ListOffsetsRequest(
            replica_id=-1,
            topics=[ListOffsetsTopic(name=TOPIC, partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts)])],
            timeout_ms=10_000,
        )
        p = c.request(req, 11).topics[0].partitions[0]
        return p.error_code, p.offset, p.timestamp


def fetch_at(bootstrap: str, offset: int, replica_id: int = -1) -> tuple[int, int]:
    """(error, record bytes) of one Fetch v12 of partition 0 at `offset`."""
    with RawClient(bootstrap, timeout=30) as c:
        req = FetchRequest(
            replica_id=replica_id,
            max_wait_ms=100,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic=TOPIC,
                    partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)],
                )
            ],
        )
        pd = c.request(req, 12).responses[0].partitions[0]
        return pd.error_code, len(bytes(pd.records or b""))


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def produce(bootstrap: str, start: int, count: int) -> None:
    p = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.size": 512, "enable.idempotence": True}
    )
    for i in range(start, start + count):
        p.produce(TOPIC, key=f"k{i}".encode(), value=f"value-{i:06d}-".encode() * 6)
        p.poll(0)
    assert p.flush(30) == 0


def consume_all(bootstrap: str, expected: int) -> list[int]:
    """Every record's number, read by a new group from the earliest offset."""
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    got: list[int] = []
    try:
        c.subscribe([TOPIC])
        deadline = time.monotonic() + 60
        while len(got) < expected and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert value is not None
            got.append(int(value.split(b"-")[1]))
    finally:
        c.close()
    return got


def scrape(broker: BrokerProcess) -> str:
    url = f"http://{broker.settings['kafkapy.metrics.listen']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not served")


def s3_keys(s3: Any, prefix: str) -> list[str]:
    from kafkapy.storage.remote import open_object_store

    async def keys() -> list[str]:
        store = open_object_store(s3.object_store_config(prefix))
        try:
            return [key for key, _ in await store.list("")]
        finally:
            await store.close()

    return asyncio.run(keys())


def tier_and_read(broker: BrokerProcess) -> None:
    """Create the tiered topic, produce, wait for copies and local deletion, read everything."""
    t0 = int(time.time() * 1000) - 1
    with RawClient(broker.bootstrap) as c:
        assert (
            create_topic(
                c,
                TOPIC,
                **{"remote.storage.enable": "true", "internal.segment.bytes": "4096", "local.retention.bytes": "1"},
            )
            == ErrorCode.NONE
        )
    produce(broker.bootstrap, 0, RECORDS)
    wait_for(lambda: list_offset(broker.bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")
    err, earliest, _ = list_offset(broker.bootstrap, -2)
    assert (err, earliest) == (0, 0)
    local_start = list_offset(broker.bootstrap, -4)[1]
    latest_tiered = list_offset(broker.bootstrap, -5)[1]
    assert latest_tiered >= local_start - 1 >= 0
    assert list_offset(broker.bootstrap, -6)[1] == latest_tiered + 1
    assert list_offset(broker.bootstrap, -1)[1] == RECORDS
    err, found, ts = list_offset(broker.bootstrap, t0)  # the first record is in remote storage only
    assert (err, found) == (0, 0) and ts >= t0
    assert fetch_at(broker.bootstrap, 0, replica_id=1)[0] == ErrorCode.OFFSET_MOVED_TO_TIERED_STORAGE
    assert consume_all(broker.bootstrap, RECORDS) == list(range(RECORDS))
    text = scrape(broker)
    assert metric(text, "kafka_server_brokertopicmetrics_remotecopybytes_total") > 0
    assert metric(text, "kafka_server_brokertopicmetrics_remotecopyrequests_total") > 0
    assert metric(text, "kafka_server_brokertopicmetrics_remotefetchbytes_total") > 0
    assert metric(text, "kafka_server_brokertopicmetrics_remotefetchrequests_total") > 0
    assert metric(text, "kafka_server_brokertopicmetrics_remotefetcherrors_total") == 0
    assert metric(text, f'kafka_server_brokertopicmetrics_remotelogsizebytes{{topic="{TOPIC}"}}') > 0
    assert metric(text, f'kafka_server_brokertopicmetrics_remotelogmetadatacount{{topic="{TOPIC}"}}') > 0


def test_tiered_topic_on_s3(kafka_broker_factory: Any, s3_server_factory: Any) -> None:
    s3 = s3_server_factory()
    store = {
        "rsm.config.storage.s3.endpoint.url": s3.endpoint,
        "rsm.config.storage.s3.bucket.name": s3.bucket,
        "rsm.config.storage.s3.region": s3.region,
        "rsm.config.storage.aws.access.key.id": s3.access_key_id,
        "rsm.config.storage.aws.secret.access.key": s3.secret_access_key,
        "rsm.config.key.prefix": "cluster-a",
    }
    broker = kafka_broker_factory(broker_settings(store, **{"remote.fetch.max.wait.ms": "10000"}))
    tier_and_read(broker)
    assert any(key.endswith(".log") for key in s3_keys(s3, "cluster-a"))
    broker_lines = [line for line in broker.log_path.read_text().splitlines() if not line.startswith("--- start:")]
    assert not any(s3.secret_access_key in line for line in broker_lines)  # the harness's command line aside

    broker.stop()
    broker.start()
    assert list_offset(broker.bootstrap, -2)[1] == 0
    assert consume_all(broker.bootstrap, RECORDS) == list(range(RECORDS))

    # the object store gone (and the broker's caches with a restart): produce and local reads work,
    # a remote read answers UNKNOWN_SERVER_ERROR
    s3.stop()
    broker.stop()
    broker.start()
    produce(broker.bootstrap, RECORDS, 20)
    local_start = list_offset(broker.bootstrap, -4)[1]
    err, size = fetch_at(broker.bootstrap, local_start)
    assert err == ErrorCode.NONE and size > 0
    assert fetch_at(broker.bootstrap, 0)[0] == ErrorCode.UNKNOWN_SERVER_ERROR
    assert metric(scrape(broker), "kafka_server_brokertopicmetrics_remotefetcherrors_total") >= 1

    # back: copying resumes (its retry backoff is short) and everything reads again
    s3.start()
    wait_for(lambda: list_offset(broker.bootstrap, -5)[1] >= RECORDS - 20, 60, "copies after the store came back")
    # a restarted SeaweedFS answers "volume 1 not found" for old objects until its volume server has
    # registered again (writes go to new volumes at once): remote reads work again within seconds
    wait_for(lambda: fetch_at(broker.bootstrap, 0)[0] == ErrorCode.NONE, 30, "remote reads after the store came back")
    assert consume_all(broker.bootstrap, RECORDS + 20) == list(range(RECORDS + 20))

    # deleting the topic deletes its objects
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([TOPIC])[TOPIC].result(15)
    wait_for(lambda: not s3_keys(s3, "cluster-a"), 30, "the deleted topic's objects")


def test_tiered_topic_in_a_directory(kafka_broker_factory: Any, tmp_path: Path) -> None:
    store = {"rsm.config.storage.root": str(tmp_path / "remote")}
    broker = kafka_broker_factory(broker_settings(store))
    tier_and_read(broker)
    assert any((tmp_path / "remote").rglob("*.log"))
    assert any((broker.data_dir / "remote-log-metadata").glob("*.json"))
    broker.stop()
    broker.start()
    assert consume_all(broker.bootstrap, RECORDS) == list(range(RECORDS))

    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    off = ConfigResource(
        "topic",
        TOPIC,
        incremental_configs=[
            ConfigEntry("remote.storage.enable", "false", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(confluent_kafka.KafkaException, match="It is invalid to disable remote storage"):
        admin.incremental_alter_configs([off])[off].result(15)
    off_and_delete = ConfigResource(
        "topic",
        TOPIC,
        incremental_configs=[
            ConfigEntry("remote.storage.enable", "false", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("remote.log.delete.on.disable", "true", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([off_and_delete])[off_and_delete].result(15)  # KIP-950: remote data deleted
    wait_for(lambda: not any((tmp_path / "remote").rglob("*.log")), 30, "remote segments deleted on disable")

    # the remote segments go first, then the log start moves up to the local start
    def at_local_start() -> bool:
        start = list_offset(broker.bootstrap, -2)[1]
        return start > 0 and start == list_offset(broker.bootstrap, -4)[1]

    wait_for(at_local_start, 30, "log start at the local start")
    local_start = list_offset(broker.bootstrap, -2)[1]
    assert consume_all(broker.bootstrap, RECORDS - local_start) == list(range(local_start, RECORDS))
    produce(broker.bootstrap, RECORDS, 10)
    admin.delete_topics([TOPIC])[TOPIC].result(15)
    wait_for(lambda: not any((broker.data_dir / "remote-log-metadata").glob("*.json")), 30, "its remote metadata")


def test_untiered_broker_serves_no_remote_metrics(kafka_broker_factory: Any) -> None:
    broker = kafka_broker_factory({"kafkapy.metrics.listen": f"127.0.0.1:{free_port()}"})
    assert "remotecopybytes" not in scrape(broker)


def test_broker_without_the_flag_logs_kafkas_error_for_tiered_topics(kafka_broker_factory: Any, tmp_path: Path) -> None:
    broker = kafka_broker_factory(broker_settings({"rsm.config.storage.root": str(tmp_path / "remote")}))
    with RawClient(broker.bootstrap) as c:
        assert create_topic(c, TOPIC, **{"remote.storage.enable": "true"}) == ErrorCode.NONE
    broker.stop()
    broker.settings["remote.log.storage.system.enable"] = "false"
    broker.start()
    assert "You have to delete all topics with the property remote.storage.enable=true" in broker.log_path.read_text()
    produce(broker.bootstrap, 0, 5)  # its local data is served
    assert consume_all(broker.bootstrap, 5) == list(range(5))


def test_one_remote_read_per_fetch(kafka_broker_factory: Any, tmp_path: Path) -> None:
    """As Kafka: of the partitions a fetch must read remotely only the first is; the others answer
    empty without error (the client asks again)."""
    broker = kafka_broker_factory(broker_settings({"rsm.config.storage.root": str(tmp_path / "remote")}))
    configs = {"remote.storage.enable": "true", "internal.segment.bytes": "4096", "local.retention.bytes": "1"}
    with RawClient(broker.bootstrap) as c:
        assert create_topic(c, TOPIC, partitions=2, **configs) == ErrorCode.NONE
    p = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.size": 512})
    for i in range(200):
        p.produce(TOPIC, value=f"value-{i:06d}-".encode() * 6, partition=i % 2)
    assert p.flush(30) == 0

    def local_start(partition: int) -> int:
        with RawClient(broker.bootstrap) as c:
            req = ListOffsetsRequest(
                replica_id=-1,
                topics=[
                    ListOffsetsTopic(
                        name=TOPIC, partitions=[ListOffsetsPartition(partition_index=partition, timestamp=-4)]
                    )
                ],
            )
            offset: int = c.request(req, 9).topics[0].partitions[0].offset
            return offset

    wait_for(lambda: local_start(0) > 0 and local_start(1) > 0, 30, "both partitions tiered")
    with RawClient(broker.bootstrap) as c:
        req = FetchRequest(
            replica_id=-1,
            max_wait_ms=100,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic=TOPIC,
                    partitions=[
                        FetchPartition(partition=i, fetch_offset=0, partition_max_bytes=1 << 20) for i in (0, 1)
                    ],
                )
            ],
        )
        first, second = c.request(req, 12).responses[0].partitions
    assert (first.error_code, second.error_code) == (0, 0)
    assert len(bytes(first.records or b"")) > 0 and len(bytes(second.records or b"")) == 0


def test_delete_records_moves_the_log_start_across_remote_segments(kafka_broker_factory: Any, tmp_path: Path) -> None:
    """Kafka's AdminClient.deleteRecords to an offset only in remote storage: the log start moves there,
    the remote segments wholly below it are deleted, and a consumer from the earliest starts at it."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    remote = tmp_path / "remote"
    broker = kafka_broker_factory(broker_settings({"rsm.config.storage.root": str(remote)}))
    tier_and_read(broker)
    local_start = list_offset(broker.bootstrap, -4)[1]
    segments_before = sorted(remote.rglob("*.log"))
    target = local_start // 2
    assert 0 < target < local_start
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [done] = admin.delete_records([TopicPartition(TOPIC, 0, target)]).values()
    assert done.result(15).low_watermark == target
    assert list_offset(broker.bootstrap, -2)[1] == target
    assert list_offset(broker.bootstrap, -4)[1] == local_start
    assert fetch_at(broker.bootstrap, target - 1)[0] == ErrorCode.OFFSET_OUT_OF_RANGE
    wait_for(lambda: len(list(remote.rglob("*.log"))) < len(segments_before), 30, "remote segments below it deleted")
    assert consume_all(broker.bootstrap, RECORDS - target) == list(range(target, RECORDS))
