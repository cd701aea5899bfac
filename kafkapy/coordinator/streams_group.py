"""Streams groups (KIP-1071) as a sans-IO state machine.

A Streams group is a group of Kafka Streams clients that lets the coordinator
assign tasks. The first member to join brings the application's *topology*:
subtopologies, each reading source topics (or repartition topics written by
another subtopology) and keeping state in changelog topics. The coordinator

* configures the topology against the broker's topics: each subtopology gets
  as many tasks as its largest source topic has partitions; a repartition
  topic without a partition count gets that of the subtopologies writing it;
  copartitioned topics must agree. Missing source topics, missing internal
  (repartition, changelog) topics and wrongly partitioned topics are reported
  to members as heartbeat statuses, and missing internal topics are returned
  for the caller to create (as Kafka's broker does);
* assigns tasks with the sticky assignor (`streams_assignor.py`);
* moves members to their targets the KIP-848 way: the group epoch grows when
  what the assignor sees changes, the target is computed for a group epoch
  (the assignment epoch), and a member first gives up active tasks it must
  lose (UNREVOKED_TASKS) before it gets the new epoch, and is given an active
  task only once no other member holds it (UNRELEASED_TASKS).

Every persisted change is a record applied by `replay` (the one mutator of
that state); a request leaves the records it emitted in `pending`. Session and
rebalance deadlines, reported task offsets and the shutdown request are
runtime-only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum

from kafkapy.coordinator.consumer_group import TopicImage
from kafkapy.coordinator.streams_assignor import AssignorMember, Task, assign
from kafkapy.protocol.error_codes import ErrorCode

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
INT_MAX = 2**31 - 1

Tasks = dict[str, frozenset[int]]  # subtopology id -> partitions


class Status(IntEnum):
    """StreamsGroupHeartbeat's status codes."""

    STALE_TOPOLOGY = 0
    MISSING_SOURCE_TOPICS = 1
    INCORRECTLY_PARTITIONED_TOPICS = 2
    MISSING_INTERNAL_TOPICS = 3
    SHUTDOWN_APPLICATION = 4
    ASSIGNMENT_DELAYED = 5


class MemberState(IntEnum):
    STABLE = 0
    UNREVOKED_TASKS = 1
    UNRELEASED_TASKS = 2
    UNKNOWN = 127


class StreamsGroupState(str, Enum):
    EMPTY = "Empty"
    NOT_READY = "NotReady"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class StreamsGroupLimits:
    """Broker settings (group.streams.*)."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    max_size: int = INT_MAX
    num_standby_replicas: int = 0
    initial_rebalance_delay_ms: int = 3_000
    # Kafka's defaults, answered from StreamsGroupHeartbeat v1 (Kafka 4.3.1 answers 0 and 0 at v0)
    acceptable_recovery_lag: int = 10_000
    task_offset_interval_ms: int = 60_000


# ---------------------------------------------------------------- the topology


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """An internal topic as the topology declares it (partitions 0: derived)."""

    name: str
    partitions: int = 0
    replication_factor: int = 0
    configs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CopartitionGroup:
    source_topics: tuple[int, ...] = ()  # indexes into the subtopology's source_topics
    source_topic_regex: tuple[int, ...] = ()
    repartition_source_topics: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Subtopology:
    subtopology_id: str
    source_topics: tuple[str, ...] = ()
    source_topic_regex: tuple[str, ...] = ()
    state_changelog_topics: tuple[TopicConfig, ...] = ()
    repartition_sink_topics: tuple[str, ...] = ()
    repartition_source_topics: tuple[TopicConfig, ...] = ()
    copartition_groups: tuple[CopartitionGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class Topology:
    epoch: int
    subtopologies: tuple[Subtopology, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfiguredSubtopology:
    subtopology_id: str
    tasks: int
    source_topics: tuple[str, ...]  # regexes resolved
    repartition_sink_topics: tuple[str, ...]
    state_changelog_topics: tuple[TopicConfig, ...]  # partitions resolved
    repartition_source_topics: tuple[TopicConfig, ...]  # partitions resolved


@dataclass(slots=True)
class ConfiguredTopology:
    """The topology against the broker's topics: tasks per subtopology, or why not yet."""

    subtopologies: dict[str, ConfiguredSubtopology] = field(default_factory=dict)
    statuses: list[tuple[Status, str]] = field(default_factory=list)
    missing_internal: list[TopicConfig] = field(default_factory=list)  # to create, partitions resolved

    @property
    def ready(self) -> bool:
        return not self.statuses


def _regex(rx: str) -> re.Pattern[str] | None:
    try:
        return re.compile(rx)
    except re.error:
        return None


def configure(topology: Topology, topics: TopicImage) -> ConfiguredTopology:
    """Resolve regexes and partition counts (Kafka's rules, see the module docstring)."""
    out = ConfiguredTopology()
    internal = {t.name for s in topology.subtopologies for t in s.repartition_source_topics}
    internal |= {t.name for s in topology.subtopologies for t in s.state_changelog_topics}
    sources: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    for s in topology.subtopologies:
        names = list(s.source_topics)
        for rx in s.source_topic_regex:
            pattern = _regex(rx)
            found = sorted(n for n in topics.by_name if pattern is not None and pattern.fullmatch(n))
            if not found:
                missing.append(rx)
            names += [n for n in found if n not in names and n not in internal]
        missing += [n for n in s.source_topics if n not in topics.by_name]
        sources[s.subtopology_id] = tuple(names)
    if missing:
        out.statuses.append((Status.MISSING_SOURCE_TOPICS, f"Source topics {', '.join(sorted(missing))} are missing."))
        return out
    # partition counts: external topics from the broker, repartition topics declared or derived
    counts: dict[str, int] = {n: topics.by_name[n].partitions for ns in sources.values() for n in ns}
    for s in topology.subtopologies:
        for t in s.repartition_source_topics:
            if t.partitions > 0:
                counts[t.name] = t.partitions
    incorrect: list[str] = []
    changed = True
    while changed:
        changed = False
        for s in topology.subtopologies:
            known = [counts[n] for n in sources[s.subtopology_id] if n in counts]
            known += [counts[t.name] for t in s.repartition_source_topics if t.name in counts]
            if not known:
                continue
            for sink in s.repartition_sink_topics:
                if sink in internal and counts.get(sink, 0) < max(known):
                    declared = any(
                        t.name == sink and t.partitions > 0
                        for x in topology.subtopologies
                        for t in x.repartition_source_topics
                    )
                    if not declared:
                        counts[sink] = max(known)
                        changed = True
            for group in s.copartition_groups:
                external = [sources[s.subtopology_id][i] for i in group.source_topics if i < len(s.source_topics)]
                repart = [s.repartition_source_topics[i].name for i in group.repartition_source_topics]
                ext_counts = {counts[n] for n in external if n in counts}
                if len(ext_counts) > 1:
                    incorrect += external
                    continue
                target = max(ext_counts or {counts[n] for n in repart if n in counts} or {0})
                for n in repart:
                    if target and counts.get(n) != target and not _declared(topology, n):
                        counts[n] = target
                        changed = True
    unresolved = [t.name for s in topology.subtopologies for t in s.repartition_source_topics if t.name not in counts]
    if unresolved:
        out.statuses.append(
            (Status.INCORRECTLY_PARTITIONED_TOPICS, f"Partition counts of {', '.join(unresolved)} cannot be derived.")
        )
        return out
    if incorrect:
        out.statuses.append(
            (
                Status.INCORRECTLY_PARTITIONED_TOPICS,
                f"Following topics are not copartitioned: {', '.join(sorted(set(incorrect)))}",
            )
        )
        return out
    missing_internal: dict[str, TopicConfig] = {}
    wrong: list[str] = []
    for s in topology.subtopologies:
        n_tasks = max(
            [counts[n] for n in sources[s.subtopology_id]] + [counts[t.name] for t in s.repartition_source_topics]
        )
        resolved = tuple(replace(t, partitions=counts[t.name]) for t in s.repartition_source_topics)
        changelogs = tuple(replace(t, partitions=n_tasks) for t in s.state_changelog_topics)
        for t in resolved + changelogs:
            meta = topics.by_name.get(t.name)
            if meta is None:
                missing_internal.setdefault(t.name, t)
            elif meta.partitions != t.partitions:
                wrong.append(t.name)
        out.subtopologies[s.subtopology_id] = ConfiguredSubtopology(
            s.subtopology_id, n_tasks, sources[s.subtopology_id], s.repartition_sink_topics, changelogs, resolved
        )
    if wrong:
        out.statuses.append(
            (
                Status.INCORRECTLY_PARTITIONED_TOPICS,
                f"Internal topics {', '.join(sorted(set(wrong)))} have the wrong number of partitions.",
            )
        )
    if missing_internal:
        out.missing_internal = list(missing_internal.values())
        out.statuses.append(
            (Status.MISSING_INTERNAL_TOPICS, f"Internal topics are missing: {', '.join(sorted(missing_internal))}")
        )
    if not out.ready:
        out.subtopologies = {}
    return out


def _declared(topology: Topology, name: str) -> bool:
    return any(t.name == name and t.partitions > 0 for s in topology.subtopologies for t in s.repartition_source_topics)


def topics_hash(topology: Topology | None, topics: TopicImage) -> int:
    """A digest of every topic the topology names (present or not, and its partition count)."""
    if topology is None:
        return 0
    names: set[str] = set()
    regexes: list[re.Pattern[str]] = []
    for s in topology.subtopologies:
        names |= set(s.source_topics) | {t.name for t in s.repartition_source_topics + s.state_changelog_topics}
        regexes += [p for rx in s.source_topic_regex if (p := _regex(rx)) is not None]
    if regexes:
        names |= {n for n in topics.by_name if any(p.fullmatch(n) for p in regexes)}
    h = hashlib.blake2b(digest_size=8)
    for n in sorted(names):
        t = topics.by_name.get(n)
        h.update(f"{n}\0{'' if t is None else t.topic_id}\0{-1 if t is None else t.partitions}\n".encode())
    return int.from_bytes(h.digest(), "big", signed=True)


# ---------------------------------------------------------------- members and records


@dataclass(frozen=True, slots=True)
class TaskSet:
    active: Tasks = field(default_factory=dict)
    standby: Tasks = field(default_factory=dict)
    warmup: Tasks = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    process_id: str = ""
    user_endpoint: tuple[str, int] | None = None
    client_tags: tuple[tuple[str, str], ...] = ()
    topology_epoch: int = 0
    rebalance_timeout_ms: int = -1


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: MemberState
    tasks: TaskSet
    revoking_active: Tasks = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    epoch: int
    topics_hash: int


@dataclass(frozen=True, slots=True)
class TargetEpochValue:
    epoch: int


class RecordKind(IntEnum):
    GROUP = 0  # GroupMetadataValue
    TOPOLOGY = 1  # Topology
    MEMBER = 2  # MemberMetadata (member)
    TARGET = 3  # TaskSet (member)
    TARGET_EPOCH = 4  # TargetEpochValue
    CURRENT = 5  # CurrentAssignment (member)


RecordValue = GroupMetadataValue | Topology | MemberMetadata | TaskSet | TargetEpochValue | CurrentAssignment


@dataclass(frozen=True, slots=True)
class RecordKey:
    kind: RecordKind
    group: str
    member: str | None = None


Record = tuple[RecordKey, RecordValue | None]


@dataclass(slots=True)
class StreamsMember:
    member_id: str
    meta: MemberMetadata = field(default_factory=MemberMetadata)
    current: CurrentAssignment = field(default_factory=lambda: CurrentAssignment(0, -1, MemberState.STABLE, TaskSet()))
    # runtime only
    session_deadline_ms: int = 0
    rebalance_deadline_ms: int | None = None
    task_offsets: dict[Task, int] = field(default_factory=dict)
    task_end_offsets: dict[Task, int] = field(default_factory=dict)


# ---------------------------------------------------------------- requests


@dataclass(slots=True)
class HeartbeatRequest:
    """What the machine needs from a StreamsGroupHeartbeat."""

    member_id: str
    member_epoch: int
    endpoint_information_epoch: int = 0
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    topology: Topology | None = None
    active: Tasks | None = None  # None: unchanged since the last heartbeat
    standby: Tasks | None = None
    warmup: Tasks | None = None
    process_id: str | None = None
    user_endpoint: tuple[str, int] | None = None
    client_tags: tuple[tuple[str, str], ...] | None = None
    task_offsets: dict[Task, int] | None = None
    task_end_offsets: dict[Task, int] | None = None
    shutdown_application: bool = False
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class HeartbeatResult:
    error: int
    member_id: str = ""
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    acceptable_recovery_lag: int = -1
    task_offset_interval_ms: int = 0
    statuses: list[tuple[Status, str]] = field(default_factory=list)
    tasks: TaskSet | None = None  # None: unchanged
    endpoint_information_epoch: int = 0
    partitions_by_endpoint: list[tuple[tuple[str, int], dict[str, list[int]], dict[str, list[int]]]] | None = None
    create_topics: list[TopicConfig] = field(default_factory=list)
    message: str | None = None


def _flat(tasks: Mapping[str, Iterable[int]]) -> set[Task]:
    return {(s, p) for s, ps in tasks.items() for p in ps}


def _group(tasks: Iterable[Task]) -> Tasks:
    out: dict[str, set[int]] = {}
    for s, p in tasks:
        out.setdefault(s, set()).add(p)
    return {s: frozenset(ps) for s, ps in sorted(out.items())}


def _norm(tasks: Mapping[str, Iterable[int]]) -> Tasks:
    return _group(_flat(tasks))


def _normset(tasks: TaskSet) -> TaskSet:
    return TaskSet(_norm(tasks.active), _norm(tasks.standby), _norm(tasks.warmup))


# ---------------------------------------------------------------- the group


@dataclass(slots=True)
class StreamsGroup:
    group_id: str
    limits: StreamsGroupLimits = field(default_factory=StreamsGroupLimits)
    group_epoch: int = 0
    topics_hash: int = 0
    assignment_epoch: int = 0
    topology: Topology | None = None
    members: dict[str, StreamsMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    target: dict[str, TaskSet] = field(default_factory=dict)
    deleted: bool = False
    pending: list[Record] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    # runtime only
    configured: ConfiguredTopology | None = None
    shutdown_requested: bool = False
    endpoint_epoch: int = 0
    delay_until_ms: int | None = None  # a new group's first real assignment waits until then
    _owners: dict[Task, str] = field(default_factory=dict)  # active task -> member holding it (or revoking it)

    # ------------------------------------------------------------ views

    @property
    def is_empty(self) -> bool:
        return not self.members

    @property
    def state(self) -> StreamsGroupState:
        if self.deleted:
            return StreamsGroupState.DEAD
        if not self.members:
            return StreamsGroupState.EMPTY
        if self.configured is None or not self.configured.ready:
            return StreamsGroupState.NOT_READY
        if self.group_epoch > self.assignment_epoch:
            return StreamsGroupState.ASSIGNING
        for m in self.members.values():
            if m.current.member_epoch != self.assignment_epoch or m.current.state is not MemberState.STABLE:
                return StreamsGroupState.RECONCILING
        return StreamsGroupState.STABLE

    # ------------------------------------------------------------ records

    def replay(self, key: RecordKey, value: RecordValue | None) -> None:
        """Apply one record: the only way persisted state changes."""
        kind, mid = key.kind, key.member or ""
        if kind is RecordKind.GROUP:
            if value is None:
                self.deleted = True
                return
            assert isinstance(value, GroupMetadataValue)
            self.deleted = False
            self.group_epoch, self.topics_hash = value.epoch, value.topics_hash
        elif kind is RecordKind.TOPOLOGY:
            assert value is None or isinstance(value, Topology)
            self.topology = value
            self.configured = None
        elif kind is RecordKind.TARGET_EPOCH:
            self.assignment_epoch = value.epoch if isinstance(value, TargetEpochValue) else 0
        elif kind is RecordKind.MEMBER:
            if value is None:
                self._drop_member(mid)
                return
            assert isinstance(value, MemberMetadata)
            m = self.members.get(mid)
            if m is None:
                m = self.members[mid] = StreamsMember(mid)
            old = m.meta.instance_id
            if old is not None and old != value.instance_id and self.static_members.get(old) == mid:
                del self.static_members[old]
            m.meta = value
            if value.instance_id is not None:
                self.static_members[value.instance_id] = mid
        elif kind is RecordKind.TARGET:
            if value is None:
                self.target.pop(mid, None)
            else:
                assert isinstance(value, TaskSet)
                self.target[mid] = value
        elif kind is RecordKind.CURRENT:
            m = self.members.get(mid)
            if m is None:
                if value is None:
                    return
                m = self.members[mid] = StreamsMember(mid)
            self._release(mid)
            if value is None:
                m.current = CurrentAssignment(0, -1, MemberState.STABLE, TaskSet())
                return
            assert isinstance(value, CurrentAssignment)
            m.current = value
            for t in _flat(value.tasks.active) | _flat(value.revoking_active):
                self._owners[t] = mid

    def _release(self, mid: str) -> None:
        m = self.members.get(mid)
        if m is None:
            return
        for t in _flat(m.current.tasks.active) | _flat(m.current.revoking_active):
            if self._owners.get(t) == mid:
                del self._owners[t]

    def _drop_member(self, mid: str) -> None:
        self._release(mid)
        m = self.members.pop(mid, None)
        if m is not None and m.meta.instance_id is not None and self.static_members.get(m.meta.instance_id) == mid:
            del self.static_members[m.meta.instance_id]
        self.target.pop(mid, None)

    def _emit(self, kind: RecordKind, value: RecordValue | None, member: str | None = None) -> None:
        key = RecordKey(kind, self.group_id, member)
        self.replay(key, value)
        self.pending.append((key, value))

    def take_pending(self) -> list[Record]:
        out, self.pending = self.pending, []
        return out

    def _event(self, name: str, **fields: object) -> None:
        self.events.append((name, fields))

    def _bump(self, topics: TopicImage, reason: str) -> None:
        self._emit(RecordKind.GROUP, GroupMetadataValue(self.group_epoch + 1, topics_hash(self.topology, topics)))
        self._event("group epoch bumped", epoch=self.group_epoch, reason=reason, members=len(self.members))

    def _remove_member(self, mid: str, reason: str) -> None:
        self._emit(RecordKind.CURRENT, None, mid)
        self._emit(RecordKind.TARGET, None, mid)
        self._emit(RecordKind.MEMBER, None, mid)
        self._event("member removed", member=mid, reason=reason)
        if not self.members:
            self.shutdown_requested = False

    def _set_current(self, m: StreamsMember, value: CurrentAssignment) -> None:
        if value != m.current:
            self._emit(RecordKind.CURRENT, value, m.member_id)

    # ------------------------------------------------------------ the heartbeat

    def heartbeat(self, req: HeartbeatRequest, topics: TopicImage, now_ms: int) -> HeartbeatResult:
        """StreamsGroupHeartbeat. Emitted records are left in `pending`."""
        err, message = self._validate(req)
        if err != ErrorCode.NONE:
            return HeartbeatResult(err, req.member_id, req.member_epoch, message=message)
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(req, topics)
        statuses: list[tuple[Status, str]] = []
        if req.member_epoch == 0:
            assert req.topology is not None
            err, message, stale = self._check_topology(req.topology)
            if err != ErrorCode.NONE:
                return HeartbeatResult(err, req.member_id, req.member_epoch, message=message)
            if stale:
                statuses.append(
                    (
                        Status.STALE_TOPOLOGY,
                        f"The member's topology epoch {req.topology.epoch} is behind the group's "
                        f"{self.topology.epoch if self.topology else 0}.",
                    )
                )
            res = self._join(req)
            if isinstance(res, HeartbeatResult):
                return res
            member = res
        else:
            found = self._known(req)
            if isinstance(found, HeartbeatResult):
                return found
            member = found
        before = member.current.member_epoch, member.current.tasks
        bump_reason = None
        alone = self.topology is None or not self.members or set(self.members) == {member.member_id}
        if req.member_epoch == 0 and req.topology is not None and self.topology != req.topology and alone:
            self._emit(RecordKind.TOPOLOGY, req.topology)  # the first member (or the only one) sets the topology
            bump_reason = "topology initialized"
        reason = self._update_member(member, req)
        bump_reason = bump_reason or reason
        member = self.members[member.member_id]
        h = topics_hash(self.topology, topics)
        if self.configured is None or h != self.topics_hash:
            self.configured = configure(self.topology, topics) if self.topology is not None else ConfiguredTopology()
        if bump_reason is None and h != self.topics_hash:
            bump_reason = "topic metadata changed"
        if bump_reason is not None:
            if self.group_epoch == 0 and self.limits.initial_rebalance_delay_ms > 0:
                self.delay_until_ms = now_ms + self.limits.initial_rebalance_delay_ms
            self._bump(topics, bump_reason)
        delayed = self.delay_until_ms is not None
        # while a new group's assignment is delayed, only its first (empty) target is computed
        if self.group_epoch > self.assignment_epoch and not (delayed and self.assignment_epoch > 0):
            self._compute_target(delayed)
        member.session_deadline_ms = now_ms + self.limits.session_timeout_ms
        if req.task_offsets is not None:
            member.task_offsets = dict(req.task_offsets)
        if req.task_end_offsets is not None:
            member.task_end_offsets = dict(req.task_end_offsets)
        if req.shutdown_application and not self.shutdown_requested:
            self.shutdown_requested = True
            self._event("application shutdown requested", member=member.member_id)
        self._reconcile(member, req.active, now_ms)
        if delayed:
            statuses.append(
                (Status.ASSIGNMENT_DELAYED, "Assignment delayed due to the configured initial rebalance delay.")
            )
        statuses += list(self.configured.statuses) if self.configured is not None else []
        if self.shutdown_requested:
            statuses.append(
                (Status.SHUTDOWN_APPLICATION, f"A KafkaStreams client in group {self.group_id} requested a shutdown.")
            )
        # the tasks are sent when joining, when they changed, or when the member reports others
        reported = None
        if req.active is not None:
            reported = TaskSet(_norm(req.active), _norm(req.standby or {}), _norm(req.warmup or {}))
        full = req.member_epoch == 0 or (reported is not None and reported != _normset(member.current.tasks))
        changed = (member.current.member_epoch, member.current.tasks) != before
        res = HeartbeatResult(
            ErrorCode.NONE,
            member.member_id,
            member.current.member_epoch,
            self.limits.heartbeat_interval_ms,
            self.limits.acceptable_recovery_lag,
            self.limits.task_offset_interval_ms,
            statuses,
            member.current.tasks if full or changed else None,
            self.endpoint_epoch,
            create_topics=list(self.configured.missing_internal) if self.configured is not None else [],
        )
        if req.endpoint_information_epoch != self.endpoint_epoch:
            res.partitions_by_endpoint = self.partitions_by_endpoint()
        return res

    def _validate(self, req: HeartbeatRequest) -> tuple[int, str | None]:
        bad = ErrorCode.INVALID_REQUEST
        epoch = req.member_epoch
        if not req.member_id:
            return bad, "MemberId can't be empty."
        if epoch < STATIC_LEAVE_EPOCH:
            return bad, f"MemberEpoch is {epoch}, but must be greater than or equal to -2."
        if epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            return bad, "InstanceId can't be null when MemberEpoch is -2."
        if len({x is None for x in (req.active, req.standby, req.warmup)}) > 1:
            return bad, "If one of ActiveTasks, StandbyTasks and WarmupTasks is null, all must be null."
        if epoch == 0:
            if req.rebalance_timeout_ms <= 0:
                return bad, "RebalanceTimeoutMs must be provided in first request."
            if req.topology is None:
                return bad, "Topology must be non-null when joining the group."
            if req.process_id is None:
                return bad, "ProcessId can't be null when joining the group."
            for tasks in (req.active, req.standby, req.warmup):
                if tasks is None or any(tasks.values()):
                    return bad, "ActiveTasks, StandbyTasks and WarmupTasks must be empty when (re-)joining."
        return ErrorCode.NONE, None

    def _check_topology(self, topology: Topology) -> tuple[int, str | None, bool]:
        """(error, message, stale) for a joining member's topology against the group's."""
        current = self.topology
        if current is None or current == topology or not self.members:
            return ErrorCode.NONE, None, False
        if topology.epoch < current.epoch:
            return ErrorCode.NONE, None, True
        if topology.epoch == current.epoch:
            return (
                ErrorCode.STREAMS_INVALID_TOPOLOGY_EPOCH,
                f"Topology epoch {topology.epoch} is the group's, but the topology differs.",
                False,
            )
        return ErrorCode.INVALID_REQUEST, "Topology updates are not supported yet.", False

    def _leave(self, req: HeartbeatRequest, topics: TopicImage) -> HeartbeatResult:
        mid = req.member_id
        if req.instance_id is not None:
            current = self.static_members.get(req.instance_id)
            if current is None:
                return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID, mid, req.member_epoch)
            if current != mid:
                return HeartbeatResult(ErrorCode.FENCED_INSTANCE_ID, mid, req.member_epoch)
        member = self.members.get(mid)
        if member is None:
            return HeartbeatResult(ErrorCode.UNKNOWN_MEMBER_ID, mid, req.member_epoch)
        if req.member_epoch == STATIC_LEAVE_EPOCH:
            self._set_current(member, replace(member.current, member_epoch=STATIC_LEAVE_EPOCH))
            member.rebalance_deadline_ms = None
            self._event("static member left temporarily", member=mid, instance=req.instance_id)
            return HeartbeatResult(ErrorCode.NONE, mid, STATIC_LEAVE_EPOCH)
        self._remove_member(mid, "left the group")
        self._bump(topics, "member left")
        return HeartbeatResult(ErrorCode.NONE, mid, LEAVE_EPOCH)

    def _join(self, req: HeartbeatRequest) -> StreamsMember | HeartbeatResult:
        mid = req.member_id
        if req.instance_id is not None:
            old_id = self.static_members.get(req.instance_id)
            if old_id is not None and old_id != mid:
                old = self.members[old_id]
                if old.current.member_epoch != STATIC_LEAVE_EPOCH:
                    return HeartbeatResult(
                        ErrorCode.UNRELEASED_INSTANCE_ID,
                        mid,
                        0,
                        message=f"Static member {old_id} with instance id {req.instance_id} is still active",
                    )
                return self._replace_static(old, mid)
        member = self.members.get(mid)
        if member is not None:
            # a known member rejoining (epoch 0) has given up all its tasks
            self._set_current(member, CurrentAssignment(0, member.current.member_epoch, MemberState.STABLE, TaskSet()))
            return member
        if len(self.members) >= self.limits.max_size:
            return HeartbeatResult(
                ErrorCode.GROUP_MAX_SIZE_REACHED,
                mid,
                0,
                message=f"The streams group has reached its maximum capacity of {self.limits.max_size} members.",
            )
        self._event("member joined", member=mid, instance=req.instance_id, client=req.client_id)
        return StreamsMember(mid)  # recorded by _update_member

    def _replace_static(self, old: StreamsMember, new_id: str) -> StreamsMember:
        target, meta = self.target.get(old.member_id, TaskSet()), old.meta
        prev = old.current.previous_member_epoch
        current = replace(old.current, member_epoch=prev)
        self._remove_member(old.member_id, f"replaced by {new_id} (instance {old.meta.instance_id})")
        self._emit(RecordKind.MEMBER, meta, new_id)
        self._emit(RecordKind.TARGET, target, new_id)
        self._emit(RecordKind.CURRENT, current, new_id)
        return self.members[new_id]

    def _known(self, req: HeartbeatRequest) -> StreamsMember | HeartbeatResult:
        mid = req.member_id
        member = self.members.get(mid)
        if member is None:
            return HeartbeatResult(
                ErrorCode.UNKNOWN_MEMBER_ID,
                mid,
                req.member_epoch,
                message=f"Member {mid} is not a member of group {self.group_id}.",
            )
        if req.instance_id is not None and self.static_members.get(req.instance_id) != mid:
            return HeartbeatResult(ErrorCode.FENCED_INSTANCE_ID, mid, req.member_epoch)
        epoch, have = req.member_epoch, member.current.member_epoch
        if epoch > have:
            return HeartbeatResult(
                ErrorCode.FENCED_MEMBER_EPOCH, mid, epoch, message=f"epoch {epoch} is ahead of the member's {have}"
            )
        if epoch < have:
            # a lost response: the previous epoch is fine if the member owns nothing it was not given
            ok = epoch == member.current.previous_member_epoch and (
                req.active is None or _flat(req.active) <= _flat(member.current.tasks.active)
            )
            if not ok:
                return HeartbeatResult(
                    ErrorCode.FENCED_MEMBER_EPOCH, mid, epoch, message=f"epoch {epoch} is behind the member's {have}"
                )
        return member

    def _update_member(self, m: StreamsMember, req: HeartbeatRequest) -> str | None:
        """Apply the request's member fields; the reason for a new group epoch, if any."""
        new = m.member_id not in self.members
        old = m.meta
        meta = MemberMetadata(
            instance_id=req.instance_id if req.instance_id is not None else old.instance_id,
            rack_id=req.rack_id if req.rack_id is not None else old.rack_id,
            client_id=req.client_id or old.client_id,
            client_host=req.client_host or old.client_host,
            process_id=req.process_id if req.process_id is not None else old.process_id,
            user_endpoint=req.user_endpoint if req.user_endpoint is not None else old.user_endpoint,
            client_tags=req.client_tags if req.client_tags is not None else old.client_tags,
            topology_epoch=req.topology.epoch if req.topology is not None else old.topology_epoch,
            rebalance_timeout_ms=req.rebalance_timeout_ms if req.rebalance_timeout_ms > 0 else old.rebalance_timeout_ms,
        )
        if not new and meta == old:
            return None
        self._emit(RecordKind.MEMBER, meta, m.member_id)
        if new:
            return "member joined"
        if (meta.process_id, meta.rack_id, meta.client_tags, meta.user_endpoint, meta.topology_epoch) != (
            old.process_id,
            old.rack_id,
            old.client_tags,
            old.user_endpoint,
            old.topology_epoch,
        ):
            return "member metadata changed"
        return None

    # ------------------------------------------------------------ target assignment

    def _compute_target(self, delayed: bool = False) -> None:
        """The target at the group epoch: nothing for anyone while a new group's assignment is delayed."""
        configured = None if delayed else self.configured
        tasks = {} if configured is None else {s.subtopology_id: s.tasks for s in configured.subtopologies.values()}
        stateful = frozenset(
            s.subtopology_id
            for s in (configured.subtopologies.values() if configured else ())
            if s.state_changelog_topics
        )
        members = {
            mid: AssignorMember(
                m.meta.process_id or mid,
                frozenset(_flat(self.target.get(mid, TaskSet()).active)),
                frozenset(_flat(self.target.get(mid, TaskSet()).standby)),
            )
            for mid, m in self.members.items()
        }
        result = assign(members, tasks, stateful, self.limits.num_standby_replicas)
        changed_endpoints = False
        for mid in self.members:
            r = result[mid]
            new = TaskSet(_group(r.active), _group(r.standby), {})
            if new != self.target.get(mid):
                self._emit(RecordKind.TARGET, new, mid)
                changed_endpoints = changed_endpoints or self.members[mid].meta.user_endpoint is not None
        self._emit(RecordKind.TARGET_EPOCH, TargetEpochValue(self.group_epoch))
        if changed_endpoints:
            self.endpoint_epoch += 1
        self._event("target assignment computed", epoch=self.group_epoch, tasks=sum(tasks.values()))

    # ------------------------------------------------------------ reconciliation

    def _reconcile(self, m: StreamsMember, owned_active: Tasks | None, now_ms: int) -> None:
        cur = m.current
        if cur.state is MemberState.UNREVOKED_TASKS:
            if owned_active is None or _flat(owned_active) & _flat(cur.revoking_active):
                return
            self._next_assignment(m, now_ms)
        elif cur.state is MemberState.UNRELEASED_TASKS or cur.member_epoch != self.assignment_epoch:
            self._next_assignment(m, now_ms)

    def _next_assignment(self, m: StreamsMember, now_ms: int) -> None:
        cur = m.current
        target = self.target.get(m.member_id, TaskSet())
        have = _flat(cur.tasks.active)
        want = _flat(target.active)
        keep, revoke = have & want, have - want
        if revoke:
            tasks = TaskSet(
                _group(keep),
                _group(_flat(cur.tasks.standby) & _flat(target.standby)),
                _group(_flat(cur.tasks.warmup) & _flat(target.warmup)),
            )
            self._set_current(
                m,
                CurrentAssignment(
                    cur.member_epoch, cur.previous_member_epoch, MemberState.UNREVOKED_TASKS, tasks, _group(revoke)
                ),
            )
            if m.rebalance_deadline_ms is None:
                m.rebalance_deadline_ms = now_ms + max(m.meta.rebalance_timeout_ms, 0)
            return
        m.rebalance_deadline_ms = None
        free = {t for t in want - have if self._owners.get(t) in (None, m.member_id)}
        unreleased = want - have - free
        epoch = self.assignment_epoch
        prev = cur.member_epoch if cur.member_epoch != epoch else cur.previous_member_epoch
        state = MemberState.UNRELEASED_TASKS if unreleased else MemberState.STABLE
        tasks = TaskSet(_group(keep | free), _norm(target.standby), _norm(target.warmup))
        self._set_current(m, CurrentAssignment(epoch, prev, state, tasks))

    # ------------------------------------------------------------ endpoints (interactive queries)

    def partitions_by_endpoint(
        self,
    ) -> list[tuple[tuple[str, int], dict[str, list[int]], dict[str, list[int]]]]:
        """Per user endpoint: the source-topic partitions of its members' active and standby tasks."""
        configured = self.configured.subtopologies if self.configured is not None else {}
        by: dict[tuple[str, int], tuple[set[tuple[str, int]], set[tuple[str, int]]]] = {}
        for mid, m in self.members.items():
            ep = m.meta.user_endpoint
            if ep is None:
                continue
            active, standby = by.setdefault(ep, (set(), set()))
            target = self.target.get(mid, TaskSet())
            for tasks, out in ((target.active, active), (target.standby, standby)):
                for s, p in _flat(tasks):
                    sub = configured.get(s)
                    if sub is None:
                        continue
                    names = list(sub.source_topics) + [t.name for t in sub.repartition_source_topics]
                    out |= {(n, p) for n in names}
        result = []
        for ep in sorted(by):
            act, stb = by[ep]
            result.append((ep, _by_topic(act), _by_topic(stb)))
        return result

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> int | None:
        times = [m.session_deadline_ms for m in self.members.values()]
        times += [m.rebalance_deadline_ms for m in self.members.values() if m.rebalance_deadline_ms is not None]
        if self.delay_until_ms is not None:
            times.append(self.delay_until_ms)
        return min(times) if times else None

    def tick(self, now_ms: int, topics: TopicImage) -> None:
        """Fence members whose session expired or who did not revoke within their rebalance timeout;
        end a new group's assignment delay (a new group epoch: the next heartbeat assigns tasks)."""
        if self.delay_until_ms is not None and self.delay_until_ms <= now_ms:
            self.delay_until_ms = None
            if self.members:
                self._bump(topics, "initial rebalance delay elapsed")
        gone = False
        for mid, m in list(self.members.items()):
            if m.session_deadline_ms <= now_ms:
                self._remove_member(mid, "session timeout")
                gone = True
            elif m.rebalance_deadline_ms is not None and m.rebalance_deadline_ms <= now_ms:
                self._remove_member(mid, "did not revoke its tasks within the rebalance timeout")
                gone = True
        if gone:
            self._bump(topics, "members fenced")

    def start_timers(self, now_ms: int) -> None:
        """After loading: every member gets a full session to come back."""
        for m in self.members.values():
            m.session_deadline_ms = now_ms + self.limits.session_timeout_ms
            if m.current.state is MemberState.UNREVOKED_TASKS:
                m.rebalance_deadline_ms = now_ms + max(m.meta.rebalance_timeout_ms, 0)

    # ------------------------------------------------------------ offsets and deletion

    def validate_commit(self, member_id: str, member_epoch: int) -> int:
        """OffsetCommit against this group: a member's epoch must be its current one."""
        if self.deleted:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if member_epoch < 0 and not member_id and not self.members:
            return ErrorCode.NONE
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.current.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_fetch(self, member_id: str | None, member_epoch: int) -> int:
        if member_id is None or member_epoch < 0:
            return ErrorCode.NONE
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.current.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def delete(self) -> int:
        """DeleteGroups: tombstones for the group's own records (the caller removes offsets)."""
        if self.members:
            return ErrorCode.NON_EMPTY_GROUP
        for mid in list(self.target):
            self._emit(RecordKind.TARGET, None, mid)
        self._emit(RecordKind.TARGET_EPOCH, None)
        self._emit(RecordKind.TOPOLOGY, None)
        self._emit(RecordKind.GROUP, None)
        return ErrorCode.NONE


def _by_topic(tps: set[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for n, p in sorted(tps):
        out.setdefault(n, []).append(p)
    return out


@dataclass(slots=True)
class StreamsGroups:
    """Every Streams group of a coordinator."""

    limits: StreamsGroupLimits = field(default_factory=StreamsGroupLimits)
    groups: dict[str, StreamsGroup] = field(default_factory=dict)

    def get(self, group_id: str) -> StreamsGroup | None:
        g = self.groups.get(group_id)
        return None if g is None or g.deleted else g

    def get_or_create(self, group_id: str) -> StreamsGroup:
        g = self.groups.get(group_id)
        if g is None or g.deleted:
            g = self.groups[group_id] = StreamsGroup(group_id, self.limits)
        return g

    def replay(self, key: RecordKey, value: RecordValue | None) -> None:
        """A record read from `__consumer_offsets` (loading)."""
        g = self.groups.get(key.group)
        if g is None:
            if value is None:
                return
            g = self.groups[key.group] = StreamsGroup(key.group, self.limits)
        g.replay(key, value)
        self.forget_if_dead(key.group)

    def forget_if_dead(self, group_id: str) -> None:
        g = self.groups.get(group_id)
        if g is not None and g.deleted and not g.members:
            del self.groups[group_id]


def limits_from_config(cfg: object) -> StreamsGroupLimits:
    """StreamsGroupLimits from a BrokerConfig's group.streams.* keys."""
    return StreamsGroupLimits(
        session_timeout_ms=int(getattr(cfg, "group_streams_session_timeout_ms", 45_000)),
        heartbeat_interval_ms=int(getattr(cfg, "group_streams_heartbeat_interval_ms", 5_000)),
        max_size=int(getattr(cfg, "group_streams_max_size", INT_MAX)),
        num_standby_replicas=int(getattr(cfg, "group_streams_num_standby_replicas", 0)),
        initial_rebalance_delay_ms=int(getattr(cfg, "group_streams_initial_rebalance_delay_ms", 3_000)),
    )
