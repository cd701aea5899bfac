"""`kafkapy acls` against a real broker process: SASL PLAIN users admin (super user) and alice;
the CLI authenticates as admin (flags, a --command-config file, or SASL_SSL with --tls), adds,
lists and removes ACLs, and what alice may see follows them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop import diff_acls
from interop.certs import Pki, broker_pem_settings, make_pki
from kafkapy.client import ConnectionSecurity, KafkaClient, KafkaError, sasl_authenticator
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.security.sasl_plain import PlainClient
from kafkapy.security.scram import ScramClientMechanism
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_sasl_server import PLAIN_JAAS

ADMIN = ["--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", "admin-secret"]


class Broker:
    def __init__(self, process: BrokerProcess, sasl: str, sasl_ssl: str, pki: Pki) -> None:
        self.process, self.sasl, self.sasl_ssl, self.pki = process, sasl, sasl_ssl, pki


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    root = tmp_path_factory.mktemp("acl-cli")
    pki = make_pki(root / "pki")
    inside, sasl, sasl_ssl = (free_port() for _ in range(3))
    listeners = f"INSIDE://127.0.0.1:{inside},SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}"
    settings = {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "listener.security.protocol.map": "INSIDE:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "INSIDE",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        **broker_pem_settings(pki, "SASL_SSL"),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",  # not User:ANONYMOUS: the plaintext listener may do nothing
    }
    process = BrokerProcess(root / "data", root / "broker.log", port=inside, settings=settings).start()
    try:
        yield Broker(process, f"127.0.0.1:{sasl}", f"127.0.0.1:{sasl_ssl}", pki)
    finally:
        process.stop()


def acls(bootstrap: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kafkapy", "acls", "--bootstrap-server", bootstrap, *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, input=stdin)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def alice_topic_code(bootstrap: str, topic: str) -> int:
    """The error code alice's Metadata gets for `topic` (which does not exist): 3 with Describe, 29 without."""
    conn = diff_acls.login(bootstrap, "alice")
    try:
        resp = conn.call(diff_acls.meta(topic), 12)
    finally:
        conn.close()
    return int(resp.topics[0].error_code)


def entry(principal: str, op: str, permission: str = "ALLOW", host: str = "*") -> str:
    return f"(principal={principal}, host={host}, operation={op}, permissionType={permission})"


def topic_pattern(name: str, pattern: str = "LITERAL") -> str:
    return f"ResourcePattern(resourceType=TOPIC, name={name}, patternType={pattern})"


def test_add_list_remove(broker: Broker) -> None:
    b = broker.sasl
    assert alice_topic_code(broker.sasl, "orders") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    out = ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "describe",
            "--topic",
            "orders",
            "--group",
            "billing",
        )
    )
    assert f"Adding ACLs for resource `{topic_pattern('orders')}`" in out
    assert entry("User:alice", "READ") in out and entry("User:alice", "DESCRIBE") in out
    assert "ResourcePattern(resourceType=GROUP, name=billing, patternType=LITERAL)" in out
    assert alice_topic_code(broker.sasl, "orders") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    listed = ok(acls(b, *ADMIN, "--list", "--topic", "orders"))
    assert f"Current ACLs for resource `{topic_pattern('orders')}`" in listed
    assert "billing" not in listed
    everything = ok(acls(b, *ADMIN, "--list"))
    assert "orders" in everything and "billing" in everything
    assert "billing" in ok(acls(b, *ADMIN, "--list", "--principal", "User:alice"))
    assert "orders" not in ok(acls(b, *ADMIN, "--list", "--principal", "User:bob"))

    # removing only the Describe entry keeps Read (which implies Describe)
    ok(
        acls(
            b,
            *ADMIN,
            "--remove",
            "--force",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
            "--topic",
            "orders",
        )
    )
    listed = ok(acls(b, *ADMIN, "--list", "--topic", "orders"))
    assert entry("User:alice", "READ") in listed and entry("User:alice", "DESCRIBE") not in listed
    assert alice_topic_code(broker.sasl, "orders") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    # --remove without --force asks; "n" keeps the ACLs
    out = acls(b, *ADMIN, "--remove", "--topic", "orders", stdin="n\n")
    assert "Are you sure you want to delete all ACLs for resource filter" in ok(out)
    assert entry("User:alice", "READ") in ok(acls(b, *ADMIN, "--list", "--topic", "orders"))

    ok(acls(b, *ADMIN, "--remove", "--force", "--topic", "orders", "--group", "billing"))
    assert ok(acls(b, *ADMIN, "--list", "--topic", "orders")).strip() == ""
    assert alice_topic_code(broker.sasl, "orders") == ErrorCode.TOPIC_AUTHORIZATION_FAILED


def test_prefixed_deny_and_pattern_filters(broker: Broker) -> None:
    b = broker.sasl
    ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
            "--topic",
            "app-",
            "--resource-pattern-type",
            "prefixed",
        )
    )
    assert alice_topic_code(broker.sasl, "app-one") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--deny-principal",
            "User:alice",
            "--deny-host",
            "127.0.0.1",
            "--operation",
            "Describe",
            "--topic",
            "app-secret",
        )
    )
    assert alice_topic_code(broker.sasl, "app-secret") == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert alice_topic_code(broker.sasl, "app-two") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    # match: every pattern that applies to app-secret; literal: only the literal one; any: exact name
    match = ok(acls(b, *ADMIN, "--list", "--topic", "app-secret", "--resource-pattern-type", "match"))
    assert topic_pattern("app-", "PREFIXED") in match and topic_pattern("app-secret") in match
    assert entry("User:alice", "DESCRIBE", "DENY", "127.0.0.1") in match
    literal = ok(acls(b, *ADMIN, "--list", "--topic", "app-secret"))
    assert topic_pattern("app-", "PREFIXED") not in literal and topic_pattern("app-secret") in literal
    any_type = ok(acls(b, *ADMIN, "--list", "--topic", "app-", "--resource-pattern-type", "any"))
    assert topic_pattern("app-", "PREFIXED") in any_type and "app-secret" not in any_type

    ok(acls(b, *ADMIN, "--remove", "--force", "--topic", "app-secret", "--resource-pattern-type", "match"))
    assert ok(acls(b, *ADMIN, "--list", "--topic", "app-secret", "--resource-pattern-type", "match")).strip() == ""
    assert alice_topic_code(broker.sasl, "app-secret") == ErrorCode.TOPIC_AUTHORIZATION_FAILED  # nothing left


def test_producer_consumer_sets(broker: Broker) -> None:
    b = broker.sasl
    out = ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--allow-principal",
            "User:carol",
            "--producer",
            "--consumer",
            "--idempotent",
            "--topic",
            "pc",
            "--group",
            "pcg",
            "--transactional-id",
            "pct",
        )
    )
    for op in ("WRITE", "DESCRIBE", "CREATE", "READ"):
        assert entry("User:carol", op) in out
    listed = ok(acls(b, *ADMIN, "--list", "--principal", "User:carol"))
    assert "ACLs for principal `User:carol`" in listed
    assert "ResourcePattern(resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL)" in listed
    assert entry("User:carol", "IDEMPOTENT_WRITE") in listed
    assert "ResourcePattern(resourceType=TRANSACTIONAL_ID, name=pct, patternType=LITERAL)" in listed
    ok(
        acls(
            b,
            *ADMIN,
            "--remove",
            "--force",
            "--topic",
            "pc",
            "--group",
            "pcg",
            "--transactional-id",
            "pct",
            "--cluster",
        )
    )
    assert ok(acls(b, *ADMIN, "--list", "--principal", "User:carol")).strip() == ""


def test_command_config_and_sasl_ssl(broker: Broker, tmp_path: Path) -> None:
    props = tmp_path / "admin.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
        '    username="admin" password="admin-secret";\n'
    )
    ok(acls(broker.sasl, "--command-config", str(props), "--add", "--allow-principal", "User:dave", "--topic", "cc"))
    assert entry("User:dave", "ALL") in ok(acls(broker.sasl, "--command-config", str(props), "--list", "--topic", "cc"))

    tls = ["--tls", "--ssl-cafile", str(broker.pki.ca), *ADMIN]
    assert entry("User:dave", "ALL") in ok(acls(broker.sasl_ssl, *tls, "--list", "--topic", "cc"))
    ssl_props = tmp_path / "ssl.properties"
    ssl_props.write_text(
        props.read_text().replace("SASL_PLAINTEXT", "SASL_SSL")
        + f"ssl.truststore.type=PEM\nssl.truststore.location={broker.pki.ca}\n"
    )
    ok(acls(broker.sasl_ssl, "--command-config", str(ssl_props), "--remove", "--force", "--topic", "cc"))
    assert ok(acls(broker.sasl, *ADMIN, "--list", "--topic", "cc")).strip() == ""


def test_refusals(broker: Broker) -> None:
    # alice is no super user and has no Describe on the cluster
    alice = ["--sasl-mechanism", "PLAIN", "--sasl-username", "alice", "--sasl-password", "alice-secret"]
    out = acls(broker.sasl, *alice, "--list")
    assert out.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in out.stderr, out.stderr
    out = acls(broker.sasl, *alice, "--add", "--allow-principal", "User:alice", "--cluster")
    assert out.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in out.stderr, out.stderr
    wrong = ["--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", "nope"]
    out = acls(broker.sasl, *wrong, "--list")
    assert out.returncode == 1, out.stderr
    # Kafka's message for a wrong PLAIN password, under its error (was reported as NETWORK_EXCEPTION)
    assert out.stderr == (
        "kafkapy acls: error: SASL_AUTHENTICATION_FAILED: Authentication failed: Invalid username or password\n"
    )
    scram = ["--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "admin", "--sasl-password", "admin-secret"]
    out = acls(broker.sasl, *scram, "--list")
    assert out.returncode == 1 and out.stderr == (
        "kafkapy acls: error: UNSUPPORTED_SASL_MECHANISM: Client SASL mechanism 'SCRAM-SHA-256' not enabled in the"
        " server, enabled mechanisms are [PLAIN]\n"
    ), out.stderr
    users = [sys.executable, "-m", "kafkapy", "users", "list", "--bootstrap-server", broker.sasl, *wrong]
    out = subprocess.run(users, check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr == (
        "kafkapy users: error: SASL_AUTHENTICATION_FAILED: Authentication failed: Invalid username or password\n"
    ), out.stderr
    for args, message in (
        (["--add", "--topic", "t"], "You must specify one of: --allow-principal, --deny-principal"),
        (["--add", "--allow-principal", "User:a"], "You must provide at least one resource"),
        (["--add", "--allow-principal", "alice", "--topic", "t"], "Could not parse principal from `alice`"),
        (
            ["--add", "--allow-principal", "User:a", "--topic", "t", "--resource-pattern-type", "match"],
            "not valid when adding",
        ),
        (
            ["--add", "--allow-principal", "User:a", "--topic", "t", "--operation", "ClusterAction"],
            "ResourceType TOPIC only supports operations",
        ),
        (["--add", "--allow-principal", "User:a", "--topic", "t", "--operation", "Fly"], "Invalid operation 'Fly'"),
        (
            ["--add", "--allow-principal", "User:a", "--consumer", "--topic", "t"],
            "With --consumer you must specify a --group",
        ),
    ):
        out = acls(broker.sasl, *ADMIN, *args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)


def test_delegation_token_and_user_resources(broker: Broker) -> None:
    b = broker.sasl
    out = ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--allow-principal",
            "User:erin",
            "--operation",
            "CreateTokens",
            "--operation",
            "DescribeTokens",
            "--user-principal",
            "User:svc",
        )
    )
    assert "ResourcePattern(resourceType=USER, name=User:svc, patternType=LITERAL)" in out
    assert entry("User:erin", "CREATE_TOKENS") in out and entry("User:erin", "DESCRIBE_TOKENS") in out
    ok(
        acls(
            b,
            *ADMIN,
            "--add",
            "--allow-principal",
            "User:erin",
            "--operation",
            "Describe",
            "--delegation-token",
            "tok-1",
        )
    )
    listed = ok(acls(b, *ADMIN, "--list", "--principal", "User:erin"))
    assert "ResourcePattern(resourceType=DELEGATION_TOKEN, name=tok-1, patternType=LITERAL)" in listed
    out = acls(b, *ADMIN, "--add", "--allow-principal", "User:erin", "--operation", "Read", "--delegation-token", "t")
    assert out.returncode == 2 and "ResourceType DELEGATION_TOKEN only supports operations DESCRIBE,ALL" in out.stderr
    ok(acls(b, *ADMIN, "--remove", "--force", "--user-principal", "User:svc", "--delegation-token", "tok-1"))
    assert ok(acls(b, *ADMIN, "--list", "--principal", "User:erin")).strip() == ""


def test_client_reports_a_refused_login_and_negotiates_admin_apis(broker: Broker) -> None:
    """kafkapy.client (the CLIs, inter-broker connections): a refused login raises the broker's SASL error
    with its message from bootstrap() and any_connection(), never NETWORK_EXCEPTION; the ACL and SCRAM
    admin APIs are negotiated through ApiVersions like the others."""

    def client(mechanism: str, password: str) -> KafkaClient:
        if mechanism == "PLAIN":
            auth = sasl_authenticator(lambda: PlainClient("admin", password))
        else:
            auth = sasl_authenticator(lambda: ScramClientMechanism(mechanism, "admin", password))
        return KafkaClient(broker.sasl, security=ConnectionSecurity(authenticate=auth))

    async def refused(mechanism: str, password: str, first: bool) -> KafkaError:
        c = client(mechanism, password)
        try:
            with pytest.raises(KafkaError) as failure:
                await (c.bootstrap() if first else c.any_connection())
        finally:
            await c.close()
        return failure.value

    async def versions() -> dict[int, int]:
        async with client("PLAIN", "admin-secret") as c:
            return dict((await c.any_connection()).versions)

    for first in (True, False):
        error = asyncio.run(refused("PLAIN", "nope", first))
        assert (error.code, error.message) == (
            ErrorCode.SASL_AUTHENTICATION_FAILED,
            "Authentication failed: Invalid username or password",
        )
        assert error.authentication and not error.retriable
        error = asyncio.run(refused("SCRAM-SHA-512", "x", first))
        assert error.code == ErrorCode.UNSUPPORTED_SASL_MECHANISM, error
    negotiated = asyncio.run(versions())
    assert [negotiated.get(k) for k in (ApiKey.DESCRIBE_ACLS, ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS)] == [3, 3, 3]
    scram_apis = (ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, ApiKey.ALTER_USER_SCRAM_CREDENTIALS)
    assert [negotiated.get(k) for k in scram_apis] == [0, 0]
