"""Several log dirs in a cluster: broker 2 of two has two log.dirs; a partition it leads and one it
follows are moved to its other dir (AlterReplicaLogDirs) while acks=all records keep coming; both stay
in sync, every record is read back, the broker's directory id in etcd is its two dirs' ids, and a
restart of broker 2 keeps the partitions where they were moved and brings it back into the ISRs
(the same ids: not taken for a broker that lost its data)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.messages.alter_replica_log_dirs_request import (
    AlterReplicaLogDir,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirTopic,
)
from kafkapy.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from tests.cluster.test_cluster import FAST, admin, consume_all, full_isr
from tests.server.rawclient import RawClient

TOPIC = "jbod-cluster"


def _where(bootstrap: str) -> dict[int, str]:
    """Partition -> the log dir broker `bootstrap` keeps it in (copies left out)."""
    with RawClient(bootstrap) as c:
        resp = c.request(DescribeLogDirsRequest(topics=None), 4)
    return {
        p.partition_index: r.log_dir
        for r in resp.results
        for t in r.topics
        if t.name == TOPIC
        for p in t.partitions
        if not p.is_future_key
    }


def _produce(cluster: LocalCluster, first: int, count: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 20000})
    errors: list[Any] = []

    def done(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for i in range(first, first + count):
        p.produce(TOPIC, f"r{i}".encode(), partition=i % 2, on_delivery=done)
    p.flush(30)
    assert not errors, errors


def test_moves_between_log_dirs_in_a_cluster(kafka_cluster_factory: Any, tmp_path: Path) -> None:
    dirs = [str(tmp_path / "b2-a"), str(tmp_path / "b2-b")]

    def per_broker(node_id: int) -> tuple[int, dict[str, str]]:
        from kafkapy.testing import free_port

        return free_port(), ({"log.dirs": ",".join(dirs)} if node_id == 2 else {})

    cluster: LocalCluster = kafka_cluster_factory(2, FAST, per_broker=per_broker)
    admin(cluster).create_topics([NewTopic(TOPIC, 2, replica_assignment=[[1, 2], [2, 1]])])[TOPIC].result(15)
    wait_until(lambda: full_isr(cluster, TOPIC, 2), what="full ISR")
    _produce(cluster, 0, 400)
    b2 = cluster.brokers[2].bootstrap
    before = _where(b2)
    assert sorted(before) == [0, 1] and before[0] != before[1]  # placed in different dirs
    target = {p: next(d for d in dirs if d != before[p]) for p in (0, 1)}
    with RawClient(b2) as c:
        req = AlterReplicaLogDirsRequest(
            dirs=[AlterReplicaLogDir(path=target[p], topics=[AlterReplicaLogDirTopic(TOPIC, [p])]) for p in (0, 1)]
        )
        resp = c.request(req, 2)
    assert sorted((p.partition_index, p.error_code) for t in resp.results for p in t.partitions) == [(0, 0), (1, 0)]
    _produce(cluster, 400, 400)  # while (or just after) they move
    wait_until(lambda: _where(b2) == target, what="both moved")
    wait_until(lambda: full_isr(cluster, TOPIC, 2), what="full ISR after the move")
    assert sorted(m.value() for m in consume_all(cluster, TOPIC, 800)) == sorted(f"r{i}".encode() for i in range(800))

    ids = json.loads(cluster.etcd_keys()["broker-dirs/2"])["directory_id"].split(",")
    assert len(ids) == 2 and len(set(ids)) == 2
    assert [
        dict(ln.split("=", 1) for ln in (Path(d) / "meta.properties").read_text().split() if "=" in ln)["directory.id"]
        for d in dirs
    ] == ids

    cluster.brokers[2].stop()
    _produce(cluster, 800, 100)  # broker 1 leads both meanwhile (min.insync.replicas 1)
    cluster.brokers[2].start()
    wait_until(lambda: full_isr(cluster, TOPIC, 2), timeout=30, what="broker 2 back in the ISRs")
    assert _where(cluster.brokers[2].bootstrap) == target
    assert json.loads(cluster.etcd_keys()["broker-dirs/2"])["directory_id"].split(",") == ids
    time.sleep(0.5)
    assert len(consume_all(cluster, TOPIC, 900)) == 900
