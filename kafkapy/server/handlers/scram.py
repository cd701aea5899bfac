"""DescribeUserScramCredentials (50): kafkapy has no SASL/SCRAM, so no user has credentials.

Describing every user (null or empty list) finds none; each named user is
RESOURCE_NOT_FOUND, a name asked twice DUPLICATE_RESOURCE (once), as Kafka
answers when no credentials are stored.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_response import (
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResult,
)
from kafkapy.server.handler import RequestContext


async def describe_user_scram_credentials(
    ctx: RequestContext, req: DescribeUserScramCredentialsRequest
) -> DescribeUserScramCredentialsResponse:
    counts: dict[str, int] = {}
    for u in req.users or []:
        counts[u.name] = counts.get(u.name, 0) + 1
    results = []
    for name, n in counts.items():
        if n > 1:
            code = ErrorCode.DUPLICATE_RESOURCE
            message = f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
        else:
            code = ErrorCode.RESOURCE_NOT_FOUND
            message = f"Attempt to describe a user credential that does not exist: {name}"
        results.append(
            DescribeUserScramCredentialsResult(user=name, error_code=code, error_message=message, credential_infos=[])
        )
    return DescribeUserScramCredentialsResponse(error_code=ErrorCode.NONE, error_message="", results=results)
