"""Partition reassignment (KIP-455) and leader elections on request.

Pure state transitions on `PartitionInfo`, plus the compare-and-swap writes
that any broker may make on behalf of a client request:

  - start: replicas = target + (current - target), adding = target - current,
    removing = current - target, partition epoch + 1; a new request during an
    ongoing one starts from the original replicas (current - adding);
  - cancel: back to the original replicas, ISR within them;
  - complete (the controller, once every adding replica is in the ISR):
    replicas = target in target order, ISR = ISR & target, the leader moves
    to the first live in-sync target replica when it is being removed
    (leader epoch + 1), adding/removing cleared, partition epoch + 1.

Every write is conditional on the partition key's mod revision, so a
broker with a stale image retries on a fresh one instead of overwriting a
newer decision.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from kafkapy.cluster.assignment import elect_leader
from kafkapy.cluster.metadata import PREFERRED, UNCLEAN, Outcome, PartitionInfo, TopicInfo, check_target
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode


class PartitionStore(Protocol):
    """What elections and reassignments need of the etcd store: reads and a CAS on one partition."""

    shutting_down: set[int]
    log_dir_offline: set[int]

    def topic(self, name: str) -> TopicInfo | None: ...

    def live_ids(self) -> set[int]: ...

    @property
    def dir_changed(self) -> set[int]: ...

    def partition_revision(self, topic: str, index: int) -> int: ...

    async def update_partition(self, topic: str, new: PartitionInfo, expected_revision: int) -> bool: ...


log = get_logger(__name__)

CAS_ATTEMPTS = 10


def original_replicas(p: PartitionInfo) -> list[int]:
    """The assignment before the ongoing reassignment (the current one when none is)."""
    return [r for r in p.replicas if r not in p.adding_replicas]


def target_replicas(p: PartitionInfo) -> list[int]:
    """Where the ongoing reassignment goes (replicas minus the ones being removed)."""
    return [r for r in p.replicas if r not in p.removing_replicas]


def start_state(p: PartitionInfo, target: list[int], live: set[int]) -> PartitionInfo:
    """The partition while moving to `target` (KIP-455)."""
    current = original_replicas(p)
    if target == current:
        return cancel_state(p, live)
    replicas = list(target) + [r for r in current if r not in target]
    adding = [r for r in target if r not in current]
    removing = [r for r in current if r not in target]
    isr = [r for r in p.isr if r in replicas]
    leader, leader_epoch = p.leader, p.leader_epoch
    if leader not in replicas:  # led by a replica of an earlier, replaced reassignment
        leader = next((r for r in replicas if r in live and r in isr), -1)
        leader_epoch += 1
    return PartitionInfo(
        p.index, leader, replicas, _kept_isr(isr, p, replicas), leader_epoch, p.partition_epoch + 1, adding, removing
    )


def cancel_state(p: PartitionInfo, live: set[int]) -> PartitionInfo:
    """Back to the original replicas; the leader stays unless it was an added replica."""
    replicas = original_replicas(p)
    isr = [r for r in p.isr if r in replicas]
    leader, leader_epoch = p.leader, p.leader_epoch
    if leader not in replicas:
        leader = next((r for r in replicas if r in live and r in isr), -1)
        leader_epoch += 1
    return PartitionInfo(p.index, leader, replicas, _kept_isr(isr, p, replicas), leader_epoch, p.partition_epoch + 1)


def _kept_isr(isr: list[int], p: PartitionInfo, replicas: list[int]) -> list[int]:
    """The ISR within the new replicas; none left: the first replica, except for a partition whose ISR
    was already empty (its last member came back with an empty data dir: it stays offline)."""
    return isr or (replicas[:1] if p.isr else [])


def completion_state(p: PartitionInfo, live: set[int]) -> PartitionInfo | None:
    """The finished reassignment once every adding replica is in the ISR, else None."""
    if not p.adding_replicas and not p.removing_replicas:
        return None
    if any(r not in p.isr for r in p.adding_replicas):
        return None
    target = target_replicas(p)
    isr = [r for r in p.isr if r in target]
    leader, leader_epoch = p.leader, p.leader_epoch
    if leader not in target or leader not in live:
        candidates = [r for r in target if r in live and r in isr]
        if not candidates:
            return None  # no in-sync target replica can lead yet
        leader, leader_epoch = candidates[0], leader_epoch + 1
    return PartitionInfo(p.index, leader, target, isr, leader_epoch, p.partition_epoch + 1)


def election_state(p: PartitionInfo, live: set[int], election_type: int) -> tuple[Outcome, PartitionInfo | None]:
    """ElectLeaders for one partition: the answer and the new state (None: nothing to write)."""
    if election_type == PREFERRED:
        preferred = p.replicas[0] if p.replicas else -1
        if preferred == p.leader:
            return Outcome(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."), None
        new_leader = elect_leader(p.replicas, p.isr, live, unclean=False, preferred_only=True)
        if new_leader is None:
            return (
                Outcome(
                    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                    f"Failed to elect leader: preferred replica {preferred} is not live and in the ISR {p.isr}.",
                ),
                None,
            )
        isr = [r for r in p.isr if r in live] or [new_leader]
    elif election_type == UNCLEAN:
        if p.leader in live or any(r in live for r in p.isr):
            return Outcome(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."), None
        new_leader = elect_leader(p.replicas, p.isr, live, unclean=True)
        if new_leader is None:
            return (
                Outcome(ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, f"No replica of {p.replicas} is live."),
                None,
            )
        isr = [new_leader]
    else:
        return Outcome(ErrorCode.INVALID_REQUEST, f"Unknown election type {election_type}."), None
    new = PartitionInfo(
        p.index,
        new_leader,
        list(p.replicas),
        isr,
        p.leader_epoch + 1,
        p.partition_epoch + 1,
        list(p.adding_replicas),
        list(p.removing_replicas),
    )
    return Outcome(), new


def _partition(md: PartitionStore, topic: str, index: int) -> PartitionInfo | None:
    info = md.topic(topic)
    if info is None or not 0 <= index < len(info.partitions):
        return None
    return info.partitions[index]


def reassignment_change(
    p: PartitionInfo | None, target: list[int] | None, live: set[int]
) -> tuple[Outcome, PartitionInfo | None]:
    """AlterPartitionReassignments for one partition: the answer and the new state (None: nothing to write)."""
    if p is None:
        return Outcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."), None
    ongoing = bool(p.adding_replicas or p.removing_replicas)
    if target is None:
        if not ongoing:
            return Outcome(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS), None  # no message, as Kafka
        new = cancel_state(p, live)
    else:
        problem = check_target(target, live)
        if problem is not None:
            return Outcome(ErrorCode.INVALID_REPLICA_ASSIGNMENT, problem), None
        if not ongoing and target == p.replicas:
            return Outcome(), None  # already there
        new = start_state(p, target, live)
    same = (new.replicas, new.adding_replicas, new.removing_replicas) == (
        p.replicas,
        p.adding_replicas,
        p.removing_replicas,
    )
    return Outcome(), None if same else new


async def elect(md: PartitionStore, topic: str, index: int, election_type: int) -> Outcome:
    """ElectLeaders for one partition with a CAS write."""
    for _ in range(CAS_ATTEMPTS):
        p = _partition(md, topic, index)
        if p is None:
            return Outcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        leadable = md.live_ids() - md.shutting_down - md.log_dir_offline - md.dir_changed
        outcome, new = election_state(p, leadable, election_type)
        if new is None:
            return outcome
        if await md.update_partition(topic, new, md.partition_revision(topic, index)):
            log.info(
                "leader elected on request",
                topic=topic,
                partition=index,
                leader=new.leader,
                leader_epoch=new.leader_epoch,
                election_type=election_type,
            )
            return outcome
        await asyncio.sleep(0.02)
    return Outcome(ErrorCode.REQUEST_TIMED_OUT, "The partition kept changing; try again.")
