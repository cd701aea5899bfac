"""TLS contexts from Kafka's `ssl.*` settings.

Keystores: `ssl.keystore.type` PEM (`ssl.keystore.location` naming one file
with a PKCS#8 key, encrypted or not, and the certificate chain, the key
password in `ssl.key.password`; or the inline `ssl.keystore.key` and
`ssl.keystore.certificate.chain`) and PKCS12 (`ssl.keystore.password`). JKS is
not readable here: a keystore said to be JKS is read as PKCS12 (what keytool
writes by default since Java 9) and refused with a conversion hint otherwise.
Truststores: PEM (file or inline `ssl.truststore.certificates`) and PKCS12.

The `cryptography` library reads and decrypts the stores. Python's ssl module
only loads keys from files, so the key goes to a private temporary file
(mode 0600) re-encrypted under a random one-time password, is loaded with that
password and the file is deleted at once: no plaintext key is ever written.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

PROTOCOL_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = ("none", "requested", "required")
KEYSTORE_TYPES = ("PEM", "PKCS12", "JKS")

# The ssl.* keys this module reads (Kafka's names; defaults are in kafkapy.config).
SSL_KEYS = (
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm",
    "ssl.principal.mapping.rules",
)

PrivateKey = Any  # one of cryptography's private key types


class TlsConfigError(Exception):
    """A TLS setting cannot be used; the message names the key and the reason (one line)."""


@dataclass(slots=True, frozen=True)
class TlsSettings:
    """The ssl.* settings of one listener (or of a client)."""

    keystore_type: str = "JKS"
    keystore_location: str | None = None
    keystore_password: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)
    keystore_certificate_chain: str | None = field(default=None, repr=False)
    keystore_key: str | None = field(default=None, repr=False)
    truststore_type: str = "JKS"
    truststore_location: str | None = None
    truststore_password: str | None = field(default=None, repr=False)
    truststore_certificates: str | None = field(default=None, repr=False)
    client_auth: str = "none"
    enabled_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    cipher_suites: tuple[str, ...] = ()
    endpoint_identification_algorithm: str = "https"
    principal_mapping_rules: str = "DEFAULT"

    @classmethod
    def from_lookup(cls, get: Callable[[str], Any]) -> TlsSettings:
        """Build from `get(kafka key)` (e.g. BrokerConfig.listener_setting bound to a listener)."""

        def text(key: str) -> str | None:
            value = get(key)
            if value is None:
                return None
            value = str(value)
            return value if value.strip() else None

        def items(key: str) -> tuple[str, ...]:
            value = get(key)
            if value is None:
                return ()
            if isinstance(value, str):
                value = value.split(",")
            return tuple(v.strip() for v in value if str(v).strip())

        return cls(
            keystore_type=(text("ssl.keystore.type") or "JKS").upper(),
            keystore_location=text("ssl.keystore.location"),
            keystore_password=text("ssl.keystore.password"),
            key_password=text("ssl.key.password"),
            keystore_certificate_chain=text("ssl.keystore.certificate.chain"),
            keystore_key=text("ssl.keystore.key"),
            truststore_type=(text("ssl.truststore.type") or "JKS").upper(),
            truststore_location=text("ssl.truststore.location"),
            truststore_password=text("ssl.truststore.password"),
            truststore_certificates=text("ssl.truststore.certificates"),
            client_auth=(text("ssl.client.auth") or "none").lower(),
            enabled_protocols=items("ssl.enabled.protocols") or ("TLSv1.2", "TLSv1.3"),
            cipher_suites=items("ssl.cipher.suites"),
            endpoint_identification_algorithm=_endpoint_algorithm(get("ssl.endpoint.identification.algorithm")),
            principal_mapping_rules=text("ssl.principal.mapping.rules") or "DEFAULT",
        )

    @property
    def has_keystore(self) -> bool:
        return bool(self.keystore_location or self.keystore_key or self.keystore_certificate_chain)


def _endpoint_algorithm(value: Any) -> str:
    """Unset: Kafka's default https; set but empty: no host name check."""
    return "https" if value is None else str(value).strip()


@dataclass(slots=True)
class KeyMaterial:
    """A private key and its certificate chain, leaf first."""

    key: PrivateKey
    chain: list[x509.Certificate]


# -- reading stores -------------------------------------------------------------


def _read_file(key: str, location: str) -> bytes:
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{key}={location}: cannot read the file: {exc.strerror or exc}") from None


def _pem_blocks(text: str, labels: tuple[str, ...]) -> list[str]:
    """The PEM blocks whose BEGIN label is one of `labels`, in file order."""
    blocks: list[str] = []
    pos = 0
    while True:
        start = text.find("-----BEGIN ", pos)
        if start < 0:
            return blocks
        label_end = text.find("-----", start + 11)
        if label_end < 0:
            return blocks
        label = text[start + 11 : label_end]
        end_marker = f"-----END {label}-----"
        end = text.find(end_marker, label_end)
        if end < 0:
            return blocks
        if label in labels:
            blocks.append(text[start : end + len(end_marker)] + "\n")
        pos = end + len(end_marker)


_KEY_LABELS = ("ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def _load_pem_key(where: str, pem: str, password: str | None) -> PrivateKey:
    blocks = _pem_blocks(pem, _KEY_LABELS)
    if not blocks:
        raise TlsConfigError(f"{where}: no private key (expected a PKCS#8 'PRIVATE KEY' block)")
    if len(blocks) > 1:
        raise TlsConfigError(f"{where}: more than one private key")
    encrypted = "ENCRYPTED PRIVATE KEY" in blocks[0] or "Proc-Type: 4,ENCRYPTED" in blocks[0]
    if encrypted and not password:
        raise TlsConfigError(f"{where}: the private key is encrypted and ssl.key.password is not set")
    try:
        return serialization.load_pem_private_key(
            blocks[0].encode(), password.encode() if (password and encrypted) else None
        )
    except (ValueError, TypeError) as exc:
        reason = "wrong ssl.key.password" if encrypted else str(exc)
        raise TlsConfigError(f"{where}: cannot decrypt the private key: {reason}") from None


def _load_pem_certs(where: str, pem: str) -> list[x509.Certificate]:
    blocks = _pem_blocks(pem, ("CERTIFICATE",))
    if not blocks:
        raise TlsConfigError(f"{where}: no certificate")
    try:
        return [x509.load_pem_x509_certificate(block.encode()) for block in blocks]
    except ValueError as exc:
        raise TlsConfigError(f"{where}: bad certificate: {exc}") from None


def _load_pkcs12(where: str, data: bytes, passwords: Sequence[str | None]) -> pkcs12.PKCS12KeyAndCertificates:
    last = ""
    for password in passwords:
        try:
            return pkcs12.load_pkcs12(data, password.encode() if password else None)
        except (ValueError, TypeError) as exc:
            last = str(exc)
    hint = ""
    if data[:4] == b"\xfe\xed\xfe\xed":
        hint = " (this is a JKS keystore: convert it with keytool -importkeystore -deststoretype PKCS12)"
    raise TlsConfigError(f"{where}: cannot open the keystore: wrong password or not PKCS12 ({last}){hint}")


def load_keystore(settings: TlsSettings) -> KeyMaterial:
    """The key and chain of the configured keystore; raises TlsConfigError."""
    kind = settings.keystore_type
    if kind not in KEYSTORE_TYPES:
        raise TlsConfigError(f"ssl.keystore.type={kind}: unsupported; use PEM or PKCS12")
    if kind == "PEM":
        if settings.keystore_location and (settings.keystore_key or settings.keystore_certificate_chain):
            raise TlsConfigError(
                "ssl.keystore.location cannot be set together with ssl.keystore.key / ssl.keystore.certificate.chain"
            )
        if settings.keystore_password:
            # Kafka: a PEM key store takes only the key password
            raise TlsConfigError(
                "ssl.keystore.password cannot be set with ssl.keystore.type=PEM; use ssl.key.password for the key"
            )
        if settings.keystore_location:
            where = f"ssl.keystore.location={settings.keystore_location}"
            text = _read_file("ssl.keystore.location", settings.keystore_location).decode("utf-8", "replace")
            key = _load_pem_key(where, text, settings.key_password)
            chain = _load_pem_certs(where, text)
        else:
            if not settings.keystore_key or not settings.keystore_certificate_chain:
                raise TlsConfigError("ssl.keystore.key and ssl.keystore.certificate.chain must both be set")
            key = _load_pem_key("ssl.keystore.key", settings.keystore_key, settings.key_password)
            chain = _load_pem_certs("ssl.keystore.certificate.chain", settings.keystore_certificate_chain)
    else:
        if not settings.keystore_location:
            raise TlsConfigError(f"ssl.keystore.type={kind} needs ssl.keystore.location")
        where = f"ssl.keystore.location={settings.keystore_location}"
        data = _read_file("ssl.keystore.location", settings.keystore_location)
        store = _load_pkcs12(where, data, _distinct(settings.keystore_password, settings.key_password))
        if store.key is None or store.cert is None:
            raise TlsConfigError(f"{where}: the keystore holds no private key entry")
        key = store.key
        chain = [store.cert.certificate] + [c.certificate for c in store.additional_certs]
    if isinstance(key, dh.DHPrivateKey) or not _key_matches(key, chain[0]):
        raise TlsConfigError("ssl.keystore: the private key does not belong to the first certificate of the chain")
    return KeyMaterial(key, chain)


def _distinct(*passwords: str | None) -> list[str | None]:
    result: list[str | None] = []
    for password in passwords:
        if password not in result:
            result.append(password)
    return result or [None]


def _key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    if not isinstance(
        key,
        (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
    ):
        return True  # let OpenSSL decide for other key types
    mine = key.public_key().public_bytes(serialization.Encoding.DER, fmt)
    return bool(mine == cert.public_key().public_bytes(serialization.Encoding.DER, fmt))


def load_truststore(settings: TlsSettings) -> list[x509.Certificate] | None:
    """The trusted certificates, or None when no truststore is configured."""
    kind = settings.truststore_type
    if settings.truststore_certificates:
        if settings.truststore_location:
            raise TlsConfigError("ssl.truststore.location cannot be set together with ssl.truststore.certificates")
        return _load_pem_certs("ssl.truststore.certificates", settings.truststore_certificates)
    if not settings.truststore_location:
        return None
    where = f"ssl.truststore.location={settings.truststore_location}"
    data = _read_file("ssl.truststore.location", settings.truststore_location)
    if kind == "PEM":
        if settings.truststore_password:
            raise TlsConfigError("ssl.truststore.password cannot be set with ssl.truststore.type=PEM")
        return _load_pem_certs(where, data.decode("utf-8", "replace"))
    if kind not in KEYSTORE_TYPES:
        raise TlsConfigError(f"ssl.truststore.type={kind}: unsupported; use PEM or PKCS12")
    store = _load_pkcs12(where, data, _distinct(settings.truststore_password))
    certs = ([store.cert.certificate] if store.cert is not None else []) + [
        c.certificate for c in store.additional_certs
    ]
    if not certs:
        raise TlsConfigError(f"{where}: the truststore holds no certificate")
    return certs


# -- building contexts ------------------------------------------------------------


def _load_key_material(context: ssl.SSLContext, material: KeyMaterial) -> None:
    """Hand the key to OpenSSL through a 0600 temp file, encrypted under a one-time password."""
    once = secrets.token_urlsafe(32)
    key_pem = material.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(once.encode()),
    )
    chain_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in material.chain)
    fd, path = tempfile.mkstemp(prefix="kafkapy-tls-", suffix=".pem")  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(chain_pem + key_pem)
        context.load_cert_chain(path, password=once)
    except ssl.SSLError as exc:
        raise TlsConfigError(f"ssl.keystore: OpenSSL refused the key or certificate: {exc}") from None
    finally:
        os.unlink(path)


def _set_protocols(context: ssl.SSLContext, protocols: Sequence[str]) -> None:
    versions: list[ssl.TLSVersion] = []
    for name in protocols:
        version = PROTOCOL_VERSIONS.get(name)
        if version is None:
            raise TlsConfigError(
                f"ssl.enabled.protocols: unknown protocol {name!r}; known: {', '.join(PROTOCOL_VERSIONS)}"
            )
        versions.append(version)
    context.minimum_version = min(versions)
    context.maximum_version = max(versions)


_TLS13_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
)
_KX = {"ECDHE_ECDSA": "ECDHE-ECDSA", "ECDHE_RSA": "ECDHE-RSA", "DHE_RSA": "DHE-RSA", "DHE_DSS": "DHE-DSS", "RSA": ""}


def openssl_cipher_name(name: str) -> str:
    """An IANA (Java) suite name such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 as OpenSSL names it."""
    if not name.startswith("TLS_") or "_WITH_" not in name:
        return name  # already OpenSSL's, or TLS 1.3 (same name in both)
    kx, _, rest = name[4:].partition("_WITH_")
    if kx not in _KX:
        return name
    rest = rest.replace("AES_128", "AES128").replace("AES_256", "AES256").replace("_CBC", "")
    if rest.startswith("CHACHA20_POLY1305"):
        rest = "CHACHA20_POLY1305"
    converted = rest.replace("_", "-")
    return f"{_KX[kx]}-{converted}" if _KX[kx] else converted


def _set_ciphers(context: ssl.SSLContext, suites: Sequence[str]) -> None:
    """ssl.cipher.suites: TLS 1.2 suites are set; TLS 1.3 suites cannot be restricted by Python's ssl."""
    if not suites:
        return
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.set_ciphers("ALL:@SECLEVEL=0")
    known = {c["name"] for c in probe.get_ciphers()}
    chosen: list[str] = []
    for suite in suites:
        if suite in _TLS13_SUITES:
            continue
        name = openssl_cipher_name(suite)
        if name not in known:
            raise TlsConfigError(f"ssl.cipher.suites: unknown or unavailable cipher suite {suite!r}")
        chosen.append(name)
    if chosen:
        context.set_ciphers(":".join(chosen))


def _trust(context: ssl.SSLContext, settings: TlsSettings) -> None:
    certs = load_truststore(settings)
    if certs is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return
    pem = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)
    context.load_verify_locations(cadata=pem)


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The broker side of an SSL / SASL_SSL listener; raises TlsConfigError with one clear reason."""
    if settings.client_auth not in CLIENT_AUTH:
        raise TlsConfigError(f"ssl.client.auth={settings.client_auth}: expected none, requested or required")
    if not settings.has_keystore:
        raise TlsConfigError(
            "no keystore: set ssl.keystore.location (or ssl.keystore.key and ssl.keystore.certificate.chain)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_protocols(context, settings.enabled_protocols)
    _set_ciphers(context, settings.cipher_suites)
    _load_key_material(context, load_keystore(settings))
    if settings.client_auth != "none":
        certs = load_truststore(settings)
        if certs is None:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        else:
            pem = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)
            context.load_verify_locations(cadata=pem)
        context.verify_mode = ssl.CERT_REQUIRED if settings.client_auth == "required" else ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client side context (inter-broker connections): verifies the server, host name per
    ssl.endpoint.identification.algorithm (https: checked; empty: not)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = settings.endpoint_identification_algorithm.lower() == "https"
    context.verify_mode = ssl.CERT_REQUIRED
    _set_protocols(context, settings.enabled_protocols)
    _set_ciphers(context, settings.cipher_suites)
    _trust(context, settings)
    if settings.has_keystore:
        _load_key_material(context, load_keystore(settings))
    return context
