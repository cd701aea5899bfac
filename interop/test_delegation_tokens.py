"""Delegation tokens against a kafkapy broker process with real clients.

- The raw-request scenario of interop/diff_delegation_tokens.py gives the answers Apache Kafka 4.3.1
  gave (golden file), with and without `delegation.token.secret.key`.
- Kafka's kafka-delegation-tokens tool (org.apache.kafka.tools.DelegationTokenCommand, the Java
  AdminClient) creates, describes, renews and expires a token; the Java producer and consumer
  authenticate with it (ScramLoginModule tokenauth=true) as the token's owner; once expired the token
  is refused.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import diff_delegation_tokens as dt
from interop._common import BrokerProcess, listener_port, start_broker, unique_topic
from tests.security.test_sasl_server import sasl_settings


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_answers_as_kafka(tmp_path: Path, enabled: bool) -> None:
    golden = dt.load()["enabled" if enabled else "disabled"]
    b = start_broker(tmp_path / "data", sasl_settings(**dt.broker_settings(enabled)))
    try:
        answers = dt.run(b.bootstrap, f"127.0.0.1:{listener_port(b.log_path, 'INTERNAL')}", enabled)
    finally:
        b.stop()
    differences = {k: (answers.get(k), golden.get(k)) for k in golden.keys() | answers.keys()}
    differences = {k: v for k, v in differences.items() if v[0] != v[1]}
    assert not differences, json.dumps(differences, indent=1, sort_keys=True)


ALICE_JAAS = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";'
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    settings = sasl_settings(**{"delegation.token.secret.key": dt.SECRET})
    b = start_broker(tmp_path_factory.mktemp("tokens-java") / "data", settings)
    try:
        yield b
    finally:
        b.stop()


def _tool(b: BrokerProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from interop.adapters.java import TOOL_JVM, java_command

    props = tmp_path / "alice.properties"
    props.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config={ALICE_JAAS}\n")
    cmd = java_command(
        "org.apache.kafka.tools.DelegationTokenCommand",
        "--bootstrap-server",
        b.bootstrap,
        "--command-config",
        str(props),
        *args,
        jvm_args=TOOL_JVM,
    )
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def _token_rows(out: str) -> list[list[str]]:
    """The table rows the tool prints (token id, HMAC, owner, requester, renewers, dates)."""
    return [line.split() for line in out.splitlines() if re.match(r"^[A-Za-z0-9_-]{22} \S+==? ", line)]


def _token_config(token_id: str, hmac_b64: str, mechanism: str) -> dict[str, Any]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{token_id}" password="{hmac_b64}" tokenauth="true";',
    }


def test_kafka_tool_and_java_clients(broker: BrokerProcess, tmp_path: Path) -> None:
    from interop.adapters import java

    created = _tool(broker, tmp_path, "--create", "--max-life-time-period", "-1", "--renewer-principal", "User:admin")
    assert created.returncode == 0, created.stdout + created.stderr
    rows = _token_rows(created.stdout)
    assert len(rows) == 1, created.stdout
    token_id, hmac_b64, owner, requester, renewers = rows[0][:5]
    assert (owner, requester, renewers) == ("User:alice", "User:alice", "[User:admin]")
    assert f"Created delegation token with tokenId : {token_id}" in created.stdout

    described = _tool(broker, tmp_path, "--describe", "--owner-principal", "User:alice")
    assert described.returncode == 0, described.stdout + described.stderr
    assert [r[:2] for r in _token_rows(described.stdout)] == [[token_id, hmac_b64]]

    # the Java clients authenticate with the token (SCRAM, tokenauth=true) as its owner, alice
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        config = _token_config(token_id, hmac_b64, mechanism)
        java.round_trip(broker.bootstrap, unique_topic("token-java"), unique_topic("g"), config, "t")
    events = [json.loads(line) for line in broker.log_path.read_text().splitlines() if line.startswith("{")]
    authenticated = {(e.get("principal"), e.get("mechanism")) for e in events if e.get("event") == "authenticated"}
    assert {("User:alice", "SCRAM-SHA-256"), ("User:alice", "SCRAM-SHA-512")} <= authenticated

    renewed = _tool(broker, tmp_path, "--renew", "--renew-time-period", "3600000", "--hmac", hmac_b64)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert "Completed renew operation. New expiry date" in renewed.stdout

    expired = _tool(broker, tmp_path, "--expire", "--expiry-time-period", "-1", "--hmac", hmac_b64)
    assert expired.returncode == 0, expired.stdout + expired.stderr
    assert "Completed expire operation. New expiry date" in expired.stdout
    described = _tool(broker, tmp_path, "--describe", "--owner-principal", "User:alice")
    assert _token_rows(described.stdout) == []
    again = _tool(broker, tmp_path, "--renew", "--renew-time-period", "-1", "--hmac", hmac_b64)
    assert again.returncode != 0 and "DelegationTokenNotFoundException" in again.stdout + again.stderr

    with pytest.raises(java.JavaError) as info:
        java.call("list_topics", broker.bootstrap, config=_token_config(token_id, hmac_b64, "SCRAM-SHA-512"))
    assert "SaslAuthenticationException" in str(info.value), str(info.value)
