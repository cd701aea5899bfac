"""aiokafka adapter (asyncio client; codecs through cramjam). Each call runs its
own event loop, so the scenarios stay synchronous."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import ClassVar, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from interop._common import CODECS, In, Out

T = TypeVar("T")
_COMPRESSION = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def _run(coro: Awaitable[T], timeout_s: float = 90.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _headers(raw: object) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v if v is not None else b"") for k, v in (raw or ()))  # type: ignore[attr-defined]


def _check_response(resp: object, what: str) -> None:
    obj = resp.to_object()  # type: ignore[attr-defined]
    for res in obj["resources"]:
        assert res["error_code"] == 0, f"{what} error {res['error_code']}: {res.get('error_message')}"


class AiokafkaClient:
    name = "aiokafka"
    codecs = CODECS
    has_admin = True
    sets_timestamps = True
    not_applicable: ClassVar[dict[str, str]] = {}

    async def _with_admin(self, bootstrap: str, fn: object) -> object:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            return await fn(admin)  # type: ignore[operator]
        finally:
            await admin.close()

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        async def go(admin: AIOKafkaAdminClient) -> None:
            resp = await admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=dict(configs or {}))],
                timeout_ms=10000,
            )
            for t in resp.to_object()["topic_errors"]:
                assert t["error_code"] == 0, f"create_topics error {t['error_code']}"

        _run(self._with_admin(bootstrap, go))

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        async def go(admin: AIOKafkaAdminClient) -> dict[str, int]:
            names = await admin.list_topics()
            described = await admin.describe_topics(names)
            return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}

        return _run(self._with_admin(bootstrap, go))  # type: ignore[return-value]

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        async def go() -> None:
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
            await p.start()
            try:
                await p.partitions_for(topic)
            finally:
                await p.stop()

        _run(go())

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None:
        async def go() -> None:
            kwargs: dict[str, object] = {}
            if max_message_bytes:
                kwargs["max_request_size"] = max_message_bytes
            p = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                compression_type=_COMPRESSION[codec],
                acks="all",
                enable_idempotence=False,
                linger_ms=5,
                request_timeout_ms=30000,
                **kwargs,
            )
            await p.start()
            try:
                futures = [
                    await p.send(
                        topic,
                        key=r.key,
                        value=r.value,
                        headers=list(r.headers),
                        partition=r.partition,
                        timestamp_ms=r.timestamp_ms,
                    )
                    for r in records
                ]
                await p.flush()
                await asyncio.gather(*futures)
            finally:
                await p.stop()

        _run(go())

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        async def go() -> None:
            p = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await p.start()
            try:
                for v in values:
                    await p.send_and_wait(topic, v)
            finally:
                await p.stop()

        _run(go())

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
        async def go() -> list[In]:
            kwargs: dict[str, object] = {}
            if max_message_bytes:
                kwargs["max_partition_fetch_bytes"] = max_message_bytes * 2
                kwargs["fetch_max_bytes"] = max_message_bytes * 4
            c = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none", **kwargs
            )
            await c.start()
            try:
                tps = [TopicPartition(topic, p) for p in starts]
                c.assign(tps)
                for tp in tps:
                    c.seek(tp, starts[tp.partition])
                out: list[In] = []
                deadline = time.monotonic() + timeout_s
                while len(out) < count and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500, max_records=5000)
                    for tp, msgs in batch.items():
                        for m in msgs:
                            out.append(In(tp.partition, m.offset, m.key, m.value, _headers(m.headers), m.timestamp))
                return out
            finally:
                await c.stop()

        return _run(go(), timeout_s + 30)

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        async def go() -> list[In]:
            c = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await c.start()
            try:
                out: list[In] = []
                deadline = time.monotonic() + timeout_s
                while len(out) < count and time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500, max_records=count - len(out))
                    for tp, msgs in batch.items():
                        for m in msgs:
                            out.append(In(tp.partition, m.offset, m.key, m.value, (), m.timestamp))
                if out:
                    await c.commit()
                return out
            finally:
                await c.stop()

        return _run(go(), timeout_s + 30)

    async def _with_consumer(self, bootstrap: str, fn: object) -> object:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await c.start()
        try:
            return await fn(c)  # type: ignore[operator]
        finally:
            await c.stop()

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        tp = TopicPartition(topic, partition)

        async def go(c: AIOKafkaConsumer) -> tuple[int, int]:
            low = (await c.beginning_offsets([tp]))[tp]
            high = (await c.end_offsets([tp]))[tp]
            return int(low), int(high)

        return _run(self._with_consumer(bootstrap, go))  # type: ignore[return-value]

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        tp = TopicPartition(topic, partition)

        async def go(c: AIOKafkaConsumer) -> int:
            found = (await c.offsets_for_times({tp: timestamp_ms}))[tp]
            return -1 if found is None else int(found.offset)

        return _run(self._with_consumer(bootstrap, go))  # type: ignore[return-value]

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        async def go(admin: AIOKafkaAdminClient) -> dict[str, str]:
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            out: dict[str, str] = {}
            for resp in responses:
                _check_response(resp, "describe_configs")
                for res in resp.to_object()["resources"]:
                    for entry in res["config_entries"]:
                        out[entry["config_names"]] = entry["config_value"]
            return out

        return _run(self._with_admin(bootstrap, go))  # type: ignore[return-value]

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        async def go(admin: AIOKafkaAdminClient) -> None:
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))]
            )
            for resp in responses:
                _check_response(resp, "alter_configs")

        _run(self._with_admin(bootstrap, go))
