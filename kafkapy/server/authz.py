"""The authorization checks handlers make, as Kafka's KafkaApis makes them.

Every helper takes the request context: the principal is the connection's
(`ConnectionContext.principal`), the host its peer address. With no
authorizer configured (`authorizer.class.name` empty) `ctx.state.authorizer`
is None and every helper answers "allowed" after one attribute test, so the
request paths cost nothing more than before.

Which resource and operation each API checks, and the error it answers, is
written next to the call in each handler; the helpers here only decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from kafkapy.security.acl import CLUSTER_NAME, SUPPORTED_OPERATIONS, AclOperation, ResourceType
from kafkapy.server.handler import RequestContext

Op = AclOperation
Res = ResourceType
T = TypeVar("T")

ANONYMOUS = "User:ANONYMOUS"


def enabled(ctx: RequestContext) -> bool:
    return ctx.state.authorizer is not None


def _who(ctx: RequestContext) -> tuple[str, str]:
    conn = ctx.conn
    if conn is None:
        return ANONYMOUS, "127.0.0.1"
    return conn.principal, conn.peer_host


def authorize(ctx: RequestContext, op: AclOperation, resource_type: ResourceType, name: str) -> bool:
    """May the caller do `op` on the resource?"""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return True
    principal, host = _who(ctx)
    return authorizer.authorize(principal, host, op, resource_type, name)


def cluster(ctx: RequestContext, op: AclOperation) -> bool:
    return authorize(ctx, op, Res.CLUSTER, CLUSTER_NAME)


def topic(ctx: RequestContext, op: AclOperation, name: str) -> bool:
    return authorize(ctx, op, Res.TOPIC, name)


def group(ctx: RequestContext, op: AclOperation, name: str) -> bool:
    return authorize(ctx, op, Res.GROUP, name)


def transactional_id(ctx: RequestContext, op: AclOperation, name: str) -> bool:
    return authorize(ctx, op, Res.TRANSACTIONAL_ID, name)


def allowed_names(
    ctx: RequestContext, op: AclOperation, resource_type: ResourceType, names: Iterable[str]
) -> set[str] | None:
    """The names among `names` the caller may `op`; None means all of them (no authorizer)."""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return None
    principal, host = _who(ctx)
    return {n for n in set(names) if authorizer.authorize(principal, host, op, resource_type, n)}


def filter_topics(ctx: RequestContext, op: AclOperation, names: Iterable[str]) -> set[str] | None:
    """Topic names the caller may `op` (None: no authorizer, all of them)."""
    return allowed_names(ctx, op, Res.TOPIC, names)


def denied_topics(ctx: RequestContext, op: AclOperation, names: Iterable[str]) -> set[str]:
    """The topic names among `names` the caller may not `op` (none without an authorizer)."""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return set()
    principal, host = _who(ctx)
    return {n for n in names if not authorizer.authorize(principal, host, op, Res.TOPIC, n)}


def filter_items(
    ctx: RequestContext, op: AclOperation, resource_type: ResourceType, items: list[T], name: Callable[[T], str]
) -> list[T]:
    """The items whose resource the caller may `op`, in order."""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return items
    principal, host = _who(ctx)
    return [i for i in items if authorizer.authorize(principal, host, op, resource_type, name(i))]


def authorized_operations(ctx: RequestContext, resource_type: ResourceType, name: str) -> int:
    """Kafka's authorized-operations bitfield for one resource (every supported bit without an authorizer)."""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return _ALL_OPERATIONS.get(resource_type, 0)
    principal, host = _who(ctx)
    return authorizer.authorized_operations(principal, host, resource_type, name)


# every supported operation's bit, per resource type (what Kafka answers without an authorizer)
_ALL_OPERATIONS = {rt: sum(1 << int(op) for op in ops) for rt, ops in SUPPORTED_OPERATIONS.items()}


def cluster_operations(ctx: RequestContext) -> int:
    """The cluster's authorized operations as Metadata and DescribeCluster answer them: 0 without
    Describe on the cluster (as Kafka), every operation without an authorizer."""
    if ctx.state.authorizer is not None and not cluster(ctx, Op.DESCRIBE):
        return 0
    return authorized_operations(ctx, Res.CLUSTER, CLUSTER_NAME)


def idempotent_write(ctx: RequestContext) -> bool:
    """KIP-679: IdempotentWrite on the cluster, or Write on some topic, lets a producer be idempotent."""
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return True
    principal, host = _who(ctx)
    return authorizer.authorize(
        principal, host, Op.IDEMPOTENT_WRITE, Res.CLUSTER, CLUSTER_NAME
    ) or authorizer.any_allowed(principal, host, Op.WRITE, Res.TOPIC)
