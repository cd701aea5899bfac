"""Real clients over TLS against a real kafkapy broker process: librdkafka (confluent-kafka and
kcat), kafka-python, aiokafka and the Java client; produce, consume with a group, an admin call;
mutual TLS with a mapped principal; SASL_SSL with PLAIN; and the bad inputs on a TLS port
(plaintext bytes, a handshake that never finishes), each logged with listener and peer."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker, unique_topic, wait_until
from interop.certs import STORE_PASSWORD, Pki, broker_p12_settings, broker_pem_settings, make_pki

MAPPING = "RULE:^CN=([^,]+)(,.*)?$/$1/L,DEFAULT"
COUNT = 300


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_broker(root: Path, pki: Pki, **extra: str) -> BrokerProcess:
    """SSL listener first (what clients bootstrap to), PLAINTEXT as the inter-broker listener."""
    settings = {
        "listeners": "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.client.auth": "requested",
        "ssl.principal.mapping.rules": MAPPING,
        **broker_pem_settings(pki),
        **extra,
    }
    return start_broker(root / "data", settings)


def events(broker: BrokerProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in broker.log_path.read_text(errors="replace").splitlines():
        if f'"{name}"' in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
    return found


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def broker(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    b = tls_broker(tmp_path_factory.mktemp(f"tls-{request.param}"), pki, **{"kafkapy.event.loop": request.param})
    try:
        yield b
    finally:
        b.stop()


def rdkafka_conf(broker: BrokerProcess, pki: Pki, user: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki.ca),
    }
    if user is not None:
        conf["ssl.certificate.location"] = str(pki.clients[user]["crt"])
        conf["ssl.key.location"] = str(pki.clients[user]["key"])
    return conf


def confluent_roundtrip(conf: dict[str, Any], count: int = COUNT, size: int = 100) -> list[bytes]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = unique_topic("tls")
    admin = AdminClient(conf)  # kept referenced until the result is in
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({**conf, "linger.ms": 5})
    values = [(b"%06d" % i) * (size // 6 + 1) for i in range(count)]
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    consumer = Consumer({**conf, "group.id": unique_topic("g"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 40
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(bytes(msg.value() or b""))
    consumer.commit(asynchronous=False)
    consumer.close()
    assert sorted(got) == sorted(values)
    return got


def test_confluent_kafka_over_ssl_on_both_event_loops(broker: BrokerProcess, pki: Pki) -> None:
    confluent_roundtrip(rdkafka_conf(broker, pki))
    assert not events(broker, "request_handler_failed")


def test_large_fetch_goes_through_tls_not_sendfile(broker: BrokerProcess, pki: Pki) -> None:
    """~6 MB fetched from file slices: every byte must come back through TLS intact."""
    got = confluent_roundtrip(rdkafka_conf(broker, pki), count=200, size=30_000)
    assert sum(len(v) for v in got) > 6_000_000


def test_mutual_tls_principal_is_mapped(broker: BrokerProcess, pki: Pki) -> None:
    confluent_roundtrip(rdkafka_conf(broker, pki, "alice"))
    assert wait_until(
        lambda: any(e["principal"] == "User:alice" for e in events(broker, "tls_client_authenticated")), 5
    )


def test_kcat_lists_produces_and_consumes(broker: BrokerProcess, pki: Pki) -> None:
    topic = unique_topic("kcat")
    base = ["kcat", "-b", broker.bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={pki.ca}"]
    subprocess.run(base + ["-P", "-t", topic], input=b"one\ntwo\nthree\n", check=True, timeout=30)
    out = subprocess.run(
        base + ["-C", "-t", topic, "-o", "beginning", "-e", "-q"], check=True, timeout=30, capture_output=True
    )
    assert out.stdout.split() == [b"one", b"two", b"three"]
    listing = subprocess.run(base + ["-L", "-J"], check=True, timeout=30, capture_output=True)
    assert topic in {t["topic"] for t in json.loads(listing.stdout)["topics"]}


def test_kafka_python_with_client_certificate(broker: BrokerProcess, pki: Pki) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    ssl_args: dict[str, Any] = {
        "security_protocol": "SSL",
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.clients["bob"]["crt"]),
        "ssl_keyfile": str(pki.clients["bob"]["key"]),
    }
    topic = unique_topic("kp")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **ssl_args)
    admin.create_topics([NewTopic(topic, 1, 1)])
    assert topic in admin.list_topics()
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **ssl_args)
    for i in range(50):
        producer.send(topic, b"kp-%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=unique_topic("kpg"),
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
        **ssl_args,
    )
    values = []
    for msg in consumer:
        values.append(msg.value)
        if len(values) == 50:
            break
    consumer.commit()
    consumer.close()
    assert values == [b"kp-%d" % i for i in range(50)]
    assert any(e["principal"] == "User:bob" for e in events(broker, "tls_client_authenticated"))


def test_aiokafka(broker: BrokerProcess, pki: Pki) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    topic = unique_topic("aio")

    async def run() -> list[bytes]:
        context = create_ssl_context(cafile=str(pki.ca))
        common: dict[str, Any] = {
            "bootstrap_servers": broker.bootstrap,
            "security_protocol": "SSL",
            "ssl_context": context,
        }
        admin = AIOKafkaAdminClient(**common)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(**common)
        await producer.start()
        for i in range(40):
            await producer.send(topic, b"aio-%d" % i)
        await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=unique_topic("aiog"), auto_offset_reset="earliest", **common)
        await consumer.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                async for msg in consumer:
                    got.append(msg.value or b"")
                    if len(got) == 40:
                        break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [b"aio-%d" % i for i in range(40)]


def test_java_client_with_client_certificate(broker: BrokerProcess, pki: Pki) -> None:
    from interop.adapters import java

    if java.available() is not None:
        pytest.fail(f"Java client not available: {java.available()}")
    config = {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),
        # Java's PEM key store cannot read cryptography's PBES2/AES-256 encrypted PKCS#8 EC key
        # ("Failed to load PEM SSL keystore"): the client's key goes in PKCS12.
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(pki.clients["alice"]["p12"]),
        "ssl.keystore.password": STORE_PASSWORD,
    }
    topic = unique_topic("java")
    java.call("create_topics", broker.bootstrap, topics=[{"name": topic, "partitions": 1}], config=config)
    records = [{"key": None, "value": java.b64(b"j-%d" % i), "headers": []} for i in range(20)]
    java.call("produce", broker.bootstrap, topic=topic, records=records, config=config)
    res = java.call("group_consume", broker.bootstrap, topic=topic, group=unique_topic("jg"), count=20, config=config)
    assert [java.unb64(r["value"]) for r in res["records"]] == [b"j-%d" % i for i in range(20)]


# -- bad input on a TLS port ---------------------------------------------------------------


# Apache Kafka 4.3.1's SSL listener answers bytes that are no TLS record with this fatal internal_error
# alert and closes (checked with a raw socket: the same 7 bytes for a Kafka request and for HTTP)
KAFKA_ALERT = bytes.fromhex("15030300020250")


@pytest.mark.parametrize(
    "plaintext", [b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test", b"GET / HTTP/1.0\r\n\r\n"]
)
def test_plaintext_bytes_on_the_tls_port_are_refused_and_logged(
    broker: BrokerProcess, pki: Pki, plaintext: bytes
) -> None:
    before = len(events(broker, "tls_handshake_failed"))
    with socket.create_connection((broker.host, broker.port), timeout=10) as sock:
        sock.sendall(plaintext)  # an ApiVersions v0 request in the clear; an HTTP request
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == KAFKA_ALERT  # never a Kafka answer
    assert wait_until(lambda: len(events(broker, "tls_handshake_failed")) > before, 5)
    last = events(broker, "tls_handshake_failed")[-1]
    assert last["listener"] == "SSL" and last["peer"].startswith("127.0.0.1:")
    assert last["error"].startswith("not a TLS record")
    confluent_roundtrip(rdkafka_conf(broker, pki), count=10)  # others unaffected


def test_mutual_tls_required(pki: Pki, tmp_path: Path) -> None:
    b = tls_broker(tmp_path, pki, **{"ssl.client.auth": "required", "kafkapy.ssl.handshake.timeout.ms": "700"})
    try:
        # no certificate: the handshake fails on the broker side
        context = ssl.create_default_context(cafile=str(pki.ca))
        with socket.create_connection((b.host, b.port), timeout=10) as raw:
            try:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test")
                    assert tls.recv(4) == b""
            except (ssl.SSLError, OSError):
                pass
        assert wait_until(lambda: bool(events(b, "tls_handshake_failed")), 5)
        # with one: served, principal mapped
        confluent_roundtrip(rdkafka_conf(b, pki, "alice"), count=20)
        assert any(e["principal"] == "User:alice" for e in events(b, "tls_client_authenticated"))
        # a TCP connection that never says hello is dropped after the handshake timeout
        with socket.create_connection((b.host, b.port), timeout=10) as idle:
            started = time.monotonic()
            assert idle.recv(10) == b""
            assert time.monotonic() - started < 5
        assert wait_until(lambda: bool(events(b, "tls_handshake_timeout")), 5)
        assert events(b, "tls_handshake_timeout")[0]["listener"] == "SSL"
    finally:
        b.stop()


def test_pkcs12_keystore_broker(pki: Pki, tmp_path: Path) -> None:
    b = start_broker(
        tmp_path / "data",
        {
            "listeners": "EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "listener.security.protocol.map": "EXTERNAL:SSL,INTERNAL:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "ssl.keystore.location": "/nonexistent/overridden-by-the-listener-prefix",
            **broker_p12_settings(pki, "EXTERNAL"),
        },
    )
    try:
        confluent_roundtrip({**rdkafka_conf(b, pki), "bootstrap.servers": b.bootstrap}, count=20)
    finally:
        b.stop()


# -- SASL_SSL --------------------------------------------------------------------------------

PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
)


def test_sasl_ssl_plain(pki: Pki, tmp_path: Path) -> None:
    b = start_broker(
        tmp_path / "data",
        {
            "listeners": "SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            **broker_pem_settings(pki, "SASL_SSL"),
        },
    )
    try:
        conf = {
            **rdkafka_conf(b, pki),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": "alice-secret",
        }
        confluent_roundtrip(conf, count=30)
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient

        errors: list[KafkaError] = []
        bad = AdminClient({**conf, "sasl.password": "wrong", "error_cb": errors.append})
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=5)
        bad.poll(1)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    finally:
        b.stop()
