"""Share groups (KIP-932) on a tiered topic (KIP-405): the Java KafkaShareConsumer of a group with
share.auto.offset.reset=earliest reads every record from offset 0 once the early segments are in
remote storage only; the broker reads them through its RemoteLogManager, as for a Fetch."""

from __future__ import annotations

from typing import Any

from interop.adapters import java
from interop.test_share_groups import Consumer
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from tests.server.rawclient import RawClient
from tests.server.test_tiered_storage import TOPIC, broker_settings, list_offset, metric, scrape, wait_for

_missing = java.available()
if _missing is not None:
    raise RuntimeError(f"interop/test_tiered_share.py: {_missing} (scripts/test installs and builds it)")

RECORDS = 300
GROUP = "tiered-share"


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
    with RawClient(bootstrap) as c:
        cfg = AlterableConfig(name="share.auto.offset.reset", config_operation=0, value="earliest")
        req = IncrementalAlterConfigsRequest(
            resources=[AlterConfigsResource(resource_type=32, resource_name=GROUP, configs=[cfg])]
        )
        assert c.request(req, 1).responses[0].error_code == 0

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
