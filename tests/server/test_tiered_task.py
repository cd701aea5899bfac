"""The broker's remote log task without a broker: which partitions it tiers, its retry backoff, its
object store settings."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from kafkapy.config import BrokerConfig
from kafkapy.server.stats import BrokerStats
from kafkapy.server.tiering import RemoteLogTask, object_store_config
from kafkapy.storage.remote.object_store import ObjectStoreError

TOPIC_ID = uuid.uuid4()


@dataclass
class Cfg:
    remote_log_copy_disable: bool = False
    remote_log_delete_on_disable: bool = False


@dataclass
class Seg:
    base_offset: int
    size: int


@dataclass
class Log:
    partition: int = 0
    tiered: bool = True
    config: Cfg = field(default_factory=Cfg)
    segments: list[Seg] = field(default_factory=lambda: [Seg(0, 100), Seg(10, 100), Seg(20, 5)])
    remote_copied_up_to: int = -1


@dataclass
class Rep:
    topic: str
    index: int
    plog: Log
    is_leader: bool = True


@dataclass
class Replicas:
    reps: list[Rep]

    def all_replicas(self) -> list[Rep]:
        return self.reps

    def partition_log(self, topic: str, index: int) -> Log | None:
        return next((r.plog for r in self.reps if (r.topic, r.index) == (topic, index)), None)


@dataclass
class Info:
    name: str
    topic_id: uuid.UUID = TOPIC_ID


class Metadata:
    def topic(self, name: str) -> Info | None:
        return Info(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> Info | None:
        return Info("t") if topic_id == TOPIC_ID else None


@dataclass
class Manager:
    fail: int = 0  # copies to fail
    copies: list[str] = field(default_factory=list)
    deleted: list[tuple[str, int]] = field(default_factory=list)
    copied_bytes: int = 0

    async def copy_once(self, plog: Log, topic_id: str) -> int:
        self.copies.append(topic_id)
        if self.fail:
            self.fail -= 1
            raise ObjectStoreError("store down")
        plog.remote_copied_up_to = 9
        self.copied_bytes += 100
        return 1

    async def expire_once(self, plog: Log, topic_id: str) -> int:
        return 0

    def highest_copied_offset(self, topic_id: str, partition: int) -> int:
        return 9 if self.copies else -1

    def remote_size(self, topic_id: str, partition: int) -> int:
        return 100

    def remote_segment_count(self, topic_id: str, partition: int) -> int:
        return 1

    def forget(self, topic_id: str, partition: int) -> None:
        pass

    async def delete_all(self, topic_id: str, partition: int) -> int:
        self.deleted.append((topic_id, partition))
        return 1


@dataclass
class MetadataStore:
    parts: list[tuple[str, int]] = field(default_factory=list)

    async def partitions(self) -> list[tuple[str, int]]:
        return list(self.parts)


def task(reps: list[Rep], manager: Manager, stats: BrokerStats | None = None, **config: str) -> RemoteLogTask:
    pairs = [
        ("remote.log.manager.task.retry.backoff.ms", "100"),
        ("remote.log.manager.task.retry.backoff.max.ms", "250"),
    ]
    cfg = BrokerConfig.from_pairs(pairs + list(config.items()))
    any_: Any = None
    return RemoteLogTask(cfg, Replicas(reps), Metadata(), manager, any_, MetadataStore(), lambda: stats)  # type: ignore[arg-type]


def test_object_store_config_from_the_rsm_keys() -> None:
    c = BrokerConfig.from_pairs(
        [
            ("rsm.config.storage.s3.endpoint.url", "http://h:1"),
            ("rsm.config.storage.s3.bucket.name", "b"),
            ("rsm.config.storage.s3.region", "eu-west-1"),
            ("rsm.config.storage.aws.access.key.id", "id"),
            ("rsm.config.storage.aws.secret.access.key", "secret"),
            ("rsm.config.storage.s3.path.style.access.enabled", "false"),
            ("rsm.config.key.prefix", "p"),
        ]
    )
    s3 = object_store_config(c)
    assert (s3.kind, s3.endpoint, s3.bucket, s3.region, s3.prefix, s3.path_style) == (
        "s3",
        "http://h:1",
        "b",
        "eu-west-1",
        "p",
        False,
    )
    assert (s3.access_key_id, s3.secret_access_key) == ("id", "secret")
    d = object_store_config(
        BrokerConfig.from_pairs([("rsm.config.storage.root", "/r"), ("rsm.config.key.prefix", "p")])
    )
    assert (d.kind, d.directory, d.prefix) == ("dir", "/r", "p")


def test_only_tiered_partitions_led_here_are_copied() -> None:
    manager = Manager()
    reps = [Rep("t", 0, Log()), Rep("t", 1, Log(partition=1), is_leader=False), Rep("u", 0, Log(tiered=False))]
    t = task(reps, manager)
    asyncio.run(t.run_once())
    assert manager.copies == [str(TOPIC_ID)]
    f = t.figures[("t", 0)]
    assert (f.remote_size, f.remote_segments, f.copy_lag) == (100, 1, 100)  # the segment at 10 is not copied yet
    assert t.topic_figures() == {"t": (100, 1, 100)}


def test_copy_disable_skips_the_copy() -> None:
    manager = Manager()
    asyncio.run(task([Rep("t", 0, Log(config=Cfg(remote_log_copy_disable=True)))], manager).run_once())
    assert manager.copies == []


def test_a_failed_partition_backs_off_doubling_up_to_the_max() -> None:
    manager = Manager(fail=3)
    stats = BrokerStats()
    t = task([Rep("t", 0, Log())], manager, stats)

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        waits = []
        for _ in range(3):
            await t.run_once()
            retry = t._retry[("t", 0)]
            waits.append(round(retry.at - loop.time(), 2))
            await t.run_once()  # still backing off: not tried
            await asyncio.sleep(retry.at - loop.time() + 0.01)
        await t.run_once()
        assert ("t", 0) not in t._retry
        return waits

    waits = asyncio.run(scenario())
    assert waits == [0.1, 0.2, 0.25]
    assert len(manager.copies) == 4 and t.errors == 3
    counters = stats.remote["t"]
    assert (counters.copy_errors, counters.copy_requests, counters.copy_bytes) == (3, 4, 100)


def test_remote_data_of_deleted_topics_is_deleted() -> None:
    manager = Manager()
    gone = str(uuid.uuid4())
    t = task([], manager)
    t.metadata_store.parts = [(gone, 0), (str(TOPIC_ID), 0)]  # type: ignore[attr-defined]
    asyncio.run(t.run_once())
    assert manager.deleted == [(gone, 0)]  # the known topic's partition has no local log here: left alone
