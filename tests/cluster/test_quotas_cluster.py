"""Client quotas in a 2-broker cluster: kept in etcd, so a quota altered through one broker is
described and enforced by the other, and a removal lifts on both."""

from __future__ import annotations

from typing import Any

from interop import diff_quotas as dq
from interop.differential import create, produce, topic
from kafkapy.local_cluster import LocalCluster, wait_until
from tests.cluster.test_cluster import FAST
from tests.server.rawclient import RawClient


def test_quotas_are_cluster_wide(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(2, {**FAST, **dq.SETTINGS})
    one, two = (RawClient(b.bootstrap) for b in cluster.brokers.values())
    try:
        entity = [("client-id", "cluster-p")]
        assert dq.alter(one, (entity, [("producer_byte_rate", 20_000, False)])) == [
            {"entity": [["client-id", "cluster-p"]], "error": 0, "message": None}
        ]
        want = {"error": 0, "entries": [[["client-id=cluster-p"], ["producer_byte_rate=20000"]]]}
        wait_until(lambda: dq.describe(two, ("client-id", 0, "cluster-p")) == want, what="the quota on broker 2")
        dq.request(two, create(topic("cq", 1, 1)), 5)
        wait_until(lambda: any(b.error_code == 0 for b in _leaders(two, "cq")), what="topic cq led")
        leader = next(RawClient(b.bootstrap) for i, b in cluster.brokers.items() if i == _leader(two, "cq"))
        with leader:
            data = dq.batch(10_000)
            throttles = [
                dq.request(leader, produce("cq", 0, data), 9, client_id="cluster-p").throttle_time_ms for _ in range(4)
            ]
            assert max(throttles) > 0, throttles
            assert dq.alter(two, (entity, [("producer_byte_rate", 0, True)]))[0]["error"] == 0
            wait_until(
                lambda: dq.describe(one, ("client-id", 0, "cluster-p")) == {"error": 0, "entries": []},
                what="the removal on broker 1",
            )
            wait_until(
                lambda: dq.request(leader, produce("cq", 0, data), 9, client_id="cluster-p").throttle_time_ms == 0,
                what="the quota lifted on the leader",
            )
    finally:
        one.close()
        two.close()


def _leaders(c: RawClient, topic: str) -> list[Any]:
    from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic

    resp = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False), 9)
    return list(resp.topics)


def _leader(c: RawClient, topic: str) -> int:
    return int(_leaders(c, topic)[0].partitions[0].leader_id)
