"""Share group APIs (KIP-932): ShareGroupHeartbeat (76), ShareGroupDescribe (77),
ShareFetch (78), ShareAcknowledge (79) and the share group offsets APIs
DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91), DeleteShareGroupOffsets (92).

Thin adapters between the generated messages and `ShareCoordinator`; a
ShareFetch that acquires nothing waits (MaxWaitMs) for its partitions to
grow, as a Fetch does.

Tiered storage (KIP-405): records below a tiered partition's local log start are
read from the object store through the broker's RemoteLogManager, as the Fetch
handler does and as Kafka's share fetch does: only the first such partition of a
request (the others answer nothing this time), within remote.fetch.max.wait.ms
(then nothing), answered once that read is done; a failed read answers
UNKNOWN_SERVER_ERROR for the partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from uuid import UUID

from kafkapy.coordinator.share_coordinator import Ack, PartitionFetch, ShareCoordinator, TopicPart
from kafkapy.coordinator.share_group import ShareHeartbeat
from kafkapy.coordinator.share_partition import StateBatch
from kafkapy.coordinator.share_state import SHARE_STATE_TOPIC, UNINITIALIZED, delivery_complete, error_message
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_share_group_offsets_request import AlterShareGroupOffsetsRequest
from kafkapy.protocol.messages.alter_share_group_offsets_response import (
    AlterShareGroupOffsetsResponse,
    AlterShareGroupOffsetsResponsePartition,
    AlterShareGroupOffsetsResponseTopic,
)
from kafkapy.protocol.messages.delete_share_group_offsets_request import DeleteShareGroupOffsetsRequest
from kafkapy.protocol.messages.delete_share_group_offsets_response import (
    DeleteShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponseTopic,
)
from kafkapy.protocol.messages.delete_share_group_state_request import DeleteShareGroupStateRequest
from kafkapy.protocol.messages.delete_share_group_state_response import (
    DeleteShareGroupStateResponse,
    DeleteStateResult,
)
from kafkapy.protocol.messages.delete_share_group_state_response import PartitionResult as DeletePartitionResult
from kafkapy.protocol.messages.describe_share_group_offsets_request import DescribeShareGroupOffsetsRequest
from kafkapy.protocol.messages.describe_share_group_offsets_response import (
    DescribeShareGroupOffsetsResponse,
    DescribeShareGroupOffsetsResponseGroup,
    DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
)
from kafkapy.protocol.messages.initialize_share_group_state_request import InitializeShareGroupStateRequest
from kafkapy.protocol.messages.initialize_share_group_state_response import (
    InitializeShareGroupStateResponse,
    InitializeStateResult,
)
from kafkapy.protocol.messages.initialize_share_group_state_response import (
    PartitionResult as InitializePartitionResult,
)
from kafkapy.protocol.messages.list_groups_response import ListedGroup
from kafkapy.protocol.messages.read_share_group_state_request import ReadShareGroupStateRequest
from kafkapy.protocol.messages.read_share_group_state_response import PartitionResult as ReadPartitionResult
from kafkapy.protocol.messages.read_share_group_state_response import (
    ReadShareGroupStateResponse,
    ReadStateResult,
)
from kafkapy.protocol.messages.read_share_group_state_response import StateBatch as ReadStateBatch
from kafkapy.protocol.messages.read_share_group_state_summary_request import ReadShareGroupStateSummaryRequest
from kafkapy.protocol.messages.read_share_group_state_summary_response import (
    PartitionResult as SummaryPartitionResult,
)
from kafkapy.protocol.messages.read_share_group_state_summary_response import (
    ReadShareGroupStateSummaryResponse,
    ReadStateSummaryResult,
)
from kafkapy.protocol.messages.share_acknowledge_request import ShareAcknowledgeRequest
from kafkapy.protocol.messages.share_acknowledge_response import (
    LeaderIdAndEpoch as AckLeader,
)
from kafkapy.protocol.messages.share_acknowledge_response import (
    PartitionData as AckPartitionData,
)
from kafkapy.protocol.messages.share_acknowledge_response import (
    ShareAcknowledgeResponse,
    ShareAcknowledgeTopicResponse,
)
from kafkapy.protocol.messages.share_fetch_request import ShareFetchRequest
from kafkapy.protocol.messages.share_fetch_response import (
    AcquiredRecords,
    LeaderIdAndEpoch,
    PartitionData,
    ShareFetchableTopicResponse,
    ShareFetchResponse,
)
from kafkapy.protocol.messages.share_group_describe_request import ShareGroupDescribeRequest
from kafkapy.protocol.messages.share_group_describe_response import (
    Assignment as DescribedAssignment,
)
from kafkapy.protocol.messages.share_group_describe_response import (
    DescribedGroup,
    Member,
    ShareGroupDescribeResponse,
)
from kafkapy.protocol.messages.share_group_describe_response import (
    TopicPartitions as DescribedTopicPartitions,
)
from kafkapy.protocol.messages.share_group_heartbeat_request import ShareGroupHeartbeatRequest
from kafkapy.protocol.messages.share_group_heartbeat_response import (
    Assignment,
    ShareGroupHeartbeatResponse,
    TopicPartitions,
)
from kafkapy.protocol.messages.write_share_group_state_request import WriteShareGroupStateRequest
from kafkapy.protocol.messages.write_share_group_state_response import PartitionResult as WritePartitionResult
from kafkapy.protocol.messages.write_share_group_state_response import (
    WriteShareGroupStateResponse,
    WriteStateResult,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers._common import GROUP_AUTHORIZED_OPERATIONS, NOT_REQUESTED

log = get_logger(__name__)
UNKNOWN_PARTITION_MESSAGE = "This server does not host this topic-partition."
SIMPLE_ASSIGNOR = "simple"  # Kafka's share group assignor name
_INT_MAX = 2**31 - 1


def client_host(ctx: RequestContext) -> str:
    host = ctx.conn.peer_host if ctx.conn is not None else "127.0.0.1"
    return f"/{host}"  # as Kafka shows hosts (InetAddress.toString())


def _sorted(parts: dict[UUID, frozenset[int]]) -> list[tuple[UUID, list[int]]]:
    return [(t, sorted(p)) for t, p in sorted(parts.items(), key=lambda kv: str(kv[0])) if p]


async def _coordinator(ctx: RequestContext, group_id: str) -> ShareCoordinator | None:
    """The share coordinator when this broker coordinates `group_id` (its __consumer_offsets
    partition, as FindCoordinator answers)."""
    if not ctx.state.groups.owns(group_id):
        return None
    coord = ctx.state.share_groups
    await coord.ready(group_id)  # __share_group_state made by this request: served a moment later
    return coord


def _enabled(ctx: RequestContext) -> bool:
    """share.version >= 1: with it at 0 (UpdateFeatures) Kafka answers UNSUPPORTED_VERSION, still advertising the APIs."""
    return ctx.state.features.level("share.version") >= 1


async def share_group_heartbeat(ctx: RequestContext, req: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse:
    if not _enabled(ctx):
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.UNSUPPORTED_VERSION)
    if not authz.group(ctx, Op.READ, req.group_id):
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return ShareGroupHeartbeatResponse(
            error_code=ErrorCode.INVALID_REQUEST, error_message="GroupId can't be empty."
        )
    names = req.subscribed_topic_names
    if names is not None and authz.enabled(ctx) and authz.denied_topics(ctx, Op.DESCRIBE, names):
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    coord = await _coordinator(ctx, req.group_id)
    if coord is None:
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.NOT_COORDINATOR)
    base = ctx.state.groups
    if (
        ctx.state.consumer_groups.groups.get(req.group_id) is not None
        or req.group_id in base.groups
        or base.streams.get(req.group_id) is not None
    ):
        return ShareGroupHeartbeatResponse(
            error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=f"Group {req.group_id} is not a share group."
        )
    res = coord.heartbeat(
        req.group_id,
        ShareHeartbeat(
            member_id=req.member_id,
            member_epoch=req.member_epoch,
            rack_id=req.rack_id,
            subscribed_topic_names=req.subscribed_topic_names,
            client_id=ctx.client_id or "",
            client_host=client_host(ctx),
        ),
    )
    if res.error != ErrorCode.NONE:
        return ShareGroupHeartbeatResponse(error_code=res.error, error_message=res.message)
    if res.member_epoch == -1:  # a leave is answered without a heartbeat interval, as Kafka
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=res.member_id, member_epoch=-1)
    assignment = None
    if res.assignment is not None:
        assignment = Assignment(
            topic_partitions=[TopicPartitions(topic_id=t, partitions=p) for t, p in _sorted(res.assignment)]
        )
    return ShareGroupHeartbeatResponse(
        error_code=ErrorCode.NONE,
        member_id=res.member_id,
        member_epoch=res.member_epoch,
        heartbeat_interval_ms=coord.heartbeat_interval_ms(req.group_id),
        assignment=assignment,
    )


async def share_group_describe(ctx: RequestContext, req: ShareGroupDescribeRequest) -> ShareGroupDescribeResponse:
    ops = GROUP_AUTHORIZED_OPERATIONS if req.include_authorized_operations else NOT_REQUESTED
    meta = ctx.state.metadata
    out = []
    for group_id in req.group_ids:
        d = DescribedGroup(group_id=group_id, authorized_operations=ops, assignor_name=SIMPLE_ASSIGNOR)
        if not _enabled(ctx):
            d.error_code, d.assignor_name, d.authorized_operations = ErrorCode.UNSUPPORTED_VERSION, "", NOT_REQUESTED
            out.append(d)
            continue
        if not authz.group(ctx, Op.DESCRIBE, group_id):
            d.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
            d.authorized_operations = NOT_REQUESTED
            out.append(d)
            continue
        coord = await _coordinator(ctx, group_id)
        if coord is None:
            d.error_code = ErrorCode.NOT_COORDINATOR
            out.append(d)
            continue
        group = coord.groups.get(group_id)
        if group is None:
            d.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            d.error_message = f"Group {group_id} not found."
            d.assignor_name = ""  # as Kafka: no state, epochs 0
            out.append(d)
            continue
        d.group_state = group.state
        d.group_epoch = d.assignment_epoch = group.group_epoch
        for m in group.members.values():
            tps = []
            for t, p in _sorted(m.assignment):
                info = meta.topic_by_id(t)
                if info is not None:
                    tps.append(DescribedTopicPartitions(topic_id=t, topic_name=info.name, partitions=p))
            d.members.append(
                Member(
                    member_id=m.member_id,
                    rack_id=m.rack_id,
                    member_epoch=m.member_epoch,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    subscribed_topic_names=sorted(m.subscribed),
                    assignment=DescribedAssignment(topic_partitions=tps),
                )
            )
        out.append(d)
    return ShareGroupDescribeResponse(groups=out)


def _acks(topics: Iterable[object]) -> dict[TopicPart, list[Ack]]:
    out: dict[TopicPart, list[Ack]] = {}
    for t in topics:
        for p in t.partitions:  # type: ignore[attr-defined]
            batches = p.acknowledgement_batches
            if batches:
                out.setdefault((t.topic_id, p.partition_index), []).extend(  # type: ignore[attr-defined]
                    (b.first_offset, b.last_offset, list(b.acknowledge_types)) for b in batches
                )
    return out


def _ack_message(code: int) -> str | None:
    if code == ErrorCode.INVALID_RECORD_STATE:  # Kafka 4.3.1's words
        return "Batch record not found. The request batch offsets are not found in the cache."
    return None


def _topic_error(ctx: RequestContext, parts: Iterable[TopicPart]) -> dict[TopicPart, int]:
    """Partitions the principal may not read (TOPIC_AUTHORIZATION_FAILED) or that do not exist."""
    out: dict[TopicPart, int] = {}
    for tid, p in parts:
        info = ctx.state.metadata.topic_by_id(tid)
        if info is None:
            out[(tid, p)] = ErrorCode.UNKNOWN_TOPIC_ID
        elif not authz.topic(ctx, Op.READ, info.name):
            out[(tid, p)] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return out


def _refused(ctx: RequestContext, group_id: str, member_id: str) -> tuple[int, str | None] | None:
    """What ShareFetch and ShareAcknowledge answer before looking at the session, or None."""
    if not _enabled(ctx):
        return ErrorCode.UNSUPPORTED_VERSION, None
    if not group_id or not member_id:
        return ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set."
    if not authz.group(ctx, Op.READ, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, None
    return None


async def share_fetch(ctx: RequestContext, req: ShareFetchRequest) -> ShareFetchResponse:
    resp = await _share_fetch(ctx, req)
    if resp.error_code == ErrorCode.NONE:  # Kafka answers 0 with a top-level error
        resp.acquisition_lock_timeout_ms = ctx.state.share_groups.lock_ms(req.group_id or "")
    return resp


async def _share_fetch(ctx: RequestContext, req: ShareFetchRequest) -> ShareFetchResponse:
    resp = ShareFetchResponse()
    group_id, member_id = req.group_id or "", req.member_id or ""
    refused = _refused(ctx, group_id, member_id)
    if refused is not None:
        resp.error_code, resp.error_message = refused
        return resp
    coord = ctx.state.share_groups  # this broker as the leader of the partitions (Kafka's share-partition leader)
    acks = _acks(req.topics)
    if req.share_session_epoch == 0 and acks:
        resp.error_code = ErrorCode.INVALID_REQUEST
        resp.error_message = "Acknowledge data present on initial fetch for a share session."
        return resp
    wanted = [(t.topic_id, p.partition_index) for t in req.topics for p in t.partitions]
    forget = [(t.topic_id, p) for t in req.forgotten_topics_data for p in t.partitions]
    err, sess = coord.session(group_id, member_id, req.share_session_epoch, wanted, forget)
    if err != ErrorCode.NONE or sess is None:
        resp.error_code = err
        return resp
    unread = await coord.prepare(group_id, [*sess.partitions, *acks])
    ack_errors = await _acknowledge(coord, group_id, member_id, acks) if acks else {}
    results: dict[TopicPart, PartitionFetch] = {}
    if req.share_session_epoch == -1:
        coord.close_session(group_id, member_id)
    else:
        denied = _topic_error(ctx, sess.partitions)
        denied.update((tp, code) for tp, code in unread.items() if tp in sess.partitions and tp not in denied)
        parts = [tp for tp in sess.partitions if tp not in denied]
        results = await _poll(ctx, coord, req, group_id, member_id, parts)
        for tp, code in denied.items():
            results[tp] = PartitionFetch(code)
    by_topic: dict[UUID, list[PartitionData]] = {}
    for tp in list(dict.fromkeys([*wanted, *results, *ack_errors])):
        pf = results.get(tp, PartitionFetch())
        if tp not in ack_errors and not pf.acquired and pf.error == ErrorCode.NONE:
            continue  # as Kafka: only partitions with records, an error or acknowledgement results
        by_topic.setdefault(tp[0], []).append(
            PartitionData(
                partition_index=tp[1],
                error_code=pf.error,
                acknowledge_error_code=ack_errors.get(tp, ErrorCode.NONE),
                acknowledge_error_message=_ack_message(ack_errors.get(tp, ErrorCode.NONE)),
                current_leader=LeaderIdAndEpoch(*_leader(ctx, tp, pf)),
                records=pf.records,
                acquired_records=[
                    AcquiredRecords(first_offset=a.first, last_offset=a.last, delivery_count=a.delivery_count)
                    for a in pf.acquired
                ],
            )
        )
    resp.responses = [ShareFetchableTopicResponse(topic_id=t, partitions=ps) for t, ps in by_topic.items()]
    return resp


async def _acknowledge(
    coord: ShareCoordinator, group_id: str, member_id: str, acks: dict[TopicPart, list[Ack]]
) -> dict[TopicPart, int]:
    """Apply acknowledgements and write them to the share coordinators before they are answered."""
    errors = coord.acknowledge(group_id, member_id, acks)
    err = await coord.flush(group_id)
    if err != ErrorCode.NONE:
        return dict.fromkeys(errors, err)
    return errors


def _leader(ctx: RequestContext, tp: TopicPart, pf: PartitionFetch | None) -> tuple[int, int]:
    """CurrentLeader: this broker at its epoch, or (NOT_LEADER_OR_FOLLOWER) the leader the metadata knows."""
    if pf is not None and pf.leader_epoch >= 0 and pf.error == ErrorCode.NONE:
        return ctx.state.node_id, pf.leader_epoch
    info = ctx.state.metadata.topic_by_id(tp[0])
    if info is None or not 0 <= tp[1] < len(info.partitions):
        return -1, -1
    lp = info.partitions[tp[1]]
    return lp.leader, max(lp.leader_epoch, 0)


async def _poll(
    ctx: RequestContext,
    coord: ShareCoordinator,
    req: ShareFetchRequest,
    group_id: str,
    member_id: str,
    parts: list[TopicPart],
) -> dict[TopicPart, PartitionFetch]:
    """Acquire; when nothing was and MaxWaitMs allows, wait for the partitions to grow and try again."""
    max_records = req.max_records if ctx.version >= 1 and req.max_records > 0 else 500
    max_bytes = req.max_bytes if req.max_bytes > 0 else _INT_MAX
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    waits = ctx.state.replicas.consumer_waits
    keys = []
    for tid, p in parts:
        info = ctx.state.metadata.topic_by_id(tid)
        if info is not None:
            keys.append((info.name, p))
    while True:
        results = coord.fetch(group_id, member_id, parts, max_records, max_bytes)
        remote = next((tp for tp, r in results.items() if r.remote_offset >= 0), None)
        if remote is not None:  # the request is answered once this read is done
            records_left = max_records - sum(a.last - a.first + 1 for r in results.values() for a in r.acquired)
            bytes_left = max_bytes - sum(len(r.records) for r in results.values())
            if records_left > 0 and bytes_left > 0:
                results[remote] = await _fetch_remote(
                    ctx, coord, group_id, member_id, remote, results[remote], records_left, bytes_left
                )
        err = await coord.flush(group_id)  # what was acquired (a new start offset) is written before it is answered
        if err != ErrorCode.NONE:
            log.warning("share fetch: state not written", group=group_id, error=err)
        got = any(r.acquired or r.error for r in results.values())
        remaining = deadline - loop.time()
        if got or remote is not None or not keys or remaining <= 0:
            return results
        woken: asyncio.Future[None] = loop.create_future()
        waits.watch(keys, woken)
        try:
            # a lock timeout or a release makes records deliverable without an append: look again soon
            await asyncio.wait_for(woken, min(remaining, 0.5))
        except TimeoutError:
            pass
        finally:
            waits.unwatch(keys, woken)
        if ctx.conn is not None and ctx.conn.closed:
            return results


async def _fetch_remote(
    ctx: RequestContext,
    coord: ShareCoordinator,
    group_id: str,
    member_id: str,
    tp: TopicPart,
    pf: PartitionFetch,
    max_records: int,
    max_bytes: int,
) -> PartitionFetch:
    """Read partition `tp` from remote storage at `pf.remote_offset` and acquire what came (see the
    module docstring)."""
    state = ctx.state
    info = state.metadata.topic_by_id(tp[0])
    task = state.remote_log
    plog = state.replicas.partition_log(info.name, tp[1]) if info is not None else None
    topic_id = task.topic_id(info.name) if task is not None and info is not None else None
    counters = state.stats.remote_topic(info.name) if state.stats is not None and info is not None else None
    if counters is not None:
        counters.fetch_requests += 1
    committed = coord.group_config(group_id, "share.isolation.level") == "read_committed"
    offset = pf.remote_offset
    try:
        if task is None or plog is None or topic_id is None:
            raise RuntimeError("tiered storage is not enabled on this broker")
        upper = plog.last_stable_offset if committed else plog.high_watermark
        data = await asyncio.wait_for(
            task.read(plog, topic_id, offset, max(max_bytes, 1), upper, True),
            state.config.remote_fetch_max_wait_ms / 1000,
        )
        aborted = await task.manager.aborted_transactions(plog, topic_id, offset, upper) if committed and data else []
    except TimeoutError:
        log.info("share fetch: remote fetch timed out", group=group_id, topic_id=str(tp[0]), partition=tp[1])
        return PartitionFetch(leader_epoch=pf.leader_epoch)  # nothing this time: the consumer asks again
    except Exception as exc:
        log.warning(
            "share fetch: remote fetch failed",
            group=group_id,
            topic_id=str(tp[0]),
            partition=tp[1],
            offset=offset,
            error=f"{type(exc).__name__}: {exc}",
        )
        if counters is not None:
            counters.fetch_errors += 1
        return PartitionFetch(ErrorCode.UNKNOWN_SERVER_ERROR)
    if not data:
        return PartitionFetch(leader_epoch=pf.leader_epoch)  # no longer held remotely (expired meanwhile)
    if counters is not None:
        counters.fetch_bytes += len(data)
    return coord.acquire_fetched(group_id, member_id, tp, data, aborted, max_records)


async def share_acknowledge(ctx: RequestContext, req: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse:
    resp = await _share_acknowledge(ctx, req)
    if resp.error_code == ErrorCode.NONE and ctx.version >= 2:  # Kafka answers 0 with a top-level error
        resp.acquisition_lock_timeout_ms = ctx.state.share_groups.lock_ms(req.group_id or "")
    return resp


async def _share_acknowledge(ctx: RequestContext, req: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse:
    resp = ShareAcknowledgeResponse()
    group_id, member_id = req.group_id or "", req.member_id or ""
    refused = _refused(ctx, group_id, member_id)
    if refused is not None:
        resp.error_code, resp.error_message = refused
        return resp
    coord = ctx.state.share_groups  # this broker as the leader of the partitions
    if req.share_session_epoch == 0:
        resp.error_code = ErrorCode.INVALID_SHARE_SESSION_EPOCH
        return resp
    err, _ = coord.session(group_id, member_id, req.share_session_epoch, [], [])
    if err != ErrorCode.NONE:
        resp.error_code = err
        return resp
    acks = _acks(req.topics)
    denied = _topic_error(ctx, acks)
    unread = await coord.prepare(group_id, [tp for tp in acks if tp not in denied])
    denied.update(unread)
    errors = await _acknowledge(coord, group_id, member_id, {tp: a for tp, a in acks.items() if tp not in denied})
    errors.update(denied)
    if req.share_session_epoch == -1:
        coord.close_session(group_id, member_id)
    by_topic: dict[UUID, list[AckPartitionData]] = {}
    for (tid, p), code in errors.items():
        by_topic.setdefault(tid, []).append(
            AckPartitionData(
                partition_index=p,
                error_code=code,
                error_message=_ack_message(code),
                current_leader=AckLeader(*_leader(ctx, (tid, p), None)),
            )
        )
    resp.responses = [ShareAcknowledgeTopicResponse(topic_id=t, partitions=ps) for t, ps in by_topic.items()]
    return resp


def listed_share_groups(ctx: RequestContext, states: list[str] | None) -> list[ListedGroup]:
    """ListGroups' share groups (type "share"); the coordinator is not opened just for this
    unless `__share_group_state` exists."""
    coord = ctx.state.share_groups_if_open
    if coord is None and ctx.state.metadata.topic(SHARE_STATE_TOPIC) is not None:
        coord = ctx.state.share_groups
    if coord is None:
        return []
    wanted = {s.lower() for s in states} if states else None
    return [
        ListedGroup(group_id=g.group_id, protocol_type="share", group_state=g.state, group_type="share")
        for g in sorted(coord.groups.values(), key=lambda g: g.group_id)
        if coord.owns(g.group_id) and (wanted is None or g.state.lower() in wanted)
    ]


# ---------------------------------------------------------------- share group offsets (90-92)


async def describe_share_group_offsets(
    ctx: RequestContext, req: DescribeShareGroupOffsetsRequest
) -> DescribeShareGroupOffsetsResponse:
    meta = ctx.state.metadata
    groups = []
    for g in req.groups:
        out = DescribeShareGroupOffsetsResponseGroup(group_id=g.group_id)
        groups.append(out)
        if not authz.group(ctx, Op.DESCRIBE, g.group_id):
            out.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
            continue
        coord = await _coordinator(ctx, g.group_id)
        if coord is None:
            out.error_code = ErrorCode.NOT_COORDINATOR
            continue
        unknown_group = g.group_id not in coord.groups
        if unknown_group and g.topics is None:
            continue  # as Kafka 4.3.1: no error, no topics
        known = {} if unknown_group else await coord.known_partitions(g.group_id)
        wanted: list[tuple[str, list[int]]] = []
        if g.topics is None:  # every partition the group has state for
            names: dict[str, list[int]] = {}
            for tid, p in sorted(known, key=lambda k: (str(k[0]), k[1])):
                info = meta.topic_by_id(tid)
                if info is not None:
                    names.setdefault(info.name, []).append(p)
            wanted = sorted(names.items())
        else:
            wanted = [(t.topic_name, list(t.partitions)) for t in g.topics]
        for name, parts in wanted:
            info = meta.topic(name)
            rt = DescribeShareGroupOffsetsResponseTopic(topic_name=name, topic_id=info.topic_id if info else ZERO_UUID)
            out.topics.append(rt)
            for p in parts:
                rp = DescribeShareGroupOffsetsResponsePartition(partition_index=p, start_offset=-1, leader_epoch=-1)
                rt.partitions.append(rp)
                if info is None or not 0 <= p < len(info.partitions) or not authz.topic(ctx, Op.DESCRIBE, name):
                    rp.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    rp.error_message = UNKNOWN_PARTITION_MESSAGE
                    continue
                if unknown_group:  # named partitions of an unknown group: no state, as Kafka 4.3.1
                    rp.leader_epoch = 0
                    continue
                sp = known.get((info.topic_id, p))
                if sp is None or not sp.initialized:
                    continue
                rp.start_offset = sp.start_offset
                rp.leader_epoch = max(info.partitions[p].leader_epoch, 0)
                part = ctx.state.replicas.partition(name, p)
                if not isinstance(part, int):
                    rp.lag = coord.lag(sp, part.log.high_watermark)
    return DescribeShareGroupOffsetsResponse(groups=groups)


async def alter_share_group_offsets(
    ctx: RequestContext, req: AlterShareGroupOffsetsRequest
) -> AlterShareGroupOffsetsResponse:
    resp = AlterShareGroupOffsetsResponse()
    if not authz.group(ctx, Op.READ, req.group_id):
        resp.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
        return resp
    coord = await _coordinator(ctx, req.group_id)
    if coord is None:
        resp.error_code = ErrorCode.NOT_COORDINATOR
        return resp
    meta = ctx.state.metadata
    offsets: dict[TopicPart, int] = {}
    for t in req.topics:
        info = meta.topic(t.topic_name)
        rt = AlterShareGroupOffsetsResponseTopic(topic_name=t.topic_name, topic_id=info.topic_id if info else ZERO_UUID)
        resp.responses.append(rt)
        for p in t.partitions:
            rp = AlterShareGroupOffsetsResponsePartition(partition_index=p.partition_index)
            rt.partitions.append(rp)
            if info is None or not 0 <= p.partition_index < len(info.partitions):
                rp.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                rp.error_message = UNKNOWN_PARTITION_MESSAGE
            elif not authz.topic(ctx, Op.READ, t.topic_name):
                rp.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            else:
                offsets[(info.topic_id, p.partition_index)] = p.start_offset
    err, msg = await coord.alter_offsets(req.group_id, offsets)
    if err != ErrorCode.NONE:  # as Kafka: the group's error, no topics
        resp.error_code, resp.error_message, resp.responses = err, msg, []
    return resp


async def delete_share_group_offsets(
    ctx: RequestContext, req: DeleteShareGroupOffsetsRequest
) -> DeleteShareGroupOffsetsResponse:
    resp = DeleteShareGroupOffsetsResponse()
    if not authz.group(ctx, Op.DELETE, req.group_id):
        resp.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
        return resp
    coord = await _coordinator(ctx, req.group_id)
    if coord is None:
        resp.error_code = ErrorCode.NOT_COORDINATOR
        return resp
    meta = ctx.state.metadata
    tids: list[UUID] = []
    for t in req.topics:
        info = meta.topic(t.topic_name)
        rt = DeleteShareGroupOffsetsResponseTopic(
            topic_name=t.topic_name, topic_id=info.topic_id if info else ZERO_UUID
        )
        resp.responses.append(rt)
        if info is None:
            rt.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            rt.error_message = UNKNOWN_PARTITION_MESSAGE
        elif not authz.topic(ctx, Op.READ, t.topic_name):
            rt.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        else:
            tids.append(info.topic_id)
    err, msg = await coord.delete_offsets(req.group_id, tids)
    if err != ErrorCode.NONE:
        resp.error_code, resp.error_message = err, msg
        resp.responses = []
    return resp


def share_group_coordinator(ctx: RequestContext, group_id: str) -> ShareCoordinator | None:
    """The share coordinator if `group_id` is a share group (DeleteGroups), without opening it
    unless `__share_group_state` exists."""
    coord = ctx.state.share_groups_if_open
    if coord is None and ctx.state.metadata.topic(SHARE_STATE_TOPIC) is not None:
        coord = ctx.state.share_groups
    return coord if coord is not None and group_id in coord.groups else None


# ---------------------------------------------------------------- share coordinator RPCs (83-87)
# Broker-to-broker (CLUSTER_ACTION): the share-partition leaders' reads and writes of share state at
# the key's share coordinator (kafkapy.coordinator.share_state); per partition NOT_COORDINATOR here
# when this broker does not lead the key's __share_group_state partition.


def _state_batches(batches: Iterable[object]) -> list[StateBatch]:
    return [
        StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)  # type: ignore[attr-defined]
        for b in batches
    ]


def _cluster_action(ctx: RequestContext) -> bool:
    return authz.cluster(ctx, Op.CLUSTER_ACTION)


async def initialize_share_group_state(
    ctx: RequestContext, req: InitializeShareGroupStateRequest
) -> InitializeShareGroupStateResponse:
    allowed = _cluster_action(ctx)
    store = ctx.state.share_state
    results = []
    for t in req.topics:
        out = InitializeStateResult(topic_id=t.topic_id)
        results.append(out)
        for p in t.partitions:
            code: int = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            if allowed:
                k = (req.group_id, t.topic_id, p.partition)
                code = store.initialize(k, p.state_epoch, p.start_offset) or await store.replicated(k)
            out.partitions.append(
                InitializePartitionResult(
                    partition=p.partition, error_code=code, error_message=error_message(code, "Initialize")
                )
            )
    return InitializeShareGroupStateResponse(results=results)


async def read_share_group_state(ctx: RequestContext, req: ReadShareGroupStateRequest) -> ReadShareGroupStateResponse:
    allowed = _cluster_action(ctx)
    store = ctx.state.share_state
    results = []
    for t in req.topics:
        out = ReadStateResult(topic_id=t.topic_id)
        results.append(out)
        for p in t.partitions:
            code: int = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            value = UNINITIALIZED
            if allowed:
                k = (req.group_id, t.topic_id, p.partition)
                code, value = store.read(k, p.leader_epoch)
                code = code or await store.replicated(k)  # a newer leader epoch is written
            r = ReadPartitionResult(partition=p.partition, error_code=code, error_message=error_message(code, "Read"))
            if code == ErrorCode.NONE:
                r.state_epoch, r.start_offset = value.state_epoch, value.start_offset
                r.state_batches = [
                    ReadStateBatch(
                        first_offset=b.first,
                        last_offset=b.last,
                        delivery_state=b.state,
                        delivery_count=b.delivery_count,
                    )
                    for b in value.batches
                ]
            out.partitions.append(r)
    return ReadShareGroupStateResponse(results=results)


async def write_share_group_state(
    ctx: RequestContext, req: WriteShareGroupStateRequest
) -> WriteShareGroupStateResponse:
    allowed = _cluster_action(ctx)
    store = ctx.state.share_state
    results = []
    for t in req.topics:
        out = WriteStateResult(topic_id=t.topic_id)
        results.append(out)
        for p in t.partitions:
            code: int = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            if allowed:
                k = (req.group_id, t.topic_id, p.partition)
                batches = _state_batches(p.state_batches)
                code = store.write(k, p.state_epoch, p.leader_epoch, p.start_offset, batches)
                code = code or await store.replicated(k)
            out.partitions.append(
                WritePartitionResult(partition=p.partition, error_code=code, error_message=error_message(code, "Write"))
            )
    return WriteShareGroupStateResponse(results=results)


async def delete_share_group_state(
    ctx: RequestContext, req: DeleteShareGroupStateRequest
) -> DeleteShareGroupStateResponse:
    allowed = _cluster_action(ctx)
    store = ctx.state.share_state
    results = []
    for t in req.topics:
        out = DeleteStateResult(topic_id=t.topic_id)
        results.append(out)
        for p in t.partitions:
            code: int = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            if allowed:
                k = (req.group_id, t.topic_id, p.partition)
                code = store.delete(k) or await store.replicated(k)
            out.partitions.append(
                DeletePartitionResult(
                    partition=p.partition, error_code=code, error_message=error_message(code, "Delete")
                )
            )
    return DeleteShareGroupStateResponse(results=results)


async def read_share_group_state_summary(
    ctx: RequestContext, req: ReadShareGroupStateSummaryRequest
) -> ReadShareGroupStateSummaryResponse:
    allowed = _cluster_action(ctx)
    store = ctx.state.share_state
    results = []
    for t in req.topics:
        out = ReadStateSummaryResult(topic_id=t.topic_id)
        results.append(out)
        for p in t.partitions:
            code: int = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            value = UNINITIALIZED
            if allowed:
                code, value = store.summary((req.group_id, t.topic_id, p.partition))
            r = SummaryPartitionResult(
                partition=p.partition, error_code=code, error_message=error_message(code, "Read summary")
            )
            if code == ErrorCode.NONE:
                r.state_epoch, r.leader_epoch, r.start_offset = (
                    value.state_epoch,
                    value.leader_epoch,
                    value.start_offset,
                )
                r.delivery_complete_count = delivery_complete(value)
            out.partitions.append(r)
    return ReadShareGroupStateSummaryResponse(results=results)
