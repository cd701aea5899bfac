"""How this broker reaches the others: the inter-broker listener and its security.

Replica fetchers (fetcher.py) and transaction markers (markers.py) connect to
another broker's inter-broker endpoint (`BrokerInfo.host`/`port`, registered
from `inter.broker.listener.name`, or the listener named like
`security.inter.broker.protocol`) with the client-side settings of that
listener. PLAINTEXT needs none. SSL and SASL_* need the TLS client context
(`listener.name.<listener>.ssl.*`) and the client SASL mechanism
(`sasl.mechanism.inter.broker.protocol` with the listener's JAAS login), which
plug into `kafkapy.client.ConnectionSecurity`; until they exist here, a
broker whose inter-broker listener is not PLAINTEXT refuses to start.
"""

from __future__ import annotations

from kafkapy.client import PLAINTEXT_SECURITY, ConnectionSecurity
from kafkapy.config import BrokerConfig, ConfigError


def inter_broker_security(config: BrokerConfig) -> ConnectionSecurity:
    """The security of connections to other brokers; ConfigError when it cannot be built."""
    name, protocol = config.inter_broker_listener()
    if protocol == "PLAINTEXT":
        return PLAINTEXT_SECURITY
    raise ConfigError(
        "inter.broker.listener.name",
        f"inter-broker listener {name} uses security protocol {protocol}, "
        "which this broker cannot yet use to connect to other brokers",
    )
