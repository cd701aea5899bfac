"""A broker with an unusable TLS set-up refuses to start: one broker_start_failed line naming
the listener and the reason, exit status 1, never a plaintext fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interop.certs import KEY_PASSWORD, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def run_broker(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kafkapy", "broker", "--data-dir", str(tmp_path / "data"), "--log-format", "json"]
    cmd += [
        "--set",
        "listeners=SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "--set",
        "inter.broker.listener.name=PLAINTEXT",
    ]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)


CASES = {
    "no keystore": ({}, "no keystore"),
    "missing file": ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "/nonexistent/broker.pem"}, "cannot read"),
    "wrong key password": ({"ssl.keystore.type": "PEM", "ssl.key.password": "wrong"}, "wrong ssl.key.password"),
    "wrong store password": ({"ssl.keystore.type": "PKCS12", "ssl.keystore.password": "wrong"}, "wrong password"),
    "bad mapping rules": ({"ssl.principal.mapping.rules": "RULE:^CN=(.*)$"}, "no closing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refuses_to_start(pki: Pki, tmp_path: Path, case: str) -> None:
    settings, reason = CASES[case]
    full = dict(settings)
    if full.get("ssl.keystore.type") == "PEM":
        full.setdefault("ssl.keystore.location", str(pki.broker_pem))
        full.setdefault("ssl.key.password", KEY_PASSWORD)
    elif full.get("ssl.keystore.type") == "PKCS12":
        full["ssl.keystore.location"] = str(pki.broker_p12)
    elif case == "bad mapping rules":
        full.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.broker_pem)})
        full["ssl.key.password"] = KEY_PASSWORD
    proc = run_broker(tmp_path, full)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    failed = [json.loads(line) for line in output.splitlines() if '"broker_start_failed"' in line]
    assert len(failed) == 1, output
    assert "listener SSL" in failed[0]["error"] and reason in failed[0]["error"], failed[0]
    assert "broker_ready" not in output
    assert "Traceback" not in output


def test_config_key_lines_at_start(pki: Pki, tmp_path: Path) -> None:
    """Kafka-only keys: one info line naming them; unknown keys: one warning line, Kafka's words."""
    proc = run_broker(
        tmp_path,
        {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": "/nonexistent",  # stops right after the config lines
            "process.roles": "broker",
            "controller.quorum.voters": "1@x:9093",
            "no.such.key": "1",
        },
    )
    output = proc.stdout + proc.stderr
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    ignored = [e for e in events if e["event"] == "config_kafka_only_ignored"]
    unused = [e for e in events if e["event"] == "config_unused"]
    assert len(ignored) == 1 and ignored[0]["keys"] == "controller.quorum.voters,process.roles"
    assert len(unused) == 1 and unused[0]["level"] == "warning"
    assert unused[0]["message"] == "These configurations '[no.such.key]' were supplied but are not used yet."
