"""DeleteRecords (21): move a partition's log start offset forward.

In a cluster only the leader answers, and (as Kafka) only once every live
follower has moved its log start as far: followers learn the leader's log
start from fetch responses and report theirs in their fetch requests.
Past the request's timeout the answer is REQUEST_TIMED_OUT (the leader's
log start has moved all the same).
"""

from __future__ import annotations

import asyncio

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
from kafkapy.server.handler import RequestContext
from kafkapy.server.state import BrokerState
from kafkapy.storage.errors import OffsetOutOfRangeError

HIGH_WATERMARK = -1  # the request's "delete everything up to the high watermark"
INVALID_LOW_WATERMARK = -1


def _one(state: BrokerState, topic: str, p: DeleteRecordsPartition) -> DeleteRecordsPartitionResult:
    r = DeleteRecordsPartitionResult(
        partition_index=p.partition_index, low_watermark=INVALID_LOW_WATERMARK, error_code=ErrorCode.NONE
    )
    info = state.metadata.topic(topic)
    plog = state.partition_log(topic, p.partition_index) if info is not None else None
    code = state.replicas.leader_check(topic, p.partition_index) if state.replicas is not None else ErrorCode.NONE
    if code != ErrorCode.NONE:
        r.error_code = code
    elif info is None or plog is None:
        r.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    elif info.internal:
        r.error_code = ErrorCode.INVALID_TOPIC_EXCEPTION  # Kafka: "Cannot delete records of internal topic"
    elif not plog.config.delete:
        r.error_code = ErrorCode.POLICY_VIOLATION  # compact-only topics refuse DeleteRecords
    else:
        offset = plog.high_watermark if p.offset == HIGH_WATERMARK else p.offset
        try:
            r.low_watermark = plog.delete_records_before(offset)
        except OffsetOutOfRangeError:
            r.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
    return r


async def handle(ctx: RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse:
    topics = [
        DeleteRecordsTopicResult(name=t.name, partitions=[_one(ctx.state, t.name, p) for p in t.partitions])
        for t in req.topics
    ]
    replicas = ctx.state.replicas
    if replicas is not None:
        moved = [(t.name, r) for t in topics for r in t.partitions if r.error_code == ErrorCode.NONE]
        codes = await asyncio.gather(
            *(
                replicas.wait_low_watermark(name, r.partition_index, r.low_watermark, req.timeout_ms)
                for name, r in moved
            )
        )
        for (_, r), code in zip(moved, codes):
            if code != ErrorCode.NONE:
                r.error_code, r.low_watermark = code, INVALID_LOW_WATERMARK
    return DeleteRecordsResponse(topics=topics)
