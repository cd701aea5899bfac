"""Delegation tokens (APIs 38-41 and SCRAM with tokenauth=true): one scenario with raw requests,
recorded against Apache Kafka 4.3.1 and compared with kafkapy.

Both brokers: a SASL_PLAINTEXT listener with PLAIN users admin / alice / bob and SCRAM-SHA-256 (for
the tokens), a PLAINTEXT listener, the StandardAuthorizer with User:admin (and User:ANONYMOUS) as super users, and
`delegation.token.secret.key` set; a second run without the key gives the disabled answers. The
answers are normalised: timestamps as differences (bucketed where a clock is involved), token ids and
HMACs by their length.

    python -m interop.diff_delegation_tokens record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from interop._common import load_golden, save_golden
from kafkapy.protocol.messages.create_delegation_token_request import (
    CreatableRenewers,
    CreateDelegationTokenRequest,
)
from kafkapy.protocol.messages.describe_delegation_token_request import (
    DescribeDelegationTokenOwner,
    DescribeDelegationTokenRequest,
)
from kafkapy.protocol.messages.expire_delegation_token_request import ExpireDelegationTokenRequest
from kafkapy.protocol.messages.renew_delegation_token_request import RenewDelegationTokenRequest
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.security.scram import ScramClient
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "delegation_tokens.json"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    + " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
    + ";"
)
SECRET = "diff-token-secret"
# Kafka's tokens reach the broker's cache (which Describe and authentication read) and the controller's
# (renew, expire) through the metadata log a moment after the answer: the scenario waits this long
SETTLE_S = 1.5


def broker_settings(enabled: bool) -> dict[str, str]:
    """The settings both brokers share (listeners are each harness's own)."""
    settings = {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin",  # ANONYMOUS: Kafka's own PLAINTEXT controller link
    }
    if enabled:
        settings["delegation.token.secret.key"] = SECRET
    return settings


def login(bootstrap: str, user: str) -> RawClient:
    c = RawClient(bootstrap)
    assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
    auth = c.request(SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{USERS[user]}".encode()), 2)
    assert auth.error_code == 0, auth
    return c


def token_login(bootstrap: str, token_id: str, mac: bytes) -> tuple[RawClient, dict[str, Any]]:
    c = RawClient(bootstrap)
    c.request(SaslHandshakeRequest(mechanism="SCRAM-SHA-256"), 1)
    client = ScramClient("SCRAM-SHA-256", token_id, base64.b64encode(mac).decode(), extensions={"tokenauth": "true"})
    first = c.request(SaslAuthenticateRequest(auth_bytes=client.first()), 2)
    if first.error_code:
        return c, {"error": first.error_code}
    final = c.request(SaslAuthenticateRequest(auth_bytes=client.final(bytes(first.auth_bytes))), 2)
    return c, {"error": final.error_code, "session_lifetime_set": final.session_lifetime_ms > 0}


def _now() -> int:
    return int(time.time() * 1000)


def _rel(ts: int, now: int) -> Any:
    """A timestamp relative to now, bucketed by minutes (-1 and 0 kept as they are)."""
    if ts in (-1, 0):
        return ts
    return f"now{(ts - now) // 60_000:+d}min"


def create(c: RawClient, owner: str | None = None, renewers: tuple[str, ...] = (), max_life: int = -1) -> Any:
    kind, _, name = owner.partition(":") if owner else ("", "", "")
    req = CreateDelegationTokenRequest(
        owner_principal_type=kind or None,
        owner_principal_name=name or None,
        renewers=[
            CreatableRenewers(principal_type=r.partition(":")[0], principal_name=r.partition(":")[2]) for r in renewers
        ],
        max_lifetime_ms=max_life,
    )
    return c.request(req, 3)


def shape_create(r: Any) -> dict[str, Any]:
    issue = r.issue_timestamp_ms
    return {
        "error": r.error_code,
        "owner": f"{r.principal_type}:{r.principal_name}",
        "requester": f"{r.token_requester_principal_type}:{r.token_requester_principal_name}",
        "issue": issue if issue in (-1, 0) else "set",
        "expiry-issue": r.expiry_timestamp_ms - issue if issue > 0 else r.expiry_timestamp_ms,
        "max-issue": r.max_timestamp_ms - issue if issue > 0 else r.max_timestamp_ms,
        "token_id_len": len(r.token_id),
        "hmac_len": len(r.hmac),
    }


def renew(c: RawClient, mac: bytes, period: int = -1) -> dict[str, Any]:
    now = _now()
    r = c.request(RenewDelegationTokenRequest(hmac=mac, renew_period_ms=period), 2)
    return {"error": r.error_code, "expiry": _rel(r.expiry_timestamp_ms, now)}


def expire(c: RawClient, mac: bytes, period: int = -1) -> dict[str, Any]:
    now = _now()
    r = c.request(ExpireDelegationTokenRequest(hmac=mac, expiry_time_period_ms=period), 2)
    return {"error": r.error_code, "expiry": _rel(r.expiry_timestamp_ms, now)}


def describe(c: RawClient, owners: list[str] | None, names: dict[str, str]) -> dict[str, Any]:
    req = DescribeDelegationTokenRequest(
        owners=None
        if owners is None
        else [
            DescribeDelegationTokenOwner(principal_type=o.partition(":")[0], principal_name=o.partition(":")[2])
            for o in owners
        ]
    )
    r = c.request(req, 3)
    seen = sorted(names.get(t.token_id, "other") for t in r.tokens)
    details = {}
    for t in r.tokens:
        if t.token_id in names:
            details[names[t.token_id]] = {
                "owner": f"{t.principal_type}:{t.principal_name}",
                "requester": f"{t.token_requester_principal_type}:{t.token_requester_principal_name}",
                "renewers": [f"{x.principal_type}:{x.principal_name}" for x in t.renewers],
                "hmac_len": len(t.hmac),
                "max-issue": t.max_timestamp - t.issue_timestamp,
            }
    return {"error": r.error_code, "tokens": seen, "details": details}


def run(sasl: str, plaintext: str, enabled: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(plaintext) as anon:
        out["plaintext create"] = shape_create(create(anon))
        out["plaintext renew"] = renew(anon, b"x")
        out["plaintext expire"] = expire(anon, b"x")
        out["plaintext describe"] = describe(anon, None, {})
    alice, bob, admin = login(sasl, "alice"), login(sasl, "bob"), login(sasl, "admin")
    try:
        first = create(alice, renewers=("User:admin",))
        out["create"] = shape_create(first)
        if not enabled:
            out["renew"] = renew(alice, b"x")
            out["expire"] = expire(alice, b"x")
            out["describe"] = describe(alice, None, {})
            out["create for another owner"] = shape_create(create(alice, owner="User:bob"))
            out["create bad renewer"] = shape_create(create(alice, renewers=("Group:g",)))
            return out
        mac = bytes(first.hmac)
        names = {first.token_id: "alice-1"}
        out["create for another owner, no ACL"] = shape_create(create(alice, owner="User:bob"))
        for_alice = create(admin, owner="User:alice")
        names[for_alice.token_id] = "admin-for-alice"
        out["create for another owner, super user"] = shape_create(for_alice)
        out["create bad renewer"] = shape_create(create(alice, renewers=("Group:g",)))
        short = create(alice, max_life=300_000)
        names[short.token_id] = "alice-short"
        out["create short"] = shape_create(short)
        time.sleep(SETTLE_S)
        out["renew short past max"] = renew(alice, bytes(short.hmac), 3_600_000)
        out["describe alice all"] = describe(alice, None, names)
        out["describe alice owners=[]"] = describe(alice, [], names)
        out["describe alice owners=admin"] = describe(alice, ["User:admin"], names)
        out["describe bob all"] = describe(bob, None, names)
        out["describe admin all"] = describe(admin, None, names)
        out["renew unknown"] = renew(alice, b"no-such-hmac")
        out["expire unknown"] = expire(alice, b"no-such-hmac")
        out["renew by bob"] = renew(bob, mac)
        out["expire by bob"] = expire(bob, mac)
        out["renew by renewer"] = renew(admin, mac, 120_000)
        out["renew by owner"] = renew(alice, mac)
        time.sleep(SETTLE_S)
        tok, auth = token_login(sasl, first.token_id, mac)
        out["token auth"] = auth
        with tok:
            try:
                out["token conn create"] = shape_create(create(tok))
                out["token conn renew"] = renew(tok, mac)
                out["token conn describe"] = describe(tok, None, names)
            except ConnectionError:
                out["token conn"] = "closed"
        bad, auth = token_login(sasl, first.token_id, b"wrong" + mac)
        bad.close()
        out["token auth wrong hmac"] = auth
        out["expire now"] = expire(alice, mac, 0)
        time.sleep(SETTLE_S)
        out["renew expired"] = renew(alice, mac)
        out["expire expired"] = expire(alice, mac, 1000)
        gone, auth = token_login(sasl, first.token_id, mac)
        with gone:
            out["token auth expired"] = auth
            try:  # the session ends with the token: the next request closes the connection
                describe(gone, None, names)
                out["token conn expired"] = "open"
            except ConnectionError:
                out["token conn expired"] = "closed"
        out["expire removes"] = expire(alice, bytes(short.hmac), -1)
        out["renew removed"] = renew(alice, bytes(short.hmac))
    finally:
        for c in (alice, bob, admin):
            c.close()
    return out


def record() -> Path:
    """Run the scenario against Apache Kafka 4.3.1 (with and without a secret key) and save the answers."""
    from interop import apache_kafka

    answers: dict[str, Any] = {}
    for enabled in (True, False):
        ports = [apache_kafka.free_port() for _ in range(3)]
        picks = iter(ports[:2])
        original = apache_kafka.free_port
        apache_kafka.free_port = lambda host="127.0.0.1", picks=picks: next(picks)  # type: ignore[misc]
        try:
            kafka = apache_kafka.start_kafka(
                Path(tempfile.mkdtemp(prefix="tokens-")),
                {
                    "listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},CONTROLLER://127.0.0.1:{ports[1]},"
                    f"SASL_PLAINTEXT://127.0.0.1:{ports[2]}",
                    "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports[0]},SASL_PLAINTEXT://127.0.0.1:{ports[2]}",
                    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                    "SASL_PLAINTEXT:SASL_PLAINTEXT",
                    **broker_settings(enabled),
                },
            )
        finally:
            apache_kafka.free_port = original
        try:
            answers["enabled" if enabled else "disabled"] = run(f"127.0.0.1:{ports[2]}", kafka.bootstrap, enabled)
        finally:
            kafka.stop()
        answers["_meta"] = {"kafka": kafka.version}
    return save_golden(GOLDEN, answers)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        print(record())
    else:
        print(__doc__)
