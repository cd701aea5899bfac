"""librdkafka (confluent-kafka) against ACLs on a kafkapy broker, alice over SASL_PLAINTEXT/PLAIN:
producing without Write fails with TOPIC_AUTHORIZATION_FAILED, consuming in a group without Read on
the group with GROUP_AUTHORIZATION_FAILED; once granted, both work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from interop import diff_acls
from interop import differential as d
from interop.diff_acls import ALLOW, DESCRIBE, GROUP_R, LITERAL, READ, TOPIC, WRITE, acl_creation
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_acl_cluster import sasl_settings

TOPIC_NAME, GROUP = "rk-orders", "rk-group"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("acl-rdkafka")
    inside, port = free_port(), free_port()
    settings = {**sasl_settings(inside, port), "group.initial.rebalance.delay.ms": "0"}
    b = BrokerProcess(root / "data", root / "broker.log", port=inside, settings=settings).start()
    try:
        sasl = f"127.0.0.1:{port}"
        conn = diff_acls.login(sasl, "admin")
        try:
            created: Any = conn.call(d.create(d.topic(TOPIC_NAME, 1)), 7)
            assert created.topics[0].error_code == 0
        finally:
            conn.close()
        yield sasl
    finally:
        b.stop()


def grant(bootstrap: str, *acls: tuple[int, str, int, int, int]) -> None:
    conn = diff_acls.login(bootstrap, "admin")
    try:
        resp: Any = conn.call(CreateAclsRequest(creations=[acl_creation(*a) for a in acls]), 3)
    finally:
        conn.close()
    assert all(r.error_code == 0 for r in resp.results)


def alice(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
        **extra,
    }


def produce_one(bootstrap: str, value: bytes) -> Any:
    """Produce one record; the delivery error (None when delivered)."""
    reports: list[Any] = []
    p = confluent_kafka.Producer(alice(bootstrap, **{"message.timeout.ms": 10000}))
    p.produce(TOPIC_NAME, value, callback=lambda err, msg: reports.append(err))
    p.flush(20)
    assert len(reports) == 1
    return reports[0]


def consume(bootstrap: str, timeout: float = 20.0) -> tuple[list[bytes], Any]:
    """Subscribe in GROUP and poll until a record or an error comes (records, first error)."""
    c = confluent_kafka.Consumer(alice(bootstrap, **{"group.id": GROUP, "auto.offset.reset": "earliest"}))
    try:
        c.subscribe([TOPIC_NAME])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                return [], msg.error()
            return [msg.value()], None
        return [], None
    finally:
        c.close()


def test_librdkafka_gets_kafka_authorization_errors_then_works(bootstrap: str) -> None:
    KE = confluent_kafka.KafkaError
    err = produce_one(bootstrap, b"refused")  # no ACL at all: the topic is not even described
    assert err is not None and err.code() == KE.TOPIC_AUTHORIZATION_FAILED, err
    grant(bootstrap, (TOPIC, TOPIC_NAME, LITERAL, DESCRIBE, ALLOW))
    err = produce_one(bootstrap, b"refused")  # Describe but no Write: Produce itself refused
    assert err is not None and err.code() == KE.TOPIC_AUTHORIZATION_FAILED, err

    grant(bootstrap, (TOPIC, TOPIC_NAME, LITERAL, WRITE, ALLOW))
    assert produce_one(bootstrap, b"hello") is None

    grant(bootstrap, (TOPIC, TOPIC_NAME, LITERAL, READ, ALLOW))
    records, error = consume(bootstrap)  # Read on the topic, nothing on the group
    assert not records and error is not None and error.code() == KE.GROUP_AUTHORIZATION_FAILED, error

    grant(bootstrap, (GROUP_R, GROUP, LITERAL, READ, ALLOW))
    records, error = consume(bootstrap)
    assert error is None and records == [b"hello"]
