"""KIP-1071 Streams group APIs: StreamsGroupHeartbeat (88) and StreamsGroupDescribe (89), and
KIP-1331's StreamsGroupTopologyDescriptionUpdate (93).

Thin adapters between the generated messages and `StreamsGroupCoordinator`;
the heartbeat also creates the internal (repartition and changelog) topics
the group reports missing, as Kafka's broker does.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafkapy.cluster.metadata import MetadataError
from kafkapy.coordinator.streams_group import (
    ConfiguredSubtopology,
    CopartitionGroup,
    HeartbeatRequest,
    Subtopology,
    Tasks,
    TaskSet,
    TopicConfig,
    Topology,
)
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages import streams_group_describe_response as d
from kafkapy.protocol.messages import streams_group_heartbeat_request as q
from kafkapy.protocol.messages import streams_group_heartbeat_response as r
from kafkapy.protocol.messages.streams_group_describe_request import StreamsGroupDescribeRequest
from kafkapy.protocol.messages.streams_group_topology_description_update_request import (
    StreamsGroupTopologyDescriptionUpdateRequest,
)
from kafkapy.protocol.messages.streams_group_topology_description_update_response import (
    StreamsGroupTopologyDescriptionUpdateResponse,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers._common import NOT_REQUESTED
from kafkapy.server.handlers.groups import client_host

log = get_logger(__name__)

NOT_STORED = 1  # StreamsGroupDescribe v1's TopologyDescriptionStatus
NO_PLUGIN = "The broker has no streams group topology description plugin configured."

# what Kafka 4.3.1 reports for a Streams group without an authorizer: Read, Delete, Describe,
# DescribeConfigs, AlterConfigs (groups have configs since KIP-848)
STREAMS_GROUP_OPERATIONS = sum(
    1 << int(op) for op in (Op.READ, Op.DELETE, Op.DESCRIBE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS)
)


def _tasks(items: list[q.TaskIds] | None) -> Tasks | None:
    if items is None:
        return None
    return {t.subtopology_id: frozenset(t.partitions) for t in items}


def _topic_info(t: q.TopicInfo) -> TopicConfig:
    return TopicConfig(t.name, t.partitions, t.replication_factor, tuple((c.key, c.value) for c in t.topic_configs))


def _topology(t: q.Topology | None) -> Topology | None:
    if t is None:
        return None
    return Topology(
        t.epoch,
        tuple(
            Subtopology(
                s.subtopology_id,
                tuple(s.source_topics),
                tuple(s.source_topic_regex),
                tuple(_topic_info(x) for x in s.state_changelog_topics),
                tuple(s.repartition_sink_topics),
                tuple(_topic_info(x) for x in s.repartition_source_topics),
                tuple(
                    CopartitionGroup(
                        tuple(c.source_topics), tuple(c.source_topic_regex), tuple(c.repartition_source_topics)
                    )
                    for c in s.copartition_groups
                ),
            )
            for s in t.subtopologies
        ),
    )


def _offsets(items: list[q.TaskOffset] | None) -> dict[tuple[str, int], int] | None:
    if items is None:
        return None
    return {(o.subtopology_id, o.partition): o.offset for o in items}


def _sorted(tasks: Tasks) -> list[tuple[str, list[int]]]:
    return [(s, sorted(p)) for s, p in sorted(tasks.items()) if p]


async def _create_internal_topics(ctx: RequestContext, group_id: str, topics: Iterable[TopicConfig]) -> None:
    """Create the missing internal topics (Kafka: Create on the cluster or the topic is needed)."""
    state = ctx.state
    creating = state.streams_groups.creating
    for t in topics:
        if t.name in creating or state.metadata.topic(t.name) is not None:
            continue
        if not (authz.cluster(ctx, Op.CREATE) or authz.topic(ctx, Op.CREATE, t.name)):
            log.info("not authorized to create a streams internal topic", group=group_id, topic=t.name)
            continue
        creating.add(t.name)
        try:
            rf = t.replication_factor
            if rf <= 0:
                rf = state.metadata.internal_replication_factor(state.config.default_replication_factor, True)
            await state.metadata.create_topic(t.name, t.partitions, rf, dict(t.configs))
            log.info("streams internal topic created", group=group_id, topic=t.name, partitions=t.partitions)
        except MetadataError as e:
            log.warning("could not create a streams internal topic", group=group_id, topic=t.name, error=str(e))
        finally:
            creating.discard(t.name)


async def streams_group_heartbeat(
    ctx: RequestContext, req: q.StreamsGroupHeartbeatRequest
) -> r.StreamsGroupHeartbeatResponse:
    if not authz.group(ctx, Op.READ, req.group_id):  # Kafka: Read on the group
        return r.StreamsGroupHeartbeatResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not req.group_id:
        return r.StreamsGroupHeartbeatResponse(
            error_code=ErrorCode.INVALID_REQUEST, error_message="GroupId can't be empty."
        )
    if ctx.state.features.level("streams.version") < 1:  # as Kafka: the feature turns the protocol on
        return r.StreamsGroupHeartbeatResponse(
            error_code=ErrorCode.UNSUPPORTED_VERSION, error_message="The streams group protocol is not enabled."
        )
    coord = ctx.state.streams_groups
    if not coord.owns(req.group_id):
        return r.StreamsGroupHeartbeatResponse(error_code=ErrorCode.NOT_COORDINATOR)
    ep = req.user_endpoint
    res = coord.heartbeat(
        req.group_id,
        HeartbeatRequest(
            member_id=req.member_id,
            member_epoch=req.member_epoch,
            endpoint_information_epoch=req.endpoint_information_epoch,
            instance_id=req.instance_id,
            rack_id=req.rack_id,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            topology=_topology(req.topology),
            active=_tasks(req.active_tasks),
            standby=_tasks(req.standby_tasks),
            warmup=_tasks(req.warmup_tasks),
            process_id=req.process_id,
            user_endpoint=None if ep is None else (ep.host, ep.port),
            client_tags=None if req.client_tags is None else tuple((kv.key, kv.value) for kv in req.client_tags),
            task_offsets=_offsets(req.task_offsets),
            task_end_offsets=_offsets(req.task_end_offsets),
            shutdown_application=req.shutdown_application,
            client_id=ctx.client_id,
            client_host=client_host(ctx),
        ),
    )
    if res.error != ErrorCode.NONE:
        return r.StreamsGroupHeartbeatResponse(error_code=res.error, error_message=res.message)
    if res.create_topics:
        await _create_internal_topics(ctx, req.group_id, res.create_topics)

    def ids(tasks: Tasks) -> list[r.TaskIds]:
        return [r.TaskIds(subtopology_id=s, partitions=p) for s, p in _sorted(tasks)]

    tasks: TaskSet | None = res.tasks
    by_endpoint = None
    if res.partitions_by_endpoint is not None:
        by_endpoint = [
            r.EndpointToPartitions(
                user_endpoint=r.Endpoint(host=host, port=port),
                active_partitions=[r.TopicPartition(topic=n, partitions=ps) for n, ps in active.items()],
                standby_partitions=[r.TopicPartition(topic=n, partitions=ps) for n, ps in standby.items()],
            )
            for (host, port), active, standby in res.partitions_by_endpoint
        ]
    return r.StreamsGroupHeartbeatResponse(
        error_code=ErrorCode.NONE,
        member_id=res.member_id,
        member_epoch=res.member_epoch,
        heartbeat_interval_ms=res.heartbeat_interval_ms,
        # v0: Kafka 4.3.1 answers 0 for both; v1: Kafka 4.4.0 answers the configured values
        acceptable_recovery_lag_legacy=0,
        acceptable_recovery_lag=res.acceptable_recovery_lag if ctx.version >= 1 else -1,
        task_offset_interval_ms=res.task_offset_interval_ms if ctx.version >= 1 else 0,
        status=[r.Status(status_code=int(code), status_detail=detail) for code, detail in res.statuses],
        active_tasks=None if tasks is None else ids(tasks.active),
        standby_tasks=None if tasks is None else ids(tasks.standby),
        warmup_tasks=None if tasks is None else ids(tasks.warmup),
        endpoint_information_epoch=res.endpoint_information_epoch,
        partitions_by_user_endpoint=by_endpoint,
    )


def _described_topic(t: TopicConfig) -> d.TopicInfo:
    return d.TopicInfo(
        name=t.name,
        partitions=t.partitions,
        replication_factor=t.replication_factor,
        topic_configs=[d.KeyValue(key=k, value=v) for k, v in t.configs],
    )


def _assignment(tasks: TaskSet) -> d.Assignment:
    def ids(t: Tasks) -> list[d.TaskIds]:
        return [d.TaskIds(subtopology_id=s, partitions=p) for s, p in _sorted(t)]

    return d.Assignment(
        active_tasks=ids(tasks.active), standby_tasks=ids(tasks.standby), warmup_tasks=ids(tasks.warmup)
    )


async def streams_group_describe(
    ctx: RequestContext, req: StreamsGroupDescribeRequest
) -> d.StreamsGroupDescribeResponse:
    coord = ctx.state.streams_groups
    ops = STREAMS_GROUP_OPERATIONS if req.include_authorized_operations else NOT_REQUESTED
    out = []
    for group_id in req.group_ids:
        g = d.DescribedGroup(group_id=group_id, authorized_operations=ops)
        out.append(g)
        if ctx.state.authorizer is not None:  # Kafka: Describe on the group
            if not authz.group(ctx, Op.DESCRIBE, group_id):
                g.error_code = ErrorCode.GROUP_AUTHORIZATION_FAILED
                g.authorized_operations = NOT_REQUESTED
                continue
            if ops != NOT_REQUESTED:
                g.authorized_operations = authz.authorized_operations(ctx, Res.GROUP, group_id)
        group = coord.described(group_id)
        if not coord.owns(group_id):
            g.error_code = ErrorCode.NOT_COORDINATOR
            continue
        if group is None:
            g.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            other = coord.base.groups.get(group_id) is not None or coord.base.consumer.get(group_id) is not None
            g.error_message = f"Group {group_id} is not a streams group." if other else f"Group {group_id} not found."
            continue
        g.group_state = group.state.value
        if ctx.version >= 1:
            g.assignor_name = "sticky"  # the one task assignor
            # kafkapy stores no topology descriptions (KIP-1331): NOT_STORED when asked for
            g.topology_description_status = NOT_STORED if req.include_topology_description else 0
        g.group_epoch = group.group_epoch
        g.assignment_epoch = group.assignment_epoch
        if group.topology is not None:
            # as configured against the topics (partition counts resolved) once it could be, else as declared
            configured = group.configured
            subs: list[Subtopology | ConfiguredSubtopology] = list(group.topology.subtopologies)
            if configured is not None and configured.ready:
                subs = [configured.subtopologies[s.subtopology_id] for s in group.topology.subtopologies]
            g.topology = d.Topology(
                epoch=group.topology.epoch,
                subtopologies=[
                    d.Subtopology(
                        subtopology_id=s.subtopology_id,
                        source_topics=list(s.source_topics),
                        repartition_sink_topics=list(s.repartition_sink_topics),
                        state_changelog_topics=[_described_topic(t) for t in s.state_changelog_topics],
                        repartition_source_topics=[_described_topic(t) for t in s.repartition_source_topics],
                    )
                    for s in subs
                ],
            )
        g.members = []
        for m in group.members.values():
            meta = m.meta
            ep = meta.user_endpoint
            g.members.append(
                d.Member(
                    member_id=m.member_id,
                    member_epoch=m.current.member_epoch,
                    instance_id=meta.instance_id,
                    rack_id=meta.rack_id,
                    client_id=meta.client_id,
                    client_host=meta.client_host,
                    topology_epoch=meta.topology_epoch,
                    process_id=meta.process_id,
                    user_endpoint=None if ep is None else d.Endpoint(host=ep[0], port=ep[1]),
                    client_tags=[d.KeyValue(key=k, value=v) for k, v in meta.client_tags],
                    task_offsets=[
                        d.TaskOffset(subtopology_id=s, partition=p, offset=o)
                        for (s, p), o in sorted(m.task_offsets.items())
                    ],
                    task_end_offsets=[
                        d.TaskOffset(subtopology_id=s, partition=p, offset=o)
                        for (s, p), o in sorted(m.task_end_offsets.items())
                    ],
                    assignment=_assignment(m.current.tasks),
                    target_assignment=_assignment(group.target.get(m.member_id, TaskSet())),
                    is_classic=False,
                )
            )
    return d.StreamsGroupDescribeResponse(groups=out)


async def streams_group_topology_description_update(
    ctx: RequestContext, req: StreamsGroupTopologyDescriptionUpdateRequest
) -> StreamsGroupTopologyDescriptionUpdateResponse:
    """kafkapy stores no topology descriptions: Kafka 4.4.0's answer without a description plugin
    (KIP-1331), after the group ACL check (Kafka: GROUP_AUTHORIZATION_FAILED, no message)."""
    if not authz.group(ctx, Op.READ, req.group_id):
        return StreamsGroupTopologyDescriptionUpdateResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    return StreamsGroupTopologyDescriptionUpdateResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION, error_message=NO_PLUGIN
    )
