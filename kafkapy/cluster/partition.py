"""A partition this broker leads, as every handler and coordinator sees it.

`ReplicaManager.partition(topic, index, current_leader_epoch)` is the one
place that answers "am I the leader at this epoch": it returns a
`Partition`, or the Kafka error code (NOT_LEADER_OR_FOLLOWER,
FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION).
A Partition is made once per leadership (it carries that leader epoch) and
is dropped when the broker stops leading; holding one past that only
answers NOT_LEADER_OR_FOLLOWER from its waits.

On a single broker every partition is led here with replication factor 1,
so the same calls serve: `wait_replicated` answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log import AppendResult, PartitionLog, ReadResult
from kafkapy.storage.log_validator import Policy


class FetchIsolation(IntEnum):
    """How far a read may go (Kafka's FetchIsolation)."""

    LOG_END = 0  # followers: everything the leader has
    HIGH_WATERMARK = 1  # consumers, read_uncommitted
    TXN_COMMITTED = 2  # consumers, read_committed: up to the last stable offset


class NotEnoughReplicasError(Exception):
    """acks=all refused before appending: the ISR is smaller than min.insync.replicas."""

    def __init__(self, topic: str, index: int, isr: list[int], min_isr: int) -> None:
        super().__init__(
            f"The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement "
            f"of {min_isr} for partition {topic}-{index}"
        )


class Replication(Protocol):
    """What a Partition asks of the replica manager that made it."""

    def isr(self, topic: str, index: int) -> list[int]: ...

    def min_isr(self, topic: str) -> int: ...

    async def wait_replicated(self, topic: str, index: int, end_offset: int, timeout_ms: int, min_isr: int) -> int: ...

    async def wait_low_watermark(self, topic: str, index: int, offset: int, timeout_ms: int) -> int: ...


@dataclass(slots=True, eq=False)
class Partition:
    topic: str
    index: int
    log: PartitionLog
    leader_epoch: int
    replication: Replication
    # LogValidator's view of the log's config, rebuilt when the config object changes
    _policy: tuple[LogConfig, Policy] | None = field(default=None, repr=False)

    # ------------------------------------------------------------ state

    @property
    def validation_policy(self) -> Policy:
        cfg = self.log.config
        cached = self._policy
        if cached is None or cached[0] is not cfg:
            cached = self._policy = (cfg, Policy.of(cfg))
        return cached[1]

    @property
    def isr(self) -> list[int]:
        return self.replication.isr(self.topic, self.index)

    @property
    def min_isr(self) -> int:
        return self.replication.min_isr(self.topic)

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # ------------------------------------------------------------ writes

    def check_min_isr(self) -> None:
        isr, min_isr = self.isr, self.min_isr
        if len(isr) < min_isr:
            raise NotEnoughReplicasError(self.topic, self.index, isr, min_isr)

    def append(self, records: bytearray | memoryview, *, acks: int = 1) -> AppendResult:
        """Append validated batches as leader (offsets assigned in place, stamped with this leader
        epoch). acks=-1 is refused with NotEnoughReplicasError below min.insync.replicas, before
        anything is written; the log raises ProducerStateError and StorageError as it does."""
        if acks == -1:
            self.check_min_isr()
        return self.log.append(records, leader_epoch=self.leader_epoch)

    def replicated(self, end_offset: int) -> int | None:
        """acks=all's answer if the high watermark already reached `end_offset` (always so on a single
        broker), else None: then `wait_replicated`."""
        if self.log.high_watermark < end_offset:
            return None
        return ErrorCode.NONE if len(self.isr) >= self.min_isr else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND

    async def wait_replicated(self, end_offset: int, timeout_ms: int) -> int:
        """acks=all: NONE once the high watermark reaches `end_offset` with the ISR at or above
        min.insync.replicas; else REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER or
        NOT_ENOUGH_REPLICAS_AFTER_APPEND (as Kafka's error codes)."""
        code = self.replicated(end_offset)
        if code is not None:
            return code
        return await self.replication.wait_replicated(self.topic, self.index, end_offset, timeout_ms, self.min_isr)

    def delete_records_before(self, offset: int) -> int:
        """Move the log start to `offset` (OffsetOutOfRangeError past the high watermark)."""
        return self.log.delete_records_before(offset)

    async def wait_log_start(self, offset: int, timeout_ms: int) -> int:
        """DeleteRecords: NONE once every live replica's log start reached `offset`."""
        return await self.replication.wait_low_watermark(self.topic, self.index, offset, timeout_ms)

    # ------------------------------------------------------------ reads

    def read(self, offset: int, max_bytes: int, isolation: FetchIsolation, *, min_one_message: bool) -> ReadResult:
        """File slices from `offset`, up to the bound `isolation` sets (OffsetOutOfRangeError)."""
        log = self.log
        if isolation == FetchIsolation.HIGH_WATERMARK:
            upper: int | None = log.high_watermark
        elif isolation == FetchIsolation.TXN_COMMITTED:
            upper = log.last_stable_offset
        else:
            upper = None
        return log.read(offset, max_bytes, max_offset=upper, min_one_message=min_one_message)

    def end_offset_for_epoch(self, requested: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch as Kafka's leader answers (`end_offset_for_epoch`)."""
        return end_offset_for_epoch(self.log, requested, self.leader_epoch)


def end_offset_for_epoch(log: PartitionLog, requested: int, current: int) -> tuple[int, int]:
    """(epoch, end offset) of `requested` in a log whose leader epoch is `current`; (-1, -1) for an
    epoch above the current one.

    Kafka's leader records its own epoch at the log end when it takes over, even before it appends
    anything; the epoch cache only learns epochs from appends, so that entry is implied."""
    latest = log.latest_epoch
    if latest < current and requested > latest:
        if requested > current:
            return -1, -1
        if requested == current or latest == -1:
            return requested, log.log_end_offset
        return latest, log.log_end_offset  # the largest known epoch below the requested one
    return log.end_offset_for_epoch(requested)
