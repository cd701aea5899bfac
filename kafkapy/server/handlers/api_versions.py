"""ApiVersions (18): the versions this broker really implements."""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.api_versions_response import ApiVersion, ApiVersionsResponse
from kafkapy.server.handler import Handler, RequestContext


def supported_versions(handlers: tuple[Handler, ...]) -> list[ApiVersion]:
    return [ApiVersion(api_key=h.api_key, min_version=h.min_version, max_version=h.max_version) for h in handlers]


def unsupported_version_response(handlers: tuple[Handler, ...]) -> ApiVersionsResponse:
    """The v0-shaped answer to an ApiVersions version we do not serve."""
    return ApiVersionsResponse(error_code=ErrorCode.UNSUPPORTED_VERSION, api_keys=supported_versions(handlers))


def expected_broker_error(ctx: RequestContext, req: ApiVersionsRequest) -> int:
    """v5 (KIP-1242): a client names the cluster and node it means to reach (both or neither: null and
    -1, else INVALID_REQUEST); another cluster or node (an empty id, a negative node) answers
    REBOOTSTRAP_REQUIRED, as Kafka 4.4.0 does."""
    if req.cluster_id is None and req.node_id == -1:
        return ErrorCode.NONE
    if req.cluster_id is None or req.node_id == -1:
        return ErrorCode.INVALID_REQUEST
    state = ctx.state
    if req.cluster_id != state.metadata.cluster_id or req.node_id != state.config.effective_node_id:
        return ErrorCode.REBOOTSTRAP_REQUIRED
    return ErrorCode.NONE


async def handle(ctx: RequestContext, req: ApiVersionsRequest) -> ApiVersionsResponse:
    from kafkapy.server.handlers import HANDLERS

    if ctx.conn is not None and ctx.version >= 3:  # what client-metrics subscriptions match on (KIP-714)
        ctx.conn.client_software_name = req.client_software_name
        ctx.conn.client_software_version = req.client_software_version
    if ctx.version >= 5 and (refused := expected_broker_error(ctx, req)) != ErrorCode.NONE:
        return ApiVersionsResponse(error_code=refused, api_keys=[])
    resp = ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=supported_versions(HANDLERS))
    if ctx.version >= 3:
        from kafkapy.server.handlers.features import add_features

        add_features(resp, ctx.state.features, ctx.version)
    return resp
