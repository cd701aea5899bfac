"""One server.properties for Apache Kafka 4.3.1 and kafkapy: the same clients get the same outcomes.

The security block below (named PLAINTEXT, SSL and SASL_SSL listeners, a PEM keystore holding an
encrypted PKCS#8 key and the chain, a PEM truststore, `ssl.client.auth=requested`, one
`ssl.principal.mapping.rules` string, PLAIN and SCRAM-SHA-512 JAAS lines per listener, the
StandardAuthorizer, `super.users`, `allow.everyone.if.no.acl.found`) is written once. Apache Kafka runs
it as a KRaft broker (plus its node and quorum lines; its controller is a second JVM with its own
file); then kafkapy gets the very same file (KRaft lines included, which it logs as Kafka-only and
ignores; only `log.dirs` differs) on the same ports. On each broker the admin (a super user, SASL_SSL
PLAIN) creates the topic, the SCRAM-SHA-512 user (AlterUserScramCredentials) and the ACLs, and the
same librdkafka clients then produce and consume: mutual TLS with a mapped principal, TLS without a
client certificate, SASL_SSL PLAIN (also a wrong password) and SCRAM-SHA-512, and plaintext. Both
brokers must give each client the outcome listed in EXPECTED.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interop import apache_kafka
from interop.adapters import java
from interop.certs import KEY_PASSWORD, Pki, make_pki
from kafkapy.testing import free_port

TOPIC = "orders"
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
SCRAM_USER, SCRAM_PASSWORD = "carla", "carla-secret"

SECURITY_BLOCK = """\
listeners=INTERNAL://127.0.0.1:{internal},MTLS://127.0.0.1:{mtls},EXTERNAL://127.0.0.1:{external}
advertised.listeners=INTERNAL://127.0.0.1:{internal},MTLS://127.0.0.1:{mtls},EXTERNAL://127.0.0.1:{external}
listener.security.protocol.map=INTERNAL:PLAINTEXT,MTLS:SSL,EXTERNAL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL

ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.key.password={key_password}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
ssl.client.auth=requested
ssl.principal.mapping.rules=RULE:^CN=([^,]+),OU=ServiceUsers(,.*)?$/svc-$1/L,RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT

sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.external.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\
    {plain_users};
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false

offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
"""

# Kafka's own lines: this node is a broker; the quorum is the controller JVM's
KRAFT_LINES = """\
process.roles=broker
node.id=1
controller.quorum.voters=2@127.0.0.1:{controller}
controller.listener.names=CONTROLLER
"""

CONTROLLER_FILE = """\
process.roles=controller
node.id=2
controller.quorum.voters=2@127.0.0.1:{controller}
listeners=CONTROLLER://127.0.0.1:{controller}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
log.dirs={data}
"""

# (resource type, name, pattern, principal, operation): all ALLOW from any host
ACLS = [
    ("TOPIC", TOPIC, "LITERAL", "User:svc-carol", "WRITE"),
    ("TOPIC", TOPIC, "LITERAL", "User:svc-carol", "READ"),
    ("GROUP", "g-carol", "LITERAL", "User:svc-carol", "READ"),
    ("TOPIC", TOPIC, "LITERAL", "User:alice", "WRITE"),
    ("TOPIC", TOPIC, "LITERAL", f"User:{SCRAM_USER}", "READ"),
    ("GROUP", "g-", "PREFIXED", f"User:{SCRAM_USER}", "READ"),
]

# client -> action -> outcome, in the order run (the consumers read what the producers delivered)
EXPECTED: dict[str, str] = {
    "mtls carol (User:svc-carol) produce": "delivered",
    "mtls carol (User:svc-carol) consume g-carol": "consumed 1",
    "mtls dave (User:svc-dave) produce": "TOPIC_AUTHORIZATION_FAILED",
    "mtls no certificate (User:ANONYMOUS) produce": "TOPIC_AUTHORIZATION_FAILED",
    "sasl_ssl plain alice produce": "delivered",
    "sasl_ssl plain alice consume g-alice": "GROUP_AUTHORIZATION_FAILED",
    "sasl_ssl plain bob produce": "TOPIC_AUTHORIZATION_FAILED",
    "sasl_ssl plain alice wrong password produce": "_AUTHENTICATION",
    "sasl_ssl scram-sha-512 carla produce": "TOPIC_AUTHORIZATION_FAILED",
    "sasl_ssl scram-sha-512 carla consume g-carla": "consumed 2",
    "sasl_ssl scram-sha-512 carla wrong password produce": "_AUTHENTICATION",
    "plaintext (User:ANONYMOUS) produce": "TOPIC_AUTHORIZATION_FAILED",
}


@dataclass(slots=True)
class Ports:
    internal: int
    mtls: int
    external: int
    controller: int


def security_block(ports: Ports, pki: Pki) -> str:
    return SECURITY_BLOCK.format(
        internal=ports.internal,
        mtls=ports.mtls,
        external=ports.external,
        keystore=pki.broker_pem_java,
        key_password=KEY_PASSWORD,
        ca=pki.ca,
        plain_users=" ".join(f'user_{u}="{p}"' for u, p in PLAIN_USERS.items()),
    )


def broker_file(ports: Ports, pki: Pki, data: Path) -> str:
    return security_block(ports, pki) + "\n" + KRAFT_LINES.format(controller=ports.controller) + f"log.dirs={data}\n"


# ---------------------------------------------------------------- the brokers


@dataclass(slots=True)
class Jvm:
    proc: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self) -> str:
        try:
            return "\n".join((self.workdir / "server.log").read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""


def start_jvm(workdir: Path, config: Path, cluster_id: str, heap: str) -> Jvm:
    log4j = workdir / "log4j2.properties"
    log4j.write_text(apache_kafka.LOG4J2.format(log=workdir / "server.log"))
    jvm = (f"-Xmx{heap}", f"-Xms{heap}", f"-Dlog4j2.configurationFile={log4j}", "-XX:+UseSerialGC")
    fmt = subprocess.run(
        java.java_command(apache_kafka.STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(config), jvm_args=jvm),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert fmt.returncode == 0, (fmt.stdout + fmt.stderr).decode(errors="replace")[-2000:]
    with open(workdir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            java.java_command(apache_kafka.KAFKA_MAIN, str(config), jvm_args=jvm),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    return Jvm(proc, workdir)


def start_kafka(root: Path, ports: Ports, pki: Pki) -> tuple[Jvm, Jvm]:
    from kafkapy.protocol.uuids import random_cluster_id

    cluster_id = random_cluster_id()
    controller_dir, broker_dir = root / "kafka-controller", root / "kafka-broker"
    for d in (controller_dir, broker_dir):
        d.mkdir(parents=True)
    controller_config = controller_dir / "controller.properties"
    controller_config.write_text(CONTROLLER_FILE.format(controller=ports.controller, data=controller_dir / "data"))
    broker_config = broker_dir / "server.properties"
    broker_config.write_text(broker_file(ports, pki, broker_dir / "data"))
    controller = start_jvm(controller_dir, controller_config, cluster_id, "256m")
    broker = start_jvm(broker_dir, broker_config, cluster_id, "384m")
    deadline = time.monotonic() + 120
    while not apache_kafka._metadata_lists_broker("127.0.0.1", ports.internal):
        for jvm in (controller, broker):
            if jvm.proc.poll() is not None:
                controller.stop()
                broker.stop()
                raise RuntimeError(f"Apache Kafka exited with {jvm.proc.returncode}:\n{jvm.tail()}")
        if time.monotonic() > deadline:
            controller.stop()
            broker.stop()
            raise RuntimeError(f"Apache Kafka not ready:\n{broker.tail()}")
        time.sleep(0.2)
    return controller, broker


def start_kafkapy(root: Path, ports: Ports, pki: Pki) -> Jvm:
    """`kafkapy broker --config server.properties` with Kafka's broker file (own log.dirs)."""
    workdir = root / "kafkapy"
    workdir.mkdir()
    config = workdir / "server.properties"
    config.write_text(broker_file(ports, pki, workdir / "data"))
    repo = Path(__file__).resolve().parent.parent
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kafkapy", "broker", "--config", str(config), "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=repo,
            start_new_session=True,
        )
    broker = Jvm(proc, workdir)
    deadline = time.monotonic() + 30
    while '"broker_ready"' not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            raise RuntimeError(f"kafkapy did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return broker


# ---------------------------------------------------------------- the clients (librdkafka)


def tls(pki: Pki, client: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"ssl.ca.location": str(pki.ca)}
    if client is not None:
        conf["ssl.certificate.location"] = str(pki.clients[client]["crt"])
        conf["ssl.key.location"] = str(pki.clients[client]["key"])
    return conf


def mtls(ports: Ports, pki: Pki, client: str | None) -> dict[str, Any]:
    return {"bootstrap.servers": f"127.0.0.1:{ports.mtls}", "security.protocol": "SSL", **tls(pki, client)}


def sasl_ssl(ports: Ports, pki: Pki, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": f"127.0.0.1:{ports.external}",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        **tls(pki),
    }


def produce(conf: dict[str, Any]) -> str:
    """Produce one record: 'delivered', the delivery error's name, or the client error's name."""
    from confluent_kafka import Producer

    errors: list[Any] = []
    reports: list[Any] = []
    producer = Producer({**conf, "message.timeout.ms": 10000, "error_cb": errors.append})
    producer.produce(TOPIC, b"record", callback=lambda err, msg: reports.append(err))
    deadline = time.monotonic() + 15
    while not reports and not errors and time.monotonic() < deadline:
        producer.poll(0.05)
    if reports:
        return "delivered" if reports[0] is None else str(reports[0].name())
    producer.purge()
    producer.flush(1)
    return str(errors[0].name()) if errors else "no answer"


def consume(conf: dict[str, Any], group: str, count: int) -> str:
    """Read the topic in `group` from the start: 'consumed N' (stops at `count`) or the first error's name."""
    from confluent_kafka import Consumer

    errors: list[Any] = []
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "error_cb": errors.append})
    try:
        consumer.subscribe([TOPIC])
        got = 0
        deadline = time.monotonic() + 20
        while got < count and time.monotonic() < deadline and not errors:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                return str(error.name())
            got += 1
        return str(errors[0].name()) if errors and not got else f"consumed {got}"
    finally:
        consumer.close()


def setup(ports: Ports, pki: Pki) -> None:
    """As the admin: the topic, the SCRAM user and the ACLs; returns once the broker applies them."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(sasl_ssl(ports, pki, "PLAIN", "admin", PLAIN_USERS["admin"]))
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    upsert = UserScramCredentialUpsertion(
        SCRAM_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), SCRAM_PASSWORD.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    bindings = [
        AclBinding(
            ResourceType[rt],
            name,
            ResourcePatternType[pt],
            principal,
            "*",
            AclOperation[op],
            AclPermissionType.ALLOW,
        )
        for rt, name, pt, principal, op in ACLS
    ]
    for future in admin.create_acls(bindings).values():
        future.result(30)
    any_acl = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    deadline = time.monotonic() + 20  # Kafka applies both through its metadata log
    while time.monotonic() < deadline:
        acls = admin.describe_acls(any_acl).result(10)
        users = admin.describe_user_scram_credentials([SCRAM_USER])
        try:
            scram_ready = bool(users[SCRAM_USER].result(10).scram_credential_infos)
        except KafkaException:  # RESOURCE_NOT_FOUND until applied
            scram_ready = False
        if len(acls) == len(ACLS) and scram_ready:
            return
        time.sleep(0.2)
    raise AssertionError("the ACLs or the SCRAM user were not applied in 20 s")


def run_clients(ports: Ports, pki: Pki) -> dict[str, str]:
    carla = sasl_ssl(ports, pki, "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("mtls carol (User:svc-carol) produce", lambda: produce(mtls(ports, pki, "carol"))),
        ("mtls carol (User:svc-carol) consume g-carol", lambda: consume(mtls(ports, pki, "carol"), "g-carol", 1)),
        ("mtls dave (User:svc-dave) produce", lambda: produce(mtls(ports, pki, "dave"))),
        ("mtls no certificate (User:ANONYMOUS) produce", lambda: produce(mtls(ports, pki, None))),
        ("sasl_ssl plain alice produce", lambda: produce(sasl_ssl(ports, pki, "PLAIN", "alice", "alice-secret"))),
        (
            "sasl_ssl plain alice consume g-alice",
            lambda: consume(sasl_ssl(ports, pki, "PLAIN", "alice", "alice-secret"), "g-alice", 2),
        ),
        ("sasl_ssl plain bob produce", lambda: produce(sasl_ssl(ports, pki, "PLAIN", "bob", "bob-secret"))),
        ("sasl_ssl plain alice wrong password produce", lambda: produce(sasl_ssl(ports, pki, "PLAIN", "alice", "x"))),
        ("sasl_ssl scram-sha-512 carla produce", lambda: produce(carla)),
        ("sasl_ssl scram-sha-512 carla consume g-carla", lambda: consume(carla, "g-carla", 2)),
        (
            "sasl_ssl scram-sha-512 carla wrong password produce",
            lambda: produce({**carla, "sasl.password": "wrong"}),
        ),
        (
            "plaintext (User:ANONYMOUS) produce",
            lambda: produce({"bootstrap.servers": f"127.0.0.1:{ports.internal}"}),
        ),
    ]
    return {name: step() for name, step in steps}


# ---------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("same-properties")
    pki = make_pki(root / "pki", clients=("carol", "dave"))
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    assert len({ports.internal, ports.mtls, ports.external, ports.controller}) == 4
    controller, broker = start_kafka(root, ports, pki)
    try:
        setup(ports, pki)
        kafka = run_clients(ports, pki)
    finally:
        broker.stop()
        controller.stop()
    kafkapy = start_kafkapy(root, ports, pki)  # the same ports, once Kafka has let them go
    try:
        setup(ports, pki)
        ours = run_clients(ports, pki)
    finally:
        kafkapy.stop()
    yield {"kafka": kafka, "kafkapy": ours, "root": root}


def test_the_files_differ_only_in_log_dirs(outcomes: dict[str, Any]) -> None:
    root: Path = outcomes["root"]
    kafka = (root / "kafka-broker" / "server.properties").read_text().splitlines()
    ours = (root / "kafkapy" / "server.properties").read_text().splitlines()
    differ = [(a, b) for a, b in zip(kafka, ours, strict=True) if a != b]
    assert [a.split("=")[0] for a, _ in differ] == ["log.dirs"]


def test_kafka_and_kafkapy_give_each_client_the_same_outcome(outcomes: dict[str, Any]) -> None:
    assert outcomes["kafka"] == EXPECTED, "Apache Kafka 4.3.1 answered otherwise than recorded here"
    assert outcomes["kafkapy"] == outcomes["kafka"]


def kafkapy_events(outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for line in (outcomes["root"] / "kafkapy" / "server.log").read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_kafkapy_logs_kraft_keys_as_kafka_only_and_nothing_unused(outcomes: dict[str, Any]) -> None:
    by_name: dict[str, dict[str, Any]] = {}
    for event in kafkapy_events(outcomes):
        by_name.setdefault(str(event.get("event")), event)
    ignored = by_name["config_kafka_only_ignored"]["keys"]
    assert ignored == "controller.listener.names,controller.quorum.voters,process.roles"
    assert "config_unused" not in by_name


def test_kafkapy_authenticated_the_mapped_and_sasl_principals(outcomes: dict[str, Any]) -> None:
    seen = {
        (e["principal"], e["listener"], e.get("mechanism", "TLS"))
        for e in kafkapy_events(outcomes)
        if e.get("event") in ("authenticated", "tls_client_authenticated")
    }
    assert seen == {
        ("User:admin", "EXTERNAL", "PLAIN"),
        ("User:alice", "EXTERNAL", "PLAIN"),
        ("User:bob", "EXTERNAL", "PLAIN"),
        (f"User:{SCRAM_USER}", "EXTERNAL", "SCRAM-SHA-512"),
        ("User:svc-carol", "MTLS", "TLS"),
        ("User:svc-dave", "MTLS", "TLS"),
    }
