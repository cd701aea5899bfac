"""The single-node broker as a real process: errors for bad input, durability, recovery."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient

confluent_kafka = pytest.importorskip("confluent_kafka")


def produce(client: RawClient, topic: str, data: bytes, partition: int = 0, acks: int = -1, version: int = 9):
    req = ProduceRequest(
        acks=acks,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=data)])],
    )
    return client.request(req, version).responses[0].partition_responses[0]


def create_topic(client: RawClient, name: str, partitions: int = 1, **configs: str) -> int:
    from kafkapy.protocol.messages.create_topics_request import CreatableTopicConfig

    req = CreateTopicsRequest(
        topics=[
            CreatableTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                configs=[CreatableTopicConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()],
            )
        ],
        timeout_ms=5000,
    )
    return client.request(req, 7).topics[0].error_code


def fetch_all(client: RawClient, topic: str, partition: int = 0, offset: int = 0) -> list[records.Record]:
    req = FetchRequest(
        max_wait_ms=0,
        min_bytes=1,
        max_bytes=64 << 20,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=64 << 20)],
            )
        ],
    )
    resp = client.request(req, 12)
    pd = resp.responses[0].partitions[0]
    assert pd.error_code == 0, ErrorCode(pd.error_code).name
    return [r for _, r in records.iter_all_records(bytes(pd.records))]


def test_api_versions_unsupported_version_answers_v0_with_error(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        # An ApiVersions v99 request (header v2 layout, empty tagged fields).
        body = struct.pack(">hhih", 18, 99, 7, 4) + b"test" + b"\x00" + b"\x00\x00\x00"
        c.send_raw(struct.pack(">i", len(body)) + body)
        frame = c.read_frame()
        from kafkapy.protocol.messages.api_versions_response import ApiVersionsResponse

        cid = struct.unpack_from(">i", frame)[0]
        resp = ApiVersionsResponse.decode(frame[4:], 0)
        assert cid == 7
        assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
        assert any(k.api_key == 0 for k in resp.api_keys)


def test_advertised_versions_are_served(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        resp = c.request(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
        assert resp.error_code == 0
        keys = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
        assert keys[0] == (0, 13) and keys[1][1] == 18 and keys[3] == (0, 13)


def test_produce_errors_are_per_partition(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "errs") == 0
        batch = bytearray(records.build_batch([(b"k", b"v", [], int(time.time() * 1000))]))
        # Unknown topic.
        assert produce(c, "no-such-topic", bytes(batch)).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        # Unknown partition.
        assert produce(c, "errs", bytes(batch), partition=5).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        # Corrupt CRC.
        bad = bytearray(batch)
        bad[-1] ^= 0xFF
        assert produce(c, "errs", bytes(bad)).error_code == ErrorCode.CORRUPT_MESSAGE
        # Wrong magic.
        bad = bytearray(batch)
        bad[16] = 7
        assert produce(c, "errs", bytes(bad)).error_code == ErrorCode.CORRUPT_MESSAGE
        # Invalid acks.
        assert produce(c, "errs", bytes(batch), acks=2).error_code == ErrorCode.INVALID_REQUIRED_ACKS
        # And a good one still lands at offset 0: nothing bad was written.
        ok = produce(c, "errs", bytes(batch))
        assert (ok.error_code, ok.base_offset) == (0, 0)


def test_message_too_large(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "small", max_message_bytes="1000") == 0
        batch = records.build_batch([(None, b"x" * 5000, [], int(time.time() * 1000))])
        assert produce(c, "small", batch).error_code == ErrorCode.MESSAGE_TOO_LARGE


def test_metadata_unknown_and_invalid_topics(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        req = MetadataRequest(
            topics=[MetadataRequestTopic(name="bad/name"), MetadataRequestTopic(name="unknown-no-create")],
            allow_auto_topic_creation=False,
        )
        resp = c.request(req, 12)
        codes = {t.name: t.error_code for t in resp.topics}
        assert codes == {
            "bad/name": ErrorCode.INVALID_TOPIC_EXCEPTION,
            "unknown-no-create": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }
        # Auto-creation when allowed.
        resp = c.request(
            MetadataRequest(topics=[MetadataRequestTopic(name="auto-made")], allow_auto_topic_creation=True), 12
        )
        assert resp.topics[0].error_code == 0 and len(resp.topics[0].partitions) == 1


def test_create_topic_errors(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "dup") == 0
        assert create_topic(c, "dup") == ErrorCode.TOPIC_ALREADY_EXISTS
        assert create_topic(c, "bad name!") == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert create_topic(c, "zero", partitions=0) == ErrorCode.INVALID_PARTITIONS
        assert create_topic(c, "cfg", retention_ms="abc") == ErrorCode.INVALID_CONFIG
        assert create_topic(c, "cfg2", no_such_config="1") == ErrorCode.INVALID_CONFIG


def test_fetch_out_of_range_and_list_offsets(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "lo") == 0
        t0 = int(time.time() * 1000) - 10_000
        for i in range(3):
            produce(c, "lo", records.build_batch([(None, b"%d" % i, [], t0 + i * 1000)]))
        req = FetchRequest(
            max_wait_ms=0,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic="lo", partitions=[FetchPartition(partition=0, fetch_offset=99, partition_max_bytes=1 << 20)]
                )
            ],
        )
        pd = c.request(req, 12).responses[0].partitions[0]
        assert pd.error_code == ErrorCode.OFFSET_OUT_OF_RANGE and pd.high_watermark == -1  # as Kafka answers

        def list_offset(ts: int) -> tuple[int, int]:
            resp = c.request(
                ListOffsetsRequest(
                    replica_id=-1,
                    topics=[
                        ListOffsetsTopic(name="lo", partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts)])
                    ],
                ),
                7,
            )
            p = resp.topics[0].partitions[0]
            return p.offset, p.timestamp

        assert list_offset(-2)[0] == 0
        assert list_offset(-1)[0] == 3
        assert list_offset(t0 + 1500) == (2, t0 + 2000)
        assert list_offset(-3) == (2, t0 + 2000)
        assert list_offset(t0 + 99_000)[0] == -1


def test_fetch_long_poll_is_woken_by_produce(kafka_broker) -> None:
    import threading

    with RawClient(kafka_broker.bootstrap) as c, RawClient(kafka_broker.bootstrap) as p:
        assert create_topic(c, "poll") == 0
        req = FetchRequest(
            max_wait_ms=10_000,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic="poll", partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)]
                )
            ],
        )
        timer = threading.Timer(
            0.5, lambda: produce(p, "poll", records.build_batch([(None, b"wake", [], int(time.time() * 1000))]))
        )
        started = time.monotonic()
        timer.start()
        resp = c.request(req, 12)
        elapsed = time.monotonic() - started
        timer.join()
        assert len(resp.responses[0].partitions[0].records) > 0
        assert elapsed < 5, elapsed


def test_garbage_closes_only_that_connection(kafka_broker) -> None:
    with (
        RawClient(kafka_broker.bootstrap) as good,
        RawClient(kafka_broker.bootstrap) as bad,
        RawClient(kafka_broker.bootstrap) as huge,
        RawClient(kafka_broker.bootstrap) as unknown,
    ):
        bad.send_raw(struct.pack(">i", 12) + os.urandom(4) + b"\x00\x03" + os.urandom(6))
        huge.send_raw(struct.pack(">i", 200 * 1024 * 1024))
        unknown.send_raw(struct.pack(">ihhi", 10, 999, 0, 1) + b"\xff\xff")
        assert huge.is_closed_by_peer()
        assert unknown.is_closed_by_peer()
        assert bad.is_closed_by_peer()
        assert good.request(ApiVersionsRequest(), 0).error_code == 0


def test_sigkill_during_acks_all_loses_no_acknowledged_record(kafka_broker_factory) -> None:
    broker = kafka_broker_factory()
    topic = "durable"
    with RawClient(broker.bootstrap) as c:
        assert create_topic(c, topic, partitions=3) == 0
    acked: dict[tuple[int, int], bytes] = {}

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 3000,
            "retries": 0,
        }
    )
    deadline = time.monotonic() + 20
    i = 0
    killed = False
    while time.monotonic() < deadline and not killed:
        try:
            producer.produce(topic, key=b"%d" % (i % 7), value=b"value-%d" % i, on_delivery=on_delivery)
        except BufferError:  # librdkafka's queue is full (a busy machine): wait for acknowledgements
            producer.poll(0.05)
            continue
        i += 1
        producer.poll(0)
        if len(acked) >= 3000:
            broker.kill()
            killed = True
    producer.flush(5)
    assert killed and len(acked) >= 3000
    broker.restart()
    with RawClient(broker.bootstrap) as c:
        for partition in range(3):
            got = fetch_all(c, topic, partition)
            offsets = [r.offset for r in got]
            assert offsets == list(range(len(offsets))), "offsets must be contiguous"
            stored = {r.offset: r.value for r in got}
            for (p, off), value in acked.items():
                if p == partition:
                    assert stored.get(off) == value


def test_truncated_segment_tail_is_repaired_on_start(kafka_broker_factory) -> None:
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        assert create_topic(c, "torn") == 0
        for i in range(10):
            produce(c, "torn", records.build_batch([(None, b"r%d" % i, [], int(time.time() * 1000))]))
    broker.kill()
    seg = next(Path(broker.data_dir, "torn-0").glob("*.log"))
    size = seg.stat().st_size
    with open(seg, "r+b") as f:  # cut the last batch in half and add junk
        f.truncate(size - 20)
        f.seek(0, 2)
        f.write(b"\x00\x01garbage")
    broker.restart()
    with RawClient(broker.bootstrap) as c:
        got = fetch_all(c, "torn")
        assert [r.value for r in got] == [b"r%d" % i for i in range(9)]
        ok = produce(c, "torn", records.build_batch([(None, b"after", [], int(time.time() * 1000))]))
        assert (ok.error_code, ok.base_offset) == (0, 9)
        assert [r.value for r in fetch_all(c, "torn")][-1] == b"after"


def test_clean_restart_keeps_everything(kafka_broker_factory) -> None:
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        assert create_topic(c, "keep", partitions=2) == 0
        for i in range(20):
            produce(
                c,
                "keep",
                records.build_batch([(b"k", b"v%d" % i, [("h", b"1")], int(time.time() * 1000))]),
                partition=i % 2,
            )
    broker.stop()
    broker.restart()
    with RawClient(broker.bootstrap) as c:
        got = fetch_all(c, "keep", 0) + fetch_all(c, "keep", 1)
        assert sorted(r.value for r in got) == sorted(b"v%d" % i for i in range(20))
        assert all(r.headers == [("h", b"1")] for r in got)


def test_incremental_fetch_session(kafka_broker) -> None:
    from kafkapy.protocol.messages.fetch_request import ForgottenTopic

    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "sess", partitions=2) == 0
        for p in range(2):
            produce(c, "sess", records.build_batch([(None, b"p%d" % p, [], int(time.time() * 1000))]), partition=p)
        parts = [FetchPartition(partition=p, fetch_offset=0, partition_max_bytes=1 << 20) for p in range(2)]
        full = FetchRequest(
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            session_id=0,
            session_epoch=0,
            topics=[FetchTopic(topic="sess", partitions=parts)],
        )
        resp = c.request(full, 11)
        assert resp.error_code == 0 and resp.session_id > 0
        assert sorted(p.partition_index for p in resp.responses[0].partitions) == [0, 1]
        sid = resp.session_id
        # Incremental: move partition 0 past its data; nothing changed, so nothing comes back.
        inc = FetchRequest(
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            session_id=sid,
            session_epoch=1,
            topics=[
                FetchTopic(
                    topic="sess", partitions=[FetchPartition(partition=0, fetch_offset=1, partition_max_bytes=1 << 20)]
                )
            ],
        )
        resp = c.request(inc, 11)
        assert resp.error_code == 0 and resp.session_id == sid
        # Partition 1 still has unread data at offset 0 and is returned; partition 0 is not.
        assert [p.partition_index for t in resp.responses for p in t.partitions] == [1]
        # New data on partition 0 makes it reappear.
        produce(c, "sess", records.build_batch([(None, b"more", [], int(time.time() * 1000))]), partition=0)
        inc2 = FetchRequest(
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            session_id=sid,
            session_epoch=2,
            topics=[],
            forgotten_topics_data=[ForgottenTopic(topic="sess", partitions=[1])],
        )
        resp = c.request(inc2, 11)
        got = {p.partition_index: p for t in resp.responses for p in t.partitions}
        assert list(got) == [0] and got[0].high_watermark == 2
        # A wrong epoch is refused; an unknown session too.
        bad = FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, session_id=sid, session_epoch=9, topics=[])
        assert c.request(bad, 11).error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
        gone = FetchRequest(
            max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, session_id=sid + 1000, session_epoch=1, topics=[]
        )
        assert c.request(gone, 11).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
