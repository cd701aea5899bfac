"""Tiered storage (KIP-405) in a three-broker etcd cluster over SeaweedFS (docs/tiered-storage.md,
"In a cluster"): the remote log metadata is shared in etcd, the leader copies and every replica
deletes its copied local segments, a new leader continues copying where the killed one stopped
(no offsets copied twice), a consumer reads everything from offset 0, and a follower whose data dir
was wiped rebuilds from the remote metadata, starts at the leader's local start and rejoins the ISR;
made the leader, it serves offset 0 from remote storage and copies on from where the others stopped."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from tests.cluster.test_cluster import FAST, admin, consume_all, full_isr, partitions
from tests.server.rawclient import RawClient

TOPIC = "tiered"
FIRST_LEADER = 1  # replicas [1, 2, 3]: broker 1 leads first


def settings(s3: Any, prefix: str) -> dict[str, Any]:
    return {
        **FAST,
        "remote.log.storage.system.enable": "true",
        "remote.log.manager.task.interval.ms": "200",
        "remote.log.manager.task.retry.backoff.ms": "100",
        "remote.log.manager.task.retry.backoff.max.ms": "400",
        "log.retention.check.interval.ms": "200",
        "rsm.config.storage.s3.endpoint.url": s3.endpoint,
        "rsm.config.storage.s3.bucket.name": s3.bucket,
        "rsm.config.storage.s3.region": s3.region,
        "rsm.config.storage.aws.access.key.id": s3.access_key_id,
        "rsm.config.storage.aws.secret.access.key": s3.secret_access_key,
        "rsm.config.key.prefix": prefix,
    }


def produce(cluster: LocalCluster, first: int, count: int) -> None:
    p = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "batch.size": 512,
            "message.timeout.ms": 30000,
        }
    )
    for i in range(first, first + count):
        p.produce(TOPIC, value=f"value-{i:06d}-".encode() * 6, partition=0)
        p.poll(0)
    assert p.flush(30) == 0


def list_offset(cluster: LocalCluster, node_id: int, ts: int) -> int:
    """ListOffsets of partition 0 for `ts` asked of broker `node_id` (-9: an error, e.g. not the leader)."""
    with RawClient(cluster.brokers[node_id].bootstrap) as c:
        req = ListOffsetsRequest(
            replica_id=-1,
            topics=[ListOffsetsTopic(name=TOPIC, partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts)])],
        )
        p = c.request(req, 9).topics[0].partitions[0]
        return int(p.offset) if p.error_code == 0 else -9


def first_local_offset(cluster: LocalCluster, node_id: int) -> int:
    """The base offset of the broker's first local segment of the partition."""
    logs = sorted((cluster.brokers[node_id].data_dir / f"{TOPIC}-0").glob("*.log"))
    return int(Path(logs[0]).stem) if logs else -1


def remote_segments(cluster: LocalCluster) -> list[dict[str, Any]]:
    """The shared remote log metadata in etcd, the copied segments, by start offset."""
    segs = [json.loads(v) for k, v in cluster.etcd_keys().items() if k.startswith("remote-log-metadata/")]
    return sorted((s for s in segs if s["state"] == "COPY_FINISHED"), key=lambda s: s["start_offset"])


def assert_no_offsets_copied_twice(segs: list[dict[str, Any]]) -> None:
    for a, b in itertools.pairwise(segs):
        assert a["end_offset"] < b["start_offset"], (a, b)


def read_assigned(cluster: LocalCluster, expected: int) -> list[int]:
    """Partition 0 from offset 0 without a group (the group coordinator may be on a dead broker)."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    got: list[int] = []
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            value = m.value() if m is not None and m.error() is None else None
            if value is not None:
                got.append(int(value.split(b"-")[1]))
    finally:
        c.close()
    return got


def values(msgs: list[Any]) -> list[int]:
    return [int(m.value().split(b"-")[1]) for m in msgs]


def test_tiered_topic_in_a_cluster(kafka_cluster_factory: Any, s3_server: Any) -> None:
    prefix = f"h4-tiered-{uuid.uuid4().hex[:8]}"
    cluster: LocalCluster = kafka_cluster_factory(3, settings(s3_server, prefix))
    admin(cluster).create_topics(
        [
            NewTopic(
                TOPIC,
                1,
                replica_assignment=[[1, 2, 3]],
                config={
                    "remote.storage.enable": "true",
                    "internal.segment.bytes": "4096",
                    "local.retention.bytes": "1",
                    "min.insync.replicas": "1",
                },
            )
        ]
    )[TOPIC].result(15)
    wait_until(lambda: full_isr(cluster, TOPIC, 3), what="full ISR")
    produce(cluster, 0, 400)

    # the leader copies and deletes its local copies; the followers delete theirs from the shared metadata
    wait_until(lambda: list_offset(cluster, FIRST_LEADER, -4) > 0, timeout=20, what="leader's local start > 0")
    copied = list_offset(cluster, FIRST_LEADER, -5)
    assert copied > 0
    for follower in (2, 3):

        def deleted(node: int = follower) -> bool:
            return first_local_offset(cluster, node) > 0

        wait_until(deleted, timeout=20, what=f"broker {follower}'s copied segments deleted")
        assert first_local_offset(cluster, follower) <= list_offset(cluster, FIRST_LEADER, -5) + 1  # copied ones only
    segs = remote_segments(cluster)
    assert segs and segs[0]["start_offset"] == 0 and {s["broker_id"] for s in segs} == {FIRST_LEADER}
    assert_no_offsets_copied_twice(segs)

    # the leader dies; the new one continues copying after the old one's last copied offset
    cluster.brokers[FIRST_LEADER].kill()
    wait_until(lambda: partitions(cluster, TOPIC)[0].leader in (2, 3), timeout=20, what="a new leader")
    new_leader = partitions(cluster, TOPIC)[0].leader
    old_copied = max(s["end_offset"] for s in remote_segments(cluster))
    produce(cluster, 400, 200)
    wait_until(lambda: list_offset(cluster, new_leader, -5) > 500, timeout=20, what="the new leader's copies")
    segs = remote_segments(cluster)
    assert_no_offsets_copied_twice(segs)
    mine = [s for s in segs if s["broker_id"] == new_leader]
    assert mine and min(s["start_offset"] for s in mine) == old_copied + 1, (old_copied, segs)
    assert values(consume_all(cluster, TOPIC, 600)) == list(range(600))

    # broker 1 comes back with an empty data dir: it starts at the leader's local start, rebuilt
    # from the remote metadata (KIP-405's follower path), and rejoins the ISR
    shutil.rmtree(cluster.brokers[FIRST_LEADER].data_dir)
    cluster.brokers[FIRST_LEADER].start()
    wait_until(lambda: full_isr(cluster, TOPIC, 3), timeout=30, what="the wiped broker back in the ISR")
    log_text = cluster.brokers[FIRST_LEADER].log_path.read_text(errors="replace")
    restarted = re.search(r"follower log restarted from remote metadata.* local_start=(\d+) log_start=0", log_text)
    assert restarted, log_text[-3000:]
    # nothing below the leader's local start fetched (local retention may have deleted more since)
    assert first_local_offset(cluster, FIRST_LEADER) >= int(restarted.group(1)) > 0

    # the rebuilt replica leads: its log start is 0, it reads the old records remotely and copies
    # on from where the others stopped (its rebuilt epochs agree with the remote segments')
    for n in (2, 3):
        cluster.brokers[n].kill()
    wait_until(lambda: partitions(cluster, TOPIC)[0].leader == FIRST_LEADER, timeout=20, what="broker 1 leading")
    assert list_offset(cluster, FIRST_LEADER, -2) == 0
    copied_before = max(s["end_offset"] for s in remote_segments(cluster))
    produce(cluster, 600, 200)
    wait_until(lambda: list_offset(cluster, FIRST_LEADER, -5) > 700, timeout=20, what="broker 1's copies")
    segs = remote_segments(cluster)
    assert_no_offsets_copied_twice(segs)
    assert min(s["start_offset"] for s in segs if s["broker_id"] == FIRST_LEADER and s["start_offset"] >= 400) == (
        copied_before + 1
    )
    assert read_assigned(cluster, 800) == list(range(800))
