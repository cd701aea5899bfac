"""DescribeCluster (60).

v2 (KIP-1073): IncludeFencedBrokers asks for fenced brokers too, each broker carries IsFenced. A
kafkapy broker that stops is dropped from the registry rather than kept as fenced, so every broker
listed is unfenced and the flag adds none.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.describe_cluster_response import DescribeClusterBroker, DescribeClusterResponse
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers._common import NOT_REQUESTED
from kafkapy.server.listeners import visible_brokers

BROKERS_ENDPOINT = 1
CONTROLLERS_ENDPOINT = 2


async def handle(ctx: RequestContext, req: DescribeClusterRequest) -> DescribeClusterResponse:
    state = ctx.state
    if req.endpoint_type != BROKERS_ENDPOINT:
        # controllers asked of a broker: MISMATCHED_ENDPOINT_TYPE, as Kafka 4.3.1 (v1+)
        mismatched = req.endpoint_type == CONTROLLERS_ENDPOINT
        return DescribeClusterResponse(
            error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE if mismatched else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            endpoint_type=BROKERS_ENDPOINT,
            cluster_id=state.metadata.cluster_id,
        )
    return DescribeClusterResponse(
        error_code=ErrorCode.NONE,
        endpoint_type=BROKERS_ENDPOINT,
        cluster_id=state.metadata.cluster_id,
        controller_id=state.metadata.controller_id,
        brokers=[
            DescribeClusterBroker(broker_id=b.node_id, host=e.host, port=e.port, rack=b.rack, is_fenced=False)
            for b, e in visible_brokers(ctx, state.live_brokers())  # endpoints of the client's listener
        ],
        cluster_authorized_operations=(
            authz.cluster_operations(ctx) if req.include_cluster_authorized_operations else NOT_REQUESTED
        ),
    )
