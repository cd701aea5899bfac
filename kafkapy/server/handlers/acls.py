"""DescribeAcls (29), CreateAcls (30), DeleteAcls (31): kafkapy has no
authorizer, and answers as Apache Kafka does without one (no
authorizer.class.name): SECURITY_DISABLED, "No Authorizer is configured."
Clients that probe ACLs (MirrorMaker 2's topic ACL sync, admin tools) then
skip them instead of failing on an API the broker does not advertise.
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.protocol.messages.create_acls_response import AclCreationResult, CreateAclsResponse
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsRequest
from kafkapy.protocol.messages.delete_acls_response import DeleteAclsFilterResult, DeleteAclsResponse
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.protocol.messages.describe_acls_response import DescribeAclsResponse
from kafkapy.server.handler import RequestContext

NO_AUTHORIZER = "No Authorizer is configured."


async def describe_acls(ctx: RequestContext, req: DescribeAclsRequest) -> DescribeAclsResponse:
    return DescribeAclsResponse(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)


async def create_acls(ctx: RequestContext, req: CreateAclsRequest) -> CreateAclsResponse:
    return CreateAclsResponse(
        results=[
            AclCreationResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
            for _ in req.creations
        ]
    )


async def delete_acls(ctx: RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse:
    return DeleteAclsResponse(
        filter_results=[
            DeleteAclsFilterResult(error_code=ErrorCode.SECURITY_DISABLED, error_message=NO_AUTHORIZER)
            for _ in req.filters
        ]
    )
