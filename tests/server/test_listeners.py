"""Named listeners: config rules (Kafka 4.3.1's messages, checked against its KafkaConfig) and
which endpoints a request is answered with."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from kafkapy.cluster.metadata import BrokerInfo, Endpoint
from kafkapy.config import BrokerConfig, ConfigError
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.metadata_response import MetadataResponsePartition, MetadataResponseTopic
from kafkapy.server.handlers.metadata import _hide_leaders_off_listener
from kafkapy.server.listeners import client_listener, visible_brokers

TWO = [
    ("listeners", "INSIDE://0.0.0.0:9092,OUTSIDE://0.0.0.0:29092"),
    ("advertised.listeners", "INSIDE://kafka:9092,OUTSIDE://localhost:29092"),
    ("listener.security.protocol.map", "INSIDE:PLAINTEXT,OUTSIDE:PLAINTEXT"),
]


def config(*extra: tuple[str, str]) -> BrokerConfig:
    return BrokerConfig.from_pairs([*TWO, *extra])


def test_inter_broker_listener_named() -> None:
    assert config(("inter.broker.listener.name", "inside")).inter_broker_listener() == ("INSIDE", "PLAINTEXT")


def test_inter_broker_listener_from_the_protocol() -> None:
    c = BrokerConfig.from_pairs(
        [
            ("listeners", "PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:2"),
            ("security.inter.broker.protocol", "SASL_PLAINTEXT"),
        ]
    )
    assert c.inter_broker_listener() == ("SASL_PLAINTEXT", "SASL_PLAINTEXT")
    assert BrokerConfig().inter_broker_listener() == ("PLAINTEXT", "PLAINTEXT")


def test_default_protocol_needs_a_plaintext_listener() -> None:
    with pytest.raises(ConfigError) as e:
        config().inter_broker_listener()
    assert e.value.message == (
        "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
        "The valid options based on currently configured listeners are INSIDE,OUTSIDE"
    )


def test_inter_broker_listener_must_be_advertised() -> None:
    c = BrokerConfig.from_pairs(
        [
            ("listeners", "PLAINTEXT://127.0.0.1:1,OTHER://127.0.0.1:2"),
            ("advertised.listeners", "PLAINTEXT://127.0.0.1:1"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"),
            ("inter.broker.listener.name", "OTHER"),
        ]
    )
    with pytest.raises(ConfigError, match=r"The valid options based on currently configured listeners are PLAINTEXT$"):
        c.inter_broker_listener()


def test_both_keys_set_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        config(
            ("inter.broker.listener.name", "INSIDE"), ("security.inter.broker.protocol", "PLAINTEXT")
        ).inter_broker_listener()
    assert e.value.message == "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set."


def test_unknown_inter_broker_listener() -> None:
    with pytest.raises(ConfigError) as e:
        config(("inter.broker.listener.name", "FOO")).inter_broker_listener()
    assert e.value.message == (
        "Listener with name FOO defined in inter.broker.listener.name not found in listener.security.protocol.map."
    )


def test_bad_inter_broker_protocol() -> None:
    with pytest.raises(ConfigError) as e:
        BrokerConfig.from_pairs([("security.inter.broker.protocol", "FOO")])
    assert "String must be one of: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL" in str(e.value)


def test_advertised_listener_rules() -> None:
    with pytest.raises(ConfigError) as e:
        BrokerConfig.from_pairs([("advertised.listeners", "PLAINTEXT://h:1,XX://h:2")])
    assert e.value.message == (
        "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. "
        "Found PLAINTEXT,XX. The valid options based on the current configuration are PLAINTEXT"
    )
    with pytest.raises(ConfigError) as e:
        BrokerConfig.from_pairs([("advertised.listeners", "PLAINTEXT://0.0.0.0:1")])
    assert e.value.message == (
        "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address."
    )


def _ctx(listener: str | None, me: BrokerInfo) -> Any:
    conn = None if listener is None else SimpleNamespace(listener_name=listener)
    return SimpleNamespace(conn=conn, state=SimpleNamespace(advertised=me))


def test_each_listener_sees_its_own_endpoints() -> None:
    one = BrokerInfo(1, "i1", 1, None, {"OUTSIDE": Endpoint("o1", 11), "INSIDE": Endpoint("i1", 1)})
    two = BrokerInfo(2, "i2", 2, None, {"INSIDE": Endpoint("i2", 2)})  # no OUTSIDE listener
    old = BrokerInfo(3, "h3", 3)  # registered by an older kafkapy: host/port on every listener
    brokers = [one, two, old]
    seen = {
        name: [(b.node_id, e.host, e.port) for b, e in visible_brokers(_ctx(name, one), brokers)]
        for name in ("INSIDE", "OUTSIDE", None)
    }
    assert seen["INSIDE"] == [(1, "i1", 1), (2, "i2", 2), (3, "h3", 3)]
    assert seen["OUTSIDE"] == [(1, "o1", 11), (3, "h3", 3)]
    assert seen[None] == seen["OUTSIDE"]  # in-process: this broker's first advertised listener
    assert client_listener(_ctx(None, one)) == "OUTSIDE"


@pytest.mark.parametrize(("version", "code"), [(5, ErrorCode.LEADER_NOT_AVAILABLE), (6, ErrorCode.LISTENER_NOT_FOUND)])
def test_leader_without_the_listener(version: int, code: int) -> None:
    def part(index: int, leader: int) -> MetadataResponsePartition:
        return MetadataResponsePartition(error_code=0, partition_index=index, leader_id=leader, replica_nodes=[1, 2])

    topic = MetadataResponseTopic(error_code=0, name="t", partitions=[part(0, 1), part(1, 2), part(2, 7)])
    _hide_leaders_off_listener([topic], visible={1}, registered={1, 2}, version=version)
    assert [(p.error_code, p.leader_id) for p in topic.partitions] == [(0, 1), (code, -1), (0, 7)]
