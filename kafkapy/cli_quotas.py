"""`kafkapy quotas set|delete|describe`: client quotas through AlterClientQuotas (49) and
DescribeClientQuotas (48) against a running broker (docs/quotas.md).

An entity is a user, a client-id, or both (or an IP for connection_creation_rate), each by name or as
the type's default:

    kafkapy quotas set --client-id app producer_byte_rate=1048576 consumer_byte_rate=2097152
    kafkapy quotas set --user alice --default-client-id request_percentage=50
    kafkapy quotas delete --client-id app producer_byte_rate
    kafkapy quotas describe                       # every quota
    kafkapy quotas describe --user alice          # alice's, alone and with any client-id
    kafkapy quotas describe --user alice --strict # alice's own entity only

Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
from typing import Any

from kafkapy.cli_topics import add_common_arguments
from kafkapy.cli_users import add_sasl_arguments, run_admin, sasl_security
from kafkapy.client import KafkaClient, check
from kafkapy.protocol.messages.alter_client_quotas_request import (
    AlterClientQuotasRequest,
    EntityData,
    EntryData,
    OpData,
)
from kafkapy.protocol.messages.describe_client_quotas_request import ComponentData, DescribeClientQuotasRequest

EXACT, DEFAULT, ANY = 0, 1, 2
TYPES = (("user", "user"), ("client_id", "client-id"), ("ip", "ip"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_ = sub.add_parser("set", help="set quotas of an entity: KEY=VALUE ...")
    set_.add_argument("values", nargs="+", metavar="KEY=VALUE")
    delete = sub.add_parser("delete", help="remove quotas of an entity: KEY ...")
    delete.add_argument("keys", nargs="+", metavar="KEY")
    describe = sub.add_parser("describe", help="list quotas (all, or those matching the entity options)")
    describe.add_argument("--strict", action="store_true", help="only entities of exactly the types given")
    for child in (set_, delete, describe):
        child.add_argument("--user", help="a user (the principal's name, e.g. alice for User:alice)")
        child.add_argument("--default-user", action="store_true", help="the default of every user")
        child.add_argument("--client-id", help="a client-id")
        child.add_argument("--default-client-id", action="store_true", help="the default of every client-id")
        child.add_argument("--ip", help="an IP address (connection_creation_rate)")
        child.add_argument("--default-ip", action="store_true", help="the default of every IP")
        if child is not describe:
            child.add_argument("--validate-only", action="store_true", help="check, change nothing")
        add_common_arguments(child)
        add_sasl_arguments(child)


def run(args: argparse.Namespace) -> int:
    return run_admin("quotas", _run(args))


def entity(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The entity the options name: (type, name) pairs, name None for a default."""
    pairs: list[tuple[str, str | None]] = []
    for attr, kind in TYPES:
        name, default = getattr(args, attr), getattr(args, f"default_{attr}")
        if name is not None and default:
            raise ValueError(f"--{kind} and --default-{kind} name the same entity type twice")
        if name is not None:
            pairs.append((kind, name))
        elif default:
            pairs.append((kind, None))
    return pairs


def _ops(args: argparse.Namespace) -> list[OpData]:
    if args.action == "delete":
        return [OpData(key=k, value=0.0, remove=True) for k in args.keys]
    ops = []
    for item in args.values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        try:
            ops.append(OpData(key=key, value=float(value), remove=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a number (in {item!r})") from None
    return ops


def show(pairs: list[tuple[str, str | None]]) -> str:
    return " ".join(f"{k}={'<default>' if v is None else v}" for k, v in pairs)


async def _run(args: argparse.Namespace) -> int:
    pairs = entity(args)
    if args.action != "describe" and not pairs:
        raise ValueError("name an entity: --user/--default-user, --client-id/--default-client-id, --ip/--default-ip")
    ops = _ops(args) if args.action != "describe" else []
    client = KafkaClient(
        args.bootstrap_server, request_timeout_ms=args.request_timeout_ms, security=sasl_security(args)
    )
    async with client:
        conn = await client.any_connection()
        if args.action == "describe":
            components = [
                ComponentData(entity_type=k, match_type=EXACT if v is not None else DEFAULT, match=v) for k, v in pairs
            ]
            resp: Any = await conn.request(DescribeClientQuotasRequest(components=components, strict=args.strict))
            check(resp.error_code, resp.error_message)
            lines = []
            for e in resp.entries or []:
                names = sorted((x.entity_type, x.entity_name) for x in e.entity)
                values = ", ".join(f"{v.key}={v.value:g}" for v in sorted(e.values, key=lambda v: v.key))
                lines.append(f"{show(names)}\t{values}")
            for line in sorted(lines):
                print(line)
            return 0
        request = AlterClientQuotasRequest(
            entries=[EntryData(entity=[EntityData(entity_type=k, entity_name=v) for k, v in pairs], ops=ops)],
            validate_only=args.validate_only,
        )
        altered: Any = await conn.request(request)
        for r in altered.entries:
            check(r.error_code, r.error_message)
        verb = "Checked" if args.validate_only else "Altered"
        print(f"{verb} quotas of {show(pairs)}: {' '.join(args.values if args.action == 'set' else args.keys)}")
        return 0
