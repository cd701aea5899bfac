"""DescribeClientQuotas (48) and AlterClientQuotas (49) over the client quota store.

Answers as Apache Kafka 4.3.1 gives them (interop/diff_quotas.py records its answers):

Describe: the filter is validated as Kafka validates it (match type and match string, known entity
types, no entity type twice, no `ip` together with `user` or `client-id`); each component matches an
entity's name of its type exactly, the type's default, or any name; strict: the entity has no other
types. Needs DescribeConfigs on the cluster (CLUSTER_AUTHORIZATION_FAILED, no entries, as Kafka).

Alter: one result per distinct entity (an entry's entity is a map: a type named twice keeps its last
name); an entity altered twice in one request, or an entry naming a key twice, is INVALID_REQUEST
"Ignoring duplicate entity ClientQuotaEntity(...)" and that entry is not applied (an earlier one
for the same entity is, as in Kafka); the checks of
`kafkapy.server.quotas.validate_entry` (a rate must be > 0, integral for byte rates, known keys per
entity type) otherwise; validate_only changes nothing. Needs AlterConfigs on the cluster.
"""

from __future__ import annotations

from kafkapy.cluster.quota_store import Entity
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_client_quotas_request import AlterClientQuotasRequest
from kafkapy.protocol.messages.alter_client_quotas_response import (
    AlterClientQuotasResponse,
)
from kafkapy.protocol.messages.alter_client_quotas_response import (
    EntityData as AlterEntityData,
)
from kafkapy.protocol.messages.alter_client_quotas_response import (
    EntryData as AlterEntryData,
)
from kafkapy.protocol.messages.describe_client_quotas_request import (
    DescribeClientQuotasRequest,
)
from kafkapy.protocol.messages.describe_client_quotas_response import (
    DescribeClientQuotasResponse,
    EntityData,
    EntryData,
    ValueData,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.quotas import (
    CLIENT_ID,
    IP,
    USER,
    QuotaError,
    apply_ops,
    entity_map,
    entity_string,
    matches,
    validate_entry,
)

log = get_logger(__name__)

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
ENTITY_TYPES = (USER, CLIENT_ID, IP)
_ORDER = {CLIENT_ID: 0, IP: 1, USER: 2}  # Kafka's HashMap order of an entity's types


def filter_error(req: DescribeClientQuotasRequest) -> tuple[ErrorCode, str] | None:
    """Why Kafka would reject this filter, or None."""
    seen: set[str] = set()
    for c in req.components:
        if c.match_type == MATCH_EXACT and c.match is None:
            return ErrorCode.INVALID_REQUEST, "Request specified MATCH_TYPE_EXACT, but set match string to null."
        if c.match_type in (MATCH_DEFAULT, MATCH_SPECIFIED) and c.match is not None:
            name = "MATCH_TYPE_DEFAULT" if c.match_type == MATCH_DEFAULT else "MATCH_TYPE_SPECIFIED"
            return ErrorCode.INVALID_REQUEST, f"Request specified {name}, but also specified a match string."
        if c.match_type not in (MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED):
            return ErrorCode.INVALID_REQUEST, f"Unknown match type {c.match_type}"
        if c.entity_type not in ENTITY_TYPES:
            return ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {c.entity_type}"
        if c.entity_type in seen:
            return ErrorCode.INVALID_REQUEST, f"Entity type {c.entity_type} cannot appear more than once in the filter."
        seen.add(c.entity_type)
    if "ip" in seen and len(seen) > 1:
        return ErrorCode.INVALID_REQUEST, (
            "Invalid entity filter component combination. IP filter component should not be used with "
            "user or clientId filter component."
        )
    return None


def _ordered(entity: Entity) -> list[tuple[str, str | None]]:
    return sorted(entity, key=lambda kv: _ORDER.get(kv[0], 3))


async def describe_client_quotas(ctx: RequestContext, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse:
    if not authz.cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        return DescribeClientQuotasResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, entries=None
        )
    error = filter_error(req)
    if error is not None:
        return DescribeClientQuotasResponse(error_code=error[0], error_message=error[1], entries=None)
    store = ctx.state.quota_store
    image = store.quotas() if store is not None else {}
    components = [(c.entity_type, c.match_type, c.match) for c in req.components]
    entries = [
        EntryData(
            entity=[EntityData(entity_type=k, entity_name=v) for k, v in _ordered(entity)],
            values=[ValueData(key=k, value=v) for k, v in values.items()],
        )
        for entity, values in image.items()
        if matches(entity, components, req.strict)
    ]
    return DescribeClientQuotasResponse(error_code=ErrorCode.NONE, error_message="", entries=entries)


async def alter_client_quotas(ctx: RequestContext, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse:
    entities = [
        tuple(entity_map([(e.entity_type, e.entity_name) for e in entry.entity]).items()) for entry in req.entries
    ]

    def answer(results: dict[Entity, tuple[int, str | None]]) -> AlterClientQuotasResponse:
        return AlterClientQuotasResponse(
            throttle_time_ms=0,
            entries=[
                AlterEntryData(
                    error_code=code,
                    error_message=message,
                    entity=[AlterEntityData(entity_type=k, entity_name=v) for k, v in _ordered(entity)],
                )
                for entity, (code, message) in results.items()
            ],
        )

    if not authz.cluster(ctx, AclOperation.ALTER_CONFIGS):
        refused = (int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), "Cluster authorization failed.")
        return answer({tuple(sorted(e)): refused for e in entities})
    store = ctx.state.quota_store
    assert store is not None, "the quota store opens with the broker's services"
    image = store.quotas()
    results: dict[Entity, tuple[int, str | None]] = {}
    changes: dict[Entity, dict[str, float]] = {}
    for entry, pairs in zip(req.entries, entities, strict=True):
        key: Entity = tuple(sorted(pairs))
        ops = [(op.key, op.value, op.remove) for op in entry.ops]
        duplicate_key = len({k for k, _, _ in ops}) < len(ops)
        if duplicate_key or key in results:
            # as Kafka: the answer says so, but an earlier entry for the entity still applies
            results[key] = (int(ErrorCode.INVALID_REQUEST), f"Ignoring duplicate entity {entity_string(key)}")
            continue
        try:
            entity = validate_entry(list(pairs), ops)
        except QuotaError as e:
            results[key] = (int(e.code), e.message)
            continue
        results[key] = (0, None)
        current = changes.get(entity, image.get(entity, {}))
        changes[entity] = apply_ops(current, ops)
    changes = {e: v for e, v in changes.items() if v != image.get(e, {})}
    if changes and not req.validate_only:
        await store.alter(changes)
        log.info(
            "client quotas altered",
            entities=";".join(entity_string(e) for e in changes),
            principal=ctx.conn.principal if ctx.conn is not None else None,
            client_id=ctx.client_id,
        )
    return answer(results)
