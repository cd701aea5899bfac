"""Connection limits against a kafkapy broker process (docs/reliability.md, "Connections and memory").

- The raw-socket scenario of interop/diff_connections.py gives the outcomes Apache Kafka 4.3.1 gave
  (golden file): max.connections.per.ip and its overrides, socket.request.max.bytes, an IP's
  connection_creation_rate quota.
- librdkafka (confluent-kafka) against max.connections.per.ip=2 while two raw connections hold both
  slots: its bootstrap connection is closed and list_topics fails; once they close, it connects,
  produces and reads back what it produced.
"""

from __future__ import annotations

import gc
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop import diff_connections as dc
from interop._common import BrokerProcess, start_broker, unique_topic


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(tmp_path_factory.mktemp("connections") / "data", dict(dc.SETTINGS))
    try:
        yield b
    finally:
        b.stop()


def test_outcomes_as_kafka(broker: BrokerProcess) -> None:
    golden = dc.load()
    answers = dc.run(broker.bootstrap, settle=0.1)
    differences = {k: (answers.get(k), golden.get(k)) for k in golden.keys() | answers.keys()}
    differences = {k: v for k, v in differences.items() if v[0] != v[1]}
    assert not differences, json.dumps(differences, indent=1, sort_keys=True)
    log = Path(broker.log_path).read_text(errors="replace")
    assert "connection_rejected_max_per_ip" in log and "request_size_invalid" in log
    assert "connection_throttled" in log


def test_librdkafka_sees_max_connections_per_ip(tmp_path: Path) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    broker = start_broker(tmp_path / "data", {"max.connections.per.ip": "2", "num.partitions": "1"})
    try:
        host, port = broker.host, broker.port
        held = [socket.create_connection((host, port)) for _ in range(2)]
        errors: list[str] = []
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "error_cb": lambda e: errors.append(str(e)),
                "reconnect.backoff.ms": 100,
                "reconnect.backoff.max.ms": 200,
                "log_level": 0,  # its "Disconnected" lines are expected here
            }
        )
        with pytest.raises(confluent_kafka.KafkaException):
            producer.list_topics(timeout=3)
        producer.poll(1)  # serves the error callbacks
        assert errors, "librdkafka reported no error while its connections were refused"
        for s in held:
            s.close()
        topic = unique_topic("conn-limit")
        producer.list_topics(timeout=15)
        for i in range(10):
            producer.produce(topic, value=f"v{i}".encode())
        assert producer.flush(15) == 0
        del producer  # its connections count too: the consumer's two need them back
        gc.collect()
        time.sleep(0.5)
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "g", "auto.offset.reset": "earliest", "log_level": 0}
        )
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        got: list[bytes] = []
        for _ in range(50):
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            if len(got) == 10:
                break
        consumer.close()
        assert got == [f"v{i}".encode() for i in range(10)]
        assert "connection_rejected_max_per_ip" in Path(broker.log_path).read_text(errors="replace")
    finally:
        broker.stop()
