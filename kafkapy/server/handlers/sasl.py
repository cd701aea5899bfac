"""SaslHandshake (17) and SaslAuthenticate (36) on a PLAINTEXT listener.

kafkapy's listeners are PLAINTEXT only: a connection is authenticated (as
ANONYMOUS) from its first byte, so a SASL exchange is out of place. Kafka
answers both requests on such a listener with ILLEGAL_SASL_STATE and keeps
the connection open; so does this module. Clients only start SASL when
their own configuration asks for it, so advertising these APIs (as Kafka
does) changes nothing for a PLAINTEXT client.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_authenticate_response import (
    SaslAuthenticateResponse,
)
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from kafkapy.server.handler import RequestContext

ALREADY_AUTHENTICATED = "SaslAuthenticate request received after successful authentication"


async def sasl_handshake(ctx: RequestContext, req: SaslHandshakeRequest) -> SaslHandshakeResponse:
    # no SASL mechanism is enabled on a PLAINTEXT listener
    return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])


async def sasl_authenticate(ctx: RequestContext, req: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    return SaslAuthenticateResponse(
        error_code=ErrorCode.ILLEGAL_SASL_STATE,
        error_message=ALREADY_AUTHENTICATED,
        auth_bytes=b"",
        session_lifetime_ms=0,
    )
