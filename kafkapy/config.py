"""Broker and topic configuration.

`BROKER_CONFIGS` is the single source for every broker key kafkapy knows:
its Kafka name, the `BrokerConfig` attribute it fills, its type, default and
doc. `BrokerConfig.describe()` reads it to answer DescribeConfigs for the
broker resource. `TOPIC_CONFIGS` does the same for per-topic keys, whose
defaults come from the broker's synonyms (e.g. `retention.ms` from
`log.retention.{ms,minutes,hours}`).

Loading order: `server.properties` file, then overrides in the order given.
Unknown keys are kept (Kafka does not reject them either) and logged at debug.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1


class ConfigError(ValueError):
    """An invalid configuration value; `key` names the offending key.

    `kafka_message` is the text Apache Kafka gives for the same problem (what
    the admin APIs answer); str() is the shorter form the CLI prints.
    """

    def __init__(self, key: str, message: str, kafka_message: str | None = None) -> None:
        super().__init__(f"invalid value for {key!r}: {message}")
        self.key = key
        self.message = message
        self.kafka_message = kafka_message if kafka_message is not None else message


class ConfigType(enum.IntEnum):
    """Kafka's ConfigDef types, numbered as DescribeConfigs (v3+) reports them."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(enum.IntEnum):
    """Kafka's DescribeConfigs ConfigSource enum."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


# ---------------------------------------------------------------------------
# Value parsing and validation

_INT_RANGES: dict[ConfigType, tuple[int, int]] = {
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.INT: (-(2**31), INT_MAX),
    ConfigType.LONG: (-(2**63), LONG_MAX),
}

Validator = Callable[[str, Any], None]
"""Checks the typed value of config `name`; raises ConfigError with Kafka's message."""

# Java's Integer/Long.parseLong: a sign and decimal digits (Unicode digits too), nothing else.
_JAVA_INT = re.compile(r"[+-]?\d+")
# Java's Double.parseDouble: decimal or hex floats, NaN, Infinity, an optional f/d suffix.
_JAVA_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)")
_JAVA_HEX_DOUBLE = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")
_LIST_SEPARATOR = re.compile(r"\s*,\s*")


def java_trim(text: str) -> str:
    """String.trim(): drops characters up to U+0020 at both ends (not other Unicode spaces)."""
    lo, hi = 0, len(text)
    while lo < hi and text[lo] <= " ":
        lo += 1
    while hi > lo and text[hi - 1] <= " ":
        hi -= 1
    return text[lo:hi]


def _java_double(text: str) -> float | None:
    if _JAVA_DOUBLE.fullmatch(text):
        body = text.rstrip("fFdD") if not text.endswith("Infinity") else text
        return float(body.replace("Infinity", "inf").replace("NaN", "nan"))
    if _JAVA_HEX_DOUBLE.fullmatch(text):
        return float.fromhex(text.rstrip("fFdD"))
    return None


def java_double_str(value: float) -> str:
    """Double.toString: plain between 1e-3 and 1e7, else d.dddE[-]n (shortest digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return f"{sign}0.0"
    exact = Decimal(repr(abs(value))).normalize()
    if 1e-3 <= abs(value) < 1e7:
        text = format(exact, "f")
        return sign + (text if "." in text else text + ".0")
    _, digits, exponent = exact.as_tuple()
    text = "".join(map(str, digits))
    assert isinstance(exponent, int)
    return f"{sign}{text[0]}.{text[1:] or '0'}E{len(text) - 1 + exponent}"


def java_str(value: Any) -> str:
    """A typed value as Kafka prints it in messages (Java's toString)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    return str(value)


def invalid(name: str, value: Any, reason: str) -> ConfigError:
    """Kafka's ConfigException(name, value, reason)."""
    shown = value if isinstance(value, str) else java_str(value)
    return ConfigError(name, reason, f"Invalid value {shown} for configuration {name}: {reason}")


def parse_value(key: str, ctype: ConfigType, raw: str, nullable: bool = False) -> Any:
    """Convert a raw string to the typed value Kafka's ConfigDef would produce."""
    text = java_trim(raw)
    if nullable and text == "" and ctype is ConfigType.STRING:
        return None
    if ctype is ConfigType.BOOLEAN:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        raise invalid(key, raw, "Expected value to be either true or false")
    if ctype in _INT_RANGES:
        lo, hi = _INT_RANGES[ctype]
        number = int(text) if _JAVA_INT.fullmatch(text) else None
        if number is None or not lo <= number <= hi:
            raise invalid(key, raw, f"Not a number of type {ctype.name}")
        return number
    if ctype is ConfigType.DOUBLE:
        parsed = _java_double(text)
        if parsed is None:
            raise invalid(key, raw, "Not a number of type DOUBLE")
        return parsed
    if ctype is ConfigType.LIST:
        return _LIST_SEPARATOR.split(text) if text else []
    return text


def format_value(ctype: ConfigType, value: Any) -> str | None:
    """Render a typed value the way Kafka reports it in DescribeConfigs."""
    if value is None:
        return None
    if ctype is ConfigType.BOOLEAN:
        return "true" if value else "false"
    if ctype is ConfigType.LIST:
        return ",".join(str(v) for v in value)
    if ctype is ConfigType.DOUBLE:
        return java_double_str(float(value))
    return str(value)


def at_least(minimum: int) -> Validator:
    """Kafka's Range.atLeast."""

    def check(name: str, value: Any) -> None:
        if value is not None and value < minimum:
            raise invalid(name, value, f"Value must be at least {minimum}")

    return check


def between(lo: int, hi: int) -> Validator:
    """Kafka's Range.between (NaN passes, as in Java)."""

    def check(name: str, value: Any) -> None:
        if value is None:
            return
        if value < lo:
            raise invalid(name, value, f"Value must be at least {lo}")
        if value > hi:
            raise invalid(name, value, f"Value must be no more than {hi}")

    return check


def between_or(lo: int, hi: int, extra: int) -> Validator:
    """Range lo..hi or one extra value (gzip's compression level: 1..9 or -1)."""

    def check(name: str, value: Any) -> None:
        if value is not None and value != extra and not lo <= value <= hi:
            raise invalid(name, value, f"Value must be between {lo} and {hi} or equal to {extra}")

    return check


def one_of(*choices: str) -> Validator:
    """Kafka's ValidString.in (case-sensitive)."""

    def check(name: str, value: Any) -> None:
        if value is not None and value not in choices:
            raise invalid(name, value, f"String must be one of: {', '.join(choices)}")

    return check


def list_of(*choices: str) -> Validator:
    """Kafka's ValidList.in: no empty items, each one of `choices`; an empty list is fine."""
    item = one_of(*choices)

    def check(name: str, value: Any) -> None:
        for v in value or []:
            if v == "":
                raise ConfigError(name, "values must not be empty", f"Configuration '{name}' values must not be empty.")
            item(name, v)

    return check


_REPLICA = re.compile(r"(?:[0-9]+:[0-9]+)?")


def _throttled_replicas(name: str, value: Any) -> None:
    """`*` alone, or partition:broker pairs (empty items allowed), as Kafka's ThrottledReplicaListValidator."""
    items = value or []
    if items == ["*"] or all(_REPLICA.fullmatch(v) for v in items):
        return
    raise invalid(
        name,
        items,
        f"{name} must be the literal '*' or a list of replicas in the following format: "
        "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
    )


def non_empty_list(then: Validator | None = None) -> Validator:
    """Kafka's ValidList.anyNonDuplicateValues(false, ...): at least one item, none empty; then `then`."""

    def check(name: str, value: Any) -> None:
        if not value:
            raise ConfigError(
                name,
                "must not be empty",
                f"Configuration '{name}' must not be empty. Valid values include: any non-empty value",
            )
        if any(v == "" for v in value):
            raise ConfigError(name, "values must not be empty", f"Configuration '{name}' values must not be empty.")
        if then is not None:
            then(name, value)

    return check


def _valid_listeners(name: str, value: Any) -> None:
    try:
        parse_listeners(value if isinstance(value, list) else [value])
    except ValueError as exc:
        raise invalid(name, value, str(exc)) from None


def _valid_host_port(name: str, value: Any) -> None:
    """Empty, or HOST:PORT with a port 0-65535 (HOST may be empty or a [bracketed] IPv6 address)."""
    if not value:
        return
    _, sep, port = str(value).strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise invalid(name, value, "expected HOST:PORT")


def _valid_assignors(name: str, value: Any) -> None:
    """group.consumer.assignors: uniform/range, by name or by Kafka's class names."""
    names = [str(v).rsplit(".", 1)[-1].lower().removesuffix("assignor") for v in value or []]
    if not names:
        raise invalid(name, value, "at least one assignor is required")
    bad = [n for n in names if n not in ("uniform", "range")]
    if bad:
        raise invalid(name, value, f"unknown assignor(s) {', '.join(bad)}; known: uniform, range")


# ---------------------------------------------------------------------------
# Listeners


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(slots=True, frozen=True)
class Listener:
    """One `NAME://host:port` endpoint; a bare `host:port` is named PLAINTEXT."""

    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name}://{_join_host(self.host)}:{self.port}"

    @property
    def address(self) -> str:
        return f"{_join_host(self.host)}:{self.port}"


def _join_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_LISTENER_RE = re.compile(r"^(?:(?P<name>[A-Za-z0-9_.-]+)://)?(?P<host>\[[^\]]*\]|[^:\[\]]*):(?P<port>-?\d+)$")


def parse_listener(text: str) -> Listener:
    """Parse `NAME://host:port`, `host:port`, `[v6]:port` or `:port`."""
    m = _LISTENER_RE.match(text.strip())
    if m is None:
        raise ValueError(f"listener {text!r} is not of the form [NAME://]host:port")
    port = int(m["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"listener {text!r} has port outside 0..65535")
    host = m["host"]
    if host.startswith("["):
        host = host[1:-1]
    return Listener((m["name"] or "PLAINTEXT").upper(), host, port)


def parse_listeners(items: Iterable[str]) -> list[Listener]:
    result = [parse_listener(item) for item in items]
    names = [listener.name for listener in result]
    if len(set(names)) != len(names):
        raise ValueError("each listener must have a different name")
    return result


# ---------------------------------------------------------------------------
# The broker config table


@dataclass(slots=True, frozen=True)
class ConfigKey:
    """One row of a config table."""

    name: str
    attr: str
    type: ConfigType
    default: Any
    doc: str
    validator: Validator | None = None
    nullable: bool = False
    dynamic: bool = False  # Kafka allows changing it at run time (read_only=false)
    sensitive: bool = False

    def parse(self, raw: str) -> Any:
        value = parse_value(self.name, self.type, raw, self.nullable)
        if self.validator is not None and value is not None:
            self.validator(self.name, value)
        return value


_K = ConfigKey
_T = ConfigType
_DAY_MS = 86_400_000

BROKER_CONFIGS: tuple[ConfigKey, ...] = (
    # identity and listeners
    _K("node.id", "node_id", _T.INT, None, "This broker's id; wins over broker.id.", at_least(0), nullable=True),
    _K("broker.id", "broker_id", _T.INT, 0, "This broker's id when node.id is unset."),
    _K(
        "cluster.id",
        "cluster_id",
        _T.STRING,
        None,
        "Cluster id reported to clients; generated and stored in the data dir when unset.",
        nullable=True,
    ),
    _K(
        "listeners",
        "listeners",
        _T.LIST,
        ["PLAINTEXT://127.0.0.1:9092"],
        "Comma-separated [NAME://]host:port endpoints to listen on.",
        non_empty_list(_valid_listeners),
        dynamic=True,
    ),
    _K(
        "advertised.listeners",
        "advertised_listeners",
        _T.LIST,
        None,
        "Endpoints given to clients in metadata; defaults to listeners.",
        non_empty_list(_valid_listeners),
        nullable=True,
    ),
    _K(
        "inter.broker.listener.name",
        "inter_broker_listener_name",
        _T.STRING,
        None,
        "Listener used between brokers; mutually exclusive with security.inter.broker.protocol.",
        nullable=True,
    ),
    _K(
        "security.inter.broker.protocol",
        "security_inter_broker_protocol",
        _T.STRING,
        "PLAINTEXT",
        "Security protocol between brokers (its listener is the one named like the protocol); "
        "mutually exclusive with inter.broker.listener.name.",
        one_of(*SECURITY_PROTOCOLS),
    ),
    _K(
        "listener.security.protocol.map",
        "listener_security_protocol_map",
        _T.STRING,
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "Listener name to security protocol.",
        dynamic=True,
    ),
    # authorization (kafkapy.security.acl; empty authorizer.class.name: no authorizer)
    _K(
        "authorizer.class.name",
        "authorizer_class_name",
        _T.STRING,
        "",
        "The authorizer: Kafka's StandardAuthorizer or AclAuthorizer class name selects kafkapy's; empty: none.",
    ),
    _K("super.users", "super_users", _T.STRING, None, "Principals allowed everything, ';'-separated.", nullable=True),
    _K(
        "allow.everyone.if.no.acl.found",
        "allow_everyone_if_no_acl_found",
        _T.BOOLEAN,
        False,
        "Allow everyone on a resource that has no ACLs at all.",
    ),
    # storage
    _K(
        "log.dirs",
        "log_dirs",
        _T.LIST,
        None,
        "Data directories; wins over log.dir.",
        non_empty_list(),
        nullable=True,
    ),
    _K("log.dir", "log_dir", _T.LIST, ["./data"], "Data directories when log.dirs is unset.", non_empty_list()),
    _K("num.partitions", "num_partitions", _T.INT, 1, "Default partition count for auto-created topics.", at_least(1)),
    _K(
        "default.replication.factor",
        "default_replication_factor",
        _T.INT,
        1,
        "Default replication factor for auto-created topics.",
    ),
    _K(
        "auto.create.topics.enable",
        "auto_create_topics_enable",
        _T.BOOLEAN,
        True,
        "Create topics on metadata requests or produce to unknown topics.",
    ),
    _K("delete.topic.enable", "delete_topic_enable", _T.BOOLEAN, True, "Allow DeleteTopics."),
    _K(
        "log.retention.hours",
        "log_retention_hours",
        _T.INT,
        168,
        "Hours to keep a segment; lowest priority of the retention keys.",
    ),
    _K(
        "log.retention.minutes",
        "log_retention_minutes",
        _T.INT,
        None,
        "Minutes to keep a segment; wins over log.retention.hours.",
        nullable=True,
        dynamic=False,
    ),
    _K(
        "log.retention.ms",
        "log_retention_ms",
        _T.LONG,
        None,
        "Milliseconds to keep a segment; wins over minutes and hours. -1 keeps forever.",
        nullable=True,
        dynamic=True,
    ),
    _K(
        "log.retention.bytes",
        "log_retention_bytes",
        _T.LONG,
        -1,
        "Max bytes per partition before old segments are deleted; -1 is unlimited.",
        dynamic=True,
    ),
    _K(
        "log.segment.bytes",
        "log_segment_bytes",
        _T.INT,
        1073741824,
        "Max size of a log segment file (at least 1 MiB, as Kafka 4).",
        at_least(1024 * 1024),
        dynamic=True,
    ),
    _K("log.roll.hours", "log_roll_hours", _T.INT, 168, "Hours before a new segment is rolled.", at_least(1)),
    _K(
        "log.roll.ms",
        "log_roll_ms",
        _T.LONG,
        None,
        "Milliseconds before a new segment is rolled; wins over hours.",
        nullable=True,
        dynamic=True,
    ),
    _K(
        "log.roll.jitter.hours",
        "log_roll_jitter_hours",
        _T.INT,
        0,
        "Max random jitter subtracted from the roll time, hours.",
        at_least(0),
    ),
    _K(
        "log.roll.jitter.ms",
        "log_roll_jitter_ms",
        _T.LONG,
        None,
        "Roll jitter in ms; wins over hours.",
        nullable=True,
        dynamic=True,
    ),
    _K(
        "log.cleanup.policy",
        "log_cleanup_policy",
        _T.LIST,
        ["delete"],
        "delete and/or compact.",
        list_of("compact", "delete"),
        dynamic=True,
    ),
    _K("log.cleaner.enable", "log_cleaner_enable", _T.BOOLEAN, True, "Run the log cleaner for compacted topics."),
    _K(
        "log.cleaner.delete.retention.ms",
        "log_cleaner_delete_retention_ms",
        _T.LONG,
        _DAY_MS,
        "How long tombstones are kept on compacted topics.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.cleaner.min.compaction.lag.ms",
        "log_cleaner_min_compaction_lag_ms",
        _T.LONG,
        0,
        "Min age of a message before it may be compacted.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.cleaner.max.compaction.lag.ms",
        "log_cleaner_max_compaction_lag_ms",
        _T.LONG,
        LONG_MAX,
        "Max time a message stays ineligible for compaction.",
        at_least(1),
        dynamic=True,
    ),
    _K(
        "log.cleaner.min.cleanable.ratio",
        "log_cleaner_min_cleanable_ratio",
        _T.DOUBLE,
        0.5,
        "Min dirty ratio before a log is cleaned.",
        between(0, 1),
        dynamic=True,
    ),
    _K(
        "log.segment.delete.delay.ms",
        "log_segment_delete_delay_ms",
        _T.LONG,
        60000,
        "Delay before a deleted segment's files are removed.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.flush.interval.messages",
        "log_flush_interval_messages",
        _T.LONG,
        LONG_MAX,
        "Messages appended before a forced fsync.",
        at_least(1),
        dynamic=True,
    ),
    _K(
        "log.flush.interval.ms",
        "log_flush_interval_ms",
        _T.LONG,
        None,
        "Max ms a message stays unflushed; unset uses log.flush.scheduler.interval.ms.",
        nullable=True,
        dynamic=True,
    ),
    _K(
        "log.flush.scheduler.interval.ms",
        "log_flush_scheduler_interval_ms",
        _T.LONG,
        LONG_MAX,
        "How often the flusher checks logs.",
    ),
    _K(
        "log.index.interval.bytes",
        "log_index_interval_bytes",
        _T.INT,
        4096,
        "Bytes between offset index entries.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.index.size.max.bytes",
        "log_index_size_max_bytes",
        _T.INT,
        10485760,
        "Max size of an offset index file.",
        at_least(4),
        dynamic=True,
    ),
    _K("log.preallocate", "log_preallocate", _T.BOOLEAN, False, "Preallocate segment files.", dynamic=True),
    _K(
        "log.retention.check.interval.ms",
        "log_retention_check_interval_ms",
        _T.LONG,
        300000,
        "How often retention is enforced.",
        at_least(1),
    ),
    _K(
        "log.message.timestamp.type",
        "log_message_timestamp_type",
        _T.STRING,
        "CreateTime",
        "CreateTime or LogAppendTime.",
        one_of("CreateTime", "LogAppendTime"),
        dynamic=True,
    ),
    _K(
        "log.message.timestamp.difference.max.ms",
        "log_message_timestamp_difference_max_ms",
        _T.LONG,
        LONG_MAX,
        "Deprecated (removed in Kafka 4; kafkapy keeps it): max |broker time - record time| for CreateTime, "
        "where log.message.timestamp.before/after.max.ms are unset.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.message.timestamp.before.max.ms",
        "log_message_timestamp_before_max_ms",
        _T.LONG,
        LONG_MAX,
        "Max ms a record timestamp may be behind the broker's time.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.message.timestamp.after.max.ms",
        "log_message_timestamp_after_max_ms",
        _T.LONG,
        3_600_000,
        "Max ms a record timestamp may be ahead of the broker's time.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "log.message.downconversion.enable",
        "log_message_downconversion_enable",
        _T.BOOLEAN,
        True,
        "Down-convert batches for old fetch versions (kafkapy serves Fetch v0-3; Kafka 4 removed the key).",
        dynamic=True,
    ),
    _K(
        "compression.type",
        "compression_type",
        _T.STRING,
        "producer",
        "Final compression of topic data; producer keeps the producer's codec.",
        one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        dynamic=True,
    ),
    _K(
        "compression.gzip.level",
        "compression_gzip_level",
        _T.INT,
        -1,
        "gzip level when recompressing topic data: 1..9, or -1 for the codec's default.",
        between_or(1, 9, -1),
        dynamic=True,
    ),
    _K(
        "compression.lz4.level",
        "compression_lz4_level",
        _T.INT,
        9,
        "lz4 level when recompressing topic data: 1..17.",
        between(1, 17),
        dynamic=True,
    ),
    _K(
        "compression.zstd.level",
        "compression_zstd_level",
        _T.INT,
        3,
        "zstd level when recompressing topic data: -131072..22.",
        between(-131072, 22),
        dynamic=True,
    ),
    _K(
        "min.insync.replicas",
        "min_insync_replicas",
        _T.INT,
        1,
        "Replicas that must acknowledge an acks=all produce.",
        at_least(1),
        dynamic=True,
    ),
    _K(
        "unclean.leader.election.enable",
        "unclean_leader_election_enable",
        _T.BOOLEAN,
        False,
        "Allow out-of-sync replicas to become leader.",
        dynamic=True,
    ),
    _K(
        "replica.lag.time.max.ms",
        "replica_lag_time_max_ms",
        _T.LONG,
        30000,
        "A follower behind this long leaves the ISR.",
    ),
    # clusters (metadata in etcd, replication)
    _K(
        "metadata.connect",
        "metadata_connect",
        _T.STRING,
        None,
        "etcd://host:port[,host:port...]: keep cluster metadata in etcd; unset: one broker with embedded metadata.",
        nullable=True,
    ),
    _K(
        "broker.rack",
        "broker_rack",
        _T.STRING,
        None,
        "Rack of this broker, for rack-aware replica placement.",
        nullable=True,
    ),
    _K(
        "broker.session.timeout.ms",
        "broker_session_timeout_ms",
        _T.INT,
        9000,
        "A broker whose registration lease is not renewed for this long is dead.",
        at_least(2000),
    ),
    _K(
        "auto.leader.rebalance.enable",
        "auto_leader_rebalance_enable",
        _T.BOOLEAN,
        True,
        "Move leadership back to preferred replicas.",
    ),
    _K(
        "leader.imbalance.check.interval.seconds",
        "leader_imbalance_check_interval_seconds",
        _T.LONG,
        300,
        "How often the controller checks preferred leaders.",
        at_least(1),
    ),
    _K(
        "leader.imbalance.per.broker.percentage",
        "leader_imbalance_per_broker_percentage",
        _T.INT,
        10,
        "Non-preferred leaders tolerated per broker, in percent.",
        at_least(0),
    ),
    _K(
        "controlled.shutdown.enable",
        "controlled_shutdown_enable",
        _T.BOOLEAN,
        True,
        "Hand leaderships away before stopping.",
    ),
    _K(
        "replica.fetch.max.bytes",
        "replica_fetch_max_bytes",
        _T.INT,
        1048576,
        "Bytes a follower asks per partition.",
        at_least(0),
    ),
    _K(
        "replica.fetch.response.max.bytes",
        "replica_fetch_response_max_bytes",
        _T.INT,
        10485760,
        "Bytes a follower asks per fetch response.",
        at_least(0),
    ),
    _K(
        "replica.fetch.wait.max.ms",
        "replica_fetch_wait_max_ms",
        _T.INT,
        500,
        "Longest wait of a follower fetch.",
    ),
    _K(
        "replica.fetch.min.bytes",
        "replica_fetch_min_bytes",
        _T.INT,
        1,
        "Bytes a follower fetch waits for.",
    ),
    _K(
        "replica.fetch.backoff.ms",
        "replica_fetch_backoff_ms",
        _T.INT,
        1000,
        "Pause after a failed follower fetch.",
        at_least(0),
    ),
    _K(
        "num.replica.fetchers",
        "num_replica_fetchers",
        _T.INT,
        1,
        "Fetcher tasks per source broker.",
        at_least(1),
        dynamic=True,
    ),
    # request limits
    _K(
        "message.max.bytes",
        "message_max_bytes",
        _T.INT,
        1048588,
        "Largest record batch accepted.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "socket.request.max.bytes",
        "socket_request_max_bytes",
        _T.INT,
        104857600,
        "Largest request frame accepted.",
        at_least(1),
    ),
    _K(
        "connections.max.idle.ms",
        "connections_max_idle_ms",
        _T.LONG,
        600000,
        "Close connections idle this long; -1 never.",
    ),
    _K(
        "max.connections",
        "max_connections",
        _T.INT,
        INT_MAX,
        "Connections the broker holds at once (all listeners; listener.name.<l>.max.connections per listener): "
        "at the limit it stops accepting until one closes; the inter-broker listener may exceed it, "
        "closing another listener's least recently used connection.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "max.connections.per.ip",
        "max_connections_per_ip",
        _T.INT,
        INT_MAX,
        "Connections from one IP address; one more is closed right after it is accepted.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "max.connections.per.ip.overrides",
        "max_connections_per_ip_overrides",
        _T.STRING,
        "",
        "Per-IP or hostname overrides of max.connections.per.ip: host:count,ip:count.",
        dynamic=True,
    ),
    _K(
        "max.connection.creation.rate",
        "max_connection_creation_rate",
        _T.INT,
        INT_MAX,
        "Connections accepted per second, broker-wide (listener.name.<l>.max.connection.creation.rate per "
        "listener); above it accepting is delayed. The inter-broker listener is held only to its own rate.",
        at_least(0),
        dynamic=True,
    ),
    _K(
        "queued.max.requests",
        "queued_max_requests",
        _T.INT,
        500,
        "Max requests queued in the whole broker; beyond it, busy connections stop being read.",
        at_least(1),
    ),
    _K(
        "queued.max.request.bytes",
        "queued_max_request_bytes",
        _T.LONG,
        -1,
        "Max request bytes queued in the whole broker; -1 is unlimited.",
    ),
    # client quotas (docs/quotas.md)
    _K("quota.window.num", "quota_window_num", _T.INT, 11, "Samples kept for client quota rates.", at_least(1)),
    _K(
        "quota.window.size.seconds",
        "quota_window_size_seconds",
        _T.INT,
        1,
        "Time span of each client quota sample.",
        at_least(1),
    ),
    _K(
        "controller.quota.window.num",
        "controller_quota_window_num",
        _T.INT,
        11,
        "Samples kept for controller mutation quota rates (the token bucket holds quota x num x size).",
        at_least(1),
    ),
    _K(
        "controller.quota.window.size.seconds",
        "controller_quota_window_size_seconds",
        _T.INT,
        1,
        "Time span of each controller mutation quota sample.",
        at_least(1),
    ),
    # group coordinator
    _K(
        "offsets.topic.num.partitions",
        "offsets_topic_num_partitions",
        _T.INT,
        50,
        "Partitions of __consumer_offsets.",
        at_least(1),
    ),
    _K(
        "offsets.topic.replication.factor",
        "offsets_topic_replication_factor",
        _T.SHORT,
        1,
        "Replication of __consumer_offsets (Kafka's default is 3; 1 suits a single node).",
        at_least(1),
    ),
    _K(
        "offsets.topic.segment.bytes",
        "offsets_topic_segment_bytes",
        _T.INT,
        104857600,
        "Segment size of __consumer_offsets.",
        at_least(1),
    ),
    _K(
        "offsets.retention.minutes",
        "offsets_retention_minutes",
        _T.INT,
        10080,
        "Keep committed offsets of empty groups this long.",
        at_least(1),
    ),
    _K(
        "offsets.retention.check.interval.ms",
        "offsets_retention_check_interval_ms",
        _T.LONG,
        600000,
        "How often stale offsets are removed.",
        at_least(1),
    ),
    _K(
        "offsets.commit.timeout.ms",
        "offsets_commit_timeout_ms",
        _T.INT,
        5000,
        "Timeout of an offset commit write.",
        at_least(1),
    ),
    _K("offset.metadata.max.bytes", "offset_metadata_max_bytes", _T.INT, 4096, "Max size of commit metadata."),
    _K(
        "group.initial.rebalance.delay.ms",
        "group_initial_rebalance_delay_ms",
        _T.INT,
        3000,
        "Wait for more members before the first rebalance of a new group.",
    ),
    _K(
        "group.min.session.timeout.ms",
        "group_min_session_timeout_ms",
        _T.INT,
        6000,
        "Smallest session timeout a member may ask for.",
    ),
    _K(
        "group.max.session.timeout.ms",
        "group_max_session_timeout_ms",
        _T.INT,
        1800000,
        "Largest session timeout a member may ask for.",
    ),
    _K("group.max.size", "group_max_size", _T.INT, INT_MAX, "Max members of one group.", at_least(1)),
    _K(
        "group.consumer.session.timeout.ms",
        "group_consumer_session_timeout_ms",
        _T.INT,
        45000,
        "Session timeout of consumer-protocol (KIP-848) group members.",
        at_least(1),
    ),
    _K(
        "group.consumer.heartbeat.interval.ms",
        "group_consumer_heartbeat_interval_ms",
        _T.INT,
        5000,
        "Heartbeat interval given to consumer-protocol (KIP-848) group members.",
        at_least(1),
    ),
    _K(
        "group.consumer.max.size",
        "group_consumer_max_size",
        _T.INT,
        INT_MAX,
        "Max members of one consumer-protocol (KIP-848) group.",
        at_least(1),
    ),
    _K(
        "group.share.session.timeout.ms",
        "group_share_session_timeout_ms",
        _T.INT,
        45000,
        "Session timeout of share group (KIP-932) members.",
        at_least(1),
    ),
    _K(
        "group.share.heartbeat.interval.ms",
        "group_share_heartbeat_interval_ms",
        _T.INT,
        5000,
        "Heartbeat interval given to share group members.",
        at_least(1),
    ),
    _K(
        "group.share.record.lock.duration.ms",
        "group_share_record_lock_duration_ms",
        _T.INT,
        30000,
        "How long a share group member holds the records it acquired before they are delivered again.",
        at_least(1000),
    ),
    _K(
        "group.share.delivery.count.limit",
        "group_share_delivery_count_limit",
        _T.INT,
        5,
        "Deliveries of a record to share group members before it is archived.",
        at_least(2),
    ),
    _K("group.share.max.size", "group_share_max_size", _T.INT, 200, "Max members of one share group.", at_least(1)),
    _K(
        "group.share.partition.max.record.locks",
        "group_share_partition_max_record_locks",
        _T.INT,
        2000,
        "Most records of one share partition in flight (acquired or to deliver again) at once.",
        at_least(100),
    ),
    _K(
        "share.coordinator.state.topic.num.partitions",
        "share_coordinator_state_topic_num_partitions",
        _T.INT,
        50,
        "Partitions of the __share_group_state topic (share groups' state).",
        at_least(1),
    ),
    _K(
        "share.coordinator.state.topic.replication.factor",
        "share_coordinator_state_topic_replication_factor",
        _T.INT,
        3,
        "Replication factor of the __share_group_state topic.",
        at_least(1),
    ),
    _K(
        "group.consumer.assignors",
        "group_consumer_assignors",
        _T.LIST,
        ["uniform", "range"],
        "Server-side assignors of consumer-protocol groups; the first is the default (names or Kafka class names).",
        non_empty_list(_valid_assignors),
    ),
    _K(
        "group.streams.session.timeout.ms",
        "group_streams_session_timeout_ms",
        _T.INT,
        45000,
        "Session timeout of Streams group (KIP-1071) members.",
        at_least(1),
    ),
    _K(
        "group.streams.heartbeat.interval.ms",
        "group_streams_heartbeat_interval_ms",
        _T.INT,
        5000,
        "Heartbeat interval given to Streams group members.",
        at_least(1),
    ),
    _K(
        "group.streams.max.size",
        "group_streams_max_size",
        _T.INT,
        INT_MAX,
        "Max members of one Streams group.",
        at_least(1),
    ),
    _K(
        "group.streams.num.standby.replicas",
        "group_streams_num_standby_replicas",
        _T.INT,
        0,
        "Standby replicas of each stateful task of a Streams group.",
        at_least(0),
    ),
    _K(
        "group.streams.initial.rebalance.delay.ms",
        "group_streams_initial_rebalance_delay_ms",
        _T.INT,
        3000,
        "How long a new Streams group waits for more members before its first task assignment.",
        at_least(0),
    ),
    # transactions and idempotence
    _K(
        "transaction.state.log.num.partitions",
        "transaction_state_log_num_partitions",
        _T.INT,
        50,
        "Partitions of __transaction_state.",
        at_least(1),
    ),
    _K(
        "transaction.state.log.replication.factor",
        "transaction_state_log_replication_factor",
        _T.SHORT,
        1,
        "Replication of __transaction_state (Kafka's default is 3; 1 suits a single node).",
        at_least(1),
    ),
    _K(
        "transaction.state.log.min.isr",
        "transaction_state_log_min_isr",
        _T.INT,
        1,
        "min.insync.replicas of __transaction_state (Kafka's default is 2).",
        at_least(1),
    ),
    _K(
        "transaction.max.timeout.ms",
        "transaction_max_timeout_ms",
        _T.INT,
        900000,
        "Largest transaction timeout a producer may ask for.",
        at_least(1),
    ),
    _K(
        "transactional.id.expiration.ms",
        "transactional_id_expiration_ms",
        _T.INT,
        604800000,
        "Expire a transactional id unused this long.",
        at_least(1),
    ),
    _K(
        "producer.id.expiration.ms",
        "producer_id_expiration_ms",
        _T.INT,
        _DAY_MS,
        "Expire an idle producer id's state after this long.",
        at_least(1),
        dynamic=True,
    ),
    # SASL (kafkapy.server.handlers.sasl); each also in the per-listener forms
    # listener.name.<listener>.<key> and listener.name.<listener>.<mechanism>.<key>
    _K("sasl.enabled.mechanisms", "sasl_enabled_mechanisms", _T.LIST, ["GSSAPI"], "SASL mechanisms served."),
    _K("sasl.jaas.config", "sasl_jaas_config", _T.PASSWORD, None, "JAAS login module config.", sensitive=True),
    _K(
        "sasl.mechanism.inter.broker.protocol",
        "sasl_mechanism_inter_broker_protocol",
        _T.STRING,
        "GSSAPI",
        "SASL mechanism brokers log in to each other with on a SASL inter-broker listener "
        "(kafkapy: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).",
    ),
    _K(
        "sasl.server.max.receive.size",
        "sasl_server_max_receive_size",
        _T.INT,
        524288,
        "Largest frame before authentication.",
    ),
    _K(
        "sasl.server.callback.handler.class",
        "sasl_server_callback_handler_class",
        _T.STRING,
        None,
        "OAUTHBEARER: Kafka's OAuthBearerValidatorCallbackHandler selects signed-JWT validation.",
        nullable=True,
    ),
    _K(
        "connection.failed.authentication.delay.ms",
        "connection_failed_authentication_delay_ms",
        _T.INT,
        100,
        "Delay before answering and closing a failed authentication.",
        at_least(0),
    ),
    _K(
        "connections.max.reauth.ms",
        "connections_max_reauth_ms",
        _T.LONG,
        0,
        "Session lifetime; 0: no re-authentication.",
    ),
    _K(
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl_oauthbearer_jwks_endpoint_url",
        _T.STRING,
        None,
        "JWKS URL (file: or http(s)).",
        nullable=True,
    ),
    _K(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "sasl_oauthbearer_jwks_endpoint_refresh_ms",
        _T.LONG,
        3600000,
        "JWKS refresh period.",
    ),
    _K(
        "sasl.oauthbearer.expected.audience",
        "sasl_oauthbearer_expected_audience",
        _T.LIST,
        [],
        "Accepted JWT audiences.",
    ),
    _K(
        "sasl.oauthbearer.expected.issuer",
        "sasl_oauthbearer_expected_issuer",
        _T.STRING,
        None,
        "Required JWT issuer.",
        nullable=True,
    ),
    _K(
        "sasl.oauthbearer.clock.skew.seconds",
        "sasl_oauthbearer_clock_skew_seconds",
        _T.INT,
        30,
        "Allowed clock skew for JWT times.",
    ),
    _K(
        "sasl.oauthbearer.sub.claim.name",
        "sasl_oauthbearer_sub_claim_name",
        _T.STRING,
        "sub",
        "JWT claim naming the principal.",
    ),
    _K(
        "sasl.oauthbearer.scope.claim.name", "sasl_oauthbearer_scope_claim_name", _T.STRING, "scope", "JWT scope claim."
    ),
    # delegation tokens (kafkapy.server.handlers.delegation_tokens); no secret key: tokens are disabled
    _K(
        "delegation.token.secret.key",
        "delegation_token_secret_key",
        _T.PASSWORD,
        None,
        "Secret the tokens' HMACs are made with; the same on every broker.",
        sensitive=True,
    ),
    _K(
        "delegation.token.master.key",
        "delegation_token_master_key",
        _T.PASSWORD,
        None,
        "Deprecated name of delegation.token.secret.key (used when that is unset).",
        sensitive=True,
    ),
    _K(
        "delegation.token.max.lifetime.ms",
        "delegation_token_max_lifetime_ms",
        _T.LONG,
        7 * _DAY_MS,
        "A token cannot be renewed past this age.",
        at_least(1),
    ),
    _K(
        "delegation.token.expiry.time.ms",
        "delegation_token_expiry_time_ms",
        _T.LONG,
        _DAY_MS,
        "A token's validity when created or renewed without a shorter period.",
        at_least(1),
    ),
    _K(
        "delegation.token.expiry.check.interval.ms",
        "delegation_token_expiry_check_interval_ms",
        _T.LONG,
        3_600_000,
        "How often expired tokens are removed.",
        at_least(1),
    ),
    # TLS (kafkapy.security.tls); each also in the per-listener form listener.name.<listener>.ssl.*
    _K(
        "ssl.keystore.type",
        "ssl_keystore_type",
        _T.STRING,
        "JKS",
        "Keystore format: PEM or PKCS12 (JKS read as PKCS12).",
    ),
    _K("ssl.keystore.location", "ssl_keystore_location", _T.STRING, None, "Keystore file.", nullable=True),
    _K("ssl.keystore.password", "ssl_keystore_password", _T.PASSWORD, None, "Keystore password.", sensitive=True),
    _K("ssl.key.password", "ssl_key_password", _T.PASSWORD, None, "Private key password.", sensitive=True),
    _K(
        "ssl.keystore.certificate.chain",
        "ssl_keystore_certificate_chain",
        _T.PASSWORD,
        None,
        "PEM certificate chain given inline (with ssl.keystore.key).",
        sensitive=True,
    ),
    _K(
        "ssl.keystore.key",
        "ssl_keystore_key",
        _T.PASSWORD,
        None,
        "PEM PKCS#8 private key given inline.",
        sensitive=True,
    ),
    _K("ssl.truststore.type", "ssl_truststore_type", _T.STRING, "JKS", "Truststore format: PEM or PKCS12."),
    _K("ssl.truststore.location", "ssl_truststore_location", _T.STRING, None, "Truststore file.", nullable=True),
    _K("ssl.truststore.password", "ssl_truststore_password", _T.PASSWORD, None, "Truststore password.", sensitive=True),
    _K(
        "ssl.truststore.certificates",
        "ssl_truststore_certificates",
        _T.PASSWORD,
        None,
        "Trusted PEM certificates given inline.",
        sensitive=True,
    ),
    _K(
        "ssl.client.auth",
        "ssl_client_auth",
        _T.STRING,
        "none",
        "Client certificates: none, requested or required.",
        one_of("required", "requested", "none"),
    ),
    _K("ssl.enabled.protocols", "ssl_enabled_protocols", _T.LIST, ["TLSv1.2", "TLSv1.3"], "TLS versions served."),
    _K(
        "ssl.protocol",
        "ssl_protocol",
        _T.STRING,
        "TLSv1.3",
        "Accepted for compatibility; ssl.enabled.protocols decides.",
    ),
    _K(
        "ssl.cipher.suites",
        "ssl_cipher_suites",
        _T.LIST,
        [],
        "TLS 1.2 cipher suites (IANA or OpenSSL names); empty: defaults.",
    ),
    _K(
        "ssl.endpoint.identification.algorithm",
        "ssl_endpoint_identification_algorithm",
        _T.STRING,
        "https",
        "https: clients of this broker (inter-broker) check the server host name; empty: not.",
    ),
    _K(
        "ssl.principal.mapping.rules",
        "ssl_principal_mapping_rules",
        _T.STRING,
        "DEFAULT",
        "Rules mapping a client certificate's subject DN to a principal name (KIP-371).",
    ),
    # tiered storage (KIP-405; docs/tiered-storage.md)
    _K(
        "remote.log.storage.system.enable",
        "remote_log_storage_system_enable",
        _T.BOOLEAN,
        False,
        "Tiered storage on this broker: topics may set remote.storage.enable=true.",
    ),
    _K(
        "remote.log.manager.task.interval.ms",
        "remote_log_manager_task_interval_ms",
        _T.LONG,
        30000,
        "How often each tiered partition led here is copied to and expired from remote storage.",
        at_least(1),
    ),
    _K(
        "remote.log.manager.task.retry.backoff.ms",
        "remote_log_manager_task_retry_backoff_ms",
        _T.LONG,
        500,
        "First wait before a partition's failed remote log task is tried again.",
        at_least(1),
    ),
    _K(
        "remote.log.manager.task.retry.backoff.max.ms",
        "remote_log_manager_task_retry_backoff_max_ms",
        _T.LONG,
        30000,
        "Longest wait before a partition's failed remote log task is tried again (the wait doubles).",
        at_least(1),
    ),
    _K(
        "remote.log.manager.copy.max.bytes.per.second",
        "remote_log_manager_copy_max_bytes_per_second",
        _T.LONG,
        LONG_MAX,
        "Upper bound of the bytes a second copied to remote storage.",
        at_least(1),
    ),
    _K(
        "remote.log.manager.fetch.max.bytes.per.second",
        "remote_log_manager_fetch_max_bytes_per_second",
        _T.LONG,
        LONG_MAX,
        "Upper bound of the bytes a second read from remote storage.",
        at_least(1),
    ),
    _K(
        "remote.log.manager.copier.thread.pool.size",
        "remote_log_manager_copier_thread_pool_size",
        _T.INT,
        10,
        "How many tiered partitions' segments are copied to remote storage at once.",
        at_least(1),
    ),
    _K(
        "remote.log.manager.expiration.thread.pool.size",
        "remote_log_manager_expiration_thread_pool_size",
        _T.INT,
        10,
        "How many tiered partitions' expired remote segments are deleted at once.",
        at_least(1),
    ),
    _K(
        "remote.log.reader.threads",
        "remote_log_reader_threads",
        _T.INT,
        10,
        "How many reads from remote storage (Fetch, ShareFetch) run at once; the others wait for one.",
        at_least(1),
    ),
    _K(
        "remote.fetch.max.wait.ms",
        "remote_fetch_max_wait_ms",
        _T.INT,
        500,
        "Longest a fetch waits for a read from remote storage.",
        at_least(1),
    ),
    _K(
        "remote.log.index.file.cache.total.size.bytes",
        "remote_log_index_file_cache_total_size_bytes",
        _T.LONG,
        1073741824,
        "Bytes of remote segments' indexes kept in memory.",
        at_least(1),
    ),
    _K(
        "log.local.retention.ms",
        "log_local_retention_ms",
        _T.LONG,
        -2,
        "Tiered topics: how long a copied segment stays on local disk; -2 as log.retention.ms.",
        at_least(-2),
    ),
    _K(
        "log.local.retention.bytes",
        "log_local_retention_bytes",
        _T.LONG,
        -2,
        "Tiered topics: local bytes a partition keeps of copied segments; -2 as log.retention.bytes.",
        at_least(-2),
    ),
    # the object store, under Kafka's remote storage manager prefix with the Aiven plugin's names
    _K(
        "rsm.config.storage.s3.endpoint.url",
        "rsm_s3_endpoint_url",
        _T.STRING,
        None,
        "S3 endpoint URL (an S3-compatible server); unset: AWS.",
        nullable=True,
    ),
    _K("rsm.config.storage.s3.bucket.name", "rsm_s3_bucket_name", _T.STRING, None, "S3 bucket.", nullable=True),
    _K("rsm.config.storage.s3.region", "rsm_s3_region", _T.STRING, "us-east-1", "S3 region."),
    _K(
        "rsm.config.storage.aws.access.key.id",
        "rsm_aws_access_key_id",
        _T.PASSWORD,
        None,
        "S3 access key id; unset: the standard AWS credential chain.",
        nullable=True,
        sensitive=True,
    ),
    _K(
        "rsm.config.storage.aws.secret.access.key",
        "rsm_aws_secret_access_key",
        _T.PASSWORD,
        None,
        "S3 secret access key; unset: the standard AWS credential chain.",
        nullable=True,
        sensitive=True,
    ),
    _K(
        "rsm.config.storage.s3.path.style.access.enabled",
        "rsm_s3_path_style_access_enabled",
        _T.BOOLEAN,
        True,
        "Path-style S3 URLs (endpoint/bucket/key), as most S3-compatible servers want.",
    ),
    _K("rsm.config.key.prefix", "rsm_key_prefix", _T.STRING, "", "Prefix of every object key written."),
    _K(
        "rsm.config.storage.root",
        "rsm_storage_root",
        _T.STRING,
        None,
        "A directory as the object store instead of S3 (e.g. a shared mount); wins over the S3 keys.",
        nullable=True,
    ),
    # kafkapy-only
    _K(
        "kafkapy.event.loop",
        "event_loop",
        _T.STRING,
        "auto",
        "auto, uvloop or asyncio: the event loop implementation.",
        one_of("auto", "uvloop", "asyncio"),
    ),
    _K(
        "kafkapy.connection.max.inflight.requests",
        "connection_max_inflight_requests",
        _T.INT,
        100,
        "Requests queued on one connection before it stops being read.",
        at_least(1),
    ),
    _K(
        "kafkapy.connection.max.inflight.bytes",
        "connection_max_inflight_bytes",
        _T.LONG,
        104857600,
        "Request bytes queued on one connection before it stops being read.",
        at_least(1),
    ),
    _K(
        "kafkapy.ssl.handshake.timeout.ms",
        "ssl_handshake_timeout_ms",
        _T.LONG,
        10000,
        "A TLS handshake not finished in this time is dropped.",
        at_least(1),
    ),
    _K(
        "kafkapy.shutdown.timeout.ms",
        "shutdown_timeout_ms",
        _T.LONG,
        10000,
        "Max wait for in-flight requests at shutdown.",
        at_least(0),
    ),
    _K(
        "telemetry.max.bytes",
        "telemetry_max_bytes",
        _T.INT,
        1048576,
        "The largest PushTelemetry payload (after compression) a client may send (KIP-714).",
        at_least(1),
    ),
    _K(
        "kafkapy.metrics.listen",
        "metrics_listen",
        _T.STRING,
        "",
        "HOST:PORT of the HTTP endpoint serving /metrics, /healthz and /readyz; empty: none (docs/monitoring.md).",
        _valid_host_port,
    ),
)

BROKER_KEYS: dict[str, ConfigKey] = {key.name: key for key in BROKER_CONFIGS}
# authorizer.class.name values that select kafkapy's authorizer ("" = no authorizer)
AUTHORIZER_CLASS_NAMES = (
    "",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
)
_BY_ATTR: dict[str, ConfigKey] = {key.attr: key for key in BROKER_CONFIGS}


def _default(name: str) -> Any:
    """Default of a broker key, read from the table (the single source)."""
    value = BROKER_KEYS[name].default
    return list(value) if isinstance(value, list) else value


def _list_default(name: str) -> Any:
    return field(default_factory=lambda: _default(name))


@dataclass(slots=True, frozen=True)
class ConfigDescription:
    """One DescribeConfigs entry, already rendered as Kafka reports it."""

    name: str
    value: str | None
    is_default: bool
    source: ConfigSource
    read_only: bool
    sensitive: bool
    config_type: ConfigType = ConfigType.UNKNOWN
    documentation: str | None = None
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...] = ()


@dataclass(slots=True)
class BrokerConfig:
    """Typed broker configuration; attribute defaults come from BROKER_CONFIGS."""

    node_id: int | None = _default("node.id")
    broker_id: int = _default("broker.id")
    cluster_id: str | None = _default("cluster.id")
    listeners: list[str] = _list_default("listeners")  # noqa: RUF009 - value read from the table
    advertised_listeners: list[str] | None = _default("advertised.listeners")  # noqa: RUF009 - value read from the table
    inter_broker_listener_name: str | None = _default("inter.broker.listener.name")
    security_inter_broker_protocol: str = _default("security.inter.broker.protocol")
    listener_security_protocol_map: str = _default("listener.security.protocol.map")
    sasl_enabled_mechanisms: list[str] = _list_default("sasl.enabled.mechanisms")  # noqa: RUF009 - value read from the table
    sasl_jaas_config: str | None = _default("sasl.jaas.config")
    sasl_mechanism_inter_broker_protocol: str = _default("sasl.mechanism.inter.broker.protocol")
    sasl_server_max_receive_size: int = _default("sasl.server.max.receive.size")
    sasl_server_callback_handler_class: str | None = _default("sasl.server.callback.handler.class")
    connection_failed_authentication_delay_ms: int = _default("connection.failed.authentication.delay.ms")
    connections_max_reauth_ms: int = _default("connections.max.reauth.ms")
    sasl_oauthbearer_jwks_endpoint_url: str | None = _default("sasl.oauthbearer.jwks.endpoint.url")
    sasl_oauthbearer_jwks_endpoint_refresh_ms: int = _default("sasl.oauthbearer.jwks.endpoint.refresh.ms")
    sasl_oauthbearer_expected_audience: list[str] = _list_default("sasl.oauthbearer.expected.audience")  # noqa: RUF009 - value read from the table
    sasl_oauthbearer_expected_issuer: str | None = _default("sasl.oauthbearer.expected.issuer")
    sasl_oauthbearer_clock_skew_seconds: int = _default("sasl.oauthbearer.clock.skew.seconds")
    sasl_oauthbearer_sub_claim_name: str = _default("sasl.oauthbearer.sub.claim.name")
    sasl_oauthbearer_scope_claim_name: str = _default("sasl.oauthbearer.scope.claim.name")
    delegation_token_secret_key: str | None = _default("delegation.token.secret.key")
    delegation_token_master_key: str | None = _default("delegation.token.master.key")
    delegation_token_max_lifetime_ms: int = _default("delegation.token.max.lifetime.ms")
    delegation_token_expiry_time_ms: int = _default("delegation.token.expiry.time.ms")
    delegation_token_expiry_check_interval_ms: int = _default("delegation.token.expiry.check.interval.ms")
    authorizer_class_name: str = _default("authorizer.class.name")
    super_users: str | None = _default("super.users")
    allow_everyone_if_no_acl_found: bool = _default("allow.everyone.if.no.acl.found")
    log_dirs: list[str] | None = _default("log.dirs")  # noqa: RUF009 - value read from the table
    log_dir: list[str] = _list_default("log.dir")  # noqa: RUF009 - value read from the table
    num_partitions: int = _default("num.partitions")
    default_replication_factor: int = _default("default.replication.factor")
    auto_create_topics_enable: bool = _default("auto.create.topics.enable")
    delete_topic_enable: bool = _default("delete.topic.enable")
    log_retention_hours: int = _default("log.retention.hours")
    log_retention_minutes: int | None = _default("log.retention.minutes")
    log_retention_ms: int | None = _default("log.retention.ms")
    log_retention_bytes: int = _default("log.retention.bytes")
    log_segment_bytes: int = _default("log.segment.bytes")
    log_roll_hours: int = _default("log.roll.hours")
    log_roll_ms: int | None = _default("log.roll.ms")
    log_roll_jitter_hours: int = _default("log.roll.jitter.hours")
    log_roll_jitter_ms: int | None = _default("log.roll.jitter.ms")
    log_cleanup_policy: list[str] = _list_default("log.cleanup.policy")  # noqa: RUF009 - value read from the table
    log_cleaner_enable: bool = _default("log.cleaner.enable")
    log_cleaner_delete_retention_ms: int = _default("log.cleaner.delete.retention.ms")
    log_cleaner_min_compaction_lag_ms: int = _default("log.cleaner.min.compaction.lag.ms")
    log_cleaner_max_compaction_lag_ms: int = _default("log.cleaner.max.compaction.lag.ms")
    log_cleaner_min_cleanable_ratio: float = _default("log.cleaner.min.cleanable.ratio")
    log_segment_delete_delay_ms: int = _default("log.segment.delete.delay.ms")
    log_flush_interval_messages: int = _default("log.flush.interval.messages")
    log_flush_interval_ms: int | None = _default("log.flush.interval.ms")
    log_flush_scheduler_interval_ms: int = _default("log.flush.scheduler.interval.ms")
    log_index_interval_bytes: int = _default("log.index.interval.bytes")
    log_index_size_max_bytes: int = _default("log.index.size.max.bytes")
    log_preallocate: bool = _default("log.preallocate")
    log_retention_check_interval_ms: int = _default("log.retention.check.interval.ms")
    log_message_timestamp_type: str = _default("log.message.timestamp.type")
    log_message_timestamp_difference_max_ms: int = _default("log.message.timestamp.difference.max.ms")
    log_message_timestamp_before_max_ms: int = _default("log.message.timestamp.before.max.ms")
    log_message_timestamp_after_max_ms: int = _default("log.message.timestamp.after.max.ms")
    log_message_downconversion_enable: bool = _default("log.message.downconversion.enable")
    compression_type: str = _default("compression.type")
    compression_gzip_level: int = _default("compression.gzip.level")
    compression_lz4_level: int = _default("compression.lz4.level")
    compression_zstd_level: int = _default("compression.zstd.level")
    min_insync_replicas: int = _default("min.insync.replicas")
    unclean_leader_election_enable: bool = _default("unclean.leader.election.enable")
    replica_lag_time_max_ms: int = _default("replica.lag.time.max.ms")
    metadata_connect: str | None = _default("metadata.connect")
    broker_rack: str | None = _default("broker.rack")
    broker_session_timeout_ms: int = _default("broker.session.timeout.ms")
    auto_leader_rebalance_enable: bool = _default("auto.leader.rebalance.enable")
    leader_imbalance_check_interval_seconds: int = _default("leader.imbalance.check.interval.seconds")
    leader_imbalance_per_broker_percentage: int = _default("leader.imbalance.per.broker.percentage")
    controlled_shutdown_enable: bool = _default("controlled.shutdown.enable")
    replica_fetch_max_bytes: int = _default("replica.fetch.max.bytes")
    replica_fetch_response_max_bytes: int = _default("replica.fetch.response.max.bytes")
    replica_fetch_wait_max_ms: int = _default("replica.fetch.wait.max.ms")
    replica_fetch_min_bytes: int = _default("replica.fetch.min.bytes")
    replica_fetch_backoff_ms: int = _default("replica.fetch.backoff.ms")
    num_replica_fetchers: int = _default("num.replica.fetchers")
    message_max_bytes: int = _default("message.max.bytes")
    socket_request_max_bytes: int = _default("socket.request.max.bytes")
    connections_max_idle_ms: int = _default("connections.max.idle.ms")
    queued_max_requests: int = _default("queued.max.requests")
    max_connections: int = _default("max.connections")
    max_connections_per_ip: int = _default("max.connections.per.ip")
    max_connections_per_ip_overrides: str = _default("max.connections.per.ip.overrides")
    max_connection_creation_rate: int = _default("max.connection.creation.rate")
    queued_max_request_bytes: int = _default("queued.max.request.bytes")
    quota_window_num: int = _default("quota.window.num")
    quota_window_size_seconds: int = _default("quota.window.size.seconds")
    controller_quota_window_num: int = _default("controller.quota.window.num")
    controller_quota_window_size_seconds: int = _default("controller.quota.window.size.seconds")
    offsets_topic_num_partitions: int = _default("offsets.topic.num.partitions")
    offsets_topic_replication_factor: int = _default("offsets.topic.replication.factor")
    offsets_topic_segment_bytes: int = _default("offsets.topic.segment.bytes")
    offsets_retention_minutes: int = _default("offsets.retention.minutes")
    offsets_retention_check_interval_ms: int = _default("offsets.retention.check.interval.ms")
    offsets_commit_timeout_ms: int = _default("offsets.commit.timeout.ms")
    offset_metadata_max_bytes: int = _default("offset.metadata.max.bytes")
    group_initial_rebalance_delay_ms: int = _default("group.initial.rebalance.delay.ms")
    group_min_session_timeout_ms: int = _default("group.min.session.timeout.ms")
    group_max_session_timeout_ms: int = _default("group.max.session.timeout.ms")
    group_max_size: int = _default("group.max.size")
    group_consumer_session_timeout_ms: int = _default("group.consumer.session.timeout.ms")
    group_consumer_heartbeat_interval_ms: int = _default("group.consumer.heartbeat.interval.ms")
    group_consumer_max_size: int = _default("group.consumer.max.size")
    group_share_session_timeout_ms: int = _default("group.share.session.timeout.ms")
    group_share_heartbeat_interval_ms: int = _default("group.share.heartbeat.interval.ms")
    group_share_record_lock_duration_ms: int = _default("group.share.record.lock.duration.ms")
    group_share_delivery_count_limit: int = _default("group.share.delivery.count.limit")
    group_share_max_size: int = _default("group.share.max.size")
    group_share_partition_max_record_locks: int = _default("group.share.partition.max.record.locks")
    share_coordinator_state_topic_num_partitions: int = _default("share.coordinator.state.topic.num.partitions")
    share_coordinator_state_topic_replication_factor: int = _default("share.coordinator.state.topic.replication.factor")
    group_consumer_assignors: list[str] = _list_default("group.consumer.assignors")  # noqa: RUF009 - value read from the table
    group_streams_session_timeout_ms: int = _default("group.streams.session.timeout.ms")
    group_streams_heartbeat_interval_ms: int = _default("group.streams.heartbeat.interval.ms")
    group_streams_max_size: int = _default("group.streams.max.size")
    group_streams_num_standby_replicas: int = _default("group.streams.num.standby.replicas")
    group_streams_initial_rebalance_delay_ms: int = _default("group.streams.initial.rebalance.delay.ms")
    transaction_state_log_num_partitions: int = _default("transaction.state.log.num.partitions")
    transaction_state_log_replication_factor: int = _default("transaction.state.log.replication.factor")
    transaction_state_log_min_isr: int = _default("transaction.state.log.min.isr")
    transaction_max_timeout_ms: int = _default("transaction.max.timeout.ms")
    transactional_id_expiration_ms: int = _default("transactional.id.expiration.ms")
    producer_id_expiration_ms: int = _default("producer.id.expiration.ms")
    ssl_keystore_type: str = _default("ssl.keystore.type")
    ssl_keystore_location: str | None = _default("ssl.keystore.location")
    ssl_keystore_password: str | None = _default("ssl.keystore.password")
    ssl_key_password: str | None = _default("ssl.key.password")
    ssl_keystore_certificate_chain: str | None = _default("ssl.keystore.certificate.chain")
    ssl_keystore_key: str | None = _default("ssl.keystore.key")
    ssl_truststore_type: str = _default("ssl.truststore.type")
    ssl_truststore_location: str | None = _default("ssl.truststore.location")
    ssl_truststore_password: str | None = _default("ssl.truststore.password")
    ssl_truststore_certificates: str | None = _default("ssl.truststore.certificates")
    ssl_client_auth: str = _default("ssl.client.auth")
    ssl_enabled_protocols: list[str] = _list_default("ssl.enabled.protocols")  # noqa: RUF009 - value read from the table
    ssl_protocol: str = _default("ssl.protocol")
    ssl_cipher_suites: list[str] = _list_default("ssl.cipher.suites")  # noqa: RUF009 - value read from the table
    ssl_endpoint_identification_algorithm: str = _default("ssl.endpoint.identification.algorithm")
    ssl_principal_mapping_rules: str = _default("ssl.principal.mapping.rules")
    remote_log_storage_system_enable: bool = _default("remote.log.storage.system.enable")
    remote_log_manager_task_interval_ms: int = _default("remote.log.manager.task.interval.ms")
    remote_log_manager_task_retry_backoff_ms: int = _default("remote.log.manager.task.retry.backoff.ms")
    remote_log_manager_task_retry_backoff_max_ms: int = _default("remote.log.manager.task.retry.backoff.max.ms")
    remote_log_manager_copy_max_bytes_per_second: int = _default("remote.log.manager.copy.max.bytes.per.second")
    remote_log_manager_fetch_max_bytes_per_second: int = _default("remote.log.manager.fetch.max.bytes.per.second")
    remote_log_manager_copier_thread_pool_size: int = _default("remote.log.manager.copier.thread.pool.size")
    remote_log_manager_expiration_thread_pool_size: int = _default("remote.log.manager.expiration.thread.pool.size")
    remote_log_reader_threads: int = _default("remote.log.reader.threads")
    remote_fetch_max_wait_ms: int = _default("remote.fetch.max.wait.ms")
    remote_log_index_file_cache_total_size_bytes: int = _default("remote.log.index.file.cache.total.size.bytes")
    log_local_retention_ms: int = _default("log.local.retention.ms")
    log_local_retention_bytes: int = _default("log.local.retention.bytes")
    rsm_s3_endpoint_url: str | None = _default("rsm.config.storage.s3.endpoint.url")
    rsm_s3_bucket_name: str | None = _default("rsm.config.storage.s3.bucket.name")
    rsm_s3_region: str = _default("rsm.config.storage.s3.region")
    rsm_aws_access_key_id: str | None = _default("rsm.config.storage.aws.access.key.id")
    rsm_aws_secret_access_key: str | None = _default("rsm.config.storage.aws.secret.access.key")
    rsm_s3_path_style_access_enabled: bool = _default("rsm.config.storage.s3.path.style.access.enabled")
    rsm_key_prefix: str = _default("rsm.config.key.prefix")
    rsm_storage_root: str | None = _default("rsm.config.storage.root")
    event_loop: str = _default("kafkapy.event.loop")
    connection_max_inflight_requests: int = _default("kafkapy.connection.max.inflight.requests")
    connection_max_inflight_bytes: int = _default("kafkapy.connection.max.inflight.bytes")
    ssl_handshake_timeout_ms: int = _default("kafkapy.ssl.handshake.timeout.ms")
    shutdown_timeout_ms: int = _default("kafkapy.shutdown.timeout.ms")
    metrics_listen: str = _default("kafkapy.metrics.listen")
    telemetry_max_bytes: int = _default("telemetry.max.bytes")
    # Raw strings of keys set explicitly (file or override), known or not.
    explicit: dict[str, str] = field(default_factory=dict)
    # Keys kafkapy does not know, kept verbatim.
    unknown: dict[str, str] = field(default_factory=dict)

    # -- building -----------------------------------------------------------

    @classmethod
    def load(
        cls,
        properties_file: str | Path | None = None,
        overrides: Iterable[tuple[str, str]] = (),
    ) -> BrokerConfig:
        """Read a server.properties file (optional), then apply overrides in order."""
        pairs: list[tuple[str, str]] = []
        if properties_file is not None:
            try:
                text = Path(properties_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError("--config", f"cannot read {properties_file}: {exc.strerror}") from None
            pairs.extend(parse_properties(text))
        pairs.extend(overrides)
        return cls.from_pairs(pairs)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> BrokerConfig:
        """Build from (key, raw value) pairs; a later pair wins over an earlier one."""
        config = cls()
        for key, raw in pairs:
            config.set(key, raw)
        config.validate()
        return config

    def set(self, key: str, raw: str) -> None:
        """Set one key from its raw string; unknown keys are kept verbatim."""
        known = BROKER_KEYS.get(key)
        if known is None and key.startswith(_LISTENER_PREFIX):
            inner = _listener_key(key)
            if inner is not None:
                inner.parse(raw)  # checked now, read through listener_setting()
                self.explicit[key] = raw
                return
        if known is None:
            self.unknown[key] = raw
            self.explicit[key] = raw
            _debug("config_unknown_key", key=key)
            return
        setattr(self, known.attr, known.parse(raw))
        self.explicit[key] = raw

    def validate(self) -> None:
        """Cross-key checks that single-key parsing cannot do."""
        listeners = parse_listeners(self.listeners) if self.listeners else []
        if not listeners:
            raise ConfigError("listeners", "at least one listener is required")
        for listener in listeners:
            self.listener_security_protocol(listener.name)
        if not self.listener_list:
            raise ConfigError(
                "listeners", "every listener is named in controller.listener.names; a broker listener is required"
            )
        if self.advertised_listeners is not None:
            names = [listener.name for listener in listeners]
            advertised = parse_listeners(self.advertised_listeners)
            if any(adv.name not in names for adv in advertised):
                raise ConfigError(
                    "advertised.listeners",
                    "advertised.listeners listener names must be equal to or a subset of the ones defined in "
                    f"listeners. Found {','.join(adv.name for adv in advertised)}. The valid options based on "
                    f"the current configuration are {','.join(names)}",
                )
            for adv in advertised:
                if adv.port == 0:
                    raise ConfigError("advertised.listeners", "port 0 cannot be advertised")
                if adv.host == "0.0.0.0":
                    raise ConfigError(
                        "advertised.listeners",
                        "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. "
                        "Use a routable IP address.",
                    )
        if self.authorizer_class_name.strip() not in AUTHORIZER_CLASS_NAMES:
            raise ConfigError(
                "authorizer.class.name",
                f"unknown authorizer {self.authorizer_class_name!r}; kafkapy's authorizer is selected by "
                + " or ".join(n for n in AUTHORIZER_CLASS_NAMES if n),
            )
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms:
            raise ConfigError("group.min.session.timeout.ms", "must not exceed group.max.session.timeout.ms")
        if self.effective_node_id < 0:
            raise ConfigError("node.id", "a broker id >= 0 is required")
        if self.remote_log_storage_system_enable and not (self.rsm_storage_root or self.rsm_s3_bucket_name):
            raise ConfigError(
                "remote.log.storage.system.enable",
                "tiered storage needs an object store: rsm.config.storage.s3.bucket.name or rsm.config.storage.root",
            )
        self.check_requirements()

    def check_requirements(self) -> None:
        """The cross-key requirements Kafka checks on its log settings (at start and on dynamic changes)."""
        for key, ok, rule in (
            ("log.roll.ms", self.roll_ms >= 1, "must be greater than or equal to 1"),
            ("log.roll.jitter.ms", self.roll_jitter_ms >= 0, "must be greater than or equal to 0"),
            ("log.retention.ms", self.retention_ms != 0, "must be unlimited (-1) or, greater than or equal to 1"),
        ):
            if not ok:
                raise ConfigError(key, rule, f"requirement failed: {key} {rule}")

    def with_changes(self, pairs: Iterable[tuple[str, str]]) -> BrokerConfig:
        """A copy with `pairs` set and the requirements checked (a dynamic change, validated)."""
        copy = dataclasses.replace(self, explicit=dict(self.explicit), unknown=dict(self.unknown))
        for key, raw in pairs:
            copy.set(key, raw)
        copy.check_requirements()
        return copy

    # -- effective values ---------------------------------------------------

    def listener_setting(self, listener: str, key: str) -> Any:
        """Typed value of `key` for a listener: listener.name.<listener>.<key> wins over <key>."""
        known = BROKER_KEYS.get(key)
        raw = self.explicit.get(f"{_LISTENER_PREFIX}{listener.lower()}.{key}")
        if raw is not None:
            return known.parse(raw) if known is not None else raw
        if known is not None:
            return getattr(self, known.attr)
        return self.unknown.get(key)

    def kafka_only_keys(self) -> list[str]:
        """Supplied keys of Apache Kafka's own machinery (KRaft) that kafkapy ignores."""
        return sorted(key for key in self.unknown if _kafka_only(key))

    def unused_keys(self) -> list[str]:
        """Supplied keys kafkapy does not know at all."""
        return sorted(key for key in self.unknown if not _kafka_only(key))

    @property
    def effective_node_id(self) -> int:
        return self.node_id if self.node_id is not None else self.broker_id

    @property
    def data_dirs(self) -> list[str]:
        return list(self.log_dirs) if self.log_dirs else list(self.log_dir)

    @property
    def retention_ms(self) -> int:
        """log.retention.ms, else minutes, else hours; any negative means forever (-1)."""
        if self.log_retention_ms is not None:
            ms = self.log_retention_ms
        elif self.log_retention_minutes is not None:
            ms = self.log_retention_minutes * 60_000
        else:
            ms = self.log_retention_hours * 3_600_000
        return -1 if ms < 0 else ms

    @property
    def roll_ms(self) -> int:
        return self.log_roll_ms if self.log_roll_ms is not None else self.log_roll_hours * 3_600_000

    @property
    def roll_jitter_ms(self) -> int:
        if self.log_roll_jitter_ms is not None:
            return self.log_roll_jitter_ms
        return self.log_roll_jitter_hours * 3_600_000

    @property
    def flush_interval_ms(self) -> int:
        if self.log_flush_interval_ms is not None:
            return self.log_flush_interval_ms
        return self.log_flush_scheduler_interval_ms

    @property
    def controller_listener_names(self) -> frozenset[str]:
        """KRaft's controller.listener.names (a Kafka-only key): kafkapy has no KRaft controller."""
        raw = self.explicit.get("controller.listener.names", "")
        return frozenset(name.strip().upper() for name in raw.split(",") if name.strip())

    @property
    def listener_list(self) -> list[Listener]:
        """The listeners this broker binds: those named in controller.listener.names are not bound
        (serving client APIs there would expose them without the listener's intended security)."""
        controller = self.controller_listener_names
        return [x for x in parse_listeners(self.listeners) if x.name not in controller]

    def security_protocol_map(self) -> dict[str, str]:
        """listener.security.protocol.map as {LISTENER NAME: SECURITY PROTOCOL}."""
        result: dict[str, str] = {}
        for item in self.listener_security_protocol_map.split(","):
            if not item.strip():
                continue
            name, sep, protocol = item.strip().partition(":")
            if not sep or not name.strip() or not protocol.strip():
                raise ConfigError("listener.security.protocol.map", f"entry {item.strip()!r} is not NAME:PROTOCOL")
            protocol = protocol.strip().upper()
            if protocol not in SECURITY_PROTOCOLS:
                raise ConfigError(
                    "listener.security.protocol.map",
                    f"unknown security protocol {protocol!r}; known: {', '.join(SECURITY_PROTOCOLS)}",
                )
            result[name.strip().upper()] = protocol
        return result

    def listener_security_protocol(self, name: str) -> str:
        """The security protocol of listener `name` (Kafka's error when the map lacks it)."""
        protocol = self.security_protocol_map().get(name.upper())
        if protocol is None:
            raise ConfigError(
                "listener.security.protocol.map",
                f"No security protocol defined for listener {name.upper()}",
            )
        return protocol

    def inter_broker_listener(self) -> tuple[str, str]:
        """(listener name, security protocol) brokers use to reach each other, by Kafka's rules:
        inter.broker.listener.name, else the listener named like security.inter.broker.protocol;
        it must be an advertised listener."""
        name = self.inter_broker_listener_name
        if name is not None:
            if "security.inter.broker.protocol" in self.explicit:
                raise ConfigError(
                    "inter.broker.listener.name",
                    "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.",
                )
            name = name.strip().upper()
            protocol = self.security_protocol_map().get(name)
            if protocol is None:
                raise ConfigError(
                    "inter.broker.listener.name",
                    f"Listener with name {name} defined in inter.broker.listener.name not found in "
                    "listener.security.protocol.map.",
                )
        else:
            name = protocol = self.security_inter_broker_protocol
        advertised = [listener.name for listener in self.advertised_listener_list]
        if name not in advertised:
            raise ConfigError(
                "inter.broker.listener.name",
                "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
                f"The valid options based on currently configured listeners are {','.join(advertised)}",
            )
        return name, protocol

    @property
    def advertised_listener_list(self) -> list[Listener]:
        """Advertised endpoints; falls back to listeners, wildcard hosts become a hostname."""
        controller = self.controller_listener_names
        if self.advertised_listeners is not None:
            return [x for x in parse_listeners(self.advertised_listeners) if x.name not in controller]
        result = []
        for listener in self.listener_list:
            host = listener.host
            if host in ("", "0.0.0.0", "::"):
                import socket

                host = socket.gethostname()
            result.append(Listener(listener.name, host, listener.port))
        return result

    def get(self, key: str) -> Any:
        """Typed value of a known key, raw string of an unknown one."""
        known = BROKER_KEYS.get(key)
        if known is None:
            return self.unknown.get(key)
        return getattr(self, known.attr)

    def describe(self, names: Iterable[str] | None = None) -> list[ConfigDescription]:
        """DescribeConfigs entries for this broker (all known keys, or `names`)."""
        wanted = list(names) if names is not None else [key.name for key in BROKER_CONFIGS]
        result: list[ConfigDescription] = []
        for name in wanted:
            key = BROKER_KEYS.get(name)
            if key is None:
                if name in self.unknown:
                    result.append(
                        ConfigDescription(
                            name, self.unknown[name], False, ConfigSource.STATIC_BROKER_CONFIG, True, False
                        )
                    )
                continue
            explicit = name in self.explicit
            source = ConfigSource.STATIC_BROKER_CONFIG if explicit else ConfigSource.DEFAULT_CONFIG
            value = None if key.sensitive else format_value(key.type, getattr(self, key.attr))
            synonyms: list[tuple[str, str | None, ConfigSource]] = [(name, value, source)]
            for syn in _BROKER_SYNONYMS.get(name, ()):
                if syn in self.explicit:
                    syn_key = BROKER_KEYS[syn]
                    synonyms.append(
                        (
                            syn,
                            format_value(syn_key.type, getattr(self, syn_key.attr)),
                            ConfigSource.STATIC_BROKER_CONFIG,
                        )
                    )
            if explicit and key.default is not None:
                synonyms.append((name, format_value(key.type, key.default), ConfigSource.DEFAULT_CONFIG))
            result.append(
                ConfigDescription(
                    name=name,
                    value=value,
                    is_default=not explicit,
                    source=source,
                    read_only=not key.dynamic,
                    sensitive=key.sensitive,
                    config_type=key.type,
                    documentation=key.doc,
                    synonyms=tuple(synonyms),
                )
            )
        return result


# Lower-priority broker keys that feed the same setting, as DescribeConfigs lists them.
_BROKER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "log.retention.ms": ("log.retention.minutes", "log.retention.hours"),
    "log.retention.minutes": ("log.retention.hours",),
    "log.roll.ms": ("log.roll.hours",),
    "log.roll.jitter.ms": ("log.roll.jitter.hours",),
    "log.dirs": ("log.dir",),
    "node.id": ("broker.id",),
}


_LISTENER_PREFIX = "listener.name."
# KRaft's keys: kafkapy has no controller quorum (cluster metadata lives in etcd or the data dir)
_KAFKA_ONLY = ("process.roles", "controller.", "metadata.log.")


def _kafka_only(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in _KAFKA_ONLY)


def _listener_key(key: str) -> ConfigKey | None:
    """The known key inside listener.name.<listener>.<key> (or .<mechanism>.sasl.<key>), else None."""
    _, _, rest = key[len(_LISTENER_PREFIX) :].partition(".")
    known = BROKER_KEYS.get(rest)
    if known is None:
        _, _, after_mechanism = rest.partition(".")
        candidate = BROKER_KEYS.get(after_mechanism)
        if candidate is not None and after_mechanism.startswith("sasl."):
            known = candidate
    return known


def _debug(event: str, **kw: Any) -> None:
    import structlog

    structlog.get_logger("kafkapy.config").debug(event, **kw)


# ---------------------------------------------------------------------------
# Java .properties parsing

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterable[str]:
    """Join continuation lines (odd count of trailing backslashes)."""
    pending: str | None = None
    for physical in text.splitlines():
        line = physical.lstrip(" \t\f") if pending is not None else physical
        if pending is None:
            stripped = line.lstrip(" \t\f")
            if not stripped or stripped[0] in "#!":
                continue
            line = stripped
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (pending or "") + line[:-1]
            continue
        yield (pending or "") + line
        pending = None
    if pending is not None:
        yield pending


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> list[tuple[str, str]]:
    """Parse Java `.properties` text into (key, value) pairs, in file order."""
    pairs: list[tuple[str, str]] = []
    for line in _logical_lines(text):
        i = 0
        while i < len(line):  # the key ends at an unescaped '=', ':' or whitespace
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        pairs.append((_unescape(key), _unescape(rest)))
    return pairs


# ---------------------------------------------------------------------------
# Topic configs


@dataclass(slots=True, frozen=True)
class TopicConfigKey:
    """A per-topic key; its default comes from `broker_value` on the broker config."""

    name: str
    attr: str
    type: ConfigType
    doc: str
    broker_value: Callable[[BrokerConfig], Any]
    synonyms: tuple[str, ...]  # broker keys, highest priority first
    validator: Validator | None = None
    internal: bool = False  # described only when set (Kafka's defineInternal)

    def parse(self, raw: str) -> Any:
        value = parse_value(self.name, self.type, raw)
        if self.validator is not None:
            self.validator(self.name, value)
        return value


def _attr(name: str) -> Callable[[BrokerConfig], Any]:
    return lambda broker: getattr(broker, name)


def _const(value: Any) -> Callable[[BrokerConfig], Any]:
    return lambda broker: value


_TK = TopicConfigKey

TOPIC_CONFIGS: dict[str, TopicConfigKey] = {
    key.name: key
    for key in (
        _TK(
            "cleanup.policy",
            "cleanup_policy",
            _T.LIST,
            "delete and/or compact.",
            _attr("log_cleanup_policy"),
            ("log.cleanup.policy",),
            list_of("compact", "delete"),
        ),
        _TK(
            "compression.type",
            "compression_type",
            _T.STRING,
            "Final compression; producer keeps the producer's codec.",
            _attr("compression_type"),
            ("compression.type",),
            one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        ),
        _TK(
            "compression.gzip.level",
            "compression_gzip_level",
            _T.INT,
            "gzip level when compression.type=gzip: 1..9, or -1 for the codec's default.",
            _attr("compression_gzip_level"),
            ("compression.gzip.level",),
            between_or(1, 9, -1),
        ),
        _TK(
            "compression.lz4.level",
            "compression_lz4_level",
            _T.INT,
            "lz4 level when compression.type=lz4: 1..17.",
            _attr("compression_lz4_level"),
            ("compression.lz4.level",),
            between(1, 17),
        ),
        _TK(
            "compression.zstd.level",
            "compression_zstd_level",
            _T.INT,
            "zstd level when compression.type=zstd: -131072..22.",
            _attr("compression_zstd_level"),
            ("compression.zstd.level",),
            between(-131072, 22),
        ),
        _TK(
            "delete.retention.ms",
            "delete_retention_ms",
            _T.LONG,
            "How long tombstones are kept when compacting.",
            _attr("log_cleaner_delete_retention_ms"),
            ("log.cleaner.delete.retention.ms",),
            at_least(0),
        ),
        _TK(
            "file.delete.delay.ms",
            "file_delete_delay_ms",
            _T.LONG,
            "Delay before deleted segment files are removed.",
            _attr("log_segment_delete_delay_ms"),
            ("log.segment.delete.delay.ms",),
            at_least(0),
        ),
        _TK(
            "flush.messages",
            "flush_messages",
            _T.LONG,
            "Messages appended before a forced fsync.",
            _attr("log_flush_interval_messages"),
            ("log.flush.interval.messages",),
            at_least(1),
        ),
        _TK(
            "flush.ms",
            "flush_ms",
            _T.LONG,
            "Max ms a message stays unflushed.",
            lambda b: b.flush_interval_ms,
            ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
            at_least(0),
        ),
        _TK(
            "follower.replication.throttled.replicas",
            "follower_replication_throttled_replicas",
            _T.LIST,
            "Throttled follower replicas.",
            _const([]),
            (),
            _throttled_replicas,
        ),
        _TK(
            "internal.segment.bytes",
            "internal_segment_bytes",
            _T.INT,
            "Segment size for tests, below segment.bytes' 1 MiB minimum; wins over segment.bytes.",
            _const(None),
            (),
            internal=True,
        ),
        _TK(
            "index.interval.bytes",
            "index_interval_bytes",
            _T.INT,
            "Bytes between offset index entries.",
            _attr("log_index_interval_bytes"),
            ("log.index.interval.bytes",),
            at_least(0),
        ),
        _TK(
            "leader.replication.throttled.replicas",
            "leader_replication_throttled_replicas",
            _T.LIST,
            "Throttled leader replicas.",
            _const([]),
            (),
            _throttled_replicas,
        ),
        _TK(
            "local.retention.bytes",
            "local_retention_bytes",
            _T.LONG,
            "Tiered storage: local bytes to keep of copied segments; -2 uses retention.bytes.",
            _attr("log_local_retention_bytes"),
            ("log.local.retention.bytes",),
            at_least(-2),
        ),
        _TK(
            "local.retention.ms",
            "local_retention_ms",
            _T.LONG,
            "Tiered storage: how long copied segments stay local; -2 uses retention.ms.",
            _attr("log_local_retention_ms"),
            ("log.local.retention.ms",),
            at_least(-2),
        ),
        _TK(
            "max.compaction.lag.ms",
            "max_compaction_lag_ms",
            _T.LONG,
            "Max time a message stays ineligible for compaction.",
            _attr("log_cleaner_max_compaction_lag_ms"),
            ("log.cleaner.max.compaction.lag.ms",),
            at_least(1),
        ),
        _TK(
            "max.message.bytes",
            "max_message_bytes",
            _T.INT,
            "Largest record batch accepted.",
            _attr("message_max_bytes"),
            ("message.max.bytes",),
            at_least(0),
        ),
        _TK(
            "message.downconversion.enable",
            "message_downconversion_enable",
            _T.BOOLEAN,
            "Down-convert for old fetch versions (kafkapy serves Fetch v0-3; Kafka 4 removed the key).",
            _attr("log_message_downconversion_enable"),
            ("log.message.downconversion.enable",),
        ),
        _TK(
            "message.timestamp.after.max.ms",
            "message_timestamp_after_max_ms",
            _T.LONG,
            "Max ms a record timestamp may be ahead of the broker.",
            _attr("log_message_timestamp_after_max_ms"),
            ("log.message.timestamp.after.max.ms",),
            at_least(0),
        ),
        _TK(
            "message.timestamp.before.max.ms",
            "message_timestamp_before_max_ms",
            _T.LONG,
            "Max ms a record timestamp may be behind the broker.",
            _attr("log_message_timestamp_before_max_ms"),
            ("log.message.timestamp.before.max.ms",),
            at_least(0),
        ),
        _TK(
            "message.timestamp.difference.max.ms",
            "message_timestamp_difference_max_ms",
            _T.LONG,
            "Deprecated (removed in Kafka 4; kafkapy keeps it): max |broker time - record time|, used where "
            "message.timestamp.before/after.max.ms are unset.",
            _attr("log_message_timestamp_difference_max_ms"),
            ("log.message.timestamp.difference.max.ms",),
            at_least(0),
        ),
        _TK(
            "message.timestamp.type",
            "message_timestamp_type",
            _T.STRING,
            "CreateTime or LogAppendTime.",
            _attr("log_message_timestamp_type"),
            ("log.message.timestamp.type",),
            one_of("CreateTime", "LogAppendTime"),
        ),
        _TK(
            "min.cleanable.dirty.ratio",
            "min_cleanable_dirty_ratio",
            _T.DOUBLE,
            "Min dirty ratio before cleaning.",
            _attr("log_cleaner_min_cleanable_ratio"),
            ("log.cleaner.min.cleanable.ratio",),
            between(0, 1),
        ),
        _TK(
            "min.compaction.lag.ms",
            "min_compaction_lag_ms",
            _T.LONG,
            "Min age of a message before it may be compacted.",
            _attr("log_cleaner_min_compaction_lag_ms"),
            ("log.cleaner.min.compaction.lag.ms",),
            at_least(0),
        ),
        _TK(
            "min.insync.replicas",
            "min_insync_replicas",
            _T.INT,
            "Replicas that must acknowledge an acks=all produce.",
            _attr("min_insync_replicas"),
            ("min.insync.replicas",),
            at_least(1),
        ),
        _TK(
            "preallocate",
            "preallocate",
            _T.BOOLEAN,
            "Preallocate segment files.",
            _attr("log_preallocate"),
            ("log.preallocate",),
        ),
        _TK(
            "remote.storage.enable",
            "remote_storage_enable",
            _T.BOOLEAN,
            "Tiered storage: copy closed segments to remote storage (needs remote.log.storage.system.enable).",
            _const(False),
            (),
        ),
        _TK(
            "remote.log.copy.disable",
            "remote_log_copy_disable",
            _T.BOOLEAN,
            "Tiered storage: stop copying to remote storage; what is there stays readable.",
            _const(False),
            (),
        ),
        _TK(
            "remote.log.delete.on.disable",
            "remote_log_delete_on_disable",
            _T.BOOLEAN,
            "Tiered storage: allow remote.storage.enable=false, deleting the remote data.",
            _const(False),
            (),
        ),
        _TK(
            "retention.bytes",
            "retention_bytes",
            _T.LONG,
            "Max bytes per partition; -1 unlimited.",
            _attr("log_retention_bytes"),
            ("log.retention.bytes",),
        ),
        _TK(
            "retention.ms",
            "retention_ms",
            _T.LONG,
            "Max age of a segment; -1 forever.",
            lambda b: b.retention_ms,
            ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
            at_least(-1),
        ),
        _TK(
            "segment.bytes",
            "segment_bytes",
            _T.INT,
            "Max size of a segment file (at least 1 MiB, as Kafka 4).",
            _attr("log_segment_bytes"),
            ("log.segment.bytes",),
            at_least(1024 * 1024),
        ),
        _TK(
            "segment.index.bytes",
            "segment_index_bytes",
            _T.INT,
            "Max size of an offset index file.",
            _attr("log_index_size_max_bytes"),
            ("log.index.size.max.bytes",),
            at_least(4),
        ),
        _TK(
            "segment.jitter.ms",
            "segment_jitter_ms",
            _T.LONG,
            "Max random jitter subtracted from segment.ms.",
            lambda b: b.roll_jitter_ms,
            ("log.roll.jitter.ms", "log.roll.jitter.hours"),
            at_least(0),
        ),
        _TK(
            "segment.ms",
            "segment_ms",
            _T.LONG,
            "Roll a segment after this long.",
            lambda b: b.roll_ms,
            ("log.roll.ms", "log.roll.hours"),
            at_least(1),
        ),
        _TK(
            "unclean.leader.election.enable",
            "unclean_leader_election_enable",
            _T.BOOLEAN,
            "Allow out-of-sync replicas to become leader.",
            _attr("unclean_leader_election_enable"),
            ("unclean.leader.election.enable",),
        ),
    )
}


@dataclass(slots=True)
class TopicConfig:
    """Effective per-topic settings: topic overrides over broker-derived defaults."""

    cleanup_policy: list[str]
    compression_type: str
    compression_gzip_level: int
    compression_lz4_level: int
    compression_zstd_level: int
    delete_retention_ms: int
    file_delete_delay_ms: int
    flush_messages: int
    flush_ms: int
    follower_replication_throttled_replicas: list[str]
    internal_segment_bytes: int | None
    index_interval_bytes: int
    leader_replication_throttled_replicas: list[str]
    local_retention_bytes: int
    local_retention_ms: int
    max_compaction_lag_ms: int
    max_message_bytes: int
    message_downconversion_enable: bool
    message_timestamp_after_max_ms: int
    message_timestamp_before_max_ms: int
    message_timestamp_difference_max_ms: int
    message_timestamp_type: str
    min_cleanable_dirty_ratio: float
    min_compaction_lag_ms: int
    min_insync_replicas: int
    preallocate: bool
    remote_storage_enable: bool
    remote_log_copy_disable: bool
    remote_log_delete_on_disable: bool
    retention_bytes: int
    retention_ms: int
    segment_bytes: int
    segment_index_bytes: int
    segment_jitter_ms: int
    segment_ms: int
    unclean_leader_election_enable: bool

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def effective_segment_bytes(self) -> int:
        """internal.segment.bytes when set (tests), else segment.bytes."""
        return self.internal_segment_bytes if self.internal_segment_bytes is not None else self.segment_bytes


def validate_topic_configs(
    configs: Mapping[str, str | None],
    broker: BrokerConfig | None = None,
    previous: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Check a topic's overrides (CreateTopics, AlterConfigs) as Kafka 4 does; returns them normalized.

    In Kafka's order: null values, then unknown names, then each value's type
    and range, then the checks across keys on the effective config (overrides
    over `broker`'s defaults): min.compaction.lag.ms <= max.compaction.lag.ms;
    with remote.storage.enable=true: refused unless the broker has
    remote.log.storage.system.enable, unless cleanup.policy is delete (or
    empty), with local.retention.* beyond retention.*, and with
    remote.log.copy.disable unless local.retention.* equal retention.*; an AlterConfigs turning it off (the
    topic's `previous` overrides had it on) needs remote.log.delete.on.disable
    (KIP-950). Raises ConfigError whose kafka_message is Kafka's text.
    """
    for name, raw in configs.items():
        if raw is None:
            raise ConfigError(name, "null value", f"Null value not supported for topic configs: {name}")
    for name in configs:
        if name not in TOPIC_CONFIGS:
            raise ConfigError(name, "unknown topic config name", f"Unknown topic config name: {name}")
    typed: dict[str, Any] = {}
    normalized: dict[str, str] = {}
    for name, raw in configs.items():
        key = TOPIC_CONFIGS[name]
        assert raw is not None
        typed[name] = key.parse(raw)
        rendered = format_value(key.type, typed[name])
        normalized[name] = rendered if rendered is not None else ""
    defaults = broker if broker is not None else BrokerConfig()

    def effective(name: str) -> Any:
        return typed[name] if name in typed else TOPIC_CONFIGS[name].broker_value(defaults)

    min_lag, max_lag = effective("min.compaction.lag.ms"), effective("max.compaction.lag.ms")
    if min_lag > max_lag:
        raise ConfigError(
            "min.compaction.lag.ms",
            "greater than max.compaction.lag.ms",
            f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})",
        )
    if effective("remote.storage.enable"):
        _check_remote_storage(effective, defaults.remote_log_storage_system_enable)
    elif previous is not None and _remote_enabled(previous) and not effective("remote.log.delete.on.disable"):
        raise ConfigError(
            "remote.storage.enable",
            "disabling remote storage needs remote.log.delete.on.disable=true",
            "It is invalid to disable remote storage without deleting remote data. If you want to keep the "
            "remote data and turn to read only, please set `remote.storage.enable=true,remote.log.copy.disable=true`. "
            "If you want to disable remote storage and delete all remote data, please set "
            "`remote.storage.enable=false,remote.log.delete.on.disable=true`.",
        )
    return normalized


def _remote_enabled(overrides: Mapping[str, str]) -> bool:
    raw = overrides.get("remote.storage.enable")
    return raw is not None and raw.strip().lower() == "true"


def _check_remote_storage(effective: Callable[[str], Any], system_enabled: bool) -> None:
    """Kafka's checks of a topic with remote.storage.enable=true, in its order."""
    if not system_enabled:
        raise ConfigError(
            "remote.storage.enable",
            "tiered storage is disabled in the broker",
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.",
        )
    policy = effective("cleanup.policy")
    if policy and policy != ["delete"]:  # Kafka 4.3: delete only, or the empty list (KIP-1161)
        raise ConfigError(
            "remote.storage.enable",
            "needs cleanup.policy=delete",
            "Remote log storage only supports topics with cleanup.policy=delete or cleanup.policy being an empty list.",
        )
    for total_key, local_key in (("retention.bytes", "local.retention.bytes"), ("retention.ms", "local.retention.ms")):
        total, local = effective(total_key), effective(local_key)
        if total <= -1 or local == -2:  # unlimited total retention, or local retention as the total
            continue
        if local == -1:
            reason = f"Value must not be -1 as {total_key} value is set as {total}."
        elif local > total:
            reason = f"Value must not be more than {total_key} property value: {total}"
        else:
            continue
        raise ConfigError(local_key, reason, f"Invalid value {local} for configuration {local_key}: {reason}")
    if effective("remote.log.copy.disable"):  # KIP-950: nothing more is copied, local is all there is
        for total_key, local_key in (
            ("retention.bytes", "local.retention.bytes"),
            ("retention.ms", "local.retention.ms"),
        ):
            local = effective(local_key)
            if local != -2 and local != effective(total_key):
                raise ConfigError(
                    local_key,
                    f"must equal {total_key} with remote.log.copy.disable=true",
                    f"When `remote.log.copy.disable` is set to true, the `{local_key}` and `{total_key}` must be set "
                    "to the identical value because there will be no more logs copied to the remote storage.",
                )


def resolve_topic_config(broker: BrokerConfig, overrides: Mapping[str, str] | None = None) -> TopicConfig:
    """Effective typed topic config. Overrides are assumed validated; bad ones raise ConfigError."""
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for name, key in TOPIC_CONFIGS.items():
        raw = overrides.get(name)
        values[key.attr] = key.parse(raw) if raw is not None else key.broker_value(broker)
    return TopicConfig(**values)


def describe_topic_config(
    broker: BrokerConfig,
    overrides: Mapping[str, str] | None = None,
    names: Iterable[str] | None = None,
) -> list[ConfigDescription]:
    """DescribeConfigs entries for a topic with the given overrides."""
    overrides = overrides or {}
    wanted = list(names) if names is not None else sorted(TOPIC_CONFIGS)
    result: list[ConfigDescription] = []
    for name in wanted:
        key = TOPIC_CONFIGS.get(name)
        if key is None or (key.internal and name not in overrides):
            continue
        synonyms: list[tuple[str, str | None, ConfigSource]] = []
        if name in overrides:
            synonyms.append((name, overrides[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
        for syn in key.synonyms:
            if syn in broker.explicit:
                syn_key = BROKER_KEYS[syn]
                synonyms.append(
                    (syn, format_value(syn_key.type, getattr(broker, syn_key.attr)), ConfigSource.STATIC_BROKER_CONFIG)
                )
        default_value = format_value(key.type, key.broker_value(BrokerConfig()))
        if not key.internal:
            synonyms.append((key.synonyms[0] if key.synonyms else name, default_value, ConfigSource.DEFAULT_CONFIG))
        value: str | None
        if name in overrides:
            value, source = overrides[name], ConfigSource.DYNAMIC_TOPIC_CONFIG
        elif any(syn in broker.explicit for syn in key.synonyms):
            value, source = format_value(key.type, key.broker_value(broker)), ConfigSource.STATIC_BROKER_CONFIG
        else:
            value, source = default_value, ConfigSource.DEFAULT_CONFIG
        result.append(
            ConfigDescription(
                name=name,
                value=value,
                is_default=source is ConfigSource.DEFAULT_CONFIG,
                source=source,
                read_only=False,
                sensitive=False,
                config_type=key.type,
                documentation=key.doc,
                synonyms=tuple(synonyms),
            )
        )
    return result


def check_table_consistency() -> list[str]:
    """Problems between BROKER_CONFIGS and BrokerConfig's fields (tests call this)."""
    problems: list[str] = []
    attrs = {f.name for f in fields(BrokerConfig)} - {"explicit", "unknown"}
    for key in BROKER_CONFIGS:
        if key.attr not in attrs:
            problems.append(f"{key.name}: no attribute {key.attr}")
    for attr in attrs - set(_BY_ATTR):
        problems.append(f"attribute {attr} has no table row")
    topic_attrs = {f.name for f in fields(TopicConfig)}
    for tkey in TOPIC_CONFIGS.values():
        if tkey.attr not in topic_attrs:
            problems.append(f"topic {tkey.name}: no attribute {tkey.attr}")
        for syn in tkey.synonyms:
            if syn not in BROKER_KEYS:
                problems.append(f"topic {tkey.name}: unknown synonym {syn}")
    return problems
