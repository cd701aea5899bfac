"""Logs for many new partitions at once, made off the event loop.

A new log costs a few fsyncs (its checkpoint, its topic id, the data dir): tens
of milliseconds on an ordinary disk, so a topic of thousands of partitions would
stall the event loop for seconds or minutes if its logs were made inline, long
enough for the broker's etcd lease to lapse. When one batch of metadata changes
needs more than INLINE new logs, `NewLogs` makes them in a worker thread, in
chunks, and serves each chunk on the event loop with the partition's state as
the metadata holds it then (not as it was when the batch came: later changes to
a pending partition are not applied before its log exists, they are folded in).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.logging import get_logger

if TYPE_CHECKING:
    from kafkapy.cluster.view import MetadataStore
    from kafkapy.storage.config import LogConfig
    from kafkapy.storage.log import PartitionLog
    from kafkapy.storage.log_manager import LogManager

log = get_logger(__name__)

INLINE = 16  # new logs one batch of changes makes on the event loop
CHUNK = 64  # new logs per worker-thread call


@dataclass(slots=True)
class NewLogs:
    logs: LogManager
    metadata: MetadataStore
    node_id: int
    log_config: Callable[[str], LogConfig]  # topic -> its log config
    apply: Callable[[str, PartitionInfo], None]  # serve a partition whose log now exists
    pending: set[tuple[str, int]] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, partitions: list[tuple[str, PartitionInfo]]) -> None:
        """Make logs for `partitions` (none of them pending) in the background."""
        keys = [(topic, p.index) for topic, p in partitions]
        self.pending.update(keys)
        task = asyncio.get_running_loop().create_task(self._make(keys))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("creating logs in the background", partitions=len(keys))

    def _prepare(
        self, jobs: list[tuple[str, int, LogConfig, uuid.UUID | None]]
    ) -> list[tuple[str, int, uuid.UUID | None, PartitionLog | Exception]]:
        """In a worker thread: file work only."""
        out: list[tuple[str, int, uuid.UUID | None, PartitionLog | Exception]] = []
        for topic, index, cfg, topic_id in jobs:
            try:
                out.append((topic, index, topic_id, self.logs.prepare(topic, index, cfg, topic_id=topic_id)))
            except Exception as e:  # a full or failing disk: retried on the partition's next change
                out.append((topic, index, topic_id, e))
        return out

    async def _make(self, keys: list[tuple[str, int]]) -> None:
        try:
            for i in range(0, len(keys), CHUNK):
                jobs = []
                for topic, index in keys[i : i + CHUNK]:
                    info = self.metadata.topic(topic)
                    jobs.append((topic, index, self.log_config(topic), info.topic_id if info else None))
                for topic, index, topic_id, made in await asyncio.to_thread(self._prepare, jobs):
                    self.pending.discard((topic, index))
                    if isinstance(made, Exception):
                        log.error("log not created", topic=topic, partition=index, error=repr(made))
                        continue
                    self._serve(topic, index, topic_id, made)
        finally:
            self.pending.difference_update(keys)

    def _serve(self, topic: str, index: int, topic_id: uuid.UUID | None, plog: PartitionLog) -> None:
        info = self.metadata.topic(topic)
        p = info.partitions[index] if info is not None and index < len(info.partitions) else None
        if self.logs.get(topic, index) is not None:
            plog.close()
            return
        self.logs.adopt(plog)
        if info is None or p is None or (self.node_id not in p.replicas and self.node_id not in p.adding_replicas):
            self.logs.delete(topic, index)  # deleted or moved away meanwhile
            return
        if info.topic_id != topic_id:  # the topic was made again meanwhile
            self.logs.write_topic_id(plog, info.topic_id)
        self.apply(topic, p)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
