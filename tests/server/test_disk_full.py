"""A broker whose data dir fills up (a 16 MiB tmpfs the test mounts and fills): produce answers
KAFKA_STORAGE_ERROR on a connection that stays open, what is stored stays readable, librdkafka
retries and delivers once space is freed (no restart), one log line says the directory is full
and one that it takes writes again, and a crash afterwards recovers every acknowledged record.
docs/reliability.md, "Disks"."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import Producer

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.testing import BrokerFactory, BrokerProcess, free_port
from tests.disk import fill, tmpfs
from tests.server.rawclient import RawClient

TOPIC = "disk"


def _produce(c: RawClient, n: int, size: int) -> tuple[int, int]:
    batch = bytes(records.build_batch([(b"raw", b"r" * size, [], int(time.time() * 1000))] * n))
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=0, records=batch)])],
    )
    p = c.request(req, 9).responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def _latest(c: RawClient) -> int:
    req = ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        topics=[ListOffsetsTopic(name=TOPIC, partitions=[ListOffsetsPartition(partition_index=0, timestamp=-1)])],
    )
    p = c.request(req, 7).topics[0].partitions[0]
    assert p.error_code == 0
    return int(p.offset)


def _fetch_values(c: RawClient) -> list[bytes]:
    out: list[bytes] = []
    offset = 0
    while True:
        req = FetchRequest(
            max_wait_ms=0,
            min_bytes=1,
            max_bytes=8 << 20,
            topics=[
                FetchTopic(
                    topic=TOPIC,
                    partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=8 << 20)],
                )
            ],
        )
        pd = c.request(req, 12).responses[0].partitions[0]
        assert pd.error_code == 0, ErrorCode(pd.error_code).name
        got = [r for _, r in records.iter_all_records(bytes(pd.records or b"")) if r.offset >= offset]
        if not got:
            return out
        out.extend(bytes(r.value or b"") for r in got)
        offset = got[-1].offset + 1


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_full_data_dir_refuses_produce_serves_reads_and_recovers(kafka_broker_factory: BrokerFactory) -> None:
    broker = kafka_broker_factory(start=False)
    with tmpfs(broker.data_dir.parent / "disk", "16m") as disk:
        broker.data_dir = disk / "data"
        broker.start()
        try:
            _run(broker.bootstrap, disk, broker)
        finally:
            broker.stop()


def _run(bootstrap: str, disk: Path, broker: BrokerProcess) -> None:
    rd_log = _Captured()
    logger = logging.getLogger("test_disk_full.rdkafka")
    logger.addHandler(rd_log)
    logger.setLevel(logging.DEBUG)
    with RawClient(bootstrap) as c:
        create = CreateTopicsRequest(
            topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1, configs=[])], timeout_ms=5000
        )
        assert c.request(create, 7).topics[0].error_code == 0
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "message.timeout.ms": 60000,
            "retry.backoff.ms": 100,
            "debug": "msg",
            "logger": logger,
        }
    )
    delivered: list[tuple[bytes, int]] = []
    failed: list[str] = []

    def report(err: object, msg: object) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            delivered.append((msg.value(), msg.offset()))  # type: ignore[attr-defined]

    for i in range(200):
        producer.produce(TOPIC, b"a%d-" % i + b"x" * 1000, callback=report)
    assert producer.flush(20) == 0
    assert len(delivered) == 200 and not failed

    filler = disk / "filler"
    fill(filler)

    with RawClient(bootstrap) as c:
        # refused, answered, and the connection stays open for the reads
        assert _produce(c, 20, 1000) == (ErrorCode.KAFKA_STORAGE_ERROR, -1)
        assert _produce(c, 20, 1000) == (ErrorCode.KAFKA_STORAGE_ERROR, -1)  # (a tiny one may still fit its page)
        assert _latest(c) == 200
        values = _fetch_values(c)
        assert values == [v for v, _ in delivered]
        assert c.request(ApiVersionsRequest(), 3).error_code == 0

        # librdkafka: the batch is refused (KAFKA_STORAGE_ERROR, retriable), retried, not delivered
        for i in range(50):
            producer.produce(TOPIC, b"b%d-" % i + b"y" * 1000, callback=report)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            producer.poll(0.1)
        assert len(delivered) == 200 and not failed
        refusals = [ln for ln in rd_log.lines if "Disk error when trying to access log file on disk" in ln]
        assert len(refusals) >= 2, rd_log.lines[-20:]  # Kafka's message for error code 56, seen and retried

        filler.unlink()  # space again: the retries get through without a restart
        assert producer.flush(30) == 0
        assert len(delivered) == 250 and not failed
        assert _produce(c, 20, 1000)[0] == ErrorCode.NONE
        assert _latest(c) == 270
        stored = _fetch_values(c)
        assert stored[:250] == [v for v, _ in delivered]  # each once, in order: nothing lost or doubled
        assert [o for _, o in delivered] == list(range(250))

    deadline = time.monotonic() + 10  # housekeeping looks at the free space every second
    while "event=log_dir.online" not in broker.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = broker.log_path.read_text()
    assert text.count("event=log_dir.full") == 1, text[-3000:]
    assert text.count("event=log_dir.online") == 1
    assert "Traceback" not in text and "UNKNOWN_SERVER_ERROR" not in text
    assert "request failed" not in text

    # a crash now: everything acknowledged is there after recovery, and no half batch was left
    broker.restart(kill=True)
    with RawClient(bootstrap) as c:
        assert _fetch_values(c) == stored
    assert "segment.truncate_tail" not in broker.log_path.read_text()


def test_broker_restarted_on_a_full_disk_serves_reads_and_recovers(kafka_broker_factory: BrokerFactory) -> None:
    """Stopped while its disk is full (no clean shutdown marker can be written) and started again on
    it: the logs load (their checkpoints wait for space), reads are served, produce is refused
    until the filler goes, then works without another restart."""
    broker = kafka_broker_factory(start=False)
    with tmpfs(broker.data_dir.parent / "disk", "16m") as disk:
        broker.data_dir = disk / "data"
        broker.start()
        try:
            with RawClient(broker.bootstrap) as c:
                create = CreateTopicsRequest(
                    topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1, configs=[])],
                    timeout_ms=5000,
                )
                assert c.request(create, 7).topics[0].error_code == 0
                for _ in range(5):
                    assert _produce(c, 20, 1000)[0] == ErrorCode.NONE
                stored = _fetch_values(c)
            fill(disk / "filler")
            broker.restart()  # SIGTERM, then start on the full disk
            with RawClient(broker.bootstrap) as c:
                assert _fetch_values(c) == stored
                assert _latest(c) == 100
                assert _produce(c, 20, 1000) == (ErrorCode.KAFKA_STORAGE_ERROR, -1)
                # the metadata file cannot be rewritten: the topic is refused, and not half made
                other = CreateTopicsRequest(
                    topics=[CreatableTopic(name="other", num_partitions=1, replication_factor=1, configs=[])],
                    timeout_ms=5000,
                )
                assert c.request(other, 7).topics[0].error_code == ErrorCode.KAFKA_STORAGE_ERROR
                (disk / "filler").unlink()
                assert _produce(c, 20, 1000) == (ErrorCode.NONE, 100)
                assert c.request(other, 7).topics[0].error_code == ErrorCode.NONE
                assert len(_fetch_values(c)) == 120
            assert "Traceback" not in broker.log_path.read_text()
        finally:
            broker.stop()


def test_offline_log_dir_metrics(kafka_broker_factory: BrokerFactory) -> None:
    """kafka_log_logmanager_offlinelogdirectorycount (and LogDirectoryOffline of the dir) is 1 from the
    first refused write while the data dir is full, and 0 again once it takes writes (docs/monitoring.md)."""
    from tests.server.test_metrics_endpoint import scrape, value

    port = free_port()
    broker = kafka_broker_factory(start=False, extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    base = f"http://127.0.0.1:{port}"
    count = "kafka_log_logmanager_offlinelogdirectorycount"
    with tmpfs(broker.data_dir.parent / "disk", "16m") as disk:
        broker.data_dir = disk / "data"
        broker.start()
        each = {"logDirectory": str(broker.data_dir)}
        try:
            before = scrape(base)
            assert value(before, count) == 0
            assert ("kafka_log_logmanager_logdirectoryoffline", (("logDirectory", str(broker.data_dir)),)) in before
            with RawClient(broker.bootstrap) as c:
                create = CreateTopicsRequest(
                    topics=[CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1, configs=[])],
                    timeout_ms=5000,
                )
                assert c.request(create, 7).topics[0].error_code == 0
                assert _produce(c, 20, 1000)[0] == ErrorCode.NONE
                fill(disk / "filler")
                assert _produce(c, 20, 1000)[0] == ErrorCode.KAFKA_STORAGE_ERROR
                full = scrape(base)
                assert value(full, count) == 1
                assert value(full, "kafka_log_logmanager_logdirectoryoffline", **each) == 1
                (disk / "filler").unlink()
                deadline = time.monotonic() + 10  # housekeeping looks at the free space every second
                while value(scrape(base), count) != 0:
                    assert time.monotonic() < deadline, "the data dir never back online in the metrics"
                    time.sleep(0.1)
                assert value(scrape(base), "kafka_log_logmanager_logdirectoryoffline", **each) == 0
                assert _produce(c, 20, 1000)[0] == ErrorCode.NONE
        finally:
            broker.stop()
