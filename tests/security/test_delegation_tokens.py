"""Delegation tokens (APIs 38-41) and SCRAM authentication with a token (tokenauth=true): the token's
pieces in-process, then Kafka's rules on a real broker process with raw requests (PLAIN users, the
StandardAuthorizer with a super user)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, listener_port, start_broker, wait_until
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkapy.protocol.messages.create_delegation_token_request import (
    CreatableRenewers,
    CreateDelegationTokenRequest,
)
from kafkapy.protocol.messages.describe_delegation_token_request import (
    DescribeDelegationTokenOwner,
    DescribeDelegationTokenRequest,
)
from kafkapy.protocol.messages.expire_delegation_token_request import ExpireDelegationTokenRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest
from kafkapy.protocol.messages.renew_delegation_token_request import RenewDelegationTokenRequest
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.security.acl import AclOperation, AclPermissionType, PatternType, ResourceType
from kafkapy.security.delegation_token import TokenCredentials, TokenInfo, token_hmac, token_password
from kafkapy.security.sasl_base import SaslFailure
from kafkapy.security.sasl_plain import plain_client_token
from kafkapy.security.scram import ScramClient, ScramServer
from tests.security.test_sasl_server import sasl_settings
from tests.server.rawclient import RawClient

SECRET = "token-secret-key"
DAY = 86_400_000


# ---------------------------------------------------------------- in-process


def _token(token_id: str = "tok1", expiry: int = 10_000, max_ms: int = 20_000) -> TokenInfo:
    return TokenInfo(token_id, "User:alice", "User:admin", ("User:bob",), 0, expiry, max_ms)


def test_hmac_is_hmac_sha512_of_the_id() -> None:
    expected = hmac.new(SECRET.encode(), b"tok1", hashlib.sha512).digest()
    assert token_hmac(SECRET, "tok1") == expected
    assert token_password(SECRET, "tok1") == base64.b64encode(expected).decode()


def test_owner_requester_renewer_rules() -> None:
    t = _token()
    assert [t.owner_or_renewer(p) for p in ("User:alice", "User:admin", "User:bob", "User:eve")] == [
        True,
        True,
        True,
        False,
    ]
    # renew and expire: the owner and the renewers, not the requester (Kafka's controller)
    assert [t.may_renew(p) for p in ("User:alice", "User:admin", "User:bob")] == [True, False, True]
    assert not t.expired(10_000) and t.expired(10_001)
    assert TokenInfo.from_json(json.loads(json.dumps(t.to_json()))) == t


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_with_a_token(mechanism: str) -> None:
    tokens = {"tok1": _token()}
    creds = TokenCredentials(SECRET, tokens.get)

    def exchange(password: str, tokenauth: bool = True) -> ScramServer:
        client = ScramClient(mechanism, "tok1", password, extensions={"tokenauth": "true"} if tokenauth else {})
        server = ScramServer(mechanism, lambda user: None, lambda tid: creds.lookup(mechanism, tid))
        client.verify(server.evaluate(client.final(server.evaluate(client.first()))))
        return server

    server = exchange(token_password(SECRET, "tok1"))
    assert server.complete and server.authorization_id == "alice" and server.token_authenticated
    assert server.credential_expiry_ms == 10_000  # the token's expiry bounds the session
    with pytest.raises(SaslFailure):
        exchange(token_password("other-secret", "tok1"))
    with pytest.raises(SaslFailure, match="Invalid user credentials"):
        exchange(token_password(SECRET, "tok1"), tokenauth=False)  # a user named tok1 does not exist
    del tokens["tok1"]
    with pytest.raises(SaslFailure, match="Invalid user credentials"):
        exchange(token_password(SECRET, "tok1"))


# ---------------------------------------------------------------- a broker process


def token_settings(**extra: str) -> dict[str, str]:
    return sasl_settings(
        **{
            "delegation.token.secret.key": SECRET,
            "delegation.token.expiry.check.interval.ms": "300",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            "connection.failed.authentication.delay.ms": "50",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(tmp_path_factory.mktemp("tokens") / "data", token_settings())
    try:
        yield b
    finally:
        b.stop()


USERS = {"admin": "admin-secret", "alice": "alice-secret"}


def plain(b: BrokerProcess, user: str) -> RawClient:
    c = RawClient(b.bootstrap)
    assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == E.NONE
    r = c.request(SaslAuthenticateRequest(auth_bytes=plain_client_token(user, USERS[user])), 2)
    assert r.error_code == E.NONE, r
    return c


def token_auth(
    b: BrokerProcess, token_id: str, password: str, mechanism: str = "SCRAM-SHA-512"
) -> tuple[RawClient, int]:
    """A connection authenticated with a token; (client, error code of the last SaslAuthenticate)."""
    c = RawClient(b.bootstrap)
    assert c.request(SaslHandshakeRequest(mechanism=mechanism), 1).error_code == E.NONE
    client = ScramClient(mechanism, token_id, password, extensions={"tokenauth": "true"})
    r = c.request(SaslAuthenticateRequest(auth_bytes=client.first()), 2)
    if r.error_code != E.NONE:
        return c, r.error_code
    r = c.request(SaslAuthenticateRequest(auth_bytes=client.final(bytes(r.auth_bytes))), 2)
    if r.error_code == E.NONE:
        client.verify(bytes(r.auth_bytes))
    return c, r.error_code


def create(c: RawClient, renewers: tuple[str, ...] = (), owner: str | None = None, max_lifetime: int = -1) -> Any:
    req = CreateDelegationTokenRequest(
        owner_principal_type="User" if owner else None,
        owner_principal_name=owner,
        renewers=[CreatableRenewers(principal_type="User", principal_name=r) for r in renewers],
        max_lifetime_ms=max_lifetime,
    )
    return c.request(req, 3)


def describe(c: RawClient, owners: list[str] | None = None) -> tuple[int, list[str]]:
    req = DescribeDelegationTokenRequest(
        owners=None
        if owners is None
        else [DescribeDelegationTokenOwner(principal_type="User", principal_name=o) for o in owners]
    )
    r = c.request(req, 3)
    return r.error_code, sorted(t.token_id for t in r.tokens)


def renew(c: RawClient, mac: bytes, period: int = -1) -> tuple[int, int]:
    r = c.request(RenewDelegationTokenRequest(hmac=mac, renew_period_ms=period), 2)
    return r.error_code, r.expiry_timestamp_ms


def expire(c: RawClient, mac: bytes, period: int = -1) -> tuple[int, int]:
    r = c.request(ExpireDelegationTokenRequest(hmac=mac, expiry_time_period_ms=period), 2)
    return r.error_code, r.expiry_timestamp_ms


def _authenticated(b: BrokerProcess) -> set[tuple[str, str]]:
    """(principal, mechanism) of the broker's "authenticated" log lines."""
    found = set()
    for line in b.log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "authenticated":
            found.add((str(event.get("principal")), str(event.get("mechanism"))))
    return found


def test_create_renew_expire_describe(broker: BrokerProcess) -> None:
    with plain(broker, "alice") as alice, plain(broker, "admin") as admin:
        before = int(time.time() * 1000)
        r = create(alice, renewers=("admin",))
        assert r.error_code == E.NONE
        assert (r.principal_type, r.principal_name) == ("User", "alice")
        assert (r.token_requester_principal_type, r.token_requester_principal_name) == ("User", "alice")
        assert r.hmac == token_hmac(SECRET, r.token_id)
        assert before <= r.issue_timestamp_ms <= int(time.time() * 1000)
        assert r.expiry_timestamp_ms == r.issue_timestamp_ms + DAY
        assert r.max_timestamp_ms == r.issue_timestamp_ms + 7 * DAY
        mac = bytes(r.hmac)
        assert r.token_id in describe(alice)[1]
        assert r.token_id in describe(alice, ["alice"])[1]
        assert r.token_id in describe(alice, ["admin"])[1]  # admin renews it
        assert r.token_id not in describe(alice, ["bob"])[1]
        assert describe(alice, []) == (E.NONE, [])
        # admin is a renewer (and a super user): renews with a shorter period
        code, expiry = renew(admin, mac, 60_000)
        assert code == E.NONE and 0 < expiry - int(time.time() * 1000) <= 60_000
        code, expiry = renew(alice, mac)
        assert code == E.NONE and expiry > int(time.time() * 1000) + DAY - 60_000
        assert renew(alice, b"not-a-token-hmac") == (E.DELEGATION_TOKEN_NOT_FOUND, 0)
        assert expire(alice, b"not-a-token-hmac") == (E.DELEGATION_TOKEN_NOT_FOUND, 0)
        code, _ = expire(alice, mac, -1)
        assert code == E.NONE
        assert r.token_id not in describe(admin)[1]
        assert renew(alice, mac)[0] == E.DELEGATION_TOKEN_NOT_FOUND


def test_renew_is_capped_at_the_max_lifetime(broker: BrokerProcess) -> None:
    with plain(broker, "alice") as alice:
        r = create(alice, max_lifetime=5_000)
        assert r.max_timestamp_ms == r.issue_timestamp_ms + 5_000
        assert r.expiry_timestamp_ms == r.max_timestamp_ms
        assert renew(alice, bytes(r.hmac), 3_600_000) == (E.NONE, r.max_timestamp_ms)
        assert expire(alice, bytes(r.hmac), 3_600_000) == (E.NONE, r.max_timestamp_ms)


def test_owner_mismatch_and_describe_filter(broker: BrokerProcess) -> None:
    with plain(broker, "admin") as admin:
        mine = create(admin)
        assert mine.error_code == E.NONE
        # a token for another owner: admin is a super user, so CreateTokens on User:alice is granted
        for_alice = create(admin, owner="alice")
        assert for_alice.error_code == E.NONE
        assert (for_alice.principal_name, for_alice.token_requester_principal_name) == ("alice", "admin")
    with plain(broker, "alice") as alice:
        refused = create(alice, owner="admin")
        assert refused.error_code == E.DELEGATION_TOKEN_AUTHORIZATION_FAILED
        assert (refused.principal_name, refused.token_requester_principal_name) == ("admin", "alice")
        assert refused.issue_timestamp_ms == -1 and refused.token_id == ""
        # admin's own token: alice neither owns nor renews it and has no ACL on it
        assert renew(alice, bytes(mine.hmac)) == (E.DELEGATION_TOKEN_OWNER_MISMATCH, 0)
        assert expire(alice, bytes(mine.hmac)) == (E.DELEGATION_TOKEN_OWNER_MISMATCH, 0)
        code, seen = describe(alice)
        assert code == E.NONE and mine.token_id not in seen and for_alice.token_id in seen
        # owners filter: admin asked for alice's token (the requester counts), admin's own stays hidden
        assert describe(alice, ["admin"]) == (E.NONE, [for_alice.token_id])
        # alice owns the token admin made for her: she may renew it
        assert renew(alice, bytes(for_alice.hmac))[0] == E.NONE
    with plain(broker, "admin") as admin:
        assert {mine.token_id, for_alice.token_id} <= set(describe(admin)[1])
        bad = admin.request(
            CreateDelegationTokenRequest(
                owner_principal_type=None,
                owner_principal_name=None,
                renewers=[CreatableRenewers(principal_type="Group", principal_name="g")],
                max_lifetime_ms=-1,
            ),
            3,
        )
        assert bad.error_code == E.INVALID_PRINCIPAL_TYPE


def test_token_authentication(broker: BrokerProcess) -> None:
    with plain(broker, "alice") as alice:
        r = create(alice)
    password = base64.b64encode(bytes(r.hmac)).decode()
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        c, code = token_auth(broker, r.token_id, password, mechanism)
        with c:
            assert code == E.NONE
            metadata = c.request(MetadataRequest(topics=None, allow_auto_topic_creation=False), 12)
            assert [b.port for b in metadata.brokers] == [broker.port]
            # a token-authenticated connection may not create, renew or describe tokens
            assert create(c).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
            assert renew(c, bytes(r.hmac)) == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
            assert describe(c) == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, [])
    assert wait_until(lambda: ("User:alice", "SCRAM-SHA-256") in _authenticated(broker))
    c, code = token_auth(broker, r.token_id, "wrong" + password)
    c.close()
    assert code == E.SASL_AUTHENTICATION_FAILED
    # expiring it now (period 0): renewal is refused, the sweep (every 300 ms here) removes it, and then
    # it no longer authenticates
    with plain(broker, "alice") as alice:
        assert expire(alice, bytes(r.hmac), 0)[0] == E.NONE
        time.sleep(0.01)
        assert renew(alice, bytes(r.hmac))[0] in (E.DELEGATION_TOKEN_EXPIRED, E.DELEGATION_TOKEN_NOT_FOUND)
        assert wait_until(lambda: r.token_id not in describe(alice)[1], 5)
        assert renew(alice, bytes(r.hmac)) == (E.DELEGATION_TOKEN_NOT_FOUND, 0)
    c, code = token_auth(broker, r.token_id, password)
    c.close()
    assert code == E.SASL_AUTHENTICATION_FAILED


def test_plaintext_listener_not_allowed(broker: BrokerProcess) -> None:
    with RawClient(f"127.0.0.1:{listener_port(broker.log_path, 'INTERNAL')}") as c:
        r = create(c)
        assert r.error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert (r.principal_name, r.issue_timestamp_ms, r.token_id) == ("ANONYMOUS", -1, "")
        assert renew(c, b"x") == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
        assert expire(c, b"x") == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
        assert describe(c) == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, [])


def test_tokens_kept_across_a_restart(tmp_path: Path) -> None:
    settings = token_settings()
    b = start_broker(tmp_path / "data", settings)
    try:
        with plain(b, "alice") as alice:
            r = create(alice)
    finally:
        b.stop()
    b = start_broker(tmp_path / "data", settings)
    try:
        c, code = token_auth(b, r.token_id, base64.b64encode(bytes(r.hmac)).decode())
        c.close()
        assert code == E.NONE
    finally:
        b.stop()


def test_without_a_secret_key_tokens_are_disabled(tmp_path: Path) -> None:
    settings = token_settings()
    del settings["delegation.token.secret.key"]
    b = start_broker(tmp_path / "data", settings)
    try:
        with plain(b, "alice") as alice:
            r = create(alice)
            assert r.error_code == E.DELEGATION_TOKEN_AUTH_DISABLED
            assert (r.principal_name, r.token_requester_principal_name, r.token_id) == ("alice", "alice", "")
            assert renew(alice, b"x")[0] == E.DELEGATION_TOKEN_AUTH_DISABLED
            assert expire(alice, b"x")[0] == E.DELEGATION_TOKEN_AUTH_DISABLED
            assert describe(alice) == (E.DELEGATION_TOKEN_AUTH_DISABLED, [])
        # the deprecated name works too
        b.stop()
        b = start_broker(tmp_path / "data", {**settings, "delegation.token.master.key": SECRET})
        with plain(b, "alice") as alice:
            r = create(alice)
            assert r.error_code == E.NONE and r.hmac == token_hmac(SECRET, r.token_id)
    finally:
        b.stop()


def _grant(admin: RawClient, resource_type: ResourceType, name: str, op: AclOperation) -> None:
    creation = AclCreation(
        resource_type=resource_type,
        resource_name=name,
        resource_pattern_type=PatternType.LITERAL,
        principal="User:alice",
        host="*",
        operation=op,
        permission_type=AclPermissionType.ALLOW,
    )
    r = admin.request(CreateAclsRequest(creations=[creation]), 3)
    assert [x.error_code for x in r.results] == [E.NONE]


def test_token_acls(broker: BrokerProcess) -> None:
    """CreateTokens on User:<owner> to create for another owner; Describe on the DelegationToken or
    DescribeTokens on the owner's User resource to see tokens alice neither owns, asked for nor renews."""
    with plain(broker, "admin") as admin, plain(broker, "alice") as alice:
        for_carol = create(admin, owner="carol")
        admins = create(admin)
        assert create(alice, owner="carol").error_code == E.DELEGATION_TOKEN_AUTHORIZATION_FAILED
        seen = describe(alice)[1]
        assert for_carol.token_id not in seen and admins.token_id not in seen
        _grant(admin, ResourceType.USER, "User:carol", AclOperation.CREATE_TOKENS)
        made = create(alice, owner="carol")  # the file store's ACLs apply at once on one broker
        assert made.error_code == E.NONE
        assert (made.principal_name, made.token_requester_principal_name) == ("carol", "alice")
        _grant(admin, ResourceType.USER, "User:carol", AclOperation.DESCRIBE_TOKENS)
        assert wait_until(lambda: for_carol.token_id in describe(alice)[1])
        assert admins.token_id not in describe(alice)[1]
        _grant(admin, ResourceType.DELEGATION_TOKEN, admins.token_id, AclOperation.DESCRIBE)
        assert wait_until(lambda: admins.token_id in describe(alice)[1])
        # seeing is not renewing
        assert renew(alice, bytes(admins.hmac)) == (E.DELEGATION_TOKEN_OWNER_MISMATCH, 0)
