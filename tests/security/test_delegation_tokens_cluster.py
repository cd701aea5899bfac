"""Delegation tokens in a cluster: stored in etcd, created through one broker, used for a SCRAM login on
another (the etcd watch), renewed and expired through the second and then refused by the first."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

from kafkapy.local_cluster import LocalCluster
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.testing import free_port
from tests.security.test_delegation_tokens import SECRET, create, describe, expire, plain, renew, token_auth
from tests.security.test_sasl_server import PLAIN_JAAS


def _eventually(fn: Callable[[], object], expected: object, timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


class _Bootstrap:
    """What the helpers of test_delegation_tokens read from a broker: its SASL bootstrap."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap


def test_tokens_shared_through_etcd(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, 0, {"broker.session.timeout.ms": "3000"}).start()
    try:
        sasl: dict[int, str] = {}
        for node in (1, 2):
            inside, port = free_port("127.0.0.1"), free_port("127.0.0.1")
            sasl[node] = f"127.0.0.1:{port}"
            listeners = f"INSIDE://127.0.0.1:{inside},SASL_PLAINTEXT://127.0.0.1:{port}"
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
                    "delegation.token.secret.key": SECRET,
                },
            )
            b.port = inside
            b.start()
        one, two = _Bootstrap(sasl[1]), _Bootstrap(sasl[2])
        with plain(one, "alice") as alice:  # type: ignore[arg-type]
            r = create(alice)
            assert r.error_code == E.NONE
        password = base64.b64encode(bytes(r.hmac)).decode()

        def login(b: _Bootstrap) -> int:
            client, code = token_auth(b, r.token_id, password, "SCRAM-SHA-256")  # type: ignore[arg-type]
            client.close()
            return code

        assert _eventually(lambda: login(two), E.NONE) == E.NONE
        with plain(two, "alice") as alice:  # type: ignore[arg-type]
            assert describe(alice)[1] == [r.token_id]
            assert renew(alice, bytes(r.hmac), 60_000)[0] == E.NONE
            assert expire(alice, bytes(r.hmac), -1)[0] == E.NONE
        with plain(one, "alice") as alice:  # type: ignore[arg-type]
            assert _eventually(lambda: describe(alice)[1], []) == []
        assert login(one) == E.SASL_AUTHENTICATION_FAILED
    finally:
        c.stop()
