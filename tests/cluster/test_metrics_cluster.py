"""The metrics endpoint of a 3-broker cluster: /readyz once registered in etcd, one active controller
across the brokers, the cluster-wide controller gauges on it alone, replica counts that add up."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Producer

from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.testing import free_port
from tests.cluster.test_cluster import FAST, create, full_isr
from tests.server.test_metrics_endpoint import get, scrape, value


def test_cluster_metrics_and_readiness(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(0, FAST)
    ports = {}
    for node_id in (1, 2, 3):
        ports[node_id] = free_port()
        cluster.add_broker(node_id, settings={"kafkapy.metrics.listen": f"127.0.0.1:{ports[node_id]}"})
    bases = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}

    def ready(node_id: int) -> bool:
        status, _, body = get(bases[node_id] + "/readyz")
        checks = json.loads(body)["checks"]
        return status == 200 and checks["registered"] == {"ok": True}

    for node_id in bases:
        wait_until(lambda n=node_id: ready(n), what=f"broker {node_id} ready")

    create(cluster, "m3", 3, 3)
    wait_until(lambda: full_isr(cluster, "m3", 3), what="full ISR")
    samples = {n: scrape(b) for n, b in bases.items()}

    active = {n: value(s, "kafka_controller_kafkacontroller_activecontrollercount") for n, s in samples.items()}
    assert sorted(active.values()) == [0, 0, 1], active
    controller = next(n for n, v in active.items() if v == 1)
    for n, s in samples.items():
        topics = value(s, "kafka_controller_kafkacontroller_globaltopiccount")
        partitions = value(s, "kafka_controller_kafkacontroller_globalpartitioncount")
        if n == controller:
            assert topics >= 1 and partitions >= 3
        else:
            assert (topics, partitions) == (0, 0)
        assert value(s, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
        assert value(s, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    hosted = sum(
        ("kafka_log_log_logendoffset", (("partition", str(p)), ("topic", "m3"))) in s
        for s in samples.values()
        for p in range(3)
    )
    assert hosted == 9  # 3 partitions x 3 replicas, each with its Log gauges
    assert sum(value(s, "kafka_server_replicamanager_leadercount") for s in samples.values()) == sum(
        value(s, "kafka_controller_kafkacontroller_globalpartitioncount") for s in samples.values()
    )

    # a follower stops answering: its partitions' leaders shrink their ISR, report them under-replicated,
    # and expand the ISR again once it is back
    paused = next(n for n in bases if n != controller)
    others = [n for n in bases if n != paused]
    cluster.pause(paused)
    try:
        producer = Producer({"bootstrap.servers": ",".join(cluster.brokers[n].bootstrap for n in others), "acks": 1})

        def shrunk() -> bool:
            for i in range(3):
                producer.produce("m3", b"while paused", partition=i)
            producer.poll(0)
            now = {n: scrape(bases[n]) for n in others}
            return sum(
                value(s, "kafka_server_replicamanager_underreplicatedpartitions") for s in now.values()
            ) >= 1 and (sum(value(s, "kafka_server_replicamanager_isrshrinks_total") for s in now.values()) >= 1)

        wait_until(shrunk, timeout=30, what="an ISR shrink while a follower is paused")
        producer.flush(10)
    finally:
        cluster.resume(paused)

    def healed() -> bool:
        now = {n: scrape(b) for n, b in bases.items()}
        return sum(value(s, "kafka_server_replicamanager_underreplicatedpartitions") for s in now.values()) == 0 and (
            sum(value(s, "kafka_server_replicamanager_isrexpands_total") for s in now.values()) >= 1
        )

    wait_until(healed, timeout=60, what="the ISR expanded again")
    samples = {n: scrape(b) for n, b in bases.items()}
    follower_fetches = sum(
        v
        for s in samples.values()
        for (n, labels), v in s.items()
        if n == "kafka_network_requestmetrics_requests_total" and ("request", "FetchFollower") in labels
    )
    assert follower_fetches > 0  # the replica fetchers' requests, under Kafka's name for them
