"""LogManager: every partition log under one data directory.

Loads all `<topic>-<partition>` directories at start (no scan after a clean
shutdown, marked by `.kafka_cleanshutdown`), creates and deletes partition
logs, and runs periodic housekeeping from `tick(now_ms)`: purge of deleted
files, retention, time-based flush, offset checkpoints and compaction
scheduling. Topic metadata (ids, configs, partition counts) belongs to
another layer; the manager is told configs and only writes each partition's
`partition.metadata` (topic id).

Concurrency: call everything from one thread (the event loop). Compaction
is run inline by `tick` or, when an executor is given, submitted to it; a
log is never compacted twice at once and the swap is atomic (cleaner.py).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.protocol.uuids import parse_uuid_text, uuid_text
from kafkapy.storage.checkpoint import fsync_dir, write_atomic
from kafkapy.storage.cleaner import CleanResult, dirty_ratio
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import LogExistsError, StorageError
from kafkapy.storage.log import PartitionLog, parse_partition_dir
from kafkapy.storage.segment import now_ms

log = structlog.get_logger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
PARTITION_METADATA_FILE = "partition.metadata"
DELETE_DIR_SUFFIX = "-delete"


@dataclass(slots=True)
class _PendingDirDelete:
    log: PartitionLog
    path: Path
    due_ms: int


@dataclass(slots=True)
class TickResult:
    segments_deleted: int = 0
    files_purged: int = 0
    flushed: int = 0
    compactions_started: int = 0
    dirs_deleted: int = 0
    compaction_results: list[CleanResult] = field(default_factory=list)


class LogManager:
    """Partition logs of one data directory. See module docstring."""

    def __init__(
        self,
        data_dir: Path | str,
        default_config: LogConfig | None = None,
        *,
        config_for_topic: Callable[[str], LogConfig | None] | None = None,
        compaction_executor: Executor | None = None,
        checkpoint_interval_ms: int = 5_000,
        retention_check_interval_ms: int = 300_000,
        sync: bool = True,
        producer_id_expiration_ms: int = 86_400_000,
        producer_expiration_check_interval_ms: int = 600_000,
        auto_high_watermark: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        # False in a cluster: replication moves the high watermark, not appends.
        self.auto_high_watermark = auto_high_watermark
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._producer_check_interval_ms = producer_expiration_check_interval_ms
        self._last_producer_check_ms = now_ms()
        self.default_config = default_config or LogConfig()
        self._config_for_topic = config_for_topic
        self._executor = compaction_executor
        self._checkpoint_interval_ms = checkpoint_interval_ms
        self._retention_interval_ms = retention_check_interval_ms
        self._sync = sync
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._compacting: dict[tuple[str, int], Future[CleanResult]] = {}
        self._pending_dir_deletes: list[_PendingDirDelete] = []
        self._last_checkpoint_ms = now_ms()
        self._last_retention_ms = 0
        self._checkpointed_hw: dict[tuple[str, int], int] = {}
        self.loaded_clean = False
        self._closed = False
        self._load()

    # -- loading -------------------------------------------------------------------

    def config_for(self, topic: str) -> LogConfig:
        if self._config_for_topic is not None:
            cfg = self._config_for_topic(topic)
            if cfg is not None:
                return cfg
        return self.default_config

    def _load(self) -> None:
        t0 = time.perf_counter()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self.loaded_clean = clean
        for entry in sorted(os.listdir(self.data_dir)):
            path = self.data_dir / entry
            if not path.is_dir():
                continue
            if entry.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
                continue
            parsed = parse_partition_dir(entry)
            if parsed is None:
                continue
            self._logs[parsed] = PartitionLog(
                path,
                self.config_for(parsed[0]),
                clean_shutdown=clean,
                sync=self._sync,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                auto_high_watermark=self.auto_high_watermark,
            )
        # From here on a crash is unclean until close() writes the marker again.
        marker.unlink(missing_ok=True)
        if self._sync:
            fsync_dir(self.data_dir)
        log.info(
            "log_manager.loaded",
            data_dir=str(self.data_dir),
            partitions=len(self._logs),
            clean=clean,
            ms=round((time.perf_counter() - t0) * 1000, 1),
        )

    # -- partitions ----------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def partitions(self) -> list[tuple[str, int]]:
        return sorted(self._logs)

    def logs(self) -> list[PartitionLog]:
        return list(self._logs.values())

    def create(
        self,
        topic: str,
        partition: int,
        config: LogConfig | None = None,
        *,
        topic_id: uuid.UUID | None = None,
    ) -> PartitionLog:
        """Create a new, empty partition log; LogExistsError if present."""
        key = (topic, partition)
        if key in self._logs:
            raise LogExistsError(f"{topic}-{partition}")
        if not topic or topic in (".", "..") or "/" in topic:
            raise StorageError(f"invalid topic name {topic!r}")
        path = self.data_dir / f"{topic}-{partition}"
        plog = PartitionLog(
            path,
            config or self.config_for(topic),
            sync=self._sync,
            producer_id_expiration_ms=self.producer_id_expiration_ms,
            auto_high_watermark=self.auto_high_watermark,
        )
        if topic_id is not None:
            self.write_topic_id(plog, topic_id)
        if self._sync:
            fsync_dir(self.data_dir)
        self._logs[key] = plog
        log.info("log_manager.created", topic=topic, partition=partition)
        return plog

    def get_or_create(
        self, topic: str, partition: int, config: LogConfig | None = None, *, topic_id: uuid.UUID | None = None
    ) -> PartitionLog:
        plog = self._logs.get((topic, partition))
        return plog if plog is not None else self.create(topic, partition, config, topic_id=topic_id)

    def write_topic_id(self, plog: PartitionLog, topic_id: uuid.UUID) -> None:
        text = f"version: 0\ntopic_id: {uuid_text(topic_id)}\n"
        write_atomic(plog.directory / PARTITION_METADATA_FILE, text.encode(), sync=self._sync)

    def topic_id(self, topic: str, partition: int) -> uuid.UUID | None:
        """The topic id from partition.metadata, if written."""
        plog = self._logs.get((topic, partition))
        if plog is None:
            return None
        try:
            text = (plog.directory / PARTITION_METADATA_FILE).read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "topic_id":
                return parse_uuid_text(value.strip())
        return None

    def delete(self, topic: str, partition: int) -> bool:
        """Remove a partition log: rename to `<dir>.<uuid>-delete`, unlink later."""
        plog = self._logs.pop((topic, partition), None)
        if plog is None:
            return False
        self._checkpointed_hw.pop((topic, partition), None)
        target = plog.directory.with_name(f"{plog.directory.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        os.replace(plog.directory, target)
        if self._sync:
            fsync_dir(self.data_dir)
        delay = plog.config.file_delete_delay_ms
        self._pending_dir_deletes.append(_PendingDirDelete(plog, target, now_ms() + delay))
        log.info("log_manager.deleted", topic=topic, partition=partition, renamed=target.name)
        return True

    def update_config(self, topic: str, config: LogConfig) -> None:
        """Apply new topic configs to the topic's open logs (takes effect at once)."""
        for (t, _), plog in self._logs.items():
            if t == topic:
                plog.config = config

    # -- housekeeping --------------------------------------------------------------

    def tick(self, now: int | None = None) -> TickResult:
        """Periodic work; call every few seconds from a timer."""
        now = now_ms() if now is None else now
        result = TickResult()
        result.dirs_deleted = self._purge_deleted_dirs(now)
        for key, fut in list(self._compacting.items()):
            if fut.done():
                del self._compacting[key]
                exc = fut.exception()
                if exc is not None:
                    log.error("log_manager.compaction_failed", partition=f"{key[0]}-{key[1]}", error=repr(exc))
                else:
                    result.compaction_results.append(fut.result())
        run_retention = now - self._last_retention_ms >= self._retention_interval_ms
        if run_retention:
            self._last_retention_ms = now
        run_checkpoint = now - self._last_checkpoint_ms >= self._checkpoint_interval_ms
        if run_checkpoint:
            self._last_checkpoint_ms = now
        expire_producers = now - self._last_producer_check_ms >= self._producer_check_interval_ms
        if expire_producers:
            self._last_producer_check_ms = now
        for key, plog in list(self._logs.items()):
            result.files_purged += plog.purge_deleted(now)
            if expire_producers:
                plog.producer_state.remove_expired(now)
            if run_retention:
                result.segments_deleted += plog.apply_retention(now)
                if (
                    plog.config.compact
                    and key not in self._compacting
                    and dirty_ratio(plog) >= plog.config.min_cleanable_dirty_ratio
                ):
                    self._start_compaction(key, plog, now, result)
            if plog.maybe_flush(now) or plog.flush_rolled_segments():
                result.flushed += 1
            elif run_checkpoint and self._checkpointed_hw.get(key) != plog.high_watermark:
                plog.checkpoint()
            self._checkpointed_hw[key] = plog.high_watermark
        return result

    def _start_compaction(self, key: tuple[str, int], plog: PartitionLog, now: int, result: TickResult) -> None:
        result.compactions_started += 1
        if self._executor is None:
            try:
                result.compaction_results.append(plog.compact(now))
            except Exception as exc:  # a failed run leaves the log as it was
                log.error("log_manager.compaction_failed", partition=f"{key[0]}-{key[1]}", error=repr(exc))
            return
        self._compacting[key] = self._executor.submit(plog.compact, now)

    def _purge_deleted_dirs(self, now: int, *, force: bool = False) -> int:
        due = [p for p in self._pending_dir_deletes if force or p.due_ms <= now]
        if not due:
            return 0
        self._pending_dir_deletes = [p for p in self._pending_dir_deletes if p not in due]
        for p in due:
            if not p.log.closed:
                p.log.delete_files_only()
            shutil.rmtree(p.path, ignore_errors=True)
        return len(due)

    # -- shutdown ------------------------------------------------------------------

    def flush_all(self) -> None:
        for plog in self._logs.values():
            plog.flush()

    def close(self) -> None:
        """Flush and close every log, then write the clean-shutdown marker."""
        if self._closed:
            return
        for fut in self._compacting.values():
            fut.cancel()
            try:
                fut.result()
            except BaseException:  # cancelled or failed: nothing was swapped in
                pass
        self._compacting.clear()
        for plog in self._logs.values():
            plog.close()
        self._purge_deleted_dirs(0, force=True)
        write_atomic(self.data_dir / CLEAN_SHUTDOWN_FILE, b"", sync=self._sync)
        self._closed = True
        log.info("log_manager.closed", data_dir=str(self.data_dir))
