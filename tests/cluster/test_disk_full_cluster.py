"""A full data dir in a 3-broker cluster (broker 1's on a 32 MiB tmpfs the test fills): the broker
announces it (`log_dir_offline` in its registration), the controller moves its leaderships to the
other in-sync replicas, an idempotent acks=all producer (librdkafka) keeps being acknowledged
through it; once space is freed the broker catches up, rejoins the ISR and the preferred-leader
election gives its partitions back. Every acknowledged record is read once, in order.
docs/reliability.md, "Disks"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kafkapy.cluster.controller import next_state
from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.local_cluster import LocalCluster, wait_until
from tests.cluster.test_cluster import FAST, consume_all, create, full_isr, partitions
from tests.disk import fill, tmpfs

TOPIC = "full-disk"


def _leaders(cluster: LocalCluster) -> dict[int, int]:
    return {i: p.leader for i, p in partitions(cluster, TOPIC).items()}


def test_leadership_leaves_a_broker_whose_disk_is_full_and_comes_back(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    settings = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in FAST.items()}
    settings.update({"auto.leader.rebalance.enable": "true", "leader.imbalance.check.interval.seconds": "1"})
    cluster = LocalCluster(root, 3, settings)
    with tmpfs(root / "broker-1" / "data", "32m") as disk:
        try:
            cluster.start()
            _run(cluster, disk)
        except BaseException:
            print(cluster.log_tails(60))
            raise
        finally:
            cluster.stop()


def _run(cluster: LocalCluster, disk: Path) -> None:
    create(cluster, TOPIC, 3, 3, **{"min.insync.replicas": "2"})
    wait_until(lambda: full_isr(cluster, TOPIC, 3), timeout=30, what="full ISR")
    assert 1 in _leaders(cluster).values()  # broker 1 leads one partition (replicas spread round robin)
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": 60000,
            "linger.ms": 5,
        }
    )
    acked: list[tuple[int, bytes]] = []
    failed: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.partition(), msg.value()))

    def produce(prefix: bytes, n: int) -> None:
        for i in range(n):
            producer.produce(TOPIC, prefix + b"%d-" % i + b"x" * 500, partition=i % 3, callback=report)
        assert producer.flush(60) == 0, "not all delivered"

    produce(b"before-", 300)
    fill(disk / "filler")
    began = time.monotonic()
    produce(b"full-", 300)  # broker 1's appends (as leader and as follower) now fail
    wait_until(lambda: 1 not in _leaders(cluster).values(), timeout=30, what="leadership moved off broker 1")
    moved_s = time.monotonic() - began
    produce(b"moved-", 300)
    assert not failed and len(acked) == 900

    (disk / "filler").unlink()
    wait_until(lambda: full_isr(cluster, TOPIC, 3), timeout=60, what="broker 1 back in every ISR")
    wait_until(lambda: 1 in _leaders(cluster).values(), timeout=30, what="preferred leader back on broker 1")
    produce(b"back-", 300)
    assert not failed and len(acked) == 1200

    got = consume_all(cluster, TOPIC, 1200)
    by_partition: dict[int, list[bytes]] = {}
    for m in got:
        by_partition.setdefault(m.partition(), []).append(m.value())
    for part in range(3):
        assert by_partition.get(part) == [v for p, v in acked if p == part]  # once each, in order

    log1 = cluster.brokers[1].log_path.read_text()
    assert log1.count("event=log_dir.full") == 1
    assert log1.count("event=log_dir.online") == 1
    assert "Traceback" not in log1
    print(f"leadership moved off the full broker {moved_s:.1f} s after the disk filled", _log_figures(cluster))


def _log_figures(cluster: LocalCluster) -> str:
    """From the brokers' logs: the first refused write to the announcement and to the controller's move."""
    from datetime import datetime

    def stamp(line: str) -> float:
        return datetime.fromisoformat(line.split(maxsplit=1)[0].removeprefix("timestamp=").rstrip("Z")).timestamp()

    lines = [ln for b in cluster.brokers.values() for ln in b.log_path.read_text().splitlines()]
    full = min(stamp(ln) for ln in lines if "event=log_dir.full" in ln)
    announced = min(stamp(ln) for ln in lines if "log dir state announced" in ln and stamp(ln) >= full)
    moved = min(stamp(ln) for ln in lines if "controller moved partitions" in ln and stamp(ln) >= full)
    return f"(refused write -> announced {1000 * (announced - full):.0f} ms, -> moved {1000 * (moved - full):.0f} ms)"


def test_next_state_for_a_broker_whose_log_dir_is_offline() -> None:
    """The controller's rule (kafkapy/cluster/controller.py): broker 1's log dir is offline."""
    keep = {1}
    live, leadable = {1, 2, 3}, {2, 3}

    def state(leader: int, isr: list[int]) -> PartitionInfo:
        return PartitionInfo(0, leader, [1, 2, 3], isr, 5, 7)

    moved = next_state(state(1, [1, 2, 3]), live, leadable, unclean=False, keep=keep)
    assert moved is not None and (moved.leader, moved.isr, moved.leader_epoch) == (2, [2, 3], 6)
    shrunk = next_state(state(2, [2, 1, 3]), live, leadable, unclean=False, keep=keep)
    assert shrunk is not None and (shrunk.leader, shrunk.isr, shrunk.leader_epoch) == (2, [2, 3], 5)
    # no other in-sync replica: it keeps the leadership (reads go on) and its ISR
    assert next_state(state(1, [1]), live, leadable, unclean=False, keep=keep) is None
    # never the last ISR member removed
    alone = next_state(state(3, [1]), {1, 2}, {2}, unclean=False, keep=keep)
    assert alone is not None and (alone.leader, alone.isr) == (-1, [1])
    # once online again, preferred-leader election hands it back
    back = next_state(state(2, [2, 3, 1]), live, live, unclean=False, preferred=True)
    assert back is not None and back.leader == 1
