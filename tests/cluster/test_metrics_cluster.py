"""The metrics endpoint of a 3-broker cluster: /readyz once registered in etcd, one active controller
across the brokers, the cluster-wide controller gauges on it alone, replica counts that add up."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

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
        return status == 200 and checks["registered"] == checks["caught_up"] == {"ok": True}

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

    # consumer lag where the group's coordinator does not host the partition: one replica per partition, so
    # the coordinator hosts at most one of three; the others' high watermarks come from their leaders
    create(cluster, "lagged", 3, 1)
    lag_producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(3):
        for _ in range(10 + i):
            lag_producer.produce("lagged", b"r", partition=i)
    assert lag_producer.flush(10) == 0
    committer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "lag-group"})
    committer.commit(offsets=[TopicPartition("lagged", i, 4) for i in range(3)], asynchronous=False)
    committer.close()
    expected = {str(i): 10 + i - 4 for i in range(3)}

    def group_lags() -> dict[str, float]:
        found = {}
        for b in bases.values():
            for (name, labels), v in scrape(b).items():
                label = dict(labels)
                if name == "kafka_consumergroup_lag" and label["consumergroup"] == "lag-group":
                    found[label["partition"]] = v
        return found

    wait_until(lambda: group_lags() == expected, timeout=15, what="the lag of every partition, hosted or not")

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

        def elected() -> bool:
            # its etcd session expires: the controller moves the leadership it held (ControllerStats)
            s = scrape(bases[controller])
            return value(s, "kafka_controller_controllerstats_leaderelectionrateandtimems_count") >= 1

        wait_until(elected, timeout=30, what="the controller electing new leaders")
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

    s = samples[controller]
    assert value(s, "kafka_controller_controllerstats_leaderelectionrateandtimems", quantile="0.99") > 0
    assert value(s, "kafka_controller_controllerstats_uncleanleaderelections_total") == 0
    # the paused broker's partitions stay led by others (auto.leader.rebalance.enable=false)
    assert value(s, "kafka_controller_kafkacontroller_preferredreplicaimbalancecount") >= 1
    followed = 0
    for n, s in samples.items():
        # the partitions each broker follows: their lag, its fetchers' requests and bytes
        lags = [
            labels
            for (name, labels) in s
            if name == "kafka_server_fetcherlagmetrics_consumerlag" and ("topic", "m3") in labels
        ]
        followed += len(lags)
        assert all(dict(labels)["clientId"].startswith("ReplicaFetcherThread-") for labels in lags)
        requests = sum(v for (name, _), v in s.items() if name == "kafka_server_fetcherstats_requests_total")
        fetched = sum(v for (name, _), v in s.items() if name == "kafka_server_fetcherstats_bytes_total")
        assert requests > 0 and fetched > 0, (n, requests, fetched)
        # ReplicationBytesIn: what this broker's fetchers brought (the FetcherStats bytes, summed)
        assert value(s, "kafka_server_brokertopicmetrics_replicationbytesin_total") == fetched
        assert ("kafka_server_replicafetchermanager_maxlag", (("clientId", "Replica"),)) in s
    assert followed == 6  # 3 partitions x 2 followers
    # ReplicationBytesOut: what the leaders sent to followers, at least what the followers got (a response
    # lost with a paused follower's connection counts on the leader only); not in consumers' BytesOut
    replicated_in, replicated_out = (
        sum(value(s, f"kafka_server_brokertopicmetrics_replicationbytes{d}_total") for s in samples.values())
        for d in ("in", "out")
    )
    assert 0 < replicated_in <= replicated_out


def test_leader_elections_count_in_controller_stats(kafka_cluster_factory: Any) -> None:
    """ControllerStats move for every kind of election: the controller's own unclean election (a topic
    with unclean.leader.election.enable), ElectLeaders UNCLEAN on a partition whose ISR lost its last
    member, and ElectLeaders PREFERRED; LeaderElectionRateAndTimeMs counts each pass, UncleanLeaderElections
    the unclean ones."""
    from confluent_kafka.admin import NewTopic

    from kafkapy.client import ELECTION_PREFERRED, ELECTION_UNCLEAN
    from tests.cluster.test_cluster import admin, partitions
    from tests.cluster.test_reassignment import call

    cluster: LocalCluster = kafka_cluster_factory(0, FAST)
    ports = {n: free_port() for n in (1, 2, 3)}
    for node_id, port in ports.items():
        cluster.add_broker(node_id, settings={"kafkapy.metrics.listen": f"127.0.0.1:{port}"})
    base3 = f"http://127.0.0.1:{ports[3]}"
    topics = {"by-request": {}, "auto-unclean": {"unclean.leader.election.enable": "true"}}
    futures = admin(cluster).create_topics(
        [NewTopic(t, 1, replica_assignment=[[1, 2]], config=c) for t, c in topics.items()]
    )
    for f in futures.values():
        f.result(15)
    for t in topics:
        wait_until(lambda t=t: full_isr(cluster, t, 2), what=f"{t} in sync")

    def state(topic: str) -> tuple[int, list[int]]:
        p = partitions(cluster, topic)[0]
        return p.leader, sorted(p.isrs)

    # broker 2 goes: the ISRs shrink to broker 1; then broker 1 goes: both partitions offline, ISR [1]
    cluster.brokers[2].kill()
    for t in topics:
        wait_until(lambda t=t: state(t) == (1, [1]), what=f"{t}: broker 2 out of the ISR")

    def leader_gauges() -> tuple[float, float, float]:
        s = scrape(f"http://127.0.0.1:{ports[1]}")
        return tuple(  # type: ignore[return-value]
            value(s, f"kafka_server_replicamanager_{g}")
            for g in ("underreplicatedpartitions", "atminisrpartitioncount", "underminisrpartitioncount")
        )

    # broker 1 leads both with an ISR of itself, min.insync.replicas 1: under-replicated, at min ISR
    wait_until(lambda: leader_gauges() == (2, 2, 0), what="broker 1's ISR gauges")
    cluster.brokers[1].kill()
    for t in topics:
        wait_until(lambda t=t: state(t)[0] == -1, what=f"{t} offline")

    def stats() -> tuple[float, float, float]:
        s = scrape(base3)
        return (
            value(s, "kafka_controller_kafkacontroller_activecontrollercount"),
            value(s, "kafka_controller_controllerstats_leaderelectionrateandtimems_count"),
            value(s, "kafka_controller_controllerstats_uncleanleaderelections_total"),
        )

    _, passes, unclean = wait_until(lambda: (s := stats())[0] == 1 and s, what="broker 3 the controller")
    offline = "kafka_controller_kafkacontroller_offlinepartitionscount"
    wait_until(lambda: value(scrape(base3), offline) == 2, what="both partitions counted offline")

    # broker 2 is back: the controller elects it uncleanly where the topic allows it, not elsewhere
    cluster.brokers[2].start()
    wait_until(lambda: state("auto-unclean") == (2, [2]), what="the controller's unclean election")
    wait_until(lambda: stats() == (1, passes + 1, unclean + 1), what="that election counted")
    assert state("by-request")[0] == -1

    result = call(cluster, lambda c: c.elect_leaders([("by-request", 0)], election_type=ELECTION_UNCLEAN))
    assert result[("by-request", 0)].ok, result
    assert state("by-request") == (2, [2])
    assert stats() == (1, passes + 2, unclean + 2)
    s = scrape(base3)
    assert value(s, offline) == 0
    # both led by broker 2, not their preferred (first) replica
    assert value(s, "kafka_controller_kafkacontroller_preferredreplicaimbalancecount") == 2

    # broker 1 is back and catches up; electing it, the preferred replica, is a clean election
    cluster.brokers[1].start()
    wait_until(lambda: state("by-request") == (2, [1, 2]), timeout=30, what="broker 1 back in the ISR")
    result = call(cluster, lambda c: c.elect_leaders([("by-request", 0)], election_type=ELECTION_PREFERRED))
    assert result[("by-request", 0)].ok, result
    assert state("by-request")[0] == 1
    s = scrape(base3)
    assert value(s, "kafka_controller_controllerstats_leaderelectionrateandtimems_count") == passes + 3
    assert value(s, "kafka_controller_controllerstats_uncleanleaderelections_total") == unclean + 2
    assert value(s, "kafka_controller_controllerstats_leaderelectionrateandtimems", quantile="0.999") > 0
    assert value(s, "kafka_controller_kafkacontroller_preferredreplicaimbalancecount") == 1  # auto-unclean's
