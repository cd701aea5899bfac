"""The broker's remote log task (KIP-405 tiered storage; docs/tiered-storage.md).

With remote.log.storage.system.enable the broker opens the object store the rsm.config.* keys name,
a FileRemoteLogMetadataStore under its first log dir (`remote-log-metadata/`) and one
RemoteLogManager. Every remote.log.manager.task.interval.ms, for each partition this broker leads
of a topic with remote.storage.enable, the task copies the closed segments not copied yet
(`copy_once`, skipped with remote.log.copy.disable) and then deletes the remote segments total
retention or the log start offset no longer needs (`expire_once`). Local retention of a tiered log
is the log's own (it deletes only copied segments): `LogManager` runs it as for every log.

The partitions of a pass are worked on concurrently, as Kafka's thread pools: at most
remote.log.manager.copier.thread.pool.size copy at once and ...expiration.thread.pool.size expire at
once (a partition copies, then expires); the pass ends when all have, so a partition is never worked
on twice at once. Reads from remote storage (Fetch, ShareFetch: `read`) run at most
remote.log.reader.threads at once; the wait for a slot counts against remote.fetch.max.wait.ms.

A partition whose copy or expiry failed is left alone for remote.log.manager.task.retry.backoff.ms,
doubling per failure up to ...retry.backoff.max.ms; the others go on. Produce never waits for any
of it: the task runs beside the request handlers on the event loop and the manager does its file
and network I/O without blocking it.

Remote data is deleted with its topic (a topic id the metadata no longer knows) and when a topic
turns remote.storage.enable off with remote.log.delete.on.disable=true (KIP-950).

In an etcd cluster the remote log metadata lives in etcd (kafkapy.cluster.remote_log_metadata),
shared by every broker: a partition this broker starts leading is read again from there before
copying, so copying continues after the old leader's last copied offset; for each tiered partition
it follows, each pass reads how far it is copied so that the log's local retention deletes copied
segments here too; and the replica fetcher restarts a follower whose next offset the leader holds
remotely only at the leader's local start (`restart_follower`, KIP-405's follower path).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from kafkapy.config import BrokerConfig
from kafkapy.logging import get_logger
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.remote.object_store import ObjectStore, ObjectStoreConfig

if TYPE_CHECKING:
    from kafkapy.cluster.replication import ReplicaManager
    from kafkapy.cluster.view import MetadataStore
    from kafkapy.server.stats import BrokerStats
    from kafkapy.storage.remote.manager import RemoteLogManager
    from kafkapy.storage.remote.metadata import RemoteLogMetadataStore

log = get_logger(__name__)

METADATA_DIR = "remote-log-metadata"


def object_store_config(config: BrokerConfig) -> ObjectStoreConfig:
    """The object store of the rsm.config.* keys: a directory with rsm.config.storage.root, else S3."""
    if config.rsm_storage_root:
        return ObjectStoreConfig(kind="dir", directory=config.rsm_storage_root, prefix=config.rsm_key_prefix)
    return ObjectStoreConfig(
        kind="s3",
        endpoint=config.rsm_s3_endpoint_url or None,
        bucket=config.rsm_s3_bucket_name or "",
        prefix=config.rsm_key_prefix,
        region=config.rsm_s3_region,
        access_key_id=config.rsm_aws_access_key_id,
        secret_access_key=config.rsm_aws_secret_access_key,
        path_style=config.rsm_s3_path_style_access_enabled,
    )


@dataclass(slots=True)
class _Retry:
    failures: int = 0
    at: float = 0.0  # event loop time before which the partition is not tried again


@dataclass(slots=True, frozen=True)
class PartitionFigures:
    """A tiered partition led here, as of the task's last pass (the metrics' gauges)."""

    remote_size: int  # RemoteLogSizeBytes
    remote_segments: int  # RemoteLogMetadataCount
    copy_lag: int  # RemoteCopyLagBytes: bytes of closed local segments not copied yet


def copy_lag_bytes(plog: PartitionLog, copied: int) -> int:
    segs = plog.segments
    return sum(seg.size for seg, nxt in pairwise(segs) if nxt.base_offset - 1 > copied)


@dataclass(slots=True, eq=False)
class RemoteLogTask:
    config: BrokerConfig
    replicas: ReplicaManager
    metadata: MetadataStore
    manager: RemoteLogManager
    store: ObjectStore
    metadata_store: RemoteLogMetadataStore
    stats: Callable[[], BrokerStats | None] = lambda: None
    figures: dict[tuple[str, int], PartitionFigures] = field(default_factory=dict)
    runs: int = 0  # passes over the partitions finished
    errors: int = 0  # copies and expiries failed
    _retry: dict[tuple[str, int], _Retry] = field(default_factory=dict)
    _led: dict[tuple[str, int], str] = field(default_factory=dict)  # (topic, partition) -> topic id
    _task: asyncio.Task[None] | None = None
    _copiers: asyncio.Semaphore = field(init=False)
    _expirers: asyncio.Semaphore = field(init=False)
    _readers: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._copiers = asyncio.Semaphore(self.config.remote_log_manager_copier_thread_pool_size)
        self._expirers = asyncio.Semaphore(self.config.remote_log_manager_expiration_thread_pool_size)
        self._readers = asyncio.Semaphore(self.config.remote_log_reader_threads)

    @classmethod
    def open(
        cls,
        config: BrokerConfig,
        replicas: ReplicaManager,
        metadata: MetadataStore,
        data_dir: Path,
        broker_id: int,
        stats: Callable[[], BrokerStats | None] = lambda: None,
    ) -> RemoteLogTask:
        """The object store, the metadata store under `data_dir` and the manager (no I/O yet)."""
        from kafkapy.storage.remote import open_object_store
        from kafkapy.storage.remote.manager import RemoteLogManager, RemoteLogSettings
        from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore

        store_config = object_store_config(config)
        store = open_object_store(store_config)
        from kafkapy.cluster.etcd_metadata import EtcdMetadata

        metadata_store: RemoteLogMetadataStore
        if isinstance(metadata, EtcdMetadata):  # a cluster: shared by every broker
            from kafkapy.cluster.remote_log_metadata import EtcdRemoteLogMetadataStore

            metadata_store = EtcdRemoteLogMetadataStore(metadata.client, metadata.prefix)
        else:
            metadata_store = FileRemoteLogMetadataStore(data_dir / METADATA_DIR)
        settings = RemoteLogSettings(
            copy_max_bytes_per_second=config.remote_log_manager_copy_max_bytes_per_second,
            fetch_max_bytes_per_second=config.remote_log_manager_fetch_max_bytes_per_second,
            index_cache_bytes=config.remote_log_index_file_cache_total_size_bytes,
        )
        manager = RemoteLogManager(store, metadata_store, broker_id, settings)
        log.info(
            "remote log manager opened",
            store=store_config.kind,
            endpoint=store_config.endpoint,
            bucket=store_config.bucket if store_config.kind == "s3" else None,
            directory=store_config.directory,
            prefix=store_config.prefix,
            interval_ms=config.remote_log_manager_task_interval_ms,
        )
        task = cls(config, replicas, metadata, manager, store, metadata_store, stats)
        replicas.tiered_follower = task.restart_follower
        return task

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        try:
            await self.store.close()
        except Exception:
            log.exception("closing the object store failed")

    async def _run(self) -> None:
        interval = self.config.remote_log_manager_task_interval_ms / 1000
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("remote log task failed")
            await asyncio.sleep(interval)

    def tiered_leaders(self) -> list[tuple[str, int, PartitionLog, str]]:
        """(topic, partition, log, topic id) of each tiered partition this broker leads."""
        out = []
        for r in self.replicas.all_replicas():
            if not r.is_leader or not r.plog.tiered:
                continue
            info = self.metadata.topic(r.topic)
            if info is not None:
                out.append((r.topic, r.index, r.plog, str(info.topic_id)))
        return out

    def topic_id(self, topic: str) -> str | None:
        info = self.metadata.topic(topic)
        return str(info.topic_id) if info is not None else None

    async def run_once(self) -> None:
        """One pass: copy and expire every tiered partition led here whose backoff is over, the
        partitions concurrently (bounded by the copier and expiration pool sizes)."""
        now = asyncio.get_running_loop().time()
        led: dict[tuple[str, int], str] = {}
        work = []
        for topic, index, plog, topic_id in self.tiered_leaders():
            key = (topic, index)
            led[key] = topic_id
            if key not in self._led:  # newly led: the old leader's copies, as the store has them now
                self.manager.forget(topic_id, index)
                plog.remote_copied_up_to = -1  # as a follower it may have counted copies out of the lineage
            retry = self._retry.get(key)
            if retry is not None and now < retry.at:
                continue
            work.append(self._tier_partition(topic, index, plog, topic_id))
        # all of them done (or failed) before the next step: no partition is ever worked on twice at once
        await asyncio.gather(*work)
        for key in self._led.keys() - led.keys():  # no longer led here (or no longer tiered)
            self.manager.forget(self._led[key], key[1])
            self.figures.pop(key, None)
            self._retry.pop(key, None)
        self._led = led
        await self._follow_copies()
        await self._delete_unused()
        self.runs += 1

    async def _follow_copies(self) -> None:
        """Each tiered partition followed here learns how far its leader copied it (the shared
        metadata), so that its local retention deletes the copied segments (log start unchanged)."""
        for r in self.replicas.all_replicas():
            if r.is_leader or not r.plog.tiered:
                continue
            topic_id = self.topic_id(r.topic)
            if topic_id is None:
                continue
            try:
                copied = await self.manager.copied_up_to(r.plog, topic_id)
            except Exception as exc:
                log.warning(
                    "reading remote log metadata failed",
                    topic=r.topic,
                    partition=r.index,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            r.plog.remote_copied_up_to = min(copied, r.plog.high_watermark - 1)

    async def restart_follower(
        self, topic: str, index: int, plog: PartitionLog, local_start: int, log_start: int
    ) -> None:
        """The replica fetcher's OFFSET_MOVED_TO_TIERED_STORAGE: read the remote state below the
        leader's `local_start` (epochs, producer snapshot), then restart the log there."""
        topic_id = self.topic_id(topic)
        if topic_id is None:
            raise LookupError(f"topic {topic} unknown")
        state = await self.manager.follower_state(topic_id, index, local_start)
        if plog.closed:
            return
        self.manager.restart_follower(plog, local_start, log_start, state)
        log.info(
            "follower log restarted from remote metadata",
            topic=topic,
            partition=index,
            local_start=local_start,
            log_start=log_start,
            epochs=len(state.epochs),
            producer_snapshot=state.snapshot_offset if state.snapshot is not None else None,
        )

    async def _tier_partition(self, topic: str, index: int, plog: PartitionLog, topic_id: str) -> None:
        """`_tier` one partition, then clear or extend its backoff."""
        key = (topic, index)
        try:
            ok = await self._tier(topic, plog, topic_id)
        except Exception:
            log.exception("remote log task failed", topic=topic, partition=index)
            ok = False
        if ok:
            self._retry.pop(key, None)
            return
        self.manager.forget(topic_id, index)  # e.g. a lost race: read the store again next time
        retry = self._retry.setdefault(key, _Retry())
        retry.failures += 1
        backoff = min(
            self.config.remote_log_manager_task_retry_backoff_ms * 2 ** min(retry.failures - 1, 30),
            self.config.remote_log_manager_task_retry_backoff_max_ms,
        )
        retry.at = asyncio.get_running_loop().time() + backoff / 1000

    async def read(
        self, plog: PartitionLog, topic_id: str, offset: int, max_bytes: int, upper: int, min_one_message: bool
    ) -> bytes | None:
        """The manager's read, at most remote.log.reader.threads at once (the caller's timeout
        covers the wait for a slot)."""
        async with self._readers:
            return await self.manager.read(plog, topic_id, offset, max_bytes, upper, min_one_message)

    async def _tier(self, topic: str, plog: PartitionLog, topic_id: str) -> bool:
        """Copy then expire one partition; False when either failed (logged, counted)."""
        stats = self.stats()
        counters = stats.remote_topic(topic) if stats is not None else None
        manager = self.manager
        ok = True
        index = plog.partition
        if not plog.config.remote_log_copy_disable:
            # the partition's own count: its work never runs twice at once, others' copies don't add to it
            before = manager.partition_copied_bytes(topic_id, index)
            try:
                async with self._copiers:
                    copied = await manager.copy_once(plog, topic_id)
            except Exception as exc:
                ok = False
                self.errors += 1
                if counters is not None:
                    counters.copy_requests += 1
                    counters.copy_errors += 1
                    counters.copy_bytes += manager.partition_copied_bytes(topic_id, index) - before
                log.warning("remote copy failed", topic=topic, partition=index, error=f"{type(exc).__name__}: {exc}")
            else:
                if counters is not None:
                    counters.copy_requests += copied
                    counters.copy_bytes += manager.partition_copied_bytes(topic_id, index) - before
        try:
            async with self._expirers:
                deleted = await manager.expire_once(plog, topic_id)
        except Exception as exc:
            ok = False
            self.errors += 1
            log.warning(
                "remote expiry failed", topic=topic, partition=plog.partition, error=f"{type(exc).__name__}: {exc}"
            )
        else:
            if counters is not None:
                counters.delete_requests += deleted
        copied_up_to = manager.highest_copied_offset(topic_id, plog.partition)
        self.figures[(topic, plog.partition)] = PartitionFigures(
            manager.remote_size(topic_id, plog.partition),
            manager.remote_segment_count(topic_id, plog.partition),
            copy_lag_bytes(plog, max(copied_up_to, plog.remote_copied_up_to)),
        )
        return ok

    async def _delete_unused(self) -> None:
        """Remote data of deleted topics, and of topics led here that turned remote storage off
        with remote.log.delete.on.disable=true."""
        for topic_id, index in await self.metadata_store.partitions():
            try:
                info = self.metadata.topic_by_id(uuid.UUID(topic_id))
            except ValueError:
                continue
            plog: PartitionLog | None = None
            if info is not None:
                plog = self.replicas.partition_log(info.name, index)
                if plog is None or plog.tiered or not plog.config.remote_log_delete_on_disable:
                    continue
                if isinstance(self.replicas.partition(info.name, index), int):
                    continue  # not the leader: its leader deletes
            try:
                deleted = await self.manager.delete_all(topic_id, index)
            except Exception as exc:
                self.errors += 1
                log.warning(
                    "deleting remote data failed",
                    topic_id=topic_id,
                    partition=index,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if plog is not None:  # what was remote only is gone: the log starts at its local start
                plog.remote_copied_up_to = -1
                if plog.log_start_offset < plog.local_log_start_offset:
                    plog.advance_log_start_offset(plog.local_log_start_offset)  # in the loop, as the log wants
            log.info(
                "remote data deleted",
                topic=info.name if info is not None else None,
                topic_id=topic_id,
                partition=index,
                segments=deleted,
                reason="topic deleted" if info is None else "remote.log.delete.on.disable",
            )

    def topic_figures(self) -> dict[str, tuple[int, int, int]]:
        """Per topic: remote bytes, remote segments, copy lag bytes (summed over its partitions led here)."""
        out: dict[str, tuple[int, int, int]] = {}
        for (topic, _), f in self.figures.items():
            size, count, lag = out.get(topic, (0, 0, 0))
            out[topic] = (size + f.remote_size, count + f.remote_segments, lag + f.copy_lag)
        return out
