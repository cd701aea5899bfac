"""How this broker reaches the others: the inter-broker listener and its security.

Replica fetchers (fetcher.py) and transaction markers (markers.py) connect to
another broker's inter-broker endpoint (`BrokerInfo.host`/`port`, registered
from `inter.broker.listener.name`, or the listener named like
`security.inter.broker.protocol`) as a client of that listener:

- SSL / SASL_SSL: TLS with the listener's own ssl.* settings
  (`listener.name.<listener>.ssl.*` first): its truststore verifies the other
  broker (host name checked unless `ssl.endpoint.identification.algorithm` is
  empty), its keystore is the client certificate when the other side asks for
  one (`ssl.client.auth`, the principal then mapped by its rules).
- SASL_PLAINTEXT / SASL_SSL: `sasl.mechanism.inter.broker.protocol` (PLAIN,
  SCRAM-SHA-256 or SCRAM-SHA-512; it must be enabled on the listener), logged
  in with the `username` and `password` options of the JAAS entry the listener
  serves that mechanism with: `listener.name.<listener>.<mechanism>.sasl.jaas.config`,
  then `listener.name.<listener>.sasl.jaas.config`, then `sasl.jaas.config`
  (the order kafkapy.server.sasl_setup reads the server side in).

Anything that cannot work raises ConfigError naming the key; the broker
checks it at start-up (kafkapy.server.listeners.advertised_broker) and
refuses to start with that one line.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

from kafkapy.client import PLAINTEXT_SECURITY, ConnectionSecurity, sasl_authenticator
from kafkapy.config import BROKER_KEYS, BrokerConfig, ConfigError
from kafkapy.security import jaas
from kafkapy.security.sasl_base import GSSAPI, PLAIN, SCRAM_SHA_256, SCRAM_SHA_512
from kafkapy.security.sasl_client import ClientMechanism, client_mechanism
from kafkapy.security.tls import TlsSettings, client_context

MECHANISM_KEY = "sasl.mechanism.inter.broker.protocol"
LOGIN_MECHANISMS = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512)  # what a broker can log in to another with
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
NOT_ENABLED = (  # Apache Kafka 4.3.1's KafkaConfig requirement, word for word
    f"{MECHANISM_KEY} must be included in sasl.enabled.mechanisms when SASL is used for inter-broker communication"
)


def inter_broker_security(config: BrokerConfig) -> ConnectionSecurity:
    """The security of connections to other brokers; ConfigError when it cannot be built."""
    name, protocol = config.inter_broker_listener()
    if protocol == "PLAINTEXT":
        return PLAINTEXT_SECURITY
    context = _tls_context(config, name, protocol) if protocol in TLS_PROTOCOLS else None
    authenticate = sasl_authenticator(sasl_login(config, name)) if protocol in SASL_PROTOCOLS else None
    return ConnectionSecurity(ssl_context=context, authenticate=authenticate)


def _tls_context(config: BrokerConfig, listener: str, protocol: str) -> ssl.SSLContext:
    settings = TlsSettings.from_lookup(functools.partial(config.listener_setting, listener))
    try:
        return client_context(settings)
    except Exception as exc:  # TlsConfigError, ssl.SSLError, OSError: all mean the same here
        raise ConfigError(
            f"listener.name.{listener.lower()}.ssl.truststore.location",
            f"inter-broker listener {listener} ({protocol}): cannot connect to other brokers with TLS: {exc}",
        ) from None


def sasl_login(config: BrokerConfig, listener: str) -> Callable[[], ClientMechanism]:
    """A factory of the client mechanism this broker logs in to others with on `listener`."""
    mechanism = config.sasl_mechanism_inter_broker_protocol.strip().upper()
    if mechanism == GSSAPI:
        raise ConfigError(
            MECHANISM_KEY,
            f"{MECHANISM_KEY}=GSSAPI (Kafka's default): Kerberos is not supported by kafkapy; set it to one of "
            f"{', '.join(LOGIN_MECHANISMS)} enabled on the inter-broker listener {listener}",
        )
    if mechanism not in LOGIN_MECHANISMS:
        raise ConfigError(
            MECHANISM_KEY,
            f"{MECHANISM_KEY}={mechanism}: kafkapy brokers cannot log in to each other with it; "
            f"use one of {', '.join(LOGIN_MECHANISMS)}",
        )
    enabled = [str(m).strip().upper() for m in config.listener_setting(listener, "sasl.enabled.mechanisms")]
    if mechanism not in enabled:
        raise ConfigError(
            MECHANISM_KEY,
            f"{NOT_ENABLED} (listener {listener} enables {','.join(m for m in enabled if m) or 'none'})",
            NOT_ENABLED,
        )
    key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    text = _login_config(config, listener, mechanism)
    if text is None:
        raise ConfigError(
            key,
            f"{key} (or sasl.jaas.config) is not set: the inter-broker listener {listener} needs the broker's own "
            f"login for {mechanism} (username and password options)",
        )
    try:
        return client_mechanism(mechanism, text)
    except (jaas.JaasError, ValueError) as exc:
        raise ConfigError(key, f"{key}: {exc}") from None


def _login_config(config: BrokerConfig, listener: str, mechanism: str) -> str | None:
    """The JAAS text for `mechanism` on `listener`, in the order the server side reads it."""
    raw = config.explicit.get(f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config")
    value = BROKER_KEYS["sasl.jaas.config"].parse(raw) if raw is not None else None
    if value is None:
        value = config.listener_setting(listener, "sasl.jaas.config")
    text = str(value) if value is not None else ""
    return text if text.strip() else None
