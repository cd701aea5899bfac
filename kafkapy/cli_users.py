"""`kafkapy users add|alter|delete|list`: SCRAM users through AlterUserScramCredentials (51) and
DescribeUserScramCredentials (50) against a running broker.

The password never leaves this process: like Kafka's admin client, the CLI salts it and sends
the salted password (SCRAM's SaltedPassword) with the salt and the iteration count.
To authenticate the CLI's own connection on a SASL listener: --sasl-mechanism with
--sasl-username and --sasl-password (PLAIN or SCRAM-SHA-256/512).

Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from collections.abc import Coroutine
from typing import Any

from kafkapy.cli_topics import EXIT_ERROR, EXIT_USAGE, add_common_arguments
from kafkapy.client import ConnectionSecurity, KafkaClient, KafkaError, check, sasl_authenticator
from kafkapy.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kafkapy.security.sasl_plain import PlainClient
from kafkapy.security.scram import BY_TYPE, MECHANISMS, ScramClientMechanism, salted_password

MECHANISM_NAMES = sorted(MECHANISMS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add or replace a user's SCRAM credential")
    alter = sub.add_parser("alter", help="same as add: set a user's SCRAM credential")
    for p in (add, alter):
        p.add_argument("user")
        p.add_argument("--mechanism", choices=MECHANISM_NAMES, action="append", help="default: SCRAM-SHA-256 and -512")
        p.add_argument("--password", help="the password (default: asked on the terminal, or read from stdin)")
        p.add_argument("--iterations", type=int, default=4096, help="PBKDF2 iterations, 4096..16384 (default 4096)")
    delete = sub.add_parser("delete", help="delete a user's SCRAM credentials")
    delete.add_argument("user")
    delete.add_argument("--mechanism", choices=MECHANISM_NAMES, action="append", help="default: every one it has")
    lst = sub.add_parser("list", help="list users with SCRAM credentials and their iterations")
    lst.add_argument("users", nargs="*", metavar="USER", help="users (default: all)")
    for child in (add, alter, delete, lst):
        add_common_arguments(child)
        add_sasl_arguments(child)


def add_sasl_arguments(parser: argparse.ArgumentParser) -> None:
    """--sasl-mechanism/--sasl-username/--sasl-password: how an admin command logs in (`sasl_security`)."""
    parser.add_argument("--sasl-mechanism", choices=["PLAIN", *MECHANISM_NAMES], help="authenticate the CLI")
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password")


def run_admin(command: str, main: Coroutine[Any, Any, int]) -> int:
    """Run an admin command's coroutine: a broker's error exits EXIT_ERROR, a usage error EXIT_USAGE."""
    try:
        return asyncio.run(main)
    except KafkaError as exc:
        print(f"kafkapy {command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    return run_admin("users", _run(args))


def sasl_security(args: argparse.Namespace) -> ConnectionSecurity:
    mechanism = args.sasl_mechanism
    if mechanism is None:
        return ConnectionSecurity()
    user, password = args.sasl_username or "", args.sasl_password or ""
    if not user:
        raise ValueError("--sasl-mechanism needs --sasl-username and --sasl-password")
    if mechanism == "PLAIN":
        return ConnectionSecurity(authenticate=sasl_authenticator(lambda: PlainClient(user, password)))
    return ConnectionSecurity(authenticate=sasl_authenticator(lambda: ScramClientMechanism(mechanism, user, password)))


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {args.user}: ")
    return sys.stdin.readline().rstrip("\n")


async def _run(args: argparse.Namespace) -> int:
    security = sasl_security(args)
    password = _password(args) if args.action in ("add", "alter") else ""
    if args.action in ("add", "alter") and not password:
        raise ValueError("the password must not be empty")
    client = KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms, security=security)
    async with client:
        conn = await client.any_connection()
        if args.action == "list":
            users = [UserName(name=u) for u in args.users] or None
            resp: Any = await conn.request(DescribeUserScramCredentialsRequest(users=users))
            check(resp.error_code, resp.error_message)
            failed = 0
            for r in sorted(resp.results, key=lambda r: r.user):
                if r.error_code:
                    print(f"{r.user}: {r.error_message}", file=sys.stderr)
                    failed += 1
                    continue
                infos = ", ".join(f"{BY_TYPE[i.mechanism].name}(iterations={i.iterations})" for i in r.credential_infos)
                print(f"{r.user}\t{infos}")
            return EXIT_ERROR if failed else 0
        if args.action == "delete":
            mechanisms = args.mechanism
            if not mechanisms:
                described: Any = await conn.request(
                    DescribeUserScramCredentialsRequest(users=[UserName(name=args.user)])
                )
                result = described.results[0]
                check(result.error_code, result.error_message)
                mechanisms = [BY_TYPE[i.mechanism].name for i in result.credential_infos]
            for name in mechanisms:  # one request per mechanism: Kafka refuses a user twice in one request
                deletion = ScramCredentialDeletion(name=args.user, mechanism=MECHANISMS[name].mechanism_type)
                await _alter(conn, AlterUserScramCredentialsRequest(deletions=[deletion], upsertions=[]))
                print(f"Deleted {name} credential of user {args.user}.")
            return 0
        for name in args.mechanism or MECHANISM_NAMES:
            mech = MECHANISMS[name]
            salt = secrets.token_bytes(32)
            upsertion = ScramCredentialUpsertion(
                name=args.user,
                mechanism=mech.mechanism_type,
                iterations=args.iterations,
                salt=salt,
                salted_password=salted_password(mech, password, salt, max(1, args.iterations)),
            )
            await _alter(conn, AlterUserScramCredentialsRequest(deletions=[], upsertions=[upsertion]))
            print(f"Set {name} credential of user {args.user} (iterations={args.iterations}).")
        return 0


async def _alter(conn: Any, request: AlterUserScramCredentialsRequest) -> None:
    resp: Any = await conn.request(request)
    for r in resp.results:
        check(r.error_code, r.error_message)
