"""SCRAM credentials in a cluster: stored in etcd, set through one broker, used by another (the etcd
watch), deleted through the second and refused by the first."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kafkapy.local_cluster import LocalCluster
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.testing import free_port
from tests.security.test_sasl_scram_api import _scram_login
from tests.security.test_sasl_server import PLAIN_JAAS


def _users(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kafkapy", "users", *args, "-b", bootstrap]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)


def _eventually(fn: object, expected: int, timeout: float = 10.0) -> int:
    assert callable(fn)
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == expected or time.monotonic() > deadline:
            return int(got)
        time.sleep(0.2)


def test_credentials_shared_through_etcd(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, 0, {"broker.session.timeout.ms": "3000"}).start()
    try:
        ports: dict[int, dict[str, int]] = {}
        for node in (1, 2):
            inside, sasl = free_port("127.0.0.1"), free_port("127.0.0.1")
            ports[node] = {"INSIDE": inside, "SASL": sasl}
            listeners = f"INSIDE://127.0.0.1:{inside},SASL_PLAINTEXT://127.0.0.1:{sasl}"
            b = c.add_broker(
                node,
                start=False,
                settings={
                    "listeners": listeners,
                    "advertised.listeners": listeners,
                    "listener.security.protocol.map": "INSIDE:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                    "inter.broker.listener.name": "INSIDE",
                    "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
                },
            )
            b.port = inside
            b.start()
        one, two = (f"127.0.0.1:{ports[n]['SASL']}" for n in (1, 2))
        out = _users(
            f"127.0.0.1:{ports[1]['INSIDE']}", "add", "erin", "--mechanism", "SCRAM-SHA-256", "--password", "e-pw"
        )
        assert out.returncode == 0, out.stderr
        assert _eventually(lambda: _scram_login(two, "SCRAM-SHA-256", "erin", "e-pw"), 0) == 0
        assert _scram_login(one, "SCRAM-SHA-256", "erin", "e-pw") == 0
        out = _users(f"127.0.0.1:{ports[2]['INSIDE']}", "delete", "erin")
        assert out.returncode == 0, out.stderr
        failed = ErrorCode.SASL_AUTHENTICATION_FAILED
        assert _eventually(lambda: _scram_login(one, "SCRAM-SHA-256", "erin", "e-pw"), failed) == failed
    finally:
        c.stop()
