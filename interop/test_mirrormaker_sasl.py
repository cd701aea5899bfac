"""Kafka's own MirrorMaker 2 (dedicated mode, interop/mirror.py) between two
SASL_SSL kafkapy brokers, `us` and `eu`, replicating us -> eu.

Each broker serves clients on a SASL_SSL listener only (TLS from a PEM keystore
made at test time by interop/certs.py; its PLAINTEXT INTERNAL listener is the
inter-broker one). MM2 authenticates with PLAIN on us and SCRAM-SHA-512 on eu
(the SCRAM user created through AlterUserScramCredentials), trusting the test
CA through a PEM truststore. Records (keys, headers, timestamps, order) and
group offsets (checkpoints, sync.group.offsets.enabled) are mirrored as in
interop/test_mirrormaker.py; the brokers' logs show MM2 authenticated on the
SASL_SSL listener of each. Both brokers run kafkapy's authorizer (super users
admin, mm2 and app), and MM2's topic ACL sync copies a READ ACL to eu.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from interop import test_mirrormaker as plain
from interop._common import BrokerProcess, start_broker
from interop.adapters.java import available
from interop.certs import Pki, broker_pem_settings, make_pki
from interop.mirror import MirrorMakerProcess, start_mirror_maker
from interop.test_mirrormaker import Record, wait_for

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_mirrormaker_sasl.py: {_missing} (scripts/test installs and builds it)")

T = TypeVar("T")
BASE_TS = 1_700_000_000_000
PLAIN_USERS = {"admin": "admin-secret", "mm2": "mm2-us-secret", "app": "app-secret"}
SCRAM_USERS = {"mm2": "mm2-eu-secret", "app": "app-eu-secret"}
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def _plain_jaas() -> str:
    users = " ".join(f'user_{name}="{password}"' for name, password in PLAIN_USERS.items())
    return f'{PLAIN_MODULE} required username="admin" password="admin-secret" {users};'


def start_sasl_ssl_broker(root: Path, name: str, pki: Pki) -> BrokerProcess:
    """Clients on SASL_SSL (PLAIN and SCRAM-SHA-512); PLAINTEXT only as the inter-broker listener."""
    settings = {
        "listeners": "SASL_SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": _plain_jaas(),
        "group.initial.rebalance.delay.ms": "0",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:mm2;User:app",
        **broker_pem_settings(pki, "SASL_SSL"),
    }
    return start_broker(root / name / "data", settings)


def client_conf(broker: BrokerProcess, pki: Pki, mechanism: str, user: str, password: str) -> dict[str, Any]:
    """librdkafka over SASL_SSL."""
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(pki.ca),
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def mm2_cluster_settings(alias: str, pki: Pki, mechanism: str, jaas: str) -> dict[str, str]:
    """`<alias>.`-prefixed client settings in mm2.properties (every MM2 client of that cluster)."""
    return {
        f"{alias}.security.protocol": "SASL_SSL",
        f"{alias}.sasl.mechanism": mechanism,
        f"{alias}.sasl.jaas.config": jaas,
        f"{alias}.ssl.truststore.type": "PEM",
        f"{alias}.ssl.truststore.location": str(pki.ca),
    }


class Cluster:
    """One SASL_SSL broker and how the application connects to it."""

    def __init__(self, broker: BrokerProcess, conf: dict[str, Any]) -> None:
        self.broker = broker
        self.conf = conf

    def topics(self) -> dict[str, int]:
        md = AdminClient(self.conf).list_topics(timeout=10)
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def create_topic(self, name: str, partitions: int) -> None:
        admin = AdminClient(self.conf)  # kept alive until the futures resolve
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(15)

    def create_read_acl(self, topic: str, principal: str) -> None:
        admin = AdminClient(self.conf)
        binding = AclBinding(
            ResourceType.TOPIC,
            topic,
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        )
        for future in admin.create_acls([binding]).values():
            future.result(15)

    def topic_acls(self, topic: str) -> list[tuple[str, str, str, str]]:
        admin = AdminClient(self.conf)
        filt = AclBindingFilter(
            ResourceType.TOPIC,
            topic,
            ResourcePatternType.LITERAL,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        found = admin.describe_acls(filt).result(15)
        return sorted((b.principal, b.host, b.operation.name, b.permission_type.name) for b in found)

    def produce(self, topic: str, records: list[Record]) -> None:
        plain.produce(self.conf, topic, records)

    def read_all(self, topic: str, partitions: int, expect: int, timeout: float = 40.0) -> list[Any]:
        return plain.read_all(self.conf, topic, partitions, expect, timeout)

    def consume_group(self, group: str, topic: str, count: int, commit: bool) -> list[bytes]:
        return plain.consume_group(self.conf, group, topic, count, commit)

    def committed(self, group: str, topic: str, partition: int) -> int:
        return plain.committed(self.conf, group, topic, partition)

    def authenticated(self) -> list[dict[str, Any]]:
        """The broker's `authenticated` log events."""
        found = []
        for line in self.broker.log_path.read_text(errors="replace").splitlines():
            if '"authenticated"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "authenticated":
                found.append(event)
        return found


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def regions(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cluster]]:
    root = tmp_path_factory.mktemp("sasl-regions")
    us = start_sasl_ssl_broker(root, "us", pki)
    eu = None
    try:
        eu = start_sasl_ssl_broker(root, "eu", pki)
        admin = AdminClient(client_conf(eu, pki, "PLAIN", "admin", "admin-secret"))
        for user, password in SCRAM_USERS.items():
            info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
            upsert = UserScramCredentialUpsertion(user, info, password.encode())
            for future in admin.alter_user_scram_credentials([upsert]).values():
                future.result(15)
        yield {
            "us": Cluster(us, client_conf(us, pki, "PLAIN", "app", PLAIN_USERS["app"])),
            "eu": Cluster(eu, client_conf(eu, pki, "SCRAM-SHA-512", "app", SCRAM_USERS["app"])),
        }
    finally:
        us.stop()
        if eu is not None:
            eu.stop()


@pytest.fixture(scope="module")
def mm2(
    regions: dict[str, Cluster], pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MirrorMakerProcess]:
    regions["us"].create_topic("orders", 3)
    regions["us"].create_topic("failover", 1)
    regions["us"].create_read_acl("orders", "User:reader")
    settings = {
        **mm2_cluster_settings(
            "us", pki, "PLAIN", f'{PLAIN_MODULE} required username="mm2" password="{PLAIN_USERS["mm2"]}";'
        ),
        **mm2_cluster_settings(
            "eu", pki, "SCRAM-SHA-512", f'{SCRAM_MODULE} required username="mm2" password="{SCRAM_USERS["mm2"]}";'
        ),
    }
    mm = start_mirror_maker(
        tmp_path_factory.mktemp("mm2-sasl"),
        {alias: c.broker.bootstrap for alias, c in regions.items()},
        [("us", "eu")],
        topics="orders|failover",
        groups="app.*",
        settings={**settings, "sync.topic.acls.interval.seconds": "2"},
    )
    try:
        yield mm
    finally:
        code = mm.stop()
        errors = mm.errors()
        if code not in (0, 143, None) or errors:
            print(f"\nMirrorMaker ({mm.log_path}) exited with {code}; errors:\n" + "\n".join(errors[-10:]))


def _record(i: int, partitions: int) -> Record:
    return (i % partitions, f"key-{i}".encode(), f"value-{i}".encode(), [("seq", str(i).encode())], BASE_TS + i)


def test_records_mirrored_over_sasl_ssl(regions: dict[str, Cluster], mm2: MirrorMakerProcess) -> None:
    us, eu = regions["us"], regions["eu"]
    sent = [_record(i, 3) for i in range(60)]
    us.produce("orders", sent)
    wait_for("us.orders on eu with 3 partitions", lambda: eu.topics().get("us.orders") == 3)
    got = eu.read_all("us.orders", 3, len(sent))
    assert len(got) == len(sent), f"{len(got)} of {len(sent)} records replicated"
    for partition in range(3):
        want = [r for r in sent if r[0] == partition]
        have = [m for m in got if m.partition() == partition]
        assert [m.offset() for m in have] == list(range(len(want)))
        assert [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in have] == [
            (k, v, h, ts) for _, k, v, h, ts in want
        ]


def test_group_offsets_mirrored_over_sasl_ssl(regions: dict[str, Cluster], mm2: MirrorMakerProcess) -> None:
    us, eu = regions["us"], regions["eu"]
    values = [f"f-{i}".encode() for i in range(150)]
    us.produce("failover", [(0, f"k{i}".encode(), v, [], BASE_TS + i) for i, v in enumerate(values[:100])])
    wait_for("us.failover on eu fully replicated", lambda: len(eu.read_all("us.failover", 1, 100, timeout=5)) == 100)

    # behind: 60 of 100 committed on us; the translated offset never skips a record
    assert us.consume_group("app-failover", "failover", 60, commit=True) == values[:60]
    translated = wait_for(
        "app-failover's offset on us.failover translated on eu",
        lambda: ((o := eu.committed("app-failover", "us.failover", 0)) > 0 and o) or None,
    )
    assert 0 < translated <= 60, f"translated offset {translated} (committed 60 on us)"

    # caught up: eu's group offset follows to 100, and failing over re-reads nothing
    assert us.consume_group("app-failover", "failover", 40, commit=True) == values[60:100]
    translated = wait_for(
        "app-failover's offset on eu following the commit of 100 on us",
        lambda: ((o := eu.committed("app-failover", "us.failover", 0)) >= 100 and o) or None,
    )
    assert translated == 100
    us.produce("failover", [(0, f"k{i}".encode(), values[i], [], BASE_TS + i) for i in range(100, 150)])
    wait_for("the 50 new records on eu", lambda: len(eu.read_all("us.failover", 1, 150, timeout=5)) == 150)
    assert eu.consume_group("app-failover", "us.failover", 50, commit=False) == values[100:150]


def test_topic_acls_synced(regions: dict[str, Cluster], mm2: MirrorMakerProcess) -> None:
    """MM2's topic ACL sync between two brokers with kafkapy's authorizer (StandardAuthorizer's
    name): User:reader's READ on us' `orders` becomes READ on eu's `us.orders`."""
    acls = wait_for("the READ ACL of us.orders on eu", lambda: regions["eu"].topic_acls("us.orders"), timeout=30)
    assert acls == [("User:reader", "*", "READ", "ALLOW")]


def test_mm2_authenticated_on_each_cluster(regions: dict[str, Cluster], mm2: MirrorMakerProcess) -> None:
    """MM2's clients authenticated as User:mm2 on the SASL_SSL listener of both brokers, with the
    mechanism each cluster's settings name, and logged no error."""
    for alias, mechanism in (("us", "PLAIN"), ("eu", "SCRAM-SHA-512")):
        mm2_events = [e for e in regions[alias].authenticated() if e.get("principal") == "User:mm2"]
        assert mm2_events, f"no authenticated User:mm2 on {alias}"
        assert {(e["listener"], e["mechanism"]) for e in mm2_events} == {("SASL_SSL", mechanism)}
    assert mm2.errors() == []
