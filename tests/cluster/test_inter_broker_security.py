"""The security of broker-to-broker connections (kafkapy.cluster.inter_broker): TLS from the
inter-broker listener's ssl.* settings, SASL with sasl.mechanism.inter.broker.protocol and the
listener's JAAS login; every set-up that cannot work refuses start-up with one line naming the key.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interop.certs import KEY_PASSWORD, Pki, broker_pem_settings, make_pki
from kafkapy.client import PLAINTEXT_SECURITY
from kafkapy.cluster.inter_broker import MECHANISM_KEY, inter_broker_security
from kafkapy.config import BrokerConfig, ConfigError
from kafkapy.security.scram import ScramClientMechanism
from kafkapy.testing import READY_MARKER

SCRAM_LOGIN = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="b-pw";'
PLAIN_LOGIN = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="broker" password="b-pw" user_broker="b-pw";'
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), clients=())


def config(protocol: str, **pairs: str) -> BrokerConfig:
    """One listener INTERNAL of `protocol`, the inter-broker listener."""
    base = {
        "listeners": "INTERNAL://127.0.0.1:0",
        "advertised.listeners": "INTERNAL://127.0.0.1:9093",
        "listener.security.protocol.map": f"INTERNAL:{protocol}",
        "inter.broker.listener.name": "INTERNAL",
    }
    base.update(pairs)
    return BrokerConfig.from_pairs(list(base.items()))


def refusal(cfg: BrokerConfig) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        inter_broker_security(cfg)
    return info.value


def test_plaintext_needs_nothing() -> None:
    assert inter_broker_security(config("PLAINTEXT")) is PLAINTEXT_SECURITY


def test_kafka_default_mechanism_gssapi_is_refused() -> None:
    e = refusal(config("SASL_PLAINTEXT", **{"sasl.enabled.mechanisms": "SCRAM-SHA-512"}))
    assert e.key == MECHANISM_KEY
    assert "GSSAPI" in e.message and MECHANISM_KEY in e.message and "not supported" in e.message


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "DIGEST-MD5"])
def test_mechanism_kafkapy_cannot_log_in_with_is_refused(mechanism: str) -> None:
    e = refusal(config("SASL_PLAINTEXT", **{MECHANISM_KEY: mechanism, "sasl.enabled.mechanisms": mechanism}))
    assert e.key == MECHANISM_KEY and mechanism in e.message and "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" in e.message


def test_mechanism_not_enabled_on_the_listener_gets_kafkas_message() -> None:
    cfg = config(
        "SASL_PLAINTEXT",
        **{
            MECHANISM_KEY: "SCRAM-SHA-512",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",  # the listener's own list wins
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.scram-sha-512.sasl.jaas.config": SCRAM_LOGIN,
        },
    )
    e = refusal(cfg)
    assert e.key == MECHANISM_KEY
    assert e.kafka_message == (
        "sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms "
        "when SASL is used for inter-broker communication"
    )
    assert e.message.startswith(e.kafka_message) and "INTERNAL" in e.message and "PLAIN" in e.message


def test_missing_login_names_the_listener_key() -> None:
    cfg = config("SASL_PLAINTEXT", **{MECHANISM_KEY: "SCRAM-SHA-512", "sasl.enabled.mechanisms": "SCRAM-SHA-512"})
    e = refusal(cfg)
    assert e.key == "listener.name.internal.scram-sha-512.sasl.jaas.config"
    assert e.key in e.message and "username" in e.message


@pytest.mark.parametrize(
    "jaas",
    [
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker";',
        "org.apache.kafka.common.security.scram.ScramLoginModule required",  # no ';'
    ],
)
def test_unusable_login_names_the_listener_key(jaas: str) -> None:
    cfg = config(
        "SASL_PLAINTEXT",
        **{
            MECHANISM_KEY: "SCRAM-SHA-512",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.internal.scram-sha-512.sasl.jaas.config": jaas,
        },
    )
    e = refusal(cfg)
    assert e.key == "listener.name.internal.scram-sha-512.sasl.jaas.config" and e.key in e.message


def _mechanism(cfg: BrokerConfig) -> object:
    """The client mechanism the authenticator would use (built as inter_broker_security does)."""
    from kafkapy.cluster.inter_broker import sasl_login

    return sasl_login(cfg, "INTERNAL")()


def test_login_from_the_listener_mechanism_key_then_sasl_jaas_config() -> None:
    scoped = config(
        "SASL_PLAINTEXT",
        **{
            MECHANISM_KEY: "SCRAM-SHA-512",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.internal.scram-sha-512.sasl.jaas.config": SCRAM_LOGIN,
            "sasl.jaas.config": SCRAM_LOGIN.replace('"broker"', '"other"'),
        },
    )
    security = inter_broker_security(scoped)
    assert security.ssl_context is None and security.authenticate is not None
    mech = _mechanism(scoped)
    assert isinstance(mech, ScramClientMechanism) and mech.name == "SCRAM-SHA-512"
    assert b"n=broker," in mech.respond(None)
    fallback = config(
        "SASL_PLAINTEXT",
        **{MECHANISM_KEY: "PLAIN", "sasl.enabled.mechanisms": "PLAIN", "sasl.jaas.config": PLAIN_LOGIN},
    )
    plain = _mechanism(fallback)
    assert plain.respond(None) == b"\x00broker\x00b-pw"  # type: ignore[attr-defined]


def test_ssl_client_context_from_the_listener_settings(pki: Pki) -> None:
    cfg = config("SSL", **broker_pem_settings(pki, "INTERNAL"))
    security = inter_broker_security(cfg)
    context = security.ssl_context
    assert context is not None and security.authenticate is None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    no_check = config("SSL", **broker_pem_settings(pki), **{"ssl.endpoint.identification.algorithm": ""})
    assert not inter_broker_security(no_check).ssl_context.check_hostname  # type: ignore[union-attr]


def test_unreadable_truststore_is_refused(pki: Pki) -> None:
    settings = broker_pem_settings(pki, "INTERNAL")
    settings["listener.name.internal.ssl.truststore.location"] = "/nonexistent/ca.pem"
    e = refusal(config("SSL", **settings))
    assert "INTERNAL" in e.message and "/nonexistent/ca.pem" in e.message


def test_sasl_ssl_has_both(pki: Pki) -> None:
    cfg = config(
        "SASL_SSL",
        **broker_pem_settings(pki),
        **{
            MECHANISM_KEY: "SCRAM-SHA-256",
            "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.internal.scram-sha-256.sasl.jaas.config": SCRAM_LOGIN,
        },
    )
    security = inter_broker_security(cfg)
    assert security.ssl_context is not None and security.authenticate is not None


# ---------------------------------------------------------------- broker processes


def _run(tmp_path: Path, settings: dict[str, str], timeout: float = 20) -> tuple[int | None, str]:
    """Start `kafkapy broker`: (its exit status, or None once it logged broker_ready; its output).
    A broker still up is stopped by its PID."""
    cmd = [sys.executable, "-m", "kafkapy", "broker", "--data-dir", str(tmp_path / "data"), "--log-format", "json"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return proc.returncode, log_path.read_text()
                if READY_MARKER in log_path.read_text():
                    return None, log_path.read_text()
                time.sleep(0.05)
            return proc.poll(), log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)


def test_broker_with_gssapi_inter_broker_refuses_to_start(pki: Pki, tmp_path: Path) -> None:
    settings = {
        "listeners": "SASL_SSL://127.0.0.1:0",
        "security.inter.broker.protocol": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        **broker_pem_settings(pki),
    }
    code, output = _run(tmp_path, settings)
    assert code == 1, output
    failed = [json.loads(line) for line in output.splitlines() if '"broker_start_failed"' in line]
    assert len(failed) == 1, output
    assert MECHANISM_KEY in failed[0]["error"] and "GSSAPI" in failed[0]["error"], failed[0]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_single_broker_with_only_tls_listeners_starts(pki: Pki, tmp_path: Path, protocol: str) -> None:
    settings = {
        "listeners": f"{protocol}://127.0.0.1:0",
        "security.inter.broker.protocol": protocol,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_pem),
        "ssl.key.password": KEY_PASSWORD,
    }
    if protocol == "SASL_SSL":
        settings[MECHANISM_KEY] = "PLAIN"
        settings["sasl.enabled.mechanisms"] = "PLAIN"
        settings["listener.name.sasl_ssl.plain.sasl.jaas.config"] = PLAIN_LOGIN
    code, output = _run(tmp_path, settings)
    assert code is None and READY_MARKER in output, output


def test_connection_is_replaced_before_its_sasl_session_expires(tmp_path: Path) -> None:
    """With connections.max.reauth.ms on the other broker, a broker's connection (made with
    inter_broker_security) is `expiring` at 85 % of the session: fetchers and markers open a new one
    (a new login) instead of having it closed under them at the expiry."""
    from interop._common import start_broker
    from kafkapy.client import BrokerConnection
    from tests.security.test_sasl_server import PLAIN_JAAS, sasl_settings

    b = start_broker(tmp_path / "data", sasl_settings(**{"connections.max.reauth.ms": "1500"}))
    try:
        host, port = b.bootstrap.rsplit(":", 1)
        cfg = config(
            "SASL_PLAINTEXT",
            **{
                "advertised.listeners": f"INTERNAL://{b.bootstrap}",
                MECHANISM_KEY: "PLAIN",
                "sasl.enabled.mechanisms": "PLAIN",
                "sasl.jaas.config": PLAIN_JAAS,
            },
        )

        async def run() -> None:
            conn = BrokerConnection(host, int(port), "t", 5.0, security=inter_broker_security(cfg))
            await conn.connect(5.0)
            try:
                assert conn.renew_at is not None
                assert 1.1 < conn.renew_at - time.monotonic() <= 0.85 * 1.5
                assert not conn.expiring
                await asyncio.sleep(conn.renew_at - time.monotonic() + 0.05)
                assert conn.expiring and not conn.closed
            finally:
                await conn.close()

        asyncio.run(run())
    finally:
        b.stop()
