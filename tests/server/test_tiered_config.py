"""Tiered storage settings: the broker keys, and topic configs accepted or refused with Kafka's messages."""

from __future__ import annotations

import pytest

from kafkapy.config import BrokerConfig, ConfigError, ConfigSource, resolve_topic_config, validate_topic_configs

ON = BrokerConfig.from_pairs([("remote.log.storage.system.enable", "true"), ("rsm.config.storage.s3.bucket.name", "b")])
DISABLED = "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
DISABLE_WITHOUT_DELETE = (
    "It is invalid to disable remote storage without deleting remote data. If you want to keep the remote data "
    "and turn to read only, please set `remote.storage.enable=true,remote.log.copy.disable=true`. If you want to "
    "disable remote storage and delete all remote data, please set "
    "`remote.storage.enable=false,remote.log.delete.on.disable=true`."
)


def refused(configs: dict[str, str | None], broker: BrokerConfig, previous: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        validate_topic_configs(configs, broker, previous)
    return info.value.kafka_message


def test_broker_defaults_are_kafkas() -> None:
    c = BrokerConfig()
    assert c.remote_log_storage_system_enable is False
    assert c.remote_log_manager_task_interval_ms == 30000
    assert (c.remote_log_manager_task_retry_backoff_ms, c.remote_log_manager_task_retry_backoff_max_ms) == (500, 30000)
    assert c.remote_fetch_max_wait_ms == 500
    assert c.remote_log_index_file_cache_total_size_bytes == 1 << 30
    assert (c.log_local_retention_ms, c.log_local_retention_bytes) == (-2, -2)
    assert c.remote_log_manager_copy_max_bytes_per_second == 2**63 - 1


def test_system_flag_needs_an_object_store() -> None:
    with pytest.raises(ConfigError, match="object store"):
        BrokerConfig.from_pairs([("remote.log.storage.system.enable", "true")])
    c = BrokerConfig.from_pairs([("remote.log.storage.system.enable", "true"), ("rsm.config.storage.root", "/x")])
    assert c.rsm_storage_root == "/x"


def test_secret_key_is_never_described_in_clear() -> None:
    c = BrokerConfig.from_pairs(
        [
            ("rsm.config.storage.aws.secret.access.key", "s3cr3t"),
            ("rsm.config.storage.aws.access.key.id", "AKIA"),
            ("rsm.config.storage.s3.endpoint.url", "http://127.0.0.1:1"),
        ]
    )
    entries = {d.name: d for d in c.describe()}
    secret = entries["rsm.config.storage.aws.secret.access.key"]
    assert (secret.value, secret.sensitive, secret.source) == (None, True, ConfigSource.STATIC_BROKER_CONFIG)
    assert entries["rsm.config.storage.aws.access.key.id"].value is None
    assert entries["rsm.config.storage.s3.endpoint.url"].value == "http://127.0.0.1:1"
    assert "s3cr3t" not in repr([(d.name, d.value, d.synonyms) for d in c.describe()])


def test_remote_storage_refused_while_the_system_flag_is_off() -> None:
    assert refused({"remote.storage.enable": "true"}, BrokerConfig()) == DISABLED


def test_remote_storage_accepted_with_the_system_flag() -> None:
    assert validate_topic_configs({"remote.storage.enable": "true", "local.retention.bytes": "10"}, ON) == {
        "remote.storage.enable": "true",
        "local.retention.bytes": "10",
    }
    t = resolve_topic_config(ON, {"remote.storage.enable": "true", "local.retention.ms": "1000"})
    assert (t.remote_storage_enable, t.local_retention_ms, t.local_retention_bytes) == (True, 1000, -2)


def test_only_delete_topics_can_be_tiered() -> None:
    msg = "Remote log storage only supports topics with cleanup.policy=delete or cleanup.policy being an empty list."
    assert refused({"remote.storage.enable": "true", "cleanup.policy": "compact"}, ON) == msg
    assert refused({"remote.storage.enable": "true", "cleanup.policy": "delete,compact"}, ON) == msg
    compacting = BrokerConfig.from_pairs([*ON.explicit.items(), ("log.cleanup.policy", "compact")])
    assert refused({"remote.storage.enable": "true"}, compacting) == msg
    validate_topic_configs({"remote.storage.enable": "true", "cleanup.policy": ""}, ON)
    validate_topic_configs({"remote.storage.enable": "true", "cleanup.policy": "delete"}, ON)


def test_copy_disable_needs_local_retention_as_total() -> None:
    base = {"remote.storage.enable": "true", "remote.log.copy.disable": "true"}
    assert refused({**base, "retention.bytes": "100", "local.retention.bytes": "10"}, ON) == (
        "When `remote.log.copy.disable` is set to true, the `local.retention.bytes` and `retention.bytes` must be "
        "set to the identical value because there will be no more logs copied to the remote storage."
    )
    assert refused({**base, "retention.ms": "100", "local.retention.ms": "10"}, ON).startswith(
        "When `remote.log.copy.disable` is set to true, the `local.retention.ms` and `retention.ms` must"
    )
    validate_topic_configs({**base, "retention.ms": "100", "local.retention.ms": "100"}, ON)
    validate_topic_configs(base, ON)


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        (
            {"retention.bytes": "100", "local.retention.bytes": "-1"},
            "Invalid value -1 for configuration local.retention.bytes: Value must not be -1 as retention.bytes value is set as 100.",
        ),
        (
            {"retention.bytes": "100", "local.retention.bytes": "101"},
            "Invalid value 101 for configuration local.retention.bytes: Value must not be more than retention.bytes property value: 100",
        ),
        (
            {"retention.ms": "1000", "local.retention.ms": "-1"},
            "Invalid value -1 for configuration local.retention.ms: Value must not be -1 as retention.ms value is set as 1000.",
        ),
        (
            {"retention.ms": "1000", "local.retention.ms": "2000"},
            "Invalid value 2000 for configuration local.retention.ms: Value must not be more than retention.ms property value: 1000",
        ),
        ({"retention.bytes": "-1", "local.retention.bytes": "-1"}, None),
        ({"retention.ms": "-1", "local.retention.ms": "5"}, None),
        ({"retention.ms": "1000", "local.retention.ms": "1000"}, None),
    ],
)  # fmt: skip
def test_local_retention_within_total_retention(configs: dict[str, str], message: str | None) -> None:
    configs = {"remote.storage.enable": "true", **configs}
    if message is None:
        validate_topic_configs(configs, ON)
    else:
        assert refused(dict(configs), ON) == message


def test_local_retention_defaults_from_the_broker() -> None:
    c = BrokerConfig.from_pairs([*ON.explicit.items(), ("log.local.retention.bytes", "4096")])
    assert resolve_topic_config(c, {}).local_retention_bytes == 4096


def test_turning_remote_storage_off_needs_delete_on_disable() -> None:
    was_on = {"remote.storage.enable": "true"}
    assert refused({"remote.storage.enable": "false"}, ON, was_on) == DISABLE_WITHOUT_DELETE
    assert refused({}, ON, was_on) == DISABLE_WITHOUT_DELETE  # the override deleted: the default, false
    validate_topic_configs({"remote.storage.enable": "false", "remote.log.delete.on.disable": "true"}, ON, was_on)
    validate_topic_configs({"remote.storage.enable": "true", "remote.log.copy.disable": "true"}, ON, was_on)
    validate_topic_configs({"remote.storage.enable": "false"}, ON, {})  # never on: nothing to delete
