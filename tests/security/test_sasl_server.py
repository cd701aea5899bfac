"""SASL on a real broker process, with raw requests: the pre-authentication gate, Kafka's answers to
each failure, the v0 handshake's bare-token framing, and the start-up checks."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop._common import BrokerProcess, start_broker
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.security.sasl_plain import plain_client_token
from tests.server.rawclient import RawClient

PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
)


# sasl.enabled.mechanisms below as Kafka 4.3.1's SaslHandshake lists them (its HashMap's order)
KAFKA_ORDER = ["PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256", "OAUTHBEARER"]


def sasl_settings(**extra: str) -> dict[str, str]:
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "300",
    }
    settings.update(extra)
    return settings


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(
        tmp_path_factory.mktemp("sasl") / "data", sasl_settings(**{"sasl.server.max.receive.size": "4096"})
    )
    try:
        yield b
    finally:
        b.stop()


def authenticate_plain(c: RawClient, user: str, password: str, version: int = 2) -> object:
    hs = c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1)
    assert hs.error_code == ErrorCode.NONE
    assert hs.mechanisms == KAFKA_ORDER
    return c.request(SaslAuthenticateRequest(auth_bytes=plain_client_token(user, password)), version)


def test_plain_then_requests(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        assert c.request(ApiVersionsRequest(), 3).error_code == ErrorCode.NONE
        auth = authenticate_plain(c, "alice", "alice-secret")
        assert auth.error_code == ErrorCode.NONE and auth.session_lifetime_ms == 0
        md = c.request(MetadataRequest(topics=[]), 12)
        assert md.brokers
        again = c.request(SaslAuthenticateRequest(auth_bytes=b"x"), 2)
        assert again.error_code == ErrorCode.ILLEGAL_SASL_STATE


def test_metadata_before_authentication_closes(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        c.send_raw(encode_request(MetadataRequest(topics=[]), 12, 1, client_id="raw"))
        assert c.is_closed_by_peer()
    with RawClient(broker.bootstrap) as c:  # after the handshake: answered ILLEGAL_SASL_STATE, then closed (Kafka)
        assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == ErrorCode.NONE
        md = c.request(MetadataRequest(topics=[MetadataRequestTopic(name="t")]), 12)
        assert [t.error_code for t in md.topics] == [ErrorCode.ILLEGAL_SASL_STATE]
        assert c.is_closed_by_peer()
    assert "Unexpected Kafka request of type METADATA during SASL handshake." in broker.log_tail(400)


def test_wrong_password_fails_after_the_delay_and_closes(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        started = time.monotonic()
        auth = authenticate_plain(c, "alice", "wrong")
        assert time.monotonic() - started >= 0.3
        assert auth.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert auth.error_message == "Authentication failed: Invalid username or password"
        assert c.is_closed_by_peer()
    log = broker.log_tail(400)
    assert '"mechanism": "PLAIN"' in log and '"listener": "SASL_PLAINTEXT"' in log


def test_unknown_mechanism(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        hs = c.request(SaslHandshakeRequest(mechanism="GSSAPI"), 1)
        assert hs.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert hs.mechanisms == KAFKA_ORDER
        assert c.is_closed_by_peer()


def test_garbage_tokens(broker: BrokerProcess) -> None:
    for mechanism, token in (("PLAIN", b"garbage"), ("SCRAM-SHA-256", b"\xff\x00garbage"), ("OAUTHBEARER", b"x")):
        with RawClient(broker.bootstrap) as c:
            assert c.request(SaslHandshakeRequest(mechanism=mechanism), 1).error_code == ErrorCode.NONE
            auth = c.request(SaslAuthenticateRequest(auth_bytes=token), 1)
            assert auth.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED, mechanism
            assert c.is_closed_by_peer()


def test_authenticate_before_handshake_closes(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        c.send_raw(encode_request(SaslAuthenticateRequest(auth_bytes=b"x"), 1, 1, client_id="raw"))
        assert c.is_closed_by_peer()


def test_frame_above_max_receive_size_closes(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        c.send_raw(struct.pack(">i", 5000) + b"\0" * 5000)
        assert c.is_closed_by_peer()


def test_handshake_v0_bare_tokens(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as c:
        assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 0).error_code == ErrorCode.NONE
        token = plain_client_token("admin", "admin-secret")
        c.send_raw(struct.pack(">i", len(token)) + token)
        assert c.read_frame() == b""  # PLAIN's empty challenge, as a bare frame
        assert c.request(MetadataRequest(topics=[]), 1).brokers
    with RawClient(broker.bootstrap) as c:
        assert c.request(SaslHandshakeRequest(mechanism="PLAIN"), 0).error_code == ErrorCode.NONE
        token = plain_client_token("admin", "nope")
        c.send_raw(struct.pack(">i", len(token)) + token)
        assert c.is_closed_by_peer()


def test_other_connections_unaffected(broker: BrokerProcess) -> None:
    with RawClient(broker.bootstrap) as good, RawClient(broker.bootstrap) as bad:
        assert authenticate_plain(good, "admin", "admin-secret").error_code == ErrorCode.NONE
        bad.send_raw(b"\x00\x00\x00\x04garb")
        assert bad.is_closed_by_peer()
        assert good.request(MetadataRequest(topics=[]), 12).brokers


def _start_fails(tmp_path: Path, settings: dict[str, str]) -> str:
    with pytest.raises(RuntimeError) as info:
        start_broker(tmp_path / "data", settings, ready_timeout=20)
    return str(info.value)


def test_gssapi_default_refused(tmp_path: Path) -> None:
    settings = sasl_settings()
    del settings["sasl.enabled.mechanisms"]
    out = _start_fails(tmp_path, settings)
    assert "GSSAPI (Kerberos, Kafka's default sasl.enabled.mechanisms) is not supported" in out


def test_plain_without_jaas_refused(tmp_path: Path) -> None:
    settings = sasl_settings()
    del settings["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert "enables PLAIN but has no JAAS config" in _start_fails(tmp_path, settings)


def test_cli_help_still_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kafkapy", "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
