"""What the group and transaction coordinators share: where a key lives and how its partition is written.

A key (group id, transactional id) maps to one partition of the coordinator's
internal topic (Kafka's `abs(key.hashCode) % partitions`); the broker leading
that partition coordinates the key. Records are appended to the partition as
its leader, through the replica manager's `Partition`, and an answer that
must not run ahead of replication waits with `written`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from kafkapy.clock import now_ms
from kafkapy.cluster.metadata import BrokerInfo
from kafkapy.cluster.partition import Partition
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.records import BatchHeader, Record, iter_all_records
from kafkapy.storage.errors import StorageError
from kafkapy.storage.log import PartitionLog

log = get_logger(__name__)

_LOAD_CHUNK = 1 << 20
_INT_MIN = -(2**31)


class CoordinatorWriteError(Exception):
    """A coordinator partition could not be written; `code` is the Kafka error of the cause."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def java_string_hashcode(s: str) -> int:
    """Java's String.hashCode over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """Kafka's `Utils.abs(key.hashCode) % partitions` (abs(MIN_VALUE) is 0)."""
    h = java_string_hashcode(key)
    return (0 if h == _INT_MIN else abs(h)) % partitions


def store_error(code: int, *, timed_out: int = ErrorCode.REQUEST_TIMED_OUT) -> int:
    """Kafka's mapping of a coordinator append error to the answer (GroupMetadataManager):
    too few replicas -> COORDINATOR_NOT_AVAILABLE, leadership lost -> NOT_COORDINATOR."""
    if code in (
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if code in (
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
    ):
        return ErrorCode.NOT_COORDINATOR
    if code == ErrorCode.REQUEST_TIMED_OUT:
        return timed_out
    return code


def replay_records(plog: PartitionLog) -> Iterator[tuple[BatchHeader, Record]]:
    """Every record of a coordinator partition, log start to log end, read in chunks (loading)."""
    offset, end = plog.log_start_offset, plog.log_end_offset
    while offset < end:
        data = plog.read_bytes(offset, _LOAD_CHUNK)
        if not data:
            return
        nxt = offset
        for header, rec in iter_all_records(data):
            nxt = max(nxt, header.next_offset)
            if rec.offset >= offset:  # a chunk may start inside a compressed batch read before
                yield header, rec
        if nxt <= offset:
            return
        offset = nxt


async def run_timers(
    wake: asyncio.Event, next_deadline: Callable[[int], int], fire: Callable[[int], None], what: str
) -> None:
    """A coordinator's timer task: `fire(now)` at each `next_deadline(now)`, or sooner when `wake` is set."""
    while True:
        now = now_ms()
        nxt = next_deadline(now)
        wake.clear()
        if nxt > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), (nxt - now) / 1000)
        try:
            fire(now_ms())
        except CoordinatorWriteError as e:  # e.g. a full disk: retried at the next deadline
            log.warning(f"{what} timers could not write", error=str(e))
        except Exception:
            log.exception(f"{what} timers failed")


@dataclass(slots=True)
class Placement:
    """The internal topic of one coordinator: placement of keys, appends as leader, and the tasks
    the coordinator owns (cancelled by `close`). Subclasses set TOPIC."""

    TOPIC: ClassVar[str]

    replicas: ReplicaManager
    metadata: MetadataStore
    config: BrokerConfig
    num_partitions: int = 50
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def node_id(self) -> int:
        return self.replicas.node_id

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run `coro` as a task this coordinator owns."""
        self.tasks.append(asyncio.get_running_loop().create_task(coro))

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()

    def ensure_topic(self, partitions: int, configured_rf: int, rf_key: str, configs: dict[str, str]) -> None:
        """Learn the internal topic's partition count, creating the topic when it is missing
        (at once on one broker; in the background in a cluster: NOT_COORDINATOR until then)."""
        info = self.metadata.topic(self.TOPIC)
        if info is not None:
            self.num_partitions = len(info.partitions)
            return
        self.num_partitions = partitions
        rf = self.metadata.internal_replication_factor(configured_rf, rf_key in self.config.explicit)
        self.metadata.ensure_internal_topic(self.TOPIC, partitions, rf, configs)

    # ------------------------------------------------------------ placement

    def partition_of(self, key: str) -> int:
        return partition_for(key, self.num_partitions)

    def partition(self, partition: int) -> Partition | int:
        """The partition if this broker leads it, else the Kafka error code."""
        return self.replicas.partition(self.TOPIC, partition)

    def _owns_partition(self, partition: int) -> bool:
        return isinstance(self.partition(partition), Partition)

    def owns(self, key: str) -> bool:
        return self._owns_partition(self.partition_of(key))

    def owned_partitions(self) -> list[int]:
        return [p for p in range(self.num_partitions) if self._owns_partition(p)]

    def coordinator_node(self, key: str) -> BrokerInfo | None:
        """The broker leading the key's partition of the internal topic."""
        info = self.metadata.topic(self.TOPIC)
        if info is None:
            return None
        leader = info.partitions[self.partition_of(key)].leader
        if leader == self.node_id:
            return self.metadata.broker
        return self.metadata.broker_info(leader)

    def coordinator_epoch(self, key: str) -> int:
        """The leader epoch of the key's partition (a transaction marker's coordinator epoch)."""
        part = self.partition(self.partition_of(key))
        if isinstance(part, Partition):
            return max(part.leader_epoch, 0)
        info = self.metadata.topic(self.TOPIC)
        p = self.partition_of(key)
        return max(info.partitions[p].leader_epoch, 0) if info is not None and p < len(info.partitions) else 0

    # ------------------------------------------------------------ writes

    def append_target(self, partition: int) -> Partition:
        """The partition to append to; CoordinatorWriteError when this broker does not lead it."""
        part = self.partition(partition)
        if isinstance(part, int):
            raise CoordinatorWriteError(part, f"{self.TOPIC}-{partition} is not led by this broker")
        return part

    def append_records(self, partition: int, batch: bytearray) -> None:
        """Append a batch to the partition as its leader; CoordinatorWriteError when this broker does
        not lead it or its disk refuses the write (KAFKA_STORAGE_ERROR, which a request answers as
        NOT_COORDINATOR: `store_error`)."""
        part = self.append_target(partition)
        try:
            part.append(batch)
        except StorageError as e:
            raise CoordinatorWriteError(ErrorCode.KAFKA_STORAGE_ERROR, str(e)) from e

    async def written_code(self, key: str, timeout_ms: int) -> int:
        """Wait until the high watermark of the key's partition covers every record appended so far
        (acks=all for coordinator writes); the Kafka error code. At once on a single broker."""
        part = self.partition(self.partition_of(key))
        if isinstance(part, int):
            return part
        return await part.wait_replicated(part.log_end_offset, timeout_ms)
