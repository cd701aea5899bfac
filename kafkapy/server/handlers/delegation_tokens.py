"""Delegation tokens: CreateDelegationToken (38), RenewDelegationToken (39),
ExpireDelegationToken (40), DescribeDelegationToken (41), as Kafka 4.3.1's
KafkaApis and controller answer them.

- A request on a PLAINTEXT listener, on SSL without a client certificate
  (principal ANONYMOUS) or on a connection authenticated with a token gets
  DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (timestamps -1).
- Without `delegation.token.secret.key` (or the deprecated
  `delegation.token.master.key`) tokens are disabled:
  DELEGATION_TOKEN_AUTH_DISABLED.
- Create: the owner is the caller unless the request names one (KIP-373);
  another owner needs CreateTokens on the User resource `User:<name>`
  (DELEGATION_TOKEN_AUTHORIZATION_FAILED), renewers must be `User`s
  (INVALID_PRINCIPAL_TYPE). Expiry: now + `delegation.token.expiry.time.ms`,
  never past the max timestamp, now + `delegation.token.max.lifetime.ms`
  (or the request's shorter max lifetime). The HMAC is HmacSHA512 of the
  token id under the secret key.
- Renew / expire name the token by its HMAC: unknown
  DELEGATION_TOKEN_NOT_FOUND; only the owner or a renewer
  (DELEGATION_TOKEN_OWNER_MISMATCH); an expired token
  DELEGATION_TOKEN_EXPIRED. Renewal gives now + the period (at most
  `delegation.token.expiry.time.ms`), capped at the max timestamp. Expiring
  with a negative period removes the token at once; otherwise its expiry
  becomes now + the period (capped at the max timestamp).
- Describe lists the tokens of the owners asked for (all when null) that the
  caller owns, asked for or may renew, or may see through Describe on the
  DelegationToken resource or DescribeTokens on the owner's User resource.

Expired tokens stay until the sweep every
`delegation.token.expiry.check.interval.ms` removes them (services); until
then, as in Kafka, one still authenticates but its session ends at once.
"""

from __future__ import annotations

import dataclasses

from kafkapy.clock import now_ms
from kafkapy.logging import get_logger
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
    DescribedDelegationToken,
    DescribedDelegationTokenRenewer,
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
from kafkapy.protocol.uuids import random_uuid, uuid_text
from kafkapy.security.acl import AclOperation, ResourceType
from kafkapy.security.delegation_token import TokenInfo, split_principal, token_hmac
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.sasl_setup import token_authenticated

log = get_logger(__name__)

ANONYMOUS = "User:ANONYMOUS"
LONG_MAX = 2**63 - 1


def _requests_allowed(ctx: RequestContext) -> bool:
    """Kafka's allowTokenRequests."""
    conn = ctx.conn
    if conn is None or conn.security_protocol == "PLAINTEXT":
        return False
    if conn.security_protocol == "SSL" and conn.principal == ANONYMOUS:
        return False  # one-way TLS
    return not token_authenticated(conn)


def _caller(ctx: RequestContext) -> str:
    return ctx.conn.principal if ctx.conn is not None else ANONYMOUS


def _plus(now: int, period: int) -> int:
    return min(LONG_MAX, now + period)


def _find(ctx: RequestContext, mac: bytes) -> TokenInfo | None:
    store, secret = ctx.state.tokens, ctx.state.token_secret_key
    if store is None or secret is None:
        return None
    for token in store.tokens():
        if token_hmac(secret, token.token_id) == mac:
            return token
    return None


async def create_delegation_token(
    ctx: RequestContext, req: CreateDelegationTokenRequest
) -> CreateDelegationTokenResponse:
    requester = _caller(ctx)
    owner = requester
    if req.owner_principal_name:
        owner = f"{req.owner_principal_type}:{req.owner_principal_name}"
    owner_type, owner_name = split_principal(owner)
    requester_type, requester_name = split_principal(requester)

    def answer(code: ErrorCode, timestamp: int) -> CreateDelegationTokenResponse:
        return CreateDelegationTokenResponse(
            error_code=code,
            principal_type=owner_type,
            principal_name=owner_name,
            token_requester_principal_type=requester_type,
            token_requester_principal_name=requester_name,
            issue_timestamp_ms=timestamp,
            expiry_timestamp_ms=timestamp,
            max_timestamp_ms=timestamp,
            token_id="",
            hmac=b"",
        )

    if not _requests_allowed(ctx):
        return answer(ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
    if owner != requester and not authz.authorize(ctx, AclOperation.CREATE_TOKENS, ResourceType.USER, owner):
        return answer(ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED, -1)
    if any(r.principal_type != "User" for r in req.renewers):
        return answer(ErrorCode.INVALID_PRINCIPAL_TYPE, -1)
    store, secret = ctx.state.tokens, ctx.state.token_secret_key
    if store is None or secret is None:
        return answer(ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, 0)  # the controller's answer: no timestamps set
    config = ctx.state.config
    now = now_ms()
    max_lifetime = config.delegation_token_max_lifetime_ms
    if req.max_lifetime_ms > 0:
        max_lifetime = min(max_lifetime, req.max_lifetime_ms)
    max_ts = _plus(now, max_lifetime)
    token = TokenInfo(
        token_id=uuid_text(random_uuid()),
        owner=owner,
        requester=requester,
        renewers=tuple(f"{r.principal_type}:{r.principal_name}" for r in req.renewers),
        issue_ms=now,
        expiry_ms=min(max_ts, _plus(now, config.delegation_token_expiry_time_ms)),
        max_ms=max_ts,
    )
    await store.put(token)
    log.info("delegation token created", token_id=token.token_id, owner=owner, requester=requester)
    response = answer(ErrorCode.NONE, now)
    response.expiry_timestamp_ms = token.expiry_ms
    response.max_timestamp_ms = token.max_ms
    response.token_id = token.token_id
    response.hmac = token_hmac(secret, token.token_id)
    return response


async def renew_delegation_token(ctx: RequestContext, req: RenewDelegationTokenRequest) -> RenewDelegationTokenResponse:
    if not _requests_allowed(ctx):
        return RenewDelegationTokenResponse(
            error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, expiry_timestamp_ms=-1
        )
    store = ctx.state.tokens
    if store is None:
        return RenewDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, expiry_timestamp_ms=0)
    now = now_ms()
    token = _find(ctx, bytes(req.hmac))
    code = ErrorCode.NONE
    if token is None:
        code = ErrorCode.DELEGATION_TOKEN_NOT_FOUND
    elif token.expired(now):
        code = ErrorCode.DELEGATION_TOKEN_EXPIRED
    elif not token.may_renew(_caller(ctx)):
        code = ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH
    if token is None or code != ErrorCode.NONE:
        return RenewDelegationTokenResponse(error_code=code, expiry_timestamp_ms=0)
    period = ctx.state.config.delegation_token_expiry_time_ms
    if req.renew_period_ms > 0:
        period = min(period, req.renew_period_ms)
    expiry = min(token.max_ms, _plus(now, period))
    await store.put(dataclasses.replace(token, expiry_ms=expiry))
    log.info("delegation token renewed", token_id=token.token_id, expiry_ms=expiry, by=_caller(ctx))
    return RenewDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)


async def expire_delegation_token(
    ctx: RequestContext, req: ExpireDelegationTokenRequest
) -> ExpireDelegationTokenResponse:
    if not _requests_allowed(ctx):
        return ExpireDelegationTokenResponse(
            error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, expiry_timestamp_ms=-1
        )
    store = ctx.state.tokens
    if store is None:
        return ExpireDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, expiry_timestamp_ms=0)
    now = now_ms()
    token = _find(ctx, bytes(req.hmac))
    if token is None:
        return ExpireDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_NOT_FOUND, expiry_timestamp_ms=0)
    if not token.may_renew(_caller(ctx)):
        return ExpireDelegationTokenResponse(
            error_code=ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH, expiry_timestamp_ms=0
        )
    if req.expiry_time_period_ms < 0:
        await store.remove([token.token_id])
        log.info("delegation token expired by request", token_id=token.token_id, by=_caller(ctx))
        return ExpireDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=now)
    if token.expired(now):
        return ExpireDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_EXPIRED, expiry_timestamp_ms=0)
    expiry = min(token.max_ms, _plus(now, req.expiry_time_period_ms))
    await store.put(dataclasses.replace(token, expiry_ms=expiry))
    log.info("delegation token expiry changed", token_id=token.token_id, expiry_ms=expiry, by=_caller(ctx))
    return ExpireDelegationTokenResponse(error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)


def _visible(ctx: RequestContext, token: TokenInfo, owners: list[str] | None) -> bool:
    """Kafka's DelegationTokenManager.filterToken."""
    if owners is not None and not any(token.owner_or_renewer(o) for o in owners):
        return False
    if token.owner_or_renewer(_caller(ctx)):
        return True
    return authz.authorize(
        ctx, AclOperation.DESCRIBE, ResourceType.DELEGATION_TOKEN, token.token_id
    ) or authz.authorize(ctx, AclOperation.DESCRIBE_TOKENS, ResourceType.USER, token.owner)


def _described(token: TokenInfo, secret: str) -> DescribedDelegationToken:
    owner_type, owner_name = split_principal(token.owner)
    requester_type, requester_name = split_principal(token.requester)
    renewers = []
    for r in token.renewers:
        kind, name = split_principal(r)
        renewers.append(DescribedDelegationTokenRenewer(principal_type=kind, principal_name=name))
    return DescribedDelegationToken(
        principal_type=owner_type,
        principal_name=owner_name,
        token_requester_principal_type=requester_type,
        token_requester_principal_name=requester_name,
        issue_timestamp=token.issue_ms,
        expiry_timestamp=token.expiry_ms,
        max_timestamp=token.max_ms,
        token_id=token.token_id,
        hmac=token_hmac(secret, token.token_id),
        renewers=renewers,
    )


async def describe_delegation_token(
    ctx: RequestContext, req: DescribeDelegationTokenRequest
) -> DescribeDelegationTokenResponse:
    if not _requests_allowed(ctx):
        return DescribeDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, tokens=[])
    store, secret = ctx.state.tokens, ctx.state.token_secret_key
    if store is None or secret is None:
        return DescribeDelegationTokenResponse(error_code=ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, tokens=[])
    owners = None if req.owners is None else [f"{o.principal_type}:{o.principal_name}" for o in req.owners]
    if owners == []:
        return DescribeDelegationTokenResponse(error_code=ErrorCode.NONE, tokens=[])
    tokens = [_described(t, secret) for t in store.tokens() if _visible(ctx, t, owners)]
    return DescribeDelegationTokenResponse(error_code=ErrorCode.NONE, tokens=tokens)
