"""Client metrics (KIP-714): ListClientMetricsResources (74, ListConfigResources from v1), GetTelemetrySubscriptions (71) and
PushTelemetry (72). The subscriptions are `client-metrics` config resources (handlers/configs.py)
in the metadata store; the per-instance state and the metrics pushed live in
kafkapy.server.client_telemetry. Listing needs DescribeConfigs on the cluster
(CLUSTER_AUTHORIZATION_FAILED, as Kafka); the telemetry APIs need no ACL, as in Kafka."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.get_telemetry_subscriptions_request import GetTelemetrySubscriptionsRequest
from kafkapy.protocol.messages.get_telemetry_subscriptions_response import GetTelemetrySubscriptionsResponse
from kafkapy.protocol.messages.list_client_metrics_resources_request import (
    ListClientMetricsResourcesRequest,
)
from kafkapy.protocol.messages.list_client_metrics_resources_response import (
    ClientMetricsResource,
    ListClientMetricsResourcesResponse,
)
from kafkapy.protocol.messages.push_telemetry_request import PushTelemetryRequest
from kafkapy.protocol.messages.push_telemetry_response import PushTelemetryResponse
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

# ListConfigResources (v1, KIP-1142): the resource types it lists, and those an empty list means
TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
_LISTABLE = (CLIENT_METRICS, TOPIC, BROKER, BROKER_LOGGER, GROUP)


def _resources(ctx: RequestContext, resource_type: int) -> list[str]:
    metadata = ctx.state.metadata
    if resource_type == CLIENT_METRICS:
        return sorted(metadata.client_metrics())
    if resource_type == TOPIC:
        return sorted(t.name for t in metadata.topics())
    if resource_type in (BROKER, BROKER_LOGGER):
        return [str(b.node_id) for b in metadata.brokers()]
    return []  # GROUP: groups with dynamic configs, and kafkapy stores no group configs


async def list_client_metrics_resources(
    ctx: RequestContext, req: ListClientMetricsResourcesRequest
) -> ListClientMetricsResourcesResponse:
    """v0 lists the client-metrics resources; v1 (ListConfigResources) the config resources of the
    types asked for (all listable ones when none are), an unknown type refusing the whole request
    with UNSUPPORTED_VERSION, as Kafka 4.3.1 answers."""
    if not authz.cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        return ListClientMetricsResourcesResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, client_metrics_resources=[]
        )
    types = list(dict.fromkeys(req.resource_types)) if ctx.version >= 1 else [CLIENT_METRICS]
    if any(t not in _LISTABLE for t in types):
        return ListClientMetricsResourcesResponse(error_code=ErrorCode.UNSUPPORTED_VERSION, client_metrics_resources=[])
    return ListClientMetricsResourcesResponse(
        error_code=ErrorCode.NONE,
        client_metrics_resources=[
            ClientMetricsResource(name=name, resource_type=t) for t in types or _LISTABLE for name in _resources(ctx, t)
        ],
    )


def _client(ctx: RequestContext) -> dict[str, str]:
    """What a subscription's `match` patterns look at (the instance id is added by the store)."""
    conn = ctx.conn
    return {
        "client_id": ctx.client_id,
        "client_software_name": (conn.client_software_name if conn else None) or "",
        "client_software_version": (conn.client_software_version if conn else None) or "",
        "client_source_address": conn.peer_host if conn else "",
        "client_source_port": str(conn.peer_port) if conn else "",
    }


async def get_telemetry_subscriptions(
    ctx: RequestContext, req: GetTelemetrySubscriptionsRequest
) -> GetTelemetrySubscriptionsResponse:
    state = ctx.state
    return state.client_telemetry.get_subscriptions(
        req.client_instance_id, _client(ctx), state.metadata.client_metrics()
    )


async def push_telemetry(ctx: RequestContext, req: PushTelemetryRequest) -> PushTelemetryResponse:
    state = ctx.state
    code = state.client_telemetry.push(
        req.client_instance_id,
        req.subscription_id,
        req.terminating,
        req.compression_type,
        bytes(req.metrics),
        _client(ctx),
        state.metadata.client_metrics(),
    )
    return PushTelemetryResponse(error_code=code)
