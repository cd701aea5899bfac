"""Client-side SASL from Kafka's client settings, for connections a broker opens itself
(inter-broker: replica fetchers, transaction markers) and for tools.

`client_mechanism(mechanism, jaas_config)` reads the `username` and `password`
options of the JAAS entry, as Kafka's clients do with
`sasl.jaas.config` / `listener.name.<listener>.<mechanism>.sasl.jaas.config` on the
inter-broker listener (`sasl.mechanism.inter.broker.protocol` names the mechanism),
and returns a factory of fresh mechanisms in kafkapy.client's SaslClientMechanism
shape (one per connection).
"""

from __future__ import annotations

from collections.abc import Callable

from kafkapy.security import jaas
from kafkapy.security.sasl_base import PLAIN
from kafkapy.security.sasl_plain import PlainClient
from kafkapy.security.scram import MECHANISMS, ScramClientMechanism

ClientMechanism = PlainClient | ScramClientMechanism


def client_mechanism(mechanism: str, jaas_config: str) -> Callable[[], ClientMechanism]:
    """A factory of client mechanisms; ValueError (or JaasError) when the settings cannot work."""
    entry = jaas.parse_single(jaas_config)
    username, password = entry.options.get("username"), entry.options.get("password")
    if not username or password is None:
        raise ValueError(f"the JAAS config for {mechanism} needs username and password options")
    if mechanism == PLAIN:
        return lambda: PlainClient(username, password)
    if mechanism in MECHANISMS:
        return lambda: ScramClientMechanism(mechanism, username, password)
    raise ValueError(f"kafkapy cannot authenticate to other brokers with SASL mechanism {mechanism}")
