"""Feature levels in a 2-broker cluster: a level finalized through one broker (UpdateFeatures) is kept
in etcd, advertised by both, and outlives a restart of every broker; DescribeQuorum names the
controller as leader and voter, the other broker as observer, from either broker."""

from __future__ import annotations

from typing import Any

from interop import diff_features as df
from kafkapy.local_cluster import LocalCluster, wait_until
from tests.cluster.test_cluster import FAST
from tests.server.rawclient import RawClient


def _quorum(c: RawClient) -> Any:
    from kafkapy.protocol.messages.describe_quorum_request import DescribeQuorumRequest, PartitionData, TopicData

    req = DescribeQuorumRequest(topics=[TopicData(topic_name=df.METADATA_TOPIC, partitions=[PartitionData()])])
    return c.request(req, 2)


def test_levels_are_cluster_wide_and_survive_restart(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(2, FAST)
    (id1, b1), (id2, b2) = sorted(cluster.brokers.items())
    with RawClient(b1.bootstrap) as one, RawClient(b2.bootstrap) as two:
        epoch = df.features(two)["epoch"]
        assert df.features(two)["finalized"]["group.version"] == [1, 1]
        assert df.update(one, 2, [("group.version", 0, df.SAFE)], False) == {"error": 0, "message": None}
        wait_until(lambda: "group.version" not in df.features(two)["finalized"], what="group.version 0 on broker 2")
        got = df.features(two)
        assert got["epoch"] > epoch
        assert df.heartbeat(two)[0] == 35  # the consumer protocol is off on every broker
        # a stale read cannot win: broker 2 upgrades from what it sees
        assert df.update(two, 1, [("group.version", 1, df.UPGRADE)], True)["error"] == 0

        resp = _quorum(two)
        part = resp.topics[0].partitions[0]
        controller = part.leader_id
        assert controller in (id1, id2) and part.error_code == 0 and part.leader_epoch >= 1
        assert [v.replica_id for v in part.current_voters] == [controller]
        assert [o.replica_id for o in part.observers] == [i for i in (id1, id2) if i != controller]
        assert part.high_watermark > 0 and [n.node_id for n in resp.nodes] == [controller]
        me = next(r for r in [*part.current_voters, *part.observers] if r.replica_id == id2)
        assert me.log_end_offset == part.high_watermark and me.last_fetch_timestamp > 0
    for b in cluster.brokers.values():
        b.stop()
    for b in cluster.brokers.values():
        b.start()
    with RawClient(b1.bootstrap) as one:
        assert "group.version" not in df.features(one)["finalized"]
        assert df.update(one, 1, [("group.version", 1, df.UPGRADE)], False)["error"] == 0
    with RawClient(b2.bootstrap) as two:
        wait_until(lambda: df.features(two)["finalized"].get("group.version") == [1, 1], what="group.version 1 again")
