"""Idempotent producer against the broker process: InitProducerId, dedup, errors, restarts."""

from __future__ import annotations

import time

import pytest

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreatableTopicConfig, CreateTopicsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient


def init_pid(c: RawClient, version: int = 4, **kw: object) -> tuple[int, int, int]:
    req = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000)
    for k, v in kw.items():
        setattr(req, k, v)
    r = c.request(req, version)
    return r.error_code, r.producer_id, r.producer_epoch


def create_topic(c: RawClient, name: str, **configs: str) -> None:
    req = CreateTopicsRequest(
        topics=[CreatableTopic(name=name, num_partitions=1, replication_factor=1,
                               configs=[CreatableTopicConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()])],
        timeout_ms=5000,
    )  # fmt: skip
    assert c.request(req, 7).topics[0].error_code == 0


def batch(seq: int, pid: int, epoch: int = 0, n: int = 1, tag: bytes = b"v") -> bytes:
    now = int(time.time() * 1000)
    recs = [(None, tag + b"%d" % (seq + i), [], now) for i in range(n)]
    return records.build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def produce(c: RawClient, topic: str, data: bytes, version: int = 9) -> tuple[int, int]:
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=data)])],
    )
    p = c.request(req, version).responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def values(c: RawClient, topic: str) -> list[bytes]:
    out: list[bytes] = []
    while True:  # one fetch returns at most one segment's data
        req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=64 << 20, topics=[
            FetchTopic(topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=len(out), partition_max_bytes=64 << 20)])
        ])  # fmt: skip
        pd = c.request(req, 12).responses[0].partitions[0]
        assert pd.error_code == 0
        got = [r for _, r in records.iter_all_records(bytes(pd.records)) if r.offset >= len(out)]
        if not got:
            return out
        out += [r.value or b"" for r in got]


def test_init_producer_id_every_version(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        api = {k.api_key: (k.min_version, k.max_version) for k in c.request(ApiVersionsRequest(), 3).api_keys}
        assert api[22] == (0, 5)
        pids = []
        for v in range(6):
            err, pid, epoch = init_pid(c, v)
            assert (err, epoch) == (0, 0) and pid >= 0
            pids.append(pid)
        assert len(set(pids)) == 6
        # v3+ with the current id/epoch (KIP-360): a non-transactional producer gets a fresh id, as from Kafka.
        err, pid, epoch = init_pid(c, 4, producer_id=pids[-1], producer_epoch=0)
        assert err == 0 and pid not in pids and epoch == 0


def test_transactional_id_goes_to_the_transaction_coordinator(kafka_broker: BrokerProcess) -> None:
    # Transactions proper are tested in test_transactions.py.
    with RawClient(kafka_broker.bootstrap) as c:
        assert init_pid(c, 4, transactional_id="tx")[0] == ErrorCode.NONE
        assert init_pid(c, 4, transactional_id="")[0] == ErrorCode.INVALID_REQUEST


def test_retry_gap_and_stale_epoch(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, "idem")
        _, pid, _ = init_pid(c)
        assert produce(c, "idem", batch(0, pid, n=3)) == (0, 0)
        assert produce(c, "idem", batch(3, pid, n=2)) == (0, 3)
        assert produce(c, "idem", batch(0, pid, n=3)) == (0, 0), "retry: original offset"
        assert produce(c, "idem", batch(3, pid, n=2)) == (0, 3)
        assert produce(c, "idem", batch(7, pid))[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, "idem", batch(5, pid)) == (0, 5)
        # The client bumps its own epoch; sequences restart at 0.
        assert produce(c, "idem", batch(3, pid, epoch=1))[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, "idem", batch(0, pid, epoch=1, tag=b"e")) == (0, 6)
        assert produce(c, "idem", batch(6, pid, epoch=0))[0] == ErrorCode.INVALID_PRODUCER_EPOCH
        assert produce(c, "idem", batch(1, pid, epoch=1, tag=b"e"), version=3) == (0, 7)
        assert values(c, "idem") == [b"v0", b"v1", b"v2", b"v3", b"v4", b"v5", b"e0", b"e1"]
        # A producer id with no base sequence, transactional and control batches.
        assert (
            produce(c, "idem", records.build_batch([(None, b"x", [], None)], producer_id=pid, producer_epoch=1))[0]
            == ErrorCode.INVALID_RECORD
        )
        tx = records.build_batch(
            [(None, b"x", [], None)], producer_id=pid, producer_epoch=1, base_sequence=2, is_transactional=True
        )
        # no transactional id in the request: Kafka 4.3.1 answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert produce(c, "idem", tx)[0] == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        ctl = records.build_control_batch(
            records.ControlRecordType.COMMIT,
            producer_id=pid,
            producer_epoch=1,
            coordinator_epoch=0,
            timestamp=int(time.time() * 1000),
        )
        assert produce(c, "idem", ctl)[0] == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert len(values(c, "idem")) == 8


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "clean"])
def test_state_survives_restart(kafka_broker_factory, kill: bool) -> None:
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        create_topic(c, "durable", internal_segment_bytes="2000")  # several rolls: snapshot plus scan after it
        _, pid, _ = init_pid(c)
        for s in range(0, 60, 3):
            assert produce(c, "durable", batch(s, pid, n=3, tag=b"x" * 50)) == (0, s)
    broker.restart(kill=kill)
    with RawClient(broker.bootstrap) as c:
        assert produce(c, "durable", batch(57, pid, n=3, tag=b"x" * 50)) == (0, 57), (
            "retry after restart is deduplicated"
        )
        assert produce(c, "durable", batch(51, pid, n=3, tag=b"x" * 50)) == (0, 51)
        assert produce(c, "durable", batch(61, pid))[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, "durable", batch(60, pid)) == (0, 60)
        assert len(values(c, "durable")) == 61
        _, pid2, _ = init_pid(c)
        assert pid2 > pid, "producer ids are never reused across restarts"


# -- real clients ------------------------------------------------------------------------


def batches(c: RawClient, topic: str) -> list[records.BatchHeader]:
    out: list[records.BatchHeader] = []
    offset = 0
    while True:
        req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=64 << 20, topics=[
            FetchTopic(topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=64 << 20)])
        ])  # fmt: skip
        data = bytes(c.request(req, 12).responses[0].partitions[0].records)
        got = [h for _, h in records.iter_batches(data) if h.last_offset >= offset]
        if not got:
            return out
        out += got
        offset = got[-1].next_offset


def assert_idempotent_exactly_once(bootstrap: str, topic: str, sent: list[bytes]) -> None:
    with RawClient(bootstrap) as c:
        assert values(c, topic) == sent
        hs = batches(c, topic)
        assert hs and all(h.producer_id >= 0 and h.base_sequence >= 0 for h in hs), (
            "the client did not produce idempotently"
        )


def test_kafka_python_default_producer(kafka_broker: BrokerProcess) -> None:
    kafka = pytest.importorskip("kafka")
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, "kp-idem")
    sent = [b"kp-%d" % i for i in range(500)]
    producer = kafka.KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)  # defaults: idempotence on
    for v in sent:
        producer.send("kp-idem", v)
    producer.flush()
    producer.close()
    consumer = kafka.KafkaConsumer("kp-idem", bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest",
                                   enable_auto_commit=False, consumer_timeout_ms=3000)  # fmt: skip
    # read up to the log end offset (a duplicate raises it, and shows in `got`) rather than
    # waiting out consumer_timeout_ms after the last record; that timeout still ends a short read
    tp = kafka.TopicPartition("kp-idem", 0)
    end = consumer.end_offsets([tp])[tp]
    got: list[bytes] = []
    for m in consumer:
        got.append(m.value)
        if m.offset + 1 >= end:
            break
    consumer.close()
    assert got == sent
    assert_idempotent_exactly_once(kafka_broker.bootstrap, "kp-idem", sent)


def test_confluent_idempotent_producer(kafka_broker: BrokerProcess) -> None:
    ck = pytest.importorskip("confluent_kafka")
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, "ck-idem")
    sent = [b"ck-%d" % i for i in range(2000)]
    p = ck.Producer({"bootstrap.servers": kafka_broker.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                     "batch.num.messages": 50})  # fmt: skip
    errors: list[object] = []
    for v in sent:
        p.produce("ck-idem", v, partition=0, on_delivery=lambda err, msg: errors.append(err) if err else None)
        p.poll(0)
    assert p.flush(20) == 0 and not errors
    assert_idempotent_exactly_once(kafka_broker.bootstrap, "ck-idem", sent)


def test_kafkajs_idempotent_producer(kafka_broker: BrokerProcess) -> None:
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node_dir = Path(__file__).resolve().parents[2] / "interop" / "node"
    if shutil.which("node") is None or not (node_dir / "node_modules" / "kafkajs").is_dir():
        pytest.skip("node or kafkajs not installed (scripts/test installs them)")
    with RawClient(kafka_broker.bootstrap) as c:
        create_topic(c, "kjs-idem")
    sent = [f"kjs-{i}" for i in range(100)]
    req = json.dumps({"bootstrap": kafka_broker.bootstrap, "topic": "kjs-idem", "values": sent})
    out = subprocess.run(
        ["node", str(node_dir / "idempotent.js")], input=req, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert_idempotent_exactly_once(kafka_broker.bootstrap, "kjs-idem", [v.encode() for v in sent])


def test_confluent_idempotent_producer_across_broker_sigkill(kafka_broker_factory) -> None:
    """Batches in flight when the broker dies are retried after the restart:
    the ones already written are deduplicated, so the log holds every record once, in order."""
    ck = pytest.importorskip("confluent_kafka")
    broker = kafka_broker_factory()
    with RawClient(broker.bootstrap) as c:
        create_topic(c, "ck-kill")
    sent = [b"m-%06d" % i for i in range(20000)]
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 1,
                     "batch.num.messages": 200, "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 200})  # fmt: skip
    errors: list[object] = []
    acked = 0

    def on_delivery(err: object, msg: object) -> None:
        nonlocal acked
        if err:
            errors.append(err)
        else:
            acked += 1

    for i, v in enumerate(sent):
        while True:
            try:
                p.produce("ck-kill", v, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i == len(sent) // 2:
            p.poll(0.05)
            broker.kill()
            broker.start()
    assert p.flush(60) == 0 and not errors, errors[:3]
    assert acked == len(sent)
    assert_idempotent_exactly_once(broker.bootstrap, "ck-kill", sent)
