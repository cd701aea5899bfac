"""KRaft registrations and quorum membership (kafkapy/server/handlers/kraft.py): AddRaftVoter,
RemoveRaftVoter and UnregisterController answer as Apache Kafka 4.3.1 and 4.4.0 do with a static
quorum, UnregisterBroker as Kafka for unknown and live brokers (interop/golden_kafka/raft.json,
recorded by interop/diff_raft.py), and forgets a stopped broker of a cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from interop import diff_acls, diff_features, diff_raft
from interop._common import start_broker
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.messages.unregister_broker_request import UnregisterBrokerRequest
from tests.server.rawclient import RawClient

# steps whose answer is timing on Kafka's side: the broker list right after a live broker unregistered
TIMING = {"unregister_broker.self_brokers_after", "unregister_broker.self_brokers_6s_later"}


def test_answers_as_kafka_4_3_1_and_4_4_0(tmp_path: Path) -> None:
    golden = diff_raft.load()
    broker = start_broker(tmp_path / "data", {"node.id": "1"})  # Kafka's reference broker is node 1
    try:
        ours = diff_raft.run(broker.bootstrap, with_controller=True, wait=0)
    finally:
        broker.stop()
    for release in ("4.3.1", "4.4.0"):
        want = {k: v for k, v in golden[release].items() if k not in TIMING and k != "authorization"}
        got = {k: ours[k] for k in want}
        assert got == want, release
    assert set(ours) - TIMING == {k for k in golden["4.4.0"] if k not in TIMING and k != "authorization"}
    # a live broker stays registered under its lease
    assert ours["unregister_broker.self_brokers_after"] == [1]


def _login(bootstrap: str, user: str) -> RawClient:
    return diff_features.sasl_login(bootstrap, user)


def test_authorization_as_kafka(tmp_path: Path) -> None:
    """Every one of these APIs needs Alter on the cluster (StandardAuthorizer, SASL PLAIN)."""
    settings = {
        "node.id": "1",
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
        ours = diff_raft.authorization(lambda user: _login(broker.bootstrap, user), with_controller=True)
    finally:
        broker.stop()

    def plain(value: Any) -> Any:  # Kafka's text names its own Java request object
        text = json.dumps(value, sort_keys=True)
        return json.loads(
            re.sub(r"Request [^\"]* needs ALTER permission\.", "Request ... needs ALTER permission.", text)
        )

    golden = diff_raft.load()
    assert plain({k: v for k, v in ours.items() if "controller" not in k}) == plain(golden["4.3.1"]["authorization"])
    assert plain(ours) == plain(golden["4.4.0"]["authorization"])
    assert ours["alice.unregister_broker"][0] == 31 and ours["admin.unregister_broker"][0] == 102


def test_unregister_a_stopped_broker_of_a_cluster(tmp_path: Path) -> None:
    """A stopped broker is registered until Admin.unregisterBroker: its accepted data dir is dropped."""
    cluster = LocalCluster(tmp_path, 2).start()
    try:
        wait_until(lambda: "broker-dirs/2" in cluster.etcd_keys(), 20, 0.1, "broker 2's data dir recorded")
        cluster.brokers[2].stop()
        with RawClient(cluster.brokers[1].bootstrap) as c:

            def answer(node: int) -> list[Any]:
                resp = c.request(UnregisterBrokerRequest(broker_id=node), 0)
                return [resp.error_code, resp.error_message]

            def brokers() -> list[int]:
                return sorted(b.node_id for b in c.request(MetadataRequest(topics=[]), 12).brokers)

            wait_until(lambda: brokers() == [1], 20, 0.1, "broker 2 gone from the metadata")
            assert answer(3) == [102, "Broker ID 3 is not currently registered"]
            assert answer(1) == [0, ""]  # live: kept
            assert "broker-dirs/2" in cluster.etcd_keys()
            assert answer(2) == [0, ""]
            assert "broker-dirs/2" not in cluster.etcd_keys()
            assert "broker-dirs/1" in cluster.etcd_keys()
            assert answer(2) == [102, "Broker ID 2 is not currently registered"]
    finally:
        cluster.stop()
