"""ListOffsets (2): earliest, latest, max timestamp, and offsets for times.

A topic with remote.storage.enable (tiered storage, docs/tiered-storage.md) is answered through the
RemoteLogManager: -2 earliest is the log start offset (possibly in remote storage), -4 the local log
start, -5 the highest offset copied (-1 none), v11's -6 (KIP-1023) the earliest offset pending
upload, and a timestamp is searched in the remote segments before the local ones; v10's TimeoutMs
(KIP-1075) bounds that wait (REQUEST_TIMED_OUT past it), a failed remote lookup answers
UNKNOWN_SERVER_ERROR. Other topics answer at once, -5 and -6 with no offset (-1), as Kafka 4.3.1
does for a topic without remote storage.

Version 0 keeps its own, older meaning (Kafka's `legacyFetchOffsetsBefore`,
answered by Kafka up to 3.x): "offsets before time t" lists up to
`max_num_offsets` segment base offsets, newest first, taking the segments
whose file was last modified at or before t, and the log end offset (stamped
"now") if the active segment is not empty. -1 starts from the log end, -2
from the first segment; for a consumer, offsets above the high watermark are
replaced by the high watermark. Duplicate partitions are not refused in v0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest
from kafkapy.protocol.messages.list_offsets_response import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
EARLIEST_PENDING_UPLOAD = -6  # v11 (KIP-1023): the first offset not yet in remote storage
READ_COMMITTED = 1
CONSUMER_REPLICA_ID = -1
# the special timestamps and the version each came with: below it Kafka (3.9, 4.3) answers
# UNSUPPORTED_VERSION for the partition, before looking the partition up
_SPECIAL_SINCE = {MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8, LATEST_TIERED: 9, EARLIEST_PENDING_UPLOAD: 11}
REMOTE_TIMEOUT_MS = 30_000  # a remote lookup's bound before v10 (or with TimeoutMs 0)

log = get_logger(__name__)


def _too_new(timestamp: int, version: int) -> bool:
    return version < _SPECIAL_SINCE.get(timestamp, 0)


def offsets_before(
    segments: Sequence[tuple[int, int, int]],
    log_start: int,
    log_end: int,
    now_ms: int,
    timestamp: int,
    max_num_offsets: int,
) -> list[int]:
    """ListOffsets v0's answer from ``(base offset, last modified ms, size)`` per segment, oldest
    first: up to ``max_num_offsets`` offsets, descending."""
    points = [(max(base, log_start), modified) for base, modified, _size in segments]
    if segments and segments[-1][2] > 0:
        points.append((log_end, now_ms))
    if timestamp == LATEST:
        start = len(points) - 1
    elif timestamp in (EARLIEST, EARLIEST_LOCAL):
        start = 0
    else:
        start = len(points) - 1
        while start >= 0 and points[start][1] > timestamp:
            start -= 1
    count = max(0, min(max_num_offsets, start + 1))
    return sorted((points[start - j][0] for j in range(count)), reverse=True)


def cap_at_high_watermark(offsets: list[int], high_watermark: int) -> list[int]:
    """A consumer never sees offsets past the high watermark: they give way to it (Kafka's rule)."""
    if not any(o > high_watermark for o in offsets):
        return offsets
    rest = offsets
    while rest and rest[0] > high_watermark:
        rest = rest[1:]
    return [high_watermark, *rest]


def _one_v0(
    state: BrokerServices, topic: str, p: ListOffsetsPartition, replica_id: int
) -> ListOffsetsPartitionResponse:
    r = ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=ErrorCode.NONE, old_style_offsets=[])
    if _too_new(p.timestamp, 0):
        r.error_code = ErrorCode.UNSUPPORTED_VERSION
        return r
    partition = state.replicas.partition(topic, p.partition_index)
    if isinstance(partition, int):
        r.error_code = partition
        return r
    plog = partition.log
    segments = [(s.base_offset, s.last_modified_ms, s.size) for s in plog.segments]
    offsets = offsets_before(
        segments,
        plog.log_start_offset,
        plog.log_end_offset,
        time.time_ns() // 1_000_000,
        p.timestamp,
        p.max_num_offsets,
    )
    if replica_id == CONSUMER_REPLICA_ID:
        offsets = cap_at_high_watermark(offsets, plog.high_watermark)
    r.old_style_offsets = offsets
    return r


async def _one(
    state: BrokerServices,
    topic: str,
    p: ListOffsetsPartition,
    version: int,
    committed: bool,
    replica: bool = False,
    timeout_ms: int = 0,
) -> ListOffsetsPartitionResponse:
    r = ListOffsetsPartitionResponse(
        partition_index=p.partition_index, error_code=ErrorCode.NONE, timestamp=-1, offset=-1
    )
    if _too_new(p.timestamp, version):
        r.error_code = ErrorCode.UNSUPPORTED_VERSION
        return r
    partition = state.replicas.partition(topic, p.partition_index, p.current_leader_epoch)
    if isinstance(partition, int):
        r.error_code = partition
        return r
    plog, epoch = partition.log, partition.leader_epoch
    ts = p.timestamp
    if ts == LATEST and replica:
        r.offset = plog.log_end_offset  # as Kafka answers a follower: the log end, not the high watermark
        r.leader_epoch = epoch
    elif ts == LATEST:
        r.offset = plog.last_stable_offset if committed else plog.high_watermark
        r.leader_epoch = epoch
    elif plog.tiered and state.remote_log is not None:
        await _tiered(state, topic, p, r, committed, timeout_ms)
    elif ts in (EARLIEST, EARLIEST_LOCAL):
        found = plog.list_offset(EARLIEST)
        assert found is not None  # the log start always has an answer
        r.offset, r.leader_epoch = found.offset, found.leader_epoch
    elif ts in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        r.offset, r.leader_epoch = -1, -1  # no tiered storage: nothing is tiered or to upload
    else:
        found = plog.list_offset(ts)
        bound = plog.last_stable_offset if committed else plog.high_watermark
        if found is not None and found.offset < bound:
            r.offset, r.timestamp, r.leader_epoch = found.offset, found.timestamp, found.leader_epoch
    return r


async def _tiered(
    state: BrokerServices,
    topic: str,
    p: ListOffsetsPartition,
    r: ListOffsetsPartitionResponse,
    committed: bool,
    timeout_ms: int,
) -> None:
    """A tiered partition's answer (not LATEST) through the remote log manager."""
    task = state.remote_log
    plog = state.replicas.partition_log(topic, p.partition_index)
    topic_id = task.topic_id(topic) if task is not None else None
    assert task is not None and plog is not None
    ts = p.timestamp
    try:
        if topic_id is None:
            raise RuntimeError(f"topic {topic} has no id")
        found = await asyncio.wait_for(
            task.manager.list_offset(plog, topic_id, ts), (timeout_ms or REMOTE_TIMEOUT_MS) / 1000
        )
    except TimeoutError:
        r.error_code = ErrorCode.REQUEST_TIMED_OUT
        return
    except Exception as exc:
        log.warning(
            "remote offset lookup failed",
            topic=topic,
            partition=p.partition_index,
            timestamp=ts,
            error=f"{type(exc).__name__}: {exc}",
        )
        r.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
        return
    if found is None:
        return
    if ts >= 0 or ts == MAX_TIMESTAMP:
        bound = plog.last_stable_offset if committed else plog.high_watermark
        if found.offset < bound:
            r.offset, r.timestamp, r.leader_epoch = found.offset, found.timestamp, found.leader_epoch
    else:
        r.offset, r.leader_epoch = found.offset, found.leader_epoch


async def handle(ctx: RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse:
    committed = ctx.version >= 2 and req.isolation_level == READ_COMMITTED
    topics = []
    denied: set[str] = set()
    if ctx.state.authorizer is not None:  # Describe on each topic, else TOPIC_AUTHORIZATION_FAILED
        denied = authz.denied_topics(ctx, AclOperation.DESCRIBE, (t.name for t in req.topics))
    if ctx.version == 0:
        return ListOffsetsResponse(
            topics=[
                ListOffsetsTopicResponse(
                    name=t.name,
                    partitions=[
                        ListOffsetsPartitionResponse(
                            partition_index=p.partition_index,
                            error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                            old_style_offsets=[],
                        )
                        if t.name in denied
                        else _one_v0(ctx.state, t.name, p, req.replica_id)
                        for p in t.partitions
                    ],
                )
                for t in req.topics
            ]
        )
    for t in req.topics:
        if t.name in denied:
            topics.append(
                ListOffsetsTopicResponse(
                    name=t.name,
                    partitions=[
                        ListOffsetsPartitionResponse(
                            partition_index=p.partition_index,
                            error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                            timestamp=-1,
                            offset=-1,
                        )
                        for p in t.partitions
                    ],
                )
            )
            continue
        seen: set[int] = set()
        parts = []
        for p in t.partitions:
            if p.partition_index in seen:
                parts.append(
                    ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, error_code=ErrorCode.INVALID_REQUEST
                    )
                )
                continue
            seen.add(p.partition_index)
            timeout_ms = req.timeout_ms if ctx.version >= 10 else 0
            parts.append(await _one(ctx.state, t.name, p, ctx.version, committed, req.replica_id >= 0, timeout_ms))
        topics.append(ListOffsetsTopicResponse(name=t.name, partitions=parts))
    return ListOffsetsResponse(topics=topics)
