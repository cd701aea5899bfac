"""The broker's remote log task without a broker: which partitions it tiers, its retry backoff, its
object store settings, its partitions copied concurrently (bounded by the copier pool) and its remote
reads bounded by remote.log.reader.threads."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kafkapy.config import BrokerConfig
from kafkapy.server.stats import BrokerStats
from kafkapy.server.tiering import RemoteLogTask, object_store_config
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.remote.dir_store import DirObjectStore
from kafkapy.storage.remote.manager import RemoteLogManager, RemoteLogSettings
from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore
from kafkapy.storage.remote.object_store import ObjectStoreError
from tests.storage.test_tiered_manager import fill, tiered_config

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

    def partition_copied_bytes(self, topic_id: str, partition: int) -> int:
        return self.copied_bytes

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


def task(
    reps: list[Any], manager: Any, stats: BrokerStats | None = None, metadata: Any = None, **config: str
) -> RemoteLogTask:
    pairs = [
        ("remote.log.manager.task.retry.backoff.ms", "100"),
        ("remote.log.manager.task.retry.backoff.max.ms", "250"),
    ]
    cfg = BrokerConfig.from_pairs(pairs + [(k.replace("_", "."), v) for k, v in config.items()])
    any_: Any = None
    meta: Any = metadata or Metadata()
    store: Any = MetadataStore()
    replicas: Any = Replicas(reps)
    return RemoteLogTask(cfg, replicas, meta, manager, any_, store, lambda: stats)


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


# -- concurrency: real RemoteLogManagers over a directory whose puts are slow for one topic -------------


class SlowStore(DirObjectStore):
    """Puts of the "slow" topic's segment files take `delay` seconds; each put_file's (topic, start, end)
    is recorded."""

    def __init__(self, directory: Path, delay: float) -> None:
        super().__init__(directory, sync=False)
        self.delay = delay
        self.puts: list[tuple[str, float, float]] = []

    async def put_file(self, key: str, path: Path, length: int) -> None:
        topic = Path(path).parent.name.rsplit("-", 1)[0]
        began = time.monotonic()
        if topic == "slow":
            await asyncio.sleep(self.delay)
        await super().put_file(key, path, length)
        self.puts.append((topic, began, time.monotonic()))


class Topics:
    """Metadata with one topic id per topic name."""

    def __init__(self, *names: str) -> None:
        self.infos = {n: Info(n, uuid.uuid4()) for n in names}

    def topic(self, name: str) -> Info | None:
        return self.infos.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> Info | None:
        return next((i for i in self.infos.values() if i.topic_id == topic_id), None)


def two_topics(tmp_path: Path, **config: str) -> tuple[RemoteLogTask, SlowStore, BrokerStats, list[PartitionLog]]:
    logs = [PartitionLog(tmp_path / "data" / f"{name}-0", tiered_config()) for name in ("slow", "fast")]
    fill(logs[0], 12)  # a few segments each
    fill(logs[1], 30)
    store = SlowStore(tmp_path / "remote", delay=0.3)
    mgr = RemoteLogManager(
        store, FileRemoteLogMetadataStore(tmp_path / "data" / "remote-log-metadata"), 1, RemoteLogSettings()
    )
    stats = BrokerStats()
    reps = [Rep("slow", 0, logs[0]), Rep("fast", 0, logs[1])]  # type: ignore[arg-type]
    return task(reps, mgr, stats, Topics("slow", "fast"), **config), store, stats, logs


def test_partitions_copy_concurrently_and_bytes_count_per_partition(tmp_path: Path) -> None:
    t, store, stats, logs = two_topics(tmp_path)
    asyncio.run(t.run_once())
    slow_end = max(end for topic, _, end in store.puts if topic == "slow")
    fast_ends = [end for topic, _, end in store.puts if topic == "fast"]
    assert len(fast_ends) == len(logs[1].segments) - 1 > 1
    assert max(fast_ends) < slow_end  # the fast partition was all copied while the slow one still was
    mgr = t.manager
    for plog in logs:
        topic_id = t.topic_id(plog.topic)
        assert topic_id is not None
        counters = stats.remote[plog.topic]
        segs = len(plog.segments) - 1
        assert mgr.remote_segment_count(topic_id, 0) == counters.copy_requests == segs
        # exactly this partition's copied bytes, though the other copied meanwhile
        assert counters.copy_bytes == mgr.remote_size(topic_id, 0) == sum(s.size for s in plog.segments[:-1])
    assert stats.remote["slow"].copy_bytes + stats.remote["fast"].copy_bytes == mgr.copied_bytes
    assert t.runs == 1 and t.errors == 0


def test_a_copier_pool_of_one_copies_one_partition_after_the_other(tmp_path: Path) -> None:
    t, store, _, logs = two_topics(tmp_path, remote_log_manager_copier_thread_pool_size="1")
    asyncio.run(t.run_once())
    slow = [(b, e) for topic, b, e in store.puts if topic == "slow"]
    fast = [(b, e) for topic, b, e in store.puts if topic == "fast"]
    assert len(slow) == len(logs[0].segments) - 1 and len(fast) == len(logs[1].segments) - 1
    assert min(b for b, _ in fast) >= max(e for _, e in slow)  # "slow" is led first: "fast" waited for it


@dataclass
class SlowReads:
    reading: int = 0
    most: int = 0

    async def read(self, *args: object) -> bytes:
        self.reading += 1
        self.most = max(self.most, self.reading)
        await asyncio.sleep(0.1)
        self.reading -= 1
        return b"x"


def test_remote_reads_are_bounded_by_the_reader_threads() -> None:
    reads = SlowReads()
    t = task([], reads, remote_log_reader_threads="2")
    plog: Any = None

    async def scenario() -> None:
        got = await asyncio.gather(*(t.read(plog, "id", 0, 1, 1, True) for _ in range(5)))
        assert got == [b"x"] * 5 and reads.most == 2
        # the wait for a slot counts against the caller's timeout (remote.fetch.max.wait.ms)
        busy = [asyncio.create_task(t.read(plog, "id", 0, 1, 1, True)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(t.read(plog, "id", 0, 1, 1, True), 0.05)
        await asyncio.gather(*busy)

    asyncio.run(scenario())
