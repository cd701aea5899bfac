"""Share group membership (KIP-932 ShareGroupHeartbeat), sans-IO.

Members of a share group may consume the same partitions together (records,
not partitions, are what they split), so the assignment needs no revocation:
each topic's partitions are spread over its subscribers (`target`), every
partition assigned, shared when there are more members than partitions, as
Kafka's simple assignor does (its exact choice differs). The group epoch goes
up when a member joins, leaves or changes its subscription, or when the
partitions of the subscribed topics change; a member's epoch follows the
group epoch at its next heartbeat, with its new assignment. Members are not persisted (a member that outlives a
restart is told UNKNOWN_MEMBER_ID and joins again); the group epoch is.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from kafkapy.protocol.error_codes import ErrorCode

Assignment = dict[UUID, frozenset[int]]
LEAVE_EPOCH = -1


@dataclass(slots=True)
class ShareMember:
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed: list[str]
    deadline: int
    assignment: Assignment = field(default_factory=dict)


@dataclass(slots=True)
class ShareHeartbeat:
    member_id: str
    member_epoch: int
    rack_id: str | None
    subscribed_topic_names: list[str] | None
    client_id: str = ""
    client_host: str = ""


@dataclass(slots=True)
class ShareHeartbeatResult:
    error: int
    member_id: str = ""
    member_epoch: int = 0
    assignment: Assignment | None = None
    message: str | None = None


@dataclass(slots=True)
class ShareGroup:
    group_id: str
    group_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    epoch_dirty: bool = False  # the group epoch changed and is not written yet

    @property
    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def _bump(self) -> None:
        self.group_epoch += 1
        self.epoch_dirty = True

    def target(self, member_id: str, topics: Mapping[str, tuple[UUID, int]]) -> Assignment:
        """The member's share of each topic it subscribes to, spread over the topic's subscribers
        (sorted by id, starting at a place the topic name picks): with no more subscribers than
        partitions each partition goes to one of them, round robin; with more, each subscriber gets
        one partition and the partitions are shared round robin. Every partition has a member."""
        member = self.members[member_id]
        out: Assignment = {}
        for name in member.subscribed:
            t = topics.get(name)
            if t is None or t[1] <= 0:
                continue
            subs = sorted(m.member_id for m in self.members.values() if name in m.subscribed)
            n, k = t[1], len(subs)
            me = (subs.index(member_id) + zlib.crc32(name.encode())) % k
            mine = range(me, n, k) if k <= n else (me % n,)
            out[t[0]] = frozenset(mine)
        return out

    def heartbeat(
        self, req: ShareHeartbeat, topics: Mapping[str, tuple[UUID, int]], now: int, session_ms: int, max_size: int
    ) -> ShareHeartbeatResult:
        if not req.member_id:
            return ShareHeartbeatResult(ErrorCode.INVALID_REQUEST)  # as Kafka 4.3.1: no message
        member = self.members.get(req.member_id)
        if req.member_epoch == LEAVE_EPOCH:
            if member is None:
                return ShareHeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID, message=f"Member {req.member_id} is not a member of the group."
                )
            self.remove(req.member_id)
            return ShareHeartbeatResult(ErrorCode.NONE, req.member_id, LEAVE_EPOCH)
        if req.member_epoch == 0:
            if member is None:
                if not req.subscribed_topic_names:
                    return ShareHeartbeatResult(
                        ErrorCode.INVALID_REQUEST, message="SubscribedTopicNames must be set in first request."
                    )
                if len(self.members) >= max_size:
                    return ShareHeartbeatResult(
                        ErrorCode.GROUP_MAX_SIZE_REACHED,
                        message=f"The share group has reached its maximum capacity of {max_size} members.",
                    )
                member = ShareMember(
                    req.member_id, 0, req.client_id, req.client_host, req.rack_id, list(req.subscribed_topic_names), 0
                )
                self.members[req.member_id] = member
                self._bump()
        elif member is None:
            return ShareHeartbeatResult(
                ErrorCode.UNKNOWN_MEMBER_ID, message=f"Member {req.member_id} is not a member of the group."
            )
        elif req.member_epoch != member.member_epoch:
            return ShareHeartbeatResult(
                ErrorCode.FENCED_MEMBER_EPOCH,
                message=f"The share group member has a {'greater' if req.member_epoch > member.member_epoch else 'smaller'}"
                f" member epoch ({req.member_epoch}) than the one known by the group coordinator "
                f"({member.member_epoch}). The member must abandon all its partitions and rejoin.",
            )
        member.deadline = now + session_ms
        if req.rack_id is not None:
            member.rack_id = req.rack_id
        if req.subscribed_topic_names is not None and sorted(req.subscribed_topic_names) != sorted(member.subscribed):
            member.subscribed = list(req.subscribed_topic_names)
            self._bump()
        target = self.target(member.member_id, topics)
        if target != member.assignment and member.member_epoch == self.group_epoch:
            self._bump()  # the subscribed topics' partitions changed
        send = req.member_epoch == 0 or req.subscribed_topic_names is not None
        if member.member_epoch != self.group_epoch or target != member.assignment:
            member.member_epoch = self.group_epoch
            member.assignment = target
            send = True
        return ShareHeartbeatResult(
            ErrorCode.NONE, member.member_id, member.member_epoch, dict(member.assignment) if send else None
        )

    def remove(self, member_id: str) -> ShareMember | None:
        m = self.members.pop(member_id, None)
        if m is not None:
            self._bump()
        return m

    def expired(self, now: int) -> list[str]:
        return [m.member_id for m in self.members.values() if m.deadline <= now]

    def next_deadline(self) -> int | None:
        return min((m.deadline for m in self.members.values()), default=None)
