"""The ACL matrix against a real kafkapy broker over SASL_SSL: User:alice logs in with SASL PLAIN, the
admin grants her ACLs phase by phase (interop/diff_acls.py), and every answer's error codes, names and
authorized operations are compared with Apache Kafka 4.3.1's (StandardAuthorizer, SASL_SSL listener),
recorded in interop/golden_kafka/acl_matrix.json by `python -m interop.diff_acls record`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from interop import diff_acls
from interop._common import BrokerProcess, start_broker
from interop.certs import Pki, broker_pem_settings, make_pki
from interop.differential import Conn


def settings(pki: Pki) -> dict[str, str]:
    return {
        "listeners": "SASL_SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        **broker_pem_settings(pki, java=True),  # the keystore the Kafka recording used
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": diff_acls.JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin",
        "node.id": "1",  # as the reference broker (DescribeConfigs names broker 1)
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("acls-pki"), clients=())


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BrokerProcess]:
    data = tmp_path_factory.mktemp("acls") / "data"
    b = start_broker(data, settings(pki))
    try:
        yield b
    finally:
        b.stop()


# Where kafkapy's answer differs from Kafka 4.3.1's, and why (step -> reason).
KNOWN_DIFFERENCES: dict[str, str] = {}


def run_matrix(bootstrap: str, pki: Pki) -> dict[str, Any]:
    tls = diff_acls.tls_context(pki.ca)

    def admin() -> Conn:
        return diff_acls.login(bootstrap, "admin", tls)

    return diff_acls.run(admin, lambda: diff_acls.login(bootstrap, "alice", tls), settle=0.2)


def test_acl_matrix_matches_kafka(broker: BrokerProcess, pki: Pki) -> None:
    kafka = diff_acls.load()
    assert kafka["_meta"]["listener"] == "SASL_SSL"
    ours = run_matrix(broker.bootstrap, pki)
    diffs = diff_acls.compare(kafka, ours)
    unexpected = {k: v for k, v in diffs.items() if k not in KNOWN_DIFFERENCES}
    assert not unexpected, "\n".join(f"{k}:\n  kafka: {a}\n  ours:  {b}" for k, (a, b) in unexpected.items())
