"""Offset APIs: OffsetCommit (8), OffsetFetch (9), OffsetDelete (47).

Per-partition faults (unknown topic, metadata too large) are decided here;
the group's verdict on a commit (generation, member) applies to the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from uuid import UUID

from kafkapy.clock import now_ms
from kafkapy.coordinator.coordinator import GroupCoordinator
from kafkapy.coordinator.records import OffsetValue
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.offset_commit_request import OffsetCommitRequest
from kafkapy.protocol.messages.offset_commit_response import (
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)
from kafkapy.protocol.messages.offset_delete_request import OffsetDeleteRequest
from kafkapy.protocol.messages.offset_delete_response import (
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
)
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopics
from kafkapy.protocol.messages.offset_fetch_response import (
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices


class _NamedTopic(Protocol):
    name: str
    topic_id: UUID


def _partition_exists(state: BrokerServices, topic: str, partition: int) -> bool:
    info = state.metadata.topic(topic)
    return info is not None and 0 <= partition < len(info.partitions)


# ---------------------------------------------------------------- OffsetCommit


def _names_of(state: BrokerServices, version: int, topics: Iterable[_NamedTopic]) -> list[str | None]:
    """Each request topic's name: from v10 (KIP-848) found by its topic id, None if no topic has it."""
    if version < 10:
        return [t.name for t in topics]
    found = [state.metadata.topic_by_id(t.topic_id) for t in topics]
    return [info.name if info is not None else None for info in found]


def _id_of(state: BrokerServices, name: str) -> UUID:
    info = state.metadata.topic(name)
    return info.topic_id if info is not None else ZERO_UUID


async def offset_commit(ctx: RequestContext, req: OffsetCommitRequest) -> OffsetCommitResponse:
    v = ctx.version
    state = ctx.state
    coord = state.groups
    max_meta = state.config.offset_metadata_max_bytes
    now = now_ms()
    errors: dict[tuple[str, int], int] = {}
    commits: list[tuple[str, int, OffsetValue]] = []
    owned = coord.owns(req.group_id)
    group_ok = authz.group(ctx, Op.READ, req.group_id)
    names = _names_of(state, v, req.topics)
    denied = authz.denied_topics(ctx, Op.READ, (n for n in names if n is not None)) if group_ok else set()
    for t, name in zip(req.topics, names):
        for p in t.partitions:
            meta = p.committed_metadata or ""
            if name is None:
                # an unknown topic id (v10): answered per partition, never committed
                errors[(f"\0{t.topic_id}", p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_ID
                continue
            tp = (name, p.partition_index)
            if not group_ok:
                errors[tp] = ErrorCode.GROUP_AUTHORIZATION_FAILED
            elif name in denied:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif not owned:
                errors[tp] = ErrorCode.NOT_COORDINATOR
            elif not _partition_exists(state, name, p.partition_index):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif len(meta.encode()) > max_meta:
                errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                ts = p.commit_timestamp if v == 1 and p.commit_timestamp >= 0 else now
                epoch = p.committed_leader_epoch if v >= 6 else -1
                commits.append((name, p.partition_index, OffsetValue(p.committed_offset, epoch, meta, ts)))
    if commits:
        err = coord.commit(
            req.group_id,
            req.member_id if v >= 1 else "",
            req.group_instance_id if v >= 7 else None,
            req.generation_id_or_member_epoch if v >= 1 else -1,
            commits,
        )
        if err == ErrorCode.NONE:
            err = await coord.written(req.group_id)  # answered once replicated
        for topic, partition, _ in commits:
            errors[(topic, partition)] = err
    answered = {(topic, partition) for topic, partition, _ in commits}  # by the group
    # As Kafka answers: the partitions refused before the group saw them first, then the ones the
    # group answered, each topic once where it first appears.
    rows: dict[str, OffsetCommitResponseTopic] = {}
    for group_answered in (False, True):
        for t, name in zip(req.topics, names):
            key = name if name is not None else f"\0{t.topic_id}"
            for p in t.partitions:
                if ((key, p.partition_index) in answered) != group_answered:
                    continue
                row = rows.setdefault(key, OffsetCommitResponseTopic(name=t.name, topic_id=t.topic_id, partitions=[]))
                row.partitions.append(
                    OffsetCommitResponsePartition(
                        partition_index=p.partition_index, error_code=errors[(key, p.partition_index)]
                    )
                )
    return OffsetCommitResponse(topics=list(rows.values()))


# ---------------------------------------------------------------- OffsetFetch


def _fetch_group(
    coord: GroupCoordinator, group_id: str, topics: list[tuple[str, list[int]]] | None
) -> tuple[int, list[tuple[str, list[tuple[int, int, int, str]]]]]:
    """(group error, [(topic, [(partition, offset, leader epoch, metadata)])])."""
    if not coord.owns(group_id):
        return ErrorCode.NOT_COORDINATOR, []
    committed = coord.offsets.of_group(group_id)
    if topics is None:
        by_topic: dict[str, list[tuple[int, int, int, str]]] = {}
        for (t, p), cv in sorted(committed.items()):
            by_topic.setdefault(t, []).append((p, cv.offset, cv.leader_epoch, cv.metadata))
        return ErrorCode.NONE, list(by_topic.items())
    out = []
    for t, parts in topics:
        rows = []
        for p in parts:
            val = committed.get((t, p))
            rows.append((p, -1, -1, "") if val is None else (p, val.offset, val.leader_epoch, val.metadata))
        out.append((t, rows))
    return ErrorCode.NONE, out


def _fetch_authorized(
    ctx: RequestContext, coord: GroupCoordinator, group_id: str, topics: list[tuple[str, list[int]]] | None
) -> tuple[int, list[tuple[str, list[tuple[int, int, int, str]]]], set[str]]:
    """`_fetch_group` with Kafka's checks: Read on the group (GROUP_AUTHORIZATION_FAILED), Describe on
    each topic: named topics without it are returned (their partitions answer TOPIC_AUTHORIZATION_FAILED),
    and "all topics" lists only those the principal may Describe."""
    if ctx.state.authorizer is None:
        return (*_fetch_group(coord, group_id, topics), set())
    if not authz.group(ctx, Op.READ, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, [], set()
    err, rows = _fetch_group(coord, group_id, topics)
    if topics is None:
        allowed = authz.filter_topics(ctx, Op.DESCRIBE, (t for t, _ in rows)) or set()
        return err, [(t, parts) for t, parts in rows if t in allowed], set()
    denied = authz.denied_topics(ctx, Op.DESCRIBE, (t for t, _ in topics))
    if denied and not rows:
        rows = [(t, [(p, -1, -1, "") for p in parts]) for t, parts in topics]
    return err, [(t, [(p, -1, -1, "") for p, *_ in parts] if t in denied else parts) for t, parts in rows], denied


def _refuse_denied(topics: list[OffsetFetchResponseTopics] | list[OffsetFetchResponseTopic], denied: set[str]) -> None:
    for t in topics:
        if t.name in denied:
            for part in t.partitions:
                part.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED


def _unstable(
    coord: GroupCoordinator, group_id: str, rows: list[tuple[str, list[tuple[int, int, int, str]]]]
) -> set[tuple[str, int]]:
    """Partitions with pending transactional offsets (UNSTABLE_OFFSET_COMMIT for require_stable, KIP-447)."""
    if not coord.txn_offsets.by_producer:
        return set()
    return {(t, p) for t, parts in rows for p, *_ in parts if coord.txn_offsets.has_pending(group_id, (t, p))}


def _by_topic_id(
    state: BrokerServices,
    group: OffsetFetchResponseGroup,
    wanted: list[OffsetFetchRequestTopics] | None,
    names: list[str | None],
) -> list[OffsetFetchResponseTopics]:
    """v10 (KIP-848): topics named by id; a requested id no topic has answers UNKNOWN_TOPIC_ID per
    partition (in the request's order), and "all topics" lists only topics that exist."""
    for row in group.topics:
        row.topic_id = _id_of(state, row.name)
    if wanted is None:
        return [t for t in group.topics if t.topic_id != ZERO_UUID]
    if group.error_code != ErrorCode.NONE:
        return group.topics
    found = {t.name: t for t in group.topics}
    out = []
    for t, name in zip(wanted, names):
        if name is None:
            out.append(
                OffsetFetchResponseTopics(
                    topic_id=t.topic_id,
                    partitions=[
                        OffsetFetchResponsePartitions(
                            partition_index=p,
                            committed_offset=-1,
                            committed_leader_epoch=-1,
                            metadata="",
                            error_code=ErrorCode.UNKNOWN_TOPIC_ID,
                        )
                        for p in t.partition_indexes
                    ],
                )
            )
        elif name in found:
            out.append(found.pop(name))
    return out


async def offset_fetch(ctx: RequestContext, req: OffsetFetchRequest) -> OffsetFetchResponse:
    v = ctx.version
    coord = ctx.state.groups
    stable = v >= 7 and req.require_stable
    if v >= 8:
        groups = []
        for g in req.groups:
            names = [] if g.topics is None else _names_of(ctx.state, v, g.topics)
            wanted = (
                None
                if g.topics is None
                else [(n, list(t.partition_indexes)) for t, n in zip(g.topics, names) if n is not None]
            )
            err, rows, denied = _fetch_authorized(ctx, coord, g.group_id, wanted)
            unstable = _unstable(coord, g.group_id, rows) if stable else set()
            groups.append(
                OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    error_code=err,
                    topics=[
                        OffsetFetchResponseTopics(
                            name=t,
                            partitions=[
                                OffsetFetchResponsePartitions(
                                    partition_index=p,
                                    committed_offset=o,
                                    committed_leader_epoch=e,
                                    metadata=m,
                                    error_code=ErrorCode.NONE,
                                )
                                if (t, p) not in unstable
                                else OffsetFetchResponsePartitions(
                                    partition_index=p,
                                    committed_offset=-1,
                                    committed_leader_epoch=-1,
                                    metadata=m,
                                    error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT,
                                )
                                for p, o, e, m in parts
                            ],
                        )
                        for t, parts in rows
                    ],
                )
            )
            if denied:
                _refuse_denied(groups[-1].topics, denied)
            if v >= 10:
                groups[-1].topics = _by_topic_id(ctx.state, groups[-1], g.topics, names)
        return OffsetFetchResponse(groups=groups)
    wanted = (
        None if (req.topics is None and v >= 2) else [(t.name, list(t.partition_indexes)) for t in req.topics or []]
    )
    err, rows, denied = _fetch_authorized(ctx, coord, req.group_id, wanted)
    if err != ErrorCode.NONE and v < 2 and wanted is not None:
        # Before v2 there is no top-level error: every partition carries it.
        rows = [(t, [(p, -1, -1, "") for p in parts]) for t, parts in wanted]
    part_err = err if v < 2 else ErrorCode.NONE
    unstable = _unstable(coord, req.group_id, rows) if stable else set()
    resp = OffsetFetchResponse(
        error_code=err,
        topics=[
            OffsetFetchResponseTopic(
                name=t,
                partitions=[
                    OffsetFetchResponsePartition(
                        partition_index=p, committed_offset=o, committed_leader_epoch=e, metadata=m, error_code=part_err
                    )
                    if (t, p) not in unstable
                    else OffsetFetchResponsePartition(
                        partition_index=p,
                        committed_offset=-1,
                        committed_leader_epoch=-1,
                        metadata=m,
                        error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT,
                    )
                    for p, o, e, m in parts
                ],
            )
            for t, parts in rows
        ],
    )
    if denied:
        _refuse_denied(resp.topics, denied)
    return resp


# ---------------------------------------------------------------- OffsetDelete


async def offset_delete(ctx: RequestContext, req: OffsetDeleteRequest) -> OffsetDeleteResponse:
    state = ctx.state
    coord = state.groups
    if not authz.group(ctx, Op.DELETE, req.group_id):
        return OffsetDeleteResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not coord.owns(req.group_id):
        return OffsetDeleteResponse(error_code=ErrorCode.NOT_COORDINATOR)
    denied = authz.denied_topics(ctx, Op.READ, (t.name for t in req.topics))
    known = [
        (t.name, p.partition_index)
        for t in req.topics
        for p in t.partitions
        if t.name not in denied and _partition_exists(state, t.name, p.partition_index)
    ]
    if coord.consumer.get(req.group_id) is not None:  # a KIP-848 group
        done = state.consumer_groups.delete_offsets(req.group_id, known)
        assert done is not None
        group_err, errors = done
    elif coord.streams.get(req.group_id) is not None:  # a KIP-1071 group
        streams_done = state.streams_groups.delete_offsets(req.group_id, known)
        assert streams_done is not None
        group_err, errors = streams_done
    else:
        group_err, errors = coord.delete_offsets(req.group_id, known)
    if group_err == ErrorCode.NONE:
        group_err = await coord.written(req.group_id)  # answered once the tombstones are replicated
    if group_err != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=group_err)
    return OffsetDeleteResponse(
        error_code=ErrorCode.NONE,
        topics=[
            OffsetDeleteResponseTopic(
                name=t.name,
                partitions=[
                    OffsetDeleteResponsePartition(
                        partition_index=p.partition_index,
                        error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED
                        if t.name in denied
                        else errors.get((t.name, p.partition_index), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                    )
                    for p in t.partitions
                ],
            )
            for t in req.topics
        ],
    )
