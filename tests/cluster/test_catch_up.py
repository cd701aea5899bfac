"""/readyz's caught_up check: which followed partitions keep a broker from being ready, and a restarted
follower of a real cluster seen not ready until it has caught up."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafkapy.cluster.catch_up import out_of_sync
from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo, TopicInfo


@dataclass
class View:
    parts: list[PartitionInfo]
    live: set[int] = field(default_factory=lambda: {1, 2, 3})

    def topics(self) -> Iterable[TopicInfo]:
        return [TopicInfo("t", uuid.uuid4(), self.parts)]

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return BrokerInfo(node_id, "127.0.0.1", 9092) if node_id in self.live else None


def test_followed_partitions_outside_the_isr_of_a_live_leader_count() -> None:
    view = View(
        [
            PartitionInfo(0, 1, [1, 2, 3], [1, 3]),  # 2 follows, not in the ISR: counts
            PartitionInfo(1, 2, [1, 2, 3], [2]),  # 2 leads
            PartitionInfo(2, 3, [1, 3], [3]),  # 2 is no replica
            PartitionInfo(3, 1, [1, 2, 3], [1, 2, 3]),  # in sync
            PartitionInfo(4, -1, [1, 2], [1]),  # offline: nobody to catch up with
            PartitionInfo(5, 3, [1, 2, 3], [3], removing_replicas=[2]),  # being moved away
            PartitionInfo(6, 3, [1, 2, 3], [1, 3]),  # counts
        ]
    )
    assert out_of_sync(view, 2) == (2, ["t-0", "t-6"])  # type: ignore[arg-type]
    assert out_of_sync(view, 2, examples=1) == (2, ["t-0"])  # type: ignore[arg-type]
    view.live = {2}  # the leaders are down: nothing to wait for
    assert out_of_sync(view, 2) == (0, [])  # type: ignore[arg-type]


def test_readyz_waits_for_a_restarted_follower_to_catch_up(kafka_cluster_factory: Any) -> None:
    """A follower killed, left ~200 KB behind and restarted: /readyz answers 503 with the caught_up
    reason while it fetches (its replication throttled to 50 KB/s, so that lasts ~4 s), then 200 once
    its leader took it back into the ISR."""
    from confluent_kafka import Producer

    from kafkapy.local_cluster import LocalCluster, wait_until
    from kafkapy.testing import free_port
    from tests.cluster.test_cluster import FAST, cluster_controller, create, full_isr, partitions
    from tests.cluster.test_reassignment import set_throttle
    from tests.server.test_metrics_endpoint import get

    cluster: LocalCluster = kafka_cluster_factory(0, FAST)
    ports = {n: free_port() for n in (1, 2, 3)}
    for node_id, port in ports.items():
        cluster.add_broker(node_id, settings={"kafkapy.metrics.listen": f"127.0.0.1:{port}"})
    create(cluster, "behind", 1, 3, **{"follower.replication.throttled.replicas": "*"})
    wait_until(lambda: full_isr(cluster, "behind", 3), what="full ISR")
    part = partitions(cluster, "behind")[0]
    controller = cluster_controller(cluster)
    follower = next(n for n in part.replicas if n not in (part.leader, controller))
    set_throttle(cluster, follower, 50_000)
    readyz = f"http://127.0.0.1:{ports[follower]}/readyz"

    def answer() -> tuple[int, dict[str, Any]]:
        status, _, body = get(readyz)
        return status, json.loads(body)

    assert answer()[0] == 200

    cluster.brokers[follower].kill()
    wait_until(lambda: follower not in partitions(cluster, "behind")[0].isrs, what="the follower out of the ISR")
    producer = Producer({"bootstrap.servers": cluster.brokers[part.leader].bootstrap, "acks": 1, "linger.ms": 5})
    for _ in range(200):
        producer.produce("behind", b"x" * 1000)
    assert producer.flush(15) == 0

    cluster.brokers[follower].start()
    seen: list[tuple[int, dict[str, Any]]] = []

    def ready() -> bool:
        seen.append(answer())
        return seen[-1][0] == 200

    wait_until(ready, timeout=30, interval=0.05, what="the restarted follower ready")
    lagging = [body for status, body in seen if status == 503 and body["checks"].get("registered") == {"ok": True}]
    assert lagging, seen[:3]
    check = lagging[0]["checks"]["caught_up"]
    assert check == {"ok": False, "reason": "1 followed partitions not in the ISR yet (e.g. behind-0)"}, check
    assert all(c["ok"] for name, c in lagging[0]["checks"].items() if name != "caught_up")
    # ready once back in the ISR (as this broker's metadata saw it: the admin client's broker within moments)
    wait_until(lambda: follower in partitions(cluster, "behind")[0].isrs, timeout=5, what="the follower in the ISR")
    assert seen[-1][1] == {"status": "ready", "checks": {name: {"ok": True} for name in seen[-1][1]["checks"]}}
