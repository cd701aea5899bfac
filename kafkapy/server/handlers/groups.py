"""Group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
SyncGroup (14), DescribeGroups (15), ListGroups (16), DeleteGroups (42).

Thin adapters: decoded requests in, `GroupCoordinator` calls, responses out.
JoinGroup and SyncGroup may wait for the rebalance; other requests on the
same connection keep running meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkapy.coordinator.group import GroupState, JoinRequest
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.delete_groups_response import (
    DeletableGroupResult,
    DeleteGroupsResponse,
)
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.describe_groups_response import (
    DescribedGroup,
    DescribedGroupMember,
    DescribeGroupsResponse,
)
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.find_coordinator_response import (
    Coordinator,
    FindCoordinatorResponse,
)
from kafkapy.protocol.messages.heartbeat_request import HeartbeatRequest
from kafkapy.protocol.messages.heartbeat_response import HeartbeatResponse
from kafkapy.protocol.messages.join_group_request import JoinGroupRequest
from kafkapy.protocol.messages.join_group_response import (
    JoinGroupResponse,
    JoinGroupResponseMember,
)
from kafkapy.protocol.messages.leave_group_request import LeaveGroupRequest
from kafkapy.protocol.messages.leave_group_response import (
    LeaveGroupResponse,
    MemberResponse,
)
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.list_groups_response import (
    ListedGroup,
    ListGroupsResponse,
)
from kafkapy.protocol.messages.sync_group_request import SyncGroupRequest
from kafkapy.protocol.messages.sync_group_response import SyncGroupResponse
from kafkapy.protocol.uuids import parse_uuid_text
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext, in_purgatory
from kafkapy.server.handlers._common import GROUP_AUTHORIZED_OPERATIONS, NOT_REQUESTED
from kafkapy.server.listeners import client_listener
from kafkapy.server.services import BrokerServices

KEY_GROUP = 0
KEY_TRANSACTION = 1
KEY_SHARE = 2  # FindCoordinator v6 (KIP-932): "groupId:topicId:partition"
# Kafka's text for INVALID_REQUEST, which it sends for an unknown key type
INVALID_REQUEST_MESSAGE = (
    "This most likely occurs because of a request being malformed by the client library or the message was sent "
    "to an incompatible broker. See the broker logs for more details."
)
if TYPE_CHECKING:
    from kafkapy.coordinator.share_coordinator import ShareCoordinator

CLASSIC = "classic"
CONSUMER = "consumer"


def client_host(ctx: RequestContext) -> str:
    host = ctx.conn.peer_host if ctx.conn is not None else "127.0.0.1"
    return f"/{host}"  # Kafka shows hosts as InetAddress.toString()


# ---------------------------------------------------------------- FindCoordinator


def _find_one(ctx: RequestContext, state: BrokerServices, key: str, key_type: int, listener: str | None) -> Coordinator:
    """`listener`: the client's; the coordinator's endpoint there (not available when it has none)."""
    out = Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.NONE, error_message=None)
    if state.authorizer is not None and key_type in (KEY_GROUP, KEY_TRANSACTION):
        # Kafka: Describe on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
        if key_type == KEY_GROUP and not authz.group(ctx, Op.DESCRIBE, key):
            out.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
            return out
        if key_type == KEY_TRANSACTION and not authz.transactional_id(ctx, Op.DESCRIBE, key):
            out.error_code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            return out
    if key_type == KEY_TRANSACTION:
        tnode = state.txns.coordinator_node(key) if key else None
        tend = tnode.endpoint(listener) if tnode is not None else None
        if tnode is None or tend is None:
            out.error_code = ErrorCode.COORDINATOR_NOT_AVAILABLE if key else ErrorCode.INVALID_REQUEST
            return out
        out.node_id, out.host, out.port = tnode.node_id, tend.host, tend.port
        return out
    if key_type == KEY_SHARE:  # "group:topicId:partition": the share coordinator (KIP-932), a broker-to-broker lookup
        if state.authorizer is not None and not authz.cluster(ctx, Op.CLUSTER_ACTION):
            out.error_code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            return out
        if not _share_key(key):
            out.error_code = ErrorCode.INVALID_REQUEST
            out.error_message = ""
            return out
        snode = state.share_state.coordinator_node(key)
        send = snode.endpoint(listener) if snode is not None else None
        if snode is None or send is None:
            out.error_code = ErrorCode.COORDINATOR_NOT_AVAILABLE
            return out
        out.node_id, out.host, out.port = snode.node_id, send.host, send.port
        return out
    if key_type != KEY_GROUP:
        out.error_code = ErrorCode.INVALID_REQUEST
        out.error_message = INVALID_REQUEST_MESSAGE
        return out
    node = state.groups.coordinator_node(key)
    end = node.endpoint(listener) if node is not None else None
    if node is None or end is None:
        out.error_code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        return out
    out.node_id, out.host, out.port = node.node_id, end.host, end.port
    return out


def _share_key(key: str) -> bool:
    """A share coordinator key: group id, topic id (Kafka's text form) and partition, ':'-separated."""
    rest = key.rsplit(":", 2)
    if len(rest) != 3 or not rest[0]:
        return False
    try:
        parse_uuid_text(rest[1])
        return int(rest[2]) >= 0
    except ValueError:
        return False


async def find_coordinator(ctx: RequestContext, req: FindCoordinatorRequest) -> FindCoordinatorResponse:
    # Success messages as Apache Kafka's: "" per coordinator (v4+), Errors.NONE's name "NONE" (v1-3)
    if ctx.version >= 4:
        found = [_find_one(ctx, ctx.state, k, req.key_type, client_listener(ctx)) for k in req.coordinator_keys]
        for c in found:
            if c.error_code == ErrorCode.NONE:
                c.error_message = ""
        return FindCoordinatorResponse(coordinators=found)
    one = _find_one(ctx, ctx.state, req.key, req.key_type if ctx.version >= 1 else KEY_GROUP, client_listener(ctx))
    if one.error_code == ErrorCode.NONE:
        one.error_message = "NONE"
    return FindCoordinatorResponse(
        error_code=one.error_code, error_message=one.error_message, node_id=one.node_id, host=one.host, port=one.port
    )


# ---------------------------------------------------------------- JoinGroup / SyncGroup


async def join_group(ctx: RequestContext, req: JoinGroupRequest) -> JoinGroupResponse:
    v = ctx.version
    name_if_null = None if v >= 7 else ""
    if not authz.group(ctx, Op.READ, req.group_id):
        return JoinGroupResponse(
            error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, generation_id=-1, member_id="", protocol_name=name_if_null
        )
    if not req.group_id:
        return JoinGroupResponse(
            error_code=ErrorCode.INVALID_GROUP_ID, member_id=req.member_id, protocol_name=name_if_null
        )
    coord = ctx.state.groups
    if not coord.owns(req.group_id):
        return JoinGroupResponse(
            error_code=ErrorCode.NOT_COORDINATOR, member_id=req.member_id, protocol_name=name_if_null
        )
    if coord.consumer.get(req.group_id) is not None:  # a KIP-848 group: only an empty one gives way
        err = ctx.state.consumer_groups.before_classic_join(req.group_id)
        if err != ErrorCode.NONE:
            return JoinGroupResponse(error_code=err, member_id=req.member_id, protocol_name=name_if_null)
    if _share_group(ctx, req.group_id) is not None:  # a share group (KIP-932) never gives way, as Kafka
        return JoinGroupResponse(
            error_code=ErrorCode.INCONSISTENT_GROUP_PROTOCOL, generation_id=-1, member_id="", protocol_name=name_if_null
        )
    if coord.streams.get(req.group_id) is not None:  # a KIP-1071 group: only an empty one gives way
        err = ctx.state.streams_groups.before_other_protocol(req.group_id)
        if err != ErrorCode.NONE:
            return JoinGroupResponse(error_code=err, member_id=req.member_id, protocol_name=name_if_null)
    jr = JoinRequest(
        member_id=req.member_id,
        group_instance_id=req.group_instance_id,
        client_id=ctx.client_id,
        client_host=client_host(ctx),
        session_timeout_ms=req.session_timeout_ms,
        rebalance_timeout_ms=req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
        protocol_type=req.protocol_type,
        protocols=[(p.name, p.metadata) for p in req.protocols],
        require_known_member_id=v >= 4,
    )
    res = await in_purgatory(ctx, coord.join(req.group_id, jr))
    return JoinGroupResponse(
        error_code=res.error,
        generation_id=res.generation_id,
        protocol_type=res.protocol_type,
        protocol_name=res.protocol_name if res.protocol_name is not None else name_if_null,
        leader=res.leader,
        skip_assignment=res.skip_assignment,
        member_id=res.member_id,
        members=[JoinGroupResponseMember(member_id=m, group_instance_id=i, metadata=md) for m, i, md in res.members],
    )


async def sync_group(ctx: RequestContext, req: SyncGroupRequest) -> SyncGroupResponse:
    if not authz.group(ctx, Op.READ, req.group_id):
        return SyncGroupResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return SyncGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    coord = ctx.state.groups
    if not coord.owns(req.group_id):
        return SyncGroupResponse(error_code=ErrorCode.NOT_COORDINATOR)
    res = await in_purgatory(
        ctx,
        coord.sync(
            req.group_id,
            req.member_id,
            req.group_instance_id,
            req.generation_id,
            req.protocol_type if ctx.version >= 5 else None,
            req.protocol_name if ctx.version >= 5 else None,
            {a.member_id: a.assignment for a in req.assignments},
        ),
    )
    if res.error == ErrorCode.NONE:
        # the group's metadata record replicated first (Kafka: a timeout means a new rebalance)
        err = await coord.written(req.group_id, timed_out=ErrorCode.REBALANCE_IN_PROGRESS)
        if err != ErrorCode.NONE:
            return SyncGroupResponse(error_code=err)
    return SyncGroupResponse(
        error_code=res.error,
        protocol_type=res.protocol_type,
        protocol_name=res.protocol_name,
        assignment=res.assignment,
    )


# ---------------------------------------------------------------- Heartbeat / LeaveGroup


async def heartbeat(ctx: RequestContext, req: HeartbeatRequest) -> HeartbeatResponse:
    if not authz.group(ctx, Op.READ, req.group_id):
        return HeartbeatResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return HeartbeatResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    coord = ctx.state.groups
    if not coord.owns(req.group_id):
        return HeartbeatResponse(error_code=ErrorCode.NOT_COORDINATOR)
    return HeartbeatResponse(
        error_code=coord.heartbeat(req.group_id, req.member_id, req.group_instance_id, req.generation_id)
    )


async def leave_group(ctx: RequestContext, req: LeaveGroupRequest) -> LeaveGroupResponse:
    v = ctx.version
    if not authz.group(ctx, Op.READ, req.group_id):
        return LeaveGroupResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return LeaveGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    coord = ctx.state.groups
    if not coord.owns(req.group_id):
        return LeaveGroupResponse(error_code=ErrorCode.NOT_COORDINATOR)
    identities: list[tuple[str, str | None]] = (
        [(m.member_id, m.group_instance_id) for m in req.members] if v >= 3 else [(req.member_id, None)]
    )
    out = coord.leave(req.group_id, identities)
    if not isinstance(out, int):
        # as Kafka: answered once the group's new state is replicated, so a coordinator that dies
        # right after cannot leave its successor with members that have left
        err = await coord.written(req.group_id)
        if err != ErrorCode.NONE:
            return LeaveGroupResponse(error_code=err)
    if isinstance(out, int):
        if v < 3:
            return LeaveGroupResponse(error_code=out)
        return LeaveGroupResponse(
            error_code=ErrorCode.NONE,
            members=[MemberResponse(member_id=m, group_instance_id=i, error_code=out) for m, i in identities],
        )
    if v < 3:
        return LeaveGroupResponse(error_code=out[0][2] if out else ErrorCode.NONE)
    return LeaveGroupResponse(
        error_code=ErrorCode.NONE,
        members=[MemberResponse(member_id=m, group_instance_id=i, error_code=e) for m, i, e in out],
    )


# ---------------------------------------------------------------- Describe / List / Delete


async def describe_groups(ctx: RequestContext, req: DescribeGroupsRequest) -> DescribeGroupsResponse:
    coord = ctx.state.groups
    ops = GROUP_AUTHORIZED_OPERATIONS if ctx.version >= 3 and req.include_authorized_operations else NOT_REQUESTED
    checking = ctx.state.authorizer is not None
    out = []
    for group_id in req.groups:
        d = DescribedGroup(error_code=ErrorCode.NONE, group_id=group_id, authorized_operations=ops)
        group = coord.groups.get(group_id)
        if checking:  # Describe on the group, else GROUP_AUTHORIZATION_FAILED; the principal's operations
            if not authz.group(ctx, Op.DESCRIBE, group_id):
                d.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
                d.authorized_operations = NOT_REQUESTED
                out.append(d)
                continue
            if ops != NOT_REQUESTED:
                d.authorized_operations = authz.authorized_operations(ctx, Res.GROUP, group_id)
        if not coord.owns(group_id):
            d.error_code = ErrorCode.NOT_COORDINATOR
        elif group is None or group.state is GroupState.DEAD:
            # not a classic group: Dead before v6, GROUP_ID_NOT_FOUND from v6 (KIP-1043), as Kafka 4.3.1
            d.group_state = GroupState.DEAD.value
            if ctx.version >= 6:
                d.error_code = ErrorCode.GROUP_ID_NOT_FOUND
                consumer = group is None and (coord.consumer.get(group_id) or coord.streams.get(group_id)) is not None
                consumer = consumer or (group is None and _share_group(ctx, group_id) is not None)
                d.error_message = f"Group {group_id} {'is not a classic group' if consumer else 'not found'}."
        else:
            stable = group.state is GroupState.STABLE
            d.group_state = group.state.value
            d.protocol_type = group.protocol_type or ""
            d.protocol_data = (group.protocol_name or "") if stable else ""
            d.members = [
                DescribedGroupMember(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata(group.protocol_name) if stable else b"",
                    member_assignment=m.assignment if stable else b"",
                )
                for m in group.members.values()
            ]
        out.append(d)
    return DescribeGroupsResponse(groups=out)


async def list_groups(ctx: RequestContext, req: ListGroupsRequest) -> ListGroupsResponse:
    coord = ctx.state.groups
    types = {t.lower() for t in req.types_filter} if ctx.version >= 5 else set()
    states = req.states_filter if ctx.version >= 4 else None
    listed = []
    if not types or CLASSIC in types:
        listed = [
            ListedGroup(
                group_id=g.group_id, protocol_type=g.protocol_type or "", group_state=g.state.value, group_type=CLASSIC
            )
            for g in coord.groups_in(states or None)
        ]
    if not types or CONSUMER in types:
        wanted = {s.lower() for s in states} if states else None
        listed += [
            ListedGroup(group_id=g.group_id, protocol_type="consumer", group_state=g.state.value, group_type=CONSUMER)
            for g in list(coord.consumer.groups.values())
            if not g.deleted and (wanted is None or g.state.value.lower() in wanted)
        ]
    if not types or "streams" in types:
        wanted_streams = {s.lower() for s in states} if states else None
        listed += [
            ListedGroup(group_id=g.group_id, protocol_type="streams", group_state=g.state.value, group_type="streams")
            for g in list(coord.streams.groups.values())
            if not g.deleted and (wanted_streams is None or g.state.value.lower() in wanted_streams)
        ]
    if not types or "share" in types:
        from kafkapy.server.handlers.share_group import listed_share_groups

        listed += listed_share_groups(ctx, states)
    if ctx.state.authorizer is not None and not authz.cluster(ctx, Op.DESCRIBE):
        listed = authz.filter_items(ctx, Op.DESCRIBE, Res.GROUP, listed, lambda g: g.group_id)
    return ListGroupsResponse(error_code=ErrorCode.NONE, groups=listed)


def _share_group(ctx: RequestContext, group_id: str) -> ShareCoordinator | None:
    from kafkapy.server.handlers.share_group import share_group_coordinator

    return share_group_coordinator(ctx, group_id)


async def delete_groups(ctx: RequestContext, req: DeleteGroupsRequest) -> DeleteGroupsResponse:
    coord = ctx.state.groups
    results = []
    for group_id in dict.fromkeys(req.groups_names):  # a group named twice is answered once, as Kafka
        if not authz.group(ctx, Op.DELETE, group_id):
            err: int = ErrorCode.GROUP_AUTHORIZATION_FAILED
            results.append(DeletableGroupResult(group_id=group_id, error_code=err))
            continue
        if not coord.owns(group_id):
            err = ErrorCode.NOT_COORDINATOR
        elif coord.consumer.get(group_id) is not None:
            err = ctx.state.consumer_groups.delete_group(group_id) or ErrorCode.NONE
        elif (share := _share_group(ctx, group_id)) is not None:
            err = await share.delete_group(group_id)
        elif coord.streams.get(group_id) is not None:
            err = ctx.state.streams_groups.delete_group(group_id) or ErrorCode.NONE
        else:
            err = coord.delete_group(group_id)
        if err == ErrorCode.NONE:
            err = await coord.written(group_id)  # answered once the tombstones are replicated
        results.append(DeletableGroupResult(group_id=group_id, error_code=err))
    return DeleteGroupsResponse(results=results)
