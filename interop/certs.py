"""Test certificates made at test time with `cryptography`: a CA, a broker
certificate (SAN 127.0.0.1 and localhost) and client certificates, written in
the forms Kafka's configs name.

`make_pki(directory)` writes:
- ca.pem                    the CA certificate (a PEM truststore)
- truststore.p12            the CA in a PKCS12 truststore (password `TRUST_PASSWORD`)
- broker.keystore.pem       encrypted PKCS#8 key + chain in one file (ssl.keystore.type=PEM,
                            ssl.key.password=`KEY_PASSWORD`); the key under PBES2 (PBKDF2-SHA256,
                            AES-256-CBC), what `openssl pkcs8 -topk8` writes by default: kafkapy reads it,
                            Apache Kafka 4.3.1 on Java 17 does not ("PBES2 SecretKeyFactory not available")
- broker.keystore.java.pem  the same with the key under PKCS#12 PBE-SHA1-3DES
                            (`openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES`), which Kafka and kafkapy both read
- broker.keystore.p12       PKCS12 keystore (password `STORE_PASSWORD`)
- broker.key.pem / broker.crt.pem   plain key and chain (for clients that want separate files)
- <client>.key.pem, <client>.crt.pem, <client>.keystore.p12, <client>.keystore.pem,
  <client>.keystore.java.pem  for each client

What Apache Kafka 4.3.1 (OpenJDK 17) reads as a PEM keystore file, found by configuring its
DefaultSslEngineFactory (what its broker runs) with each variant, and by starting its broker with the
PBES2 and PBE-SHA1-3DES files (interop/test_same_server_properties.py starts it with the latter):
an EC or RSA PKCS#8 key, before or after the chain, encrypted with a PBES1 / PKCS#12 scheme
(PBE-SHA1-3DES, PBE-SHA1-RC2-40, PBE-MD5-DES) or unencrypted when ssl.key.password is unset.
Refused ("Invalid PEM keystore configs"): any PBES2 key (the JDK's EncryptedPrivateKeyInfo names the
scheme "PBES2", which has no SecretKeyFactory; JDK-8231581), PBE-SHA1-2DES, an unencrypted key with
ssl.key.password set, and OpenSSL's traditional 'EC/RSA PRIVATE KEY' blocks.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, modes
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
    broker_pem: Path  # encrypted key (PBES2) + chain
    broker_p12: Path
    broker_key: Path  # plain PKCS#8
    broker_crt: Path
    broker_pem_java: Path = Path()  # encrypted key (PBE-SHA1-3DES) + chain: Apache Kafka reads it too
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


# PKCS#12 PBE-SHA1-3DES (RFC 7292 appendix B and C) for the encrypted PKCS#8 key Java can decrypt

_PBE_SHA1_3DES_OID = bytes.fromhex("2a864886f70d010c0103")  # 1.2.840.113549.1.12.1.3


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _pkcs12_kdf(password: str, salt: bytes, purpose: int, size: int, iterations: int) -> bytes:
    """RFC 7292 B.2 with SHA-1 (u=20, v=64); purpose 1 = key, 2 = IV."""
    v = 64

    def fill(data: bytes) -> bytes:
        n = v * -(-len(data) // v)  # data repeated to a whole number of v-byte blocks
        return (data * (n // len(data) + 1))[:n] if data else b""

    secret = password.encode("utf-16-be") + b"\0\0"
    block = fill(salt) + fill(secret)
    out = b""
    while len(out) < size:
        a = hashlib.sha1(bytes([purpose]) * v + block).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()
        out += a
        b = int.from_bytes((a * (v // len(a) + 1))[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i : i + v], "big") + b) % (1 << (8 * v))).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    return out[:size]


def _key_pem_pbe_sha1_3des(key: ec.EllipticCurvePrivateKey, password: str, iterations: int = 2048) -> bytes:
    """An ENCRYPTED PRIVATE KEY block under PBE-SHA1-3DES, as `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES`."""
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(8)
    des_key = _pkcs12_kdf(password, salt, 1, 24, iterations)
    iv = _pkcs12_kdf(password, salt, 2, 8, iterations)
    padder = padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(des_key), modes.CBC(iv)).encryptor()
    data = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    params = _der(0x30, _der(0x04, salt) + _der_int(iterations))
    info = _der(0x30, _der(0x30, _der(0x06, _PBE_SHA1_3DES_OID) + params) + _der(0x04, data))
    return _pem_block("ENCRYPTED PRIVATE KEY", info)


def _pem_block(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


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
    pki.broker_pem_java = directory / "broker.keystore.java.pem"
    pki.broker_pem_java.write_bytes(_key_pem_pbe_sha1_3des(broker_key, KEY_PASSWORD) + b"".join(_pem(c) for c in chain))
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
            "pem_java": directory / f"{client}.keystore.java.pem",
        }
        files["key"].write_bytes(_key_pem(key, None))
        files["crt"].write_bytes(_pem(cert) + _pem(ca_cert))
        files["p12"].write_bytes(_p12(client, key, [cert, ca_cert], STORE_PASSWORD))
        files["pem"].write_bytes(_key_pem(key, KEY_PASSWORD) + _pem(cert) + _pem(ca_cert))
        files["pem_java"].write_bytes(_key_pem_pbe_sha1_3des(key, KEY_PASSWORD) + _pem(cert) + _pem(ca_cert))
        pki.clients[client] = files
        pki.client_dns[client] = rfc2253_of(subject)
    for path in directory.iterdir():
        path.chmod(0o600)
    return pki


def broker_pem_settings(pki: Pki, listener: str | None = None, *, java: bool = False) -> dict[str, str]:
    """Broker settings for a PEM keystore (encrypted key + chain) and a PEM truststore; `java`: the
    keystore Apache Kafka can read too (broker.keystore.java.pem)."""
    prefix = f"listener.name.{listener.lower()}." if listener else ""
    return {
        f"{prefix}ssl.keystore.type": "PEM",
        f"{prefix}ssl.keystore.location": str(pki.broker_pem_java if java else pki.broker_pem),
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
