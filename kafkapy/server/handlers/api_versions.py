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


async def handle(ctx: RequestContext, req: ApiVersionsRequest) -> ApiVersionsResponse:
    from kafkapy.server.handlers import HANDLERS

    return ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=supported_versions(HANDLERS))
