"""`kafkapy acls` and `kafkapy users` against Apache Kafka 4.3.1 (SASL_PLAINTEXT with PLAIN and
SCRAM-SHA-512, the StandardAuthorizer, super.users=User:admin): the admin APIs are negotiated through
ApiVersions, so the CLIs add, list and remove ACLs and SCRAM credentials on Kafka as on kafkapy, and a
refused login prints Kafka's own message under its SASL error and exits 1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop import apache_kafka
from interop.adapters.java import available

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_cli_apache_kafka.py: {_missing} (scripts/test installs and builds it)")

ROOT = Path(__file__).resolve().parents[1]
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret";'
)
ADMIN = ["--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", "admin-secret"]


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    plain, controller, sasl = (apache_kafka.free_port() for _ in range(3))
    picks = iter([plain, controller])
    with pytest.MonkeyPatch.context() as patch:  # start_kafka's PLAINTEXT and CONTROLLER ports
        patch.setattr(apache_kafka, "free_port", lambda host="127.0.0.1": next(picks))
        kafka = apache_kafka.start_kafka(
            tmp_path_factory.mktemp("apache-kafka-sasl"),
            {
                "listeners": f"PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
                f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:admin;User:ANONYMOUS",  # ANONYMOUS: the PLAINTEXT and CONTROLLER listeners
            },
        )
    try:
        yield f"127.0.0.1:{sasl}"
    finally:
        kafka.stop()


def kafkapy(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kafkapy", *args, "--bootstrap-server", bootstrap]
    return subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True, timeout=60)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_acls_cli(sasl_bootstrap: str) -> None:
    entry = "(principal=User:dave, host=*, operation=ALL, permissionType=ALLOW)"
    pattern = "ResourcePattern(resourceType=TOPIC, name=cli-topic, patternType=LITERAL)"
    added = ok(
        kafkapy(sasl_bootstrap, "acls", "--add", "--allow-principal", "User:dave", "--topic", "cli-topic", *ADMIN)
    )
    assert f"Current ACLs for resource `{pattern}`: \n \t{entry} \n" in added
    assert entry in ok(kafkapy(sasl_bootstrap, "acls", "--list", *ADMIN))
    ok(kafkapy(sasl_bootstrap, "acls", "--remove", "--force", "--topic", "cli-topic", *ADMIN))
    assert ok(kafkapy(sasl_bootstrap, "acls", "--list", "--topic", "cli-topic", *ADMIN)).strip() == ""


def test_users_cli(sasl_bootstrap: str) -> None:
    add = ["users", "add", "bob", "--mechanism", "SCRAM-SHA-512", "--iterations", "8192", "--password", "bob-secret"]
    ok(kafkapy(sasl_bootstrap, *add, *ADMIN))
    assert ok(kafkapy(sasl_bootstrap, "users", "list", *ADMIN)) == "bob\tSCRAM-SHA-512(iterations=8192)\n"
    ok(kafkapy(sasl_bootstrap, "users", "delete", "bob", *ADMIN))
    assert ok(kafkapy(sasl_bootstrap, "users", "list", *ADMIN)) == ""


def test_refused_logins(sasl_bootstrap: str) -> None:
    wrong = ["--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", "nope"]
    out = kafkapy(sasl_bootstrap, "acls", "--list", *wrong)
    assert (out.returncode, out.stderr) == (
        1,
        "kafkapy acls: error: SASL_AUTHENTICATION_FAILED: Authentication failed: Invalid username or password\n",
    )
    out = kafkapy(sasl_bootstrap, "users", "list", "--sasl-mechanism", "SCRAM-SHA-512", *wrong[2:])
    assert (out.returncode, out.stderr) == (
        1,
        "kafkapy users: error: SASL_AUTHENTICATION_FAILED: Authentication failed during authentication due to"
        " invalid credentials with SASL mechanism SCRAM-SHA-512\n",
    )
    out = kafkapy(sasl_bootstrap, "acls", "--list", "--sasl-mechanism", "SCRAM-SHA-256", *wrong[2:])
    assert (out.returncode, out.stderr) == (
        1,
        "kafkapy acls: error: UNSUPPORTED_SASL_MECHANISM: Client SASL mechanism 'SCRAM-SHA-256' not enabled in the"
        " server, enabled mechanisms are [PLAIN, SCRAM-SHA-512]\n",
    )
