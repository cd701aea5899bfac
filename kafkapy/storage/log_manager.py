"""LogManager: every partition log under the broker's data directories (`log.dirs`, JBOD).

Each data directory holds `<topic>-<partition>` directories; a new partition goes to the online
directory with the fewest partitions (ties: the first in `log.dirs`), unless AlterReplicaLogDirs named
one for it first. Moving a partition to another directory (`move`, KIP-113) copies its log into
`<dest>/<topic>-<partition>.<uuid>-future` while the partition stays served, then swaps (`copy_futures`):
the source is renamed `<topic>-<partition>.<uuid>-moved`, the copy renamed to `<topic>-<partition>`, and
the served PartitionLog reopened on the copy; the old files go after file.delete.delay.ms. A restart
during a move resumes it (a `-future` dir beside its partition), finishes the swap (a `-moved` dir and
its `-future` copy) or drops the leftover (a `-moved` dir once the copy is in place).

Loads all `<topic>-<partition>` directories at start (no scan after a clean
shutdown, marked by `.kafka_cleanshutdown`), creates and deletes partition
logs, and runs periodic housekeeping from `tick(now_ms)`: purge of deleted
files, retention, time-based flush, offset checkpoints and compaction
scheduling. Topic metadata (ids, configs, partition counts) belongs to
another layer; the manager is told configs and only writes each partition's
`partition.metadata` (topic id).

A full or failing data directory (`LogDirHealth`, one per directory): every failed write is
rolled back where it happened and raised as LogDirError (produce answers
KAFKA_STORAGE_ERROR); the directory's state changes to `full` (ENOSPC,
EDQUOT) or `failed` (anything else) with one log line, reads go on, and
`tick` looks every second whether the directory takes writes again (free
space above a margin for `full`, a probe file written and fsynced for
`failed`), which it logs once too. Housekeeping of a log whose write
failed is retried at the next tick without a traceback.

Concurrency: call everything from one thread (the event loop). Compaction
is run inline by `tick` or, when an executor is given, submitted to it; a
log is never compacted twice at once and the swap is atomic (cleaner.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.protocol.records import iter_batches, split_complete
from kafkapy.protocol.uuids import parse_uuid_text, uuid_text
from kafkapy.storage.checkpoint import fsync_dir, write_atomic
from kafkapy.storage.cleaner import CleanResult, dirty_ratio
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import LogDirError, LogExistsError, OffsetOutOfRangeError, StorageError
from kafkapy.storage.log import PartitionLog, parse_partition_dir
from kafkapy.storage.segment import now_ms

log = structlog.get_logger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
PARTITION_METADATA_FILE = "partition.metadata"
DELETE_DIR_SUFFIX = "-delete"
FUTURE_DIR_SUFFIX = "-future"  # a copy being made by a move to another data directory
MOVED_DIR_SUFFIX = "-moved"  # the source of a finished move, deleted after file.delete.delay.ms
MAX_DIR_NAME = 255  # NAME_MAX of the file systems a data dir lives on
MOVE_CHUNK = 4 << 20  # bytes copied per read of a move


def future_dir_name(topic: str, partition: int) -> str:
    """`<topic>-<partition>.<uuid>-future`; longer than 255 bytes for topics near the name limit (Kafka
    refuses to move those: INVALID_TOPIC_EXCEPTION)."""
    return f"{topic}-{partition}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"


def parse_suffixed_dir(name: str, suffix: str) -> tuple[str, int] | None:
    """`<topic>-<partition>.<uuid><suffix>` -> (topic, partition), None for other names."""
    if not name.endswith(suffix):
        return None
    head, dot, tag = name[: -len(suffix)].rpartition(".")
    return parse_partition_dir(head) if dot and tag else None


def delete_dir_name(topic: str, partition: int) -> str:
    """`<topic>-<partition>.<uuid>-delete`, the topic cut so the name fits in 255 bytes as Kafka
    cuts it (a 249-character topic name would not fit otherwise)."""
    suffix = f"-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
    return topic[: max(0, MAX_DIR_NAME - len(suffix))] + suffix


@dataclass(slots=True)
class _PendingDirDelete:
    log: PartitionLog
    path: Path
    due_ms: int


@dataclass(slots=True)
class FutureLog:
    """A partition's copy being made in another data directory (Kafka's future replica)."""

    log: PartitionLog
    dest: Path  # the data directory it moves to


FLUSH_SAMPLES = 1024  # flush times kept for percentiles

ONLINE, FULL, FAILED = "online", "full", "failed"
PROBE_FILE = ".kafkapy-write-probe"
FULL_LOG_INTERVAL_MS = 60_000  # a directory that keeps refusing is logged again at most this often


def free_bytes(path: Path) -> tuple[int, int]:
    """(bytes free for an unprivileged writer, file system size) of the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def space_margin(total: int) -> int:
    """Free bytes a full directory needs before it counts as writable again: 5 % of the file
    system, at least 1 MiB and at most 64 MiB (so that one more batch does not fill it again)."""
    return min(64 << 20, max(1 << 20, total // 20))


@dataclass(slots=True)
class LogDirHealth:
    """Whether the data directory takes writes: `online`, `full` (ENOSPC/EDQUOT) or `failed` (EIO,
    EROFS, ...). Every state change is logged once and told to `listener` by `tell` (a clustered
    broker then moves its leaderships away, or back)."""

    data_dir: Path
    state: str = ONLINE
    since_ms: int = 0
    refused_writes: int = 0  # failed writes since the state changed
    last_error: str = ""
    listener: Callable[[str], None] | None = None
    _logged_ms: int = 0
    _told: str = ONLINE  # the state `listener` last heard (told from `tick`, on the event loop)
    _errno: int | None = None  # of the failure that changed the state

    @property
    def online(self) -> bool:
        return self.state == ONLINE

    def report(self, err: LogDirError) -> None:
        """A write failed (already rolled back by the storage code)."""
        self.refused_writes += 1
        self.last_error = err.detail
        if self.state == ONLINE or not err.full:
            self._errno = err.errno
        state = FULL if err.full else FAILED
        now = now_ms()
        if self.state not in (state, FAILED):  # failed stays failed until a probe succeeds
            self._change(state, now, path=err.path, error=err.detail)
            self.tell()
        elif now - self._logged_ms >= FULL_LOG_INTERVAL_MS:
            self._logged_ms = now
            log.error(
                "log_dir.still_refusing_writes",
                data_dir=str(self.data_dir),
                state=self.state,
                refused_writes=self.refused_writes,
                error=err.detail,
            )

    def check(self) -> bool:
        """When not online: does the directory take writes again? (True: it went back online.) Out of
        space (ENOSPC): once statvfs shows the margin free; otherwise (a quota, which statvfs does not
        show, or a failing disk): once a probe file is written and fsynced."""
        if self.state == ONLINE:
            return False
        try:
            if self.state == FULL and self._errno == errno.ENOSPC:
                free, total = free_bytes(self.data_dir)
                if free < space_margin(total):
                    return False
            else:
                probe = self.data_dir / PROBE_FILE
                write_atomic(probe, b"kafkapy", sync=True)
                probe.unlink()
        except OSError:
            return False
        self._change(ONLINE, now_ms())
        return True

    def _change(self, state: str, now: int, **why: str) -> None:
        before, self.state, self.since_ms, self._logged_ms = self.state, state, now, now
        if state == ONLINE:
            free, _ = free_bytes(self.data_dir)
            log.warning(
                "log_dir.online",
                data_dir=str(self.data_dir),
                was=before,
                refused_writes=self.refused_writes,
                free_bytes=free,
            )
        else:
            try:
                free = free_bytes(self.data_dir)[0]
            except OSError:
                free = -1
            log.error(
                "log_dir.full" if state == FULL else "log_dir.failed",
                data_dir=str(self.data_dir),
                free_bytes=free,
                **why,
                effect="produce answers KAFKA_STORAGE_ERROR until the directory takes writes again; reads go on",
            )
        self.refused_writes = 0 if state == ONLINE else self.refused_writes

    def tell(self) -> None:
        """Tell `listener` of a state change since the last call: at once from `report`, else from
        `tick`. A report may come from the compaction thread: the listener must be thread-safe."""
        if self._told != self.state and self.listener is not None:
            self._told = self.state
            self.listener(self.state)


@dataclass(slots=True)
class LogActivity:
    """Counts of the manager's housekeeping, read by the broker's metrics (Kafka's LogFlushStats,
    LogCleaner and LogCleanerManager figures)."""

    flushes: int = 0
    flush_ms_sum: float = 0.0
    flush_ms: deque[float] = field(default_factory=lambda: deque(maxlen=FLUSH_SAMPLES))
    retention_deleted_segments: int = 0  # segments deleted by retention.ms / retention.bytes
    cleaner_runs: int = 0  # compactions finished
    cleaner_last_check_ms: int = field(default_factory=now_ms)  # the last look for logs to compact
    max_dirty_percent: int = 0  # of the compacted logs at that look
    cleaner_recopy_percent: int = 0  # of the last compaction: bytes written / bytes read
    max_clean_time_secs: int = 0  # of the last compaction

    def flushed(self, ms: float) -> None:
        self.flushes += 1
        self.flush_ms_sum += ms
        self.flush_ms.append(ms)

    def cleaned(self, result: CleanResult) -> None:
        self.cleaner_runs += 1
        if result.bytes_before:
            self.cleaner_recopy_percent = int(100 * result.bytes_after / result.bytes_before)
        self.max_clean_time_secs = int(result.seconds)


@dataclass(slots=True)
class TickResult:
    segments_deleted: int = 0
    files_purged: int = 0
    flushed: int = 0
    compactions_started: int = 0
    dirs_deleted: int = 0
    compaction_results: list[CleanResult] = field(default_factory=list)


class LogManager:
    """Partition logs of the data directories. See module docstring."""

    def __init__(
        self,
        data_dir: Path | str | Sequence[Path | str],
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
        dirs = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else [Path(d) for d in data_dir]
        if not dirs or len({os.path.abspath(d) for d in dirs}) != len(dirs):
            raise StorageError(f"data directories must be given once each: {[str(d) for d in dirs]}")
        self.data_dirs = dirs
        self.data_dir = dirs[0]  # the first of log.dirs: where the broker keeps its other state
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
        self._futures: dict[tuple[str, int], FutureLog] = {}
        self._preferred: dict[tuple[str, int], Path] = {}  # AlterReplicaLogDirs before the partition is here
        self._placing: dict[tuple[str, int], Path] = {}  # prepared, not yet adopted (worker threads)
        self._place_lock = threading.Lock()
        self._compacting: dict[tuple[str, int], Future[CleanResult]] = {}
        self._pending_dir_deletes: list[_PendingDirDelete] = []
        self._last_checkpoint_ms = now_ms()
        self._last_retention_ms = 0
        self._checkpointed_hw: dict[tuple[str, int], int] = {}
        self.activity = LogActivity()
        self.healths = {d: LogDirHealth(d) for d in dirs}
        self.health = self.healths[dirs[0]]
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

    def _open_log(self, path: Path, key: tuple[str, int], clean: bool) -> PartitionLog:
        plog = PartitionLog(
            path,
            self.config_for(key[0]),
            clean_shutdown=clean,
            sync=self._sync,
            producer_id_expiration_ms=self.producer_id_expiration_ms,
            auto_high_watermark=self.auto_high_watermark,
        )
        plog.topic, plog.partition = key  # a future dir's name does not parse as a partition
        plog.flush_listener = self.activity.flushed
        plog.dir_listener = self.healths[path.parent].report
        return plog

    def _load(self) -> None:
        t0 = time.perf_counter()
        futures: list[tuple[tuple[str, int], Path]] = []
        moved: list[tuple[tuple[str, int], Path]] = []
        clean_dirs: dict[Path, bool] = {}
        for data_dir in self.data_dirs:
            data_dir.mkdir(parents=True, exist_ok=True)
            clean = clean_dirs[data_dir] = (data_dir / CLEAN_SHUTDOWN_FILE).exists()
            for entry in sorted(os.listdir(data_dir)):
                path = data_dir / entry
                if not path.is_dir():
                    continue
                if entry.endswith(DELETE_DIR_SUFFIX):
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                if (key := parse_suffixed_dir(entry, FUTURE_DIR_SUFFIX)) is not None:
                    futures.append((key, path))
                    continue
                if (key := parse_suffixed_dir(entry, MOVED_DIR_SUFFIX)) is not None:
                    moved.append((key, path))
                    continue
                parsed = parse_partition_dir(entry)
                if parsed is None:
                    continue
                other = self._logs.get(parsed)
                if other is not None:
                    raise StorageError(f"partition {entry} is in two data directories: {other.directory} and {path}")
                self._logs[parsed] = self._open_log(path, parsed, clean)
        self._recover_moves(futures, moved, clean_dirs)
        # From here on a crash is unclean until close() writes the marker again.
        for data_dir in self.data_dirs:
            (data_dir / CLEAN_SHUTDOWN_FILE).unlink(missing_ok=True)
            if self._sync:
                fsync_dir(data_dir)
        self.loaded_clean = all(clean_dirs.values())
        log.info(
            "log_manager.loaded",
            data_dir=str(self.data_dir) if len(self.data_dirs) == 1 else [str(d) for d in self.data_dirs],
            partitions=len(self._logs),
            moving=len(self._futures),
            clean=self.loaded_clean,
            ms=round((time.perf_counter() - t0) * 1000, 1),
        )

    def _recover_moves(
        self,
        futures: list[tuple[tuple[str, int], Path]],
        moved: list[tuple[tuple[str, int], Path]],
        clean_dirs: dict[Path, bool],
    ) -> None:
        """Moves a restart interrupted. A `-moved` source with its partition in place: the swap was done,
        the source goes. A `-moved` source with a `-future` copy: the copy was complete and flushed
        before the source was renamed, so the swap is finished. A `-future` copy beside its partition:
        the move goes on from where the copy ends. Anything else is left over and goes."""
        pending = {key: path for key, path in futures}
        for key, path in moved:
            if key not in self._logs and key in pending:
                copy = pending.pop(key)
                final = copy.parent / f"{key[0]}-{key[1]}"
                os.replace(copy, final)
                if self._sync:
                    fsync_dir(copy.parent)
                self._logs[key] = self._open_log(final, key, clean_dirs[copy.parent])
                log.warning("log_manager.move_finished_at_start", partition=f"{key[0]}-{key[1]}", dir=str(copy.parent))
            elif key not in self._logs:  # no copy: the source is the partition (not expected)
                final = path.parent / f"{key[0]}-{key[1]}"
                os.replace(path, final)
                self._logs[key] = self._open_log(final, key, clean_dirs[path.parent])
                continue
            shutil.rmtree(path, ignore_errors=True)
        for key, path in pending.items():
            current = self._logs.get(key)
            if current is None or current.directory.parent == path.parent or key in self._futures:
                shutil.rmtree(path, ignore_errors=True)
                continue
            self._futures[key] = FutureLog(self._open_log(path, key, clean_dirs[path.parent]), path.parent)
            log.info("log_manager.move_resumed", partition=f"{key[0]}-{key[1]}", dest=str(path.parent))

    # -- data directories ----------------------------------------------------------

    def dir_of(self, plog: PartitionLog) -> Path:
        """The data directory holding `plog`."""
        return plog.directory.parent

    def health_of(self, plog: PartitionLog) -> LogDirHealth:
        return self.healths.get(plog.directory.parent, self.health)

    def find_dir(self, path: str) -> Path | None:
        """The data directory whose absolute path is `path` as written (Kafka compares it as sent: no
        trailing slash, no relative path), else None."""
        for d in self.data_dirs:
            if os.path.abspath(d) == path:
                return d
        return None

    def _count(self) -> dict[Path, int]:
        """Partitions per directory. Called from NewLogs' worker thread while the event loop adds and
        removes logs: each dict is copied first (list() of a dict view holds the GIL throughout)."""
        counts = dict.fromkeys(self.data_dirs, 0)
        for plog in list(self._logs.values()):
            counts[plog.directory.parent] = counts.get(plog.directory.parent, 0) + 1
        for fut in list(self._futures.values()):
            counts[fut.dest] = counts.get(fut.dest, 0) + 1
        for d in list(self._placing.values()):
            counts[d] = counts.get(d, 0) + 1
        return counts

    def _place(self, key: tuple[str, int]) -> Path:
        """The directory a new partition goes to: the one AlterReplicaLogDirs named for it, else the online
        directory with the fewest partitions (ties: the first in log.dirs); reserved until `adopt`."""
        with self._place_lock:
            chosen = self._preferred.pop(key, None)
            if chosen is None and len(self.data_dirs) == 1:
                chosen = self.data_dirs[0]
            elif chosen is None or not self.healths[chosen].online:
                online = [d for d in self.data_dirs if self.healths[d].online] or self.data_dirs
                counts = self._count()
                chosen = min(online, key=lambda d: counts[d])
            self._placing[key] = chosen
            return chosen

    def prefer_dir(self, topic: str, partition: int, dest: Path) -> None:
        """Where the partition's log goes when it is created here later (AlterReplicaLogDirs first)."""
        self._preferred[(topic, partition)] = dest

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
        if (topic, partition) in self._logs:
            raise LogExistsError(f"{topic}-{partition}")
        return self.adopt(self.prepare(topic, partition, config, topic_id=topic_id))

    def prepare(
        self,
        topic: str,
        partition: int,
        config: LogConfig | None = None,
        *,
        topic_id: uuid.UUID | None = None,
    ) -> PartitionLog:
        """A new partition log's files, not yet served (`adopt` it). File work only, touching nothing the
        manager holds but the placement (under a lock), so it may run in a worker thread: creating
        thousands of logs costs seconds of fsyncs that must not stall the event loop."""
        if not topic or topic in (".", "..") or "/" in topic:
            raise StorageError(f"invalid topic name {topic!r}")
        key = (topic, partition)
        data_dir = self._place(key)
        try:
            plog = PartitionLog(
                data_dir / f"{topic}-{partition}",
                config or self.config_for(topic),
                sync=self._sync,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                auto_high_watermark=self.auto_high_watermark,
            )
            if topic_id is not None:
                self.write_topic_id(plog, topic_id)
            if self._sync:
                fsync_dir(data_dir)
        except BaseException:
            with self._place_lock:
                self._placing.pop(key, None)
            raise
        return plog

    def adopt(self, plog: PartitionLog) -> PartitionLog:
        """Serve a log made by `prepare` (on the event loop)."""
        key = (plog.topic, plog.partition)
        with self._place_lock:
            self._placing.pop(key, None)
        if key in self._logs:
            raise LogExistsError(f"{plog.topic}-{plog.partition}")
        plog.flush_listener = self.activity.flushed
        plog.dir_listener = self.health_of(plog).report
        self._logs[key] = plog
        log.info("log_manager.created", topic=plog.topic, partition=plog.partition, dir=str(plog.directory.parent))
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

    def delete_many(self, keys: Iterable[tuple[str, int]]) -> int:
        """delete() each of `keys` (those present), each data dir synced once for all of them."""
        dirs: set[Path] = set()
        done = 0
        for topic, partition in keys:
            plog = self._logs.get((topic, partition))
            if plog is not None and self.delete(topic, partition, sync_dir=False):
                dirs.add(plog.directory.parent)
                done += 1
        if self._sync:
            for d in sorted(dirs):
                fsync_dir(d)
        return done

    def delete(self, topic: str, partition: int, *, sync_dir: bool = True) -> bool:
        """Remove a partition log: rename to `<dir>.<uuid>-delete`, unlink later (a move in flight is dropped)."""
        self._drop_future((topic, partition))
        plog = self._logs.pop((topic, partition), None)
        if plog is None:
            return False
        self._checkpointed_hw.pop((topic, partition), None)
        target = plog.directory.with_name(delete_dir_name(topic, partition))
        os.replace(plog.directory, target)
        if self._sync and sync_dir:
            fsync_dir(target.parent)
        delay = plog.config.file_delete_delay_ms
        self._pending_dir_deletes.append(_PendingDirDelete(plog, target, now_ms() + delay))
        log.info("log_manager.deleted", topic=topic, partition=partition, renamed=target.name)
        return True

    def update_config(self, topic: str, config: LogConfig) -> None:
        """Apply new topic configs to the topic's open logs (takes effect at once)."""
        for (t, _), plog in self._logs.items():
            if t == topic:
                plog.config = config
        for (t, _), fut in self._futures.items():
            if t == topic:
                fut.log.config = config

    # -- moves between data directories (AlterReplicaLogDirs) ------------------------

    def future(self, topic: str, partition: int) -> FutureLog | None:
        return self._futures.get((topic, partition))

    def futures(self) -> list[tuple[tuple[str, int], FutureLog]]:
        return sorted(self._futures.items(), key=lambda kv: kv[0])

    @property
    def moving(self) -> bool:
        return bool(self._futures)

    def move(self, topic: str, partition: int, dest: Path) -> bool:
        """Move the partition's log to data directory `dest`; True when a copy was started. A move to
        another directory replaces the one in flight; a move to where the log is cancels it. Raises
        KeyError when the partition has no log here, LogDirError when a data directory is offline (no
        copy is started then, as in Kafka, so that none is made twice)."""
        key = (topic, partition)
        current = self._logs[key]
        fut = self._futures.get(key)
        if fut is not None and fut.dest == dest:
            return False
        self._drop_future(key)
        if current.directory.parent == dest:
            return False
        offline = [h for h in self.healths.values() if not h.online]
        if offline:
            raise LogDirError(str(offline[0].data_dir), None, "log dir is offline")
        path = dest / future_dir_name(topic, partition)
        try:
            copy = self._open_log(path, key, True)
            first = current.segments[0].base_offset
            if first > 0:
                copy.truncate_fully_and_start_at(first)
            meta = current.directory / PARTITION_METADATA_FILE
            if meta.exists():
                write_atomic(path / PARTITION_METADATA_FILE, meta.read_bytes(), sync=self._sync)
            if self._sync:
                fsync_dir(dest)
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            err = LogDirError.from_os(exc, exc.filename or dest)
            self.healths[dest].report(err)
            raise err from exc
        self._futures[key] = FutureLog(copy, dest)
        log.info(
            "log_manager.move_started",
            partition=f"{topic}-{partition}",
            source=str(current.directory.parent),
            dest=str(dest),
        )
        return True

    def _drop_future(self, key: tuple[str, int]) -> None:
        fut = self._futures.pop(key, None)
        if fut is not None:
            fut.log.delete()
            log.info("log_manager.move_cancelled", partition=f"{key[0]}-{key[1]}", dest=str(fut.dest))

    def copy_futures(self, max_bytes: int = MOVE_CHUNK) -> bool:
        """Copy up to `max_bytes` into each future log and swap those caught up; True while moves remain.
        Runs on the event loop, between appends, so a caught-up copy stays caught up until the swap."""
        for key, fut in list(self._futures.items()):
            current = self._logs.get(key)
            if current is None:
                self._drop_future(key)
                continue
            try:
                if self._copy_step(current, fut.log, max_bytes) and key not in self._compacting:
                    self._swap(key, current, fut)
            except LogDirError:
                pass  # told to that directory's health; tried again next time
            except OffsetOutOfRangeError:
                pass  # retention moved the log start while we read: next time from the new start
        return bool(self._futures)

    def _copy_step(self, current: PartitionLog, copy: PartitionLog, max_bytes: int) -> bool:
        """One read of the current log appended to the copy; True when the copy has it all."""
        end = copy.log_end_offset
        epoch = copy.latest_epoch
        if epoch >= 0:  # the current log was truncated and rewritten (a follower): the copy follows
            _, epoch_end = current.end_offset_for_epoch(epoch)
            if 0 <= epoch_end < end:
                copy.truncate_to(epoch_end)
        if copy.log_end_offset > current.log_end_offset:
            copy.truncate_to(current.log_end_offset)
        start = max(copy.log_end_offset, current.log_start_offset)
        if start < current.log_end_offset:
            data = current.read_bytes(start, max_bytes)
            pos = 0
            for at, header in iter_batches(data):  # whole batches from the copy's end on
                if header.base_offset + header.last_offset_delta >= copy.log_end_offset:
                    pos = at
                    break
            else:
                pos = len(data)
            end = split_complete(data, pos) + pos
            if end > pos:
                copy.append_as_follower(memoryview(data)[pos:end])
        return copy.log_end_offset >= current.log_end_offset

    def _swap(self, key: tuple[str, int], current: PartitionLog, fut: FutureLog) -> None:
        """The copy has the whole log: it becomes the partition's log (see the module docstring). A rename
        the file system refuses puts the source back and drops the copy (the partition stays where it
        was, its dir's health is told)."""
        copy = fut.log
        for entry in current.epoch_cache.entries:  # epochs begun with no batch yet
            if entry.epoch > copy.latest_epoch:
                copy.epoch_cache.assign(entry.epoch, entry.start_offset)
        current.flush()
        copy.close()
        source = current.directory
        moved = source.with_name(f"{key[0]}-{key[1]}.{uuid.uuid4().hex}{MOVED_DIR_SUFFIX}")
        final = fut.dest / f"{key[0]}-{key[1]}"
        renamed = False
        try:
            # the copy is complete and flushed before the source is renamed: a crash from here on
            # finishes the move at start (_recover_moves)
            os.replace(source, moved)
            renamed = True
            if self._sync:
                fsync_dir(source.parent)
            os.replace(copy.directory, final)
        except OSError as exc:
            if renamed:
                os.replace(moved, source)
            del self._futures[key]
            shutil.rmtree(copy.directory, ignore_errors=True)
            log.error("log_manager.move_failed", partition=f"{key[0]}-{key[1]}", dest=str(fut.dest), error=str(exc))
            self.healths[fut.dest].report(LogDirError.from_os(exc, exc.filename or fut.dest))
            return
        del self._futures[key]
        if self._sync:
            try:
                fsync_dir(fut.dest)
            except OSError as exc:  # the rename is done; a crash may undo it, which the start handles
                self.healths[fut.dest].report(LogDirError.from_os(exc, exc.filename or fut.dest))
        fresh = self._open_log(final, key, True)
        current.swap_storage(fresh)  # `fresh` holds the old files now, kept open for reads in flight
        current.dir_listener = self.healths[fut.dest].report
        self._checkpointed_hw.pop(key, None)
        delay = current.config.file_delete_delay_ms
        self._pending_dir_deletes.append(_PendingDirDelete(fresh, moved, now_ms() + delay))
        log.info(
            "log_manager.moved",
            partition=f"{key[0]}-{key[1]}",
            source=str(source.parent),
            dest=str(fut.dest),
            log_end_offset=current.log_end_offset,
        )

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
                plog = self._logs.get(key)
                health = self.health_of(plog) if plog is not None else self.health
                if isinstance(exc, OSError):
                    health.report(LogDirError.from_os(exc, exc.filename or health.data_dir))
                elif exc is not None:
                    log.error("log_manager.compaction_failed", partition=f"{key[0]}-{key[1]}", error=repr(exc))
                else:
                    result.compaction_results.append(fut.result())
                    self.activity.cleaned(fut.result())
        run_retention = now - self._last_retention_ms >= self._retention_interval_ms
        if run_retention:
            self._last_retention_ms = now
        run_checkpoint = now - self._last_checkpoint_ms >= self._checkpoint_interval_ms
        if run_checkpoint:
            self._last_checkpoint_ms = now
        expire_producers = now - self._last_producer_check_ms >= self._producer_check_interval_ms
        if expire_producers:
            self._last_producer_check_ms = now
        activity = self.activity
        if run_retention:
            activity.cleaner_last_check_ms = now
            activity.max_dirty_percent = 0
        for health in self.healths.values():
            health.check()
        for key, plog in list(self._logs.items()):
            try:
                self._tick_log(key, plog, now, result, run_retention, run_checkpoint, expire_producers)
            except LogDirError:
                pass  # told to the dir's health (one log line per state change); retried at the next tick
        for health in self.healths.values():
            health.tell()
        return result

    def _tick_log(
        self,
        key: tuple[str, int],
        plog: PartitionLog,
        now: int,
        result: TickResult,
        run_retention: bool,
        run_checkpoint: bool,
        expire_producers: bool,
    ) -> None:
        activity = self.activity
        try:
            result.files_purged += plog.purge_deleted(now)
        except OSError as exc:
            raise plog.disk_error(exc) from exc
        if expire_producers:
            plog.producer_state.remove_expired(now)
        if run_retention:
            deleted = plog.apply_retention(now)
            result.segments_deleted += deleted
            activity.retention_deleted_segments += deleted
            if plog.config.compact and key not in self._compacting and self.health_of(plog).online:
                dirty = dirty_ratio(plog)
                activity.max_dirty_percent = max(activity.max_dirty_percent, int(100 * dirty))
                if dirty >= plog.config.min_cleanable_dirty_ratio:
                    self._start_compaction(key, plog, now, result)
        if plog.maybe_flush(now) or plog.flush_rolled_segments():
            result.flushed += 1
        elif run_checkpoint and self._checkpointed_hw.get(key) != plog.high_watermark:
            plog.checkpoint()
        self._checkpointed_hw[key] = plog.high_watermark

    def _start_compaction(self, key: tuple[str, int], plog: PartitionLog, now: int, result: TickResult) -> None:
        result.compactions_started += 1
        if self._executor is None:
            try:
                result.compaction_results.append(plog.compact(now))
                self.activity.cleaned(result.compaction_results[-1])
            except OSError as exc:  # a full disk: the run left the log as it was
                self.health_of(plog).report(LogDirError.from_os(exc, exc.filename or plog.directory.parent))
            except LogDirError:
                pass  # already told to the dir's health
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
        """Flush and close every log (and copy in flight, resumed at the next start), then write each
        data directory's clean-shutdown marker."""
        if self._closed:
            return
        for fut in self._compacting.values():
            fut.cancel()
            try:
                fut.result()
            except BaseException:  # cancelled or failed: nothing was swapped in
                pass
        self._compacting.clear()
        unclean: set[Path] = set()
        for plog in [*self._logs.values(), *(f.log for f in self._futures.values())]:
            try:
                plog.close()
            except LogDirError:
                unclean.add(plog.directory.parent)  # not flushed: closed as they are, recovered at start
                plog.delete_files_only()
        try:
            self._purge_deleted_dirs(0, force=True)
        except OSError as exc:
            self.health.report(LogDirError.from_os(exc, exc.filename or self.data_dir))
            unclean.add(self.data_dir)
        for data_dir in self.data_dirs:
            if data_dir in unclean:
                continue
            try:
                write_atomic(data_dir / CLEAN_SHUTDOWN_FILE, b"", sync=self._sync)
            except OSError as exc:
                self.healths[data_dir].report(LogDirError.from_os(exc, exc.filename or data_dir))
                unclean.add(data_dir)
        self._closed = True
        log.info(
            "log_manager.closed",
            data_dir=str(self.data_dir) if len(self.data_dirs) == 1 else [str(d) for d in self.data_dirs],
            clean=not unclean,
        )
