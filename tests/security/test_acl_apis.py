"""Authorization of the SCRAM credential, quota and client-metrics APIs on a real broker: alice (SASL PLAIN)
without ACLs gets CLUSTER_AUTHORIZATION_FAILED shaped as Kafka 4.3.1 shapes it; with Describe /
DescribeConfigs / Alter on the cluster the requests go through. (Error codes per phase are also compared
with Kafka's in interop/test_acls_matrix.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import diff_acls
from interop.diff_acls import ALLOW, ALTER, CLUSTER, DESCRIBE, DESCRIBE_CONFIGS, LITERAL, acl_creation
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.protocol.messages.describe_client_quotas_request import DescribeClientQuotasRequest
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_acl_cluster import sasl_settings

REFUSED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("acl-apis")
    inside, port = free_port(), free_port()
    b = BrokerProcess(root / "data", root / "broker.log", port=inside, settings=sasl_settings(inside, port)).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        b.stop()


def call(bootstrap: str, user: str, request: Any, version: int) -> Any:
    conn = diff_acls.login(bootstrap, user)
    try:
        return conn.call(request, version)
    finally:
        conn.close()


def alter_request() -> AlterUserScramCredentialsRequest:
    return AlterUserScramCredentialsRequest(
        deletions=[ScramCredentialDeletion(name="zed", mechanism=1)],
        upsertions=[
            ScramCredentialUpsertion(
                name="bob", mechanism=1, iterations=4096, salt=b"s" * 16, salted_password=b"p" * 32
            ),
        ],
    )


def grant(bootstrap: str, op: int) -> None:
    resp = call(
        bootstrap, "admin", CreateAclsRequest(creations=[acl_creation(CLUSTER, "kafka-cluster", LITERAL, op, ALLOW)]), 3
    )
    assert all(r.error_code == 0 for r in resp.results)


def test_cluster_checks_on_scram_quota_and_metrics_apis(bootstrap: str) -> None:
    named = DescribeUserScramCredentialsRequest(users=[UserName(name="bob"), UserName(name="carol")])
    resp = call(bootstrap, "alice", named, 0)
    # as Kafka: the top-level error, and one result per name asked without the name
    assert (resp.error_code, resp.error_message) == (REFUSED, None)
    assert [(r.user, r.error_code) for r in resp.results] == [("", REFUSED), ("", REFUSED)]
    resp = call(bootstrap, "alice", DescribeUserScramCredentialsRequest(users=None), 0)
    assert resp.error_code == REFUSED and resp.results == []  # (Kafka 4.3.1 never answers this one)
    resp = call(bootstrap, "alice", alter_request(), 0)
    assert [(r.user, r.error_code, r.error_message) for r in resp.results] == [
        ("bob", REFUSED, "Cluster authorization failed."),
        ("zed", REFUSED, "Cluster authorization failed."),
    ]
    quotas = call(bootstrap, "alice", DescribeClientQuotasRequest(components=[], strict=False), 1)
    assert (quotas.error_code, quotas.entries) == (REFUSED, None)
    assert call(bootstrap, "alice", ListClientMetricsResourcesRequest(), 0).error_code == REFUSED

    grant(bootstrap, DESCRIBE)  # Describe: the credential descriptions, not the quotas
    resp = call(bootstrap, "alice", named, 0)
    assert resp.error_code == 0
    assert {(r.user, r.error_code) for r in resp.results} == {
        ("bob", ErrorCode.RESOURCE_NOT_FOUND),
        ("carol", ErrorCode.RESOURCE_NOT_FOUND),
    }
    assert call(bootstrap, "alice", ListClientMetricsResourcesRequest(), 0).error_code == REFUSED
    assert call(bootstrap, "alice", alter_request(), 0).results[0].error_code == REFUSED

    grant(bootstrap, DESCRIBE_CONFIGS)
    assert call(bootstrap, "alice", DescribeClientQuotasRequest(components=[], strict=False), 1).error_code == 0
    assert call(bootstrap, "alice", ListClientMetricsResourcesRequest(), 0).error_code == 0

    grant(bootstrap, ALTER)
    resp = call(bootstrap, "alice", alter_request(), 0)
    assert {(r.user, r.error_code) for r in resp.results} == {("bob", 0), ("zed", ErrorCode.RESOURCE_NOT_FOUND)}
