"""Tiered storage with Apache Kafka's Java clients: the Java producer writes a tiered topic, the
broker copies its closed segments to the object store (a directory here; SeaweedFS in
tests/server/test_tiered_storage.py) and deletes them locally, and a Java consumer group reads
every record from offset 0, the old ones served from remote storage."""

from __future__ import annotations

from typing import Any

from interop.adapters.java import available, b64, call, unb64
from tests.server.test_tiered_storage import TOPIC, broker_settings, list_offset, wait_for

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_tiered_java.py: {_missing} (scripts/test installs and builds it)")

RECORDS = 300


def test_java_clients_read_a_tiered_topic_from_offset_zero(kafka_broker_factory: Any, tmp_path: Any) -> None:
    broker = kafka_broker_factory(broker_settings({"rsm.config.storage.root": str(tmp_path / "remote")}))
    bootstrap = broker.bootstrap
    configs = {"remote.storage.enable": "true", "internal.segment.bytes": "4096", "local.retention.bytes": "1"}
    res = call("create_topics", bootstrap, topics=[{"name": TOPIC, "partitions": 1, "configs": configs}], config={})
    assert not [r for r in res["results"] if r["exception"]], res
    values = [f"java-{i:05d}-".encode() * 8 for i in range(RECORDS)]
    res = call(
        "produce",
        bootstrap,
        topic=TOPIC,
        records=[{"key": None, "value": b64(v)} for v in values],
        config={"batch.size": "600", "linger.ms": "0"},
    )
    assert not res["errors"], res
    wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")
    res = call("list_offsets", bootstrap, topic=TOPIC, partitions=[0], spec="earliest", config={})
    assert res["offsets"]["0"] == 0  # the Java admin's earliest: the log start, in remote storage
    res = call("group_consume", bootstrap, topic=TOPIC, group="tiered-java", count=RECORDS, timeout_ms=60000, config={})
    assert [unb64(r["value"]) for r in res["records"]] == values
