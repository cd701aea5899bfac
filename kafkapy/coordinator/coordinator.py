"""The group coordinator: classic groups plus committed offsets over `__consumer_offsets`.

A state machine over records. Requests compute records; `_write` appends
them to the group's `__consumer_offsets` partition and replays them through
`_replay`, the same function loading uses after a restart. Offsets and the
life of a group (created, persisted, deleted) change only there; the live
membership of a group is the sans-IO `ClassicGroup`, whose metadata records
mirror it. Parked JoinGroup/SyncGroup replies are futures here; one timer
task fires the groups' deadlines. Handlers answer OffsetCommit,
TxnOffsetCommit and SyncGroup only after `written` (the partition's high
watermark reached the records: at once on a single broker); the state
machine itself stays synchronous.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from kafkapy.clock import now_ms
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig
from kafkapy.coordinator import OFFSETS_TOPIC
from kafkapy.coordinator import consumer_records as cg_records
from kafkapy.coordinator import streams_records as sg_records
from kafkapy.coordinator.consumer_group import ConsumerGroups, limits_from_config
from kafkapy.coordinator.group import (
    ClassicGroup,
    Effects,
    GroupLimits,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from kafkapy.coordinator.offsets import OffsetStore, TopicPartition
from kafkapy.coordinator.placement import (
    CoordinatorWriteError,
    Placement,
    java_string_hashcode,
    partition_for,
    replay_records,
    run_timers,
    store_error,
)
from kafkapy.coordinator.records import (
    GroupKey,
    GroupValue,
    Key,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_value,
    encode_key,
    encode_offset_value,
)
from kafkapy.coordinator.streams_group import StreamsGroups
from kafkapy.coordinator.streams_group import limits_from_config as streams_limits
from kafkapy.coordinator.txn_offsets import PendingTxnOffsets
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.messages.consumer_protocol_subscription import (
    ConsumerProtocolSubscription,
)
from kafkapy.protocol.records import (
    ControlRecordType,
    build_batch,
    parse_control_record,
)

__all__ = ["OFFSETS_TOPIC", "GroupCoordinator", "java_string_hashcode", "partition_for", "subscribed_topics"]

log = get_logger(__name__)


def subscribed_topics(metadata: bytes) -> set[str] | None:
    """Topics of a "consumer" protocol subscription (None if it does not parse)."""
    if len(metadata) < 2:
        return None
    version = min(int.from_bytes(metadata[:2], "big", signed=True), ConsumerProtocolSubscription.MAX_VERSION)
    if version < 0:
        return None
    try:
        sub = ConsumerProtocolSubscription.decode(memoryview(metadata)[2:], version)
    except DecodeError:
        return None
    return set(sub.topics)


Value = OffsetValue | GroupValue | None


@dataclass(slots=True, kw_only=True)
class GroupCoordinator(Placement):
    TOPIC: ClassVar[str] = OFFSETS_TOPIC

    limits: GroupLimits
    groups: dict[str, ClassicGroup] = field(default_factory=dict)
    offsets: OffsetStore = field(default_factory=OffsetStore)
    txn_offsets: PendingTxnOffsets = field(default_factory=PendingTxnOffsets)  # TxnOffsetCommit, see txn_offsets.py
    consumer: ConsumerGroups = field(default_factory=ConsumerGroups)  # KIP-848 groups, see consumer_coordinator.py
    streams: StreamsGroups = field(default_factory=StreamsGroups)  # KIP-1071 groups, see streams_coordinator.py
    join_waiters: dict[tuple[str, str], asyncio.Future[JoinResult]] = field(default_factory=dict)
    sync_waiters: dict[tuple[str, str], asyncio.Future[SyncResult]] = field(default_factory=dict)
    # Kafka's classic-group-completed-rebalance-count and consumer-group-rebalance-count (group epoch bumps)
    completed_rebalances: int = 0
    consumer_rebalances: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _loading: bool = False
    _next_cleanup_ms: int = 0

    # ------------------------------------------------------------ start-up

    @classmethod
    def open(cls, replicas: ReplicaManager, metadata: MetadataStore, config: BrokerConfig) -> GroupCoordinator:
        """The coordinator with `__consumer_offsets` created if missing and its led partitions loaded;
        its timer task runs until `close`."""
        limits = GroupLimits(
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms=config.group_min_session_timeout_ms,
            max_session_timeout_ms=config.group_max_session_timeout_ms,
            max_size=config.group_max_size,
        )
        coord = cls(
            replicas=replicas,
            metadata=metadata,
            config=config,
            limits=limits,
            consumer=ConsumerGroups(limits_from_config(config)),
            streams=StreamsGroups(streams_limits(config)),
        )
        coord.ensure_topic(
            config.offsets_topic_num_partitions,
            config.offsets_topic_replication_factor,
            "offsets.topic.replication.factor",
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(config.offsets_topic_segment_bytes),
                "compression.type": "producer",
            },
        )
        coord.load()
        coord.spawn(run_timers(coord._wake, coord.next_deadline, coord.fire, "group"))
        return coord

    def load(self) -> None:
        """Replay every owned partition of `__consumer_offsets` from its start."""
        count = sum(self._load_partition(p) for p in self.owned_partitions())
        log.info("group coordinator loaded", records=count, groups=len(self.groups), partitions=self.num_partitions)

    def load_partition(self, p: int) -> None:
        """This broker became the leader of partition p (a cluster's leadership change): replay it."""
        self.num_partitions = max(self.num_partitions, p + 1)
        count = self._load_partition(p)
        log.info("group coordinator partition loaded", partition=p, records=count)

    def unload_partition(self, p: int) -> None:
        """Another broker leads partition p now: forget its groups (their members rejoin there)."""
        gone = [g for g in self.groups if self.partition_of(g) == p]
        for g in gone:
            del self.groups[g]
        for g in [g for g in self.consumer.groups if self.partition_of(g) == p]:
            del self.consumer.groups[g]
        for g in [g for g in self.streams.groups if self.partition_of(g) == p]:
            del self.streams.groups[g]
        for key, fut in list(self.join_waiters.items()) + list(self.sync_waiters.items()):
            if self.partition_of(key[0]) == p and not fut.done():
                fut.cancel()
        log.info("group coordinator partition unloaded", partition=p, groups=len(gone))

    def _load_partition(self, p: int) -> int:
        self._loading = True
        count = 0
        try:
            plog = self.replicas.partition_log(OFFSETS_TOPIC, p)
            if plog is None:
                return 0
            for header, rec in replay_records(plog):
                if header.is_control:  # a transaction marker: pending offsets become visible or go
                    if header.producer_id >= 0:
                        try:
                            ctrl = parse_control_record(rec.key, rec.value)
                        except Exception:
                            continue
                        self.complete_txn(header.producer_id, ctrl.type == ControlRecordType.COMMIT, p)
                    continue
                if rec.key is None:
                    continue
                if cg_records.is_consumer_group_key(rec.key):  # a KIP-848 group record
                    try:
                        cg_key = cg_records.decode_key(rec.key)
                        self.consumer.replay(
                            cg_key, None if rec.value is None else cg_records.decode_value(cg_key, rec.value)
                        )
                    except DecodeError as e:
                        log.warning(
                            "skipping bad __consumer_offsets record", partition=p, offset=rec.offset, error=str(e)
                        )
                        continue
                    old = self.groups.get(cg_key.group)
                    if old is not None and old.is_empty and self.consumer.get(cg_key.group) is not None:
                        del self.groups[cg_key.group]  # offsets committed before the group became a consumer group
                    count += 1
                    continue
                if sg_records.is_streams_group_key(rec.key):  # a KIP-1071 group record
                    try:
                        sg_key = sg_records.decode_key(rec.key)
                        if sg_key is not None:
                            sg_value = None if rec.value is None else sg_records.decode_value(sg_key, rec.value)
                            self.streams.replay(sg_key, sg_value)
                    except DecodeError as e:
                        log.warning(
                            "skipping bad __consumer_offsets record", partition=p, offset=rec.offset, error=str(e)
                        )
                        continue
                    if sg_key is not None:
                        old = self.groups.get(sg_key.group)
                        if old is not None and old.is_empty and self.streams.get(sg_key.group) is not None:
                            del self.groups[sg_key.group]  # offsets committed before it became a Streams group
                    count += 1
                    continue
                try:
                    key = decode_key(rec.key)
                    value = self._decode_value(key, rec.value)
                except DecodeError as e:
                    log.warning("skipping bad __consumer_offsets record", partition=p, offset=rec.offset, error=str(e))
                    continue
                if header.is_transactional and isinstance(key, OffsetKey) and isinstance(value, OffsetValue):
                    self.txn_offsets.add(header.producer_id, key.group, [((key.topic, key.partition), value)])
                    continue
                self._replay(key, value)
                count += 1
        finally:
            self._loading = False
        return count

    @staticmethod
    def _decode_value(key: Key, data: bytes | None) -> Value:
        if data is None:
            return None
        if isinstance(key, OffsetKey):
            return decode_offset_value(data)
        return decode_group_value(data)

    # ------------------------------------------------------------ records

    def _write(self, group_id: str, pairs: list[tuple[Key, Value]]) -> None:
        """Append records to the group's partition, then replay them."""
        if not pairs:
            return
        partition = self.partition_of(group_id)
        ts = now_ms()
        recs: list[tuple[bytes, bytes | None, list[tuple[str, bytes | None]], int]] = []
        for key, value in pairs:
            if value is None:
                raw = None
            elif isinstance(value, OffsetValue):
                raw = encode_offset_value(value)
            else:
                raw = encode_group_value(value)
            recs.append((encode_key(key), raw, [], ts))
        self.append_records(partition, bytearray(build_batch(recs)))
        for key, value in pairs:
            self._replay(key, value)

    async def written(self, group_id: str, *, timed_out: int = ErrorCode.REQUEST_TIMED_OUT) -> int:
        """The group's writes so far replicated, as an answer's error code (at once on a single broker)."""
        code = await self.written_code(group_id, self.config.offsets_commit_timeout_ms)
        return store_error(code, timed_out=timed_out)

    def _replay(self, key: Key, value: Value) -> None:
        """The one place records change the coordinator, live or loading."""
        now = now_ms()
        if isinstance(key, OffsetKey):
            assert value is None or isinstance(value, OffsetValue)
            self.offsets.apply(key, value)
            member_groups = self.consumer.get(key.group) or self.streams.get(key.group)
            if value is not None and key.group not in self.groups and member_groups is None:
                self.groups[key.group] = ClassicGroup(key.group, self.limits, state_timestamp_ms=now)
            return
        group = self.groups.get(key.group)
        if value is None:
            if group is not None:
                self._deliver(key.group, group.mark_dead(now), persist=False)
                del self.groups[key.group]
            return
        assert isinstance(value, GroupValue)
        # A live group is ahead of its own record; only loading (or a new id) builds from it.
        if self._loading or group is None:
            self.groups[key.group] = ClassicGroup.from_record(key.group, value, self.limits, now)

    def on_markers(self, producer_id: int, commit: bool, partitions: Iterable[tuple[str, int]]) -> None:
        """Transaction markers were appended here (cluster.markers.MarkerListener): the producer's
        pending offsets on those `__consumer_offsets` partitions commit or drop."""
        for topic, partition in partitions:
            if topic == OFFSETS_TOPIC:
                self.complete_txn(producer_id, commit, partition)

    def complete_txn(self, producer_id: int, commit: bool, partition: int) -> None:
        """A transaction marker on `__consumer_offsets-<partition>`: its pending offsets commit or drop."""
        for key, value in self.txn_offsets.complete(producer_id, partition, self.partition_of):
            if commit:
                self._replay(key, value)

    def _persist_group(self, group: ClassicGroup) -> None:
        self._write(group.group_id, [(GroupKey(group.group_id), group.to_record())])

    def _deliver(self, group_id: str, fx: Effects, *, persist: bool = True) -> None:
        for event, fields in fx.events:
            log.info(event, group=group_id, **fields)
            if event == "rebalance completed":
                self.completed_rebalances += 1
        for mid, jr in fx.joins.items():
            jf = self.join_waiters.pop((group_id, mid), None)
            if jf is not None and not jf.done():
                jf.set_result(jr)
        for mid, sr in fx.syncs.items():
            sf = self.sync_waiters.pop((group_id, mid), None)
            if sf is not None and not sf.done():
                sf.set_result(sr)
        if persist and fx.persist:
            group = self.groups.get(group_id)
            if group is not None:
                try:
                    self._persist_group(group)
                except CoordinatorWriteError as e:
                    log.warning("could not persist group metadata", group=group_id, error=str(e))
                except Exception:
                    log.exception("could not persist group metadata", group=group_id)
        self._wake.set()

    # ------------------------------------------------------------ group requests

    def _group(self, group_id: str, create: bool = False) -> ClassicGroup | None:
        group = self.groups.get(group_id)
        if group is None and create:
            group = self.groups[group_id] = ClassicGroup(group_id, self.limits, state_timestamp_ms=now_ms())
        return group

    async def join(self, group_id: str, req: JoinRequest) -> JoinResult:
        created = group_id not in self.groups
        group = self._group(group_id, create=True)
        assert group is not None
        member_id, result, fx = group.join(req, now_ms())
        log.debug(
            "join",
            group=group_id,
            member=member_id,
            parked=result is None,
            error=None if result is None else result.error,
        )
        if created and result is not None and result.error != ErrorCode.MEMBER_ID_REQUIRED and group.is_empty:
            del self.groups[group_id]  # a refused first join leaves no group behind
        fut: asyncio.Future[JoinResult] | None = None
        if result is None:
            key = (group_id, member_id)
            old = self.join_waiters.pop(key, None)
            if old is not None and not old.done():
                old.set_result(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id))
            fut = self.join_waiters[key] = asyncio.get_running_loop().create_future()
        self._deliver(group_id, fx)
        if fut is not None:
            result = await fut
        assert result is not None
        return result

    async def sync(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        group = self._group(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        result, fx = group.sync(member_id, instance_id, generation, protocol_type, protocol_name, assignments, now_ms())
        log.debug(
            "sync",
            group=group_id,
            member=member_id,
            generation=generation,
            parked=result is None,
            error=None if result is None else result.error,
        )
        fut: asyncio.Future[SyncResult] | None = None
        if result is None:
            key = (group_id, member_id)
            old = self.sync_waiters.pop(key, None)
            if old is not None and not old.done():
                old.set_result(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            fut = self.sync_waiters[key] = asyncio.get_running_loop().create_future()
        self._deliver(group_id, fx)
        if fut is not None:
            result = await fut
        assert result is not None
        return result

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> int:
        group = self._group(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        err = group.heartbeat(member_id, instance_id, generation, now_ms())
        log.debug("heartbeat", group=group_id, member=member_id, generation=generation, error=err)
        return err

    def leave(self, group_id: str, identities: list[tuple[str, str | None]]) -> list[tuple[str, str | None, int]] | int:
        """Per-member errors, or a group-level error code."""
        group = self._group(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        out, fx = group.leave(identities, now_ms())
        self._deliver(group_id, fx)
        return out

    # ------------------------------------------------------------ offsets

    def commit(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation: int,
        commits: list[tuple[str, int, OffsetValue]],
    ) -> int:
        """Validate against the group, write, replay. One error code for the whole request."""
        group = self._group(group_id)
        cgroup = (self.consumer.get(group_id) or self.streams.get(group_id)) if group is None else None
        if cgroup is not None:  # a KIP-848 group: member id and member epoch
            err = cgroup.validate_commit(member_id, generation)
            if err != ErrorCode.NONE:
                return err
        elif group is None:
            if generation >= 0:
                return ErrorCode.ILLEGAL_GENERATION
        else:
            err = group.validate_commit(member_id, instance_id, generation, now_ms())
            if err != ErrorCode.NONE:
                return err
        try:
            self._write(group_id, list(OffsetStore.commit_records(group_id, commits)))
        except CoordinatorWriteError as e:  # Kafka's mapping: a storage error answers NOT_COORDINATOR
            log.info("offset commit not written", group=group_id, error=str(e))
            return store_error(e.code)
        except Exception:
            log.exception("offset commit write failed", group=group_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    def delete_group(self, group_id: str) -> int:
        group = self._group(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group.state is not GroupState.EMPTY or group.pending_members:
            return ErrorCode.NON_EMPTY_GROUP
        pairs: list[tuple[Key, Value]] = list(self.offsets.delete_records(group_id))
        pairs.append((GroupKey(group_id), None))
        self._write(group_id, pairs)
        return ErrorCode.NONE

    def group_subscriptions(self, group: ClassicGroup) -> set[str] | None:
        """Topics a "consumer" group's members subscribe to; None if unknowable."""
        if group.protocol_type != "consumer":
            return None
        topics: set[str] = set()
        for m in group.members.values():
            meta = (
                m.metadata(group.protocol_name) if group.protocol_name else (m.protocols[0][1] if m.protocols else b"")
            )
            sub = subscribed_topics(meta)
            if sub is None:
                return None
            topics |= sub
        return topics

    def delete_offsets(self, group_id: str, partitions: list[TopicPartition]) -> tuple[int, dict[TopicPartition, int]]:
        group = self._group(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        subscribed: set[str] = set()
        if group.state is not GroupState.EMPTY:
            subs = self.group_subscriptions(group)
            if subs is None:
                return ErrorCode.NON_EMPTY_GROUP, {}
            subscribed = subs
        errors: dict[TopicPartition, int] = {}
        delete: list[TopicPartition] = []
        for tp in partitions:
            if tp[0] in subscribed:
                errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            else:
                errors[tp] = ErrorCode.NONE
                delete.append(tp)
        self._write(group_id, list(self.offsets.delete_records(group_id, delete)))
        return ErrorCode.NONE, errors

    # ------------------------------------------------------------ timers and expiry

    def next_deadline(self, now: int) -> int:
        """When the next group timer or offset expiry is due (a second from now when nothing is)."""
        deadlines = [d for g in self.groups.values() if (d := g.next_deadline()) is not None]
        if self._next_cleanup_ms:
            return min([*deadlines, self._next_cleanup_ms])
        return min(deadlines, default=now + 1000)

    def fire(self, now: int) -> None:
        """Run the groups' due timers and, when due, offset expiry."""
        for group_id, group in list(self.groups.items()):
            d = group.next_deadline()
            if d is not None and d <= now:
                self._deliver(group_id, group.tick(now))
        if now >= self._next_cleanup_ms:
            self._next_cleanup_ms = now + self.config.offsets_retention_check_interval_ms
            self.expire(now)

    def expire(self, now: int) -> int:
        """Tombstone offsets past `offsets.retention.minutes`; drop empty groups left with none."""
        retention = self.config.offsets_retention_minutes * 60_000
        removed = 0
        for group_id, group in list(self.groups.items()):
            if group.state is GroupState.EMPTY:
                since = group.state_timestamp_ms if group.protocol_type else None
                keep = None
            elif group.state is GroupState.STABLE:
                keep = self.group_subscriptions(group)
                if keep is None:
                    continue
                since = None
            else:
                continue
            pairs: list[tuple[Key, Value]] = [
                (OffsetKey(group_id, t, p), None)
                for t, p in self.offsets.expired(group_id, now, retention, since, keep)
            ]
            removed += len(pairs)
            if group.state is GroupState.EMPTY and not group.pending_members:
                left = len(self.offsets.of_group(group_id)) - len(pairs)
                if left == 0:
                    if group.generation == 0 and not pairs and group.protocol_type is None:
                        del self.groups[group_id]  # never written: nothing to tombstone
                        continue
                    pairs.append((GroupKey(group_id), None))
            if pairs:
                self._write(group_id, pairs)
        if removed:
            log.info("expired committed offsets", count=removed)
        return removed

    def groups_in(self, states: Iterable[str] | None = None) -> list[ClassicGroup]:
        wanted = {s.lower() for s in states} if states else None
        return [
            g
            for g in self.groups.values()
            if g.state is not GroupState.DEAD and (wanted is None or g.state.value.lower() in wanted)
        ]
