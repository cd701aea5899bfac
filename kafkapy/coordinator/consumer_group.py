"""Consumer-protocol (KIP-848) groups as a sans-IO state machine.

Three epochs drive a group:

* the *group epoch* grows whenever what the assignor sees changes: a member
  joins or leaves, a subscription (topic names, regex, assignor, rack)
  changes, or the subscribed topics' metadata changes (a topic appears,
  gains partitions);
* the *assignment epoch* is the group epoch the current *target assignment*
  was computed for (by the server-side assignor, `uniform` or `range`);
* each member's *member epoch* is the target epoch it has reconciled to.

A member converges on its target in steps (Kafka's reconciliation rules):

  STABLE                 it owns exactly its target at the assignment epoch
  UNREVOKED_PARTITIONS   it must first give up partitions no longer in its
                         target; it keeps its epoch (and is only told the
                         partitions it keeps) until a heartbeat reports them
                         gone, within its rebalance timeout, else it is fenced
  UNRELEASED_PARTITIONS  it is at the new epoch but some target partitions
                         are still owned (assigned or pending revocation) by
                         other members; they are handed over once released

So a partition is never given to a member while another still holds it.

Every persisted change is a record (`consumer_records.py`, Kafka's layouts),
applied by `replay`, the one mutator of persisted state; a request appends
the records it emits to `ConsumerGroup.pending` after applying them, and the
coordinator writes them to `__consumer_offsets`. Loading replays the same
records through the same `replay`. Session and rebalance deadlines are
runtime-only, restarted on load.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from uuid import UUID

from kafkapy.coordinator.consumer_assignors import (
    ASSIGNORS,
    TP,
    MemberSpec,
    assignor_name,
)
from kafkapy.coordinator.consumer_records import (
    CURRENT_MEMBER,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    TARGET_MEMBER,
    TARGET_METADATA,
    CgKey,
    CgValue,
    CurrentMemberValue,
    GroupMetadataValue,
    MemberMetadataValue,
    TargetMemberValue,
    TargetMetadataValue,
)
from kafkapy.protocol.error_codes import ErrorCode

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
INT_MAX = 2**31 - 1

Partitions = dict[UUID, frozenset[int]]
Record = tuple[CgKey, CgValue | None]


class MemberState(IntEnum):
    """Kafka's MemberState values, as stored in ConsumerGroupCurrentMemberAssignment."""

    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


class ConsumerGroupState(str, Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ConsumerGroupLimits:
    """Broker settings (group.consumer.*)."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    max_size: int = INT_MAX
    assignors: tuple[str, ...] = ("uniform", "range")  # the first is the default

    @property
    def default_assignor(self) -> str:
        return self.assignors[0]


@dataclass(frozen=True, slots=True)
class TopicMeta:
    name: str
    topic_id: UUID
    partitions: int


@dataclass(slots=True)
class TopicImage:
    """The broker's topics as the group sees them, by name and by id."""

    by_name: dict[str, TopicMeta] = field(default_factory=dict)
    by_id: dict[UUID, TopicMeta] = field(default_factory=dict)

    @classmethod
    def of(cls, topics: Iterable[TopicMeta]) -> TopicImage:
        img = cls()
        for t in topics:
            img.by_name[t.name] = t
            img.by_id[t.topic_id] = t
        return img


@dataclass(slots=True)
class HeartbeatRequest:
    """What the machine needs from a ConsumerGroupHeartbeat, whatever its version."""

    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: dict[UUID, frozenset[int]] | None = None  # topic_partitions; None: unchanged since last sent
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class HeartbeatResult:
    error: int
    member_id: str = ""
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Partitions | None = None  # None: unchanged, the member keeps what it has
    message: str | None = None


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Partitions = field(default_factory=dict)
    pending_revocation: Partitions = field(default_factory=dict)
    # runtime only
    session_deadline_ms: int = 0
    rebalance_deadline_ms: int | None = None

    def metadata_value(self) -> MemberMetadataValue:
        return MemberMetadataValue(
            self.instance_id,
            self.rack_id,
            self.client_id,
            self.client_host,
            list(self.subscribed_topic_names),
            self.subscribed_topic_regex,
            self.rebalance_timeout_ms,
            self.server_assignor,
        )

    def current_value(self) -> CurrentMemberValue:
        return CurrentMemberValue(
            self.member_epoch,
            self.previous_member_epoch,
            int(self.state),
            dict(self.assigned),
            dict(self.pending_revocation),
        )


def _tps(parts: Mapping[UUID, Iterable[int]]) -> set[TP]:
    return {(t, p) for t, ps in parts.items() for p in ps}


def _group(tps: Iterable[TP]) -> Partitions:
    out: dict[UUID, set[int]] = {}
    for t, p in tps:
        out.setdefault(t, set()).add(p)
    return {t: frozenset(ps) for t, ps in out.items()}


def _compile(regex: str) -> re.Pattern[str] | None:
    try:
        return re.compile(regex)
    except re.error:
        return None


def metadata_hash(topics: Iterable[TopicMeta]) -> int:
    """A stable signed 64-bit digest of the subscribed topics (name, id, partition count)."""
    h = hashlib.blake2b(digest_size=8)
    for t in sorted(topics, key=lambda t: t.name):
        h.update(f"{t.name}\0{t.topic_id}\0{t.partitions}\n".encode())
    return int.from_bytes(h.digest(), "big", signed=True)


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    limits: ConsumerGroupLimits = field(default_factory=ConsumerGroupLimits)
    group_epoch: int = 0
    metadata_hash: int = 0
    assignment_epoch: int = 0
    created_ms: int = -1
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    target: dict[str, Partitions] = field(default_factory=dict)
    deleted: bool = False
    pending: list[Record] = field(default_factory=list)  # emitted by the current call, for the coordinator to write
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # for the log
    _owners: dict[TP, str] = field(default_factory=dict)  # partition -> member holding it (assigned or revoking)
    _regex: dict[str, re.Pattern[str] | None] = field(default_factory=dict)

    # ------------------------------------------------------------ views

    @property
    def state(self) -> ConsumerGroupState:
        if self.deleted:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    @property
    def is_empty(self) -> bool:
        return not self.members

    def preferred_assignor(self) -> str:
        """The assignor most members ask for (ties: the configured order), else the default."""
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor:
                name = assignor_name(m.server_assignor)
                votes[name] = votes.get(name, 0) + 1
        if not votes:
            return self.limits.default_assignor
        order = list(self.limits.assignors)
        return max(votes, key=lambda n: (votes[n], -order.index(n) if n in order else -len(order)))

    def subscribed_names(self, member: ConsumerMember, topics: TopicImage) -> set[str]:
        names = {n for n in member.subscribed_topic_names if n in topics.by_name}
        if member.subscribed_topic_regex:
            rx = self._regex.get(member.subscribed_topic_regex)
            if member.subscribed_topic_regex not in self._regex:
                rx = self._regex[member.subscribed_topic_regex] = _compile(member.subscribed_topic_regex)
            if rx is not None:
                names |= {n for n in topics.by_name if rx.fullmatch(n)}  # internal topics too, as in Kafka
        return names

    def subscribed_topics(self, topics: TopicImage) -> set[str]:
        out: set[str] = set()
        for m in self.members.values():
            out |= self.subscribed_names(m, topics)
        return out

    def owner(self, tp: TP) -> str | None:
        return self._owners.get(tp)

    # ------------------------------------------------------------ records

    def replay(self, key: CgKey, value: CgValue | None) -> None:
        """Apply one record: the only way persisted state changes, live or loading."""
        rt = key.record_type
        if rt == GROUP_METADATA:
            if value is None:
                self.deleted = True
                return
            assert isinstance(value, GroupMetadataValue)
            self.deleted = False
            self.group_epoch = value.epoch
            self.metadata_hash = value.metadata_hash
            if value.creation_time_ms >= 0:
                self.created_ms = value.creation_time_ms
        elif rt == TARGET_METADATA:
            self.assignment_epoch = 0 if value is None else value.assignment_epoch  # type: ignore[union-attr]
        elif rt == PARTITION_METADATA:
            return
        elif rt == MEMBER_METADATA:
            mid = key.member or ""
            if value is None:
                self._drop_member(mid)
                return
            assert isinstance(value, MemberMetadataValue)
            m = self.members.get(mid)
            if m is None:
                m = self.members[mid] = ConsumerMember(mid)
            if (
                m.instance_id is not None
                and m.instance_id != value.instance_id
                and self.static_members.get(m.instance_id) == mid
            ):
                del self.static_members[m.instance_id]
            m.instance_id = value.instance_id
            m.rack_id = value.rack_id
            m.client_id = value.client_id
            m.client_host = value.client_host
            m.subscribed_topic_names = list(value.subscribed_topic_names)
            m.subscribed_topic_regex = value.subscribed_topic_regex
            m.rebalance_timeout_ms = value.rebalance_timeout_ms
            m.server_assignor = value.server_assignor
            if m.instance_id is not None:
                self.static_members[m.instance_id] = mid
        elif rt == TARGET_MEMBER:
            mid = key.member or ""
            if value is None:
                self.target.pop(mid, None)
            else:
                assert isinstance(value, TargetMemberValue)
                self.target[mid] = dict(value.partitions)
        elif rt == CURRENT_MEMBER:
            mid = key.member or ""
            m = self.members.get(mid)
            if m is None:
                if value is None:
                    return
                m = self.members[mid] = ConsumerMember(mid)
            self._release(mid)
            if value is None:
                m.member_epoch, m.previous_member_epoch, m.state = 0, -1, MemberState.STABLE
                m.assigned, m.pending_revocation = {}, {}
                return
            assert isinstance(value, CurrentMemberValue)
            m.member_epoch = value.member_epoch
            m.previous_member_epoch = value.previous_member_epoch
            try:
                m.state = MemberState(value.state)
            except ValueError:
                m.state = MemberState.UNKNOWN
            m.assigned = {t: p for t, p in value.assigned.items() if p}
            m.pending_revocation = {t: p for t, p in value.pending_revocation.items() if p}
            for tp in _tps(m.assigned) | _tps(m.pending_revocation):
                self._owners[tp] = mid

    def _release(self, mid: str) -> None:
        m = self.members.get(mid)
        if m is None:
            return
        for tp in _tps(m.assigned) | _tps(m.pending_revocation):
            if self._owners.get(tp) == mid:
                del self._owners[tp]

    def _drop_member(self, mid: str) -> None:
        self._release(mid)
        m = self.members.pop(mid, None)
        if m is not None and m.instance_id is not None and self.static_members.get(m.instance_id) == mid:
            del self.static_members[m.instance_id]
        self.target.pop(mid, None)

    def _emit(self, key: CgKey, value: CgValue | None) -> None:
        self.replay(key, value)
        self.pending.append((key, value))

    def take_pending(self) -> list[Record]:
        out, self.pending = self.pending, []
        return out

    def _event(self, name: str, **fields: object) -> None:
        self.events.append((name, fields))

    def _key(self, rt: int, member: str | None = None) -> CgKey:
        return CgKey(rt, self.group_id, member)

    def _bump(self, topics: TopicImage, reason: str) -> None:
        subscribed = [topics.by_name[n] for n in self.subscribed_topics(topics)]
        self._emit(
            self._key(GROUP_METADATA),
            GroupMetadataValue(self.group_epoch + 1, metadata_hash(subscribed), self.created_ms),
        )
        self._event("group epoch bumped", epoch=self.group_epoch, reason=reason, members=len(self.members))

    def _remove_member(self, mid: str, reason: str) -> None:
        self._emit(self._key(CURRENT_MEMBER, mid), None)
        self._emit(self._key(TARGET_MEMBER, mid), None)
        self._emit(self._key(MEMBER_METADATA, mid), None)
        self._event("member removed", member=mid, reason=reason)

    def _set_current(
        self, m: ConsumerMember, epoch: int, prev: int, state: MemberState, assigned: Partitions, revoking: Partitions
    ) -> None:
        value = CurrentMemberValue(epoch, prev, int(state), assigned, revoking)
        if value != m.current_value():
            self._emit(self._key(CURRENT_MEMBER, m.member_id), value)

    # ------------------------------------------------------------ the heartbeat

    def heartbeat(self, req: HeartbeatRequest, topics: TopicImage, now_ms: int) -> HeartbeatResult:
        """ConsumerGroupHeartbeat. Emitted records are left in `pending`."""
        err, message = self._validate(req)
        if err != ErrorCode.NONE:
            return HeartbeatResult(err, req.member_id, req.member_epoch, message=message)
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(req, topics)
        if req.member_epoch == 0:
            res = self._join(req, now_ms)
            if isinstance(res, HeartbeatResult):
                return res
            member = res
        else:
            found = self._known(req)
            if isinstance(found, HeartbeatResult):
                return found
            member = found
        before = (member.member_epoch, dict(member.assigned))
        bump_reason = self._update_member(member, req)
        member = self.members[member.member_id]  # a new member exists once its metadata record is replayed
        if self.created_ms < 0:
            self.created_ms = now_ms
        subscribed = [topics.by_name[n] for n in self.subscribed_topics(topics)]
        if bump_reason is None and metadata_hash(subscribed) != self.metadata_hash:
            bump_reason = "subscribed topic metadata changed"
        if bump_reason is not None:
            self._bump(topics, bump_reason)
        if self.group_epoch > self.assignment_epoch:
            self._compute_target(topics)
        member.session_deadline_ms = now_ms + self.limits.session_timeout_ms
        self._reconcile(member, req.owned, now_ms)
        full = req.member_epoch == 0 or req.owned is not None or req.subscribed_topic_names is not None
        changed = (member.member_epoch, member.assigned) != before
        return HeartbeatResult(
            ErrorCode.NONE,
            member.member_id,
            member.member_epoch,
            self.limits.heartbeat_interval_ms,
            dict(member.assigned) if full or changed else None,
        )

    def _validate(self, req: HeartbeatRequest) -> tuple[int, str | None]:
        bad = ErrorCode.INVALID_REQUEST
        epoch = req.member_epoch
        if epoch < STATIC_LEAVE_EPOCH:
            return bad, f"MemberEpoch {epoch} is invalid"
        if epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            return bad, "InstanceId must be set to leave temporarily (MemberEpoch -2)"
        if epoch != 0 and not req.member_id:
            return bad, "MemberId can't be empty"
        if epoch == 0:
            if req.rebalance_timeout_ms <= 0:
                return bad, "RebalanceTimeoutMs must be provided in first request"
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                return bad, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request"
            if req.owned is not None and any(req.owned.values()):
                return bad, "TopicPartitions must be empty when (re-)joining"
        if req.server_assignor is not None and assignor_name(req.server_assignor) not in self.limits.assignors:
            return (
                ErrorCode.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {req.server_assignor} is not supported; supported: {', '.join(self.limits.assignors)}",
            )
        if req.subscribed_topic_regex and _compile(req.subscribed_topic_regex) is None:
            return bad, f"SubscribedTopicRegex {req.subscribed_topic_regex!r} is not a valid regular expression"
        return ErrorCode.NONE, None

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
            # A static member away for a while: it keeps its partitions until its session times out.
            self._set_current(
                member,
                STATIC_LEAVE_EPOCH,
                member.member_epoch,
                member.state,
                dict(member.assigned),
                dict(member.pending_revocation),
            )
            member.rebalance_deadline_ms = None
            self._event("static member left temporarily", member=mid, instance=req.instance_id)
            return HeartbeatResult(ErrorCode.NONE, mid, STATIC_LEAVE_EPOCH)
        self._remove_member(mid, "left the group")
        self._bump(topics, "member left")
        return HeartbeatResult(ErrorCode.NONE, mid, LEAVE_EPOCH)

    def _join(self, req: HeartbeatRequest, now_ms: int) -> ConsumerMember | HeartbeatResult:
        mid = req.member_id or str(uuid.uuid4())
        if req.instance_id is not None:
            old_id = self.static_members.get(req.instance_id)
            if old_id is not None and old_id != mid:
                old = self.members[old_id]
                if old.member_epoch != STATIC_LEAVE_EPOCH:
                    return HeartbeatResult(
                        ErrorCode.UNRELEASED_INSTANCE_ID,
                        mid,
                        0,
                        message=f"Static member {old_id} with instance id {req.instance_id} is still active",
                    )
                return self._replace_static(old, mid, req)
        member = self.members.get(mid)
        if member is not None:
            # A known member (re)joining with epoch 0 has given up everything it owned.
            self._set_current(member, 0, member.member_epoch, MemberState.STABLE, {}, {})
            return member
        if len(self.members) >= self.limits.max_size:
            return HeartbeatResult(
                ErrorCode.GROUP_MAX_SIZE_REACHED,
                mid,
                0,
                message=f"The consumer group has reached its maximum capacity of {self.limits.max_size} members",
            )
        self._event("member joined", member=mid, instance=req.instance_id, client=req.client_id)
        return ConsumerMember(mid)  # recorded by _update_member

    def _replace_static(self, old: ConsumerMember, new_id: str, req: HeartbeatRequest) -> ConsumerMember:
        """KIP-848 static membership: the new member id takes over the departed one's partitions and epoch."""
        target = dict(self.target.get(old.member_id, {}))
        epoch, prev, state = old.previous_member_epoch, old.previous_member_epoch, old.state
        assigned, revoking = dict(old.assigned), dict(old.pending_revocation)
        meta = old.metadata_value()
        self._remove_member(old.member_id, f"replaced by {new_id} (instance {old.instance_id})")
        self._emit(self._key(MEMBER_METADATA, new_id), meta)
        self._emit(self._key(TARGET_MEMBER, new_id), TargetMemberValue(target))
        self._emit(self._key(CURRENT_MEMBER, new_id), CurrentMemberValue(epoch, prev, int(state), assigned, revoking))
        return self.members[new_id]

    def _known(self, req: HeartbeatRequest) -> ConsumerMember | HeartbeatResult:
        mid = req.member_id
        member = self.members.get(mid)
        if member is None:
            return HeartbeatResult(
                ErrorCode.UNKNOWN_MEMBER_ID,
                mid,
                req.member_epoch,
                message=f"Member {mid} is not a member of group {self.group_id}",
            )
        if req.instance_id is not None and self.static_members.get(req.instance_id) != mid:
            return HeartbeatResult(ErrorCode.FENCED_INSTANCE_ID, mid, req.member_epoch)
        epoch = req.member_epoch
        if epoch > member.member_epoch:
            return HeartbeatResult(
                ErrorCode.FENCED_MEMBER_EPOCH,
                mid,
                epoch,
                message=f"epoch {epoch} is ahead of the member's epoch {member.member_epoch}",
            )
        if epoch < member.member_epoch:
            # The member may have lost the response that moved it on: its previous epoch
            # is fine as long as it owns nothing it was not given.
            lost_response = epoch == member.previous_member_epoch and (
                req.owned is None or _tps(req.owned) <= _tps(member.assigned)
            )
            if not lost_response:
                return HeartbeatResult(
                    ErrorCode.FENCED_MEMBER_EPOCH,
                    mid,
                    epoch,
                    message=f"epoch {epoch} is behind the member's epoch {member.member_epoch}",
                )
        return member

    def _update_member(self, m: ConsumerMember, req: HeartbeatRequest) -> str | None:
        """Apply the request's subscription fields; the reason for a new group epoch, if any."""
        new = m.member_id not in self.members
        updated = ConsumerMember(
            m.member_id,
            instance_id=req.instance_id if req.instance_id is not None else m.instance_id,
            rack_id=req.rack_id if req.rack_id is not None else m.rack_id,
            client_id=req.client_id or m.client_id,
            client_host=req.client_host or m.client_host,
            subscribed_topic_names=(
                list(req.subscribed_topic_names)
                if req.subscribed_topic_names is not None
                else list(m.subscribed_topic_names)
            ),
            subscribed_topic_regex=(
                (req.subscribed_topic_regex or None)
                if req.subscribed_topic_regex is not None
                else m.subscribed_topic_regex
            ),
            rebalance_timeout_ms=req.rebalance_timeout_ms if req.rebalance_timeout_ms > 0 else m.rebalance_timeout_ms,
            server_assignor=req.server_assignor if req.server_assignor is not None else m.server_assignor,
        )
        value = updated.metadata_value()
        if not new and value == m.metadata_value():
            return None
        self._emit(self._key(MEMBER_METADATA, m.member_id), value)
        if new:
            return "member joined"
        if (
            sorted(updated.subscribed_topic_names) != sorted(m.subscribed_topic_names)
            or updated.subscribed_topic_regex != m.subscribed_topic_regex
            or updated.server_assignor != m.server_assignor
            or updated.rack_id != m.rack_id
        ):
            return "subscription changed"
        return None

    # ------------------------------------------------------------ target assignment

    def _compute_target(self, topics: TopicImage) -> None:
        name = self.preferred_assignor()
        assign = ASSIGNORS[name]
        specs = {
            mid: MemberSpec(
                frozenset(topics.by_name[n].topic_id for n in self.subscribed_names(m, topics)), m.instance_id
            )
            for mid, m in self.members.items()
        }
        counts = {t.topic_id: t.partitions for t in topics.by_id.values()}
        previous = {mid: frozenset(_tps(self.target.get(mid, {}))) for mid in self.members}
        result = assign(specs, counts, previous)
        for mid in self.members:
            new = _group(result.get(mid, set()))
            if new != self.target.get(mid):
                self._emit(self._key(TARGET_MEMBER, mid), TargetMemberValue(new))
        self._emit(self._key(TARGET_METADATA), TargetMetadataValue(self.group_epoch))
        self._event("target assignment computed", epoch=self.group_epoch, assignor=name, members=len(self.members))

    # ------------------------------------------------------------ reconciliation

    def _reconcile(self, m: ConsumerMember, owned: Partitions | None, now_ms: int) -> None:
        if m.state is MemberState.UNREVOKED_PARTITIONS:
            still = owned is None or bool(_tps(owned) & _tps(m.pending_revocation))
            if still:
                return
            self._next_assignment(m, now_ms)
        elif m.state is MemberState.UNRELEASED_PARTITIONS or m.member_epoch != self.assignment_epoch:
            self._next_assignment(m, now_ms)

    def _next_assignment(self, m: ConsumerMember, now_ms: int) -> None:
        current = _tps(m.assigned)
        target = _tps(self.target.get(m.member_id, {}))
        keep = current & target
        revoke = current - target
        wanted = target - current
        free = {tp for tp in wanted if self._owners.get(tp) in (None, m.member_id)}
        unreleased = wanted - free
        epoch = self.assignment_epoch
        if revoke:
            self._set_current(
                m,
                m.member_epoch,
                m.previous_member_epoch,
                MemberState.UNREVOKED_PARTITIONS,
                _group(keep),
                _group(revoke),
            )
            if m.rebalance_deadline_ms is None:
                m.rebalance_deadline_ms = now_ms + max(m.rebalance_timeout_ms, 0)
            return
        m.rebalance_deadline_ms = None
        prev = m.member_epoch if m.member_epoch != epoch else m.previous_member_epoch
        state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        self._set_current(m, epoch, prev, state, _group(keep | free), {})

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> int | None:
        times = [m.session_deadline_ms for m in self.members.values()]
        times += [m.rebalance_deadline_ms for m in self.members.values() if m.rebalance_deadline_ms is not None]
        return min(times) if times else None

    def tick(self, now_ms: int, topics: TopicImage) -> None:
        """Fence members whose session expired or who did not revoke within their rebalance timeout."""
        gone = False
        for mid, m in list(self.members.items()):
            if m.session_deadline_ms <= now_ms:
                self._remove_member(mid, "session timeout")
                gone = True
            elif m.rebalance_deadline_ms is not None and m.rebalance_deadline_ms <= now_ms:
                self._remove_member(mid, "did not revoke its partitions within the rebalance timeout")
                gone = True
        if gone:
            self._bump(topics, "members fenced")

    def start_timers(self, now_ms: int) -> None:
        """After loading: every member gets a full session to come back."""
        for m in self.members.values():
            m.session_deadline_ms = now_ms + self.limits.session_timeout_ms
            if m.state is MemberState.UNREVOKED_PARTITIONS:
                m.rebalance_deadline_ms = now_ms + max(m.rebalance_timeout_ms, 0)

    # ------------------------------------------------------------ offsets and deletion

    def validate_commit(self, member_id: str, member_epoch: int) -> int:
        """OffsetCommit against this group: a member's epoch must be its current one."""
        if self.deleted:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if member_epoch < 0 and not member_id and not self.members:
            return ErrorCode.NONE  # a simple (non-member) commit to an empty group
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_fetch(self, member_id: str | None, member_epoch: int) -> int:
        """OffsetFetch v9 with a member id: the member must exist and be at that epoch."""
        if member_id is None or member_epoch < 0:
            return ErrorCode.NONE
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def delete(self) -> int:
        """DeleteGroups: tombstones for the group's own records (the caller removes offsets)."""
        if self.members:
            return ErrorCode.NON_EMPTY_GROUP
        for mid in list(self.target):
            self._emit(self._key(TARGET_MEMBER, mid), None)
        self._emit(self._key(TARGET_METADATA), None)
        self._emit(self._key(GROUP_METADATA), None)
        return ErrorCode.NONE


@dataclass(slots=True)
class ConsumerGroups:
    """Every consumer-protocol group of a coordinator, fed by `replay` (live and on load)."""

    limits: ConsumerGroupLimits = field(default_factory=ConsumerGroupLimits)
    groups: dict[str, ConsumerGroup] = field(default_factory=dict)

    def get(self, group_id: str) -> ConsumerGroup | None:
        g = self.groups.get(group_id)
        return None if g is None or g.deleted else g

    def get_or_create(self, group_id: str) -> ConsumerGroup:
        g = self.groups.get(group_id)
        if g is None or g.deleted:
            g = self.groups[group_id] = ConsumerGroup(group_id, self.limits)
        return g

    def replay(self, key: CgKey, value: CgValue | None) -> None:
        g = self.groups.get(key.group)
        if g is None:
            if value is None:
                return
            g = self.groups[key.group] = ConsumerGroup(key.group, self.limits)
        g.replay(key, value)
        self.forget_if_dead(key.group)

    def forget_if_dead(self, group_id: str) -> None:
        g = self.groups.get(group_id)
        if g is not None and g.deleted and not g.members:
            del self.groups[group_id]


def limits_from_config(cfg: object) -> ConsumerGroupLimits:
    """ConsumerGroupLimits from a BrokerConfig's group.consumer.* keys."""
    names = tuple(
        dict.fromkeys(assignor_name(a) for a in getattr(cfg, "group_consumer_assignors", ("uniform", "range")))
    )
    return ConsumerGroupLimits(
        session_timeout_ms=int(getattr(cfg, "group_consumer_session_timeout_ms", 45_000)),
        heartbeat_interval_ms=int(getattr(cfg, "group_consumer_heartbeat_interval_ms", 5_000)),
        max_size=int(getattr(cfg, "group_consumer_max_size", INT_MAX)),
        assignors=names or ("uniform", "range"),
    )
