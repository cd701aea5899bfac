"""`kafkapy acls --add|--remove|--list`: ACLs through CreateAcls (30), DeleteAcls (31) and
DescribeAcls (29) against a running broker, with kafka-acls' option names and output.

    kafkapy acls --bootstrap-server HOST:PORT --add --allow-principal User:alice \\
        --operation Read --operation Describe --topic orders --group billing
    kafkapy acls --bootstrap-server HOST:PORT --list --topic orders
    kafkapy acls --bootstrap-server HOST:PORT --remove --force --topic orders

As kafka-acls: principals are `Type:name`; --allow-host / --deny-host default to `*` for the
principals given; --operation defaults to All; --resource-pattern-type is literal (the
default) or prefixed for --add, and also any or match for --list and --remove; --list without
a resource lists every ACL; --remove without a principal removes every ACL of the resources
(asked for confirmation unless --force); --producer and --consumer add the usual sets.

The CLI's own connection: --command-config FILE with Kafka client properties
(security.protocol, sasl.mechanism, sasl.jaas.config, ssl.truststore.*, ssl.keystore.*), or
--sasl-mechanism with --sasl-username and --sasl-password as `kafkapy users` (plus --tls and
--ssl-cafile for SASL_SSL / SSL without a properties file).

Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkapy.cli_topics import EXIT_ERROR, EXIT_USAGE, add_common_arguments
from kafkapy.client import ConnectionSecurity, KafkaClient, KafkaError, check, sasl_authenticator
from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkapy.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkapy.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkapy.security.acl import (
    CLUSTER_NAME,
    SUPPORTED_OPERATIONS,
    WILDCARD,
    AclBinding,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from kafkapy.security.sasl_client import client_mechanism
from kafkapy.security.sasl_plain import PlainClient
from kafkapy.security.scram import MECHANISMS, ScramClientMechanism
from kafkapy.security.tls import TlsConfigError, TlsSettings, client_context

PATTERN_TYPES = {"literal": PatternType.LITERAL, "prefixed": PatternType.PREFIXED}
FILTER_PATTERN_TYPES = {**PATTERN_TYPES, "any": PatternType.ANY, "match": PatternType.MATCH}


class UsageError(ValueError):
    """Bad options (exit status 2)."""


def operation_from_name(text: str) -> AclOperation:
    """Kafka's operation names, any case, with or without underscores (Read, ClusterAction, ...)."""
    wanted = text.replace("_", "").replace("-", "").lower()
    for op in AclOperation:
        if op not in (AclOperation.UNKNOWN, AclOperation.ANY) and op.name.replace("_", "").lower() == wanted:
            return op
    names = ", ".join(_camel(op.name) for op in AclOperation if op > AclOperation.ANY)
    raise UsageError(f"Invalid operation {text!r}; valid operations: {names}")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--add", action="store_true", help="add ACLs")
    action.add_argument("--remove", action="store_true", help="remove ACLs")
    action.add_argument("--list", action="store_true", help="list ACLs (of the resources given, or all)")
    add_common_arguments(parser)
    parser.add_argument("--topic", action="append", default=[], metavar="NAME", help="a topic (repeatable; * = all)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME", help="a consumer group (repeatable)")
    parser.add_argument("--cluster", action="store_true", help="the cluster resource")
    parser.add_argument(
        "--transactional-id", action="append", default=[], metavar="ID", help="a transactional id (repeatable)"
    )
    parser.add_argument(
        "--delegation-token", action="append", default=[], metavar="ID", help="a delegation token id (repeatable)"
    )
    parser.add_argument(
        "--user-principal",
        action="append",
        default=[],
        metavar="TYPE:NAME",
        help="a user resource (CreateTokens, DescribeTokens; repeatable)",
    )
    parser.add_argument(
        "--resource-pattern-type",
        choices=sorted(FILTER_PATTERN_TYPES),
        type=str.lower,
        default="literal",
        help="literal (default) or prefixed; --list/--remove also any or match",
    )
    parser.add_argument("--allow-principal", action="append", default=[], metavar="TYPE:NAME")
    parser.add_argument("--deny-principal", action="append", default=[], metavar="TYPE:NAME")
    parser.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="default: * (any host)")
    parser.add_argument("--deny-host", action="append", default=[], metavar="HOST", help="default: * (any host)")
    parser.add_argument(
        "--operation", action="append", default=[], metavar="OP", help="Read, Write, Describe, ... (default All)"
    )
    parser.add_argument("--principal", action="append", default=[], metavar="TYPE:NAME", help="--list: only these")
    parser.add_argument("--producer", action="store_true", help="Write, Describe, Create on the topics")
    parser.add_argument("--consumer", action="store_true", help="Read, Describe on the topics, Read on the groups")
    parser.add_argument("--idempotent", action="store_true", help="with --producer: IdempotentWrite on the cluster")
    parser.add_argument("--force", action="store_true", help="--remove without asking")
    parser.add_argument("--command-config", metavar="FILE", help="client properties (security.protocol, sasl.*, ssl.*)")
    parser.add_argument("--sasl-mechanism", choices=["PLAIN", *sorted(MECHANISMS)], help="authenticate the CLI")
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (SSL / SASL_SSL listeners)")
    parser.add_argument("--ssl-cafile", metavar="PEM", help="with --tls: CA certificates to trust")


def run(args: argparse.Namespace) -> int:
    try:
        plan = Plan.from_args(args)
        security = security_from_args(args)
    except (UsageError, TlsConfigError, OSError) as exc:
        print(f"kafkapy acls: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run(args, plan, security))
    except KafkaError as exc:
        print(f"kafkapy acls: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


# ------------------------------------------------------------------ connection security


def read_properties(path: str) -> dict[str, str]:
    """A Java properties file's `key=value` / `key: value` lines (comments and blanks skipped;
    a trailing backslash continues a line)."""
    out: dict[str, str] = {}
    pending = ""
    for raw in Path(path).read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", "!")):
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            out[line] = ""
        else:
            out[line[:sep].strip()] = line[sep + 1 :].strip()
    return out


def security_from_args(args: argparse.Namespace) -> ConnectionSecurity:
    props = read_properties(args.command_config) if args.command_config else {}
    protocol = props.get("security.protocol", "").upper()
    if args.tls and not protocol:
        protocol = "SASL_SSL" if args.sasl_mechanism else "SSL"
    tls = protocol in ("SSL", "SASL_SSL") or args.tls
    context = None
    if tls:
        if args.ssl_cafile:
            props.setdefault("ssl.truststore.type", "PEM")
            props.setdefault("ssl.truststore.location", args.ssl_cafile)
        context = client_context(TlsSettings.from_lookup(props.get))
    authenticate = None
    if args.sasl_mechanism:
        user, password = args.sasl_username or "", args.sasl_password or ""
        if not user:
            raise UsageError("--sasl-mechanism needs --sasl-username and --sasl-password")
        mechanism: str = args.sasl_mechanism
        make: Callable[[], Any]
        if mechanism == "PLAIN":
            make = lambda: PlainClient(user, password)  # noqa: E731
        else:
            make = lambda: ScramClientMechanism(mechanism, user, password)  # noqa: E731
        authenticate = sasl_authenticator(make)
    elif protocol.startswith("SASL_"):
        mech = props.get("sasl.mechanism", "GSSAPI").upper()
        jaas = props.get("sasl.jaas.config")
        if not jaas:
            raise UsageError(f"{args.command_config}: security.protocol={protocol} needs sasl.jaas.config")
        try:
            authenticate = sasl_authenticator(client_mechanism(mech, jaas))
        except ValueError as exc:
            raise UsageError(f"{args.command_config}: {exc}") from exc
    return ConnectionSecurity(ssl_context=context, authenticate=authenticate)


# ------------------------------------------------------------------ what to do


@dataclass(slots=True, frozen=True)
class Resource:
    resource_type: ResourceType
    name: str

    def pattern(self, pattern_type: PatternType) -> str:
        return f"ResourcePattern(resourceType={self.resource_type.name}, name={self.name}, patternType={pattern_type.name})"


@dataclass(slots=True, frozen=True)
class Entry:
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    def __str__(self) -> str:
        return (
            f"(principal={self.principal}, host={self.host}, operation={self.operation.name}, "
            f"permissionType={self.permission.name})"
        )


@dataclass(slots=True)
class Plan:
    action: str
    pattern_type: PatternType
    resources: list[Resource]
    entries: dict[Resource, list[Entry]]  # --add / --remove with principals
    list_principals: list[str]
    force: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        action = "add" if args.add else "remove" if args.remove else "list"
        pattern_type = FILTER_PATTERN_TYPES[args.resource_pattern_type]
        if action == "add" and pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise UsageError(
                f"A '--resource-pattern-type' value of '{args.resource_pattern_type}' is not valid when adding acls."
            )
        resources = (
            [Resource(ResourceType.TOPIC, t) for t in args.topic]
            + [Resource(ResourceType.GROUP, g) for g in args.group]
            + [Resource(ResourceType.TRANSACTIONAL_ID, t) for t in args.transactional_id]
            + [Resource(ResourceType.DELEGATION_TOKEN, t) for t in args.delegation_token]
            + [Resource(ResourceType.USER, u) for u in args.user_principal]
            + ([Resource(ResourceType.CLUSTER, CLUSTER_NAME)] if args.cluster else [])
        )
        for r in resources:
            if not r.name:
                raise UsageError("resource names must not be empty")
        for p in [*args.allow_principal, *args.deny_principal, *args.principal]:
            if ":" not in p:
                raise UsageError(
                    f"Could not parse principal from `{p}` (no colon is present separating the principal type from the principal name)"
                )
        if (args.producer or args.consumer) and action == "list":
            raise UsageError("--producer and --consumer go with --add or --remove")
        if action != "list" and not resources:
            raise UsageError(
                "You must provide at least one resource: --topic <topic> or --cluster or --group <group> or "
                "--transactional-id <id> or --delegation-token <id> or --user-principal <principal>"
            )
        principals = bool(args.allow_principal or args.deny_principal)
        if action == "add" and not principals:
            raise UsageError("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.")
        if args.allow_host and not args.allow_principal:
            raise UsageError("--allow-host goes with --allow-principal")
        if args.deny_host and not args.deny_principal:
            raise UsageError("--deny-host goes with --deny-principal")
        entries: dict[Resource, list[Entry]] = {}
        if principals:
            if args.producer or args.consumer:
                entries = _producer_consumer(args, resources)
            else:
                ops = [operation_from_name(o) for o in args.operation] or [AclOperation.ALL]
                for r in resources:
                    supported = SUPPORTED_OPERATIONS[r.resource_type]
                    bad = [o for o in ops if o != AclOperation.ALL and o not in supported]
                    if bad:
                        names = ",".join(o.name for o in supported) + ",ALL"
                        raise UsageError(f"ResourceType {r.resource_type.name} only supports operations {names}")
                    entries[r] = _entries(args, ops)
        return cls(action, pattern_type, resources, entries, list(args.principal), bool(args.force))


def _entries(args: argparse.Namespace, ops: list[AclOperation]) -> list[Entry]:
    out: list[Entry] = []
    for principals, hosts, permission in (
        (args.allow_principal, args.allow_host or [WILDCARD], AclPermissionType.ALLOW),
        (args.deny_principal, args.deny_host or [WILDCARD], AclPermissionType.DENY),
    ):
        for p in principals:
            for h in hosts:
                for op in ops:
                    out.append(Entry(p, h, op, permission))
    return out


def _producer_consumer(args: argparse.Namespace, resources: list[Resource]) -> dict[Resource, list[Entry]]:
    """kafka-acls' --producer / --consumer sets."""
    topics = [r for r in resources if r.resource_type == ResourceType.TOPIC]
    groups = [r for r in resources if r.resource_type == ResourceType.GROUP]
    txns = [r for r in resources if r.resource_type == ResourceType.TRANSACTIONAL_ID]
    if not topics:
        raise UsageError("With --producer or --consumer you must specify a --topic")
    if args.consumer and not groups:
        raise UsageError("With --consumer you must specify a --group")
    op = AclOperation
    out: dict[Resource, list[Entry]] = {}

    def grant(rs: list[Resource], ops: list[AclOperation]) -> None:
        for r in rs:
            out.setdefault(r, []).extend(e for e in _entries(args, ops) if e not in out.get(r, []))

    if args.producer:
        grant(topics, [op.WRITE, op.DESCRIBE, op.CREATE])
        grant(txns, [op.WRITE, op.DESCRIBE])
        if args.idempotent:
            grant([Resource(ResourceType.CLUSTER, CLUSTER_NAME)], [op.IDEMPOTENT_WRITE])
    if args.consumer:
        grant(topics, [op.READ, op.DESCRIBE])
        grant(groups, [op.READ])
    return out


# ------------------------------------------------------------------ talking to the broker


async def _run(args: argparse.Namespace, plan: Plan, security: ConnectionSecurity) -> int:
    client = KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms, security=security)
    async with client:
        conn = await client.any_connection()
        if plan.action == "add":
            creations: list[AclCreation] = []
            for r, entries in plan.entries.items():
                print(f"Adding ACLs for resource `{r.pattern(plan.pattern_type)}`: ")
                print("".join(f" \t{e} \n" for e in entries))
                creations.extend(_creation(r, plan.pattern_type, e) for e in entries)
            resp: Any = await conn.request(CreateAclsRequest(creations=creations))
            for result in resp.results:
                check(result.error_code, result.error_message)
            await _list(conn, plan, [(r, plan.pattern_type) for r in plan.entries])
            return 0
        if plan.action == "remove":
            filters: list[DeleteAclsFilter] = []
            for r in plan.resources:
                chosen = plan.entries.get(r)
                what = f"resource filter `{_filter_text(r, plan.pattern_type)}`"
                if chosen is None:
                    question = f"Are you sure you want to delete all ACLs for {what}? (y/n)"
                    filters.append(_delete_filter(r, plan.pattern_type, None))
                else:
                    acls = "".join(f" \t{e} \n" for e in chosen)
                    question = f"Are you sure you want to remove ACLs: \n{acls} from {what}? (y/n)"
                    filters.extend(_delete_filter(r, plan.pattern_type, e) for e in chosen)
                if not plan.force and not _confirm(question):
                    return 0
            deleted: Any = await conn.request(DeleteAclsRequest(filters=filters))
            for fr in deleted.filter_results:
                check(fr.error_code, fr.error_message)
                for m in fr.matching_acls:
                    check(m.error_code, m.error_message)
            await _list(conn, plan, [(r, plan.pattern_type) for r in plan.resources])
            return 0
        wanted: list[tuple[Resource | None, PatternType]] = [(r, plan.pattern_type) for r in plan.resources]
        await _list(conn, plan, wanted or [(None, PatternType.ANY)])
        return 0


def _confirm(question: str) -> bool:
    print(question)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _filter_text(r: Resource, pattern_type: PatternType) -> str:
    return f"ResourcePattern(resourceType={r.resource_type.name}, name={r.name}, patternType={pattern_type.name})"


def _creation(r: Resource, pattern_type: PatternType, e: Entry) -> AclCreation:
    return AclCreation(
        resource_type=int(r.resource_type),
        resource_name=r.name,
        resource_pattern_type=int(pattern_type),
        principal=e.principal,
        host=e.host,
        operation=int(e.operation),
        permission_type=int(e.permission),
    )


def _delete_filter(r: Resource, pattern_type: PatternType, e: Entry | None) -> DeleteAclsFilter:
    return DeleteAclsFilter(
        resource_type_filter=int(r.resource_type),
        resource_name_filter=r.name,
        pattern_type_filter=int(pattern_type),
        principal_filter=None if e is None else e.principal,
        host_filter=None if e is None else e.host,
        operation=int(AclOperation.ANY if e is None else e.operation),
        permission_type=int(AclPermissionType.ANY if e is None else e.permission),
    )


async def _list(conn: Any, plan: Plan, wanted: list[tuple[Resource | None, PatternType]]) -> None:
    """Print the ACLs of each resource filter, grouped by resource pattern as kafka-acls does."""
    principals: list[str | None] = [*plan.list_principals] or [None]
    found: dict[tuple[int, str, int], list[AclBinding]] = {}
    for r, pattern_type in wanted:
        for principal in principals:
            resp: Any = await conn.request(
                DescribeAclsRequest(
                    resource_type_filter=int(ResourceType.ANY if r is None else r.resource_type),
                    resource_name_filter=None if r is None else r.name,
                    pattern_type_filter=int(pattern_type),
                    principal_filter=principal,
                    host_filter=None,
                    operation=int(AclOperation.ANY),
                    permission_type=int(AclPermissionType.ANY),
                )
            )
            check(resp.error_code, resp.error_message)
            for res in resp.resources:
                key = (res.resource_type, res.resource_name, res.pattern_type)
                bucket = found.setdefault(key, [])
                for a in res.acls:
                    b = AclBinding.of(*key, a.principal, a.host, a.operation, a.permission_type)
                    if b not in bucket:
                        bucket.append(b)
    for (rt, name, pt), bindings in found.items():
        resource = Resource(ResourceType(rt), name)
        if plan.list_principals:
            for principal in plan.list_principals:
                mine = [b for b in bindings if b.principal == principal]
                if mine:
                    print(f"ACLs for principal `{principal}`")
                    _print_resource(resource, PatternType(pt), mine)
        else:
            _print_resource(resource, PatternType(pt), bindings)


def _print_resource(r: Resource, pattern_type: PatternType, bindings: list[AclBinding]) -> None:
    print(f"Current ACLs for resource `{r.pattern(pattern_type)}`: ")
    lines = "".join(f" \t{Entry(b.principal, b.host, b.operation, b.permission)} \n" for b in bindings)
    print(lines)
