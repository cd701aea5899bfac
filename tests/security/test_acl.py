"""kafkapy.security.acl: StandardAuthorizer's rules, one by one."""

from __future__ import annotations

import pytest

from kafkapy.security.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclError,
    AclFilter,
    AclOperation,
    AclPermissionType,
    Authorizer,
    PatternType,
    ResourceType,
    parse_super_users,
)
from kafkapy.server.handlers._common import (
    CLUSTER_AUTHORIZED_OPERATIONS,
    GROUP_AUTHORIZED_OPERATIONS,
    TOPIC_AUTHORIZED_OPERATIONS,
)

Op, Res, Pat, Perm = AclOperation, ResourceType, PatternType, AclPermissionType
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.0.0.1"


def acl(
    name: str,
    op: AclOperation = Op.READ,
    perm: AclPermissionType = Perm.ALLOW,
    principal: str = ALICE,
    pattern: PatternType = Pat.LITERAL,
    rtype: ResourceType = Res.TOPIC,
    host: str = "*",
) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def auth(*bindings: AclBinding, supers: str = "", allow_if_none: bool = False) -> Authorizer:
    a = Authorizer(parse_super_users(supers), allow_everyone_if_no_acl_found=allow_if_none)
    for b in bindings:
        a.add(b)
    return a


def can(
    a: Authorizer, op: AclOperation, name: str, principal: str = ALICE, host: str = HOST, rtype: Res = Res.TOPIC
) -> bool:
    return a.authorize(principal, host, op, rtype, name)


def test_no_acl_denies_by_default_and_allows_with_allow_everyone() -> None:
    assert not can(auth(), Op.READ, "t")
    assert can(auth(allow_if_none=True), Op.READ, "t")


def test_allow_everyone_applies_only_to_resources_without_any_acl() -> None:
    a = auth(acl("t", principal=BOB), allow_if_none=True)
    assert not can(a, Op.READ, "t")  # t has an ACL (for bob): alice is not allowed
    assert can(a, Op.READ, "other")
    # a prefixed or wildcard ACL counts as an ACL of the resource
    a = auth(acl("o", principal=BOB, pattern=Pat.PREFIXED), allow_if_none=True)
    assert not can(a, Op.READ, "other")
    a = auth(acl("*", principal=BOB), allow_if_none=True)
    assert not can(a, Op.READ, "other")


def test_literal_allow_matches_exact_name_and_operation() -> None:
    a = auth(acl("t"))
    assert can(a, Op.READ, "t")
    assert not can(a, Op.READ, "t2")
    assert not can(a, Op.WRITE, "t")
    assert not can(a, Op.READ, "t", principal=BOB)
    assert not can(a, Op.READ, "t", rtype=Res.GROUP)


def test_deny_wins_over_allow() -> None:
    a = auth(acl("t"), acl("t", perm=Perm.DENY))
    assert not can(a, Op.READ, "t")
    a = auth(acl("t", op=Op.ALL), acl("t", op=Op.WRITE, perm=Perm.DENY))
    assert can(a, Op.READ, "t")
    assert not can(a, Op.WRITE, "t")
    # DENY ALL denies everything; a prefixed DENY beats a literal ALLOW
    assert not can(auth(acl("t"), acl("t", op=Op.ALL, perm=Perm.DENY)), Op.READ, "t")
    assert not can(auth(acl("t"), acl("", perm=Perm.DENY, pattern=Pat.PREFIXED)), Op.READ, "t")
    assert not can(auth(acl("t"), acl("t", perm=Perm.DENY, principal="User:*")), Op.READ, "t")


def test_deny_of_an_implying_operation_does_not_deny_describe() -> None:
    a = auth(acl("t", op=Op.DESCRIBE), acl("t", op=Op.READ, perm=Perm.DENY))
    assert can(a, Op.DESCRIBE, "t")
    assert not can(a, Op.READ, "t")


@pytest.mark.parametrize("op", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.ALL])
def test_implied_describe(op: AclOperation) -> None:
    assert can(auth(acl("t", op=op)), Op.DESCRIBE, "t")


@pytest.mark.parametrize("op", [Op.CREATE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS])
def test_not_implying_describe(op: AclOperation) -> None:
    assert not can(auth(acl("t", op=op)), Op.DESCRIBE, "t")


def test_alter_configs_implies_describe_configs_only() -> None:
    a = auth(acl("t", op=Op.ALTER_CONFIGS))
    assert can(a, Op.DESCRIBE_CONFIGS, "t")
    assert not can(a, Op.ALTER, "t")
    assert not can(auth(acl("t", op=Op.DESCRIBE_CONFIGS)), Op.ALTER_CONFIGS, "t")


def test_read_does_not_imply_write() -> None:
    assert not can(auth(acl("t", op=Op.READ)), Op.WRITE, "t")


def test_all_allows_every_operation() -> None:
    a = auth(acl("t", op=Op.ALL))
    for op in (Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE, Op.DESCRIBE_CONFIGS):
        assert can(a, op, "t")


def test_prefixed_acls() -> None:
    a = auth(acl("orders-", pattern=Pat.PREFIXED))
    assert can(a, Op.READ, "orders-eu")
    assert can(a, Op.READ, "orders-")
    assert not can(a, Op.READ, "orders")
    assert not can(a, Op.READ, "xorders-eu")
    # several prefix lengths
    a = auth(acl("a", pattern=Pat.PREFIXED, op=Op.WRITE), acl("abc", pattern=Pat.PREFIXED))
    assert can(a, Op.READ, "abcd") and can(a, Op.WRITE, "abcd") and not can(a, Op.READ, "abx")


def test_wildcard_resource_name() -> None:
    a = auth(acl("*"))
    assert can(a, Op.READ, "anything")
    assert can(a, Op.READ, "*")
    # a PREFIXED "*" is a prefix like any other
    assert not can(auth(acl("*", pattern=Pat.PREFIXED)), Op.READ, "anything")


def test_wildcard_principal() -> None:
    a = auth(acl("t", principal="User:*"))
    assert can(a, Op.READ, "t")
    assert can(a, Op.READ, "t", principal=BOB)
    assert not can(a, Op.READ, "t", principal="Group:admins")


def test_host_matching() -> None:
    a = auth(acl("t", host="10.0.0.1"))
    assert can(a, Op.READ, "t", host="10.0.0.1")
    assert not can(a, Op.READ, "t", host="10.0.0.2")
    a = auth(acl("t"), acl("t", perm=Perm.DENY, host="10.0.0.2"))
    assert can(a, Op.READ, "t", host="10.0.0.1")
    assert not can(a, Op.READ, "t", host="10.0.0.2")


def test_super_users() -> None:
    assert parse_super_users("User:admin; User:ops;;") == frozenset({"User:admin", "User:ops"})
    a = auth(acl("t", perm=Perm.DENY, principal="User:admin", op=Op.ALL), supers="User:admin;User:ops")
    assert can(a, Op.WRITE, "t", principal="User:admin")  # even against a DENY
    assert can(a, Op.CLUSTER_ACTION, CLUSTER_NAME, principal="User:ops", rtype=Res.CLUSTER)
    assert not can(a, Op.READ, "t")


def test_cluster_and_other_resource_types() -> None:
    a = auth(
        acl(CLUSTER_NAME, op=Op.IDEMPOTENT_WRITE, rtype=Res.CLUSTER),
        acl("tx-", op=Op.WRITE, rtype=Res.TRANSACTIONAL_ID, pattern=Pat.PREFIXED),
        acl("g", rtype=Res.GROUP),
        acl("tok", op=Op.DESCRIBE, rtype=Res.DELEGATION_TOKEN),
        acl("bob", op=Op.CREATE_TOKENS, rtype=Res.USER),
    )
    assert can(a, Op.IDEMPOTENT_WRITE, CLUSTER_NAME, rtype=Res.CLUSTER)
    assert not can(a, Op.ALTER, CLUSTER_NAME, rtype=Res.CLUSTER)
    assert can(a, Op.DESCRIBE, "tx-1", rtype=Res.TRANSACTIONAL_ID)
    assert can(a, Op.READ, "g", rtype=Res.GROUP) and not can(a, Op.READ, "g", rtype=Res.TOPIC)
    assert can(a, Op.DESCRIBE, "tok", rtype=Res.DELEGATION_TOKEN)
    assert can(a, Op.CREATE_TOKENS, "bob", rtype=Res.USER)


def test_remove_and_index_consistency() -> None:
    p1 = acl("ab", pattern=Pat.PREFIXED)
    p2 = acl("cd", pattern=Pat.PREFIXED)
    a = auth(p1, p2, acl("x"))
    assert a.add(p1) is False and len(a) == 3
    assert a.remove(p1) and not a.remove(p1)
    assert not can(a, Op.READ, "abc") and can(a, Op.READ, "cde")
    a.remove(p2)
    assert not can(a, Op.READ, "cde") and can(a, Op.READ, "x")
    a.replace_all([p1])
    assert can(a, Op.READ, "abz") and not can(a, Op.READ, "x")


def test_authorized_operations_bitfields() -> None:
    everyone = Authorizer(allow_everyone_if_no_acl_found=True)
    assert everyone.authorized_operations(ALICE, HOST, Res.TOPIC, "t") == TOPIC_AUTHORIZED_OPERATIONS
    assert everyone.authorized_operations(ALICE, HOST, Res.CLUSTER, CLUSTER_NAME) == CLUSTER_AUTHORIZED_OPERATIONS
    assert everyone.authorized_operations(ALICE, HOST, Res.GROUP, "g") == GROUP_AUTHORIZED_OPERATIONS
    a = auth(acl("t", op=Op.WRITE))
    # Kafka 4.3.1 answers 272 (Write, Describe) for such a principal
    assert a.authorized_operations(ALICE, HOST, Res.TOPIC, "t") == 272
    a = auth(acl("g", rtype=Res.GROUP))
    assert a.authorized_operations(ALICE, HOST, Res.GROUP, "g") == 264  # Read, Describe


def test_any_allowed_for_idempotent_producers() -> None:
    # KIP-679: Write on any topic lets a producer be idempotent, unless denied everywhere it is allowed
    assert not auth().any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    assert auth(acl("t", op=Op.WRITE)).any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    assert auth(acl("p", op=Op.WRITE, pattern=Pat.PREFIXED)).any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    assert not auth(acl("t", op=Op.READ)).any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    denied = auth(acl("t", op=Op.WRITE), acl("t", op=Op.WRITE, perm=Perm.DENY))
    assert not denied.any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    denied = auth(acl("t", op=Op.WRITE), acl("*", op=Op.ALL, perm=Perm.DENY))
    assert not denied.any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    partly = auth(acl("p", op=Op.WRITE, pattern=Pat.PREFIXED), acl("p1", op=Op.WRITE, perm=Perm.DENY))
    assert partly.any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)
    assert auth(supers="User:alice").any_allowed(ALICE, HOST, Op.WRITE, Res.TOPIC)


def test_filters() -> None:
    lit = acl("t")
    pre = acl("t", pattern=Pat.PREFIXED, perm=Perm.DENY, principal=BOB, op=Op.WRITE)
    wild = acl("*", op=Op.DESCRIBE, principal=BOB)
    grp = acl("g", rtype=Res.GROUP)
    a = auth(lit, pre, wild, grp)

    def m(**kw: object) -> set[AclBinding]:
        return set(a.matching(AclFilter(**kw)))  # type: ignore[arg-type]

    assert m() == {lit, pre, wild, grp}
    assert m(resource_type=Res.TOPIC) == {lit, pre, wild}
    assert m(resource_type=Res.TOPIC, name="t") == {lit, pre}  # ANY pattern: exact name, both types
    assert m(resource_type=Res.TOPIC, name="t", pattern_type=Pat.LITERAL) == {lit}
    assert m(resource_type=Res.TOPIC, pattern_type=Pat.PREFIXED) == {pre}
    assert m(resource_type=Res.TOPIC, name="t", pattern_type=Pat.MATCH) == {lit, pre, wild}
    assert m(resource_type=Res.TOPIC, name="tx", pattern_type=Pat.MATCH) == {pre, wild}
    assert m(principal=BOB) == {pre, wild}
    assert m(permission=Perm.DENY) == {pre}
    assert m(operation=Op.DESCRIBE) == {wild}
    assert m(host="10.0.0.9") == set()
    assert AclFilter.of(0, None, 1, None, None, 1, 1).unknown() == "resourceType"
    assert AclFilter.of(2, None, 9, None, None, 1, 1).unknown() == "patternType"


def test_validation_as_kafka() -> None:
    def err(b: AclBinding) -> tuple[bool, str]:
        with pytest.raises(AclError) as e:
            b.validate()
        return e.value.server_error, str(e.value)

    assert err(acl("other", rtype=Res.CLUSTER, op=Op.ALTER)) == (
        False,
        "The only valid name for the CLUSTER resource is kafka-cluster",
    )
    assert err(acl("")) == (False, "Invalid empty resource name")
    assert err(acl("t", principal="alice"))[1].startswith("Could not parse principal from `alice`")
    for bad in (
        acl("t", pattern=Pat.MATCH),
        acl("t", pattern=Pat.ANY),
        acl("t", rtype=Res.ANY),
        acl("t", op=Op.ANY),
        acl("t", perm=Perm.ANY),
    ):
        assert err(bad)[0] is True  # Kafka 4.3.1: UNKNOWN_SERVER_ERROR
    assert AclBinding.of(0, "t", 3, ALICE, "*", 3, 3).has_unknown()
    assert AclBinding.of(2, "t", 3, ALICE, "*", 99, 3).has_unknown()
    acl(CLUSTER_NAME, rtype=Res.CLUSTER).validate()
    b = acl("t", pattern=Pat.PREFIXED)
    assert AclBinding.from_json(b.to_json()) == b


def test_ten_thousand_acls_stay_indexed() -> None:
    a = Authorizer()
    for i in range(5000):
        a.add(acl(f"topic-{i}", principal=f"User:u{i}"))
        a.add(acl(f"pre-{i}-", principal=f"User:u{i}", pattern=Pat.PREFIXED))
    assert len(a) == 10000
    assert can(a, Op.READ, "topic-42", principal="User:u42")
    assert can(a, Op.DESCRIBE, "pre-7-x", principal="User:u7")
    assert not can(a, Op.READ, "topic-42", principal="User:u43")


def test_remembered_decisions_follow_every_change() -> None:
    a = auth(acl("t"))
    assert can(a, Op.READ, "t") and not can(a, Op.WRITE, "t")
    a.add(acl("t", op=Op.WRITE))
    assert can(a, Op.WRITE, "t")
    a.add(acl("t", op=Op.ALL, perm=Perm.DENY, host=HOST))
    assert not can(a, Op.READ, "t") and can(a, Op.READ, "t", host="10.9.9.9")
    a.remove(acl("t", op=Op.ALL, perm=Perm.DENY, host=HOST))
    assert can(a, Op.READ, "t")
    a.replace_all([])
    assert not can(a, Op.READ, "t")


def test_remembered_decisions_are_bounded() -> None:
    a = auth(acl("t-", pattern=Pat.PREFIXED))
    for i in range(Authorizer.DECISIONS + 10):
        assert can(a, Op.READ, f"t-{i}")
    assert len(a._decisions) <= Authorizer.DECISIONS
    assert not can(a, Op.READ, "u-1")
