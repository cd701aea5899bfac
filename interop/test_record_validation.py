"""Record validation (issue 14) as real clients see it: librdkafka (confluent-kafka) and
kafka-python against a kafkapy broker process.

- a compacted topic refuses records without a key, a topic with a timestamp window refuses
  records outside it, with the error each client reports for Kafka's codes;
- a batch whose header says maxTimestamp = -1 is stored with the max of its records, so clients
  find its records by time;
- a batch whose bytes disagree with its count is refused and nothing of it is stored: consumers
  read the partition to its end without a corrupt-record error;
- compression.type recompresses what producers send, and consumers read it back;
- every refused append is one log line naming topic, partition, client id and reason.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import InvalidRecordError as KpInvalidRecord
from kafka.errors import InvalidTimestampError as KpInvalidTimestamp

from interop._common import BrokerProcess, unique_topic
from interop.raw_batches import raw_batch, rec
from kafkapy.protocol import records
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.produce_response import ProduceResponse

HOUR = 3_600_000


def _create(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, 1, 1, config=configs)]).values():
        fut.result(15)


@pytest.fixture(scope="module")
def topics(broker: BrokerProcess) -> Iterator[dict[str, str]]:
    names = {
        "compact": unique_topic("val-compact"),
        "window": unique_topic("val-window"),
        "plain": unique_topic("val-plain"),
        "zstd": unique_topic("val-zstd"),
        "difference": unique_topic("val-difference"),
    }
    _create(broker.bootstrap, names["compact"], {"cleanup.policy": "compact"})
    _create(
        broker.bootstrap,
        names["window"],
        {"message.timestamp.before.max.ms": str(HOUR), "message.timestamp.after.max.ms": str(HOUR)},
    )
    _create(broker.bootstrap, names["plain"], {})
    _create(broker.bootstrap, names["zstd"], {"compression.type": "zstd"})
    _create(broker.bootstrap, names["difference"], {"message.timestamp.difference.max.ms": str(HOUR)})
    yield names


def _librdkafka_errors(bootstrap: str, topic: str, items: list[tuple[bytes | None, int | None]]) -> list[int | None]:
    """Produce each (key, timestamp) with librdkafka; the error code each delivery report gives."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0, "client.id": "val-rdkafka"})
    codes: list[int | None] = []

    def report(err: KafkaError | None, _msg: object) -> None:
        codes.append(None if err is None else err.code())

    for key, ts in items:
        if ts is None:
            p.produce(topic, b"value", key, on_delivery=report)
        else:
            p.produce(topic, b"value", key, timestamp=ts, on_delivery=report)
        p.flush(15)
    return codes


def _rejections(broker: BrokerProcess, topic: str) -> list[dict[str, object]]:
    out = []
    for line in broker.log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "produce rejected" and event.get("topic") == topic:
            out.append(event)
    return out


def test_compacted_topic_refuses_records_without_key(broker: BrokerProcess, topics: dict[str, str]) -> None:
    topic = topics["compact"]
    codes = _librdkafka_errors(broker.bootstrap, topic, [(b"k", None), (None, None)])
    assert codes == [None, KafkaError.INVALID_RECORD]
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, client_id="val-kafka-python")
    try:
        with pytest.raises(KpInvalidRecord):
            kp.send(topic, b"value").get(15)
        kp.send(topic, b"value", key=b"k2").get(15)
    finally:
        kp.close()
    lines = _rejections(broker, topic)
    assert [(e["partition"], e["error"], e["level"]) for e in lines] == [(0, "INVALID_RECORD", "error")] * 2
    assert {e["client_id"] for e in lines} == {"val-rdkafka", "val-kafka-python"}
    assert all("without key" in str(e["reason"]) for e in lines)


def test_timestamps_outside_the_window_are_refused(broker: BrokerProcess, topics: dict[str, str]) -> None:
    topic = topics["window"]
    now = int(time.time() * 1000)
    codes = _librdkafka_errors(broker.bootstrap, topic, [(b"k", now), (b"k", now - 2 * HOUR), (b"k", now + 2 * HOUR)])
    assert codes == [None, KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_TIMESTAMP]
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        with pytest.raises(KpInvalidTimestamp):
            kp.send(topic, b"v", key=b"k", timestamp_ms=now - 3 * HOUR).get(15)
    finally:
        kp.close()
    assert [e["error"] for e in _rejections(broker, topic)] == ["INVALID_TIMESTAMP"] * 3
    # the older message.timestamp.difference.max.ms (removed in Kafka 4, kept by kafkapy) bounds both sides
    codes = _librdkafka_errors(
        broker.bootstrap, topics["difference"], [(b"k", now), (b"k", now - 2 * HOUR), (b"k", now + 2 * HOUR)]
    )
    assert codes == [None, KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_TIMESTAMP]


def _produce_raw(bootstrap: str, topic: str, data: bytes) -> int:
    """One raw Produce v9 of ``data`` to partition 0; the partition's error code."""
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=data)])],
    )
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(encode_request(req, 9, 1, client_id="val-raw"))
        size = struct.unpack(">i", _read(s, 4))[0]
        _, resp = decode_response(ProduceRequest.API_KEY, 9, _read(s, size))
    assert isinstance(resp, ProduceResponse)
    return int(resp.responses[0].partition_responses[0].error_code)


def _read(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def _to_log_end(c: KafkaConsumer, tp: Any) -> list[Any]:
    """Every record of `tp` up to its log end offset (taken first: everything is written by
    then), without waiting out consumer_timeout_ms after the last one; that timeout still
    ends the read if records are missing."""
    end = c.end_offsets([tp])[tp]
    out: list[Any] = []
    if end == 0:
        return out
    for m in c:
        out.append(m)
        if m.offset + 1 >= end:
            break
    return out


def test_unset_max_timestamp_is_recomputed_so_clients_find_records_by_time(
    broker: BrokerProcess, topics: dict[str, str]
) -> None:
    topic = topics["plain"]
    base = int(time.time() * 1000) - 60_000
    data = raw_batch(rec(0, 0) + rec(1, 10_000) + rec(2, 20_000), 3, base_ts=base, max_ts=-1)
    assert _produce_raw(broker.bootstrap, topic, data) == 0
    # a batch whose bytes disagree with its count: refused, nothing stored
    assert _produce_raw(broker.bootstrap, topic, raw_batch(rec(0) + rec(1), 3)) == 87
    assert _produce_raw(broker.bootstrap, topic, raw_batch(rec(0) + rec(1), 2, base_ts=base + 30_000)) == 0

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        tp_kp = __import__("kafka").TopicPartition(topic, 0)
        found = c.offsets_for_times({tp_kp: base + 15_000})
        assert found[tp_kp] is not None and found[tp_kp].offset == 2
        c.assign([tp_kp])
        c.seek_to_beginning(tp_kp)
        got = [(m.offset, m.timestamp) for m in _to_log_end(c, tp_kp)]
    finally:
        c.close()
    assert got == [(0, base), (1, base + 10_000), (2, base + 20_000), (3, base + 30_000), (4, base + 30_000)]

    from confluent_kafka import Consumer

    rc = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "val-times"})
    try:
        (tp,) = rc.offsets_for_times([TopicPartition(topic, 0, base + 5_000)], 10)
        assert tp.offset == 1
    finally:
        rc.close()
    assert [e["client_id"] for e in _rejections(broker, topic)] == ["val-raw"]


def test_compression_type_recompresses_what_producers_send(broker: BrokerProcess, topics: dict[str, str]) -> None:
    topic = topics["zstd"]
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=5)
    try:
        for i in range(20):
            kp.send(topic, f"value-{i}".encode() * 20, key=f"k{i}".encode())
        kp.flush(15)
    finally:
        kp.close()
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        values = [m.value for m in _to_log_end(c, __import__("kafka").TopicPartition(topic, 0))]
    finally:
        c.close()
    assert values == [f"value-{i}".encode() * 20 for i in range(20)]
    log = Path(broker.data_dir) / f"{topic}-0" / "00000000000000000000.log"
    data = log.read_bytes()
    codecs = {h.compression for _, h in records.iter_batches(data)}
    assert codecs == {4}


def test_pure_python_scan_gives_the_same_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KAFKAPY_NO_ACCELERATOR=1: the broker walks records with the reference scan, same answers."""
    from interop._common import start_broker

    answers = {}
    for scan, env in (("compiled", None), ("python", "1")):
        if env is None:
            monkeypatch.delenv("KAFKAPY_NO_ACCELERATOR", raising=False)
        else:
            monkeypatch.setenv("KAFKAPY_NO_ACCELERATOR", env)
        b = start_broker(tmp_path / scan / "data")
        try:
            ready = next(
                json.loads(line)
                for line in b.log_path.read_text().splitlines()
                if line.startswith("{") and json.loads(line).get("event") == "broker_ready"
            )
            assert ready["record_scan"] == scan
            _create(b.bootstrap, "t", {"cleanup.policy": "compact"})
            base = int(time.time() * 1000)
            answers[scan] = [
                _produce_raw(b.bootstrap, "t", data)
                for data in (
                    raw_batch(rec(0) + rec(1, 5), 2, base_ts=base, max_ts=-1),
                    raw_batch(rec(0) + rec(1, key=None), 2, base_ts=base),
                    raw_batch(rec(0) + rec(0), 2, base_ts=base),
                    raw_batch(rec(0) + rec(1, length_fix=3), 2, base_ts=base),
                    raw_batch(b"\xff\xff\xff\xff\xff\xff\x01" + rec(0)[1:], 1, base_ts=base),
                )
            ]
        finally:
            b.stop()
    assert answers["compiled"] == answers["python"] == [0, 87, 87, 87, -1]


def test_broker_compression_type_is_the_topics_default(tmp_path: Path) -> None:
    """compression.type set on the broker (with its KIP-390 level) applies to topics that do not set it."""
    from confluent_kafka import Consumer

    from interop._common import start_broker

    # no initial rebalance delay: the group read below does not wait 3 s for other members
    b = start_broker(
        tmp_path / "data",
        {"compression.type": "lz4", "compression.lz4.level": "12", "group.initial.rebalance.delay.ms": "0"},
    )
    try:
        _create(b.bootstrap, "plain", {})
        _create(b.bootstrap, "kept", {"compression.type": "producer"})
        for topic in ("plain", "kept"):
            p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": "snappy", "linger.ms": 5})
            for i in range(50):
                p.produce(topic, f"value-{i}".encode() * 30, f"k{i}".encode())
            p.flush(15)
        codecs = {
            topic: {
                h.compression
                for _, h in records.iter_batches((b.data_dir / f"{topic}-0" / ("0" * 20 + ".log")).read_bytes())
            }
            for topic in ("plain", "kept")
        }
        assert codecs == {"plain": {3}, "kept": {2}}
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "val-lz4", "auto.offset.reset": "earliest"})
        try:
            c.subscribe(["plain"])
            got: list[bytes] = []
            deadline = time.monotonic() + 20
            while len(got) < 50 and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    got.append(m.value())
        finally:
            c.close()
        assert got == [f"value-{i}".encode() * 30 for i in range(50)]
    finally:
        b.stop()
