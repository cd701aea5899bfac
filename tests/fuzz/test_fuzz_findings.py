"""Regression tests for what the protocol fuzzer (tests/fuzz/engine.py, scripts/fuzz.py) found, each
against a real broker process with kafkapy's own codec. docs/reliability.md ("Fuzzing") lists them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_partitions_request import CreatePartitionsRequest, CreatePartitionsTopic
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.testing import BrokerFactory, BrokerProcess
from tests.server.rawclient import RawClient

INT32_MAX = 2**31 - 1


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    factory = BrokerFactory(tmp_path_factory.mktemp("fuzz-findings"))
    try:
        yield factory()
    finally:
        factory.stop_all()


def _partitions(client: RawClient, topic: str) -> int:
    resp = client.request(
        MetadataRequest(topics=[MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False), 9
    )
    return len(resp.topics[0].partitions)


def test_create_partitions_past_the_batch_limit_is_refused_at_once(broker: BrokerProcess) -> None:
    """Found by the fuzzer: CreatePartitions with count 2^31-1 made the broker allocate partitions
    until it held gigabytes, every other connection stalled. Kafka's controller refuses an operation of
    more than 10,000 records: POLICY_VIOLATION for every topic of the request."""
    with RawClient(broker.bootstrap) as client:
        client.request(
            CreateTopicsRequest(topics=[CreatableTopic(name="grow", num_partitions=1, replication_factor=1)]), 5
        )
        started = time.monotonic()
        for validate_only in (True, False):
            req = CreatePartitionsRequest(
                topics=[
                    CreatePartitionsTopic(name="grow", count=INT32_MAX, assignments=None),
                    CreatePartitionsTopic(name="missing", count=3, assignments=None),
                ],
                timeout_ms=1000,
                validate_only=validate_only,
            )
            resp = client.request(req, 3)
            assert [(r.name, r.error_code, r.error_message) for r in resp.results] == [
                (name, ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
                for name in ("grow", "missing")
            ]
        assert time.monotonic() - started < 5
        assert _partitions(client, "grow") == 1
        # 10,000 more is the most one request may add, and it is not refused for its size
        resp = client.request(
            CreatePartitionsRequest(
                topics=[CreatePartitionsTopic(name="grow", count=10_001, assignments=None)],
                timeout_ms=1000,
                validate_only=True,
            ),
            3,
        )
        assert resp.results[0].error_code == ErrorCode.NONE


def test_create_topics_past_the_batch_limit_is_refused_at_once(broker: BrokerProcess) -> None:
    """The same bound for CreateTopics (Kafka's validateTotalNumberOfPartitions): the partitions of
    every topic of the request count, -1 as the default num.partitions."""
    with RawClient(broker.bootstrap) as client:
        req = CreateTopicsRequest(
            topics=[
                CreatableTopic(name="huge", num_partitions=INT32_MAX, replication_factor=1),
                CreatableTopic(name="small", num_partitions=1, replication_factor=1),
            ],
            timeout_ms=1000,
        )
        resp = client.request(req, 7)
        assert [(t.name, t.error_code, t.error_message, t.num_partitions) for t in resp.topics] == [
            (name, ErrorCode.POLICY_VIOLATION, "Excessively large number of partitions per request.", -1)
            for name in ("huge", "small")
        ]
        split = CreateTopicsRequest(
            topics=[CreatableTopic(name=f"half-{i}", num_partitions=5_001, replication_factor=1) for i in range(2)],
            validate_only=True,
        )
        assert {t.error_code for t in client.request(split, 7).topics} == {ErrorCode.POLICY_VIOLATION}
        meta = client.request(
            MetadataRequest(topics=[MetadataRequestTopic(name="small")], allow_auto_topic_creation=False), 9
        )
        assert meta.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_deleting_a_topic_with_the_longest_name(broker: BrokerProcess) -> None:
    """Found by the fuzzer: DeleteTopics of a topic whose name has the 249 characters Kafka allows
    failed (UNKNOWN_SERVER_ERROR, its log left behind): `<name>-0.<uuid>-delete` is past the 255
    bytes of a file name. Kafka cuts the topic part of that name; so does kafkapy."""
    from kafkapy.protocol.messages.delete_topics_request import DeleteTopicsRequest

    name = "d" * 249
    with RawClient(broker.bootstrap) as client:
        for _ in range(2):  # and again under the same name
            created = client.request(
                CreateTopicsRequest(topics=[CreatableTopic(name=name, num_partitions=2, replication_factor=1)]), 5
            )
            assert created.topics[0].error_code == ErrorCode.NONE
            assert (broker.data_dir / f"{name}-1").is_dir()
            deleted = client.request(DeleteTopicsRequest(topic_names=[name], timeout_ms=5000), 3)
            assert [(r.name, r.error_code) for r in deleted.responses] == [(name, ErrorCode.NONE)]
            assert not (broker.data_dir / f"{name}-0").exists() and not (broker.data_dir / f"{name}-1").exists()
    renamed = [p.name for p in broker.data_dir.iterdir() if p.name.startswith("ddd") and p.name.endswith("-delete")]
    assert all(len(n) <= 255 for n in renamed)


def test_a_string_with_invalid_utf8_is_read_as_kafka_reads_it(broker: BrokerProcess) -> None:
    """Found by the fuzzer: a request whose topic name is not valid UTF-8 closed the connection.
    Kafka reads strings as Java's String(bytes, UTF_8) does, U+FFFD for malformed bytes, and answers
    (here: an invalid topic name); the connection stays open."""
    from kafkapy.protocol.frames import decode_response, encode_request

    with RawClient(broker.bootstrap) as client:
        for version in (4, 9):  # a classic string, a compact one
            req = MetadataRequest(topics=[MetadataRequestTopic(name="QQQQ")], allow_auto_topic_creation=False)
            frame = encode_request(req, version, 77, client_id="fuzz")
            client.send_raw(frame.replace(b"QQQQ", b"\xff\xfeQQ"))
            cid, resp = decode_response(req.API_KEY, version, client.read_frame())
            assert cid == 77
            assert [(t.name, t.error_code) for t in resp.topics] == [
                ("\ufffd\ufffdQQ", ErrorCode.INVALID_TOPIC_EXCEPTION)
            ]
        assert _partitions(client, "grow") >= 1  # still served
