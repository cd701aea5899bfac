"""Share groups (KIP-932): membership, share sessions, acquisition and acknowledgement.

The sans-IO parts are `ShareGroup` (membership) and `SharePartition` (record
states); here they meet the log. Membership is served by the group's
coordinator (its `__consumer_offsets` partition, as FindCoordinator GROUP
answers); the group epoch is written to the group's `__share_group_state`
partition when this broker leads it (kept in memory otherwise) and replayed
when the broker starts.

Share partitions are kept by the leader of the user partition (Kafka's
share-partition leader): the first use at a leader epoch reads the state from
the key's share coordinator (share_state.py, ReadShareGroupState), so after a
leadership change records that were acquired come back available, their
delivery counts kept; each change is written back (WriteShareGroupState),
acknowledgements before they are answered. One timer task fences members
whose session expired and ends acquisition locks.

Share sessions (ShareFetch/ShareAcknowledge epochs) are per group and member,
in memory only, like Kafka's share session cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from kafkapy.clock import now_ms
from kafkapy.cluster.partition import FetchIsolation, Partition
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig
from kafkapy.coordinator import group_configs as gc
from kafkapy.coordinator.placement import CoordinatorWriteError, Placement, replay_records, run_timers
from kafkapy.coordinator.share_group import ShareGroup, ShareHeartbeat, ShareHeartbeatResult
from kafkapy.coordinator.share_partition import ACKNOWLEDGED, ARCHIVED, AVAILABLE, Acquired, BatchSpan, SharePartition
from kafkapy.coordinator.share_records import (
    GroupStateKey,
    ShareKey,
    decode_group_value,
    decode_key,
    encode_group_value,
    encode_key,
)
from kafkapy.coordinator.share_state import SHARE_STATE_TOPIC, ShareStatePersister, ShareStateStore
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.records import build_batch, iter_batches
from kafkapy.storage.errors import OffsetMovedToTieredStorageError, OffsetOutOfRangeError
from kafkapy.storage.txn_index import AbortedTxn

log = get_logger(__name__)

TopicPart = tuple[UUID, int]
Ack = tuple[int, int, list[int]]  # first offset, last offset, acknowledge types


@dataclass(slots=True)
class ShareSession:
    epoch: int  # the epoch the next request must carry
    partitions: list[TopicPart] = field(default_factory=list)


@dataclass(slots=True)
class PartitionFetch:
    """What one partition gives a ShareFetch: an error, or records and the acquired runs."""

    error: int = ErrorCode.NONE
    records: bytes = b""
    acquired: list[Acquired] = field(default_factory=list)
    leader_epoch: int = -1
    # tiered storage: the deliverable records start at this offset, held by remote storage only;
    # the caller reads them there and acquires them with `acquire_fetched` (-1: not so)
    remote_offset: int = -1


ShareValue = int | None


@dataclass(slots=True)
class ShareCoordinator(Placement):
    TOPIC = SHARE_STATE_TOPIC

    groups: dict[str, ShareGroup] = field(default_factory=dict)
    partitions: dict[tuple[str, UUID, int], SharePartition] = field(default_factory=dict)
    sessions: dict[tuple[str, str], ShareSession] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    persister: ShareStatePersister | None = None
    # per share partition: the leader epoch it was read at, its state epoch, and whether the share
    # coordinator has state for it (else it is initialized, InitializeShareGroupState, before a write)
    epochs: dict[tuple[str, UUID, int], tuple[int, int, bool]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        replicas: ReplicaManager,
        metadata: MetadataStore,
        config: BrokerConfig,
        persister: ShareStatePersister | None = None,
    ) -> ShareCoordinator:
        if persister is None:
            persister = ShareStatePersister(ShareStateStore.open(replicas, metadata, config), None)
        coord = cls(replicas=replicas, metadata=metadata, config=config, persister=persister)
        coord.ensure_topic(
            config.share_coordinator_state_topic_num_partitions,
            config.share_coordinator_state_topic_replication_factor,
            "share.coordinator.state.topic.replication.factor",
            {"cleanup.policy": "compact"},
        )
        count = sum(coord._load_partition(p) for p in coord.owned_partitions())
        log.info("share coordinator loaded", records=count, groups=len(coord.groups))
        coord.spawn(run_timers(coord._wake, coord.next_deadline, coord.fire, "share group"))
        return coord

    async def ready(self, group_id: str, timeout_s: float = 2.0) -> None:
        """Wait (a moment) for the group's partition of __share_group_state when this broker was made
        its leader but does not serve it yet (the topic was just created)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        p = self.partition_of(group_id)
        while not self._owns_partition(p) and loop.time() < deadline:
            info = self.metadata.topic(self.TOPIC)
            if info is None or p >= len(info.partitions) or info.partitions[p].leader != self.node_id:
                return
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ records

    def _load_partition(self, p: int) -> int:
        plog = self.replicas.partition_log(self.TOPIC, p)
        if plog is None:
            return 0
        count = 0
        for header, rec in replay_records(plog):
            if header.is_control or rec.key is None:
                continue
            try:
                key = decode_key(rec.key)
                if not isinstance(key, GroupStateKey):
                    continue  # share partition state: the share coordinator's (share_state.py)
                value: ShareValue = decode_group_value(rec.value) if rec.value is not None else None
            except DecodeError as e:
                log.warning("skipping bad __share_group_state record", partition=p, offset=rec.offset, error=str(e))
                continue
            self._replay(key, value)
            count += 1
        return count

    def _replay(self, key: ShareKey, value: ShareValue) -> None:
        """The one place records change the share groups, live or loading."""
        if not isinstance(key, GroupStateKey):
            return
        if value is None:
            self.groups.pop(key.group, None)
            return
        group = self.groups.setdefault(key.group, ShareGroup(key.group))
        group.group_epoch = max(group.group_epoch, value)

    def _write(self, group_id: str, pairs: list[tuple[ShareKey, bytes | None]]) -> None:
        """Append records; live state is already what they say (replayed only when loading)."""
        if not pairs:
            return
        ts = now_ms()
        batch = build_batch([(encode_key(k), v, [], ts) for k, v in pairs])
        self.append_records(self.partition_of(group_id), bytearray(batch))

    def _persist(self, group_id: str) -> int:
        """Write the group's changed epoch (when this broker leads its __share_group_state partition)
        and, in the background, its changed share partitions; the Kafka error code of the former."""
        self._wake.set()
        if any(g == group_id and sp.dirty for (g, _, _), sp in self.partitions.items()):
            task = asyncio.get_running_loop().create_task(self._flush_quietly(group_id))
            self.tasks.append(task)  # cancelled by close; forgotten once done
            task.add_done_callback(lambda t: self.tasks.remove(t) if t in self.tasks else None)
        group = self.groups.get(group_id)
        if group is None or not group.epoch_dirty or not self.owns(group_id):
            return ErrorCode.NONE
        try:
            self._write(group_id, [(GroupStateKey(group_id), encode_group_value(group.group_epoch))])
        except CoordinatorWriteError as e:  # still dirty: written with the next change
            log.warning("could not write share group state", group=group_id, error=str(e))
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group.epoch_dirty = False
        return ErrorCode.NONE

    async def _flush_quietly(self, group_id: str) -> None:
        await self.flush(group_id)

    async def flush(self, group_id: str) -> int:
        """Write the group's changed share partitions to their share coordinators (in order: one
        flush of a group at a time); the first error. A fenced write (another leader, or the state
        re-initialized) drops the partition from memory: it is read again at its next use."""
        assert self.persister is not None
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            first: int = ErrorCode.NONE
            for k, sp in [(k, sp) for k, sp in self.partitions.items() if k[0] == group_id and sp.dirty]:
                leader_epoch, state_epoch, known = self.epochs.get(k, (-1, 0, False))
                start, batches = sp.snapshot()
                sp.dirty = False
                err: int = ErrorCode.NONE
                if not known:
                    err = await self.persister.initialize(k, state_epoch, start)
                    if err == ErrorCode.NONE:
                        self.epochs[k] = (leader_epoch, state_epoch, True)
                if err == ErrorCode.NONE:
                    err = await self.persister.write(k, state_epoch, leader_epoch, start, batches)
                if err in (ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.FENCED_STATE_EPOCH):
                    if self.partitions.get(k) is sp:
                        del self.partitions[k]
                        self.epochs.pop(k, None)
                elif err != ErrorCode.NONE:
                    sp.dirty = True  # written with the next change
                if err != ErrorCode.NONE:
                    log.warning("could not write share partition state", key=str(k), error=err)
                    first = first or err
            if len(self._locks) > 1000 and not lock.locked():
                self._locks.pop(group_id, None)
            return first

    async def prepare(self, group_id: str, parts: Iterable[TopicPart]) -> dict[TopicPart, int]:
        """Read the state of the share partitions this broker leads but does not hold at the
        partition's leader epoch (a new leader: acquired records come back available); the
        partitions whose state could not be read, with the error."""
        assert self.persister is not None
        out: dict[TopicPart, int] = {}
        for tid, p in parts:
            info = self.metadata.topic_by_id(tid)
            if info is None or not 0 <= p < len(info.partitions):
                continue  # answered by _share_partition
            part = self.replicas.partition(info.name, p)
            k = (group_id, tid, p)
            if isinstance(part, int):
                if k in self.partitions:  # no longer the leader: another broker keeps it now
                    del self.partitions[k]
                    self.epochs.pop(k, None)
                continue
            if k in self.partitions and k in self.epochs and self.epochs[k][0] == part.leader_epoch:
                continue
            err, value = await self.persister.read(k, part.leader_epoch)
            if err == ErrorCode.INVALID_REQUEST:  # no state yet: share.auto.offset.reset at the first fetch
                self.partitions[k] = SharePartition()
                self.epochs[k] = (part.leader_epoch, 0, False)
                continue
            if err != ErrorCode.NONE:
                out[(tid, p)] = err
                continue
            self.partitions[k] = SharePartition.restore(value.start_offset, value.batches)
            self.epochs[k] = (part.leader_epoch, value.state_epoch, True)
        return out

    # ------------------------------------------------------------ group configs

    def group_config(self, group_id: str, name: str) -> str:
        """Key `name` of the group's dynamic configs (IncrementalAlterConfigs GROUP), else the broker's."""
        return gc.effective(self.config, self.metadata.group_configs().get(group_id, {}), name)

    def lock_ms(self, group_id: str) -> int:
        return int(self.group_config(group_id, "share.record.lock.duration.ms"))

    def delivery_limit(self, group_id: str) -> int:
        return int(self.group_config(group_id, "share.delivery.count.limit"))

    def heartbeat_interval_ms(self, group_id: str) -> int:
        return int(self.group_config(group_id, "share.heartbeat.interval.ms"))

    def _start_offset(self, group_id: str, part: Partition) -> int:
        """Where a new share partition starts: share.auto.offset.reset (latest, earliest, by_duration:...)."""
        reset = self.group_config(group_id, "share.auto.offset.reset").strip()
        plog = part.log
        if reset.lower() == gc.EARLIEST:
            return plog.log_start_offset
        if reset.lower().startswith("by_duration:"):
            ms = gc.duration_ms(reset[12:])
            found = plog.list_offset(now_ms() - ms) if ms is not None else None
            return found.offset if found is not None else plog.high_watermark
        return plog.high_watermark

    # ------------------------------------------------------------ membership

    def topics(self) -> dict[str, tuple[UUID, int]]:
        return {t.name: (t.topic_id, len(t.partitions)) for t in self.metadata.topics() if not t.internal}

    def heartbeat(self, group_id: str, req: ShareHeartbeat) -> ShareHeartbeatResult:
        now = now_ms()
        group = self.groups.get(group_id)
        if group is None:
            if req.member_epoch > 0 and req.member_id:
                # Membership is not persisted: a member of a group this coordinator does not know
                # (it moved here, or restarted) rejoins with epoch 0 (Kafka: GROUP_ID_NOT_FOUND,
                # fatal to the Java KafkaShareConsumer; docs/compatibility.md, Share groups).
                return ShareHeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID, message=f"Member {req.member_id} is not a member of the group."
                )
            if req.member_epoch != 0:
                return ShareHeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND, message=f"Share group {group_id} not found.")
            group = ShareGroup(group_id)
        result = group.heartbeat(
            req,
            self.topics(),
            now,
            int(self.group_config(group_id, "share.session.timeout.ms")),
            self.config.group_share_max_size,
        )
        if result.error == ErrorCode.NONE and result.member_epoch == -1:
            self._released(group_id, req.member_id, end_session=False)
        if group.epoch_dirty or group.members:
            self.groups[group_id] = group
        err = self._persist(group_id)
        if err != ErrorCode.NONE:
            return ShareHeartbeatResult(err)
        return result

    def _released(self, group_id: str, member_id: str, end_session: bool = True) -> None:
        """A member left or was fenced: its records are delivered again. A fenced member's share session
        ends; a leaving one's stays for the ShareAcknowledge/ShareFetch at epoch -1 that closes it, as in
        Kafka (librdkafka's close sends it alongside the leave heartbeat)."""
        if end_session:
            self.sessions.pop((group_id, member_id), None)
        limit = self.delivery_limit(group_id)
        for (g, _, _), sp in self.partitions.items():
            if g == group_id:
                sp.release_member(member_id, limit)

    def is_member(self, group_id: str, member_id: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and member_id in group.members

    # ------------------------------------------------------------ share sessions

    def session(
        self, group_id: str, member_id: str, epoch: int, add: Iterable[TopicPart], forget: Iterable[TopicPart]
    ) -> tuple[int, ShareSession | None]:
        """Open, check or close the member's share session for one request; (error, session)."""
        key = (group_id, member_id)
        if epoch == 0:  # as Kafka 4.3.1, membership is not checked here
            old = self.sessions.pop(key, None)
            if old is not None:  # a new session replaces the old: what it held goes back
                self._release_in(group_id, member_id, old.partitions)
            sess = self.sessions[key] = ShareSession(1)
        else:
            found = self.sessions.get(key)
            if found is None:
                return ErrorCode.SHARE_SESSION_NOT_FOUND, None
            if epoch not in (-1, found.epoch):
                return ErrorCode.INVALID_SHARE_SESSION_EPOCH, None
            sess = found
            if epoch != -1:
                sess.epoch = epoch + 1 if epoch < 2**31 - 1 else 1
        for tp in add:
            if tp not in sess.partitions:
                sess.partitions.append(tp)
        for tp in forget:
            if tp in sess.partitions:
                sess.partitions.remove(tp)
        return ErrorCode.NONE, sess

    def close_session(self, group_id: str, member_id: str) -> None:
        """ShareFetch/ShareAcknowledge epoch -1, after its acknowledgements: what is still held goes back."""
        sess = self.sessions.pop((group_id, member_id), None)
        if sess is not None:
            self._release_in(group_id, member_id, sess.partitions)
            self._persist(group_id)

    def _release_in(self, group_id: str, member_id: str, parts: Iterable[TopicPart]) -> None:
        limit = self.delivery_limit(group_id)
        for tid, p in parts:
            sp = self.partitions.get((group_id, tid, p))
            if sp is not None:
                sp.release_member(member_id, limit)

    # ------------------------------------------------------------ records and acknowledgements

    def _share_partition(self, group_id: str, tid: UUID, p: int) -> tuple[int, Partition | None, SharePartition | None]:
        info = self.metadata.topic_by_id(tid)
        if info is None:
            return ErrorCode.UNKNOWN_TOPIC_ID, None, None
        if not 0 <= p < len(info.partitions):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, None
        part = self.replicas.partition(info.name, p)
        if isinstance(part, int):
            return part, None, None
        sp = self.partitions.get((group_id, tid, p))
        if sp is None:  # its state could not be read (prepare)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None, None
        if not sp.initialized:
            sp.initialize(self._start_offset(group_id, part))
        sp.truncate_to(part.log.log_start_offset)
        return ErrorCode.NONE, part, sp

    def acknowledge(self, group_id: str, member_id: str, acks: dict[TopicPart, list[Ack]]) -> dict[TopicPart, int]:
        """Apply acknowledgements; the error per partition (INVALID_RECORD_STATE for records the
        member does not hold)."""
        now = now_ms()
        limit = self.delivery_limit(group_id)
        lock_ms = self.lock_ms(group_id)
        out: dict[TopicPart, int] = {}
        for (tid, p), batches in acks.items():
            err, _, sp = self._share_partition(group_id, tid, p)
            if sp is None:
                out[(tid, p)] = err
                continue
            ok = True
            for first, last, types in batches:
                ok = sp.acknowledge(member_id, first, last, types, limit, now, lock_ms) and ok
            out[(tid, p)] = ErrorCode.NONE if ok else ErrorCode.INVALID_RECORD_STATE
        self._wake.set()
        return out  # written by the caller's flush

    def fetch(
        self, group_id: str, member_id: str, parts: Iterable[TopicPart], max_records: int, max_bytes: int
    ) -> dict[TopicPart, PartitionFetch]:
        """Acquire records for `member_id` from `parts`, up to `max_records` and about `max_bytes`
        in all; whole batches are returned, the acquired runs say which of their records are the
        member's."""
        now = now_ms()
        lock_ms = self.lock_ms(group_id)
        committed = self.group_config(group_id, "share.isolation.level") == "read_committed"
        max_locks = int(self.group_config(group_id, "share.partition.max.record.locks"))
        out: dict[TopicPart, PartitionFetch] = {}
        left_records, left_bytes = max(max_records, 1), max_bytes
        for tid, p in parts:
            err, part, sp = self._share_partition(group_id, tid, p)
            if part is None or sp is None:
                out[(tid, p)] = PartitionFetch(err)
                continue
            pf = out[(tid, p)] = PartitionFetch(leader_epoch=part.leader_epoch)
            if left_records <= 0 or left_bytes <= 0:
                continue
            # read_committed: up to the last stable offset, aborted batches skipped
            hw = part.log.last_stable_offset if committed else part.log.high_watermark
            locks = max_locks - sp.in_flight()
            start = sp.first_deliverable(hw)
            if start is None:
                continue
            try:
                isolation = FetchIsolation.TXN_COMMITTED if committed else FetchIsolation.HIGH_WATERMARK
                result = part.read(start, left_bytes, isolation, min_one_message=True)
            except OffsetOutOfRangeError:
                continue
            except OffsetMovedToTieredStorageError:
                pf.remote_offset = start  # below the local log start: the caller reads remote storage
                continue
            data = b"".join(s.read_bytes() for s in result.slices)
            aborted = part.log.aborted_transactions(start, hw) if committed else []
            count = self._acquire(member_id, sp, pf, data, aborted, hw, left_records, locks, now, lock_ms)
            left_records -= count
            left_bytes -= len(pf.records)
        self._wake.set()
        return out  # written by the caller's flush

    def acquire_fetched(
        self, group_id: str, member_id: str, tp: TopicPart, data: bytes, aborted: Sequence[AbortedTxn], max_records: int
    ) -> PartitionFetch:
        """Acquire for `member_id` what `data` holds: whole batches the caller read from remote storage
        at a fetch's `remote_offset` of partition `tp` (`aborted`: the transactions aborted in them
        for read_committed). The records' states are those of now: what another fetch acquired
        meanwhile is not acquired again."""
        err, part, sp = self._share_partition(group_id, *tp)
        if part is None or sp is None:
            return PartitionFetch(err)
        pf = PartitionFetch(leader_epoch=part.leader_epoch)
        committed = self.group_config(group_id, "share.isolation.level") == "read_committed"
        hw = part.log.last_stable_offset if committed else part.log.high_watermark
        locks = int(self.group_config(group_id, "share.partition.max.record.locks")) - sp.in_flight()
        self._acquire(
            member_id, sp, pf, data, aborted, hw, max(max_records, 1), locks, now_ms(), self.lock_ms(group_id)
        )
        self._wake.set()
        return pf  # written by the caller's flush

    @staticmethod
    def _acquire(
        member_id: str,
        sp: SharePartition,
        pf: PartitionFetch,
        data: bytes,
        aborted: Sequence[AbortedTxn],
        hw: int,
        max_records: int,
        locks: int,
        now: int,
        lock_ms: int,
    ) -> int:
        """Acquire up to `max_records` records of `data` (whole batches from the log) into `pf`, new
        ones only while `locks` (in-flight records allowed) remain; the number acquired."""
        spans, bounds = [], []
        for pos, h in iter_batches(data):
            skip = h.is_control or (
                h.is_transactional
                and any(
                    a.producer_id == h.producer_id and a.first_offset <= h.base_offset <= a.last_offset for a in aborted
                )
            )
            spans.append(BatchSpan(h.base_offset, h.last_offset, skip))
            bounds.append((pos, pos + 12 + h.batch_length))
        limit = min(max_records, max(locks, 0) + sum(1 for r in sp.records.values() if r.state == AVAILABLE))
        runs, used = sp.acquire(member_id, spans, hw, limit, now, lock_ms)
        if not runs:
            return 0
        pf.acquired = runs
        pf.records = b"".join(data[bounds[i][0] : bounds[i][1]] for i in used)
        return sum(r.last - r.first + 1 for r in runs)

    # ------------------------------------------------------------ timers

    def next_deadline(self, now: int) -> int:
        ds = [d for g in self.groups.values() if (d := g.next_deadline()) is not None]
        ds += [d for sp in self.partitions.values() if (d := sp.next_deadline()) is not None]
        return min(ds, default=now + 1000)

    def fire(self, now: int) -> None:
        touched: set[str] = set()
        for group in list(self.groups.values()):
            for mid in group.expired(now):
                group.remove(mid)
                self._released(group.group_id, mid)
                log.info("share group member fenced: session timed out", group=group.group_id, member=mid)
                touched.add(group.group_id)
        limits: dict[str, int] = {}
        for (g, _, _), sp in self.partitions.items():
            due = sp.next_deadline()
            if due is None or due > now:
                continue
            if g not in limits:
                limits[g] = self.delivery_limit(g)
            if sp.expire(now, limits[g]):
                touched.add(g)
        for g in touched:
            self._persist(g)

    # ------------------------------------------------------------ offsets (DescribeShareGroupOffsets & co)

    def share_partitions(self, group_id: str) -> dict[TopicPart, SharePartition]:
        return {(tid, p): sp for (g, tid, p), sp in self.partitions.items() if g == group_id}

    async def known_partitions(self, group_id: str) -> dict[TopicPart, SharePartition]:
        """The group's initialized share partitions: those this broker leads from memory, the
        others' start offsets from their share coordinators (ReadShareGroupStateSummary)."""
        assert self.persister is not None
        out: dict[TopicPart, SharePartition] = {}
        for t in self.metadata.topics():
            if t.internal:
                continue
            for p in range(len(t.partitions)):
                sp = self.partitions.get((group_id, t.topic_id, p))
                if sp is None:
                    err, value = await self.persister.summary((group_id, t.topic_id, p))
                    if err != ErrorCode.NONE or value.start_offset < 0:
                        continue
                    sp = SharePartition.restore(value.start_offset, ())
                if sp.initialized:
                    out[(t.topic_id, p)] = sp
        return out

    def lag(self, sp: SharePartition, high_watermark: int) -> int:
        """Records from the start offset to the high watermark not yet finished (-1: not initialized)."""
        if not sp.initialized:
            return -1
        done = sum(1 for r in sp.records.values() if r.state in (ACKNOWLEDGED, ARCHIVED))
        return max(high_watermark - sp.start_offset - done, 0)

    def _empty_or_error(self, group_id: str) -> tuple[int, str | None]:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
        if group.members:
            return ErrorCode.NON_EMPTY_GROUP, "The group is not empty."
        return ErrorCode.NONE, None

    def _drop(self, k: tuple[str, UUID, int]) -> None:
        self.partitions.pop(k, None)
        self.epochs.pop(k, None)

    async def alter_offsets(self, group_id: str, offsets: dict[TopicPart, int]) -> tuple[int, str | None]:
        """AlterShareGroupOffsets: the partitions start over at the given offsets (an empty group only),
        initialized at a new state epoch (InitializeShareGroupState): their leaders' older writes are fenced."""
        assert self.persister is not None
        if group_id not in self.groups:  # as Kafka: an unknown group is made, empty
            group = self.groups[group_id] = ShareGroup(group_id)
            group.epoch_dirty = True
        err, msg = self._empty_or_error(group_id)
        if err != ErrorCode.NONE:
            return err, msg
        err = self._persist(group_id)
        for (tid, p), offset in offsets.items():
            k = (group_id, tid, p)
            code, cur = await self.persister.summary(k)
            if code == ErrorCode.NONE:
                code = await self.persister.initialize(k, cur.state_epoch + 1, offset)
            self._drop(k)  # read again by its leader
            err = err or code
        return err, None

    async def delete_offsets(self, group_id: str, topics: Iterable[UUID]) -> tuple[int, str | None]:
        """DeleteShareGroupOffsets: forget the topics' share partitions (an empty group only)."""
        err, msg = self._empty_or_error(group_id)
        if err != ErrorCode.NONE:
            return err, msg
        return await self._delete_state(group_id, set(topics)), None

    async def _delete_state(self, group_id: str, topics: set[UUID] | None) -> int:
        """DeleteShareGroupState for every partition of `topics` (None: all topics)."""
        assert self.persister is not None
        err: int = ErrorCode.NONE
        for t in self.metadata.topics():
            if t.internal or (topics is not None and t.topic_id not in topics):
                continue
            for p in range(len(t.partitions)):
                k = (group_id, t.topic_id, p)
                self._drop(k)
                err = err or await self.persister.delete(k)
        return err

    async def delete_group(self, group_id: str) -> int:
        """DeleteGroups for a share group: the group and its share partitions' state (empty groups only)."""
        err, _ = self._empty_or_error(group_id)
        if err != ErrorCode.NONE:
            return err
        err = await self._delete_state(group_id, None)
        if err != ErrorCode.NONE:
            return err
        if self.owns(group_id):
            try:
                self._write(group_id, [(GroupStateKey(group_id), None)])
            except CoordinatorWriteError as e:
                log.warning("could not write share group state", group=group_id, error=str(e))
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
        del self.groups[group_id]
        log.info("share group deleted", group=group_id)
        return ErrorCode.NONE
