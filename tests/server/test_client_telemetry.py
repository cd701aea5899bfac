"""Client telemetry (KIP-714): client-metrics config resources, GetTelemetrySubscriptions and
PushTelemetry with Kafka 4.3.1's answers (seen from the real broker: error codes, messages, order
of the checks), the OTLP payload decoded and re-exported on /metrics.

The store is driven directly with a fake clock; one real broker (with the metrics endpoint)
answers the same over TCP and keeps the resources across a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp
from prometheus_client import CollectorRegistry, generate_latest

from kafkapy.protocol import compression
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.describe_configs_request import DescribeConfigsRequest, DescribeConfigsResource
from kafkapy.protocol.messages.get_telemetry_subscriptions_request import GetTelemetrySubscriptionsRequest
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.protocol.messages.push_telemetry_request import PushTelemetryRequest
from kafkapy.protocol.primitives import ZERO_UUID
from kafkapy.server import client_telemetry as ct
from kafkapy.server.client_telemetry import ClientTelemetry, SubscriptionError
from kafkapy.testing import BrokerProcess, free_port
from tests.server.rawclient import RawClient
from tests.server.test_metrics_endpoint import scrape, value

E = ErrorCode
CLIENT = {"client_id": "app-1", "client_software_name": "librdkafka", "client_software_version": "2.16.1"}


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def __call__(self) -> float:
        return self.ms


def otlp_payload(*metrics: otlp.Metric) -> bytes:
    data = otlp.MetricsData(
        resource_metrics=[otlp.ResourceMetrics(scope_metrics=[otlp.ScopeMetrics(metrics=list(metrics))])]
    )
    return data.SerializeToString()


def attrs(**kv: Any) -> list[KeyValue]:
    out = []
    for k, v in kv.items():
        out.append(KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)))
    return out


def gauge(name: str, v: float, **kv: Any) -> otlp.Metric:
    return otlp.Metric(
        name=name, gauge=otlp.Gauge(data_points=[otlp.NumberDataPoint(as_double=v, attributes=attrs(**kv))])
    )


def delta_sum(name: str, v: int, **kv: Any) -> otlp.Metric:
    return otlp.Metric(
        name=name,
        sum=otlp.Sum(
            data_points=[otlp.NumberDataPoint(as_int=v, attributes=attrs(**kv))],
            aggregation_temporality=otlp.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
            is_monotonic=True,
        ),
    )


SUBS = {"producers": {"metrics": "org.apache.kafka.producer.", "interval.ms": "1000"}}


def exported(store: ClientTelemetry) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(store.snapshot())
    return generate_latest(registry).decode()


# ---------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    ("name", "configs", "code", "message"),
    [
        ("", {"metrics": "*"}, E.INVALID_REQUEST, "Subscription name can't be empty"),
        ("s", {"foo": "1"}, E.INVALID_REQUEST, "Unknown client metrics configuration: foo"),
        (
            "s",
            {"interval.ms": "99"},
            E.INVALID_REQUEST,
            "Invalid value 99 for interval.ms, interval must be between 100 and 3600000 (1 hour)",
        ),
        (
            "s",
            {"interval.ms": "3600001"},
            E.INVALID_REQUEST,
            "Invalid value 3600001 for interval.ms, interval must be between 100 and 3600000 (1 hour)",
        ),
        (
            "s",
            {"interval.ms": "abc"},
            E.INVALID_CONFIG,
            "Invalid value abc for configuration interval.ms: Not a number of type INT",
        ),
        (
            "s",
            {"interval.ms": "2147483648"},
            E.INVALID_CONFIG,
            "Invalid value 2147483648 for configuration interval.ms: Not a number of type INT",
        ),
        ("s", {"match": "foo=bar"}, E.INVALID_CONFIG, "Illegal client matching pattern: foo=bar"),
        ("s", {"match": "client_id"}, E.INVALID_CONFIG, "Illegal client matching pattern: client_id"),
        ("s", {"match": "client_id=["}, E.INVALID_CONFIG, "Illegal client matching pattern: client_id=["),
        ("s", {"match": "client_id="}, E.INVALID_CONFIG, "Illegal client matching pattern: client_id="),
    ],
)
def test_validation_errors_are_kafkas(name: str, configs: dict[str, str], code: int, message: str) -> None:
    with pytest.raises(SubscriptionError) as e:
        ct.validate(name, configs)
    assert (e.value.code, e.value.message) == (code, message)


def test_validation_normalises_lists_and_numbers() -> None:
    assert ct.validate("s", {"metrics": " a., b. ", "interval.ms": " 500", "match": " client_id = x.* "}) == {
        "metrics": "a.,b.",
        "interval.ms": "500",
        "match": "client_id = x.*",
    }
    assert ct.validate("s", {"metrics": "", "match": ""}) == {"metrics": "", "match": ""}


# ---------------------------------------------------------------- subscriptions and pushes


def test_no_subscription_is_kafkas_default_answer() -> None:
    store = ClientTelemetry(now_ms=Clock())
    r = store.get_subscriptions(ZERO_UUID, CLIENT, {})
    assert r.error_code == 0 and r.client_instance_id != ZERO_UUID
    assert (r.push_interval_ms, r.requested_metrics, r.telemetry_max_bytes, r.delta_temporality) == (
        300_000,
        [],
        1_048_576,
        True,
    )
    assert r.accepted_compression_types == [4, 3, 1, 2]
    assert not store.instances  # nothing kept while no subscription exists
    assert store.get_subscriptions(r.client_instance_id, CLIENT, {}).error_code == 0


def test_matching_union_and_smallest_interval() -> None:
    store = ClientTelemetry(now_ms=Clock())
    configs = {
        "a": {"metrics": "org.apache.kafka.producer.,zz.x", "interval.ms": "2000"},
        "b": {"metrics": "a.b", "interval.ms": "1500", "match": "client_software_name=librdkafka,client_id=app-.*"},
        "c": {"metrics": "never.", "interval.ms": "100", "match": "client_id=other"},
    }
    r = store.get_subscriptions(ZERO_UUID, CLIENT, configs)
    assert (r.requested_metrics, r.push_interval_ms) == (["org.apache.kafka.producer.", "zz.x", "a.b"], 1500)
    everything = store.get_subscriptions(ZERO_UUID, CLIENT, {**configs, "all": {"metrics": "*"}})
    assert everything.requested_metrics == ["*"]
    assert everything.subscription_id != r.subscription_id
    by_id = {"mine": {"metrics": "m.", "match": f"client_instance_id={uuid.UUID(int=7)}"}}
    assert store.get_subscriptions(uuid.UUID(int=7), CLIENT, by_id).requested_metrics == ["m."]
    assert store.get_subscriptions(uuid.UUID(int=8), CLIENT, by_id).requested_metrics == []


def test_push_error_codes_in_kafkas_order() -> None:
    clock = Clock()
    store = ClientTelemetry(now_ms=clock)
    sub = store.get_subscriptions(ZERO_UUID, CLIENT, SUBS)
    inst, sid = sub.client_instance_id, sub.subscription_id

    def push(subscription_id: int = sid, payload: bytes = b"", codec: int = 0, terminating: bool = False) -> int:
        return store.push(inst, subscription_id, terminating, codec, payload, CLIENT, SUBS)

    assert store.get_subscriptions(inst, CLIENT, SUBS).error_code == E.THROTTLING_QUOTA_EXCEEDED  # before the interval
    assert store.push(ZERO_UUID, sid, False, 0, b"", CLIENT, SUBS) == E.INVALID_REQUEST
    assert push(sid + 1) == E.UNKNOWN_SUBSCRIPTION_ID  # accepted in time, so it used the slot
    assert push() == E.THROTTLING_QUOTA_EXCEEDED
    clock.ms += 1000
    assert push(codec=9) == E.UNSUPPORTED_COMPRESSION_TYPE
    clock.ms += 1000
    assert push(payload=b"\x00" * 1_048_577) == E.TELEMETRY_TOO_LARGE
    clock.ms += 1000
    assert push(payload=b"\xff\xff\xff") == E.INVALID_RECORD
    clock.ms += 1000
    assert push(payload=b"\xff\xff\xff", codec=compression.GZIP) == E.INVALID_RECORD
    clock.ms += 1000
    assert push(payload=otlp_payload(gauge("org.apache.kafka.producer.x", 1.0))) == E.NONE
    assert push(terminating=True) == E.NONE  # a terminating push may come early
    assert push() == E.INVALID_REQUEST  # nothing after it
    assert store.push(uuid.uuid4(), sid, False, 0, b"", CLIENT, SUBS) == E.UNKNOWN_SUBSCRIPTION_ID


def test_changed_subscription_asks_the_client_to_fetch_it_again() -> None:
    clock = Clock()
    store = ClientTelemetry(now_ms=clock)
    sub = store.get_subscriptions(ZERO_UUID, CLIENT, SUBS)
    changed = {"producers": {**SUBS["producers"], "interval.ms": "500"}}
    code = store.push(sub.client_instance_id, sub.subscription_id, False, 0, b"", CLIENT, changed)
    assert code == E.UNKNOWN_SUBSCRIPTION_ID
    clock.ms += 5
    again = store.get_subscriptions(sub.client_instance_id, CLIENT, changed)  # allowed at once after that error
    assert (again.error_code, again.push_interval_ms) == (0, 500)
    assert store.push(sub.client_instance_id, again.subscription_id, False, 0, b"", CLIENT, changed) == E.NONE


@pytest.mark.parametrize(
    "codec", [compression.NONE, compression.GZIP, compression.SNAPPY, compression.LZ4, compression.ZSTD]
)
def test_pushed_metrics_are_exported_per_client_instance(codec: int) -> None:
    clock = Clock()
    store = ClientTelemetry(now_ms=clock)
    sub = store.get_subscriptions(ZERO_UUID, CLIENT, SUBS)
    inst = sub.client_instance_id

    def push(*metrics: otlp.Metric) -> int:
        payload = compression.compress(codec, otlp_payload(*metrics)) if codec else otlp_payload(*metrics)
        return store.push(inst, sub.subscription_id, False, codec, payload, CLIENT, SUBS)

    assert (
        push(
            gauge("org.apache.kafka.producer.record.queue.time.avg", 2.5),
            gauge("org.apache.kafka.producer.node.request.latency.avg", 7.0, node_id="1"),
            delta_sum("org.apache.kafka.producer.topic.record.send.total", 3, topic="t", **{"0bad.key": "x"}),
        )
        == E.NONE
    )
    clock.ms += 1000
    assert (
        push(
            gauge("org.apache.kafka.producer.record.queue.time.avg", 4.0),
            delta_sum("org.apache.kafka.producer.topic.record.send.total", 2, topic="t", **{"0bad.key": "x"}),
        )
        == E.NONE
    )
    text = exported(store)
    base = f'client_id="app-1",client_instance_id="{inst}",client_software_name="librdkafka",client_software_version="2.16.1"'
    assert f"kafka_client_producer_record_queue_time_avg{{{base}}} 4.0" in text
    assert f'kafka_client_producer_node_request_latency_avg{{{base},node_id="1"}} 7.0' in text
    assert any(
        line.startswith("# TYPE kafka_client_producer_topic_record_send") and line.endswith(" counter")
        for line in text.splitlines()
    )
    assert (
        f'kafka_client_producer_topic_record_send_total{{_0bad_key="x",{base},topic="t"}} 5.0' in text
    )  # deltas added
    assert 'kafkapy_client_telemetry_pushes_total{error="NONE"} 2.0' in text


def test_silent_instances_expire_and_series_are_capped() -> None:
    clock = Clock()
    store = ClientTelemetry(now_ms=clock, max_series=3)
    sub = store.get_subscriptions(ZERO_UUID, CLIENT, SUBS)
    payload = otlp_payload(*(gauge(f"org.apache.kafka.producer.g{i}", float(i)) for i in range(5)))
    assert store.push(sub.client_instance_id, sub.subscription_id, False, 0, payload, CLIENT, SUBS) == E.NONE
    assert (store.series_count, store.dropped_series) == (3, 2)
    text = exported(store)
    assert "kafka_client_producer_g2" in text and "kafka_client_producer_g3" not in text
    assert "kafkapy_client_telemetry_series_dropped_total 2.0" in text
    clock.ms += 59_000  # three intervals without a word, but not yet the minute a scrape may need
    assert "kafka_client_producer_g0" in exported(store)
    clock.ms += 2_000
    text = exported(store)
    assert "kafka_client_producer_g0" not in text and store.series_count == 0 and not store.instances


# ---------------------------------------------------------------- a real broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, str]]:
    port = free_port()
    b = BrokerProcess(
        data_dir=tmp_path_factory.mktemp("telemetry") / "data",
        log_path=tmp_path_factory.mktemp("telemetry-log") / "broker.log",
        extra_args=["--metrics-listen", f"127.0.0.1:{port}"],
    )
    b.start()
    try:
        yield b, f"http://127.0.0.1:{port}"
    finally:
        b.stop()


def alter(c: RawClient, name: str, *ops: tuple[str, int, str | None], validate_only: bool = False) -> tuple[int, Any]:
    req = IncrementalAlterConfigsRequest(
        resources=[
            AlterConfigsResource(
                resource_type=16,
                resource_name=name,
                configs=[AlterableConfig(name=k, config_operation=o, value=v) for k, o, v in ops],
            )
        ],
        validate_only=validate_only,
    )
    r = c.request(req, 1).responses[0]
    return r.error_code, r.error_message


def describe(c: RawClient, name: str) -> Any:
    req = DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=16, resource_name=name, configuration_keys=None)],
        include_synonyms=True,
        include_documentation=True,
    )
    return c.request(req, 4).results[0]


def listed(c: RawClient) -> list[str]:
    return [r.name for r in c.request(ListClientMetricsResourcesRequest(), 0).client_metrics_resources]


def test_resources_over_the_wire_and_a_push_on_metrics(broker: tuple[BrokerProcess, str]) -> None:
    b, base = broker
    with RawClient(b.bootstrap) as c:
        assert alter(c, "", ("metrics", 0, "*")) == (E.INVALID_REQUEST, "Subscription name can't be empty")
        assert alter(c, "s", ("metrics", 2, "a")) == (
            E.INVALID_CONFIG,
            "Can't APPEND to key metrics because its type is not LIST.",
        )
        assert alter(c, "s", ("metrics", 0, None)) == (E.INVALID_REQUEST, "Null value not supported for : metrics")
        assert alter(c, "s", ("interval.ms", 0, "50")) == (
            E.INVALID_REQUEST,
            "Invalid value 50 for interval.ms, interval must be between 100 and 3600000 (1 hour)",
        )
        assert alter(c, "s", ("metrics", 0, "*"), validate_only=True) == (0, None)
        assert listed(c) == []
        missing = describe(c, "s")
        assert [(x.name, x.value, x.config_source, x.config_type) for x in missing.configs] == [
            ("interval.ms", "300000", 5, 3),
            ("match", "", 5, 7),
            ("metrics", "", 5, 7),
        ]
        assert alter(c, "producers", ("metrics", 0, "org.apache.kafka.producer., x."), ("interval.ms", 0, "1000")) == (
            0,
            None,
        )
        assert alter(c, "other", ("metrics", 0, "y."), ("match", 0, "client_id=nobody")) == (0, None)
        assert listed(c) == ["other", "producers"]
        d = describe(c, "producers")
        assert [(x.name, x.value, x.config_source, [s.source for s in x.synonyms]) for x in d.configs] == [
            ("interval.ms", "1000", 7, [7]),
            ("match", "", 5, []),
            ("metrics", "org.apache.kafka.producer.,x.", 7, [7]),
        ]
        assert alter(c, "other", ("metrics", 1, None), ("match", 1, None)) == (0, None)
        assert listed(c) == ["producers"]

        c.request(ApiVersionsRequest(client_software_name="probe", client_software_version="1.0"), 3)
        sub = c.request(GetTelemetrySubscriptionsRequest(client_instance_id=ZERO_UUID), 0)
        assert (sub.error_code, sub.push_interval_ms) == (0, 1000)
        assert sub.requested_metrics == ["org.apache.kafka.producer.", "x."]
        payload = compression.compress(
            compression.ZSTD,
            otlp_payload(gauge("org.apache.kafka.producer.record.queue.time.avg", 3.25, client_id="z")),
        )
        push = PushTelemetryRequest(
            client_instance_id=sub.client_instance_id,
            subscription_id=sub.subscription_id,
            compression_type=compression.ZSTD,
            metrics=payload,
        )
        assert c.request(push, 0).error_code == 0
        assert c.request(push, 0).error_code == E.THROTTLING_QUOTA_EXCEEDED
    samples = scrape(base)
    labels = {
        "client_instance_id": str(sub.client_instance_id),
        "client_id": "rawclient",
        "client_software_name": "probe",
        "client_software_version": "1.0",
    }
    # the data point's own client_id attribute does not replace the broker's label
    assert value(samples, "kafka_client_producer_record_queue_time_avg", **labels) == 3.25

    b.stop()
    b.start()
    with RawClient(b.bootstrap) as c:
        assert listed(c) == ["producers"]  # kept in the metadata file
