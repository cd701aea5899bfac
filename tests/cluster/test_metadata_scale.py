"""Metadata at Kafka's scale on a 3-broker cluster: thousands of partitions created, added and
reassigned, each change one decision that no reader sees half-applied (issue 17).

Two kinds of readers watch throughout: an in-process image of the etcd metadata (what every broker
holds; its listener checks the image after every batch of watch events) and Metadata requests to
each broker in a loop. Timing figures are in scripts/bench_metadata_scale.py, not here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from kafkapy.client import KafkaClient
from kafkapy.cluster.etcd_metadata import EtcdMetadata, LayoutError
from kafkapy.cluster.etcd_server import start_etcd
from kafkapy.cluster.metadata import BrokerInfo, Changes, MetadataError
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "broker.session.timeout.ms": "10000",  # Kafka's default is 9 s; the test shares 2 busy cores
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "3",
    "auto.leader.rebalance.enable": "false",
    "auto.create.topics.enable": "false",
}


@dataclass
class Seen:
    """What readers saw, as sets of observations; `problems` lists any half-applied state."""

    counts: dict[str, set[int]] = field(default_factory=dict)  # topic -> partition counts seen
    moved: set[int] = field(default_factory=set)  # partitions of the moved topic off their original replicas
    batches: int = 0
    problems: list[str] = field(default_factory=list)


class Watcher:
    """Readers in a thread of their own: an etcd image with a checking listener, and Metadata pollers."""

    def __init__(self, cluster: LocalCluster, moved_topic: str) -> None:
        self.cluster = cluster
        self.moved_topic = moved_topic
        self.original: dict[int, list[int]] = {}  # set before the reassignment
        self.image = Seen()
        self.wire = Seen()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        assert self._ready.wait(15), "watcher did not start"

    def _check(self, seen: Seen, topics: dict[str, list[list[int]]], where: str) -> None:
        """`topics`: name -> each partition's replicas plus its adding replicas."""
        for name, parts in topics.items():
            seen.counts.setdefault(name, set()).add(len(parts))
            if name == self.moved_topic and self.original:
                moved = {i for i, r in enumerate(parts) if i in self.original and r != self.original[i]}
                if moved and len(moved) != len(self.original):
                    seen.problems.append(f"{where}: {len(moved)} of {len(self.original)} partitions moved")
                seen.moved.add(len(moved))

    async def _run(self) -> None:
        assert self.cluster.etcd is not None
        md = await EtcdMetadata.observe(self.cluster.etcd.url, self.cluster.cluster_id)

        def listener(changes: Changes) -> None:
            self.image.batches += 1
            topics = {
                t.name: [p.replicas + [r for r in p.adding_replicas if r not in p.replicas] for p in t.partitions]
                for t in md.topics()
            }
            self._check(self.image, topics, f"image at revision {changes.revision}")

        md.listener = listener
        self._ready.set()
        clients = [KafkaClient(b.bootstrap) for b in self.cluster.brokers.values()]
        try:
            while not self._stop.is_set():
                for client in clients:
                    meta = await client.refresh_metadata()
                    self.wire.batches += 1
                    topics = {
                        name: [
                            info.partitions[i].replicas if i in info.partitions else []
                            for i in range(len(info.partitions))
                        ]
                        for name, info in meta.topics.items()
                        if not name.startswith("__")
                    }
                    self._check(self.wire, topics, "Metadata answer")
                await asyncio.sleep(0.2)
        finally:
            for client in clients:
                await client.close()
            await md.close(deregister=False)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def metadata(cluster: LocalCluster) -> Any:
    async def run() -> Any:
        async with KafkaClient(cluster.bootstrap) as client:
            return await client.refresh_metadata()

    return asyncio.run(run())


def on_every_broker(cluster: LocalCluster, check: Callable[[Any], bool]) -> bool:
    async def run() -> bool:
        for b in cluster.brokers.values():
            async with KafkaClient(b.bootstrap) as client:
                if not check(await client.refresh_metadata()):
                    return False
        return True

    return asyncio.run(run())


def test_thousands_of_partitions_each_change_one_decision(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(3, FAST)
    watcher = Watcher(cluster, "moving")
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        # librdkafka's AdminClient: one topic of 1000 partitions (the seeds' example), then 2000
        admin.create_topics([NewTopic("seed", 1000, 1)], request_timeout=60)["seed"].result(60)
        spread = [
            sum(p.replicas == [b] for p in metadata(cluster).topics["seed"].partitions.values()) for b in (1, 2, 3)
        ]
        assert sorted(spread) == [333, 333, 334]
        admin.create_partitions([NewPartitions("seed", 2000)], request_timeout=60)["seed"].result(60)
        # kafkapy's CLI: 1000 more
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        made = subprocess.run(
            [sys.executable, "-m", "kafkapy", "topics", "create", "moving", "--partitions", "1000"]
            + ["--replication-factor", "1", "--bootstrap-server", cluster.bootstrap],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert made.returncode == 0, (made.stdout, made.stderr)
        wait_until(
            lambda: on_every_broker(
                cluster,
                lambda m: len(m.topics["seed"].partitions) == 2000 and len(m.topics["moving"].partitions) == 1000,
            ),
            timeout=90,
            what="every broker answering with both topics whole",
        )

        # one AlterPartitionReassignments moves all 1000 to the next broker
        before = metadata(cluster).topics["moving"].partitions
        watcher.original = {i: list(before[i].replicas) for i in range(1000)}
        targets = {("moving", i): [r[0] % 3 + 1] for i, r in watcher.original.items()}

        async def reassign() -> Any:
            async with KafkaClient(cluster.bootstrap) as client:
                return await client.alter_partition_reassignments(targets)

        results = asyncio.run(reassign())
        assert {r.error_code for r in results.values()} == {ErrorCode.NONE}
        wait_until(
            lambda: on_every_broker(
                cluster,
                lambda m: all(
                    m.topics["moving"].partitions[i].replicas == targets[("moving", i)]
                    and m.topics["moving"].partitions[i].isr == targets[("moving", i)]
                    for i in range(1000)
                ),
            ),
            timeout=180,  # ~333 new logs per broker, a few fsyncs each: tens of seconds on a slow disk
            what="every partition moved, in sync, as every broker sees it",
        )
        # deleting the 2000-partition topic: one decision, every broker's logs of it renamed away at once
        admin.delete_topics(["seed"], request_timeout=60)["seed"].result(60)
        wait_until(
            lambda: (
                not any(
                    d.name.startswith("seed-") and not d.name.endswith("-delete")
                    for b in cluster.brokers.values()
                    for d in b.data_dir.iterdir()
                )
            ),
            timeout=30,
            what="every broker's seed logs deleted",
        )
    finally:
        watcher.stop()
        for b in cluster.brokers.values():
            b.kill()  # a clean stop closes 1000 logs each, fsyncing them: 40 s of teardown for nothing checked
    for seen in (watcher.image, watcher.wire):
        assert not seen.problems, seen.problems[:5]
        assert 2000 in seen.counts["seed"] and seen.counts["seed"] <= {1000, 2000}, seen.counts
        assert seen.counts["moving"] == {1000}, seen.counts
    assert watcher.image.counts["seed"] == {1000, 2000}  # the image sees every batch
    assert 1000 in watcher.image.moved  # the image saw the move, all at once
    assert watcher.wire.batches > 10 and watcher.image.batches > 3


def test_store_alone_layout_refusal_and_etcd_failure_as_an_answer(tmp_path: Path) -> None:
    """EtcdMetadata on its own etcd: a topic of 20,000 partitions and its reassignment are one put each
    (far above etcd's 128 operations), a prefix in layout 1 is refused at start, and etcd gone turns a
    creation into REQUEST_TIMED_OUT for that topic (a MetadataError the handler answers with)."""
    server = start_etcd(tmp_path / "etcd")

    async def body() -> None:
        md = await EtcdMetadata.open(
            server.url, BrokerInfo(1, "127.0.0.1", 1), cluster_id="scale-alone", data_dir=tmp_path / "b1"
        )
        try:
            rev = md.revision
            info = await md.create_topic("wide", 20_000, 1)
            assert len(info.partitions) == 20_000 and md.revision == rev + 1  # one revision: one put
            assert {p.leader for p in info.partitions} == {1}
            moved = await md.alter_reassignments([("wide", i, [1]) for i in range(5)] + [("nope", 0, [1])])
            assert [o.code for o in moved] == [0] * 5 + [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
            grown = await md.add_partitions("wide", 20_500)
            assert len(grown.partitions) == 20_500
            await md.delete_topic("wide")
            assert md.topic("wide") is None
            # a layout-1 key under another cluster's prefix: refused at start, with the reason
            await md.client.put(b"/kafkapy/old-cluster/partitions/t/0", b"{}")
            with pytest.raises(LayoutError, match="layout 1"):
                await EtcdMetadata.observe(server.url, "old-cluster")
            server.stop()
            with pytest.raises(MetadataError) as failed:
                await md.create_topic("later", 3, 1, assignment={0: [1], 1: [1], 2: [1]})
            assert failed.value.code == ErrorCode.REQUEST_TIMED_OUT
        finally:
            await md.close(deregister=False)

    try:
        asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        server.stop()
