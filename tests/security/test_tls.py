"""kafkapy.security.tls (contexts from Kafka's ssl.* settings) and
kafkapy.security.principal (ssl.principal.mapping.rules, KIP-371)."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from interop.certs import KEY_PASSWORD, STORE_PASSWORD, TRUST_PASSWORD, Pki, make_pki
from kafkapy.config import BrokerConfig
from kafkapy.security.principal import (
    ANONYMOUS,
    MappingRuleError,
    NoMatchingRule,
    PrincipalMapper,
    parse_rules,
    rfc2253,
)
from kafkapy.security.tls import (
    TlsConfigError,
    TlsSettings,
    client_context,
    openssl_cipher_name,
    server_context,
)

# -- principal mapping ----------------------------------------------------------------

KAFKA_DOC_RULES = (
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,"
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,"
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,"
    "DEFAULT"
)


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        ("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "serviceuser"),
        ("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", "adminuser@admin"),
        ("CN=Kafka1.Example,O=Apache", "kafka1.example"),
        ("OU=NoCommonName,O=Apache", "OU=NoCommonName,O=Apache"),  # DEFAULT: the DN unchanged
    ],
)
def test_kafka_documented_rules(dn: str, name: str) -> None:
    assert PrincipalMapper.from_config(KAFKA_DOC_RULES).name(dn) == name


def test_issue_example_rule_with_commas_in_the_pattern() -> None:
    mapper = PrincipalMapper.from_config("RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT")
    assert len(mapper.rules) == 2
    assert mapper.name("CN=alice,OU=eng,O=Example") == "alice"
    assert mapper.name("O=Example") == "O=Example"


def test_upper_case_flag_escaped_slash_and_spaces() -> None:
    assert PrincipalMapper.from_config("RULE:^CN=(.*)$/$1/U").name("CN=alice") == "ALICE"
    assert PrincipalMapper.from_config(r"RULE:^CN=(.*)\/x$/$1/").name("CN=a/x") == "a"
    assert PrincipalMapper.from_config(r"RULE:^CN=(.*)$/\$$1/").name("CN=a") == "$a"
    assert len(parse_rules("  RULE:^CN=(.*)$/$1/L ,  DEFAULT  ")) == 2


def test_default_and_empty_config_keep_the_dn() -> None:
    assert PrincipalMapper.from_config(None).name("CN=x,O=y") == "CN=x,O=y"
    assert PrincipalMapper.from_config("DEFAULT").name("CN=x") == "CN=x"


def test_no_matching_rule() -> None:
    with pytest.raises(NoMatchingRule, match="No rules apply to CN=bob"):
        PrincipalMapper.from_config("RULE:^CN=alice$/alice/").name("CN=bob")


@pytest.mark.parametrize("text", ["garbage", "RULE:^CN=(.*)$", "RULE:^CN=(.*)$/$1", "RULE:^CN=(.*$/$1/", "DEFAULT;x"])
def test_invalid_rules_are_refused(text: str) -> None:
    with pytest.raises(MappingRuleError):
        parse_rules(text)


def test_rfc2253_is_most_specific_first_with_escapes() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ServiceUsers"),
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
        ]
    )
    assert rfc2253(name) == r"CN=alice,OU=ServiceUsers,O=Example\, Inc,C=US"
    email = x509.Name(
        [x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"), x509.NameAttribute(NameOID.COMMON_NAME, "a")]
    )
    # Java writes attributes without an RFC 2253 keyword as OID=#<hex of the DER value> (IA5String here)
    assert rfc2253(email) == "CN=a,1.2.840.113549.1.9.1=#1605" + b"a@b.c".hex()


# -- TLS contexts ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def pem_settings(pki: Pki, **extra: str) -> TlsSettings:
    values = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_pem),
        "ssl.key.password": KEY_PASSWORD,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),
        **extra,
    }
    return TlsSettings.from_lookup(values.get)


def p12_settings(pki: Pki, **extra: str) -> TlsSettings:
    values = {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(pki.broker_p12),
        "ssl.keystore.password": STORE_PASSWORD,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(pki.truststore_p12),
        "ssl.truststore.password": TRUST_PASSWORD,
        **extra,
    }
    return TlsSettings.from_lookup(values.get)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str = "localhost") -> dict[str, object]:
    """One TLS handshake over a socket pair; returns what each side saw."""
    a, b = socket.socketpair()
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as tls:
                seen["peer_der"] = tls.getpeercert(binary_form=True)
                seen["version"] = tls.version()
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["server_error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname=hostname) as tls:
            seen["reply"] = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        seen["client_error"] = exc
    finally:
        thread.join(10)
        a.close()
        b.close()
    return seen


def client_for(pki: Pki, user: str | None = None, **extra: str) -> ssl.SSLContext:
    values = {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca), **extra}
    if user is not None:
        values.update(
            {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(pki.clients[user]["pem"]),
                "ssl.key.password": KEY_PASSWORD,
            }
        )
    return client_context(TlsSettings.from_lookup(values.get))


@pytest.mark.parametrize("kind", ["pem", "pkcs12"])
def test_server_context_from_each_keystore_type(pki: Pki, kind: str) -> None:
    settings = pem_settings(pki) if kind == "pem" else p12_settings(pki)
    seen = handshake(server_context(settings), client_for(pki))
    assert seen.get("reply") == b"ok", seen
    assert seen["version"] == "TLSv1.3"
    assert not seen["peer_der"]  # ssl.client.auth=none: no client certificate asked


def test_inline_pem_keystore_and_truststore(pki: Pki) -> None:
    text = pki.broker_pem.read_text()
    key = text[: text.index("-----BEGIN CERTIFICATE-----")]
    chain = text[len(key) :]
    values = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.key": key,
        "ssl.keystore.certificate.chain": chain,
        "ssl.key.password": KEY_PASSWORD,
    }
    seen = handshake(
        server_context(TlsSettings.from_lookup(values.get)),
        client_context(
            TlsSettings.from_lookup(
                {"ssl.truststore.type": "PEM", "ssl.truststore.certificates": pki.ca.read_text()}.get
            )
        ),
    )
    assert seen.get("reply") == b"ok", seen


def test_unencrypted_pkcs8_pem(pki: Pki, tmp_path: Path) -> None:
    plain = tmp_path / "plain.pem"
    plain.write_bytes(pki.broker_key.read_bytes() + pki.broker_crt.read_bytes())
    values = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(plain)}
    assert handshake(server_context(TlsSettings.from_lookup(values.get)), client_for(pki)).get("reply") == b"ok"


def test_mutual_tls_gives_the_mapped_principal(pki: Pki) -> None:
    server = server_context(pem_settings(pki, **{"ssl.client.auth": "required"}))
    seen = handshake(server, client_for(pki, "alice"))
    assert seen.get("reply") == b"ok", seen
    der = seen["peer_der"]
    assert isinstance(der, bytes)
    mapper = PrincipalMapper.from_config("RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT")
    assert mapper.principal_of_certificate(der) == "User:alice"
    assert PrincipalMapper.from_config("DEFAULT").principal_of_certificate(der) == ("User:" + pki.client_dns["alice"])
    assert pki.client_dns["alice"] == "CN=alice,OU=ServiceUsers,O=kafkapy,C=US"
    assert mapper.principal_of_certificate(None) == ANONYMOUS


def test_required_client_auth_refuses_a_client_without_certificate(pki: Pki) -> None:
    server = server_context(pem_settings(pki, **{"ssl.client.auth": "required"}))
    seen = handshake(server, client_for(pki))
    assert "reply" not in seen


def test_requested_client_auth_accepts_both(pki: Pki) -> None:
    server = server_context(pem_settings(pki, **{"ssl.client.auth": "requested"}))
    assert handshake(server, client_for(pki)).get("reply") == b"ok"
    seen = handshake(server, client_for(pki, "bob"))
    assert seen.get("reply") == b"ok" and seen["peer_der"]


def test_enabled_protocols_limit_the_version(pki: Pki) -> None:
    server = server_context(pem_settings(pki, **{"ssl.enabled.protocols": "TLSv1.2"}))
    seen = handshake(server, client_for(pki))
    assert seen.get("version") == "TLSv1.2"
    only13 = client_for(pki, **{"ssl.enabled.protocols": "TLSv1.3"})
    assert "reply" not in handshake(server, only13)


def test_cipher_suites_in_iana_names(pki: Pki) -> None:
    assert openssl_cipher_name("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert openssl_cipher_name("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256") == "ECDHE-RSA-CHACHA20-POLY1305"
    assert openssl_cipher_name("TLS_RSA_WITH_AES_256_CBC_SHA") == "AES256-SHA"
    server = server_context(
        pem_settings(
            pki,
            **{"ssl.enabled.protocols": "TLSv1.2", "ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
        )
    )
    names = {c["name"] for c in server.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-ECDSA-AES256-GCM-SHA384"}
    with pytest.raises(TlsConfigError, match=r"ssl\.cipher\.suites"):
        server_context(pem_settings(pki, **{"ssl.cipher.suites": "TLS_NOT_A_SUITE"}))


def test_client_checks_the_host_name_unless_disabled(pki: Pki) -> None:
    server = server_context(pem_settings(pki))
    assert "reply" not in handshake(server, client_for(pki), hostname="other.example")
    lenient = client_for(pki, **{"ssl.endpoint.identification.algorithm": ""})
    assert handshake(server, lenient, hostname="other.example").get("reply") == b"ok"


def test_no_plaintext_key_file_is_left_behind(pki: Pki) -> None:
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("kafkapy-tls-")}
    server_context(p12_settings(pki))
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("kafkapy-tls-")}
    assert after == before


def bad(pki: Pki, tmp_path: Path) -> Iterator[tuple[TlsSettings, str]]:
    yield pem_settings(pki, **{"ssl.keystore.location": str(tmp_path / "missing.pem")}), "cannot read the file"
    yield pem_settings(pki, **{"ssl.key.password": "wrong"}), "wrong ssl.key.password"
    yield (
        TlsSettings.from_lookup({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.broker_pem)}.get),
        "ssl.key.password is not set",
    )
    yield p12_settings(pki, **{"ssl.keystore.password": "wrong"}), "wrong password or not PKCS12"
    yield p12_settings(pki, **{"ssl.keystore.location": str(pki.ca)}), "wrong password or not PKCS12"
    yield TlsSettings(), "no keystore"
    yield pem_settings(pki, **{"ssl.keystore.type": "BKS"}), "unsupported"
    yield pem_settings(pki, **{"ssl.enabled.protocols": "SSLv3"}), "unknown protocol"
    yield pem_settings(pki, **{"ssl.client.auth": "always"}), "ssl.client.auth"
    yield pem_settings(pki, **{"ssl.keystore.password": "x"}), "cannot be set with ssl.keystore.type=PEM"
    yield (
        pem_settings(pki, **{"ssl.client.auth": "required", "ssl.truststore.location": str(tmp_path / "nope.pem")}),
        "ssl.truststore.location",
    )


def test_bad_stores_give_one_clear_reason(pki: Pki, tmp_path: Path) -> None:
    for settings, reason in bad(pki, tmp_path):
        with pytest.raises(TlsConfigError) as info:
            server_context(settings)
        assert reason in str(info.value), (reason, str(info.value))
        assert "\n" not in str(info.value)


def test_key_not_matching_the_certificate(pki: Pki, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(pki.clients["alice"]["key"].read_bytes() + pki.broker_crt.read_bytes())
    with pytest.raises(TlsConfigError, match="does not belong"):
        server_context(TlsSettings.from_lookup({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(mixed)}.get))


def test_pem_key_in_the_keystore_file_is_really_encrypted(pki: Pki) -> None:
    text = pki.broker_pem.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in text
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(text, None)


# -- config ---------------------------------------------------------------------------


def test_listener_prefix_wins_over_the_plain_key() -> None:
    cfg = BrokerConfig.from_pairs(
        [
            ("listeners", "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL"),
            ("ssl.client.auth", "requested"),
            ("listener.name.external.ssl.client.auth", "required"),
            ("listener.name.external.ssl.keystore.password", "secret"),
        ]
    )
    assert cfg.listener_setting("EXTERNAL", "ssl.client.auth") == "required"
    assert cfg.listener_setting("external", "ssl.keystore.password") == "secret"
    assert cfg.listener_setting("PLAINTEXT", "ssl.client.auth") == "requested"
    assert cfg.listener_setting("EXTERNAL", "ssl.enabled.protocols") == ["TLSv1.2", "TLSv1.3"]
    assert cfg.unused_keys() == []
    described = {d.name: d for d in cfg.describe(["ssl.keystore.password", "ssl.client.auth"])}
    assert described["ssl.keystore.password"].sensitive


def test_a_bad_per_listener_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ssl\.client\.auth"):
        BrokerConfig.from_pairs([("listener.name.ssl.ssl.client.auth", "sometimes")])


def test_kafka_only_and_unknown_keys_are_told_apart() -> None:
    cfg = BrokerConfig.from_pairs(
        [
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("my.custom.key", "1"),
        ]
    )
    assert cfg.kafka_only_keys() == ["controller.listener.names", "controller.quorum.voters", "process.roles"]
    assert cfg.unused_keys() == ["my.custom.key"]
