"""KIP-848 group APIs: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).

Thin adapters between the generated messages and `ConsumerGroupCoordinator`.
"""

from __future__ import annotations

from uuid import UUID

from kafkapy.coordinator.consumer_group import HeartbeatRequest, Partitions
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.consumer_group_describe_request import (
    ConsumerGroupDescribeRequest,
)
from kafkapy.protocol.messages.consumer_group_describe_response import (
    Assignment as DescribedAssignment,
)
from kafkapy.protocol.messages.consumer_group_describe_response import (
    ConsumerGroupDescribeResponse,
    DescribedGroup,
    Member,
)
from kafkapy.protocol.messages.consumer_group_describe_response import (
    TopicPartitions as DescribedTopicPartitions,
)
from kafkapy.protocol.messages.consumer_group_heartbeat_request import (
    ConsumerGroupHeartbeatRequest,
)
from kafkapy.protocol.messages.consumer_group_heartbeat_response import (
    Assignment,
    ConsumerGroupHeartbeatResponse,
    TopicPartitions,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers._common import GROUP_AUTHORIZED_OPERATIONS, NOT_REQUESTED
from kafkapy.server.handlers.groups import client_host

CONSUMER_MEMBER = 1  # ConsumerGroupDescribe v1's MemberType: -1 unknown, 0 classic, 1 consumer


def _share_group(ctx: RequestContext, group_id: str) -> bool:
    """Whether `group_id` is a share group (KIP-932): it is no consumer group then."""
    from kafkapy.server.handlers.share_group import share_group_coordinator

    return share_group_coordinator(ctx, group_id) is not None


def _sorted(parts: Partitions) -> list[tuple[UUID, list[int]]]:
    return [(t, sorted(p)) for t, p in sorted(parts.items(), key=lambda kv: str(kv[0])) if p]


async def consumer_group_heartbeat(
    ctx: RequestContext, req: ConsumerGroupHeartbeatRequest
) -> ConsumerGroupHeartbeatResponse:
    if ctx.state.features.level("group.version") < 1:  # the consumer protocol off (UpdateFeatures), as Kafka
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.UNSUPPORTED_VERSION)
    if not authz.group(ctx, Op.READ, req.group_id):  # Kafka: Read on the group
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.INVALID_REQUEST, error_message="GroupId can't be empty."
        )
    coord = ctx.state.consumer_groups
    if not coord.owns(req.group_id):
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.NOT_COORDINATOR)
    if _share_group(ctx, req.group_id):
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=f"Group {req.group_id} is not a consumer group."
        )
    owned = None
    if req.topic_partitions is not None:
        owned = {tp.topic_id: frozenset(tp.partitions) for tp in req.topic_partitions}
    res = coord.heartbeat(
        req.group_id,
        HeartbeatRequest(
            member_id=req.member_id,
            member_epoch=req.member_epoch,
            instance_id=req.instance_id,
            rack_id=req.rack_id,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            subscribed_topic_names=req.subscribed_topic_names,
            subscribed_topic_regex=req.subscribed_topic_regex if ctx.version >= 1 else None,
            server_assignor=req.server_assignor,
            owned=owned,
            client_id=ctx.client_id,
            client_host=client_host(ctx),
        ),
    )
    if res.error != ErrorCode.NONE:
        # as Kafka: an error answer carries no member id and epoch 0 (the client keeps its own)
        return ConsumerGroupHeartbeatResponse(error_code=res.error, error_message=res.message)
    assignment = None
    if res.assignment is not None:
        assignment = Assignment(
            topic_partitions=[TopicPartitions(topic_id=t, partitions=p) for t, p in _sorted(res.assignment)]
        )
    return ConsumerGroupHeartbeatResponse(
        error_code=ErrorCode.NONE,
        member_id=res.member_id,
        member_epoch=res.member_epoch,
        heartbeat_interval_ms=res.heartbeat_interval_ms,
        assignment=assignment,
    )


async def consumer_group_describe(
    ctx: RequestContext, req: ConsumerGroupDescribeRequest
) -> ConsumerGroupDescribeResponse:
    coord = ctx.state.consumer_groups
    ops = GROUP_AUTHORIZED_OPERATIONS if req.include_authorized_operations else NOT_REQUESTED
    meta = ctx.state.metadata

    def described(parts: Partitions) -> DescribedAssignment:
        out = []
        for t, p in _sorted(parts):
            info = meta.topic_by_id(t)
            if info is not None:
                out.append(DescribedTopicPartitions(topic_id=t, topic_name=info.name, partitions=p))
        return DescribedAssignment(topic_partitions=out)

    groups = []
    for group_id in req.group_ids:
        d = DescribedGroup(group_id=group_id, authorized_operations=ops)
        group = coord.groups.get(group_id)
        if ctx.state.authorizer is not None:  # Kafka: Describe on the group; the principal's operations
            if not authz.group(ctx, Op.DESCRIBE, group_id):
                d.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
                d.authorized_operations = NOT_REQUESTED
                groups.append(d)
                continue
            if ops != NOT_REQUESTED:
                d.authorized_operations = authz.authorized_operations(ctx, Res.GROUP, group_id)
        if not coord.owns(group_id):
            d.error_code = ErrorCode.NOT_COORDINATOR
        elif group is None:
            d.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            classic = coord.base.groups.get(group_id) is not None or _share_group(ctx, group_id)
            d.error_message = (
                f"Group {group_id} is not a consumer group." if classic else f"Group {group_id} not found."
            )
        else:
            d.group_state = group.state.value
            d.group_epoch = group.group_epoch
            d.assignment_epoch = group.assignment_epoch
            d.assignor_name = group.preferred_assignor()
            d.members = [
                Member(
                    member_id=m.member_id,
                    instance_id=m.instance_id,
                    rack_id=m.rack_id,
                    member_epoch=m.member_epoch,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    subscribed_topic_names=list(m.subscribed_topic_names),
                    subscribed_topic_regex=m.subscribed_topic_regex,
                    assignment=described(m.assigned),
                    target_assignment=described(group.target.get(m.member_id, {})),
                    member_type=CONSUMER_MEMBER,  # v1 (KIP-1099): no classic members join a consumer group here
                )
                for m in group.members.values()
            ]
        groups.append(d)
    return ConsumerGroupDescribeResponse(groups=groups)
