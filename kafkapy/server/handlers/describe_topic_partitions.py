"""DescribeTopicPartitions (75, KIP-966): topics and partitions, paged by a cursor."""

from __future__ import annotations

from kafkapy.cluster.metadata import TopicInfo
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.describe_topic_partitions_request import (
    DescribeTopicPartitionsRequest,
)
from kafkapy.protocol.messages.describe_topic_partitions_response import (
    Cursor,
    DescribeTopicPartitionsResponse,
    DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

MAX_PARTITIONS = 2000  # Kafka's max.request.partition.size.limit default caps response_partition_limit


def _partitions(info: TopicInfo, start: int, limit: int) -> tuple[list[DescribeTopicPartitionsResponsePartition], int]:
    """Up to `limit` partitions from index `start`; the next index, or -1 when the topic is done."""
    chosen = [p for p in info.partitions if p.index >= start]
    more = len(chosen) > limit
    chosen = chosen[:limit]
    entries = [
        DescribeTopicPartitionsResponsePartition(
            error_code=ErrorCode.NONE,
            partition_index=p.index,
            leader_id=p.leader,
            leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas),
            isr_nodes=list(p.isr),
            eligible_leader_replicas=[],  # ELR only exists with several replicas
            last_known_elr=[],
            offline_replicas=[],
        )
        for p in chosen
    ]
    return entries, (chosen[-1].index + 1 if more else -1)


def _error_response(req: DescribeTopicPartitionsRequest, code: int) -> DescribeTopicPartitionsResponse:
    """A whole-request failure: every requested topic carries the error, as in Kafka."""
    return DescribeTopicPartitionsResponse(
        topics=[DescribeTopicPartitionsResponseTopic(error_code=code, name=t.name, partitions=[]) for t in req.topics]
    )


async def handle(ctx: RequestContext, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse:
    state = ctx.state
    fetch_all = not req.topics
    names = sorted({t.name for t in state.metadata.topics()} if fetch_all else {t.name for t in req.topics})
    refused: set[str] = set()
    if state.authorizer is not None:  # Kafka: Describe on each topic; "all" lists only those
        refused = authz.denied_topics(ctx, Op.DESCRIBE, names)
        if fetch_all:
            names, refused = [n for n in names if n not in refused], set()
    cursor = req.cursor
    if cursor is not None:
        if cursor.partition_index < 0:
            return _error_response(req, ErrorCode.INVALID_REQUEST)
        if not fetch_all and cursor.topic_name not in names:
            return _error_response(req, ErrorCode.INVALID_REQUEST)
        names = [n for n in names if n >= cursor.topic_name]
    remaining = max(1, min(MAX_PARTITIONS, req.response_partition_limit))
    resp = DescribeTopicPartitionsResponse(topics=[], next_cursor=None)
    for name in names:
        if remaining == 0:
            resp.next_cursor = Cursor(topic_name=name, partition_index=0)  # the previous topics are complete
            break
        if name in refused:
            resp.topics.append(
                DescribeTopicPartitionsResponseTopic(
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name, partitions=[]
                )
            )
            continue
        info = state.metadata.topic(name)
        if info is None:
            if not fetch_all:
                resp.topics.append(
                    DescribeTopicPartitionsResponseTopic(
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        name=name,
                        partitions=[],
                        # as Kafka, even for an unknown topic
                        topic_authorized_operations=authz.authorized_operations(ctx, Res.TOPIC, name),
                    )
                )
            continue
        start = cursor.partition_index if cursor is not None and name == cursor.topic_name else 0
        partitions, next_index = _partitions(info, start, remaining)
        resp.topics.append(
            DescribeTopicPartitionsResponseTopic(
                error_code=ErrorCode.NONE,
                name=info.name,
                topic_id=info.topic_id,
                is_internal=info.internal,
                partitions=partitions,
                topic_authorized_operations=authz.authorized_operations(ctx, Res.TOPIC, name),
            )
        )
        if next_index != -1:
            resp.next_cursor = Cursor(topic_name=name, partition_index=next_index)
            break
        remaining -= len(partitions)
    return resp
