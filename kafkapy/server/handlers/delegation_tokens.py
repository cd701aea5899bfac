"""Delegation tokens (38-41) on a PLAINTEXT listener.

Kafka refuses every delegation-token request on a connection that is not
SASL-authenticated with DELEGATION_TOKEN_REQUEST_NOT_ALLOWED; kafkapy's
listeners are all PLAINTEXT, so it always answers that way, with the
anonymous principal Kafka reports and -1 timestamps.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_delegation_token_request import (
    CreateDelegationTokenRequest,
)
from kafkapy.protocol.messages.create_delegation_token_response import (
    CreateDelegationTokenResponse,
)
from kafkapy.protocol.messages.describe_delegation_token_request import (
    DescribeDelegationTokenRequest,
)
from kafkapy.protocol.messages.describe_delegation_token_response import (
    DescribeDelegationTokenResponse,
)
from kafkapy.protocol.messages.expire_delegation_token_request import (
    ExpireDelegationTokenRequest,
)
from kafkapy.protocol.messages.expire_delegation_token_response import (
    ExpireDelegationTokenResponse,
)
from kafkapy.protocol.messages.renew_delegation_token_request import (
    RenewDelegationTokenRequest,
)
from kafkapy.protocol.messages.renew_delegation_token_response import (
    RenewDelegationTokenResponse,
)
from kafkapy.server.handler import RequestContext

NOT_ALLOWED = ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED


async def create_delegation_token(
    ctx: RequestContext, req: CreateDelegationTokenRequest
) -> CreateDelegationTokenResponse:
    return CreateDelegationTokenResponse(
        error_code=NOT_ALLOWED,
        principal_type="User",
        principal_name="ANONYMOUS",
        token_requester_principal_type="User",
        token_requester_principal_name="ANONYMOUS",
        issue_timestamp_ms=-1,
        expiry_timestamp_ms=-1,
        max_timestamp_ms=-1,
        token_id="",
        hmac=b"",
    )


async def renew_delegation_token(ctx: RequestContext, req: RenewDelegationTokenRequest) -> RenewDelegationTokenResponse:
    return RenewDelegationTokenResponse(error_code=NOT_ALLOWED, expiry_timestamp_ms=-1)


async def expire_delegation_token(
    ctx: RequestContext, req: ExpireDelegationTokenRequest
) -> ExpireDelegationTokenResponse:
    return ExpireDelegationTokenResponse(error_code=NOT_ALLOWED, expiry_timestamp_ms=-1)


async def describe_delegation_token(
    ctx: RequestContext, req: DescribeDelegationTokenRequest
) -> DescribeDelegationTokenResponse:
    return DescribeDelegationTokenResponse(error_code=NOT_ALLOWED, tokens=[])
