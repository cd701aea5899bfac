"""The KIP-848 side of the group coordinator: requests, timers and writes.

The groups themselves are `GroupCoordinator.consumer` (a `ConsumerGroups`,
fed by replaying `__consumer_offsets` on load). Here a heartbeat runs the
sans-IO `ConsumerGroup`, and the records it emitted are appended to the
group's `__consumer_offsets` partition (the same partition, and the same
offsets store, as the group's committed offsets). One timer task fences
members whose session or rebalance timeout expired.

A group id is either a classic group or a consumer group. An empty group of
one kind becomes the other kind when a member of the other protocol arrives
(its records tombstoned, its committed offsets kept); a group with members
refuses the other protocol: GROUP_ID_NOT_FOUND to a ConsumerGroupHeartbeat,
INCONSISTENT_GROUP_PROTOCOL to a JoinGroup.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kafkapy.clock import now_ms
from kafkapy.coordinator.consumer_group import (
    ConsumerGroup,
    ConsumerGroups,
    HeartbeatRequest,
    HeartbeatResult,
    Record,
    TopicImage,
    TopicMeta,
)
from kafkapy.coordinator.consumer_records import encode_key, encode_value
from kafkapy.coordinator.coordinator import GroupCoordinator
from kafkapy.coordinator.offsets import TopicPartition
from kafkapy.coordinator.placement import CoordinatorWriteError, run_timers
from kafkapy.coordinator.records import GroupKey
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.records import build_batch

log = get_logger(__name__)


@dataclass(slots=True)
class ConsumerGroupCoordinator:
    base: GroupCoordinator
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def open(cls, base: GroupCoordinator) -> ConsumerGroupCoordinator:
        """The KIP-848 side over `base`; its timer task is one of `base`'s (cancelled by its `close`)."""
        coord = cls(base)
        now = now_ms()
        for g in coord.groups.groups.values():
            g.start_timers(now)
        base.spawn(run_timers(coord._wake, coord.next_deadline, coord.fire, "consumer group"))
        return coord

    @property
    def groups(self) -> ConsumerGroups:
        return self.base.consumer

    def owns(self, group_id: str) -> bool:
        return self.base.owns(group_id)

    def topics(self) -> TopicImage:
        return TopicImage.of(TopicMeta(t.name, t.topic_id, len(t.partitions)) for t in self.base.metadata.topics())

    # ------------------------------------------------------------ writes

    def _append(self, group_id: str, records: list[Record]) -> None:
        if not records:
            return
        ts = now_ms()
        batch = build_batch([(encode_key(k), None if v is None else encode_value(v), [], ts) for k, v in records])
        self.base.append_records(self.base.partition_of(group_id), bytearray(batch))

    def _flush(self, group: ConsumerGroup) -> bool:
        """Write what the group emitted (already applied in memory) and log its events."""
        for event, fields in group.events:
            log.info(event, group=group.group_id, **fields)
            if event == "group epoch bumped":
                self.base.consumer_rebalances += 1
        group.events.clear()
        records = group.take_pending()
        self._wake.set()
        try:
            self._append(group.group_id, records)
        except CoordinatorWriteError as e:
            log.warning("could not write consumer group records", group=group.group_id, error=str(e))
            return False
        except Exception:
            log.exception("could not write consumer group records", group=group.group_id, records=len(records))
            return False
        finally:
            self.groups.forget_if_dead(group.group_id)
        return True

    # ------------------------------------------------------------ protocol boundaries

    def _take_over_classic(self, group_id: str) -> int:
        """A consumer-protocol member for `group_id`: an empty classic group gives way."""
        if self.base.streams.get(group_id) is not None:  # a Streams group (KIP-1071) of that id
            return ErrorCode.GROUP_ID_NOT_FOUND
        classic = self.base.groups.get(group_id)
        if classic is None:
            return ErrorCode.NONE
        if not classic.is_empty:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if classic.generation > 0 or classic.protocol_type:
            self.base._write(group_id, [(GroupKey(group_id), None)])  # persisted: tombstone it
        self.base.groups.pop(group_id, None)
        log.info("classic group converted to a consumer group", group=group_id)
        return ErrorCode.NONE

    def before_classic_join(self, group_id: str) -> int:
        """A JoinGroup for `group_id`: an empty consumer group gives way, one with members refuses."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE
        if not group.is_empty:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        group.delete()
        if not self._flush(group):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        log.info("consumer group converted to a classic group", group=group_id)
        return ErrorCode.NONE

    # ------------------------------------------------------------ requests

    def heartbeat(self, group_id: str, req: HeartbeatRequest) -> HeartbeatResult:
        group = self.groups.get(group_id)
        if group is None:
            if req.member_epoch != 0:  # as Kafka: only a joining member (epoch 0) creates the group
                return HeartbeatResult(
                    ErrorCode.GROUP_ID_NOT_FOUND,
                    req.member_id,
                    req.member_epoch,
                    message=f"Consumer group {group_id} not found.",
                )
            err = self._take_over_classic(group_id)
            if err != ErrorCode.NONE:
                return HeartbeatResult(
                    err, req.member_id, req.member_epoch, message=f"Group {group_id} is not a consumer group"
                )
            group = self.groups.get_or_create(group_id)
        result = group.heartbeat(req, self.topics(), now_ms())
        if result.error != ErrorCode.NONE and not group.pending and group.group_epoch == 0:
            self.groups.groups.pop(group_id, None)  # a refused first member leaves no group behind
        elif not self._flush(group):
            return HeartbeatResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, req.member_id, req.member_epoch)
        log.debug(
            "consumer group heartbeat",
            group=group_id,
            member=result.member_id,
            epoch=result.member_epoch,
            error=result.error,
        )
        return result

    def delete_group(self, group_id: str) -> int | None:
        """DeleteGroups for a consumer group; None when `group_id` is not one."""
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
        """OffsetDelete for a consumer group; None when `group_id` is not one."""
        group = self.groups.get(group_id)
        if group is None:
            return None
        subscribed = group.subscribed_topics(self.topics())
        errors: dict[TopicPartition, int] = {}
        delete: list[TopicPartition] = []
        for tp in partitions:
            if tp[0] in subscribed:
                errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            else:
                errors[tp] = ErrorCode.NONE
                delete.append(tp)
        self.base._write(group_id, list(self.base.offsets.delete_records(group_id, delete)))
        return ErrorCode.NONE, errors

    # ------------------------------------------------------------ timers

    def next_deadline(self, now: int) -> int:
        """When the next member timer is due (a second from now when none is)."""
        return min((d for g in self.groups.groups.values() if (d := g.next_deadline()) is not None), default=now + 1000)

    def fire(self, now: int) -> None:
        topics: TopicImage | None = None
        for group in list(self.groups.groups.values()):
            d = group.next_deadline()
            if d is not None and d <= now:
                topics = topics or self.topics()
                group.tick(now, topics)
                self._flush(group)
