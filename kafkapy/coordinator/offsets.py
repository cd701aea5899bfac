"""Committed offsets per group, changed only by replaying `__consumer_offsets` records.

`commit_records`/`delete_records`/`expire_records` only compute records;
`apply` (called for live writes and for loading alike) changes the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kafkapy.coordinator.records import OffsetKey, OffsetValue

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class OffsetStore:
    groups: dict[str, dict[TopicPartition, OffsetValue]] = field(default_factory=dict)

    def apply(self, key: OffsetKey, value: OffsetValue | None) -> None:
        tp = (key.topic, key.partition)
        if value is None:
            offsets = self.groups.get(key.group)
            if offsets is not None:
                offsets.pop(tp, None)
                if not offsets:
                    del self.groups[key.group]
            return
        self.groups.setdefault(key.group, {})[tp] = value

    def get(self, group: str, topic: str, partition: int) -> OffsetValue | None:
        offsets = self.groups.get(group)
        return None if offsets is None else offsets.get((topic, partition))

    def of_group(self, group: str) -> dict[TopicPartition, OffsetValue]:
        return self.groups.get(group, {})

    def has_offsets(self, group: str) -> bool:
        return bool(self.groups.get(group))

    def drop_group(self, group: str) -> None:
        self.groups.pop(group, None)

    def topics(self, group: str) -> set[str]:
        return {t for t, _ in self.groups.get(group, {})}

    # ------------------------------------------------------------ record computation

    @staticmethod
    def commit_records(
        group: str, commits: Iterable[tuple[str, int, OffsetValue]]
    ) -> list[tuple[OffsetKey, OffsetValue | None]]:
        return [(OffsetKey(group, t, p), v) for t, p, v in commits]

    def delete_records(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> list[tuple[OffsetKey, OffsetValue | None]]:
        """Tombstones for the given committed partitions (all when None)."""
        offsets = self.groups.get(group, {})
        chosen = list(offsets) if partitions is None else [tp for tp in partitions if tp in offsets]
        return [(OffsetKey(group, t, p), None) for t, p in chosen]

    def expired(
        self,
        group: str,
        now_ms: int,
        retention_ms: int,
        empty_since_ms: int | None,
        keep_topics: set[str] | None = None,
    ) -> Iterator[TopicPartition]:
        """Offsets past retention (Kafka's rule).

        An empty group's offsets age from when it became empty (`empty_since_ms`)
        or, for a simple group, from each commit. A group with members keeps the
        offsets of topics it is subscribed to (`keep_topics`); others age by commit.
        """
        for tp, v in self.groups.get(group, {}).items():
            if keep_topics is not None and tp[0] in keep_topics:
                continue
            if v.expire_timestamp >= 0:  # an explicit v1 expiry wins
                if now_ms >= v.expire_timestamp:
                    yield tp
                continue
            base = empty_since_ms if empty_since_ms is not None and empty_since_ms >= 0 else v.commit_timestamp
            if now_ms - base >= retention_ms:
                yield tp
