"""v0 of the admin APIs Kafka 4 removed (KIP-896) and Kafka 1.x-3.x served: DescribeAcls, CreateAcls,
DeleteAcls (29-31), AlterReplicaLogDirs (34) and the delegation token APIs (38-41), with raw requests
on a real broker process (PLAIN users, the StandardAuthorizer, a token secret, two log dirs).

The ACL APIs' v0 has no pattern type (KIP-290 added it in v1): v0 creates LITERAL bindings and its
filters match LITERAL bindings only, so a PREFIXED binding is invisible to it and survives its deletes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop import diff_log_dirs as dl
from interop._common import BrokerProcess, start_broker
from interop.diff_acls import ALLOW, LITERAL, PREFIXED, READ, TOPIC, WRITE, acl_creation
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_acls_request import CreateAclsRequest
from kafkapy.protocol.messages.create_delegation_token_request import CreateDelegationTokenRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.protocol.messages.describe_delegation_token_request import DescribeDelegationTokenRequest
from kafkapy.protocol.messages.expire_delegation_token_request import ExpireDelegationTokenRequest
from kafkapy.protocol.messages.renew_delegation_token_request import RenewDelegationTokenRequest
from kafkapy.security.delegation_token import token_hmac
from tests.security.test_delegation_tokens import SECRET, plain, token_settings
from tests.server.rawclient import RawClient

ANY = 1
V0_APIS = (
    ApiKey.DESCRIBE_ACLS,
    ApiKey.CREATE_ACLS,
    ApiKey.DELETE_ACLS,
    ApiKey.ALTER_REPLICA_LOG_DIRS,
    ApiKey.CREATE_DELEGATION_TOKEN,
    ApiKey.RENEW_DELEGATION_TOKEN,
    ApiKey.EXPIRE_DELEGATION_TOKEN,
    ApiKey.DESCRIBE_DELEGATION_TOKEN,
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, list[str]]]:
    base: Path = tmp_path_factory.mktemp("admin-v0")
    dirs = [str(base / "a"), str(base / "b")]
    b = start_broker(base / "a", token_settings(**{"log.dirs": ",".join(dirs)}))
    try:
        yield b, dirs
    finally:
        b.stop()


def test_v0_advertised(broker: tuple[BrokerProcess, list[str]]) -> None:
    with RawClient(broker[0].bootstrap) as c:
        resp = c.request(ApiVersionsRequest(), 0)
    mins = {k.api_key: k.min_version for k in resp.api_keys}
    assert {api: mins[api] for api in V0_APIS} == dict.fromkeys(V0_APIS, 0)


def _describe(c: RawClient, version: int) -> list[tuple[str, int, str, int]]:
    flt = DescribeAclsRequest(
        resource_type_filter=ANY,
        resource_name_filter=None,
        pattern_type_filter=ANY,  # not sent at v0: LITERAL there
        principal_filter="User:v0",
        host_filter=None,
        operation=ANY,
        permission_type=ANY,
    )
    resp = c.request(flt, version)
    assert resp.error_code == E.NONE
    return sorted((r.resource_name, r.pattern_type, a.principal, a.operation) for r in resp.resources for a in r.acls)


def test_acls_v0_see_and_delete_literal_bindings_only(broker: tuple[BrokerProcess, list[str]]) -> None:
    with plain(broker[0], "admin") as admin:
        prefixed = acl_creation(TOPIC, "pre-", PREFIXED, WRITE, ALLOW, principal="User:v0")
        assert [r.error_code for r in admin.request(CreateAclsRequest(creations=[prefixed]), 3).results] == [E.NONE]
        # v0 carries no pattern type: whatever the object holds, the binding is LITERAL
        literal = acl_creation(TOPIC, "lit", PREFIXED, READ, ALLOW, principal="User:v0")
        assert [r.error_code for r in admin.request(CreateAclsRequest(creations=[literal]), 0).results] == [E.NONE]

        both = [("lit", LITERAL, "User:v0", READ), ("pre-", PREFIXED, "User:v0", WRITE)]
        assert _describe(admin, 3) == both
        # v0's response has no pattern type either; its filter matched the literal binding only
        assert [(n, p, o) for n, _, p, o in _describe(admin, 0)] == [("lit", "User:v0", READ)]

        delete_any = DeleteAclsFilter(
            resource_type_filter=ANY,
            resource_name_filter=None,
            pattern_type_filter=ANY,
            principal_filter="User:v0",
            host_filter=None,
            operation=ANY,
            permission_type=ANY,
        )
        resp = admin.request(DeleteAclsRequest(filters=[delete_any]), 0)
        [result] = resp.filter_results
        assert result.error_code == E.NONE
        assert [(m.resource_name, m.principal, m.operation) for m in result.matching_acls] == [("lit", "User:v0", READ)]
        assert _describe(admin, 3) == [("pre-", PREFIXED, "User:v0", WRITE)]  # the prefixed one stays
        assert _describe(admin, 0) == []
        resp = admin.request(DeleteAclsRequest(filters=[delete_any]), 3)
        assert [len(r.matching_acls) for r in resp.filter_results] == [1]


def test_acls_v0_need_cluster_permissions(broker: tuple[BrokerProcess, list[str]]) -> None:
    with plain(broker[0], "alice") as alice:
        creation = acl_creation(TOPIC, "t", LITERAL, READ, ALLOW)
        resp = alice.request(CreateAclsRequest(creations=[creation]), 0)
        assert [r.error_code for r in resp.results] == [E.CLUSTER_AUTHORIZATION_FAILED]


def test_delegation_tokens_v0(broker: tuple[BrokerProcess, list[str]]) -> None:
    with plain(broker[0], "alice") as alice:
        created = alice.request(
            CreateDelegationTokenRequest(owner_principal_type=None, owner_principal_name=None, renewers=[]), 0
        )
        assert created.error_code == E.NONE
        assert (created.principal_type, created.principal_name) == ("User", "alice")
        assert created.hmac == token_hmac(SECRET, created.token_id)
        described = alice.request(DescribeDelegationTokenRequest(owners=None), 0)
        assert described.error_code == E.NONE
        assert created.token_id in [t.token_id for t in described.tokens]
        mac = bytes(created.hmac)
        renewed = alice.request(RenewDelegationTokenRequest(hmac=mac, renew_period_ms=60_000), 0)
        assert renewed.error_code == E.NONE
        assert 0 < renewed.expiry_timestamp_ms - int(time.time() * 1000) <= 60_000
        expired = alice.request(ExpireDelegationTokenRequest(hmac=mac, expiry_time_period_ms=-1), 0)
        assert expired.error_code == E.NONE
        described = alice.request(DescribeDelegationTokenRequest(owners=None), 0)
        assert created.token_id not in [t.token_id for t in described.tokens]
        assert alice.request(RenewDelegationTokenRequest(hmac=mac, renew_period_ms=-1), 0).error_code == (
            E.DELEGATION_TOKEN_NOT_FOUND
        )


def test_alter_replica_log_dirs_v0_moves_a_partition(broker: tuple[BrokerProcess, list[str]]) -> None:
    b, dirs = broker
    with plain(b, "admin") as admin:
        topic = CreatableTopic(name=dl.TOPIC, num_partitions=3, replication_factor=1)
        resp = admin.request(CreateTopicsRequest(topics=[topic], timeout_ms=10_000), 7)
        assert [t.error_code for t in resp.topics] == [E.NONE]
        deadline = time.monotonic() + 30
        while len(dl.where(admin, dirs)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        home = dl.where(admin, dirs)["0"]
        other = str(1 - int(home))
        assert dl.alter(admin, dirs, [(dirs[int(other)], dl.TOPIC, [0])], version=0) == [[dl.TOPIC, 0, E.NONE]]
        while dl.where(admin, dirs).get("0") != other and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dl.where(admin, dirs)["0"] == other
        # to a dir the broker does not have: Kafka's error, at v0 as at v1-2
        assert dl.alter(admin, dirs, [("/nowhere", dl.TOPIC, [1])], version=0) == [[dl.TOPIC, 1, E.LOG_DIR_NOT_FOUND]]
