"""SASL over SASL_PLAINTEXT with real clients against a kafkapy broker process.

One broker with PLAIN (JAAS users), SCRAM-SHA-256/512 (credentials created through
AlterUserScramCredentials by the clients' admin APIs and by Kafka's own kafka-configs
tool) and OAUTHBEARER (Kafka's unsecured tokens). Each client stack produces, consumes
with a group and makes an admin call per mechanism it supports; a wrong password is an
authentication failure the client reports.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker, unique_topic
from tests.security.test_sasl_server import sasl_settings

USERS = {"alice": "alice-pw", "bob": "bob-pw-512"}
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(tmp_path_factory.mktemp("sasl-clients") / "data", sasl_settings())
    try:
        _create_scram_users(b)
        yield b
    finally:
        b.stop()


def rdkafka_conf(b: BrokerProcess, mechanism: str, user: str = "", password: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": b.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
    }
    if mechanism == "OAUTHBEARER":
        conf.update({"enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": f"principal={user}"})
    else:
        conf.update({"sasl.username": user, "sasl.password": password})
    return conf


def _create_scram_users(b: BrokerProcess) -> None:
    """Through librdkafka's AlterUserScramCredentials, authenticated as the PLAIN admin."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(rdkafka_conf(b, "PLAIN", "admin", "admin-secret"))
    upserts = [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-pw"),
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"alice-pw"),
    ]
    # a user altered twice in one request is DUPLICATE_RESOURCE in Kafka: one request per mechanism
    for upsert in upserts:
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(15)


def _rdkafka_round_trip(b: BrokerProcess, conf: dict[str, Any]) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = unique_topic("sasl-rd")
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    producer = Producer(conf)
    for i in range(5):
        producer.produce(topic, f"v{i}".encode())
    assert producer.flush(15) == 0
    consumer = Consumer({**conf, "group.id": unique_topic("g"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(100):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            if len(got) == 5:
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert got == [f"v{i}".encode() for i in range(5)]


@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM, "OAUTHBEARER"])
def test_librdkafka(broker: BrokerProcess, mechanism: str) -> None:
    user, password = ("admin", "admin-secret") if mechanism == "PLAIN" else ("alice", "alice-pw")
    _rdkafka_round_trip(broker, rdkafka_conf(broker, mechanism, user, password))


@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM])
def test_librdkafka_wrong_password(broker: BrokerProcess, mechanism: str) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    admin = AdminClient({**rdkafka_conf(broker, mechanism, "alice", "wrong"), "error_cb": errors.append})
    with pytest.raises(Exception):  # noqa: B017 - librdkafka's own exception type
        admin.list_topics(timeout=3)
    for _ in range(20):
        admin.poll(0.2)
        if errors:
            break
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    expected = "Authentication failed"
    assert any(expected in e.str() for e in errors), errors


def test_librdkafka_describe_scram(broker: BrokerProcess) -> None:
    from confluent_kafka.admin import AdminClient, ScramMechanism

    admin = AdminClient(rdkafka_conf(broker, "PLAIN", "admin", "admin-secret"))
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(15)
    mechanisms = sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos)
    assert mechanisms == [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]


def kafka_python_conf(b: BrokerProcess, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": b.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM])
def test_kafka_python(broker: BrokerProcess, mechanism: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    user, password = ("admin", "admin-secret") if mechanism == "PLAIN" else ("alice", "alice-pw")
    conf = kafka_python_conf(broker, mechanism, user, password)
    topic = unique_topic("sasl-kp")
    admin = KafkaAdminClient(**conf)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(**conf)
    for i in range(3):
        producer.send(topic, f"k{i}".encode())
    producer.flush(15)
    producer.close()
    consumer = KafkaConsumer(
        topic, group_id=unique_topic("g"), auto_offset_reset="earliest", consumer_timeout_ms=10000, **conf
    )
    got = [m.value for m in itertools.islice(consumer, 3)]  # the timeout bounds a short read
    consumer.commit()
    consumer.close()
    assert got == [f"k{i}".encode() for i in range(3)]


def test_kafka_python_wrong_password(broker: BrokerProcess, caplog: pytest.LogCaptureFixture) -> None:
    """kafka-python retries its bootstrap and gives up with KafkaTimeoutError. Each failed attempt it
    logs as the broker's SaslAuthenticationFailedError with Kafka's message, except where the response
    and the broker's close reached it in one read: kafka-python 3.0's transport (`_sock_recv`) then
    drops the bytes read with the EOF and logs "socket disconnected" (it does so against Kafka too,
    which also closes right after that response). On a loaded machine every attempt can go that way,
    so the message is checked only on the attempts that read it."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaAdminClient(
            **kafka_python_conf(broker, "SCRAM-SHA-256", "alice", "wrong"),
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
        )
    expected = (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
    )
    failures = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    disconnects = [r for r in caplog.records if "socket disconnected" in r.getMessage()]
    assert failures or disconnects, [r.getMessage() for r in caplog.records]
    assert all(expected in m for m in failures), failures


@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM])
def test_aiokafka(broker: BrokerProcess, mechanism: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    user, password = ("admin", "admin-secret") if mechanism == "PLAIN" else ("alice", "alice-pw")
    conf = {
        "bootstrap_servers": broker.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    topic = unique_topic("sasl-aio")

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**conf)
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait(topic, f"a{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=unique_topic("g"), auto_offset_reset="earliest", **conf)
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < 3:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 20)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [f"a{i}".encode() for i in range(3)]


def test_aiokafka_wrong_password(broker: BrokerProcess) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="alice",
            sasl_plain_password="wrong",
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaError):
        asyncio.run(run())


def test_kafka_configs_tool_adds_scram_user(broker: BrokerProcess, tmp_path: Any) -> None:
    """Kafka's own kafka-configs (kafka.admin.ConfigCommand: Java admin, AlterUserScramCredentials), then
    librdkafka authenticates as the new user. Both mechanisms in one command fail with
    DuplicateResourceException, as they do against Apache Kafka 4.3.1 (checked): one per command."""
    from interop.adapters.java import TOOL_JVM, java_command

    props = tmp_path / "admin.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-secret";\n'
    )

    def configs(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = java_command(
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            broker.bootstrap,
            "--command-config",
            str(props),
            *args,
            jvm_args=TOOL_JVM,
        )
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)

    user = ("--entity-type", "users", "--entity-name", "carol")
    both = configs("--alter", "--add-config", "SCRAM-SHA-256=[password=x],SCRAM-SHA-512=[password=x]", *user)
    assert both.returncode == 1 and "DuplicateResourceException" in both.stdout + both.stderr
    for mechanism in ("SCRAM-SHA-256=[iterations=8192,password=carol-pw]", "SCRAM-SHA-512=[password=carol-pw]"):
        out = configs("--alter", "--add-config", mechanism, *user)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Completed updating config for user carol." in out.stdout
    out = configs("--describe", *user)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SCRAM-SHA-256=iterations=8192" in out.stdout and "SCRAM-SHA-512=iterations=4096" in out.stdout
    _rdkafka_round_trip(broker, rdkafka_conf(broker, "SCRAM-SHA-256", "carol", "carol-pw"))
    out = configs("--alter", "--delete-config", "SCRAM-SHA-512", *user)
    assert out.returncode == 0, out.stdout + out.stderr
    out = configs("--alter", "--delete-config", "SCRAM-SHA-512", *user)
    assert out.returncode == 1 and "ResourceNotFoundException" in out.stdout + out.stderr


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512", "OAUTHBEARER"])
def test_java_client(broker: BrokerProcess, mechanism: str) -> None:
    """The Java clients (4.3.1) through interop/adapters/java.py's driver: admin, produce, group consume."""
    from interop.adapters import java

    module = {
        "PLAIN": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret";',
        "SCRAM-SHA-512": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" '
        'password="alice-pw";',
        "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="alice";',
    }[mechanism]
    config = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism, "sasl.jaas.config": module}
    java.round_trip(broker.bootstrap, unique_topic("sasl-java"), unique_topic("g"), config, "j")


def test_java_client_wrong_password(broker: BrokerProcess) -> None:
    from interop.adapters import java

    config = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" '
        'password="wrong";',
    }
    with pytest.raises(java.JavaError) as info:
        java.call("list_topics", broker.bootstrap, config=config)
    assert "SaslAuthenticationException" in str(info.value), str(info.value)
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in str(info.value)


def _kafkajs(broker: BrokerProcess, mechanism: str, user: str, password: str) -> tuple[int, dict[str, Any]]:
    import json
    import shutil

    from interop.adapters import kafkajs

    if kafkajs.available() is not None:
        pytest.fail(f"kafkajs unavailable: {kafkajs.available()}")
    request = {
        "bootstrap": broker.bootstrap,
        "mechanism": mechanism,
        "username": user,
        "password": password,
        "topic": unique_topic("sasl-kjs"),
        "group": unique_topic("g"),
    }
    node = shutil.which("node") or "node"
    out = subprocess.run(
        [node, str(kafkajs.NODE_DIR / "sasl.js")],
        check=False,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=kafkajs.NODE_DIR,
    )
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mechanism", ["plain", "scram-sha-256", "scram-sha-512"])
def test_kafkajs(broker: BrokerProcess, mechanism: str) -> None:
    user, password = ("admin", "admin-secret") if mechanism == "plain" else ("alice", "alice-pw")
    code, result = _kafkajs(broker, mechanism, user, password)
    assert code == 0 and result == {"values": ["s0", "s1", "s2"]}, result


def test_kafkajs_wrong_password(broker: BrokerProcess) -> None:
    code, result = _kafkajs(broker, "scram-sha-256", "alice", "wrong")
    assert code == 1 and result["error"] == "KafkaJSSASLAuthenticationError", result
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in result["message"], result


def test_java_producer_reauthenticates(tmp_path_factory: pytest.TempPathFactory) -> None:
    """KIP-368 with the Java producer (4.3.1): connections.max.reauth.ms=2000 and SCRAM-SHA-512; it keeps
    producing (a record every 100 ms, each acknowledged) for 6 s, re-authenticating on its connections as the
    sessions near their end, with no error and no connection closed for an expired session."""
    import json
    from pathlib import Path

    from confluent_kafka.admin import AdminClient, NewTopic

    from interop.adapters.java import java_command

    settings = sasl_settings(**{"connections.max.reauth.ms": "2000"})
    b = start_broker(tmp_path_factory.mktemp("sasl-java-reauth") / "data", settings)
    try:
        _create_scram_users(b)
        topic = unique_topic("reauth-java")
        admin = AdminClient(rdkafka_conf(b, "PLAIN", "admin", "admin-secret"))  # kept alive for the result
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
        del admin
        source = Path(__file__).parent / "java_reauth" / "ReauthProducer.java"
        jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-pw";'
        cmd = java_command(
            str(source),
            b.bootstrap,
            topic,
            "6",
            "SCRAM-SHA-512",
            jaas,
            jvm_args=("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"),
        )
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr[-3000:]
        summary = dict(part.split("=", 1) for part in out.stdout.strip().splitlines()[-1].split(" ", 3))
        assert int(summary["sent"]) >= 15 and summary["acked"] == summary["sent"], summary  # ~50 here
        assert summary["errors"] == "0", summary
        events = []
        for line in b.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        logins = [e for e in events if isinstance(e, dict) and e.get("event") == "authenticated"]
        # the producer's (alice's; the admin above is admin) connections re-authenticate at 85-95 % of
        # each 2 s session
        reauths = [e for e in logins if e.get("reauthentication") is True and e.get("principal") == "User:alice"]
        assert len(reauths) >= 2, logins
        assert {e["mechanism"] for e in reauths} == {"SCRAM-SHA-512"}
        # on connections that logged in before (KIP-368), not new ones
        first_logins = {e["connection_id"] for e in logins if e.get("reauthentication") is False}
        assert {e["connection_id"] for e in reauths} <= first_logins
        assert not [e for e in events if isinstance(e, dict) and "session expired" in str(e.get("event"))]
    finally:
        b.stop()
