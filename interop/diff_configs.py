"""Differential steps for topic and broker config validation (issue 14): CreateTopics, AlterConfigs
and IncrementalAlterConfigs with the values on both sides of each limit Kafka 4.3.1 puts on a
config (type, range, allowed strings, checks across keys), sent to Apache Kafka and to kafkapy.

Accepted values really create a topic (one per case: "create_cfg_<key>_<value>"), so the answer is
the same as a client's; CreateTopics v4 answers without the config listing and topic id, whose
differences are covered by the main script. v7 steps compare the listing once with the internal
and KIP-390 configs set. Alterations are validate-only, on one topic, in both protocols; broker
alterations use the cluster-default resource ("") that both brokers name alike.

interop/differential.py adds `steps()` to its SCRIPT right after metadata_all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kafkapy.protocol.messages.alter_configs_request import AlterConfigsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)

if TYPE_CHECKING:
    from interop.differential import Step

TARGET = "diff-cfg-target"  # AlterConfigs target, created with min.compaction.lag.ms=10
SMALL = "diff-cfg-small"  # internal.segment.bytes and the compression levels set, described

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# (config, value): one CreateTopics each; Kafka's answer decides which side of the limit it is on
BOUNDARIES: list[tuple[str, str]] = [
    ("segment.bytes", "1048575"),
    ("segment.bytes", "1048576"),
    ("segment.bytes", "200"),
    ("segment.bytes", "abc"),
    ("segment.bytes", "2147483648"),
    ("segment.ms", "0"),
    ("segment.ms", "1"),
    ("segment.ms", "9223372036854775808"),
    ("segment.jitter.ms", "-1"),
    ("segment.jitter.ms", "0"),
    ("segment.index.bytes", "3"),
    ("segment.index.bytes", "4"),
    ("retention.ms", "-2"),
    ("retention.ms", "-1"),
    ("retention.bytes", "-2"),
    ("max.message.bytes", "-1"),
    ("max.message.bytes", "0"),
    ("min.insync.replicas", "0"),
    ("min.insync.replicas", "1"),
    ("min.cleanable.dirty.ratio", "-0.1"),
    ("min.cleanable.dirty.ratio", "0"),
    ("min.cleanable.dirty.ratio", "1"),
    ("min.cleanable.dirty.ratio", "1.1"),
    ("min.cleanable.dirty.ratio", "x"),
    ("delete.retention.ms", "-1"),
    ("delete.retention.ms", "0"),
    ("file.delete.delay.ms", "-1"),
    ("file.delete.delay.ms", "0"),
    ("flush.messages", "0"),
    ("flush.messages", "1"),
    ("flush.ms", "-1"),
    ("flush.ms", "0"),
    ("index.interval.bytes", "-1"),
    ("index.interval.bytes", "0"),
    ("max.compaction.lag.ms", "0"),
    ("max.compaction.lag.ms", "1"),
    ("min.compaction.lag.ms", "-1"),
    ("min.compaction.lag.ms", "0"),
    ("message.timestamp.before.max.ms", "-1"),
    ("message.timestamp.before.max.ms", "0"),
    ("message.timestamp.after.max.ms", "-1"),
    ("message.timestamp.after.max.ms", "0"),
    ("local.retention.ms", "-3"),
    ("local.retention.ms", "-2"),
    ("local.retention.bytes", "-3"),
    ("local.retention.bytes", "-2"),
    ("compression.gzip.level", "-2"),
    ("compression.gzip.level", "-1"),
    ("compression.gzip.level", "0"),
    ("compression.gzip.level", "1"),
    ("compression.gzip.level", "9"),
    ("compression.gzip.level", "10"),
    ("compression.lz4.level", "0"),
    ("compression.lz4.level", "1"),
    ("compression.lz4.level", "17"),
    ("compression.lz4.level", "18"),
    ("compression.zstd.level", "-131073"),
    ("compression.zstd.level", "-131072"),
    ("compression.zstd.level", "22"),
    ("compression.zstd.level", "23"),
    ("compression.type", "none"),
    ("compression.type", "ZSTD"),
    ("compression.type", "uncompressed"),
    ("cleanup.policy", "nope"),
    ("cleanup.policy", "delete,"),
    ("cleanup.policy", ""),
    ("cleanup.policy", "compact,delete"),
    ("message.timestamp.type", "createtime"),
    ("message.timestamp.type", "LogAppendTime"),
    ("preallocate", "yes"),
    ("preallocate", "TRUE"),
    ("unclean.leader.election.enable", "1"),
    ("remote.storage.enable", "true"),
    ("remote.storage.enable", "false"),
    ("remote.log.copy.disable", "true"),
    ("remote.log.delete.on.disable", "true"),
    ("leader.replication.throttled.replicas", "abc"),
    ("leader.replication.throttled.replicas", "*,0:1"),
    ("leader.replication.throttled.replicas", "0:1,1:0"),
    ("follower.replication.throttled.replicas", "*"),
    ("internal.segment.bytes", "200"),
    ("internal.segment.bytes", "x"),
    ("message.timestamp.difference.max.ms", "5"),  # Kafka 4 removed it
    ("no.such.config", "1"),
]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower().replace("*", "star")).strip("_") or "empty"


def _boundary_step(i: int, key: str, value: str) -> Step:
    from interop.differential import Step, create, topic

    sign = "minus_" if value.startswith("-") else ""
    return Step(
        f"create_cfg_{_slug(key)}_{sign}{_slug(value)}",
        lambda: create(topic(f"diff-cfg-{i}", 1, 1, **{key: value})),
        4,
    )


def _with_null() -> CreatableTopic:
    from interop.differential import topic

    t = topic("diff-cfg-null", 1, 1, **{"segment.bytes": "1048576"})
    t.configs[0].value = None
    return t


def _null_alter() -> AlterConfigsRequest:
    from interop.differential import alter_configs

    req = alter_configs(TARGET, True, **{"segment.bytes": "1048576"})
    req.resources[0].configs[0].value = None
    return req


def _broker(*ops: tuple[str, int, str | None]) -> IncrementalAlterConfigsRequest:
    return IncrementalAlterConfigsRequest(
        resources=[
            AlterConfigsResource(
                resource_type=4,
                resource_name="",
                configs=[AlterableConfig(name=n, config_operation=op, value=v) for n, op, v in ops],
            )
        ],
        validate_only=True,
    )


LEVELS = {"compression.gzip.level": "5", "compression.lz4.level": "12", "compression.zstd.level": "-5"}


def steps() -> list[Step]:
    """The steps (interop.differential imports this module at its end and adds them to its SCRIPT)."""
    from interop.differential import Step, alter_configs, create, describe_configs, incremental, topic

    return [
        Step("create_cfg_target", lambda: create(topic(TARGET, 1, 1, **{"min.compaction.lag.ms": "10"})), 4),
        *(_boundary_step(i, key, value) for i, (key, value) in enumerate(BOUNDARIES)),
        Step("create_cfg_null_value", lambda: create(_with_null()), 4),
        Step(
            "create_cfg_compaction_lags_crossed",
            lambda: create(
                topic("diff-cfg-lags", 1, 1, **{"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"})
            ),
            4,
        ),
        Step(
            "create_cfg_compaction_lags_equal",
            lambda: create(
                topic("diff-cfg-lags-eq", 1, 1, **{"min.compaction.lag.ms": "5", "max.compaction.lag.ms": "5"})
            ),
            4,
        ),
        Step(
            "create_cfg_unknown_before_bad_value",
            lambda: create(topic("diff-cfg-order", 1, 1, **{"segment.bytes": "200", "no.such.config": "1"})),
            4,
        ),
        Step(
            "create_cfg_remote_and_bad_value",
            lambda: create(topic("diff-cfg-order2", 1, 1, **{"remote.storage.enable": "true", "segment.bytes": "1"})),
            4,
        ),
        # Kafka checks the name (illegal, taken, colliding) before the configs, the counts after them
        Step("create_cfg_bad_name_and_value", lambda: create(topic("bad/name", 1, 1, **{"segment.bytes": "200"})), 4),
        Step("create_cfg_exists_and_bad_value", lambda: create(topic(TARGET, 1, 1, **{"segment.bytes": "200"})), 4),
        Step("create_cfg_collision_base", lambda: create(topic("diff-cfg.coll", 1, 1)), 4),
        Step(
            "create_cfg_collides_and_bad_value",
            lambda: create(topic("diff-cfg_coll", 1, 1, **{"segment.bytes": "200"})),
            4,
        ),
        Step(
            "create_cfg_zero_partitions_and_bad_value",
            lambda: create(topic("diff-cfg-p0", 0, 1, **{"segment.bytes": "200"})),
            4,
        ),
        Step("create_cfg_rf_and_bad_value", lambda: create(topic("diff-cfg-rf3", 1, 3, **{"segment.bytes": "200"})), 4),
        # the whole config listing of a new topic with the internal and KIP-390 configs set (v7)
        Step(
            "create_cfg_small_segments_v7",
            lambda: create(topic(SMALL, 1, 1, **{"internal.segment.bytes": "2000", **LEVELS})),
            7,
        ),
        Step(
            "describe_cfg_small_segments",
            lambda: describe_configs(
                2,
                SMALL,
                ["internal.segment.bytes", "segment.bytes", *LEVELS, "cleanup.policy", "min.cleanable.dirty.ratio"],
            ),
            4,
        ),
        Step("describe_cfg_internal_unset", lambda: describe_configs(2, TARGET, ["internal.segment.bytes"]), 4),
        # legacy AlterConfigs (replaces the whole set: the target's min.compaction.lag.ms goes back to 0)
        Step("alter_cfg_segment_bytes_low", lambda: alter_configs(TARGET, True, **{"segment.bytes": "1048575"}), 2),
        Step("alter_cfg_segment_bytes_min", lambda: alter_configs(TARGET, True, **{"segment.bytes": "1048576"}), 2),
        Step(
            "alter_cfg_internal_segment_bytes",
            lambda: alter_configs(TARGET, True, **{"internal.segment.bytes": "200"}),
            2,
        ),
        Step("alter_cfg_zstd_level_high", lambda: alter_configs(TARGET, True, **{"compression.zstd.level": "23"}), 2),
        Step("alter_cfg_gzip_level_ok", lambda: alter_configs(TARGET, True, **{"compression.gzip.level": "9"}), 2),
        Step(
            "alter_cfg_max_lag_below_old_min", lambda: alter_configs(TARGET, True, **{"max.compaction.lag.ms": "5"}), 2
        ),
        Step(
            "alter_cfg_lags_crossed",
            lambda: alter_configs(TARGET, True, **{"min.compaction.lag.ms": "20", "max.compaction.lag.ms": "10"}),
            2,
        ),
        Step("alter_cfg_remote_storage", lambda: alter_configs(TARGET, True, **{"remote.storage.enable": "true"}), 2),
        Step("alter_cfg_cleanup_empty_item", lambda: alter_configs(TARGET, True, **{"cleanup.policy": "delete,"}), 2),
        Step(
            "alter_cfg_removed_key",
            lambda: alter_configs(TARGET, True, **{"message.timestamp.difference.max.ms": "5"}),
            2,
        ),
        Step("alter_cfg_null_value", lambda: _null_alter(), 2),
        # IncrementalAlterConfigs (keeps the target's min.compaction.lag.ms=10)
        Step(
            "incremental_cfg_segment_bytes_low",
            lambda: incremental(TARGET, ("segment.bytes", SET, "200"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_internal_segment_bytes",
            lambda: incremental(TARGET, ("internal.segment.bytes", SET, "200"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_max_lag_below_min",
            lambda: incremental(TARGET, ("max.compaction.lag.ms", SET, "5"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_max_lag_equal_min",
            lambda: incremental(TARGET, ("max.compaction.lag.ms", SET, "10"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_min_deleted_then_max",
            lambda: incremental(
                TARGET, ("min.compaction.lag.ms", DELETE, None), ("max.compaction.lag.ms", SET, "5"), validate_only=True
            ),
            1,
        ),
        Step(
            "incremental_cfg_delete_unknown",
            lambda: incremental(TARGET, ("no.such.config", DELETE, None), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_append_unknown",
            lambda: incremental(TARGET, ("no.such.config", APPEND, "1"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_subtract_not_list",
            lambda: incremental(TARGET, ("segment.bytes", SUBTRACT, "1"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_append_bad_policy",
            lambda: incremental(TARGET, ("cleanup.policy", APPEND, "nope"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_append_empty_policy",
            lambda: incremental(TARGET, ("cleanup.policy", APPEND, ""), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_append_throttled_replicas",
            lambda: incremental(TARGET, ("leader.replication.throttled.replicas", APPEND, "0:1"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_append_bad_throttled_replicas",
            lambda: incremental(TARGET, ("leader.replication.throttled.replicas", APPEND, "abc"), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_set_null", lambda: incremental(TARGET, ("segment.bytes", SET, None), validate_only=True), 1
        ),
        Step(
            "incremental_cfg_append_null",
            lambda: incremental(TARGET, ("cleanup.policy", APPEND, None), validate_only=True),
            1,
        ),
        Step(
            "incremental_cfg_lz4_level_low",
            lambda: incremental(TARGET, ("compression.lz4.level", SET, "0"), validate_only=True),
            1,
        ),
        # broker (cluster default): values Kafka refuses, refused alike
        Step("incremental_cfg_broker_segment_bytes_low", lambda: _broker(("log.segment.bytes", SET, "1048575")), 1),
        Step("incremental_cfg_broker_segment_bytes_abc", lambda: _broker(("log.segment.bytes", SET, "abc")), 1),
        Step("incremental_cfg_broker_gzip_level_low", lambda: _broker(("compression.gzip.level", SET, "0")), 1),
        Step("incremental_cfg_broker_cleanup_empty_item", lambda: _broker(("log.cleanup.policy", SET, "delete,")), 1),
        Step("incremental_cfg_broker_min_isr_zero", lambda: _broker(("min.insync.replicas", SET, "0")), 1),
        Step("incremental_cfg_broker_ratio_high", lambda: _broker(("log.cleaner.min.cleanable.ratio", SET, "2")), 1),
        Step("incremental_cfg_broker_roll_ms_zero", lambda: _broker(("log.roll.ms", SET, "0")), 1),
        Step("incremental_cfg_broker_retention_ms_zero", lambda: _broker(("log.retention.ms", SET, "0")), 1),
        Step("incremental_cfg_broker_read_only", lambda: _broker(("num.partitions", SET, "3")), 1),
        Step("incremental_cfg_broker_null", lambda: _broker(("log.segment.bytes", SET, None)), 1),
        Step(
            "incremental_cfg_broker_throttle_negative",
            lambda: _broker(("leader.replication.throttled.rate", SET, "-1")),
            1,
        ),
        # a valid change: Kafka applies it, kafkapy has no dynamic broker configs (a known difference)
        Step("incremental_cfg_broker_valid", lambda: _broker(("log.segment.bytes", SET, "1048576")), 1),
    ]
