"""Config parsing, precedence, validation and DescribeConfigs rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkapy.config import (
    BROKER_CONFIGS,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigError,
    ConfigSource,
    ConfigType,
    Listener,
    check_table_consistency,
    describe_topic_config,
    format_value,
    parse_listener,
    parse_properties,
    resolve_topic_config,
    validate_topic_configs,
)


def test_table_and_dataclass_agree() -> None:
    assert check_table_consistency() == []


def test_kafka_defaults() -> None:
    c = BrokerConfig()
    assert c.listener_list == [Listener("PLAINTEXT", "127.0.0.1", 9092)]
    assert c.data_dirs == ["./data"]
    assert c.effective_node_id == 0
    assert c.num_partitions == 1
    assert c.auto_create_topics_enable is True
    assert c.retention_ms == 168 * 3_600_000
    assert c.log_retention_bytes == -1
    assert c.log_segment_bytes == 1073741824
    assert c.roll_ms == 168 * 3_600_000
    assert c.log_cleanup_policy == ["delete"]
    assert c.log_flush_interval_messages == 2**63 - 1
    assert c.flush_interval_ms == c.log_flush_scheduler_interval_ms
    assert c.message_max_bytes == 1048588
    assert c.socket_request_max_bytes == 104857600
    assert c.offsets_topic_num_partitions == 50
    assert c.group_initial_rebalance_delay_ms == 3000
    assert c.log_message_timestamp_type == "CreateTime"
    assert c.connections_max_idle_ms == 600000


def test_instances_do_not_share_lists() -> None:
    a, b = BrokerConfig(), BrokerConfig()
    a.log_cleanup_policy.append("compact")
    assert b.log_cleanup_policy == ["delete"]
    assert BROKER_CONFIGS[0] is not None


def test_properties_syntax() -> None:
    text = (
        "# comment\n"
        "   ! another comment\n"
        "\n"
        "a=1\n"
        "b : 2\n"
        "c 3\n"
        "  d=spaced value  \n"
        "list = one, \\\n"
        "       two,\\\n"
        "three\n"
        "esc\\=key=\\u0041\\tB\n"
        "empty=\n"
        "bare\n"
        "trailing=back\\\\\n"
    )
    assert parse_properties(text) == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "spaced value  "),
        ("list", "one, two,three"),
        ("esc=key", "A\tB"),
        ("empty", ""),
        ("bare", ""),
        ("trailing", "back\\"),
    ]


def test_load_file_then_overrides(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text(
        "listeners=PLAINTEXT://0.0.0.0:19092\n"
        "log.dirs=/var/a,/var/b\n"
        "num.partitions=3\n"
        "broker.id=7\n"
        "some.future.key=whatever\n"
    )
    c = BrokerConfig.load(props, [("num.partitions", "5"), ("node.id", "2")])
    assert c.num_partitions == 5
    assert c.data_dirs == ["/var/a", "/var/b"]
    assert c.effective_node_id == 2
    assert c.broker_id == 7
    assert c.listener_list == [Listener("PLAINTEXT", "0.0.0.0", 19092)]
    assert c.unknown == {"some.future.key": "whatever"}
    assert c.get("some.future.key") == "whatever"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("log.retention.hours", "1")], 3_600_000),
        ([("log.retention.hours", "1"), ("log.retention.minutes", "2")], 120_000),
        ([("log.retention.minutes", "2"), ("log.retention.hours", "1")], 120_000),
        ([("log.retention.ms", "5"), ("log.retention.minutes", "2"), ("log.retention.hours", "1")], 5),
        ([("log.retention.hours", "-1")], -1),
        ([("log.retention.ms", "-1"), ("log.retention.hours", "5")], -1),
    ],
)
def test_retention_precedence(pairs: list[tuple[str, str]], expected: int) -> None:
    assert BrokerConfig.from_pairs(pairs).retention_ms == expected


def test_roll_and_flush_precedence() -> None:
    c = BrokerConfig.from_pairs([("log.roll.hours", "2"), ("log.flush.interval.ms", "100")])
    assert c.roll_ms == 7_200_000
    assert c.flush_interval_ms == 100
    assert BrokerConfig.from_pairs([("log.roll.hours", "2"), ("log.roll.ms", "9")]).roll_ms == 9


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("num.partitions", "abc"),
        ("num.partitions", "0"),
        ("num.partitions", "99999999999"),
        ("auto.create.topics.enable", "yes"),
        ("log.cleanup.policy", "delete,shred"),
        ("log.message.timestamp.type", "WallClock"),
        ("listeners", "not-a-listener"),
        ("log.cleaner.min.cleanable.ratio", "1.5"),
        ("log.segment.bytes", "1048575"),
        ("log.cleanup.policy", "delete,"),
        ("compression.gzip.level", "0"),
        ("log.roll.ms", "0"),
        ("log.retention.ms", "0"),
        ("log.retention.ms", ""),
        ("log.dirs", ""),
        ("listeners", " "),
    ],
)
def test_invalid_values_name_the_key(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_pairs([(key, raw)])
    assert info.value.key == key
    assert key in str(info.value)


def test_cross_key_validation() -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_pairs([("advertised.listeners", "EXTERNAL://h:1")])
    assert info.value.key == "advertised.listeners"


def test_listener_forms() -> None:
    assert parse_listener("h:1") == Listener("PLAINTEXT", "h", 1)
    assert parse_listener("SASL_PLAINTEXT://h:2") == Listener("SASL_PLAINTEXT", "h", 2)
    assert parse_listener(":9092") == Listener("PLAINTEXT", "", 9092)
    assert parse_listener("[::1]:9") == Listener("PLAINTEXT", "::1", 9)
    assert str(Listener("PLAINTEXT", "::1", 9)) == "PLAINTEXT://[::1]:9"
    c = BrokerConfig.from_pairs(
        [("listeners", "PLAINTEXT://127.0.0.1:1"), ("advertised.listeners", "PLAINTEXT://public:2")]
    )
    assert c.advertised_listener_list == [Listener("PLAINTEXT", "public", 2)]
    assert BrokerConfig().advertised_listener_list == BrokerConfig().listener_list


def test_describe_broker() -> None:
    c = BrokerConfig.from_pairs([("num.partitions", "4"), ("log.retention.hours", "2"), ("x.unknown", "v")])
    entries = {e.name: e for e in c.describe()}
    assert len(entries) == len(BROKER_CONFIGS)
    num = entries["num.partitions"]
    assert (num.value, num.is_default, num.source) == ("4", False, ConfigSource.STATIC_BROKER_CONFIG)
    assert ("num.partitions", "1", ConfigSource.DEFAULT_CONFIG) in num.synonyms
    seg = entries["log.segment.bytes"]
    assert (seg.value, seg.is_default, seg.source) == ("1073741824", True, ConfigSource.DEFAULT_CONFIG)
    assert entries["log.retention.ms"].value is None
    assert ("log.retention.hours", "2", ConfigSource.STATIC_BROKER_CONFIG) in entries["log.retention.ms"].synonyms
    assert entries["auto.create.topics.enable"].value == "true"
    assert entries["log.cleanup.policy"].value == "delete"
    unknown = c.describe(["x.unknown", "nope"])
    assert [(e.name, e.value) for e in unknown] == [("x.unknown", "v")]


def test_topic_defaults_follow_broker() -> None:
    c = BrokerConfig.from_pairs(
        [("log.retention.minutes", "10"), ("log.segment.bytes", "2097152"), ("message.max.bytes", "500")]
    )
    t = resolve_topic_config(c)
    assert t.retention_ms == 600_000
    assert t.segment_bytes == t.effective_segment_bytes == 2097152
    assert t.max_message_bytes == 500
    assert t.cleanup_policy == ["delete"] and t.delete and not t.compact
    assert t.compression_type == "producer"
    assert t.segment_ms == 168 * 3_600_000
    t2 = resolve_topic_config(c, {"retention.ms": "5", "cleanup.policy": "compact,delete"})
    assert t2.retention_ms == 5 and t2.compact and t2.delete


def test_topic_validation() -> None:
    assert validate_topic_configs({"cleanup.policy": "compact", "retention.ms": " 100 "}) == {
        "cleanup.policy": "compact",
        "retention.ms": "100",
    }
    for bad in (
        {"retention.ms": None},
        {"retention.ms": "-2"},
        {"segment.bytes": "1"},
        {"cleanup.policy": "nope"},
        {"no.such.key": "1"},
        {"min.insync.replicas": "0"},
        {"message.timestamp.type": "x"},
        {"compression.type": "brotli"},
    ):
        with pytest.raises(ConfigError) as info:
            validate_topic_configs(bad)
        assert info.value.key == next(iter(bad))


def test_describe_topic_sources() -> None:
    c = BrokerConfig.from_pairs([("log.retention.hours", "1")])
    entries = {e.name: e for e in describe_topic_config(c, {"segment.bytes": "2000"})}
    assert set(entries) == {name for name, key in TOPIC_CONFIGS.items() if not key.internal}
    assert (entries["segment.bytes"].value, entries["segment.bytes"].source) == (
        "2000",
        ConfigSource.DYNAMIC_TOPIC_CONFIG,
    )
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == (
        "3600000",
        ConfigSource.STATIC_BROKER_CONFIG,
    )
    assert (entries["cleanup.policy"].value, entries["cleanup.policy"].source) == (
        "delete",
        ConfigSource.DEFAULT_CONFIG,
    )
    assert entries["cleanup.policy"].is_default
    assert entries["max.message.bytes"].value == "1048588"


# Kafka 4.3.1's answers (CreateTopics with one config each, checked against the real broker):
# None where it accepts, else the error message it gives (INVALID_CONFIG).
KAFKA_TOPIC_ANSWERS: list[tuple[dict[str, str | None], str | None]] = [
    ({"segment.bytes": "1048575"}, "Invalid value 1048575 for configuration segment.bytes: Value must be at least 1048576"),
    ({"segment.bytes": " 1048576"}, None),
    ({"segment.bytes": "abc"}, "Invalid value abc for configuration segment.bytes: Not a number of type INT"),
    ({"segment.bytes": "2147483648"}, "Invalid value 2147483648 for configuration segment.bytes: Not a number of type INT"),
    ({"segment.bytes": None}, "Null value not supported for topic configs: segment.bytes"),
    ({"internal.segment.bytes": "200"}, None),
    ({"internal.segment.bytes": "-5"}, None),
    ({"segment.ms": "0"}, "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
    ({"segment.ms": "+5"}, None),
    ({"segment.ms": "1_0"}, "Invalid value 1_0 for configuration segment.ms: Not a number of type LONG"),
    ({"segment.ms": "0x10"}, "Invalid value 0x10 for configuration segment.ms: Not a number of type LONG"),
    ({"segment.index.bytes": "3"}, "Invalid value 3 for configuration segment.index.bytes: Value must be at least 4"),
    ({"retention.ms": "-2"}, "Invalid value -2 for configuration retention.ms: Value must be at least -1"),
    ({"retention.bytes": "-5"}, None),
    ({"max.message.bytes": "0"}, None),
    ({"min.insync.replicas": "0"}, "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"),
    ({"min.cleanable.dirty.ratio": "1.1"}, "Invalid value 1.1 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"min.cleanable.dirty.ratio": "-0.0001"}, "Invalid value -1.0E-4 for configuration min.cleanable.dirty.ratio: Value must be at least 0"),
    ({"min.cleanable.dirty.ratio": "2e10"}, "Invalid value 2.0E10 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"min.cleanable.dirty.ratio": "NaN"}, None),
    ({"min.cleanable.dirty.ratio": "0x1p-1"}, None),
    ({"min.cleanable.dirty.ratio": "0.5f"}, None),
    ({"cleanup.policy": ""}, None),
    ({"cleanup.policy": "compact,compact"}, None),
    ({"cleanup.policy": "delete,"}, "Configuration 'cleanup.policy' values must not be empty."),
    ({"cleanup.policy": "nope,"}, "Invalid value nope for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"cleanup.policy": "Delete"}, "Invalid value Delete for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"message.timestamp.type": "createtime"}, "Invalid value createtime for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"),
    # Kafka 4 answers "Unknown topic config name" for message.timestamp.difference.max.ms; kafkapy keeps it
    ({"message.timestamp.difference.max.ms": "5"}, None),
    ({"message.timestamp.difference.max.ms": "-1"}, "Invalid value -1 for configuration message.timestamp.difference.max.ms: Value must be at least 0"),
    ({"compression.type": "ZSTD"}, "Invalid value ZSTD for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
    ({"compression.gzip.level": "0"}, "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
    ({"compression.gzip.level": "-1"}, None),
    ({"compression.gzip.level": "9"}, None),
    ({"compression.lz4.level": "0"}, "Invalid value 0 for configuration compression.lz4.level: Value must be at least 1"),
    ({"compression.lz4.level": "18"}, "Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"),
    ({"compression.zstd.level": "-131073"}, "Invalid value -131073 for configuration compression.zstd.level: Value must be at least -131072"),
    ({"compression.zstd.level": "22"}, None),
    ({"preallocate": "yes"}, "Invalid value yes for configuration preallocate: Expected value to be either true or false"),
    ({"preallocate": "TRUE"}, None),
    ({"remote.storage.enable": "true"}, "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."),
    ({"remote.log.copy.disable": "true"}, None),
    ({"local.retention.ms": "-3"}, "Invalid value -3 for configuration local.retention.ms: Value must be at least -2"),
    ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
    ({"min.compaction.lag.ms": "5", "max.compaction.lag.ms": "5"}, None),
    ({"leader.replication.throttled.replicas": " * "}, None),
    ({"leader.replication.throttled.replicas": "0:1 , 2:3,"}, None),
    ({"leader.replication.throttled.replicas": "*,0:1"}, "Invalid value [*, 0:1] for configuration leader.replication.throttled.replicas: leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ({"segment.bytes": "200", "no.such": "1"}, "Unknown topic config name: no.such"),
    ({"remote.storage.enable": "true", "segment.bytes": "1"}, "Invalid value 1 for configuration segment.bytes: Value must be at least 1048576"),
]  # fmt: skip


@pytest.mark.parametrize(("configs", "kafka"), KAFKA_TOPIC_ANSWERS)
def test_topic_validation_as_kafka(configs: dict[str, str | None], kafka: str | None) -> None:
    if kafka is None:
        validate_topic_configs(configs)
        return
    with pytest.raises(ConfigError) as info:
        validate_topic_configs(configs)
    assert info.value.kafka_message == kafka


def test_compaction_lags_checked_against_the_broker_defaults() -> None:
    broker = BrokerConfig.from_pairs([("log.cleaner.max.compaction.lag.ms", "100")])
    with pytest.raises(ConfigError) as info:
        validate_topic_configs({"min.compaction.lag.ms": "200"}, broker)
    assert info.value.kafka_message.endswith("min.compaction.lag.ms (200) > max.compaction.lag.ms (100)")
    validate_topic_configs({"min.compaction.lag.ms": "200"})


def test_internal_segment_bytes_is_described_only_when_set() -> None:
    c = BrokerConfig()
    assert "internal.segment.bytes" not in {e.name for e in describe_topic_config(c, {})}
    assert describe_topic_config(c, {}, ["internal.segment.bytes"]) == []
    (entry,) = describe_topic_config(c, {"internal.segment.bytes": "2000"}, ["internal.segment.bytes"])
    assert (entry.value, entry.source) == ("2000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    t = resolve_topic_config(c, {"internal.segment.bytes": "2000"})
    assert (t.segment_bytes, t.effective_segment_bytes) == (1073741824, 2000)


def test_compression_levels_default_from_the_broker() -> None:
    c = BrokerConfig.from_pairs([("compression.zstd.level", "7")])
    t = resolve_topic_config(c, {"compression.gzip.level": "5"})
    assert (t.compression_gzip_level, t.compression_lz4_level, t.compression_zstd_level) == (5, 9, 7)
    entries = {e.name: e for e in describe_topic_config(c, {})}
    assert (entries["compression.zstd.level"].value, entries["compression.zstd.level"].source) == (
        "7",
        ConfigSource.STATIC_BROKER_CONFIG,
    )


def test_broker_requirements_as_kafka() -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig().with_changes([("log.roll.jitter.ms", "-1")])
    assert info.value.kafka_message == "requirement failed: log.roll.jitter.ms must be greater than or equal to 0"
    assert BrokerConfig().with_changes([("log.retention.ms", "-5")]).retention_ms == -1
    with pytest.raises(ConfigError) as info:
        BrokerConfig().with_changes([("log.segment.bytes", "200")])
    assert (
        info.value.kafka_message
        == "Invalid value 200 for configuration log.segment.bytes: Value must be at least 1048576"
    )


@pytest.mark.parametrize(
    ("value", "java"),
    [(1.0, "1.0"), (0.001, "0.001"), (1e-4, "1.0E-4"), (2e10, "2.0E10"), (12345678.0, "1.2345678E7"), (-0.0, "-0.0")],
)
def test_doubles_print_as_java(value: float, java: str) -> None:
    assert format_value(ConfigType.DOUBLE, value) == java
