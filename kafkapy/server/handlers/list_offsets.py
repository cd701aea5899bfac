"""ListOffsets (2): earliest, latest, max timestamp, and offsets for times."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest
from kafkapy.protocol.messages.list_offsets_response import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
READ_COMMITTED = 1


def _one(
    state: BrokerServices, topic: str, p: ListOffsetsPartition, version: int, committed: bool, replica: bool = False
) -> ListOffsetsPartitionResponse:
    r = ListOffsetsPartitionResponse(
        partition_index=p.partition_index, error_code=ErrorCode.NONE, timestamp=-1, offset=-1
    )
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
    elif ts in (EARLIEST, EARLIEST_LOCAL):
        found = plog.list_offset(EARLIEST)
        assert found is not None  # the log start always has an answer
        r.offset, r.leader_epoch = found.offset, found.leader_epoch
    elif ts == LATEST_TIERED:
        r.offset, r.leader_epoch = -1, -1  # no tiered storage: nothing is tiered
    else:
        found = plog.list_offset(ts)
        bound = plog.last_stable_offset if committed else plog.high_watermark
        if found is not None and found.offset < bound:
            r.offset, r.timestamp, r.leader_epoch = found.offset, found.timestamp, found.leader_epoch
    if version == 0:
        r.old_style_offsets = [r.offset] if r.offset >= 0 and p.max_num_offsets > 0 else []
    return r


async def handle(ctx: RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse:
    committed = ctx.version >= 2 and req.isolation_level == READ_COMMITTED
    topics = []
    for t in req.topics:
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
            parts.append(_one(ctx.state, t.name, p, ctx.version, committed, req.replica_id >= 0))
        topics.append(ListOffsetsTopicResponse(name=t.name, partitions=parts))
    return ListOffsetsResponse(topics=topics)
