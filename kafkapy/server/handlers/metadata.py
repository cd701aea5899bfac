"""Metadata (3): brokers, controller, topics and their partitions; auto-creation."""

from __future__ import annotations

from kafkapy.cluster.metadata import MetadataError, TopicInfo, validate_topic_name
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.messages.metadata_response import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.security.acl import AclOperation as Op
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers._common import (
    NOT_REQUESTED,
    TOPIC_AUTHORIZED_OPERATIONS,
)
from kafkapy.server.listeners import visible_brokers


def topic_entry(info: TopicInfo, include_ops: bool, live: set[int] | None = None) -> MetadataResponseTopic:
    return MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=info.name,
        topic_id=info.topic_id,
        is_internal=info.internal,
        partitions=[
            MetadataResponsePartition(
                # Kafka: LEADER_NOT_AVAILABLE for a partition without a live leader
                error_code=ErrorCode.NONE if p.leader >= 0 else ErrorCode.LEADER_NOT_AVAILABLE,
                partition_index=p.index,
                leader_id=p.leader,
                leader_epoch=p.leader_epoch,
                replica_nodes=list(p.replicas),
                isr_nodes=list(p.isr),
                offline_replicas=[] if live is None else [r for r in p.replicas if r not in live],
            )
            for p in info.partitions
        ],
        topic_authorized_operations=TOPIC_AUTHORIZED_OPERATIONS if include_ops else NOT_REQUESTED,
    )


def _error_entry(code: int, name: str | None, topic_id=ZERO_UUID) -> MetadataResponseTopic:  # type: ignore[no-untyped-def]
    return MetadataResponseTopic(error_code=code, name=name, topic_id=topic_id, partitions=[])


def _hide_leaders_off_listener(
    topics: list[MetadataResponseTopic], visible: set[int], registered: set[int], version: int
) -> None:
    """A leader registered without an endpoint on the client's listener: Kafka answers leader -1
    with LISTENER_NOT_FOUND (v6+; LEADER_NOT_AVAILABLE before)."""
    code = ErrorCode.LISTENER_NOT_FOUND if version >= 6 else ErrorCode.LEADER_NOT_AVAILABLE
    for t in topics:
        for p in t.partitions:
            if p.leader_id >= 0 and p.leader_id not in visible and p.leader_id in registered:
                p.error_code, p.leader_id = code, -1


async def handle(ctx: RequestContext, req: MetadataRequest) -> MetadataResponse:
    state = ctx.state
    include_ops = req.include_topic_authorized_operations
    # v0 sends an empty list for "all topics"; v1+ sends null.
    all_topics = req.topics is None or (ctx.version == 0 and not req.topics)
    allow_create = req.allow_auto_topic_creation if ctx.version >= 4 else True
    topics: list[MetadataResponseTopic] = []
    registered = state.live_brokers()
    brokers = visible_brokers(ctx, registered)  # endpoints of the client's listener
    live = {b.node_id for b, _ in brokers}
    if state.authorizer is not None:
        topics = await _authorized_topics(ctx, req, all_topics, allow_create, live)
    elif all_topics:
        topics = [topic_entry(t, include_ops, live) for t in state.metadata.topics()]
    else:
        for wanted in req.topics or []:
            if wanted.name is None:
                info = state.metadata.topic_by_id(wanted.topic_id)
                if info is None:
                    name = None if ctx.version >= 12 else ""
                    topics.append(_error_entry(ErrorCode.UNKNOWN_TOPIC_ID, name, wanted.topic_id))
                else:
                    topics.append(topic_entry(info, include_ops, live))
                continue
            info = state.metadata.topic(wanted.name)
            if info is None:
                if validate_topic_name(wanted.name) is not None:
                    topics.append(_error_entry(ErrorCode.INVALID_TOPIC_EXCEPTION, wanted.name))
                    continue
                if allow_create:
                    try:
                        info = await state.maybe_auto_create(wanted.name)
                    except MetadataError as e:
                        topics.append(_error_entry(e.code, wanted.name))
                        continue
                if info is None:
                    topics.append(_error_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, wanted.name))
                    continue
            topics.append(topic_entry(info, include_ops, live))
    if len(live) < len(registered):
        _hide_leaders_off_listener(topics, live, {b.node_id for b in registered}, ctx.version)
    return MetadataResponse(
        brokers=[MetadataResponseBroker(node_id=b.node_id, host=e.host, port=e.port, rack=b.rack) for b, e in brokers],
        cluster_id=state.metadata.cluster_id,
        controller_id=state.metadata.controller_id,
        topics=topics,
        cluster_authorized_operations=(
            authz.cluster_operations(ctx) if req.include_cluster_authorized_operations else NOT_REQUESTED
        ),
    )


async def _authorized_topics(
    ctx: RequestContext, req: MetadataRequest, all_topics: bool, allow_create: bool, live: set[int]
) -> list[MetadataResponseTopic]:
    """The topics part as Kafka answers it with an authorizer: all topics lists only those the
    principal may Describe; a named topic without Describe answers TOPIC_AUTHORIZATION_FAILED
    whether it exists or not; a missing one is auto-created only with Create on the cluster or
    the topic (else TOPIC_AUTHORIZATION_FAILED); authorized operations are the principal's."""
    state = ctx.state
    include_ops = req.include_topic_authorized_operations

    def entry(info: TopicInfo) -> MetadataResponseTopic:
        e = topic_entry(info, False, live)
        if include_ops:
            e.topic_authorized_operations = authz.authorized_operations(ctx, Res.TOPIC, info.name)
        return e

    if all_topics:
        return [entry(t) for t in authz.filter_items(ctx, Op.DESCRIBE, Res.TOPIC, list(state.metadata.topics()), _name)]
    topics: list[MetadataResponseTopic] = []
    create_all = None  # Create on the cluster, asked once when needed
    for wanted in req.topics or []:
        if wanted.name is None:
            info = state.metadata.topic_by_id(wanted.topic_id)
            if info is None or not authz.topic(ctx, Op.DESCRIBE, info.name):
                # an id never reveals a name the principal may not see
                name = None if ctx.version >= 12 else ""
                code = ErrorCode.UNKNOWN_TOPIC_ID if info is None else ErrorCode.TOPIC_AUTHORIZATION_FAILED
                topics.append(_error_entry(code, name, wanted.topic_id))
            else:
                topics.append(entry(info))
            continue
        name = wanted.name
        if not authz.topic(ctx, Op.DESCRIBE, name):
            topics.append(_error_entry(ErrorCode.TOPIC_AUTHORIZATION_FAILED, name))
            continue
        info = state.metadata.topic(name)
        if info is None:
            if validate_topic_name(name) is not None:
                err = _error_entry(ErrorCode.INVALID_TOPIC_EXCEPTION, name)
            elif allow_create and state.config.auto_create_topics_enable:
                if create_all is None:
                    create_all = authz.cluster(ctx, Op.CREATE)
                if not (create_all or authz.topic(ctx, Op.CREATE, name)):
                    topics.append(_error_entry(ErrorCode.TOPIC_AUTHORIZATION_FAILED, name))
                    continue
                try:
                    info = await state.maybe_auto_create(name)
                except MetadataError as e:
                    err = _error_entry(e.code, name)
                else:
                    err = _error_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
            else:
                err = _error_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
            if info is None:
                if include_ops:
                    err.topic_authorized_operations = authz.authorized_operations(ctx, Res.TOPIC, name)
                topics.append(err)
                continue
        topics.append(entry(info))
    return topics


def _name(info: TopicInfo) -> str:
    return info.name
