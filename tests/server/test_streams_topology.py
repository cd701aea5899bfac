"""StreamsGroupTopologyDescriptionUpdate (93, KIP-1331): kafkapy stores no topology descriptions and
answers as Apache Kafka 4.4.0 without a description plugin (interop/golden_kafka/streams_topology_4.4.0.json,
recorded by interop/diff_streams_topology.py), for any group, member and epoch, after the group ACL."""

from __future__ import annotations

from pathlib import Path

from interop import diff_acls, diff_features, diff_streams_topology
from interop._common import start_broker


def test_answers_as_kafka_4_4_0(tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "data")
    try:
        ours = diff_streams_topology.run(broker.bootstrap)
    finally:
        broker.stop()
    golden = {k: v for k, v in diff_streams_topology.load().items() if k != "authorization"}
    assert ours == golden
    assert ours["member"] == [35, "The broker has no streams group topology description plugin configured."]


def test_authorization_as_kafka_4_4_0(tmp_path: Path) -> None:
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": diff_acls.JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin",
    }
    broker = start_broker(tmp_path / "data", settings)
    try:
        ours = diff_streams_topology.authorization(lambda user: diff_features.sasl_login(broker.bootstrap, user))
    finally:
        broker.stop()
    assert ours == diff_streams_topology.load()["authorization"]
    assert ours["alice"] == [30, None]
