"""CreateTopics (19), DeleteTopics (20), CreatePartitions (37)."""

from __future__ import annotations

from time import monotonic

from kafkapy.cluster.metadata import MetadataError, check_new_topic
from kafkapy.config import ConfigError, describe_topic_config, validate_topic_configs
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_partitions_request import CreatePartitionsRequest
from kafkapy.protocol.messages.create_partitions_response import (
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.create_topics_response import (
    CreatableTopicConfigs,
    CreatableTopicResult,
    CreateTopicsResponse,
)
from kafkapy.protocol.messages.delete_topics_request import DeleteTopicsRequest
from kafkapy.protocol.messages.delete_topics_response import DeletableTopicResult, DeleteTopicsResponse
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.quotas import MutationQuota, mutation_quota

# Kafka's ThrottlingQuotaExceededException, in the versions that know it (KIP-599); no message, as 4.3.1
STRICT_SINCE = {"create_topics": 6, "delete_topics": 5, "create_partitions": 3}
# Kafka's controller refuses a request that would create more partitions than this in one go
# (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH; QuorumController.MAX_RECORDS_PER_USER_OP for
# CreatePartitions): POLICY_VIOLATION for every topic of the request, before allocating anything.
MAX_PARTITIONS_PER_BATCH = 10_000


def _mutations(ctx: RequestContext, api: str, validate_only: bool = False) -> MutationQuota:
    """The request's controller mutation quota: unbounded without one, or for a validate_only request."""
    strict = ctx.version >= STRICT_SINCE[api]
    if validate_only or not ctx.state.quotas.active:
        return MutationQuota(None, 0.0, strict)
    principal = ctx.conn.principal if ctx.conn is not None else "User:ANONYMOUS"
    return mutation_quota(ctx.state.quotas, principal, ctx.client_id, strict)


async def _create_one(
    ctx: RequestContext, t: CreatableTopic, validate_only: bool, quota: MutationQuota
) -> CreatableTopicResult:
    state = ctx.state
    result = CreatableTopicResult(name=t.name, error_code=ErrorCode.NONE)
    if t.assignments:
        if t.num_partitions != -1 or t.replication_factor != -1:
            result.error_code = ErrorCode.INVALID_REQUEST
            result.error_message = "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."
            return result
        nodes = {b.node_id for b in state.metadata.brokers()}
        for a in t.assignments:
            if (
                not a.broker_ids
                or any(b not in nodes for b in a.broker_ids)
                or len(set(a.broker_ids)) != len(a.broker_ids)
            ):
                result.error_code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
                result.error_message = f"Invalid replica assignment for partition {a.partition_index}"
                return result
        partitions = len(t.assignments)
        replication = len(t.assignments[0].broker_ids)
    else:
        partitions = state.config.num_partitions if t.num_partitions == -1 else t.num_partitions
        replication = state.config.default_replication_factor if t.replication_factor == -1 else t.replication_factor
    raw = {c.name: c.value for c in t.configs}
    try:
        # Kafka checks the name (illegal, taken, colliding) before the configs, the counts after them
        check_new_topic(t.name, 1, 1, (info.name for info in state.metadata.topics()), 1)
    except MetadataError as e:
        result.error_code, result.error_message = e.code, e.message
        return result
    try:
        configs = validate_topic_configs(raw, state.config)
    except ConfigError as e:
        result.error_code = ErrorCode.INVALID_CONFIG
        result.error_message = e.kafka_message
        return result
    if not quota.admit(partitions, monotonic()):
        result.error_code, result.error_message = ErrorCode.THROTTLING_QUOTA_EXCEEDED, None
        return result
    try:
        if validate_only:
            state.metadata.check_new_topic(t.name, partitions, replication)
        else:
            assignment = {a.partition_index: list(a.broker_ids) for a in t.assignments} if t.assignments else None
            info = await state.metadata.create_topic(t.name, partitions, replication, configs, assignment)
            result.topic_id = info.topic_id
    except MetadataError as e:
        result.error_code = e.code
        result.error_message = e.message
        return result
    result.num_partitions = partitions
    result.replication_factor = replication
    if ctx.version >= 5:
        result.configs = [
            CreatableTopicConfigs(
                name=d.name, value=d.value, read_only=d.read_only, config_source=int(d.source), is_sensitive=d.sensitive
            )
            # the overrides as sent (Kafka echoes them unnormalized), the rest as described
            for d in describe_topic_config(state.config, {k: v for k, v in raw.items() if v is not None})
        ]
    return result


TOPIC_AUTHORIZATION_FAILED = "Topic authorization failed."


def _creatable(ctx: RequestContext, req: CreateTopicsRequest) -> tuple[set[str], set[str]]:
    """Kafka's checks: (topics refused: no Create on the cluster nor the topic, topics whose configs
    are withheld: no DescribeConfigs on the topic)."""
    names = {t.name for t in req.topics}
    refused = set() if authz.cluster(ctx, Op.CREATE) else authz.denied_topics(ctx, Op.CREATE, names)
    return refused, authz.denied_topics(ctx, Op.DESCRIBE_CONFIGS, names - refused)


async def create_topics(ctx: RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse:
    results = []
    seen: set[str] = set()
    dupes = {t.name for t in req.topics if [x.name for x in req.topics].count(t.name) > 1}
    refused, hidden = _creatable(ctx, req) if ctx.state.authorizer is not None else (set(), set())
    quota = _mutations(ctx, "create_topics", req.validate_only)
    default_partitions = ctx.state.config.num_partitions
    total = sum(
        len(t.assignments)
        if t.assignments
        else default_partitions
        if t.num_partitions == -1
        else max(t.num_partitions, 0)
        for t in req.topics
        if t.name not in dupes and t.name not in refused
    )
    if total > MAX_PARTITIONS_PER_BATCH:
        message = "Excessively large number of partitions per request."
        return CreateTopicsResponse(
            topics=[
                CreatableTopicResult(name=t.name, error_code=ErrorCode.POLICY_VIOLATION, error_message=message)
                for t in req.topics
            ]
        )
    for t in req.topics:
        if t.name in dupes:
            if t.name not in seen:
                seen.add(t.name)
                results.append(
                    CreatableTopicResult(
                        name=t.name,
                        error_code=ErrorCode.INVALID_REQUEST,
                        error_message=f"Create topics request from client `{ctx.client_id}` contains multiple entries for the following topics: {t.name}",
                    )
                )
            continue
        if t.name in refused:
            results.append(
                CreatableTopicResult(
                    name=t.name,
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                    error_message=TOPIC_AUTHORIZATION_FAILED,
                    num_partitions=-1,
                    replication_factor=-1,
                )
            )
            continue
        r = await _create_one(ctx, t, req.validate_only, quota)
        if r.error_code:
            r.num_partitions = -1
            r.replication_factor = -1
        elif t.name in hidden and ctx.version >= 5:
            r.topic_config_error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            r.configs = None
        results.append(r)
    return CreateTopicsResponse(throttle_time_ms=quota.throttle_ms(monotonic()), topics=results)


async def delete_topics(ctx: RequestContext, req: DeleteTopicsRequest) -> DeleteTopicsResponse:
    state = ctx.state
    results: list[DeletableTopicResult] = []
    wanted: list[tuple[str | None, object]] = [(n, ZERO_UUID) for n in req.topic_names]
    wanted += [(t.name, t.topic_id) for t in req.topics]
    checking = state.authorizer is not None
    delete_all = checking and authz.cluster(ctx, Op.DELETE)
    quota = _mutations(ctx, "delete_topics")
    for name, topic_id in wanted:
        info = state.metadata.topic(name) if name is not None else state.metadata.topic_by_id(topic_id)  # type: ignore[arg-type]
        res = DeletableTopicResult(name=name, topic_id=topic_id, error_code=ErrorCode.NONE)  # type: ignore[arg-type]
        seen = name if name is not None else (info.name if info is not None else None)
        if checking and seen is not None and not authz.topic(ctx, Op.DESCRIBE, seen):
            # Kafka: without Describe, the topic's existence is not revealed
            res.error_code, res.error_message = ErrorCode.TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
        elif info is None:  # with a message, as Kafka (v5+ carry one)
            if name is not None:
                res.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                res.error_message = f"The topic '{name}' does not exist."
            else:
                res.error_code = ErrorCode.UNKNOWN_TOPIC_ID
                res.error_message = f"The topic id {topic_id} does not exist."
        elif checking and not delete_all and not authz.topic(ctx, Op.DELETE, info.name):
            res.error_code, res.error_message = ErrorCode.TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
            res.name, res.topic_id = info.name, info.topic_id
        elif not state.config.delete_topic_enable:
            res.error_code = ErrorCode.TOPIC_DELETION_DISABLED
        elif info.internal:
            res.error_code = ErrorCode.INVALID_TOPIC_EXCEPTION  # Kafka refuses to delete internal topics
            res.error_message = f"Cannot delete internal topic {info.name}"
        elif not quota.admit(len(info.partitions), monotonic()):
            res.error_code, res.error_message = ErrorCode.THROTTLING_QUOTA_EXCEEDED, None
            res.name, res.topic_id = info.name, info.topic_id
        else:
            try:
                await state.metadata.delete_topic(info.name)
            except MetadataError as e:
                res.error_code, res.error_message = e.code, e.message
            res.name, res.topic_id = info.name, info.topic_id
        if ctx.version < 6 and res.name is None:
            res.name = ""
        results.append(res)
    return DeleteTopicsResponse(throttle_time_ms=quota.throttle_ms(monotonic()), responses=results)


async def create_partitions(ctx: RequestContext, req: CreatePartitionsRequest) -> CreatePartitionsResponse:
    state = ctx.state
    results = []
    refused: set[str] = set()
    if state.authorizer is not None and not authz.cluster(ctx, Op.ALTER):  # Alter on the cluster or the topic
        refused = authz.denied_topics(ctx, Op.ALTER, (t.name for t in req.topics))
    quota = _mutations(ctx, "create_partitions", req.validate_only)
    added = 0
    for t in req.topics:
        info = state.metadata.topic(t.name)
        if info is not None and t.name not in refused:
            added += max(t.count - len(info.partitions), 0)
    if added > MAX_PARTITIONS_PER_BATCH:
        message = "Unable to perform excessively large batch operation."
        return CreatePartitionsResponse(
            results=[
                CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.POLICY_VIOLATION, error_message=message)
                for t in req.topics
            ]
        )
    for t in req.topics:
        res = CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.NONE)
        info = state.metadata.topic(t.name)
        if t.name in refused:
            res.error_code, res.error_message = ErrorCode.TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
        elif info is None:
            res.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            res.error_message = f"The topic '{t.name}' does not exist."
        elif t.count <= len(info.partitions):
            res.error_code = ErrorCode.INVALID_PARTITIONS
            res.error_message = (
                f"Topic already has {len(info.partitions)} partitions."
                if t.count == len(info.partitions)
                else f"The topic {t.name} currently has {len(info.partitions)} partition(s); {t.count} would not be an increase."
            )
        elif t.assignments is not None and len(t.assignments) != t.count - len(info.partitions):
            res.error_code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
            res.error_message = f"Attempted to add {t.count - len(info.partitions)} additional partition(s), but only {len(t.assignments)} assignment(s) were specified."
        elif not quota.admit(t.count - len(info.partitions), monotonic()):
            res.error_code, res.error_message = ErrorCode.THROTTLING_QUOTA_EXCEEDED, None
        elif not req.validate_only:
            try:
                assignments = [list(a.broker_ids) for a in t.assignments] if t.assignments else None
                await state.metadata.add_partitions(t.name, t.count, assignments)
            except MetadataError as e:
                res.error_code, res.error_message = e.code, e.message
        results.append(res)
    return CreatePartitionsResponse(throttle_time_ms=quota.throttle_ms(monotonic()), results=results)
