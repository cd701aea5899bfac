"""Kafka's own kafka-acls (org.apache.kafka.tools.AclCommand from the Apache Kafka 4.3.1 jars, Java admin
client: CreateAcls, DescribeAcls, DeleteAcls) against a kafkapy broker over SASL_PLAINTEXT: it adds,
lists and removes ACLs as the admin super user, refuses alice (no Describe/Alter on the cluster), and
what alice may see follows the ACLs it set."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.adapters.java import TOOL_JVM, java_command
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_acl_cli import alice_topic_code, entry, topic_pattern
from tests.security.test_acl_cluster import sasl_settings

JAAS = "org.apache.kafka.common.security.plain.PlainLoginModule required username={u} password={p};"


class Broker:
    def __init__(self, process: BrokerProcess, sasl: str) -> None:
        self.process, self.sasl = process, sasl


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    root = tmp_path_factory.mktemp("kafka-acls")
    inside, port = free_port(), free_port()
    settings = {**sasl_settings(inside, port), "super.users": "User:admin"}
    b = BrokerProcess(root / "data", root / "broker.log", port=inside, settings=settings).start()
    try:
        yield Broker(b, f"127.0.0.1:{port}")
    finally:
        b.stop()


def properties(tmp: Path, user: str, password: str) -> Path:
    path = tmp / f"{user}.properties"
    jaas = JAAS.format(u=f'"{user}"', p=f'"{password}"')
    path.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config={jaas}\n")
    return path


def kafka_acls(broker: Broker, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = java_command(
        "org.apache.kafka.tools.AclCommand",
        "--bootstrap-server",
        broker.sasl,
        "--command-config",
        str(config),
        *args,
        jvm_args=TOOL_JVM,
    )
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def code(broker: Broker, topic: str) -> int:
    return alice_topic_code(broker.sasl, topic)


def test_kafka_acls_add_list_remove(broker: Broker, tmp_path: Path) -> None:
    admin = properties(tmp_path, "admin", "admin-secret")
    assert code(broker, "ledger") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    out = ok(
        kafka_acls(
            broker,
            admin,
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "ledger",
            "--group",
            "ledger-app",
        )
    )
    assert f"Adding ACLs for resource `{topic_pattern('ledger')}`" in out
    assert entry("User:alice", "READ") in out
    assert code(broker, "ledger") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # Read implies Describe

    ok(
        kafka_acls(
            broker,
            admin,
            "--add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "out-",
            "--resource-pattern-type",
            "prefixed",
        )
    )
    assert code(broker, "out-1") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    ok(
        kafka_acls(
            broker, admin, "--add", "--deny-principal", "User:alice", "--operation", "Describe", "--topic", "out-secret"
        )
    )
    assert code(broker, "out-secret") == ErrorCode.TOPIC_AUTHORIZATION_FAILED

    listed = ok(kafka_acls(broker, admin, "--list"))
    for pattern in (topic_pattern("ledger"), topic_pattern("out-", "PREFIXED"), topic_pattern("out-secret")):
        assert f"Current ACLs for resource `{pattern}`" in listed, listed
    assert "ResourcePattern(resourceType=GROUP, name=ledger-app, patternType=LITERAL)" in listed
    assert entry("User:alice", "DESCRIBE", "DENY") in listed
    match = ok(kafka_acls(broker, admin, "--list", "--topic", "out-secret", "--resource-pattern-type", "match"))
    assert topic_pattern("out-", "PREFIXED") in match and topic_pattern("out-secret") in match
    assert "ledger" not in match
    by_principal = ok(kafka_acls(broker, admin, "--list", "--principal", "User:alice"))
    assert "ACLs for principal `User:alice`" in by_principal and "ledger-app" in by_principal

    alice = properties(tmp_path, "alice", "alice-secret")
    refused = kafka_acls(broker, alice, "--list")
    assert "ClusterAuthorizationException" in refused.stdout + refused.stderr

    ok(kafka_acls(broker, admin, "--remove", "--force", "--topic", "out-secret"))
    assert code(broker, "out-secret") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # the prefixed grant remains
    ok(
        kafka_acls(
            broker,
            admin,
            "--remove",
            "--force",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "ledger",
        )
    )
    assert code(broker, "ledger") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    ok(kafka_acls(broker, admin, "--remove", "--force", "--topic", "out-", "--resource-pattern-type", "prefixed"))
    ok(kafka_acls(broker, admin, "--remove", "--force", "--group", "ledger-app"))
    assert ok(kafka_acls(broker, admin, "--list")).strip() == ""


def test_kafkapy_acls_against_apache_kafka(tmp_path: Path) -> None:
    """kafkapy acls is a client like kafka-acls: the same add/list/remove against Apache Kafka 4.3.1."""
    from interop import apache_kafka, diff_acls
    from tests.security.test_acl_cli import ADMIN, acls

    plain, controller, sasl = (apache_kafka.free_port() for _ in range(3))
    picks = iter([plain, controller])
    original = apache_kafka.free_port
    apache_kafka.free_port = lambda host="127.0.0.1": next(picks)  # type: ignore[assignment]
    try:
        kafka = apache_kafka.start_kafka(
            tmp_path / "kafka",
            {
                "listeners": f"PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
                f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": diff_acls.JAAS,
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:ANONYMOUS;User:admin",
            },
        )
    finally:
        apache_kafka.free_port = original
    bootstrap = f"127.0.0.1:{sasl}"
    try:
        out = ok(
            acls(
                bootstrap,
                *ADMIN,
                "--add",
                "--allow-principal",
                "User:alice",
                "--operation",
                "Read",
                "--topic",
                "k-",
                "--resource-pattern-type",
                "prefixed",
            )
        )
        assert entry("User:alice", "READ") in out
        ok(
            acls(
                bootstrap,
                *ADMIN,
                "--add",
                "--allow-principal",
                "User:alice",
                "--consumer",
                "--topic",
                "k-t",
                "--group",
                "k-g",
            )
        )
        listed = ""
        for _ in range(50):  # Kafka applies ACLs through its metadata log
            listed = ok(acls(bootstrap, *ADMIN, "--list"))
            if "k-g" in listed:
                break
        assert f"Current ACLs for resource `{topic_pattern('k-', 'PREFIXED')}`" in listed, listed
        assert "ResourcePattern(resourceType=GROUP, name=k-g, patternType=LITERAL)" in listed
        match = ok(acls(bootstrap, *ADMIN, "--list", "--topic", "k-t", "--resource-pattern-type", "match"))
        assert topic_pattern("k-", "PREFIXED") in match and topic_pattern("k-t") in match
        alice = ["--sasl-mechanism", "PLAIN", "--sasl-username", "alice", "--sasl-password", "alice-secret"]
        refused = acls(bootstrap, *alice, "--list")
        assert refused.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr
        ok(acls(bootstrap, *ADMIN, "--remove", "--force", "--topic", "k-t", "--group", "k-g"))
        ok(acls(bootstrap, *ADMIN, "--remove", "--force", "--topic", "k-", "--resource-pattern-type", "prefixed"))
        for _ in range(50):
            if ok(acls(bootstrap, *ADMIN, "--list")).strip() == "":
                break
        assert ok(acls(bootstrap, *ADMIN, "--list")).strip() == ""
    finally:
        kafka.stop()
