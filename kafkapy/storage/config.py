"""LogConfig: per-topic storage settings, mapped from Kafka's topic config names.

Immutable value object; safe to share between threads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LONG_MAX = (1 << 63) - 1

# Kafka's internal topic config (its tests' small segments): wins over segment.bytes, which must be >= 1 MiB.
INTERNAL_SEGMENT_BYTES = "internal.segment.bytes"


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


# Kafka topic config name -> (LogConfig field, parser).
_TOPIC_KEYS: dict[str, tuple[str, Any]] = {
    "segment.bytes": ("segment_bytes", int),
    "segment.ms": ("segment_ms", int),
    "segment.jitter.ms": ("segment_jitter_ms", int),
    "segment.index.bytes": ("segment_index_bytes", int),
    "retention.ms": ("retention_ms", int),
    "retention.bytes": ("retention_bytes", int),
    "cleanup.policy": ("cleanup_policy", str),
    "index.interval.bytes": ("index_interval_bytes", int),
    "delete.retention.ms": ("delete_retention_ms", int),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", int),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", int),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", float),
    "flush.messages": ("flush_interval_messages", int),
    "flush.ms": ("flush_interval_ms", int),
    "message.timestamp.type": ("message_timestamp_type", str),
    "message.timestamp.difference.max.ms": ("message_timestamp_difference_max_ms", int),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", int),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", int),
    "max.message.bytes": ("max_message_bytes", int),
    "file.delete.delay.ms": ("file_delete_delay_ms", int),
    "compression.type": ("compression_type", str),
    "compression.gzip.level": ("compression_gzip_level", int),
    "compression.lz4.level": ("compression_lz4_level", int),
    "compression.zstd.level": ("compression_zstd_level", int),
    "preallocate": ("preallocate", lambda v: v.strip().lower() == "true"),
    # tiered storage (KIP-405, KIP-950)
    "remote.storage.enable": ("remote_storage_enable", _bool),
    "local.retention.ms": ("local_retention_ms", int),
    "local.retention.bytes": ("local_retention_bytes", int),
    "remote.log.copy.disable": ("remote_log_copy_disable", _bool),
    "remote.log.delete.on.disable": ("remote_log_delete_on_disable", _bool),
}


@dataclass(slots=True, frozen=True)
class LogConfig:
    """Storage settings of one partition log (Kafka defaults)."""

    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10 * 1024 * 1024
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    cleanup_policy: str = "delete"
    index_interval_bytes: int = 4096
    delete_retention_ms: int = 24 * 3600 * 1000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5
    flush_interval_messages: int = LONG_MAX
    flush_interval_ms: int = LONG_MAX
    message_timestamp_type: str = "CreateTime"
    message_timestamp_difference_max_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    file_delete_delay_ms: int = 60_000
    compression_type: str = "producer"
    # KIP-390 levels used when compression_type names that codec (Kafka's defaults)
    compression_gzip_level: int = -1
    compression_lz4_level: int = 9
    compression_zstd_level: int = 3
    preallocate: bool = False
    # tiered storage: -2 local retention means "as retention.ms / retention.bytes"
    remote_storage_enable: bool = False
    local_retention_ms: int = -2
    local_retention_bytes: int = -2
    remote_log_copy_disable: bool = False
    remote_log_delete_on_disable: bool = False

    @property
    def effective_local_retention_ms(self) -> int:
        return self.retention_ms if self.local_retention_ms == -2 else self.local_retention_ms

    @property
    def effective_local_retention_bytes(self) -> int:
        return self.retention_bytes if self.local_retention_bytes == -2 else self.local_retention_bytes

    @property
    def compact(self) -> bool:
        return "compact" in self.policies

    @property
    def delete(self) -> bool:
        return "delete" in self.policies

    @property
    def policies(self) -> set[str]:
        return {p.strip() for p in self.cleanup_policy.split(",") if p.strip()}

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_topic_configs(cls, configs: dict[str, str], base: LogConfig | None = None) -> LogConfig:
        """Override `base` (or defaults) with Kafka-named topic configs; unknown keys ignored.

        `internal.segment.bytes`, when set, gives segment_bytes whatever segment.bytes says.
        """
        changes: dict[str, Any] = {}
        internal = configs.get(INTERNAL_SEGMENT_BYTES)
        for key, value in [*configs.items(), (INTERNAL_SEGMENT_BYTES, internal)]:
            spec = ("segment_bytes", int) if key == INTERNAL_SEGMENT_BYTES else _TOPIC_KEYS.get(key)
            if spec is None or value is None:
                continue
            field_name, parse = spec
            try:
                changes[field_name] = parse(value)
            except ValueError as exc:
                raise ValueError(f"invalid value {value!r} for {key}") from exc
        return dataclasses.replace(base or cls(), **changes)

    def to_topic_configs(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, (field_name, _) in _TOPIC_KEYS.items():
            v = getattr(self, field_name)
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
        return out

    @staticmethod
    def topic_config_names() -> list[str]:
        return list(_TOPIC_KEYS)
