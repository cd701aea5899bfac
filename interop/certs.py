"""Test certificates made at test time with `cryptography`: a CA, a broker
certificate (SAN 127.0.0.1 and localhost) and client certificates, written in
the forms Kafka's configs name.

`make_pki(directory)` writes:
- ca.pem                    the CA certificate (a PEM truststore)
- truststore.p12            the CA in a PKCS12 truststore (password `TRUST_PASSWORD`)
- broker.keystore.pem       encrypted PKCS#8 key + chain in one file (ssl.keystore.type=PEM,
                            ssl.key.password=`KEY_PASSWORD`), as a Kafka server.properties uses
- broker.keystore.p12       PKCS12 keystore (password `STORE_PASSWORD`)
- broker.key.pem / broker.crt.pem   plain key and chain (for clients that want separate files)
- <client>.key.pem, <client>.crt.pem, <client>.keystore.p12, <client>.keystore.pem  for each client
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "key-secret"
STORE_PASSWORD = "store-secret"
TRUST_PASSWORD = "trust-secret"


@dataclass(slots=True)
class Pki:
    directory: Path
    ca: Path
    truststore_p12: Path
    broker_pem: Path  # encrypted key + chain
    broker_p12: Path
    broker_key: Path  # plain PKCS#8
    broker_crt: Path
    clients: dict[str, dict[str, Path]] = field(default_factory=dict)
    client_dns: dict[str, str] = field(default_factory=dict)  # name -> RFC 2253 subject


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kafkapy")]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    server: bool = False,
    days: int = 30,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _p12(name: str, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate], password: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, chain[0], chain[1:], serialization.BestAvailableEncryption(password.encode())
    )


def rfc2253_of(name: x509.Name) -> str:
    from kafkapy.security.principal import rfc2253

    return rfc2253(name)


def make_pki(directory: Path, clients: tuple[str, ...] = ("alice", "bob"), client_ou: str = "ServiceUsers") -> Pki:
    """Write a CA, a broker's stores and the clients' stores under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kafkapy test CA")
    ca_cert = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    ca = directory / "ca.pem"
    ca.write_bytes(_pem(ca_cert))
    truststore = directory / "truststore.p12"
    truststore.write_bytes(
        pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(ca_cert, b"ca")], serialization.BestAvailableEncryption(TRUST_PASSWORD.encode())
        )
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = _cert(
        _name("localhost", "Brokers"),
        broker_key,
        ca_name,
        ca_key,
        server=True,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    chain = [broker_cert, ca_cert]
    pki = Pki(
        directory=directory,
        ca=ca,
        truststore_p12=truststore,
        broker_pem=directory / "broker.keystore.pem",
        broker_p12=directory / "broker.keystore.p12",
        broker_key=directory / "broker.key.pem",
        broker_crt=directory / "broker.crt.pem",
    )
    pki.broker_pem.write_bytes(_key_pem(broker_key, KEY_PASSWORD) + b"".join(_pem(c) for c in chain))
    pki.broker_p12.write_bytes(_p12("broker", broker_key, chain, STORE_PASSWORD))
    pki.broker_key.write_bytes(_key_pem(broker_key, None))
    pki.broker_crt.write_bytes(b"".join(_pem(c) for c in chain))
    for client in clients:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(client, client_ou)
        cert = _cert(subject, key, ca_name, ca_key)
        files = {
            "key": directory / f"{client}.key.pem",
            "crt": directory / f"{client}.crt.pem",
            "p12": directory / f"{client}.keystore.p12",
            "pem": directory / f"{client}.keystore.pem",
        }
        files["key"].write_bytes(_key_pem(key, None))
        files["crt"].write_bytes(_pem(cert) + _pem(ca_cert))
        files["p12"].write_bytes(_p12(client, key, [cert, ca_cert], STORE_PASSWORD))
        files["pem"].write_bytes(_key_pem(key, KEY_PASSWORD) + _pem(cert) + _pem(ca_cert))
        pki.clients[client] = files
        pki.client_dns[client] = rfc2253_of(subject)
    for path in directory.iterdir():
        path.chmod(0o600)
    return pki


def broker_pem_settings(pki: Pki, listener: str | None = None) -> dict[str, str]:
    """Broker settings for a PEM keystore (encrypted key + chain) and a PEM truststore."""
    prefix = f"listener.name.{listener.lower()}." if listener else ""
    return {
        f"{prefix}ssl.keystore.type": "PEM",
        f"{prefix}ssl.keystore.location": str(pki.broker_pem),
        f"{prefix}ssl.key.password": KEY_PASSWORD,
        f"{prefix}ssl.truststore.type": "PEM",
        f"{prefix}ssl.truststore.location": str(pki.ca),
    }


def broker_p12_settings(pki: Pki, listener: str | None = None) -> dict[str, str]:
    prefix = f"listener.name.{listener.lower()}." if listener else ""
    return {
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": str(pki.broker_p12),
        f"{prefix}ssl.keystore.password": STORE_PASSWORD,
        f"{prefix}ssl.key.password": STORE_PASSWORD,
        f"{prefix}ssl.truststore.type": "PKCS12",
        f"{prefix}ssl.truststore.location": str(pki.truststore_p12),
        f"{prefix}ssl.truststore.password": TRUST_PASSWORD,
    }
