"""The classic consumer group as an explicit, sans-IO state machine.

States and the one table of allowed transitions are below. Requests (join,
sync, heartbeat, leave, commit validation) and timer events (`tick`) take
`now_ms` and return results plus `Effects`: replies owed to members whose
JoinGroup/SyncGroup is parked, and whether the group's metadata must be
persisted. The async layer (coordinator.py) parks futures, arms the timer
from `next_deadline()` and writes records; nothing here does IO.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from kafkapy.coordinator.records import GroupValue, MemberValue
from kafkapy.protocol.error_codes import ErrorCode


class GroupState(str, Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_S = GroupState

# The only transitions there are: state -> the states it may be entered from.
VALID_PREVIOUS: Mapping[GroupState, frozenset[GroupState]] = MappingProxyType(
    {
        _S.EMPTY: frozenset({_S.PREPARING_REBALANCE}),
        _S.PREPARING_REBALANCE: frozenset({_S.EMPTY, _S.STABLE, _S.COMPLETING_REBALANCE}),
        _S.COMPLETING_REBALANCE: frozenset({_S.PREPARING_REBALANCE}),
        _S.STABLE: frozenset({_S.COMPLETING_REBALANCE}),
        _S.DEAD: frozenset({_S.EMPTY, _S.PREPARING_REBALANCE, _S.COMPLETING_REBALANCE, _S.STABLE, _S.DEAD}),
    }
)


class IllegalTransition(RuntimeError):
    """A bug: the machine tried a transition the table does not allow."""


@dataclass(frozen=True, slots=True)
class GroupLimits:
    """Broker settings the machine obeys (group.* configs)."""

    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2**31 - 1


@dataclass(slots=True)
class JoinRequest:
    """What the machine needs from a JoinGroup, whatever its version."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    require_known_member_id: bool = True  # JoinGroup v4+ (KIP-394)


@dataclass(slots=True)
class JoinResult:
    error: int
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass(slots=True)
class SyncResult:
    error: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class Effects:
    """Side results of one call: parked replies now due, and a write to make."""

    joins: dict[str, JoinResult] = field(default_factory=dict)
    syncs: dict[str, SyncResult] = field(default_factory=dict)
    persist: bool = False
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # for the log


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    awaiting_join: bool = False
    awaiting_sync: bool = False
    heartbeat_deadline_ms: int = 0

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]


@dataclass(slots=True)
class _InitialDelay:
    """The delayed first rebalance of a new group: each new member restarts the delay, up to a cap."""

    cap_ms: int  # first join + rebalance timeout


def new_member_id(client_id: str) -> str:
    return f"{client_id}-{uuid.uuid4()}"


@dataclass(slots=True)
class ClassicGroup:
    group_id: str
    limits: GroupLimits = field(default_factory=GroupLimits)
    state: GroupState = GroupState.EMPTY
    state_timestamp_ms: int = -1
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # KIP-394 ids handed out -> deadline
    pending_sync: set[str] = field(default_factory=set)
    join_deadline_ms: int | None = None
    sync_deadline_ms: int | None = None
    _initial: _InitialDelay | None = None
    _fx: Effects = field(default_factory=Effects)
    _last_joined: str = ""  # member id of the JoinGroup being handled

    # ------------------------------------------------------------ basics

    def _transition(self, to: GroupState, now_ms: int) -> None:
        if self.state not in VALID_PREVIOUS[to]:
            raise IllegalTransition(f"group {self.group_id}: {self.state.value} -> {to.value}")
        self.state = to
        self.state_timestamp_ms = now_ms

    def _begin(self) -> Effects:
        self._fx = Effects()
        return self._fx

    @property
    def is_empty(self) -> bool:
        return not self.members and not self.pending_members

    def _fenced(self, member_id: str, instance_id: str | None) -> bool:
        """A static member whose instance id now belongs to another member id."""
        if instance_id is None:
            return False
        current = self.static_members.get(instance_id)
        return current is not None and current != member_id

    def _candidate_protocols(self) -> set[str] | None:
        """Protocols every member supports (None when there are no members)."""
        common: set[str] | None = None
        for m in self.members.values():
            names = set(m.protocol_names())
            common = names if common is None else common & names
        return common

    def _supports(self, protocol_type: str, names: list[str], ignore: str | None = None) -> bool:
        if not protocol_type or not names:
            return False
        others = [m for m in self.members.values() if m.member_id != ignore]
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        common = set(names)
        for m in others:
            common &= set(m.protocol_names())
        return bool(common)

    def select_protocol(self) -> str | None:
        """Kafka's rule: of the protocols all members support, the one most members prefer."""
        candidates = self._candidate_protocols()
        if not candidates:
            return None
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = next(n for n in m.protocol_names() if n in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        best = max(votes.values())
        first = next(iter(self.members.values()))
        # Ties go to the first member's preference order, so the choice is deterministic.
        return next(n for n in first.protocol_names() if votes.get(n) == best)

    def subscribed_protocol_metadata(self) -> list[bytes]:
        return [m.metadata(self.protocol_name) for m in self.members.values()]

    def _join_result(self, member: Member) -> JoinResult:
        leader = member.member_id == self.leader_id
        members = (
            [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]
            if leader
            else []
        )
        return JoinResult(
            ErrorCode.NONE,
            member.member_id,
            self.generation,
            self.protocol_type,
            self.protocol_name,
            self.leader_id or "",
            members,
        )

    def _refresh(self, member: Member, now_ms: int) -> None:
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    # ------------------------------------------------------------ join

    def join(self, req: JoinRequest, now_ms: int) -> tuple[str, JoinResult | None, Effects]:
        """JoinGroup: (member id, result), result None while parked until the rebalance completes."""
        fx = self._begin()
        result = self._join(req, now_ms)
        if result is None:
            # The join may itself have completed the rebalance.
            result = fx.joins.pop(self._last_joined, None)
            return self._last_joined, result, fx
        return result.member_id, result, fx

    def _join(self, req: JoinRequest, now_ms: int) -> JoinResult | None:
        self._last_joined = req.member_id
        if self.state is GroupState.DEAD:
            return JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, req.member_id)
        lim = self.limits
        if not lim.min_session_timeout_ms <= req.session_timeout_ms <= lim.max_session_timeout_ms:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, req.member_id)
        names = [n for n, _ in req.protocols]
        # The joining member's own (or its static predecessor's) protocols do not count.
        me = req.member_id or (self.static_members.get(req.group_instance_id) if req.group_instance_id else None)
        if not self._supports(req.protocol_type, names, ignore=me):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, req.member_id)
        if not req.member_id:
            return self._join_new(req, now_ms)
        return self._join_known(req, now_ms)

    def _full(self) -> bool:
        return len(self.members) + len(self.pending_members) >= self.limits.max_size

    def _join_new(self, req: JoinRequest, now_ms: int) -> JoinResult | None:
        member_id = new_member_id(req.client_id)
        instance = req.group_instance_id
        if instance is not None:
            old = self.static_members.get(instance)
            if old is not None and old in self.members:
                self._last_joined = member_id
                return self._replace_static(old, member_id, req, now_ms)
        if self._full():
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, "")
        if instance is None and req.require_known_member_id:
            # KIP-394: hand out the id; the member joins again with it.
            self.pending_members[member_id] = now_ms + req.session_timeout_ms
            return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id)
        self._last_joined = member_id
        return self._add_and_rebalance(member_id, req, now_ms)

    def _join_known(self, req: JoinRequest, now_ms: int) -> JoinResult | None:
        member_id = req.member_id
        if self._fenced(member_id, req.group_instance_id):
            return JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id)
        if member_id in self.pending_members:
            if len(self.members) >= self.limits.max_size:
                del self.pending_members[member_id]
                return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id)
            del self.pending_members[member_id]
            return self._add_and_rebalance(member_id, req, now_ms)
        member = self.members.get(member_id)
        if member is None:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        state = self.state
        if state is GroupState.PREPARING_REBALANCE:
            self._update_member(member, req, now_ms)
            self._maybe_complete_join(now_ms)
            return None
        if state is GroupState.COMPLETING_REBALANCE:
            if member.protocols == req.protocols:
                return self._join_result(member)  # it lost the response: send it again
            self._update_member(member, req, now_ms)
            self._prepare_rebalance(now_ms)
            return None
        if state is GroupState.STABLE:
            if member_id == self.leader_id or member.protocols != req.protocols:
                self._update_member(member, req, now_ms)
                self._prepare_rebalance(now_ms)
                return None
            self._refresh(member, now_ms)
            return self._join_result(member)
        return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)

    def _update_member(self, member: Member, req: JoinRequest, now_ms: int) -> None:
        member.protocols = list(req.protocols)
        member.protocol_type = req.protocol_type
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host
        member.awaiting_join = True
        self._refresh(member, now_ms)

    def _add_and_rebalance(self, member_id: str, req: JoinRequest, now_ms: int) -> JoinResult | None:
        member = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.session_timeout_ms,
            req.rebalance_timeout_ms,
            req.protocol_type,
            list(req.protocols),
            awaiting_join=True,
        )
        self._refresh(member, now_ms)
        self.members[member_id] = member
        if req.group_instance_id is not None:
            self.static_members[req.group_instance_id] = member_id
        if not self.protocol_type:
            self.protocol_type = req.protocol_type
        if self._initial is not None and self.join_deadline_ms is not None:
            self.join_deadline_ms = min(now_ms + self.limits.initial_rebalance_delay_ms, self._initial.cap_ms)
        if self.state is GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(now_ms)
        else:
            self._prepare_rebalance(now_ms)
        return None

    def _replace_static(self, old_id: str, new_id: str, req: JoinRequest, now_ms: int) -> JoinResult | None:
        """KIP-345: a known instance id rejoined without its member id; the old id is fenced."""
        old = self.members.pop(old_id)
        if old.awaiting_join:
            self._fx.joins[old_id] = JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id)
        if old.awaiting_sync:
            self._fx.syncs[old_id] = SyncResult(ErrorCode.FENCED_INSTANCE_ID)
        old.member_id = new_id
        old.awaiting_join = old.awaiting_sync = False
        self.members[new_id] = old
        assert req.group_instance_id is not None
        self.static_members[req.group_instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        member = old
        if self.state is GroupState.STABLE:
            before = self.protocol_name
            saved = member.protocols
            member.protocols = list(req.protocols)
            if req.protocol_type == self.protocol_type and self.select_protocol() == before:
                # Same protocol next generation: no rebalance, just persist the new id.
                member.client_id, member.client_host = req.client_id, req.client_host
                member.session_timeout_ms = req.session_timeout_ms
                member.rebalance_timeout_ms = req.rebalance_timeout_ms
                self._refresh(member, now_ms)
                self._fx.persist = True
                result = self._join_result(member)
                result.skip_assignment = new_id == self.leader_id
                if result.skip_assignment:
                    result.members = [
                        (m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                        for m in self.members.values()
                    ]
                return result
            member.protocols = saved
            self._update_member(member, req, now_ms)
            self._prepare_rebalance(now_ms)
            return None
        self._update_member(member, req, now_ms)
        if self.state is GroupState.COMPLETING_REBALANCE:
            self._prepare_rebalance(now_ms)
        else:
            self._maybe_complete_join(now_ms)
        return None

    # ------------------------------------------------------------ rebalance

    def _prepare_rebalance(self, now_ms: int) -> None:
        if self.state is GroupState.COMPLETING_REBALANCE:
            for m in self.members.values():
                m.assignment = b""
                if m.awaiting_sync:
                    m.awaiting_sync = False
                    self._fx.syncs[m.member_id] = SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        self.pending_sync.clear()
        self.sync_deadline_ms = None
        first = self.state is GroupState.EMPTY
        self._transition(GroupState.PREPARING_REBALANCE, now_ms)
        self._fx.events.append(("rebalance started", {"generation": self.generation, "members": len(self.members)}))
        timeout = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        delay = self.limits.initial_rebalance_delay_ms
        if first and delay > 0:
            self._initial = _InitialDelay(cap_ms=now_ms + timeout)
            self.join_deadline_ms = now_ms + min(delay, timeout)
        else:
            self._initial = None
            self.join_deadline_ms = now_ms + timeout
            self._maybe_complete_join(now_ms)

    def _all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def _maybe_complete_join(self, now_ms: int) -> None:
        if self.state is GroupState.PREPARING_REBALANCE and self._initial is None and self._all_joined():
            self._complete_join(now_ms)

    def _complete_join(self, now_ms: int) -> None:
        for m in [m for m in self.members.values() if not m.awaiting_join]:
            self._remove(m.member_id, ErrorCode.UNKNOWN_MEMBER_ID, "did not rejoin in time")
        self._initial = None
        self.join_deadline_ms = None
        self.generation += 1
        if not self.members:
            self.protocol_name = None
            self.leader_id = None
            self._transition(GroupState.EMPTY, now_ms)
            self._fx.persist = True
            return
        self.protocol_name = self.select_protocol()
        self.protocol_type = next(iter(self.members.values())).protocol_type
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        self._transition(GroupState.COMPLETING_REBALANCE, now_ms)
        for m in self.members.values():
            m.awaiting_join = False
            self._refresh(m, now_ms)
            self._fx.joins[m.member_id] = self._join_result(m)
        self.pending_sync = set(self.members)
        self._fx.events.append(
            (
                "rebalance completed",
                {"generation": self.generation, "members": len(self.members), "protocol": self.protocol_name},
            )
        )
        timeout = max(m.rebalance_timeout_ms for m in self.members.values())
        self.sync_deadline_ms = now_ms + timeout

    def _remove(self, member_id: str, error: int, reason: str = "left") -> None:
        self._fx.events.append(("member removed", {"member": member_id, "reason": reason}))
        m = self.members.pop(member_id)
        if m.group_instance_id is not None and self.static_members.get(m.group_instance_id) == member_id:
            del self.static_members[m.group_instance_id]
        if m.awaiting_join:
            self._fx.joins[member_id] = JoinResult(error, member_id)
        if m.awaiting_sync:
            self._fx.syncs[member_id] = SyncResult(error)
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)

    def _remove_and_update(self, member_id: str, now_ms: int, reason: str = "left") -> None:
        self._remove(member_id, ErrorCode.UNKNOWN_MEMBER_ID, reason)
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(now_ms)
        else:
            self._maybe_complete_join(now_ms)

    # ------------------------------------------------------------ sync, heartbeat, leave

    def sync(
        self,
        member_id: str,
        instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: Mapping[str, bytes],
        now_ms: int,
    ) -> tuple[SyncResult | None, Effects]:
        """SyncGroup: the member's assignment, or None while the leader's is awaited."""
        fx = self._begin()
        if self.state is GroupState.DEAD:
            return SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE), fx
        if self._fenced(member_id, instance_id):
            return SyncResult(ErrorCode.FENCED_INSTANCE_ID), fx
        member = self.members.get(member_id)
        if member is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID), fx
        if generation != self.generation:
            return SyncResult(ErrorCode.ILLEGAL_GENERATION), fx
        if (protocol_type is not None and protocol_type != self.protocol_type) or (
            protocol_name is not None and protocol_name != self.protocol_name
        ):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL), fx
        if self.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS), fx
        if self.state is GroupState.EMPTY:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID), fx
        self._refresh(member, now_ms)
        self.pending_sync.discard(member_id)
        if not self.pending_sync:
            self.sync_deadline_ms = None
        if self.state is GroupState.STABLE:
            return SyncResult(ErrorCode.NONE, self.protocol_type, self.protocol_name, member.assignment), fx
        member.awaiting_sync = True
        if member_id == self.leader_id:
            for m in self.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            self._transition(GroupState.STABLE, now_ms)
            fx.persist = True
            for m in self.members.values():
                if m.awaiting_sync:
                    m.awaiting_sync = False
                    fx.syncs[m.member_id] = SyncResult(
                        ErrorCode.NONE, self.protocol_type, self.protocol_name, m.assignment
                    )
        return fx.syncs.pop(member_id, None), fx

    def heartbeat(self, member_id: str, instance_id: str | None, generation: int, now_ms: int) -> int:
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if self._fenced(member_id, instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return ErrorCode.ILLEGAL_GENERATION
        self._refresh(member, now_ms)
        if self.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(
        self, identities: Iterable[tuple[str, str | None]], now_ms: int
    ) -> tuple[list[tuple[str, str | None, int]], Effects]:
        """LeaveGroup for (member id, instance id) pairs; an error code per pair."""
        fx = self._begin()
        out: list[tuple[str, str | None, int]] = []
        for member_id, instance_id in identities:
            if self.state is GroupState.DEAD:
                out.append((member_id, instance_id, ErrorCode.COORDINATOR_NOT_AVAILABLE))
                continue
            if instance_id is not None:
                current = self.static_members.get(instance_id)
                if current is None:
                    out.append((member_id, instance_id, ErrorCode.UNKNOWN_MEMBER_ID))
                elif member_id and member_id != current:
                    out.append((member_id, instance_id, ErrorCode.FENCED_INSTANCE_ID))
                else:
                    self._remove_and_update(current, now_ms)
                    out.append((member_id or current, instance_id, ErrorCode.NONE))
                continue
            if member_id in self.pending_members:
                del self.pending_members[member_id]
                self._maybe_complete_join(now_ms)
                out.append((member_id, None, ErrorCode.NONE))
            elif member_id in self.members:
                self._remove_and_update(member_id, now_ms)
                out.append((member_id, None, ErrorCode.NONE))
            else:
                out.append((member_id, None, ErrorCode.UNKNOWN_MEMBER_ID))
        return out, fx

    def validate_commit(self, member_id: str, instance_id: str | None, generation: int, now_ms: int) -> int:
        """May this OffsetCommit go in? Simple (non-member) commits need an empty group."""
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation < 0 and self.state is GroupState.EMPTY:
            return ErrorCode.NONE
        if self._fenced(member_id, instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return ErrorCode.ILLEGAL_GENERATION
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        self._refresh(member, now_ms)  # a commit counts as a heartbeat
        return ErrorCode.NONE

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> int | None:
        times = list(self.pending_members.values())
        times += [m.heartbeat_deadline_ms for m in self.members.values() if not self._kept_alive(m)]
        if self.join_deadline_ms is not None:
            times.append(self.join_deadline_ms)
        if self.sync_deadline_ms is not None and self.pending_sync:
            times.append(self.sync_deadline_ms)
        return min(times) if times else None

    @staticmethod
    def _kept_alive(m: Member) -> bool:
        # A parked JoinGroup/SyncGroup is the member's heartbeat.
        return m.awaiting_join or m.awaiting_sync

    def tick(self, now_ms: int) -> Effects:
        """Fire every timer due at `now_ms`: session, rebalance, initial delay, sync."""
        fx = self._begin()
        if self.state is GroupState.DEAD:
            return fx
        for mid, deadline in list(self.pending_members.items()):
            if deadline <= now_ms:
                del self.pending_members[mid]
                self._maybe_complete_join(now_ms)
        for m in list(self.members.values()):
            if m.member_id in self.members and not self._kept_alive(m) and m.heartbeat_deadline_ms <= now_ms:
                self._remove_and_update(m.member_id, now_ms, "session timeout")
        if (
            self.state is GroupState.PREPARING_REBALANCE
            and self.join_deadline_ms is not None
            and self.join_deadline_ms <= now_ms
        ):
            self._complete_join(now_ms)
        if (
            self.sync_deadline_ms is not None
            and self.sync_deadline_ms <= now_ms
            and self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
        ):
            late = [mid for mid in self.pending_sync if mid in self.members]
            self.pending_sync.clear()
            self.sync_deadline_ms = None
            for mid in late:
                self._remove(mid, ErrorCode.REBALANCE_IN_PROGRESS, "did not sync in time")
            if late:
                self._prepare_rebalance(now_ms)
        return fx

    # ------------------------------------------------------------ life and records

    def mark_dead(self, now_ms: int) -> Effects:
        """Deleted or expired: parked members get COORDINATOR_NOT_AVAILABLE and look again."""
        fx = self._begin()
        for mid in list(self.members):
            self._remove(mid, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        self.pending_members.clear()
        self._transition(GroupState.DEAD, now_ms)
        return fx

    def to_record(self) -> GroupValue:
        return GroupValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp=self.state_timestamp_ms,
            members=[
                MemberValue(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(self.protocol_name),
                    m.assignment,
                )
                for m in self.members.values()
            ],
        )

    @classmethod
    def from_record(cls, group_id: str, value: GroupValue, limits: GroupLimits, now_ms: int) -> ClassicGroup:
        """A group as loaded from `__consumer_offsets`: Stable with its members, or Empty."""
        g = cls(group_id, limits)
        g.generation = value.generation
        g.protocol_type = value.protocol_type or None
        g.protocol_name = value.protocol
        g.leader_id = value.leader
        g.state_timestamp_ms = value.current_state_timestamp if value.current_state_timestamp >= 0 else now_ms
        for mv in value.members:
            m = Member(
                mv.member_id,
                mv.group_instance_id,
                mv.client_id,
                mv.client_host,
                mv.session_timeout_ms,
                mv.rebalance_timeout_ms,
                value.protocol_type,
                [(value.protocol or "", mv.subscription)],
                assignment=mv.assignment,
            )
            g._refresh(m, now_ms)
            g.members[m.member_id] = m
            if m.group_instance_id is not None:
                g.static_members[m.group_instance_id] = m.member_id
        if g.members:
            g.state = GroupState.STABLE
        if g.leader_id not in g.members:
            g.leader_id = next(iter(g.members), None)
        return g
