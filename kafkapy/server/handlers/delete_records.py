"""DeleteRecords (21): move a partition's log start offset forward.

Only the leader answers, and (as Kafka) only once every live follower has
moved its log start as far (at once on a single broker): followers learn the leader's log
start from fetch responses and report theirs in their fetch requests.
Past the request's timeout the answer is REQUEST_TIMED_OUT (the leader's
log start has moved all the same).
"""

from __future__ import annotations

import asyncio

from kafkapy.cluster.metadata import INTERNAL_TOPICS
from kafkapy.cluster.partition import Partition
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.delete_records_request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
)
from kafkapy.protocol.messages.delete_records_response import (
    DeleteRecordsPartitionResult,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices
from kafkapy.storage.errors import OffsetOutOfRangeError

HIGH_WATERMARK = -1  # the request's "delete everything up to the high watermark"
INVALID_LOW_WATERMARK = -1


def _one(
    state: BrokerServices, topic: str, p: DeleteRecordsPartition
) -> tuple[DeleteRecordsPartitionResult, Partition | None]:
    r = DeleteRecordsPartitionResult(
        partition_index=p.partition_index, low_watermark=INVALID_LOW_WATERMARK, error_code=ErrorCode.NONE
    )
    partition = state.replicas.partition(topic, p.partition_index)
    if isinstance(partition, int):
        r.error_code = partition
        return r, None
    if topic in INTERNAL_TOPICS:
        r.error_code = ErrorCode.INVALID_TOPIC_EXCEPTION  # Kafka: "Cannot delete records of internal topic"
    elif not partition.log.config.delete:
        r.error_code = ErrorCode.POLICY_VIOLATION  # compact-only topics refuse DeleteRecords
    else:
        offset = partition.high_watermark if p.offset == HIGH_WATERMARK else p.offset
        try:
            r.low_watermark = partition.delete_records_before(offset)
            return r, partition
        except OffsetOutOfRangeError:
            r.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
    return r, None


async def handle(ctx: RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse:
    topics = []
    moved: list[tuple[DeleteRecordsPartitionResult, Partition]] = []
    denied = authz.denied_topics(ctx, Op.DELETE, (t.name for t in req.topics))  # Delete on the topic
    for t in req.topics:
        results = []
        if t.name in denied:
            results = [
                DeleteRecordsPartitionResult(
                    partition_index=p.partition_index,
                    low_watermark=INVALID_LOW_WATERMARK,
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                )
                for p in t.partitions
            ]
            topics.append(DeleteRecordsTopicResult(name=t.name, partitions=results))
            continue
        for p in t.partitions:
            r, partition = _one(ctx.state, t.name, p)
            results.append(r)
            if partition is not None:
                moved.append((r, partition))
        topics.append(DeleteRecordsTopicResult(name=t.name, partitions=results))
    codes = await asyncio.gather(*(partition.wait_log_start(r.low_watermark, req.timeout_ms) for r, partition in moved))
    for (r, _), code in zip(moved, codes):
        if code != ErrorCode.NONE:
            r.error_code, r.low_watermark = code, INVALID_LOW_WATERMARK
    return DeleteRecordsResponse(topics=topics)
