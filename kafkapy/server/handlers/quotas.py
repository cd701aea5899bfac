"""DescribeClientQuotas (48): kafkapy enforces no client quotas, so none exist.

The filter is validated as Kafka validates it (match type and match string,
known entity types, no entity type twice, no `ip` together with `user` or
`client-id`); a valid filter matches nothing. Needs DescribeConfigs on the
cluster (CLUSTER_AUTHORIZATION_FAILED, no entries, as Kafka).
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.describe_client_quotas_request import (
    DescribeClientQuotasRequest,
)
from kafkapy.protocol.messages.describe_client_quotas_response import (
    DescribeClientQuotasResponse,
)
from kafkapy.security.acl import AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
ENTITY_TYPES = ("user", "client-id", "ip")


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


async def describe_client_quotas(ctx: RequestContext, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse:
    if not authz.cluster(ctx, AclOperation.DESCRIBE_CONFIGS):
        return DescribeClientQuotasResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, entries=None
        )
    error = filter_error(req)
    if error is not None:
        return DescribeClientQuotasResponse(error_code=error[0], error_message=error[1], entries=None)
    return DescribeClientQuotasResponse(error_code=ErrorCode.NONE, error_message="", entries=[])
