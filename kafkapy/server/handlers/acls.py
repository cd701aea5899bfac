"""DescribeAcls (29), CreateAcls (30), DeleteAcls (31).

Without an authorizer (no authorizer.class.name) kafkapy answers as Apache
Kafka does: SECURITY_DISABLED, "No Authorizer is configured." Clients that
probe ACLs (MirrorMaker 2's topic ACL sync, admin tools) then skip them.

With one, the ACLs live in the metadata store (kafkapy.cluster.acl_store):
DescribeAcls needs Describe on the cluster, CreateAcls and DeleteAcls need
Alter on it (CLUSTER_AUTHORIZATION_FAILED otherwise), and bindings Kafka
refuses get INVALID_REQUEST with Kafka's message.
"""

from __future__ import annotations

from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.protocol.messages.create_acls_response import AclCreationResult, CreateAclsResponse
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsRequest
from kafkapy.protocol.messages.delete_acls_response import (
    DeleteAclsFilterResult,
    DeleteAclsMatchingAcl,
    DeleteAclsResponse,
)
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.protocol.messages.describe_acls_response import (
    AclDescription,
    DescribeAclsResource,
    DescribeAclsResponse,
)
from kafkapy.security.acl import AclBinding, AclError, AclFilter, AclOperation
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.network import CloseConnection

log = get_logger(__name__)

NO_AUTHORIZER = "No Authorizer is configured."
NOT_AUTHORIZED = "Cluster authorization failed."


async def describe_acls(ctx: RequestContext, req: DescribeAclsRequest) -> DescribeAclsResponse:
    authorizer = ctx.state.authorizer
    if authorizer is None:
        return DescribeAclsResponse(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
    if not authz.cluster(ctx, AclOperation.DESCRIBE):
        return DescribeAclsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
    flt = AclFilter.of(
        req.resource_type_filter,
        req.resource_name_filter,
        req.pattern_type_filter,
        req.principal_filter,
        req.host_filter,
        req.operation,
        req.permission_type,
    )
    if flt.unknown() is not None:
        raise CloseConnection()  # Kafka cannot read a filter with an UNKNOWN element and closes
    grouped: dict[tuple[int, str, int], list[AclDescription]] = {}
    for b in sorted(authorizer.matching(flt), key=_order):
        grouped.setdefault((b.resource_type, b.name, b.pattern_type), []).append(
            AclDescription(principal=b.principal, host=b.host, operation=b.operation, permission_type=b.permission)
        )
    return DescribeAclsResponse(
        error_code=ErrorCode.NONE,
        error_message=None,
        resources=[
            DescribeAclsResource(resource_type=rt, resource_name=name, pattern_type=pt, acls=acls)
            for (rt, name, pt), acls in grouped.items()
        ],
    )


def _order(b: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    return (b.resource_type, b.name, b.pattern_type, b.principal, b.host, b.operation, b.permission)


async def create_acls(ctx: RequestContext, req: CreateAclsRequest) -> CreateAclsResponse:
    store = ctx.state.acl_store
    if store is None:
        return CreateAclsResponse(
            results=[
                AclCreationResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
                for _ in req.creations
            ]
        )
    if not authz.cluster(ctx, AclOperation.ALTER):
        return CreateAclsResponse(
            results=[
                AclCreationResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
                for _ in req.creations
            ]
        )
    results: list[AclCreationResult] = []
    valid: list[AclBinding] = []
    for c in req.creations:
        b = AclBinding.of(
            c.resource_type,
            c.resource_name,
            c.resource_pattern_type,
            c.principal,
            c.host,
            c.operation,
            c.permission_type,
        )
        if b.has_unknown():
            raise CloseConnection()  # as Kafka, which cannot read the request
        try:
            b.validate()
        except AclError as e:
            if e.server_error:
                results.append(AclCreationResult(error_code=ErrorCode.UNKNOWN_SERVER_ERROR, error_message=None))
            else:
                results.append(AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=str(e)))
            continue
        valid.append(b)
        results.append(AclCreationResult(error_code=ErrorCode.NONE, error_message=None))
    if valid:
        try:
            await store.create(valid)
        except Exception as e:  # the store failed: every binding we meant to store fails
            log.exception("acl creation failed")
            for r in results:
                if r.error_code == ErrorCode.NONE:
                    r.error_code, r.error_message = ErrorCode.UNKNOWN_SERVER_ERROR, str(e)
        else:
            log.info("acls created", count=len(valid), by=ctx.conn.principal if ctx.conn else None)
    return CreateAclsResponse(results=results)


async def delete_acls(ctx: RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse:
    store = ctx.state.acl_store
    if store is None:
        return DeleteAclsResponse(
            filter_results=[
                DeleteAclsFilterResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
                for _ in req.filters
            ]
        )
    if not authz.cluster(ctx, AclOperation.ALTER):
        return DeleteAclsResponse(
            filter_results=[
                DeleteAclsFilterResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=NOT_AUTHORIZED)
                for _ in req.filters
            ]
        )
    filters = [
        AclFilter.of(
            f.resource_type_filter,
            f.resource_name_filter,
            f.pattern_type_filter,
            f.principal_filter,
            f.host_filter,
            f.operation,
            f.permission_type,
        )
        for f in req.filters
    ]
    if any(flt.unknown() is not None for flt in filters):
        raise CloseConnection()  # as Kafka, which cannot read the request
    try:
        deleted = await store.delete(filters)
    except Exception as e:
        log.exception("acl deletion failed")
        return DeleteAclsResponse(
            filter_results=[
                DeleteAclsFilterResult(error_code=ErrorCode.UNKNOWN_SERVER_ERROR, error_message=str(e)) for _ in filters
            ]
        )
    out = [
        DeleteAclsFilterResult(
            error_code=ErrorCode.NONE,
            error_message=None,
            matching_acls=[
                DeleteAclsMatchingAcl(
                    error_code=ErrorCode.NONE,
                    error_message=None,
                    resource_type=b.resource_type,
                    resource_name=b.name,
                    pattern_type=b.pattern_type,
                    principal=b.principal,
                    host=b.host,
                    operation=b.operation,
                    permission_type=b.permission,
                )
                for b in sorted(found, key=_order)
            ],
        )
        for found in deleted
    ]
    if any(out_r.matching_acls for out_r in out):
        log.info("acls deleted", count=sum(len(r.matching_acls) for r in out))
    return DeleteAclsResponse(filter_results=out)
