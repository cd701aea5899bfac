"""The task assignor of Streams groups (KIP-1071): sticky and balanced.

A task is (subtopology id, partition). Given the group's members (with their
process ids), the number of tasks of each subtopology, which subtopologies
are stateful and the previous target assignment, the assignor returns every
member's active and standby tasks. A pure function.

active   Every member keeps the active tasks it had, up to its share
         (ceil(tasks / members)); the other tasks go, in order, to the member
         with the fewest active tasks (ties: the member that had the task as a
         standby, then the member id).
standby  Each task of a stateful subtopology gets `num_standby` standby
         replicas on members of processes other than the active's, never two
         on one process; a previous standby holder is kept where it is still
         allowed, otherwise the least-loaded allowed member takes it. Fewer
         standbys than asked when there are not enough processes.

Warm-up tasks are not used: a task moves at once to its new active owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Task = tuple[str, int]


@dataclass(frozen=True, slots=True)
class AssignorMember:
    process_id: str
    previous_active: frozenset[Task] = frozenset()
    previous_standby: frozenset[Task] = frozenset()


@dataclass(slots=True)
class MemberTasks:
    active: set[Task] = field(default_factory=set)
    standby: set[Task] = field(default_factory=set)


def all_tasks(tasks_per_subtopology: Mapping[str, int]) -> list[Task]:
    return [(s, p) for s in sorted(tasks_per_subtopology) for p in range(tasks_per_subtopology[s])]


def assign(
    members: Mapping[str, AssignorMember],
    tasks_per_subtopology: Mapping[str, int],
    stateful: frozenset[str],
    num_standby: int,
) -> dict[str, MemberTasks]:
    out = {m: MemberTasks() for m in members}
    if not members:
        return out
    tasks = all_tasks(tasks_per_subtopology)
    valid = set(tasks)
    share = -(-len(tasks) // len(members))  # ceil
    owner: dict[Task, str] = {}
    for m in sorted(members):
        for t in sorted(members[m].previous_active & valid):
            if t not in owner and len(out[m].active) < share:
                owner[t] = m
                out[m].active.add(t)
    for t in tasks:
        if t in owner:
            continue
        m = min(members, key=lambda m: (len(out[m].active), t not in members[m].previous_standby, m))
        owner[t] = m
        out[m].active.add(t)
    if num_standby <= 0:
        return out
    for t in tasks:
        if t[0] not in stateful:
            continue
        used = {members[owner[t]].process_id}
        for _ in range(num_standby):
            allowed = [m for m in members if members[m].process_id not in used]
            if not allowed:
                break
            kept = sorted(m for m in allowed if t in members[m].previous_standby)
            m = kept[0] if kept else min(allowed, key=lambda m: (len(out[m].standby) + len(out[m].active), m))
            out[m].standby.add(t)
            used.add(members[m].process_id)
    return out
