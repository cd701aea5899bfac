"""The client security matrix against one kafkapy broker process with every listener kind.

One broker (module-scoped) has SSL (ssl.client.auth=requested, principal mapping), SASL_SSL and
SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER unsecured) and a PLAINTEXT
inter-broker listener. Each case is one client stack on one security set-up: an admin call
(create the topic), produce, consume in a group and commit; the commit is checked through the
plaintext listener and the broker's log must show the principal the client authenticated as
(mapped from the certificate for mutual TLS), on the listener and mechanism it used.

The cases fill what interop/test_tls.py (SSL, mutual TLS, SASL_SSL PLAIN with librdkafka) and
interop/test_sasl.py (SASL_PLAINTEXT per client) do not already run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker, unique_topic
from interop.certs import STORE_PASSWORD, Pki, broker_pem_settings, make_pki

MAPPING = "RULE:^CN=([^,]+)(,.*)?$/$1/L,DEFAULT"
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret"}
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" ' + " ".join(f'user_{u}="{p}"' for u, p in PLAIN_USERS.items()) + ";"
)
SCRAM_USER, SCRAM_PASSWORD = "sam", "sam-pw"
OAUTH_USER = "olga"
CLIENT_CERTS = ("kcat", "aiokafka", "kafkajs", "java")  # one certificate per stack: its CN is the principal
VALUES = [b"m0", b"m1", b"m2"]


@dataclass(slots=True)
class Secure:
    """A broker with its listener addresses and the test PKI."""

    broker: BrokerProcess
    pki: Pki
    ports: dict[str, int]

    def address(self, listener: str) -> str:
        return f"{self.broker.host}:{self.ports[listener]}"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    root = tmp_path_factory.mktemp("security-matrix")
    pki = make_pki(root / "pki", clients=CLIENT_CERTS)
    settings = {
        "listeners": "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SSL:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "ssl.client.auth": "requested",
        "ssl.principal.mapping.rules": MAPPING,
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "group.initial.rebalance.delay.ms": "0",
        **broker_pem_settings(pki),
    }
    b = start_broker(root / "data", settings)
    try:
        ready = next(e for e in _events(b, "broker_ready"))
        ports = {}
        for item in str(ready["listen"]).split(","):
            name, _, address = item.partition("://")
            ports[name] = int(address.rpartition(":")[2])
        s = Secure(b, pki, ports)
        _create_scram_user(s)
        yield s
    finally:
        b.stop()


def _events(broker: BrokerProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in broker.log_path.read_text(errors="replace").splitlines():
        if f'"{name}"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


def _create_scram_user(s: Secure) -> None:
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(_rdkafka_conf(s, "SASL_PLAINTEXT", "PLAIN", "admin", "admin-secret"))
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        upsert = UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(mechanism, 4096), SCRAM_PASSWORD.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(15)


def unsecured_jwt(subject: str, lifetime_s: int = 3600) -> str:
    """Kafka's unsecured JWS (alg none) as its default OAUTHBEARER validator accepts."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


@dataclass(slots=True, frozen=True)
class Case:
    """One security set-up: listener (= protocol here), SASL mechanism or None, client certificate."""

    protocol: str
    mechanism: str | None = None
    client_cert: bool = False

    @property
    def id(self) -> str:
        parts = [self.protocol.lower()]
        if self.mechanism:
            parts.append(self.mechanism.lower())
        if self.client_cert:
            parts.append("mtls")
        return "-".join(parts)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def __str__(self) -> str:
        return self.id

    def credentials(self) -> tuple[str, str]:
        if self.mechanism == "PLAIN":
            return "alice", PLAIN_USERS["alice"]
        if self.mechanism == "OAUTHBEARER":
            return OAUTH_USER, ""
        return SCRAM_USER, SCRAM_PASSWORD


SSL = Case("SSL")
MTLS = Case("SSL", client_cert=True)
SASL_SSL = [Case("SASL_SSL", m) for m in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")]
SASL_PLAINTEXT = [Case("SASL_PLAINTEXT", m) for m in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")]

CASES: list[tuple[str, Case]] = [
    *[("confluent", c) for c in SASL_SSL[1:]],
    *[("kcat", c) for c in (MTLS, *SASL_PLAINTEXT, *SASL_SSL) if not (c.mechanism or "").startswith("SCRAM")],
    *[("kafka_python", c) for c in SASL_SSL],
    *[("aiokafka", c) for c in (MTLS, *SASL_SSL)],
    *[("kafkajs", c) for c in (SSL, MTLS, *SASL_SSL)],
    *[("java", c) for c in (MTLS, SASL_PLAINTEXT[1], *SASL_SSL)],
]


@pytest.mark.parametrize(("client", "case"), CASES, ids=[f"{c}-{case.id}" for c, case in CASES])
def test_client_security(secure: Secure, client: str, case: Case) -> None:
    event = "tls_client_authenticated" if case.client_cert else "authenticated"
    user = client if case.client_cert else case.credentials()[0]
    before = len(_events(secure.broker, event))
    topic, group = unique_topic(f"sec-{client}"), unique_topic("g")
    got = RUNNERS[client](secure, case, topic, group)
    assert got == VALUES
    assert _committed(secure, group, topic) == len(VALUES)
    if case.mechanism is None and not case.client_cert:
        return
    mine = [
        e
        for e in _events(secure.broker, event)[before:]
        if e["principal"] == f"User:{user}" and e["listener"] == case.protocol
    ]
    assert mine, f"no {event} for User:{user} on {case.protocol}"
    if case.mechanism is not None:
        assert {e["mechanism"] for e in mine} == {case.mechanism}


def _committed(s: Secure, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": s.address("INTERNAL"), "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=15)
        return int(tp.offset)
    finally:
        consumer.close()


# -- librdkafka: confluent-kafka and kcat -------------------------------------------------------


def _rdkafka_conf(
    s: Secure, protocol: str, mechanism: str | None, user: str = "", password: str = ""
) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": s.address(protocol), "security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = str(s.pki.ca)
    if mechanism == "OAUTHBEARER":
        conf.update(
            {
                "sasl.mechanism": mechanism,
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": f"principal={user}",
            }
        )
    elif mechanism is not None:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    return conf


def _case_rdkafka_conf(s: Secure, case: Case, client: str) -> dict[str, Any]:
    conf = _rdkafka_conf(s, case.protocol, case.mechanism, *case.credentials())
    if case.client_cert:
        conf["ssl.certificate.location"] = str(s.pki.clients[client]["crt"])
        conf["ssl.key.location"] = str(s.pki.clients[client]["key"])
    return conf


def run_confluent(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = _case_rdkafka_conf(s, case, "confluent")
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    producer = Producer(conf)
    for value in VALUES:
        producer.produce(topic, value)
    assert producer.flush(15) == 0
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < len(VALUES) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(bytes(msg.value() or b""))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def run_kcat(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    """Metadata (-L, the admin part kcat has; the topic is auto-created by the produce), produce,
    and a balanced consumer (-G) that commits on close."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed")
    conf = _case_rdkafka_conf(s, case, "kcat")
    base = [kcat, "-b", conf.pop("bootstrap.servers")]
    for key, value in conf.items():
        base += ["-X", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    subprocess.run([*base, "-P", "-t", topic], input=b"\n".join(VALUES) + b"\n", check=True, timeout=30)
    listing = subprocess.run([*base, "-L", "-J", "-t", topic], check=True, timeout=30, capture_output=True)
    assert [t["topic"] for t in json.loads(listing.stdout)["topics"]] == [topic]
    out = subprocess.run(
        [*base, "-X", "auto.offset.reset=earliest", "-G", group, "-c", str(len(VALUES)), "-q", topic],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return out.stdout.split()


@pytest.mark.parametrize("case", [c for c in (*SASL_PLAINTEXT, *SASL_SSL) if "SCRAM" in (c.mechanism or "")], ids=str)
def test_kcat_scram_refused_like_kafka_4(secure: Secure, case: Case) -> None:
    """kcat 1.7.1 bundles librdkafka 2.0.2, whose SCRAM client-final message repeats the client
    nonce (r=cnonce+cnonce+snonce; fixed in librdkafka 2.6.1, confluentinc/librdkafka#4895).
    Apache Kafka 4.x compares the nonce strictly (RFC 5802) and refuses it (checked against 4.3.1 with
    this kcat: the same message); so does kafkapy."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed")
    conf = _case_rdkafka_conf(s=secure, case=case, client="kcat")
    cmd = [kcat, "-b", conf.pop("bootstrap.servers"), "-L", "-m", "3"]
    for key, value in conf.items():
        cmd += ["-X", f"{key}={value}"]
    before = len(_events(secure.broker, "authentication failed"))
    out = subprocess.run(cmd, check=False, timeout=30, capture_output=True, text=True)
    assert out.returncode != 0
    expected = f"invalid credentials with SASL mechanism {case.mechanism}"
    assert expected in out.stderr, out.stderr
    failures = _events(secure.broker, "authentication failed")[before:]
    assert any(e["error"] == "Invalid client nonce in the final client message." for e in failures), failures


# -- kafka-python and aiokafka ------------------------------------------------------------------


def run_kafka_python(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.net.sasl.oauth import AbstractTokenProvider

    user, password = case.credentials()

    class Token(AbstractTokenProvider):
        def token(self) -> str:
            return unsecured_jwt(user)

    conf: dict[str, Any] = {"bootstrap_servers": s.address(case.protocol), "security_protocol": case.protocol}
    if case.tls:
        conf["ssl_cafile"] = str(s.pki.ca)
    if case.mechanism == "OAUTHBEARER":
        conf.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Token())
    elif case.mechanism is not None:
        conf.update(sasl_mechanism=case.mechanism, sasl_plain_username=user, sasl_plain_password=password)
    admin = KafkaAdminClient(**conf)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(**conf)
    for value in VALUES:
        producer.send(topic, value)
    producer.flush(15)
    producer.close()
    consumer = KafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=15000, enable_auto_commit=False, **conf
    )
    got: list[bytes] = []
    for msg in consumer:
        got.append(msg.value)
        if len(got) == len(VALUES):
            break
    consumer.commit()
    consumer.close()
    return got


def run_aiokafka(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.abc import AbstractTokenProvider
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    user, password = case.credentials()

    class Token(AbstractTokenProvider):
        async def token(self) -> str:
            return unsecured_jwt(user)

    async def run() -> list[bytes]:
        conf: dict[str, Any] = {"bootstrap_servers": s.address(case.protocol), "security_protocol": case.protocol}
        if case.tls:
            certs = s.pki.clients["aiokafka"] if case.client_cert else None
            conf["ssl_context"] = create_ssl_context(
                cafile=str(s.pki.ca),
                certfile=str(certs["crt"]) if certs else None,
                keyfile=str(certs["key"]) if certs else None,
            )
        if case.mechanism == "OAUTHBEARER":
            conf.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Token())
        elif case.mechanism is not None:
            conf.update(sasl_mechanism=case.mechanism, sasl_plain_username=user, sasl_plain_password=password)
        admin = AIOKafkaAdminClient(**conf)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(**conf)
        await producer.start()
        try:
            for value in VALUES:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **conf
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                async for msg in consumer:
                    got.append(msg.value or b"")
                    if len(got) == len(VALUES):
                        break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


# -- kafkajs ---------------------------------------------------------------------------------------


def run_kafkajs(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    from interop.adapters import kafkajs

    if kafkajs.available() is not None:
        pytest.fail(f"kafkajs unavailable: {kafkajs.available()}")
    user, password = case.credentials()
    request: dict[str, Any] = {"bootstrap": s.address(case.protocol), "topic": topic, "group": group}
    if case.tls:
        ssl: dict[str, str] = {"ca": str(s.pki.ca)}
        if case.client_cert:
            ssl.update(cert=str(s.pki.clients["kafkajs"]["crt"]), key=str(s.pki.clients["kafkajs"]["key"]))
        request["ssl"] = ssl
    if case.mechanism == "OAUTHBEARER":
        request["sasl"] = {"mechanism": "oauthbearer", "token": unsecured_jwt(user)}
    elif case.mechanism is not None:
        request["sasl"] = {"mechanism": case.mechanism.lower(), "username": user, "password": password}
    out = subprocess.run(
        [shutil.which("node") or "node", str(kafkajs.NODE_DIR / "secure.js")],
        check=False,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=kafkajs.NODE_DIR,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, result
    assert result["committed"] == len(VALUES), result
    return [v.encode() for v in result["values"]]


# -- the Java client -----------------------------------------------------------------------------


def run_java(s: Secure, case: Case, topic: str, group: str) -> list[bytes]:
    from interop.adapters import java

    if java.available() is not None:
        pytest.fail(f"Java client not available: {java.available()}")
    user, password = case.credentials()
    config: dict[str, str] = {"security.protocol": case.protocol}
    if case.tls:
        config.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(s.pki.ca)})
    if case.client_cert:
        config.update(
            {
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(s.pki.clients["java"]["p12"]),
                "ssl.keystore.password": STORE_PASSWORD,
            }
        )
    login = {
        "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
        "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
        "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    }
    if case.mechanism == "OAUTHBEARER":
        config["sasl.mechanism"] = "OAUTHBEARER"
        config["sasl.jaas.config"] = (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            f'unsecuredLoginStringClaim_sub="{user}";'
        )
    elif case.mechanism is not None:
        config["sasl.mechanism"] = case.mechanism
        config["sasl.jaas.config"] = f'{login[case.mechanism]} required username="{user}" password="{password}";'
    bootstrap = s.address(case.protocol)
    res = java.call("create_topics", bootstrap, topics=[{"name": topic, "partitions": 1, "configs": {}}], config=config)
    assert not [r for r in res["results"] if r["exception"]], res
    records = [{"key": None, "value": java.b64(v), "headers": []} for v in VALUES]
    res = java.call("produce", bootstrap, topic=topic, records=records, config=config)
    assert not res["errors"], res
    res = java.call(
        "group_consume", bootstrap, topic=topic, group=group, count=len(VALUES), timeout_ms=30000, config=config
    )
    return [java.unb64(r["value"]) or b"" for r in res["records"]]


RUNNERS = {
    "confluent": run_confluent,
    "kcat": run_kcat,
    "kafka_python": run_kafka_python,
    "aiokafka": run_aiokafka,
    "kafkajs": run_kafkajs,
    "java": run_java,
}
