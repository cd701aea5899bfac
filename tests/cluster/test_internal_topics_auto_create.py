"""A client's Metadata request for an internal topic that does not exist yet (a cluster still waiting
for offsets.topic.replication.factor / transaction.state.log.replication.factor live brokers) must not
auto-create it with the default partitions and configs: its coordinator makes it with its own
(offsets.topic.num.partitions, compaction), as Kafka's do. Until then: LEADER_NOT_AVAILABLE, retriable."""

from __future__ import annotations

from typing import Any

from kafkapy.local_cluster import LocalCluster
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tests.cluster.test_cluster import FAST
from tests.server.rawclient import RawClient

INTERNAL = ("__consumer_offsets", "__transaction_state")


def _ask(bootstrap: str, name: str) -> Any:
    with RawClient(bootstrap) as c:
        req = MetadataRequest(topics=[MetadataRequestTopic(name=name)], allow_auto_topic_creation=True)
        return c.request(req, 12).topics[0]


def test_metadata_does_not_auto_create_an_internal_topic_with_default_settings(kafka_cluster_factory: Any) -> None:
    # three brokers configured, replication factor 3 for both internal topics, only one started so far
    settings = {
        **FAST,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.replication.factor": 3,
        "num.partitions": 1,
    }
    cluster: LocalCluster = kafka_cluster_factory(1, settings)
    for name in INTERNAL:
        topic = _ask(cluster.bootstrap, name)
        assert (topic.error_code, topic.partitions) == (ErrorCode.LEADER_NOT_AVAILABLE, []), (name, topic)
    assert not [k for k in cluster.etcd_keys() if any(n in k for n in INTERNAL)]
