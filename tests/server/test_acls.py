"""ACL APIs without an authorizer: SECURITY_DISABLED, as Apache Kafka answers
when no authorizer.class.name is set (checked against Kafka 4.3.1)."""

from __future__ import annotations

import pytest

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.server.handlers.acls import NO_AUTHORIZER
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient

ANY, TOPIC, LITERAL, READ, ALLOW = 1, 2, 3, 3, 3


@pytest.mark.parametrize("version", [0, 1, 2, 3])  # v0: removed by Kafka 4 (KIP-896), kept
def test_acl_apis_answer_security_disabled(kafka_broker: BrokerProcess, version: int) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        described = c.request(
            DescribeAclsRequest(
                resource_type_filter=ANY,
                resource_name_filter=None,
                pattern_type_filter=ANY,
                principal_filter=None,
                host_filter=None,
                operation=ANY,
                permission_type=ANY,
            ),
            version,
        )
        assert (described.error_code, described.error_message, described.resources) == (
            ErrorCode.SECURITY_DISABLED,
            NO_AUTHORIZER,
            [],
        )

        creation = AclCreation(
            resource_type=TOPIC,
            resource_name="t",
            resource_pattern_type=LITERAL,
            principal="User:alice",
            host="*",
            operation=READ,
            permission_type=ALLOW,
        )
        created = c.request(CreateAclsRequest(creations=[creation, creation]), version)
        assert [(r.error_code, r.error_message) for r in created.results] == [
            (ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
        ] * 2

        flt = DeleteAclsFilter(
            resource_type_filter=ANY,
            resource_name_filter=None,
            pattern_type_filter=ANY,
            principal_filter=None,
            host_filter=None,
            operation=ANY,
            permission_type=ANY,
        )
        deleted = c.request(DeleteAclsRequest(filters=[flt]), version)
        assert [(r.error_code, r.error_message, r.matching_acls) for r in deleted.filter_results] == [
            (ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER, [])
        ]
