"""Brokers of a local cluster whose inter-broker listener is authenticated and encrypted.

Each broker has two listeners: CLIENT (PLAINTEXT, where test clients connect) and INTERNAL
(`inter.broker.listener.name`, TLS with certificates from interop/certs.py): replica fetchers,
transaction markers and everything else one broker sends another go there only.

Variants of INTERNAL:
- `scram`: SASL_SSL with SCRAM-SHA-512, no authorizer; sessions last REAUTH_MS. The broker user's
  credential must be added after start (`kafkapy users add`): fetchers retry until it exists.
- `plain`: SASL_SSL with PLAIN (users in the JAAS line), the StandardAuthorizer with
  `super.users=User:broker` and `allow.everyone.if.no.acl.found=true`: every request is authorized,
  clients need no ACLs.
- `acl`: as `plain` without allow.everyone: clients need ACLs.
- `mtls`: SSL with `ssl.client.auth=required`; each broker's certificate maps to User:broker
  (`ssl.principal.mapping.rules`), the only super user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from interop.certs import Pki, broker_pem_settings
from kafkapy.testing import free_port

if TYPE_CHECKING:
    from kafkapy.local_cluster import LocalCluster

HOST = "127.0.0.1"
REAUTH_MS = 1000  # connections.max.reauth.ms of the scram variant
BROKER_USER, BROKER_PASSWORD = "broker", "broker-secret"
SCRAM_LOGIN = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    f'username="{BROKER_USER}" password="{BROKER_PASSWORD}";'
)
MTLS_RULES = f"RULE:^CN=[^,]+,OU=Brokers,.*$/{BROKER_USER}/,DEFAULT"  # the broker certificate's subject
PLAIN_LOGIN = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="{BROKER_USER}" password="{BROKER_PASSWORD}" user_{BROKER_USER}="{BROKER_PASSWORD}";'
)
VARIANTS = ("scram", "plain", "acl", "mtls")


def inter_broker_settings(variant: str, pki: Pki, client: int, internal: int) -> dict[str, str]:
    """One broker's listeners and INTERNAL's security settings."""
    listeners = f"CLIENT://{HOST}:{client},INTERNAL://{HOST}:{internal}"
    settings = {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:SASL_SSL",
        "inter.broker.listener.name": "INTERNAL",
        "replica.fetch.backoff.ms": "200",
        **broker_pem_settings(pki, "INTERNAL"),
    }
    if variant == "mtls":
        settings |= {
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:SSL",
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.internal.ssl.principal.mapping.rules": MTLS_RULES,
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": f"User:{BROKER_USER}",
        }
    elif variant == "scram":
        settings |= {
            "connections.max.reauth.ms": str(REAUTH_MS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.internal.scram-sha-512.sasl.jaas.config": SCRAM_LOGIN,
        }
    elif variant in ("plain", "acl"):
        settings |= {
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": PLAIN_LOGIN,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER_USER}",
        }
        if variant == "plain":
            settings["allow.everyone.if.no.acl.found"] = "true"
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return settings


@dataclass(slots=True)
class SecureBrokers:
    """LocalCluster's `per_broker`: free CLIENT and INTERNAL ports per broker; `internal` keeps the
    latter (node id -> port)."""

    variant: str
    pki: Pki
    internal: dict[int, int] = field(default_factory=dict)

    def __call__(self, node_id: int) -> tuple[int, dict[str, str]]:
        client, self.internal[node_id] = free_port(HOST), free_port(HOST)
        return client, inter_broker_settings(self.variant, self.pki, client, self.internal[node_id])


def authenticated_brokers(cluster: LocalCluster) -> set[int]:
    """Brokers whose log shows the broker user logged in on INTERNAL (where no test client goes)."""
    found = set()
    for node, b in cluster.brokers.items():
        text = b.log_path.read_text(errors="replace")
        if "authenticated" in text and f"User:{BROKER_USER}" in text and "INTERNAL" in text:
            found.add(node)
    return found
