"""ACLs and the authorizer, with the semantics of Kafka's StandardAuthorizer.

Pure code: bindings, filters (DescribeAcls / DeleteAcls) and the check
"may principal P from host H do operation O on resource R". The codes are
those of Kafka's message specs (ResourceType, PatternType, AclOperation,
AclPermissionType), so wire values pass through unchanged.

Rules of a check (`Authorizer.authorize`):
- a super user (`super.users`) may do anything;
- the ACLs that apply to a resource are its LITERAL ACLs, the LITERAL ACLs
  named `*` of its type, and the PREFIXED ACLs whose name starts its name;
- of those, an ACL matches when its principal is the caller's or `User:*`,
  its host is `*` or the caller's address, and its operation is the one
  asked, `All`, or (ALLOW only) one implying it: Read, Write, Delete and
  Alter imply Describe, AlterConfigs implies DescribeConfigs;
- a matching DENY wins over any ALLOW; no matching ALLOW denies, except
  that a resource with no ACLs at all is open to everyone when
  `allow.everyone.if.no.acl.found` is true.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"

_E = TypeVar("_E", bound=enum.IntEnum)


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


_OP = AclOperation
# ALLOW ACLs with these operations also allow the key
IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    _OP.DESCRIBE: frozenset({_OP.DESCRIBE, _OP.READ, _OP.WRITE, _OP.DELETE, _OP.ALTER}),
    _OP.DESCRIBE_CONFIGS: frozenset({_OP.DESCRIBE_CONFIGS, _OP.ALTER_CONFIGS}),
}
# operation asked -> operations of the ALLOW ACLs that grant it, of the DENY ACLs that refuse it
ALLOWED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    op: IMPLIED_BY.get(op, frozenset({op})) | {_OP.ALL} for op in AclOperation
}
DENIED_BY: dict[AclOperation, frozenset[AclOperation]] = {op: frozenset({op, _OP.ALL}) for op in AclOperation}

# The operations each resource type has (Kafka's authorized-operations sets)
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (
        _OP.READ,
        _OP.WRITE,
        _OP.CREATE,
        _OP.DELETE,
        _OP.ALTER,
        _OP.DESCRIBE,
        _OP.DESCRIBE_CONFIGS,
        _OP.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (_OP.READ, _OP.DESCRIBE, _OP.DELETE),
    ResourceType.CLUSTER: (
        _OP.CREATE,
        _OP.CLUSTER_ACTION,
        _OP.DESCRIBE_CONFIGS,
        _OP.ALTER_CONFIGS,
        _OP.IDEMPOTENT_WRITE,
        _OP.ALTER,
        _OP.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (_OP.DESCRIBE, _OP.WRITE),
    ResourceType.DELEGATION_TOKEN: (_OP.DESCRIBE,),
    ResourceType.USER: (_OP.CREATE_TOKENS, _OP.DESCRIBE_TOKENS),
}


class AclError(ValueError):
    """A binding Kafka refuses to store: INVALID_REQUEST with this message, or (`server_error`)
    UNKNOWN_SERVER_ERROR without one, as Kafka 4.3.1 answers ANY / MATCH values in a creation."""

    def __init__(self, message: str, *, server_error: bool = False) -> None:
        super().__init__(message)
        self.server_error = server_error


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: a resource pattern and an entry (who, from where, what, allow or deny)."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    @classmethod
    def of(
        cls,
        resource_type: int,
        name: str,
        pattern_type: int,
        principal: str,
        host: str,
        operation: int,
        permission: int,
    ) -> AclBinding:
        """From wire codes; unknown codes become UNKNOWN (refused by `validate`)."""
        return cls(
            _enum(ResourceType, resource_type),
            name,
            _enum(PatternType, pattern_type),
            principal,
            host,
            _enum(AclOperation, operation),
            _enum(AclPermissionType, permission),
        )

    def has_unknown(self) -> bool:
        """A code outside Kafka's enums (or UNKNOWN): Kafka cannot even read such a request and
        closes the connection."""
        return 0 in (self.resource_type, self.pattern_type, self.operation, self.permission)

    def validate(self) -> None:
        """Raise AclError as Kafka 4.3.1 answers a binding it cannot create (checked in its order)."""
        if self.resource_type == ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            raise AclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if not self.name:
            raise AclError("Invalid empty resource name")
        if (
            self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED)
            or self.resource_type == ResourceType.ANY
            or self.operation == AclOperation.ANY
            or self.permission == AclPermissionType.ANY
        ):
            raise AclError("", server_error=True)
        if ":" not in self.principal:
            raise AclError(
                f"Could not parse principal from `{self.principal}` "
                "(no colon is present separating the principal type from the principal name)"
            )

    def to_json(self) -> dict[str, str | int]:
        return {
            "resource_type": int(self.resource_type),
            "name": self.name,
            "pattern_type": int(self.pattern_type),
            "principal": self.principal,
            "host": self.host,
            "operation": int(self.operation),
            "permission": int(self.permission),
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> AclBinding:
        return cls.of(
            int(str(d["resource_type"])),
            str(d["name"]),
            int(str(d["pattern_type"])),
            str(d["principal"]),
            str(d["host"]),
            int(str(d["operation"])),
            int(str(d["permission"])),
        )


def _enum(cls: type[_E], code: int) -> _E:
    try:
        return cls(code)
    except ValueError:
        return cls(0)


@dataclass(frozen=True, slots=True)
class AclFilter:
    """A DescribeAcls / DeleteAcls filter: None and ANY match everything; MATCH matches every
    pattern that applies to the named resource (its literal, `*` and prefixes)."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermissionType = AclPermissionType.ANY

    @classmethod
    def of(
        cls,
        resource_type: int,
        name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        return cls(
            _enum(ResourceType, resource_type),
            name,
            _enum(PatternType, pattern_type),
            principal,
            host,
            _enum(AclOperation, operation),
            _enum(AclPermissionType, permission),
        )

    def unknown(self) -> str | None:
        """The first UNKNOWN element's description, or None (Kafka refuses such filters)."""
        for label, value in (
            ("resourceType", self.resource_type),
            ("patternType", self.pattern_type),
            ("operation", self.operation),
            ("permissionType", self.permission),
        ):
            if value == 0:
                return label
        return None

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, b.resource_type):
            return False
        if not self._pattern_matches(b):
            return False
        if self.principal is not None and self.principal != b.principal:
            return False
        if self.host is not None and self.host != b.host:
            return False
        if self.operation not in (AclOperation.ANY, b.operation):
            return False
        return self.permission in (AclPermissionType.ANY, b.permission)

    def _pattern_matches(self, b: AclBinding) -> bool:
        pt = self.pattern_type
        if pt == PatternType.ANY:
            return self.name is None or self.name == b.name
        if pt == PatternType.MATCH:
            if self.name is None:
                return True
            if b.pattern_type == PatternType.LITERAL:
                return b.name in (self.name, WILDCARD)
            return self.name.startswith(b.name)
        if pt != b.pattern_type:
            return False
        return self.name is None or self.name == b.name


def parse_super_users(text: str | None) -> frozenset[str]:
    """`super.users`: principals separated by `;`."""
    if not text:
        return frozenset()
    return frozenset(p.strip() for p in text.split(";") if p.strip())


@dataclass(slots=True)
class _Index:
    """The ACLs of one resource type: literal by name, prefixed by prefix (with the prefix lengths
    present, so a check looks up at most one prefix per distinct length)."""

    literal: dict[str, list[AclBinding]] = field(default_factory=dict)
    prefixed: dict[str, list[AclBinding]] = field(default_factory=dict)
    prefix_lengths: list[int] = field(default_factory=list)  # sorted, distinct

    def add(self, b: AclBinding) -> None:
        if b.pattern_type == PatternType.LITERAL:
            self.literal.setdefault(b.name, []).append(b)
        else:
            self.prefixed.setdefault(b.name, []).append(b)
            if len(self.prefixed[b.name]) == 1:
                self.prefix_lengths = sorted({*self.prefix_lengths, len(b.name)})

    def remove(self, b: AclBinding) -> None:
        table = self.literal if b.pattern_type == PatternType.LITERAL else self.prefixed
        acls = table.get(b.name)
        if acls is None or b not in acls:
            return
        acls.remove(b)
        if not acls:
            del table[b.name]
            if table is self.prefixed and not any(len(n) == len(b.name) for n in self.prefixed):
                self.prefix_lengths = [n for n in self.prefix_lengths if n != len(b.name)]

    def applying(self, name: str) -> Iterator[AclBinding]:
        """Every ACL whose pattern covers resource `name`."""
        literal = self.literal
        acls = literal.get(name)
        if acls:
            yield from acls
        if name != WILDCARD:
            acls = literal.get(WILDCARD)
            if acls:
                yield from acls
        if self.prefix_lengths:
            prefixed = self.prefixed
            size = len(name)
            for n in self.prefix_lengths:
                if n > size:
                    break
                acls = prefixed.get(name[:n])
                if acls:
                    yield from acls


class Authorizer:
    """The ACLs in force and the check against them (kept current by the ACL store).

    Decisions are remembered per (principal, host, operation, resource) until the ACLs change
    (any add or remove forgets them all) or `DECISIONS` of them are held: a client repeating
    the same request costs one dict lookup, whatever the number of ACLs."""

    __slots__ = ("_all", "_by_type", "_decisions", "allow_if_no_acl", "super_users")

    DECISIONS = 65536

    def __init__(self, super_users: Iterable[str] = (), *, allow_everyone_if_no_acl_found: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_everyone_if_no_acl_found
        self._all: set[AclBinding] = set()
        self._by_type: dict[ResourceType, _Index] = {}
        self._decisions: dict[tuple[str, str, AclOperation, ResourceType, str], bool] = {}

    # ------------------------------------------------------------ the ACL set

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, b: object) -> bool:
        return b in self._all

    def bindings(self) -> list[AclBinding]:
        return list(self._all)

    def add(self, b: AclBinding) -> bool:
        """Add one ACL; False when it was already there."""
        if b in self._all:
            return False
        self._all.add(b)
        self._by_type.setdefault(b.resource_type, _Index()).add(b)
        self._decisions.clear()
        return True

    def remove(self, b: AclBinding) -> bool:
        if b not in self._all:
            return False
        self._all.discard(b)
        self._by_type[b.resource_type].remove(b)
        self._decisions.clear()
        return True

    def replace_all(self, bindings: Iterable[AclBinding]) -> None:
        self._all = set()
        self._by_type = {}
        self._decisions.clear()
        for b in bindings:
            self.add(b)

    def matching(self, flt: AclFilter) -> list[AclBinding]:
        return [b for b in self._all if flt.matches(b)]

    # ------------------------------------------------------------ checks

    def authorize(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        key = (principal, host, operation, resource_type, name)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(principal, host, operation, resource_type, name)
            if len(self._decisions) >= self.DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _decide(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        if principal in self.super_users:
            return True
        index = self._by_type.get(resource_type)
        if index is None:
            return self.allow_if_no_acl
        allowed = False
        found = False
        allow_ops = ALLOWED_BY[operation]
        deny_ops = DENIED_BY[operation]
        user = principal.startswith("User:")
        for acl in index.applying(name):
            found = True
            if acl.principal != principal and not (user and acl.principal == WILDCARD_PRINCIPAL):
                continue
            if acl.host not in (WILDCARD, host):
                continue
            if acl.permission == AclPermissionType.DENY:
                if acl.operation in deny_ops:
                    return False
            elif acl.operation in allow_ops:
                allowed = True
        if allowed:
            return True
        return not found and self.allow_if_no_acl

    def authorized_operations(self, principal: str, host: str, resource_type: ResourceType, name: str) -> int:
        """Kafka's authorized-operations bitfield: bit `op` set for each permitted operation."""
        bits = 0
        for op in SUPPORTED_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, op, resource_type, name):
                bits |= 1 << int(op)
        return bits

    def any_allowed(self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType) -> bool:
        """Whether some resource of this type may get `operation` (Kafka's authorizeByResourceType,
        used for idempotent producers without IdempotentWrite, KIP-679)."""
        if principal in self.super_users:
            return True
        index = self._by_type.get(resource_type)
        if index is None:
            return self.allow_if_no_acl
        user = principal.startswith("User:")
        allow_ops = ALLOWED_BY[operation]
        deny_ops = DENIED_BY[operation]
        denied_literal: set[str] = set()
        denied_prefixes: list[str] = []
        allowed: list[AclBinding] = []
        for acl in self._all:
            if acl.resource_type != resource_type:
                continue
            if acl.principal != principal and not (user and acl.principal == WILDCARD_PRINCIPAL):
                continue
            if acl.host not in (WILDCARD, host):
                continue
            if acl.permission == AclPermissionType.DENY:
                if acl.operation in deny_ops:
                    if acl.pattern_type == PatternType.LITERAL:
                        if acl.name == WILDCARD:
                            return False
                        denied_literal.add(acl.name)
                    else:
                        denied_prefixes.append(acl.name)
            elif acl.operation in allow_ops:
                allowed.append(acl)
        for acl in allowed:
            if any(acl.name.startswith(p) for p in denied_prefixes):
                continue
            if acl.pattern_type == PatternType.LITERAL and acl.name in denied_literal:
                continue
            return True
        return False
