"""DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44).

Topic resources are fully supported. The broker resource is described like
Kafka does (static and default values with synonyms). The only dynamic broker
configs are the replication throttles of a cluster
(`leader.replication.throttled.rate`, `follower.replication.throttled.rate`,
bytes/s), kept in etcd per broker or as the cluster default (resource name
""); other alterations of the broker are rejected: read-only keys the way
Kafka rejects them, dynamic keys with an explicit "not supported" message.
Client-metrics resources (KIP-714 subscriptions, kafkapy.server.client_telemetry)
are kept in the metadata store and validated as Kafka 4.3.1 does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafkapy.cluster.metadata import validate_topic_name
from kafkapy.config import (
    BROKER_KEYS,
    TOPIC_CONFIGS,
    ConfigDescription,
    ConfigError,
    ConfigKey,
    ConfigSource,
    ConfigType,
    at_least,
    describe_topic_config,
    validate_topic_configs,
)
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_configs_request import AlterConfigsRequest
from kafkapy.protocol.messages.alter_configs_response import (
    AlterConfigsResourceResponse,
    AlterConfigsResponse,
)
from kafkapy.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkapy.protocol.messages.describe_configs_response import (
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
    DescribeConfigsSynonym,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.incremental_alter_configs_response import (
    AlterConfigsResourceResponse as IncrementalResourceResponse,
)
from kafkapy.protocol.messages.incremental_alter_configs_response import (
    IncrementalAlterConfigsResponse,
)
from kafkapy.security.acl import AclOperation
from kafkapy.security.acl import ResourceType as Res
from kafkapy.server import authz
from kafkapy.server.errors import ApiError
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices

# Kafka's ConfigResource.Type ids.
UNKNOWN, TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 0, 2, 4, 8, 16, 32
_TYPE_NAMES = {
    UNKNOWN: "UNKNOWN",
    TOPIC: "TOPIC",
    BROKER: "BROKER",
    BROKER_LOGGER: "BROKER_LOGGER",
    CLIENT_METRICS: "CLIENT_METRICS",
    GROUP: "GROUP",
}

# IncrementalAlterConfigs operation ids (Kafka's AlterConfigOp.OpType).
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


@dataclass(slots=True)
class Op:
    """One config change, legacy or incremental, before it is applied."""

    name: str
    op: int
    value: str | None


def _java_list(names: Iterable[str]) -> str:
    return "[" + ", ".join(names) + "]"  # how Kafka 4's messages print a list of names


def _check_nulls(ops: list[Op]) -> None:
    """Only DELETE may carry a null value (Kafka: INVALID_REQUEST, for topics and brokers alike)."""
    for op in ops:
        if op.op != DELETE and op.value is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {op.name}")


def _java_split(value: str) -> list[str]:
    """String.split(","): trailing empty strings dropped, but "" is [""]."""
    parts = value.split(",")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return [] if parts == [""] and value != "" else parts


def _unsupported_type(resource_type: int) -> ApiError:
    label = _TYPE_NAMES.get(resource_type, str(resource_type))
    return ApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {label}")


def _check_broker_name(state: BrokerServices, name: str, allow_default: bool = True) -> None:
    """Broker resources are "" (cluster default) or this broker's id."""
    if name == "" and allow_default:
        return
    try:
        node = int(name)
    except ValueError:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}") from None
    if node != state.node_id:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"Unexpected broker id, expected {state.node_id} or empty string, but received {name}",
        )


def _check_topic(state: BrokerServices, name: str) -> dict[str, str]:
    """The topic's current overrides; raises for an illegal or unknown name."""
    problem = validate_topic_name(name)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
    info = state.metadata.topic(name)
    if info is None:
        raise ApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    return dict(info.configs)


# ------------------------------------------------------------------ describe


def _entry(d: ConfigDescription, version: int, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult:
    return DescribeConfigsResourceResult(
        name=d.name,
        value=d.value,
        read_only=d.read_only,
        is_default=d.is_default,
        config_source=int(d.source),
        is_sensitive=d.sensitive,
        synonyms=[DescribeConfigsSynonym(name=n, value=v, source=int(s)) for n, v, s in d.synonyms]
        if synonyms and version >= 1
        else [],
        config_type=int(d.config_type),
        documentation=d.documentation if docs and version >= 3 else None,
    )


# resource type -> (ACL resource checked, error when refused, its message): Kafka's checks
_AUTH: dict[int, tuple[Res, ErrorCode, str]] = {
    TOPIC: (Res.TOPIC, ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed."),
    BROKER: (Res.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."),
    BROKER_LOGGER: (Res.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."),
    CLIENT_METRICS: (Res.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."),
    GROUP: (Res.GROUP, ErrorCode.GROUP_AUTHORIZATION_FAILED, "Group authorization failed."),
}


def _refused(ctx: RequestContext, op: AclOperation, resource_type: int, name: str) -> tuple[ErrorCode, str] | None:
    """Kafka's error when the principal may not `op` (DescribeConfigs / AlterConfigs) the resource."""
    if ctx.state.authorizer is None or resource_type not in _AUTH:
        return None
    res, code, message = _AUTH[resource_type]
    target = name if res != Res.CLUSTER else "kafka-cluster"
    return None if authz.authorize(ctx, op, res, target) else (code, message)


def _describe_one(ctx: RequestContext, r: DescribeConfigsResource, synonyms: bool, docs: bool) -> DescribeConfigsResult:
    state = ctx.state
    result = DescribeConfigsResult(
        error_code=ErrorCode.NONE, error_message="", resource_type=r.resource_type, resource_name=r.resource_name
    )  # "" on success, as Apache Kafka
    refused = _refused(ctx, AclOperation.DESCRIBE_CONFIGS, r.resource_type, r.resource_name)
    if refused is not None:
        result.error_code, result.error_message = refused
        return result
    names = r.configuration_keys or None  # null or empty asks for every key, as in Kafka
    try:
        if r.resource_type == TOPIC:
            overrides = _check_topic(state, r.resource_name)
            described = describe_topic_config(state.config, overrides, names)
        elif r.resource_type == BROKER:
            _check_broker_name(state, r.resource_name)
            # "" asks for the cluster-wide dynamic defaults, of which kafkapy has none.
            described = [] if r.resource_name == "" else state.config.describe(names)
            described = _with_throttles(state, r.resource_name, names, described)
        elif r.resource_type == CLIENT_METRICS:
            described = _describe_client_metrics(state, r.resource_name, names)
        elif r.resource_type == GROUP:
            described = _describe_group(state, r.resource_name, names)
        else:
            raise _unsupported_type(r.resource_type)
    except ApiError as e:
        result.error_code, result.error_message = e.code, e.message
        return result
    result.configs = [_entry(d, ctx.version, synonyms, docs) for d in described]
    return result


def _with_throttles(
    state: BrokerServices, name: str, names: list[str] | None, described: list[ConfigDescription]
) -> list[ConfigDescription]:
    """The dynamic throttle rates of a clustered broker ("": the cluster default) added to its description."""
    md = state.metadata
    if not md.supports_dynamic_broker_configs:
        return described
    mine, default = md.broker_configs(name) if name else {}, md.broker_configs("default")
    extra = []
    for key in THROTTLE_RATE_KEYS:
        if names is not None and key not in names:
            continue
        synonyms: list[tuple[str, str | None, ConfigSource]] = []
        if key in mine:
            synonyms.append((key, mine[key], ConfigSource.DYNAMIC_BROKER_CONFIG))
        if key in default:
            synonyms.append((key, default[key], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
        if synonyms:
            extra.append(
                ConfigDescription(
                    key,
                    synonyms[0][1],
                    False,
                    synonyms[0][2],
                    False,
                    False,
                    ConfigType.LONG,
                    "Replication throttle in bytes/s.",
                    tuple(synonyms),
                )
            )
    return [d for d in described if d.name not in THROTTLE_RATE_KEYS] + extra


def _describe_client_metrics(state: BrokerServices, name: str, names: list[str] | None) -> list[ConfigDescription]:
    """Every key of a client-metrics resource (known or not, as Kafka): set ones with themselves as synonym."""
    from kafkapy.server import client_telemetry as ct

    if name == "":
        raise ApiError(ErrorCode.INVALID_REQUEST, "Client metrics subscription name must not be empty")
    configs = state.metadata.client_metrics().get(name, {})
    defaults = {ct.INTERVAL_MS: str(ct.DEFAULT_INTERVAL_MS), ct.MATCH: "", ct.METRICS: ""}
    out = []
    for key in ct.KEYS:
        if names is not None and key not in names:
            continue
        kind = ConfigType.INT if key == ct.INTERVAL_MS else ConfigType.LIST
        if key in configs:
            source, value = ConfigSource.CLIENT_METRICS_CONFIG, configs[key]
            synonyms: tuple[tuple[str, str | None, ConfigSource], ...] = ((key, value, source),)
        else:
            source, value, synonyms = ConfigSource.DEFAULT_CONFIG, defaults[key], ()
        out.append(ConfigDescription(key, value, False, source, False, False, kind, ct.DOCS[key], synonyms))
    return out


def _describe_group(state: BrokerServices, name: str, names: list[str] | None) -> list[ConfigDescription]:
    """Every group config key (Kafka 4.3.1's order): set ones first in their synonyms, then the broker default."""
    from kafkapy.coordinator import group_configs as gc

    if name == "":
        raise ApiError(ErrorCode.INVALID_REQUEST, "Default group resources are not allowed.")
    configs = state.metadata.group_configs().get(name, {})
    out = []
    for key in gc.KEYS:
        if names is not None and key.name not in names:
            continue
        default = gc.broker_default(state.config, key)
        synonyms: tuple[tuple[str, str | None, ConfigSource], ...] = (
            (key.synonym, default, ConfigSource.DEFAULT_CONFIG),
        )
        if key.name in configs:
            value, source = configs[key.name], ConfigSource.GROUP_CONFIG
            synonyms = ((key.name, value, source), *synonyms)
        else:
            value, source = default, ConfigSource.DEFAULT_CONFIG
        out.append(ConfigDescription(key.name, value, False, source, False, False, key.config_type, None, synonyms))
    return out


async def describe_configs(ctx: RequestContext, req: DescribeConfigsRequest) -> DescribeConfigsResponse:
    synonyms = req.include_synonyms if ctx.version >= 1 else False
    docs = req.include_documentation if ctx.version >= 3 else False
    return DescribeConfigsResponse(results=[_describe_one(ctx, r, synonyms, docs) for r in req.resources])


# ------------------------------------------------------------------ alter


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _apply_topic_ops(state: BrokerServices, current: dict[str, str], ops: list[Op]) -> dict[str, str]:
    """The topic's new overrides after `ops`, validated as Kafka does; raises ApiError for bad ones."""
    _check_nulls(ops)
    new = {k: v for k, v in current.items() if k in TOPIC_CONFIGS}  # keys a newer kafkapy dropped
    effective: dict[str, str | None] | None = None
    for op in ops:
        if op.op == DELETE:
            new.pop(op.name, None)  # deleting an unknown key is a no-op, as in Kafka
            continue
        assert op.value is not None
        if op.op == SET:
            new[op.name] = op.value
            continue
        key = TOPIC_CONFIGS.get(op.name)
        if key is None or key.type is not ConfigType.LIST:
            raise ApiError(
                ErrorCode.INVALID_CONFIG, f"Can't {_OP_NAMES[op.op]} to key {op.name} because its type is not LIST."
            )
        if op.name in new:
            parts = _split(new[op.name])
        else:
            if effective is None:
                effective = {d.name: d.value for d in describe_topic_config(state.config, current)}
            parts = _split(effective.get(op.name))
        if op.op == APPEND:
            parts += [v for v in _java_split(op.value) if v not in parts]
        else:
            removed = set(_java_split(op.value))
            parts = [v for v in parts if v not in removed]
        new[op.name] = ",".join(parts)
    try:
        return validate_topic_configs(new, state.config, previous=current)
    except ConfigError as e:
        raise ApiError(ErrorCode.INVALID_CONFIG, e.kafka_message) from None


THROTTLE_RATE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
_THROTTLE_RATES = {
    name: ConfigKey(name, "", ConfigType.LONG, None, "Replication throttle in bytes/s.", at_least(0), dynamic=True)
    for name in THROTTLE_RATE_KEYS
}


def _throttle_configs(state: BrokerServices, name: str, ops: list[Op]) -> dict[str, str] | None:
    """The broker's new dynamic throttle configs, or None when `ops` touch anything else (or on one broker)."""
    if not state.metadata.supports_dynamic_broker_configs or not ops:
        return None
    if any(op.name not in THROTTLE_RATE_KEYS for op in ops):
        return None
    new: dict[str, str] = state.metadata.broker_configs(name or "default")
    for op in ops:
        if op.op == DELETE:
            new.pop(op.name, None)
        elif op.op == SET and op.value is not None:
            try:
                rate = _THROTTLE_RATES[op.name].parse(op.value)
            except ConfigError as e:
                raise ApiError(ErrorCode.INVALID_REQUEST, e.kafka_message) from None
            new[op.name] = str(rate)
        else:
            raise ApiError(
                ErrorCode.INVALID_CONFIG, f"Can't {_OP_NAMES[op.op]} to key {op.name} because its type is not LIST."
            )
    return new


async def _set_throttles(state: BrokerServices, name: str, ops: list[Op], validate_only: bool) -> bool:
    """Apply throttle-rate changes to the broker's dynamic configs in etcd; False if `ops` are not only those."""
    entity = name or "default"
    for _ in range(5):
        new = _throttle_configs(state, name, ops)
        if new is None:
            return False
        md = state.metadata
        before = md.broker_configs(entity)
        if validate_only or new == before or await md.set_broker_configs(entity, new, before):
            return True
    raise ApiError(ErrorCode.REQUEST_TIMED_OUT, "The broker's dynamic configs kept changing; try again.")


def _check_broker_ops(state: BrokerServices, ops: list[Op]) -> None:
    """kafkapy has no dynamic broker configs (but the throttles in a cluster): changes Kafka would
    refuse are refused as Kafka does (INVALID_REQUEST), the others with an explicit "not supported"."""
    _check_nulls(ops)
    changes = [op for op in ops if op.op != DELETE]
    if not changes:
        return
    read_only = [op.name for op in changes if op.name in BROKER_KEYS and not BROKER_KEYS[op.name].dynamic]
    if read_only:
        # Kafka wraps this ConfigException in InvalidRequestException (KAFKA-13609).
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: {_java_list(read_only)}")
    sets = [(op.name, op.value) for op in changes if op.op == SET and op.value is not None]
    try:
        for name, value in sets:
            if name in _THROTTLE_RATES:
                _THROTTLE_RATES[name].parse(value)
        state.config.with_changes((n, v) for n, v in sets if n in BROKER_KEYS)
    except ConfigError as e:
        raise ApiError(ErrorCode.INVALID_REQUEST, e.kafka_message) from None
    raise ApiError(
        ErrorCode.INVALID_CONFIG,
        f"kafkapy does not support dynamic broker configs; set {_java_list(op.name for op in changes)} in server.properties",
    )


async def _alter_one(
    state: BrokerServices, resource_type: int, name: str, ops: list[Op], validate_only: bool, incremental: bool
) -> None:
    """Validate and (unless validate_only) apply one resource's changes."""
    names = [op.name for op in ops]
    if len(set(names)) != len(names):
        raise ApiError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    for op in ops:
        if op.op not in _OP_NAMES:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"Unknown alter config operation type {op.op}")
    if resource_type == TOPIC:
        current = _check_topic(state, name)
        base = current if incremental else {}  # legacy AlterConfigs replaces the whole set
        new = _apply_topic_ops(state, base, ops)
        if not validate_only and new != current:
            await state.metadata.set_topic_configs(name, new)
    elif resource_type == BROKER:
        _check_broker_name(state, name)
        if not await _set_throttles(state, name, ops, validate_only):
            _check_broker_ops(state, ops)
    elif resource_type == CLIENT_METRICS:
        await _alter_client_metrics(state, name, ops, validate_only, incremental)
    elif resource_type == GROUP:
        await _alter_group(state, name, ops, validate_only, incremental)
    else:
        raise _unsupported_type(resource_type)


async def _alter_client_metrics(
    state: BrokerServices, name: str, ops: list[Op], validate_only: bool, incremental: bool
) -> None:
    """Set or delete keys of a client-metrics resource (deleting every key deletes it), as Kafka 4.3.1."""
    from kafkapy.server import client_telemetry as ct

    _check_nulls(ops)
    for op in ops:
        if op.op in (APPEND, SUBTRACT):  # Kafka refuses them even on its LIST keys
            raise ApiError(
                ErrorCode.INVALID_CONFIG, f"Can't {_OP_NAMES[op.op]} to key {op.name} because its type is not LIST."
            )
    md = state.metadata
    for _ in range(5):
        before = md.client_metrics().get(name, {})
        new = dict(before) if incremental else {}  # legacy AlterConfigs replaces the whole set
        for op in ops:
            if op.op == DELETE:
                new.pop(op.name, None)
            else:
                assert op.value is not None
                new[op.name] = op.value
        try:
            new = ct.validate(name, new)
        except ct.SubscriptionError as e:
            raise ApiError(e.code, e.message) from None
        if validate_only or new == before or await md.set_client_metrics(name, new, before):
            return
    raise ApiError(ErrorCode.REQUEST_TIMED_OUT, "The client-metrics resource kept changing; try again.")


async def _alter_group(state: BrokerServices, name: str, ops: list[Op], validate_only: bool, incremental: bool) -> None:
    """Set or delete dynamic configs of a group (it need not exist), checked as Kafka 4.3.1 does."""
    from kafkapy.coordinator import group_configs as gc

    if name == "":
        raise ApiError(ErrorCode.INVALID_REQUEST, "Default group resources are not allowed.")
    _check_nulls(ops)
    for op in ops:
        if op.op in (APPEND, SUBTRACT):
            raise ApiError(
                ErrorCode.INVALID_CONFIG, f"Can't {_OP_NAMES[op.op]} to key {op.name} because its type is not LIST."
            )
        if op.name not in gc.BY_NAME:
            raise ApiError(ErrorCode.INVALID_CONFIG, f"Unknown group config name: {op.name}")
        if op.op != DELETE:
            assert op.value is not None
            try:
                gc.validate(op.name, op.value)
            except gc.GroupConfigError as e:
                raise ApiError(ErrorCode.INVALID_CONFIG, str(e)) from None
    md = state.metadata
    for _ in range(5):
        before = md.group_configs().get(name, {})
        new = dict(before) if incremental else {}  # legacy AlterConfigs replaces the whole set
        for op in ops:
            if op.op == DELETE:
                new.pop(op.name, None)
            else:
                assert op.value is not None
                new[op.name] = op.value
        if validate_only or new == before or await md.set_group_configs(name, new, before):
            return
    raise ApiError(ErrorCode.REQUEST_TIMED_OUT, "The group's configs kept changing; try again.")


async def _run(
    ctx: RequestContext, resources: list[Any], validate_only: bool, incremental: bool
) -> list[tuple[int, str | None, int, str]]:
    """(error code, message, type, name) per resource, in request order."""
    keys = [(r.resource_type, r.resource_name) for r in resources]
    dupes = {k for k in keys if keys.count(k) > 1}
    out: list[tuple[int, str | None, int, str]] = []
    for r in resources:
        if (r.resource_type, r.resource_name) in dupes:
            out.append((ErrorCode.INVALID_REQUEST, "Duplicate resource.", r.resource_type, r.resource_name))
            continue
        refused = _refused(ctx, AclOperation.ALTER_CONFIGS, r.resource_type, r.resource_name)
        if refused is not None:
            out.append((*refused, r.resource_type, r.resource_name))
            continue
        ops = [Op(c.name, c.config_operation if incremental else SET, c.value) for c in r.configs]
        try:
            await _alter_one(ctx.state, r.resource_type, r.resource_name, ops, validate_only, incremental)
        except ApiError as e:
            out.append((e.code, e.message, r.resource_type, r.resource_name))
            continue
        out.append((ErrorCode.NONE, None, r.resource_type, r.resource_name))
    return out


async def alter_configs(ctx: RequestContext, req: AlterConfigsRequest) -> AlterConfigsResponse:
    return AlterConfigsResponse(
        responses=[
            AlterConfigsResourceResponse(error_code=c, error_message=m, resource_type=t, resource_name=n)
            for c, m, t, n in await _run(ctx, req.resources, req.validate_only, incremental=False)
        ]
    )


async def incremental_alter_configs(
    ctx: RequestContext, req: IncrementalAlterConfigsRequest
) -> IncrementalAlterConfigsResponse:
    return IncrementalAlterConfigsResponse(
        responses=[
            IncrementalResourceResponse(error_code=c, error_message=m, resource_type=t, resource_name=n)
            for c, m, t, n in await _run(ctx, req.resources, req.validate_only, incremental=True)
        ]
    )
