"""Client-metrics subscriptions (KIP-714) in a 3-broker cluster: kept in etcd, so one altered on one
broker is listed, described and applied by the others (a client pushes to whichever broker it likes),
and a change reaches a client's next push there as UNKNOWN_SUBSCRIPTION_ID."""

from __future__ import annotations

from typing import Any

from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.get_telemetry_subscriptions_request import GetTelemetrySubscriptionsRequest
from kafkapy.protocol.messages.push_telemetry_request import PushTelemetryRequest
from kafkapy.protocol.primitives import ZERO_UUID
from tests.cluster.test_cluster import FAST
from tests.server.rawclient import RawClient
from tests.server.test_client_telemetry import alter, describe, listed


def test_subscriptions_are_cluster_wide(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(3, FAST)
    one, two, three = (RawClient(b.bootstrap) for b in cluster.brokers.values())
    try:
        assert alter(one, "sub", ("metrics", 0, "org.apache.kafka.producer."), ("interval.ms", 0, "200")) == (0, None)
        wait_until(lambda: listed(two) == listed(three) == ["sub"], what="the resource on every broker")
        assert [(c.name, c.value) for c in describe(three, "sub").configs if c.config_source == 7] == [
            ("interval.ms", "200"),
            ("metrics", "org.apache.kafka.producer."),
        ]
        sub = two.request(GetTelemetrySubscriptionsRequest(client_instance_id=ZERO_UUID), 0)
        assert (sub.error_code, sub.requested_metrics, sub.push_interval_ms) == (
            0,
            ["org.apache.kafka.producer."],
            200,
        )

        assert alter(three, "sub", ("interval.ms", 0, "300")) == (0, None)

        def push() -> int:
            req = PushTelemetryRequest(
                client_instance_id=sub.client_instance_id, subscription_id=sub.subscription_id, metrics=b""
            )
            return int(two.request(req, 0).error_code)

        wait_until(lambda: push() == ErrorCode.UNKNOWN_SUBSCRIPTION_ID, what="the change applied on broker 2")
        again = two.request(GetTelemetrySubscriptionsRequest(client_instance_id=sub.client_instance_id), 0)
        assert (again.error_code, again.push_interval_ms) == (0, 300)

        assert alter(two, "sub", ("metrics", 1, None), ("interval.ms", 1, None)) == (0, None)
        wait_until(lambda: listed(one) == listed(three) == [], what="the deletion on every broker")
    finally:
        for c in (one, two, three):
            c.close()
