"""Cross-client: records produced by one client, consumed by another, for
every ordered pair of clients and every codec both support. Catches broker
behaviour that one client tolerates and another doesn't (batch framing,
header encoding, codec framing such as xerial snappy or lz4 frames)."""

from __future__ import annotations

import pytest

from interop._common import BrokerProcess, ClientAdapter, Out, unique_topic
from interop.adapters.aiokafka_client import AiokafkaClient
from interop.adapters.confluent import ConfluentClient
from interop.adapters.java import JavaClient
from interop.adapters.kafka_python import KafkaPythonClient
from interop.adapters.kafkajs import KafkajsClient
from interop.adapters.kcat import KcatClient
from interop.scenarios import CODEC_IDS, by_offset

ADAPTERS: dict[str, ClientAdapter] = {
    a.name: a
    for a in (ConfluentClient(), KafkaPythonClient(), AiokafkaClient(), KcatClient(), KafkajsClient(), JavaClient())
}
PAIRS = [(p, c) for p in ADAPTERS for c in ADAPTERS if p != c]
PER_CODEC = 20


@pytest.mark.compat("cross")
@pytest.mark.parametrize(("producer", "consumer"), PAIRS, ids=[f"{p}->{c}" for p, c in PAIRS])
def test_produce_with_one_client_consume_with_another(broker: BrokerProcess, producer: str, consumer: str) -> None:
    prod, cons = ADAPTERS[producer], ADAPTERS[consumer]
    codecs = [c for c in prod.codecs if c in cons.codecs]
    topic = unique_topic(f"x-{producer}-{consumer}")
    ConfluentClient().create_topic(broker.bootstrap, topic, 1)
    sent: list[Out] = []
    for codec in codecs:
        batch = [
            Out(
                None if i % 5 == 1 else f"{codec}-k{i}".encode(),  # some without key
                None if i % 7 == 3 else f"{producer}:{codec}:{i}:".encode() + b"x" * 200,  # some tombstones
                (("codec", codec.encode()), ("from", producer.encode())),
            )
            for i in range(PER_CODEC)
        ]
        prod.produce(broker.bootstrap, topic, batch, codec=codec)
        sent += batch
    got = by_offset(cons.consume(broker.bootstrap, topic, {0: 0}, len(sent)))
    assert [r.offset for r in got] == list(range(len(sent)))
    assert [(r.key, r.value) for r in got] == [(s.key, s.value) for s in sent]
    assert [r.headers for r in got] == [s.headers for s in sent]
    assert set(CODEC_IDS) >= set(codecs)
