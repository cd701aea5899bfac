"""Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447) for the group coordinator.

A TxnOffsetCommit is written to the group's `__consumer_offsets` partition
as a transactional batch of the producer (no sequence; `from_coordinator`
appends are checked by epoch only, so a fenced producer's commit fails with
INVALID_PRODUCER_EPOCH). Its offsets stay pending, invisible to OffsetFetch
(and reported as UNSTABLE_OFFSET_COMMIT to `require_stable` fetches) until
the transaction's marker lands on that partition: COMMIT makes them the
group's committed offsets, ABORT drops them. Loading replays the same
records and markers, so pending and committed offsets survive a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from kafkapy.clock import now_ms
from kafkapy.cluster.partition import Partition
from kafkapy.coordinator.records import (
    OffsetKey,
    OffsetValue,
    encode_key,
    encode_offset_value,
)
from kafkapy.protocol.records import build_batch

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PendingTxnOffsets:
    """Offsets of open transactions: producer id -> group -> partition -> offset."""

    by_producer: dict[int, dict[str, dict[TopicPartition, OffsetValue]]] = field(default_factory=dict)

    def add(self, producer_id: int, group: str, commits: Iterable[tuple[TopicPartition, OffsetValue]]) -> None:
        offsets = self.by_producer.setdefault(producer_id, {}).setdefault(group, {})
        for tp, v in commits:
            offsets[tp] = v

    def complete(
        self, producer_id: int, offsets_partition: int, partition_of: Callable[[str], int]
    ) -> list[tuple[OffsetKey, OffsetValue]]:
        """Take the producer's pending offsets of groups on `offsets_partition` (a marker landed there)."""
        groups = self.by_producer.get(producer_id)
        if not groups:
            return []
        out: list[tuple[OffsetKey, OffsetValue]] = []
        for group in [g for g in groups if partition_of(g) == offsets_partition]:
            for (t, p), v in groups.pop(group).items():
                out.append((OffsetKey(group, t, p), v))
        if not groups:
            del self.by_producer[producer_id]
        return out

    def has_pending(self, group: str, tp: TopicPartition) -> bool:
        return any(tp in groups.get(group, ()) for groups in self.by_producer.values())

    def pending_groups(self) -> set[str]:
        return {g for groups in self.by_producer.values() for g in groups}


class OffsetsPartitions(Protocol):
    """What writing a TxnOffsetCommit needs of the group coordinator."""

    @property
    def txn_offsets(self) -> PendingTxnOffsets: ...

    def partition_of(self, key: str) -> int: ...

    def append_target(self, partition: int) -> Partition: ...


def write_txn_offsets(
    coord: OffsetsPartitions,
    group_id: str,
    producer_id: int,
    producer_epoch: int,
    commits: list[tuple[str, int, OffsetValue]],
) -> None:
    """Append the commit as the producer's transactional batch, then hold it as pending.

    Raises CoordinatorWriteError when this broker does not lead the group's partition, and the
    log's errors (ProducerStateError for a stale epoch, StorageError).
    """
    part = coord.append_target(coord.partition_of(group_id))
    ts = now_ms()
    recs: list[tuple[bytes, bytes | None, list[tuple[str, bytes | None]], int]] = [
        (encode_key(OffsetKey(group_id, t, part_index)), encode_offset_value(v), [], ts) for t, part_index, v in commits
    ]
    batch = build_batch(recs, producer_id=producer_id, producer_epoch=producer_epoch, is_transactional=True)
    part.log.append(bytearray(batch), leader_epoch=part.leader_epoch, from_coordinator=True)
    coord.txn_offsets.add(producer_id, group_id, [((t, part_index), v) for t, part_index, v in commits])
