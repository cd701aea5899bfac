"""kafka-python adapter (pure-Python client; snappy through python-snappy)."""

from __future__ import annotations

import time
from typing import ClassVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from interop._common import CODECS, In, Out

_COMPRESSION = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def _headers(raw: object) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v if v is not None else b"") for k, v in (raw or []))  # type: ignore[attr-defined]


class KafkaPythonClient:
    name = "kafka-python"
    codecs = CODECS
    has_admin = True
    sets_timestamps = True
    not_applicable: ClassVar[dict[str, str]] = {}

    def _admin(self, bootstrap: str) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        admin = self._admin(bootstrap)
        try:
            admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=dict(configs or {}))],
                timeout_ms=10000,
            )
        finally:
            admin.close()

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        admin = self._admin(bootstrap)
        try:
            names = admin.list_topics()
            described = admin.describe_topics(names)
            return {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        finally:
            admin.close()

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        # KafkaProducer asks for auto-creation when it needs the topic's partitions.
        p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=15000, enable_idempotence=False)
        try:
            p.partitions_for(topic)
        finally:
            p.close(timeout=10)

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None:
        kwargs: dict[str, object] = {}
        if max_message_bytes:
            kwargs["max_request_size"] = max_message_bytes
        p = KafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=_COMPRESSION[codec],
            acks="all",
            enable_idempotence=False,
            linger_ms=5,
            max_block_ms=30000,
            **kwargs,
        )
        try:
            futures = [
                p.send(
                    topic,
                    key=r.key,
                    value=r.value,
                    headers=list(r.headers),
                    partition=r.partition,
                    timestamp_ms=r.timestamp_ms,
                )
                for r in records
            ]
            p.flush(timeout=60)
            for f in futures:
                f.get(timeout=30)
        finally:
            p.close(timeout=10)

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=15000)
        try:
            futures = [p.send(topic, value=v) for v in values]
            p.flush(timeout=30)
            for f in futures:
                f.get(timeout=30)
        finally:
            p.close(timeout=10)

    def consume(
        self,
        bootstrap: str,
        topic: str,
        starts: dict[int, int],
        count: int,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int | None = None,
    ) -> list[In]:
        kwargs: dict[str, object] = {}
        if max_message_bytes:
            kwargs["max_partition_fetch_bytes"] = max_message_bytes * 2
            kwargs["fetch_max_bytes"] = max_message_bytes * 4
        c = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none", **kwargs
        )
        try:
            tps = [TopicPartition(topic, p) for p in starts]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, starts[tp.partition])
            out: list[In] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for tp, msgs in c.poll(timeout_ms=500, max_records=5000).items():
                    for m in msgs:
                        out.append(In(tp.partition, m.offset, m.key, m.value, _headers(m.headers), m.timestamp))
            return out
        finally:
            c.close()

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        c = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        try:
            c.subscribe([topic])
            out: list[In] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for tp, msgs in c.poll(timeout_ms=500, max_records=count - len(out)).items():
                    for m in msgs:
                        out.append(In(tp.partition, m.offset, m.key, m.value, (), m.timestamp))
            if out:
                c.commit()
            return out
        finally:
            c.close()

    def _consumer(self, bootstrap: str) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        c = self._consumer(bootstrap)
        try:
            tp = TopicPartition(topic, partition)
            return c.beginning_offsets([tp], timeout_ms=10000)[tp], c.end_offsets([tp], timeout_ms=10000)[tp]
        finally:
            c.close()

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        c = self._consumer(bootstrap)
        try:
            tp = TopicPartition(topic, partition)
            found = c.offsets_for_times({tp: timestamp_ms}, timeout_ms=10000)[tp]
            return -1 if found is None else int(found.offset)
        finally:
            c.close()

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        admin = self._admin(bootstrap)
        try:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
            return {name: entry["value"] for name, entry in described["topic"][topic].items()}
        finally:
            admin.close()

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        admin = self._admin(bootstrap)
        try:
            result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))])
            assert result["topic"][topic] == "OK", f"alter_configs: {result['topic'][topic]!r}"
        finally:
            admin.close()
