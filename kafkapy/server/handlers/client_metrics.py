"""ListClientMetricsResources (74): kafkapy has no client-metrics (KIP-714)
config resources, so the list is empty, as on a Kafka broker without any.
Needs DescribeConfigs on the cluster (CLUSTER_AUTHORIZATION_FAILED, as Kafka)."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_client_metrics_resources_request import (
    ListClientMetricsResourcesRequest,
)
from kafkapy.protocol.messages.list_client_metrics_resources_response import (
    ListClientMetricsResourcesResponse,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext


async def list_client_metrics_resources(
    ctx: RequestContext, req: ListClientMetricsResourcesRequest
) -> ListClientMetricsResourcesResponse:
    if not authz.cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        return ListClientMetricsResourcesResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, client_metrics_resources=[]
        )
    return ListClientMetricsResourcesResponse(error_code=ErrorCode.NONE, client_metrics_resources=[])
