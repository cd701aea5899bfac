"""Dynamic group configs (GROUP config resources, KIP-848/932/1071): the keys, their broker-wide
defaults and validation, as Apache Kafka 4.3.1 describes and checks them.

A group's keys are set with IncrementalAlterConfigs (resource type GROUP) and kept in the
metadata store (`group_configs()`); a key not set falls back to its broker config (the synonym),
or Kafka's default where kafkapy has no such broker config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kafkapy.config import BrokerConfig, ConfigType

EARLIEST, LATEST = "earliest", "latest"
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I)


@dataclass(frozen=True, slots=True)
class GroupKey:
    name: str
    config_type: ConfigType
    synonym: str  # the broker config it defaults to
    default: str  # Kafka's default, for a broker config kafkapy does not have
    at_least: int | None = None


# In the order Kafka 4.3.1 lists them.
KEYS: tuple[GroupKey, ...] = (
    GroupKey("consumer.session.timeout.ms", ConfigType.INT, "group.consumer.session.timeout.ms", "45000", 1),
    GroupKey("consumer.assignment.interval.ms", ConfigType.INT, "group.consumer.assignment.interval.ms", "1000", 0),
    GroupKey("share.auto.offset.reset", ConfigType.STRING, "share.auto.offset.reset", LATEST),
    GroupKey("share.renew.acknowledge.enable", ConfigType.BOOLEAN, "share.renew.acknowledge.enable", "true"),
    GroupKey(
        "streams.initial.rebalance.delay.ms", ConfigType.INT, "group.streams.initial.rebalance.delay.ms", "3000", 0
    ),
    GroupKey("share.session.timeout.ms", ConfigType.INT, "group.share.session.timeout.ms", "45000", 1),
    GroupKey("streams.assignment.interval.ms", ConfigType.INT, "group.streams.assignment.interval.ms", "1000", 0),
    GroupKey("share.heartbeat.interval.ms", ConfigType.INT, "group.share.heartbeat.interval.ms", "5000", 1),
    GroupKey("streams.heartbeat.interval.ms", ConfigType.INT, "group.streams.heartbeat.interval.ms", "5000", 1),
    GroupKey("share.delivery.count.limit", ConfigType.INT, "group.share.delivery.count.limit", "5", 2),
    GroupKey("consumer.heartbeat.interval.ms", ConfigType.INT, "group.consumer.heartbeat.interval.ms", "5000", 1),
    GroupKey("share.record.lock.duration.ms", ConfigType.INT, "group.share.record.lock.duration.ms", "30000", 1000),
    GroupKey("share.assignment.interval.ms", ConfigType.INT, "group.share.assignment.interval.ms", "1000", 0),
    GroupKey("share.isolation.level", ConfigType.STRING, "share.isolation.level", "read_uncommitted"),
    GroupKey("streams.session.timeout.ms", ConfigType.INT, "group.streams.session.timeout.ms", "45000", 1),
    GroupKey("share.partition.max.record.locks", ConfigType.INT, "group.share.partition.max.record.locks", "2000", 100),
    GroupKey("streams.num.standby.replicas", ConfigType.INT, "group.streams.num.standby.replicas", "0", 0),
)
BY_NAME = {k.name: k for k in KEYS}


class GroupConfigError(ValueError):
    """A key or value Kafka refuses (INVALID_CONFIG), with Kafka's message."""


def broker_default(config: BrokerConfig, key: GroupKey) -> str:
    """The key's value when the group does not set it: its broker config, else Kafka's default."""
    value = getattr(config, key.synonym.replace(".", "_"), None)
    if value is None:
        return key.default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def duration_ms(text: str) -> int | None:
    """An ISO-8601 duration (PnDTnHnMn.nS, as Java's Duration.parse) in ms, or None."""
    m = _DURATION.match(text)
    if m is None or not any(m.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000)


def validate(name: str, value: str) -> None:
    """GroupConfigError for a value Kafka refuses."""
    key = BY_NAME.get(name)
    if key is None:
        raise GroupConfigError(f"Unknown group config name: {name}")
    prefix = f"Invalid value {value} for configuration {name}"
    if key.config_type == ConfigType.INT:
        try:
            n = int(value.strip())
        except ValueError:
            raise GroupConfigError(f"{prefix}: Not a number of type INT") from None
        if key.at_least is not None and n < key.at_least:
            raise GroupConfigError(f"{prefix}: Value must be at least {key.at_least}")
    elif key.config_type == ConfigType.BOOLEAN:
        if value.strip().lower() not in ("true", "false"):
            raise GroupConfigError(f"{prefix}: Expected value to be either true or false")
    elif name == "share.auto.offset.reset":
        v = value.strip().lower()
        if v not in (EARLIEST, LATEST) and not (v.startswith("by_duration:") and duration_ms(value.strip()[12:])):
            raise GroupConfigError(
                f"{prefix}: Invalid value `{value}` for configuration share.auto.offset.reset. The value must be "
                "either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
            )
    elif name == "share.isolation.level" and value not in ("read_committed", "read_uncommitted"):
        raise GroupConfigError(f"{prefix}: String must be one of: read_committed, read_uncommitted")


def effective(config: BrokerConfig, group: Mapping[str, str], name: str) -> str:
    """The value of key `name` for a group with dynamic configs `group`."""
    if name in group:
        return group[name]
    return broker_default(config, BY_NAME[name])


def effective_int(config: BrokerConfig, group: Mapping[str, str], name: str) -> int:
    return int(effective(config, group, name).strip())
