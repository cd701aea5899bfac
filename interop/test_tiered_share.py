"""Share groups (KIP-932) on a tiered topic (KIP-405): the Java KafkaShareConsumer of a group with
share.auto.offset.reset=earliest reads every record from offset 0 once the early segments are in
remote storage only; the broker reads them through its RemoteLogManager, as for a Fetch. With
share.isolation.level=read_committed the aborted transactions come from the remote segments too;
while the object store fails, the consumer gets nothing (UNKNOWN_SERVER_ERROR for the partition)
and keeps going, and gets every record once it heals."""

from __future__ import annotations

import time
from typing import Any

import confluent_kafka

from interop.adapters import java
from interop.test_share_groups import Consumer
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic
from tests.server.test_tiered_faults import TIERED, FaultyProxy, start_broker
from tests.server.test_tiered_storage import TOPIC, broker_settings, list_offset, metric, scrape, wait_for

_missing = java.available()
if _missing is not None:
    raise RuntimeError(f"interop/test_tiered_share.py: {_missing} (scripts/test installs and builds it)")

RECORDS = 300
GROUP = "tiered-share"


def set_group_configs(bootstrap: str, group: str, **configs: str) -> None:
    with RawClient(bootstrap) as c:
        cfgs = [AlterableConfig(name=k.replace("_", "."), config_operation=0, value=v) for k, v in configs.items()]
        req = IncrementalAlterConfigsRequest(
            resources=[AlterConfigsResource(resource_type=32, resource_name=group, configs=cfgs)]
        )
        assert c.request(req, 1).responses[0].error_code == 0


def test_share_consumer_reads_a_tiered_topic_from_offset_zero(kafka_broker_factory: Any, tmp_path: Any) -> None:
    settings = broker_settings(
        {"rsm.config.storage.root": str(tmp_path / "remote")},
        **{"group.share.heartbeat.interval.ms": "500", "group.initial.rebalance.delay.ms": "0"},
    )
    broker = kafka_broker_factory(settings)
    bootstrap = broker.bootstrap
    configs = {"remote.storage.enable": "true", "internal.segment.bytes": "4096", "local.retention.bytes": "1"}
    res = java.call(
        "create_topics", bootstrap, topics=[{"name": TOPIC, "partitions": 1, "configs": configs}], config={}
    )
    assert not [r for r in res["results"] if r["exception"]], res
    values = [f"share-{i:05d}-" * 8 for i in range(RECORDS)]
    res = java.call(
        "produce",
        bootstrap,
        topic=TOPIC,
        records=[{"key": None, "value": java.b64(v.encode())} for v in values],
        config={"batch.size": "600", "linger.ms": "0"},
    )
    assert not res["errors"], res
    wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")
    assert list_offset(bootstrap, -2)[1] == 0
    set_group_configs(bootstrap, GROUP, share_auto_offset_reset="earliest")

    consumer = Consumer(bootstrap, GROUP, TOPIC, RECORDS, "accept", timeout_ms=60000)
    try:
        records = consumer.finish(90)
    finally:
        consumer.kill()
    assert sorted(o for _, o, _, _ in records) == list(range(RECORDS)), consumer.lines[-5:]
    assert [v for _, _, _, v in sorted(records, key=lambda r: r[1])] == values
    assert all(d == 1 for _, _, d, _ in records)
    text = scrape(broker)
    assert metric(text, "kafka_server_brokertopicmetrics_remotefetchrequests_total") > 0
    assert metric(text, "kafka_server_brokertopicmetrics_remotefetcherrors_total") == 0


def test_read_committed_share_group_skips_aborted_records_in_remote_segments(
    kafka_broker_factory: Any, tmp_path: Any
) -> None:
    broker = kafka_broker_factory(
        broker_settings(
            {"rsm.config.storage.root": str(tmp_path / "remote")}, **{"group.initial.rebalance.delay.ms": "0"}
        )
    )
    bootstrap = broker.bootstrap
    with RawClient(bootstrap) as c:
        assert create_topic(c, TOPIC, 1, **TIERED) == ErrorCode.NONE
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-tiered-share"})
    p.init_transactions(30)
    committed: list[str] = []
    for t in range(20):
        p.begin_transaction()
        values = [f"{'aborted' if t % 2 else 'committed'}-{t:02d}-{i}-" * 4 for i in range(5)]
        for v in values:
            p.produce(TOPIC, value=v.encode(), partition=0)
        p.flush(10)
        if t % 2:
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
            committed += values
    wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")
    group = "tiered-share-rc"
    set_group_configs(bootstrap, group, share_auto_offset_reset="earliest", share_isolation_level="read_committed")
    consumer = Consumer(bootstrap, group, TOPIC, len(committed), "accept", timeout_ms=60000)
    try:
        got = consumer.finish(90)
    finally:
        consumer.kill()
    assert [v for *_, v in sorted(got, key=lambda r: r[1])] == committed


def test_share_consumer_survives_a_failing_object_store(
    kafka_broker_factory: Any, s3_server: Any, tmp_path: Any
) -> None:
    proxy = FaultyProxy(s3_server.endpoint)
    proxy.start()
    try:
        broker = start_broker(
            kafka_broker_factory, s3_server, proxy, "share", **{"group.initial.rebalance.delay.ms": "0"}
        )
        bootstrap = broker.bootstrap
        with RawClient(bootstrap) as c:
            assert create_topic(c, TOPIC, 1, **TIERED) == ErrorCode.NONE
        values = [f"share-{i:05d}-" * 8 for i in range(200)]
        p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.size": 600})
        for v in values:
            p.produce(TOPIC, value=v.encode())
        assert p.flush(30) == 0
        wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")
        set_group_configs(bootstrap, GROUP, share_auto_offset_reset="earliest")

        proxy.set("error", "GET")
        consumer = Consumer(bootstrap, GROUP, TOPIC, len(values), "accept", timeout_ms=60000)
        try:
            consumer.wait_for("subscribed")
            wait_for(lambda: proxy.count("GET", 500) >= 2, 30, "remote reads failing")
            time.sleep(1)
            assert not [x for x in consumer.lines if x.startswith("record ")]
            assert consumer.proc.poll() is None, consumer.lines[-5:]
            proxy.heal()
            got = consumer.finish(90)
        finally:
            consumer.kill()
        assert sorted(o for _, o, _, _ in got) == list(range(len(values)))
        assert [v for _, _, _, v in sorted(got, key=lambda r: r[1])] == values
        assert metric(scrape(broker), "kafka_server_brokertopicmetrics_remotefetcherrors_total") >= 1
    finally:
        proxy.close()
