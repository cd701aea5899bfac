"""OffsetForLeaderEpoch (23): the end offset of a leader epoch, for log truncation checks."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
)
from kafkapy.protocol.messages.offset_for_leader_epoch_response import (
    EpochEndOffset,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderTopicResult,
)
from kafkapy.server.handler import RequestContext
from kafkapy.server.state import BrokerState
from kafkapy.storage.log import PartitionLog

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
DEBUG_REPLICA = -2  # Kafka's debugging replica id: any replica may answer


def _one(state: BrokerState, topic: str, p: OffsetForLeaderPartition, replica_id: int = -1) -> EpochEndOffset:
    r = EpochEndOffset(
        error_code=ErrorCode.NONE,
        partition=p.partition,
        leader_epoch=UNDEFINED_EPOCH,
        end_offset=UNDEFINED_EPOCH_OFFSET,
    )
    plog = state.partition_log(topic, p.partition)
    if state.replicas is not None and replica_id != DEBUG_REPLICA:
        # consumers and followers (replica_id >= 0) alike are answered by the leader
        code = state.replicas.leader_check(topic, p.partition, p.current_leader_epoch)
        if code != ErrorCode.NONE:
            r.error_code = code
            return r
    if plog is None:
        r.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return r
    epoch = state.leader_epoch(topic, p.partition)
    if p.current_leader_epoch >= 0 and p.current_leader_epoch != epoch:
        r.error_code = (
            ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
        )
        return r
    r.leader_epoch, r.end_offset = _end_offset(plog, p.leader_epoch, epoch)
    return r


def _end_offset(plog: PartitionLog, requested: int, current: int) -> tuple[int, int]:
    """(epoch, end offset) as Kafka's leader answers; (-1, -1) for an epoch above the current one.

    Kafka's leader records its own epoch at the log end when it takes over, even
    before it appends anything; kafkapy's epoch cache only learns epochs from
    appends, so that entry is implied here.
    """
    latest = plog.latest_epoch
    if latest < current and requested > latest:
        if requested > current:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested == current or latest == UNDEFINED_EPOCH:
            return requested, plog.log_end_offset
        return latest, plog.log_end_offset  # the largest known epoch below the requested one
    return plog.end_offset_for_epoch(requested)


async def handle(ctx: RequestContext, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    replica_id = req.replica_id if ctx.version >= 3 else -1  # consumers send -1; versions < 3 are followers' only
    return OffsetForLeaderEpochResponse(
        topics=[
            OffsetForLeaderTopicResult(
                topic=t.topic, partitions=[_one(ctx.state, t.topic, p, replica_id) for p in t.partitions]
            )
            for t in req.topics
        ]
    )
