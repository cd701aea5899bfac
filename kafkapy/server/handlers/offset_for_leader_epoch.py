"""OffsetForLeaderEpoch (23): the end offset of a leader epoch, for log truncation checks."""

from __future__ import annotations

from kafkapy.cluster.partition import end_offset_for_epoch
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
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
DEBUG_REPLICA = -2  # Kafka's debugging replica id: any replica may answer


def _one(state: BrokerServices, topic: str, p: OffsetForLeaderPartition, replica_id: int = -1) -> EpochEndOffset:
    r = EpochEndOffset(
        error_code=ErrorCode.NONE,
        partition=p.partition,
        leader_epoch=UNDEFINED_EPOCH,
        end_offset=UNDEFINED_EPOCH_OFFSET,
    )
    # consumers and followers (replica_id >= 0) alike are answered by the leader
    partition = state.replicas.partition(topic, p.partition, p.current_leader_epoch)
    if not isinstance(partition, int):
        r.leader_epoch, r.end_offset = partition.end_offset_for_epoch(p.leader_epoch)
        return r
    plog = state.replicas.partition_log(topic, p.partition) if replica_id == DEBUG_REPLICA else None
    if plog is None:
        r.error_code = partition
        return r
    epoch = state.replicas.leader_epoch(topic, p.partition)
    if p.current_leader_epoch >= 0 and p.current_leader_epoch != epoch:
        r.error_code = (
            ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
        )
        return r
    r.leader_epoch, r.end_offset = end_offset_for_epoch(plog, p.leader_epoch, epoch)
    return r


async def handle(ctx: RequestContext, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    replica_id = req.replica_id if ctx.version >= 3 else -1  # consumers send -1; versions < 3 are followers' only
    denied: dict[str, int] = {}
    if ctx.state.authorizer is not None:
        # Kafka: a replica (any id but -1; before v3 there is none) needs ClusterAction, a consumer
        # Describe on each topic
        if (ctx.version < 3 or replica_id != -1) and not authz.cluster(ctx, Op.CLUSTER_ACTION):
            denied = dict.fromkeys((t.topic for t in req.topics), ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        elif ctx.version >= 3 and replica_id == -1:
            refused = authz.denied_topics(ctx, Op.DESCRIBE, (t.topic for t in req.topics))
            denied = dict.fromkeys(refused, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    return OffsetForLeaderEpochResponse(
        topics=[
            OffsetForLeaderTopicResult(
                topic=t.topic,
                partitions=[
                    EpochEndOffset(
                        error_code=denied[t.topic],
                        partition=p.partition,
                        leader_epoch=UNDEFINED_EPOCH,
                        end_offset=UNDEFINED_EPOCH_OFFSET,
                    )
                    if t.topic in denied
                    else _one(ctx.state, t.topic, p, replica_id)
                    for p in t.partitions
                ],
            )
            for t in req.topics
        ]
    )
