"""The Streams-group (KIP-1071) side of the group coordinator: requests, timers and writes.

The groups are `GroupCoordinator.streams` (a `StreamsGroups`, fed by replaying
`__consumer_offsets` on load). A heartbeat runs the sans-IO `StreamsGroup`, and
the records it emitted (`streams_records.py`, Kafka's layouts) are appended to
the group's `__consumer_offsets` partition, beside its committed offsets. One
timer task fences members whose session or rebalance timeout expired.

A group id is a classic, a consumer or a Streams group. A Streams member for an
id held by an empty classic or consumer group takes it over (offsets kept); a
non-empty one of the other kind answers GROUP_ID_NOT_FOUND, as Kafka does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kafkapy.clock import now_ms
from kafkapy.coordinator.consumer_group import TopicImage, TopicMeta
from kafkapy.coordinator.coordinator import GroupCoordinator
from kafkapy.coordinator.offsets import TopicPartition
from kafkapy.coordinator.placement import CoordinatorWriteError, run_timers
from kafkapy.coordinator.records import GroupKey
from kafkapy.coordinator.streams_group import (
    HeartbeatRequest,
    HeartbeatResult,
    StreamsGroup,
    StreamsGroups,
    configure,
)
from kafkapy.coordinator.streams_records import encode_key, encode_value
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.records import build_batch

log = get_logger(__name__)


@dataclass(slots=True)
class StreamsGroupCoordinator:
    base: GroupCoordinator
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    creating: set[str] = field(default_factory=set)  # internal topics being created by a heartbeat

    @classmethod
    def open(cls, base: GroupCoordinator) -> StreamsGroupCoordinator:
        """The Streams side over `base`; its timer task is one of `base`'s (cancelled by its `close`)."""
        coord = cls(base)
        now = now_ms()
        for g in coord.groups.groups.values():
            g.start_timers(now)
        base.spawn(run_timers(coord._wake, coord.next_deadline, coord.fire, "streams group"))
        return coord

    @property
    def groups(self) -> StreamsGroups:
        return self.base.streams

    def owns(self, group_id: str) -> bool:
        return self.base.owns(group_id)

    def topics(self) -> TopicImage:
        return TopicImage.of(TopicMeta(t.name, t.topic_id, len(t.partitions)) for t in self.base.metadata.topics())

    def _flush(self, group: StreamsGroup) -> bool:
        """Write what the group emitted (already applied in memory) and log its events."""
        for event, fields in group.events:
            log.info(event, group=group.group_id, **fields)
        group.events.clear()
        records = group.take_pending()
        self._wake.set()
        try:
            if records:
                ts = now_ms()
                batch = build_batch(
                    [(encode_key(k), None if v is None else encode_value(v), [], ts) for k, v in records]
                )
                self.base.append_records(self.base.partition_of(group.group_id), bytearray(batch))
        except CoordinatorWriteError as e:
            log.warning("could not write streams group records", group=group.group_id, error=str(e))
            return False
        except Exception:
            log.exception("could not write streams group records", group=group.group_id, records=len(records))
            return False
        finally:
            self.groups.forget_if_dead(group.group_id)
        return True

    def described(self, group_id: str) -> StreamsGroup | None:
        """The group for a describe; a group loaded from the log gets its topology configured first."""
        group = self.groups.get(group_id)
        if group is not None and group.topology is not None and group.configured is None:
            group.configured = configure(group.topology, self.topics())
        return group

    def _take_over(self, group_id: str) -> int:
        """An empty classic or consumer group with this id gives way to a Streams group."""
        classic = self.base.groups.get(group_id)
        if classic is not None:
            if not classic.is_empty:
                return ErrorCode.GROUP_ID_NOT_FOUND
            if classic.generation > 0 or classic.protocol_type:
                self.base._write(group_id, [(GroupKey(group_id), None)])
            self.base.groups.pop(group_id, None)
        consumer = self.base.consumer.get(group_id)
        if consumer is not None:
            if not consumer.is_empty:
                return ErrorCode.GROUP_ID_NOT_FOUND
            return ErrorCode.GROUP_ID_NOT_FOUND  # its records would need tombstones: refuse, as for a live group
        return ErrorCode.NONE

    def heartbeat(self, group_id: str, req: HeartbeatRequest) -> HeartbeatResult:
        group = self.groups.get(group_id)
        if group is None:
            if req.member_epoch != 0:
                return HeartbeatResult(
                    ErrorCode.GROUP_ID_NOT_FOUND,
                    req.member_id,
                    req.member_epoch,
                    message=f"Group {group_id} not found.",
                )
            err = self._take_over(group_id)
            if err != ErrorCode.NONE:
                return HeartbeatResult(
                    err, req.member_id, req.member_epoch, message=f"Group {group_id} is not a streams group."
                )
            group = self.groups.get_or_create(group_id)
        result = group.heartbeat(req, self.topics(), now_ms())
        if result.error != ErrorCode.NONE and not group.pending and group.group_epoch == 0:
            self.groups.groups.pop(group_id, None)  # a refused first member leaves no group behind
        elif not self._flush(group):
            return HeartbeatResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, req.member_id, req.member_epoch)
        log.debug(
            "streams group heartbeat",
            group=group_id,
            member=result.member_id,
            epoch=result.member_epoch,
            error=result.error,
        )
        return result

    def before_other_protocol(self, group_id: str) -> int:
        """A classic JoinGroup or a consumer heartbeat for `group_id`: an empty Streams group gives way."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE
        if not group.is_empty:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        group.delete()
        if not self._flush(group):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    def delete_group(self, group_id: str) -> int | None:
        """DeleteGroups for a Streams group; None when `group_id` is not one."""
        group = self.groups.get(group_id)
        if group is None:
            return None
        err = group.delete()
        if err != ErrorCode.NONE:
            return err
        if not self._flush(group):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        self.base._write(group_id, list(self.base.offsets.delete_records(group_id)))
        return ErrorCode.NONE

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[int, dict[TopicPartition, int]] | None:
        """OffsetDelete for a Streams group (None when `group_id` is not one): the topology's source
        and repartition topics are GROUP_SUBSCRIBED_TO_TOPIC while the group has members."""
        group = self.described(group_id)
        if group is None:
            return None
        subscribed: set[str] = set()
        if group.members and group.topology is not None:
            configured = group.configured.subtopologies if group.configured is not None else {}
            for s in group.topology.subtopologies:
                c = configured.get(s.subtopology_id)
                subscribed |= set(c.source_topics if c is not None else s.source_topics)
                subscribed |= {t.name for t in s.repartition_source_topics}
        errors: dict[TopicPartition, int] = {
            tp: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if tp[0] in subscribed else ErrorCode.NONE for tp in partitions
        }
        delete = [tp for tp, err in errors.items() if err == ErrorCode.NONE]
        self.base._write(group_id, list(self.base.offsets.delete_records(group_id, delete)))
        return ErrorCode.NONE, errors

    def next_deadline(self, now: int) -> int:
        return min((d for g in self.groups.groups.values() if (d := g.next_deadline()) is not None), default=now + 1000)

    def fire(self, now: int) -> None:
        topics: TopicImage | None = None
        for group in list(self.groups.groups.values()):
            d = group.next_deadline()
            if d is not None and d <= now:
                topics = topics or self.topics()
                group.tick(now, topics)
                self._flush(group)
