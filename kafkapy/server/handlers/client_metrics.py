"""ListClientMetricsResources (74): kafkapy has no client-metrics (KIP-714)
config resources, so the list is empty, as on a Kafka broker without any."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_client_metrics_resources_request import (
    ListClientMetricsResourcesRequest,
)
from kafkapy.protocol.messages.list_client_metrics_resources_response import (
    ListClientMetricsResourcesResponse,
)
from kafkapy.server.handler import RequestContext


async def list_client_metrics_resources(
    ctx: RequestContext, req: ListClientMetricsResourcesRequest
) -> ListClientMetricsResourcesResponse:
    return ListClientMetricsResourcesResponse(error_code=ErrorCode.NONE, client_metrics_resources=[])
