"""AlterUserScramCredentials (51) and DescribeUserScramCredentials (50) through a real broker: the
answers Apache Kafka 4.3.1 gave to the same requests (recorded with interop/apache_kafka.py), and the
credentials stored salted (never the password) in the data dir, kept across a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from interop._common import start_broker
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.security.scram import MECHANISMS, ScramClientMechanism, salted_password
from tests.security.test_sasl_server import sasl_settings
from tests.server.rawclient import RawClient


def up(
    name: str, mech: int = 1, iterations: int = 4096, salt: bytes = b"saltsalt", pw: bytes | None = None
) -> ScramCredentialUpsertion:
    if pw is None:
        m = MECHANISMS["SCRAM-SHA-256" if mech == 1 else "SCRAM-SHA-512"]
        pw = salted_password(m, "pw-value", salt, 4096) if mech in (1, 2) else b"x" * 32
    return ScramCredentialUpsertion(name=name, mechanism=mech, iterations=iterations, salt=salt, salted_password=pw)


def delete(name: str, mech: int) -> ScramCredentialDeletion:
    return ScramCredentialDeletion(name=name, mechanism=mech)


def alter(
    c: RawClient, deletions: list[ScramCredentialDeletion], upsertions: list[ScramCredentialUpsertion]
) -> list[tuple[str, int, str | None]]:
    resp = c.request(AlterUserScramCredentialsRequest(deletions=deletions, upsertions=upsertions), 0)
    return [(r.user, r.error_code, r.error_message) for r in resp.results]


def describe(c: RawClient, users: list[str] | None) -> list[tuple[str, int, str | None, list[tuple[int, int]]]]:
    req = DescribeUserScramCredentialsRequest(users=None if users is None else [UserName(name=u) for u in users])
    resp = c.request(req, 0)
    return [
        (r.user, r.error_code, r.error_message, [(i.mechanism, i.iterations) for i in r.credential_infos])
        for r in resp.results
    ]


DUP = "A user credential cannot be altered twice in the same request"
NOT_FOUND = "Attempt to delete a user credential that does not exist"


def test_answers_as_kafka(tmp_path: Path) -> None:
    b = start_broker(tmp_path / "data")
    try:
        with RawClient(b.bootstrap) as c:
            assert alter(c, [], [up("alice"), up("alice", 2, 8192), up("bob")]) == [
                ("bob", 0, None),
                ("alice", E.DUPLICATE_RESOURCE, DUP),
            ]
            assert describe(c, None) == [("bob", 0, "", [(1, 4096)])]
            assert describe(c, ["alice", "nobody", "bob", "bob"]) == [
                (
                    "bob",
                    E.DUPLICATE_RESOURCE,
                    "Cannot describe SCRAM credentials for the same user twice in a single request: bob",
                    [],
                ),
                ("alice", E.RESOURCE_NOT_FOUND, "Attempt to describe a user credential that does not exist: alice", []),
                (
                    "nobody",
                    E.RESOURCE_NOT_FOUND,
                    "Attempt to describe a user credential that does not exist: nobody",
                    [],
                ),
            ]
            assert alter(c, [], [up("carol", 1, 4095)]) == [("carol", E.UNACCEPTABLE_CREDENTIAL, "Too few iterations")]
            assert alter(c, [], [up("carol", 1, 16385)]) == [
                ("carol", E.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
            ]
            assert alter(c, [], [up("carol", 2, 16384)]) == [("carol", 0, None)]
            assert alter(c, [], [up("dave", 3)]) == [("dave", E.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")]
            assert alter(c, [delete("dave", 0)], []) == [
                ("dave", E.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
            ]
            assert alter(c, [delete("nobody", 1)], []) == [("nobody", E.RESOURCE_NOT_FOUND, NOT_FOUND)]
            assert alter(c, [delete("alice", 1)], [up("alice", 1)]) == [("alice", E.RESOURCE_NOT_FOUND, NOT_FOUND)]
            assert alter(c, [], [up("erin"), up("erin")]) == [("erin", E.DUPLICATE_RESOURCE, DUP)]
            assert alter(c, [], [up("")]) == [("", E.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")]
            assert alter(c, [], [up("frank", salt=b"")]) == [("frank", 0, None)]
            assert alter(c, [], [up("frank", pw=b"")]) == [("frank", E.UNKNOWN_SERVER_ERROR, None)]
            assert alter(c, [delete("bob", 1)], [up("gina", 1, 100)]) == [
                ("bob", 0, None),
                ("gina", E.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
            ]
            assert alter(c, [delete("alice", 2)], []) == [("alice", E.RESOURCE_NOT_FOUND, NOT_FOUND)]
            assert sorted(describe(c, None)) == [("carol", 0, "", [(2, 16384)]), ("frank", 0, "", [(1, 4096)])]
            assert alter(c, [], []) == []
        stored = (tmp_path / "data" / "scram-credentials.json").read_text()
        assert "pw-value" not in stored and "stored_key" in stored
    finally:
        b.stop()
    b = start_broker(tmp_path / "data")
    try:
        with RawClient(b.bootstrap) as c:
            assert sorted(describe(c, None)) == [("carol", 0, "", [(2, 16384)]), ("frank", 0, "", [(1, 4096)])]
    finally:
        b.stop()


def _cli(b_bootstrap: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    auth = ["--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", "admin-secret"]
    cmd = [sys.executable, "-m", "kafkapy", "users", *args, "-b", b_bootstrap, *auth]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, input=stdin)


def _scram_login(bootstrap: str, mechanism: str, user: str, password: str) -> int:
    with RawClient(bootstrap) as c:
        assert c.request(SaslHandshakeRequest(mechanism=mechanism), 1).error_code == 0
        client = ScramClientMechanism(mechanism, user, password)
        first = c.request(SaslAuthenticateRequest(auth_bytes=client.respond(None)), 2)
        if first.error_code:
            return int(first.error_code)
        final = c.request(SaslAuthenticateRequest(auth_bytes=client.respond(first.auth_bytes)), 2)
        if final.error_code == 0:
            client.respond(final.auth_bytes)
            assert client.complete
        return int(final.error_code)


def test_users_cli(tmp_path: Path) -> None:
    b = start_broker(tmp_path / "data", sasl_settings())
    try:
        out = _cli(b.bootstrap, "add", "dana", "--iterations", "8192", stdin="dana-pw\n")
        assert out.returncode == 0, out.stderr
        assert "Set SCRAM-SHA-512 credential of user dana (iterations=8192)." in out.stdout
        out = _cli(b.bootstrap, "list")
        assert out.stdout == "dana\tSCRAM-SHA-256(iterations=8192), SCRAM-SHA-512(iterations=8192)\n", out.stderr
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            assert _scram_login(b.bootstrap, mechanism, "dana", "dana-pw") == 0
        assert _scram_login(b.bootstrap, "SCRAM-SHA-256", "dana", "nope") == E.SASL_AUTHENTICATION_FAILED
        out = _cli(b.bootstrap, "add", "dana", "--iterations", "100", "--password", "x")
        assert out.returncode == 1 and "Too few iterations" in out.stderr
        out = _cli(b.bootstrap, "delete", "dana", "--mechanism", "SCRAM-SHA-512")
        assert out.returncode == 0, out.stderr
        assert _scram_login(b.bootstrap, "SCRAM-SHA-512", "dana", "dana-pw") == E.SASL_AUTHENTICATION_FAILED
        out = _cli(b.bootstrap, "delete", "dana")
        assert out.returncode == 0 and "Deleted SCRAM-SHA-256 credential of user dana." in out.stdout
        out = _cli(b.bootstrap, "list", "dana")
        assert out.returncode == 1 and "does not exist: dana" in out.stderr
    finally:
        b.stop()
