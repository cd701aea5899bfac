"""The bad-input list of issue 15 against a real broker process, each attack next to a healthy
authenticated connection on the same listener.

One broker serves SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER with Kafka's unsecured
tokens), JWT (SASL_PLAINTEXT, OAUTHBEARER signed tokens checked against a file: JWKS) and SASL_SSL
(PLAIN over TLS), with a PLAINTEXT INTERNAL inter-broker listener. For each attack:

- the attacker gets Kafka's answer (the SASL answers below are the ones Apache Kafka 4.3.1 gives to
  the same bytes, recorded with `python -m tests.security.test_bad_input KAFKA_SASL_BOOTSTRAP`) and
  its connection is closed;
- while the broker holds the attacker's answer back (`connection.failed.authentication.delay.ms`),
  the healthy connection is answered, and it still is afterwards;
- the broker logs one line naming the listener, the attacker's address and the mechanism.

Also the pre-authentication frame bound (`sasl.server.max.receive.size`): a size prefix above it
closes the connection without the body being read, as Kafka's InvalidReceiveException does.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker, wait_until
from interop.certs import Pki, broker_pem_settings, make_pki
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.primitives import Message
from kafkapy.security.oauthbearer import client_response, unsecured_token
from kafkapy.security.sasl_plain import plain_client_token
from kafkapy.security.scram import ScramClient
from tests.server.rawclient import RawClient

MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER"
LISTED = "PLAIN,SCRAM-SHA-512,SCRAM-SHA-256,OAUTHBEARER"  # MECHANISMS in SaslHandshake, as Kafka orders them
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
)
SCRAM_PASSWORD = "alice-scram"
DELAY_MS = 1500  # connection.failed.authentication.delay.ms: long enough to see others served meanwhile
MAX_RECEIVE = 4096  # sasl.server.max.receive.size
FAILED = "Authentication failed during authentication due to invalid credentials with SASL mechanism {}"

Answer = tuple[Any, ...]


# -- the attacks: each runs on a fresh connection up to its last request, which it returns unsent


@dataclass(slots=True)
class Step:
    request: Message
    version: int


def _answer(resp: Any) -> Answer:
    """What an attack's answers are compared by: random challenges left out."""
    name = type(resp).__name__.removesuffix("Response")
    if name == "SaslHandshake":
        return (name, ErrorCode(resp.error_code).name, ",".join(resp.mechanisms))
    token = bytes(resp.auth_bytes).decode("utf-8", "replace") if resp.auth_bytes.startswith(b"{") else ""
    return (name, ErrorCode(resp.error_code).name, resp.error_message, token)


def _handshake(c: RawClient, mechanism: str, answers: list[Answer]) -> None:
    answers.append(_answer(c.request(SaslHandshakeRequest(mechanism=mechanism), 1)))


def garbage_plain(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "PLAIN", answers)
    return Step(SaslAuthenticateRequest(auth_bytes=b"garbage"), 2)


def garbage_scram(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "SCRAM-SHA-256", answers)
    return Step(SaslAuthenticateRequest(auth_bytes=b"\xff\x00garbage"), 2)


def _scram_final(c: RawClient, answers: list[Answer]) -> bytes:
    _handshake(c, "SCRAM-SHA-512", answers)
    client = ScramClient("SCRAM-SHA-512", "alice", SCRAM_PASSWORD)
    first = c.request(SaslAuthenticateRequest(auth_bytes=client.first()), 2)
    answers.append(_answer(first))
    return client.final(bytes(first.auth_bytes))


def tampered_scram_nonce(c: RawClient, answers: list[Answer]) -> Step:
    final = _scram_final(c, answers)
    head, _, rest = final.partition(b",r=")
    return Step(SaslAuthenticateRequest(auth_bytes=head + b",r=tampered" + rest), 2)


def tampered_scram_proof(c: RawClient, answers: list[Answer]) -> Step:
    final = _scram_final(c, answers)
    head, _, proof = final.partition(b",p=")
    flipped = (b"B" if proof[:1] == b"A" else b"A") + proof[1:]
    return Step(SaslAuthenticateRequest(auth_bytes=head + b",p=" + flipped), 2)


def unknown_mechanism(c: RawClient, answers: list[Answer]) -> Step:
    return Step(SaslHandshakeRequest(mechanism="KERBEROS-V9"), 1)


def expired_unsecured_jwt(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "OAUTHBEARER", answers)
    token = unsecured_token("alice", lifetime_s=-600)
    answers.append(_answer(c.request(SaslAuthenticateRequest(auth_bytes=client_response(token)), 2)))
    return Step(SaslAuthenticateRequest(auth_bytes=b"\x01"), 2)  # the client's answer to the error challenge


def garbage_oauth(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "OAUTHBEARER", answers)
    return Step(SaslAuthenticateRequest(auth_bytes=b"n,,\x01garbage"), 2)


def scram_unknown_user(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "SCRAM-SHA-256", answers)
    return Step(SaslAuthenticateRequest(auth_bytes=ScramClient("SCRAM-SHA-256", "mallory", "x").first()), 2)


def wrong_plain_password(c: RawClient, answers: list[Answer]) -> Step:
    _handshake(c, "PLAIN", answers)
    return Step(SaslAuthenticateRequest(auth_bytes=plain_client_token("alice", "wrong")), 2)


ATTACKS: dict[str, tuple[Callable[[RawClient, list[Answer]], Step], str]] = {
    "wrong-plain-password": (wrong_plain_password, "PLAIN"),
    "scram-unknown-user": (scram_unknown_user, "SCRAM-SHA-256"),
    "garbage-oauth": (garbage_oauth, "OAUTHBEARER"),
    "garbage-plain": (garbage_plain, "PLAIN"),
    "garbage-scram": (garbage_scram, "SCRAM-SHA-256"),
    "tampered-scram-nonce": (tampered_scram_nonce, "SCRAM-SHA-512"),
    "tampered-scram-proof": (tampered_scram_proof, "SCRAM-SHA-512"),
    "unknown-mechanism": (unknown_mechanism, "KERBEROS-V9"),
    "expired-jwt": (expired_unsecured_jwt, "OAUTHBEARER"),
}

# Apache Kafka 4.3.1's answers to the same bytes (recorded with this module's main()).
KAFKA_ANSWERS: dict[str, list[Answer]] = {
    "wrong-plain-password": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", "Authentication failed: Invalid username or password", ""),
    ],
    "scram-unknown-user": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", FAILED.format("SCRAM-SHA-256"), ""),
    ],
    "garbage-oauth": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", FAILED.format("OAUTHBEARER"), ""),
    ],
    "garbage-plain": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", "Invalid SASL/PLAIN response: expected 3 tokens, got 1", ""),
    ],
    "garbage-scram": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", FAILED.format("SCRAM-SHA-256"), ""),
    ],
    "tampered-scram-nonce": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "NONE", "", ""),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", FAILED.format("SCRAM-SHA-512"), ""),
    ],
    "tampered-scram-proof": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "NONE", "", ""),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", FAILED.format("SCRAM-SHA-512"), ""),
    ],
    "unknown-mechanism": [("SaslHandshake", "UNSUPPORTED_SASL_MECHANISM", LISTED)],
    "expired-jwt": [
        ("SaslHandshake", "NONE", LISTED),
        ("SaslAuthenticate", "NONE", "", '{"status":"invalid_token"}'),
        ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", '{"status":"invalid_token"}', ""),
    ],
}


@dataclass(slots=True)
class Outcome:
    answers: list[Answer]
    closed: bool
    peer: str  # the attacker's address as the broker sees it
    held_back: bool  # the last answer was not there yet when the healthy connection got its answer


def readable(sock: socket.socket) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])


def run_attack(
    connect: Callable[[], RawClient],
    attack: Callable[[RawClient, list[Answer]], Step],
    healthy: RawClient | None = None,
) -> Outcome:
    with connect() as c:
        answers: list[Answer] = []
        last = attack(c, answers)
        c.correlation_id += 1
        c.send_raw(encode_request(last.request, last.version, c.correlation_id, client_id="rawclient"))
        held_back = False
        if healthy is not None:
            assert healthy.request(MetadataRequest(topics=[]), 12).brokers
            held_back = not readable(c.sock)
        _, resp = decode_response(last.request.API_KEY, last.version, c.read_frame())
        answers.append(_answer(resp))
        host, port = c.sock.getsockname()[:2]
        return Outcome(answers, c.is_closed_by_peer(), f"{host}:{port}", held_back)


# -- the broker


@dataclass(slots=True)
class Broker:
    process: BrokerProcess
    listeners: dict[str, str]  # name -> host:port
    pki: Pki

    def raw(self, listener: str = "SASL_PLAINTEXT") -> RawClient:
        c = RawClient(self.listeners[listener])
        if listener == "SASL_SSL":
            context = ssl.create_default_context(cafile=str(self.pki.ca))
            c.sock = context.wrap_socket(c.sock, server_hostname="localhost")
        return c

    def healthy(self, listener: str = "SASL_PLAINTEXT") -> RawClient:
        c = self.raw(listener)
        assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == ErrorCode.NONE
        auth = c.request(SaslAuthenticateRequest(auth_bytes=plain_client_token("alice", "alice-secret")), 2)
        assert auth.error_code == ErrorCode.NONE
        return c

    def events(self, peer: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (peer is None or event.get("peer") == peer):
                found.append(event)
        return found


def _jwks(directory: Path) -> tuple[Any, Any, str]:
    """An ES256 key in a file: JWKS, and another key the JWKS does not hold."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))  # type: ignore[attr-defined]
    jwk.update(kid="k1", alg="ES256", use="sig")
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return key, other, path.as_uri()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, str]:
    return _jwks(tmp_path_factory.mktemp("jwks"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Any, Any, str]) -> Iterator[Broker]:
    root = tmp_path_factory.mktemp("bad-input")
    pki = make_pki(root / "pki")
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,JWT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,JWT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
        "INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": MECHANISMS,
        "listener.name.jwt.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.jwt.oauthbearer.sasl.server.callback.handler.class": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
        ),
        "listener.name.jwt.sasl.oauthbearer.jwks.endpoint.url": keys[2],
        "listener.name.jwt.sasl.oauthbearer.expected.audience": "kafka",
        "connection.failed.authentication.delay.ms": str(DELAY_MS),
        "sasl.server.max.receive.size": str(MAX_RECEIVE),
        "kafkapy.ssl.handshake.timeout.ms": "1500",
        **broker_pem_settings(pki, "SASL_SSL"),
    }
    process = start_broker(root / "data", settings)
    try:
        ready = next(e for e in Broker(process, {}, pki).events() if e.get("event") == "broker_ready")
        listeners = dict(part.split("://", 1) for part in str(ready["listen"]).split(","))
        subprocess.run(
            [sys.executable, "-m", "kafkapy", "users", "add", "alice", "--mechanism", "SCRAM-SHA-512"]
            + ["--password", SCRAM_PASSWORD, "--bootstrap-server", listeners["INTERNAL"]],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield Broker(process, listeners, pki)
    finally:
        process.stop()


def _failure_logged(broker: Broker, peer: str, listener: str, mechanism: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for event in reversed(broker.events(peer)):  # the latest: a port may have served an earlier test
            if str(event.get("event", "")).startswith("authentication failed"):
                return event
        return None

    assert wait_until(found, 5), f"no 'authentication failed' line for {peer}"
    event = found()
    assert event is not None
    assert (event["listener"], event["mechanism"], event["level"]) == (listener, mechanism, "warning"), event
    return event


@pytest.mark.parametrize("name", list(ATTACKS))
def test_sasl_attack(broker: Broker, name: str) -> None:
    attack, mechanism = ATTACKS[name]
    healthy = broker.healthy()
    try:
        started = time.monotonic()
        outcome = run_attack(broker.raw, attack, healthy)
        assert outcome.answers == KAFKA_ANSWERS[name]
        assert outcome.closed, "the attacker's connection stays open"
        assert time.monotonic() - started >= DELAY_MS / 1000
        assert outcome.held_back, "the healthy connection waited for the attacker's failure delay"
        _failure_logged(broker, outcome.peer, "SASL_PLAINTEXT", mechanism)
        md = healthy.request(MetadataRequest(topics=[MetadataRequestTopic(name="t")]), 12)
        assert md.brokers  # still served
    finally:
        healthy.close()


def _jwt_login(broker: Broker, token: str, healthy: RawClient | None) -> Outcome:
    def attack(c: RawClient, answers: list[Answer]) -> Step:
        _handshake(c, "OAUTHBEARER", answers)
        answers.append(_answer(c.request(SaslAuthenticateRequest(auth_bytes=client_response(token)), 2)))
        return Step(SaslAuthenticateRequest(auth_bytes=b"\x01"), 2)

    return run_attack(lambda: broker.raw("JWT"), attack, healthy)


def test_badly_signed_and_expired_signed_jwt(broker: Broker, keys: tuple[Any, Any, str]) -> None:
    import jwt

    key, other, _ = keys
    now = int(time.time())
    claims = {"sub": "svc", "aud": "kafka", "iat": now, "exp": now + 60}
    with broker.raw("JWT") as healthy:
        good = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
        assert healthy.request(SaslHandshakeRequest(mechanism="OAUTHBEARER"), 1).error_code == ErrorCode.NONE
        auth = healthy.request(SaslAuthenticateRequest(auth_bytes=client_response(good)), 2)
        assert auth.error_code == ErrorCode.NONE and auth.session_lifetime_ms > 0
        for token in (
            jwt.encode(claims, other, algorithm="ES256", headers={"kid": "k1"}),  # signed by another key
            jwt.encode({**claims, "exp": now - 600}, key, algorithm="ES256", headers={"kid": "k1"}),  # expired
        ):
            outcome = _jwt_login(broker, token, healthy)
            assert outcome.answers == [
                ("SaslHandshake", "NONE", "OAUTHBEARER"),
                ("SaslAuthenticate", "NONE", "", '{"status":"invalid_token"}'),
                ("SaslAuthenticate", "SASL_AUTHENTICATION_FAILED", '{"status":"invalid_token"}', ""),
            ]
            assert outcome.closed and outcome.held_back
            _failure_logged(broker, outcome.peer, "JWT", "OAUTHBEARER")
            rejected = [e for e in broker.events(outcome.peer) if e.get("event") == "OAUTHBEARER token rejected"]
            assert rejected and rejected[0]["listener"] == "JWT", broker.events(outcome.peer)
        assert healthy.request(MetadataRequest(topics=[]), 12).brokers


def test_sasl_ssl_attack_over_tls(broker: Broker) -> None:
    """The same failure through TLS: a wrong PLAIN password on SASL_SSL."""

    def wrong_password(c: RawClient, answers: list[Answer]) -> Step:
        _handshake(c, "PLAIN", answers)
        return Step(SaslAuthenticateRequest(auth_bytes=plain_client_token("alice", "wrong")), 2)

    healthy = broker.healthy("SASL_SSL")
    try:
        outcome = run_attack(lambda: broker.raw("SASL_SSL"), wrong_password, healthy)
        assert outcome.answers[-1] == (
            "SaslAuthenticate",
            "SASL_AUTHENTICATION_FAILED",
            "Authentication failed: Invalid username or password",
            "",
        )
        assert outcome.closed and outcome.held_back
        _failure_logged(broker, outcome.peer, "SASL_SSL", "PLAIN")
        assert healthy.request(MetadataRequest(topics=[]), 12).brokers
    finally:
        healthy.close()


def _tls_event(broker: Broker, name: str, peer: str) -> dict[str, Any]:
    assert wait_until(lambda: any(e.get("event") == name for e in broker.events(peer)), 5), broker.events(peer)
    return next(e for e in reversed(broker.events(peer)) if e.get("event") == name)


def test_plaintext_bytes_on_the_sasl_ssl_port(broker: Broker) -> None:
    healthy = broker.healthy("SASL_SSL")
    try:
        with broker.raw() as plain:  # a plaintext client pointed at the TLS port
            plain.sock.close()
            host, port = broker.listeners["SASL_SSL"].rsplit(":", 1)
            plain.sock = socket.create_connection((host, int(port)), timeout=10)
            plain.send_raw(encode_request(SaslHandshakeRequest(mechanism="PLAIN"), 1, 1, client_id="plain"))
            data = plain.sock.recv(4096)
            assert data == b"" or data.startswith(b"\x15"), data  # a TLS alert or nothing, never a Kafka answer
            peer = "{}:{}".format(*plain.sock.getsockname()[:2])
            assert healthy.request(MetadataRequest(topics=[]), 12).brokers
            assert plain.is_closed_by_peer()
        event = _tls_event(broker, "tls_handshake_failed", peer)
        assert event["listener"] == "SASL_SSL"
        assert healthy.request(MetadataRequest(topics=[]), 12).brokers
    finally:
        healthy.close()


def test_tls_handshake_that_never_finishes(broker: Broker) -> None:
    healthy = broker.healthy("SASL_SSL")
    try:
        host, port = broker.listeners["SASL_SSL"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as stalled:
            stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
            peer = "{}:{}".format(*stalled.getsockname()[:2])
            assert healthy.request(MetadataRequest(topics=[]), 12).brokers  # served while it stalls
            started = time.monotonic()
            try:
                while stalled.recv(4096):  # at most an alert, then the close
                    pass
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 5
        event = _tls_event(broker, "tls_handshake_timeout", peer)
        assert event["listener"] == "SASL_SSL"
        assert healthy.request(MetadataRequest(topics=[]), 12).brokers
    finally:
        healthy.close()


def main(argv: list[str]) -> int:
    """Print Kafka's answers to ATTACKS: argv[0] is the bootstrap of a SASL_PLAINTEXT listener with
    MECHANISMS enabled, PLAIN_JAAS, and SCRAM-SHA-512 user alice (password SCRAM_PASSWORD)."""
    for name, (attack, _) in ATTACKS.items():
        outcome = run_attack(lambda: RawClient(argv[0]), attack)
        print(name, json.dumps(outcome.answers), "closed" if outcome.closed else "OPEN")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


# -- the pre-authentication frame bound (sasl.server.max.receive.size)


def _invalid_receive(broker: Broker, peer: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in reversed(broker.events(peer))
                if e.get("event") == "authentication failed: invalid receive size"
            ),
            None,
        )

    assert wait_until(found, 5), broker.events(peer)
    event = found()
    assert event is not None
    return event


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_size_prefix_above_the_bound_closes_without_reading_the_body(broker: Broker, listener: str) -> None:
    """Kafka 4.3.1 does the same (checked with a raw socket): a size prefix above the bound, even alone,
    fails the authentication ('Failing SASL authentication due to invalid receive size') and the
    connection closes after the failure delay; a negative size too."""
    healthy = broker.healthy(listener)
    try:
        for size in (100_000_000, MAX_RECEIVE + 1, -1):
            with broker.raw(listener) as c:
                started = time.monotonic()
                c.send_raw(struct.pack(">i", size))  # and no body
                peer = "{}:{}".format(*c.sock.getsockname()[:2])
                assert healthy.request(MetadataRequest(topics=[]), 12).brokers
                assert c.is_closed_by_peer(10)
                # the event loop keeps time in whole milliseconds (uvloop): allow it to fire up to 10 ms early
                assert DELAY_MS / 1000 - 0.01 <= time.monotonic() - started < 8
            event = _invalid_receive(broker, peer)
            assert (event["listener"], event["size"], event["limit"]) == (listener, size, MAX_RECEIVE)
            assert event["level"] == "warning" and event["mechanism"] is None
    finally:
        healthy.close()


def test_bound_applies_after_the_handshake_and_names_the_mechanism(broker: Broker) -> None:
    with broker.raw() as c:
        assert c.request(SaslHandshakeRequest(mechanism="SCRAM-SHA-256"), 1).error_code == ErrorCode.NONE
        c.send_raw(struct.pack(">i", MAX_RECEIVE * 10))
        peer = "{}:{}".format(*c.sock.getsockname()[:2])
        assert c.is_closed_by_peer(10)
    assert _invalid_receive(broker, peer)["mechanism"] == "SCRAM-SHA-256"


def test_frame_of_exactly_the_bound_is_read(broker: Broker) -> None:
    """The bound is inclusive (as Kafka's): a SaslHandshake frame of MAX_RECEIVE bytes is answered."""
    base = len(encode_request(SaslHandshakeRequest(mechanism=""), 1, 1, client_id="rawclient")) - 4
    mechanism = "X" * (MAX_RECEIVE - base)
    frame = encode_request(SaslHandshakeRequest(mechanism=mechanism), 1, 1, client_id="rawclient")
    assert len(frame) - 4 == MAX_RECEIVE
    with broker.raw() as c:
        c.send_raw(frame)
        _, resp = decode_response(SaslHandshakeRequest.API_KEY, 1, c.read_frame())
        assert resp.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_larger_requests_after_authentication(broker: Broker, listener: str) -> None:
    names = [MetadataRequestTopic(name=f"absent-topic-{i:05d}") for i in range(600)]
    request = MetadataRequest(topics=names, allow_auto_topic_creation=False)
    assert len(encode_request(request, 12, 1, client_id="rawclient")) > 4 * MAX_RECEIVE
    with broker.healthy(listener) as c:
        md = c.request(request, 12)
        assert len(md.topics) == len(names)


def test_handshake_lists_mechanisms_in_kafkas_order() -> None:
    """Apache Kafka 4.3.1 answered ['SCRAM-SHA-512', 'PLAIN', 'SCRAM-SHA-256', 'OAUTHBEARER'] for
    sasl.enabled.mechanisms=OAUTHBEARER,SCRAM-SHA-512,PLAIN,SCRAM-SHA-256, and LISTED for MECHANISMS."""
    from kafkapy.server.sasl_setup import handshake_order

    assert handshake_order(["OAUTHBEARER", "SCRAM-SHA-512", "PLAIN", "SCRAM-SHA-256"]) == [
        "SCRAM-SHA-512",
        "PLAIN",
        "SCRAM-SHA-256",
        "OAUTHBEARER",
    ]
    assert handshake_order(MECHANISMS.split(",")) == LISTED.split(",")
    assert handshake_order(["PLAIN", "PLAIN"]) == ["PLAIN"]
