"""confluent-kafka (librdkafka) adapter."""

from __future__ import annotations

import time
from typing import ClassVar

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from interop._common import CODECS, In, Out


class ConfluentClient:
    name = "confluent"
    codecs = CODECS
    has_admin = True
    sets_timestamps = True
    not_applicable: ClassVar[dict[str, str]] = {}

    def _admin(self, bootstrap: str) -> AdminClient:
        return AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        admin = self._admin(bootstrap)  # must outlive the futures
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(configs or {}))],
            operation_timeout=10,
            request_timeout=15,
        )
        futures[topic].result(timeout=20)

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        md = self._admin(bootstrap).list_topics(timeout=10)
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        # A producer's metadata request for an unknown topic asks for auto-creation.
        p = Producer({"bootstrap.servers": bootstrap})
        md = p.list_topics(topic, timeout=10)
        if md.topics[topic].error is not None:
            raise KafkaException(md.topics[topic].error)

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None:
        conf: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "compression.codec": codec,
            "enable.idempotence": False,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 100_000,
        }
        if max_message_bytes:
            conf["message.max.bytes"] = max_message_bytes
        p = Producer(conf)
        errors: list[str] = []

        def on_delivery(err: object, msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        for r in records:
            kwargs: dict[str, object] = {"key": r.key, "value": r.value, "on_delivery": on_delivery}
            if r.headers:
                kwargs["headers"] = list(r.headers)
            if r.partition is not None:
                kwargs["partition"] = r.partition
            if r.timestamp_ms is not None:
                kwargs["timestamp"] = r.timestamp_ms
            while True:
                try:
                    p.produce(topic, **kwargs)  # type: ignore[arg-type]
                    break
                except BufferError:
                    p.poll(0.05)
        remaining = p.flush(30)
        assert remaining == 0, f"{remaining} messages not delivered within 30 s"
        assert not errors, f"delivery errors: {errors[:5]}"

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        p = Producer({"bootstrap.servers": bootstrap})
        errors: list[str] = []
        for v in values:
            p.produce(topic, v, on_delivery=lambda err, msg: errors.append(str(err)) if err else None)
        assert p.flush(30) == 0, "not delivered within 30 s"
        assert not errors, f"delivery errors: {errors[:5]}"

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
        conf: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "group.id": "kafkapy-interop-unused",  # required by the client; no group API is used
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
        }
        if max_message_bytes:
            conf["fetch.message.max.bytes"] = max_message_bytes
            conf["fetch.max.bytes"] = max_message_bytes * 2
            conf["receive.message.max.bytes"] = max_message_bytes * 2 + 1_000_000
        c = Consumer(conf)
        try:
            c.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
            out: list[In] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for m in c.consume(num_messages=min(1000, count - len(out)), timeout=0.5):
                    if m.error() is not None:
                        raise KafkaException(m.error())
                    headers = tuple((k, v if v is not None else b"") for k, v in (m.headers() or []))
                    out.append(In(m.partition(), m.offset(), m.key(), m.value(), headers, m.timestamp()[1]))
            return out
        finally:
            c.close()

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            c.subscribe([topic])
            out: list[In] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for m in c.consume(num_messages=count - len(out), timeout=0.5):
                    if m.error() is not None:
                        raise KafkaException(m.error())
                    out.append(In(m.partition(), m.offset(), m.key(), m.value(), (), m.timestamp()[1]))
            if out:
                c.commit(asynchronous=False)
            return out
        finally:
            c.close()

    def _consumer(self, bootstrap: str) -> Consumer:
        return Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "kafkapy-interop-unused", "enable.auto.commit": False}
        )

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        c = self._consumer(bootstrap)
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
            return int(low), int(high)
        finally:
            c.close()

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        c = self._consumer(bootstrap)
        try:
            (tp,) = c.offsets_for_times([TopicPartition(topic, partition, timestamp_ms)], timeout=10)
            if tp.error is not None:
                raise KafkaException(tp.error)
            return -1 if tp.offset == OFFSET_END else int(tp.offset)
        finally:
            c.close()

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        res = ConfigResource(ResourceType.TOPIC, topic)
        admin = self._admin(bootstrap)
        futures = admin.describe_configs([res], request_timeout=15)
        entries = futures[res].result(timeout=20)
        return {name: e.value for name, e in entries.items()}

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        res = ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()
            ],
        )
        admin = self._admin(bootstrap)
        futures = admin.incremental_alter_configs([res], request_timeout=15)
        futures[res].result(timeout=20)
