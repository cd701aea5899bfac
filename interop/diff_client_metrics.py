"""Client telemetry (KIP-714): one scenario of raw requests, recorded against Apache Kafka 4.3.1 and
compared with kafkapy (interop/test_client_telemetry.py): `client-metrics` resources altered with
good and bad values (IncrementalAlterConfigs and AlterConfigs), described and listed; then
GetTelemetrySubscriptions and PushTelemetry through every error code a client can meet, in the
order Kafka checks them.

Normalised: instance ids ("zero" / "set"), subscription ids ("zero" / "set"), the order of
ListClientMetricsResources (sorted). Kafka applies a config change through its metadata log a
moment after answering, so the scenario waits SETTLE_S after the alterations the telemetry steps
depend on. Pushes are spaced by the push interval (1 s).

    python -m interop.diff_client_metrics record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol import compression
from kafkapy.protocol.messages.alter_configs_request import AlterableConfig as LegacyConfig
from kafkapy.protocol.messages.alter_configs_request import AlterConfigsRequest
from kafkapy.protocol.messages.alter_configs_request import AlterConfigsResource as LegacyResource
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
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "client_metrics.json"
SETTLE_S = 1.0
INTERVAL_S = 1.05  # the scenario's subscription pushes every 1000 ms
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# (step, resource name, [(key, op, value)], validate_only)
ALTERATIONS: list[tuple[str, str, list[tuple[str, int, str | None]], bool]] = [
    ("empty_name", "", [("metrics", SET, "*")], False),
    ("unknown_key", "v", [("foo", SET, "1")], False),
    ("interval_99", "v", [("interval.ms", SET, "99")], False),
    ("interval_100", "v", [("interval.ms", SET, "100")], True),
    ("interval_3600000", "v", [("interval.ms", SET, "3600000")], True),
    ("interval_3600001", "v", [("interval.ms", SET, "3600001")], False),
    ("interval_negative", "v", [("interval.ms", SET, "-1")], False),
    ("interval_not_int", "v", [("interval.ms", SET, "abc")], False),
    ("interval_empty", "v", [("interval.ms", SET, "")], False),
    ("interval_too_big_for_int", "v", [("interval.ms", SET, "2147483648")], False),
    ("interval_spaces", "v", [("interval.ms", SET, " 500")], True),
    ("match_unknown_key", "v", [("match", SET, "foo=bar")], False),
    ("match_no_equals", "v", [("match", SET, "client_id")], False),
    ("match_bad_regex", "v", [("match", SET, "client_id=[")], False),
    ("match_empty_regex", "v", [("match", SET, "client_id=")], False),
    ("match_ok", "v", [("match", SET, "client_id=rd.*, client_software_name = x")], True),
    ("match_empty", "v", [("match", SET, "")], True),
    ("null_value", "v", [("metrics", SET, None)], False),
    ("duplicate_keys", "v", [("metrics", SET, "a"), ("metrics", SET, "b")], False),
    ("append", "v", [("metrics", APPEND, "a")], False),
    ("subtract_interval", "v", [("interval.ms", SUBTRACT, "5")], False),
    ("delete_unknown_key_of_missing", "v", [("foo", DELETE, None)], False),
    (
        "set_diff_a",
        "diff-a",
        [
            ("metrics", SET, "org.apache.kafka.producer., zz.x"),
            ("interval.ms", SET, "2000"),
            ("match", SET, "client_id=x"),
        ],
        False,
    ),
    (
        "set_diff_b",
        "diff-b",
        [
            ("metrics", SET, "org.apache.kafka.consumer.,a.b"),
            ("interval.ms", SET, "1000"),
            ("match", SET, "client_software_name=diff-sw,client_software_version=1\\.0"),
        ],
        False,
    ),
    ("set_diff_empty_metrics", "diff-c", [("metrics", SET, "")], False),
    ("delete_match_of_a", "diff-a", [("match", DELETE, None)], False),
    ("append_to_set_list", "diff-a", [("metrics", APPEND, "q.")], False),
]


def _inc(c: RawClient, name: str, ops: list[tuple[str, int, str | None]], validate_only: bool) -> dict[str, Any]:
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
    return {"error_code": int(r.error_code), "error_message": r.error_message}


def _describe(c: RawClient, name: str, keys: list[str] | None = None) -> dict[str, Any]:
    req = DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=16, resource_name=name, configuration_keys=keys)],
        include_synonyms=True,
        include_documentation=True,
    )
    r = c.request(req, 4).results[0]
    return {
        "error_code": int(r.error_code),
        "error_message": r.error_message,
        "configs": [
            {
                "name": x.name,
                "value": x.value,
                "read_only": x.read_only,
                "is_default": x.is_default,
                "source": x.config_source,
                "sensitive": x.is_sensitive,
                "type": x.config_type,
                "documentation": x.documentation,
                "synonyms": [[s.name, s.value, s.source] for s in x.synonyms],
            }
            for x in r.configs
        ],
    }


def _listed(c: RawClient) -> dict[str, Any]:
    r = c.request(ListClientMetricsResourcesRequest(), 0)
    return {"error_code": int(r.error_code), "names": sorted(x.name for x in r.client_metrics_resources)}


def _id(u: uuid.UUID) -> str:
    return "zero" if u == ZERO_UUID else "set"


def _get(c: RawClient, instance: uuid.UUID = ZERO_UUID) -> tuple[dict[str, Any], Any]:
    r = c.request(GetTelemetrySubscriptionsRequest(client_instance_id=instance), 0)
    shaped = {
        "error_code": int(r.error_code),
        "client_instance_id": _id(r.client_instance_id),
        "subscription_id": "zero" if r.subscription_id == 0 else "set",
        "accepted_compression_types": list(r.accepted_compression_types),
        "push_interval_ms": r.push_interval_ms,
        "telemetry_max_bytes": r.telemetry_max_bytes,
        "delta_temporality": r.delta_temporality,
        "requested_metrics": list(r.requested_metrics),
    }
    return shaped, r


def _push(
    c: RawClient, instance: uuid.UUID, sid: int, data: bytes = b"", codec: int = 0, terminating: bool = False
) -> int:
    req = PushTelemetryRequest(
        client_instance_id=instance, subscription_id=sid, terminating=terminating, compression_type=codec, metrics=data
    )
    return int(c.request(req, 0).error_code)


def otlp_gauge(name: str, value: float) -> bytes:
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp

    point = otlp.NumberDataPoint(as_double=value)
    metric = otlp.Metric(name=name, gauge=otlp.Gauge(data_points=[point]))
    data = otlp.MetricsData(
        resource_metrics=[otlp.ResourceMetrics(scope_metrics=[otlp.ScopeMetrics(metrics=[metric])])]
    )
    return data.SerializeToString()


def run(bootstrap: str, settle_s: float = SETTLE_S) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap) as c:
        c.request(ApiVersionsRequest(client_software_name="diff-sw", client_software_version="1.0"), 3)
        out["list_none"] = _listed(c)
        out["get_no_subscription"], _ = _get(c)
        for step, name, ops, validate_only in ALTERATIONS:
            out[f"alter_{step}"] = _inc(c, name, ops, validate_only)
        legacy = AlterConfigsRequest(
            resources=[
                LegacyResource(
                    resource_type=16,
                    resource_name="diff-c",
                    configs=[LegacyConfig(name="interval.ms", value="3000")],
                )
            ]
        )
        r = c.request(legacy, 2).responses[0]
        out["alter_legacy_replaces"] = {"error_code": int(r.error_code), "error_message": r.error_message}
        time.sleep(settle_s)
        out["list"] = _listed(c)
        out["describe_missing"] = _describe(c, "nope")
        out["describe_empty_name"] = _describe(c, "")
        out["describe_a"] = _describe(c, "diff-a")
        out["describe_b_keys"] = _describe(c, "diff-b", ["interval.ms", "no.such.key"])
        out["describe_c_after_legacy"] = _describe(c, "diff-c")

        # telemetry: diff-a (every client) and diff-b (this client's software) match
        shaped, sub = _get(c)
        out["get_matched"] = shaped
        inst, sid = sub.client_instance_id, sub.subscription_id
        out["get_again_at_once"], _ = _get(c, inst)
        out["push_zero_instance"] = _push(c, ZERO_UUID, sid)
        out["push_wrong_subscription"] = _push(c, inst, sid + 1)
        out["push_before_interval"] = _push(c, inst, sid)
        time.sleep(INTERVAL_S)
        out["push_unknown_compression"] = _push(c, inst, sid, b"x", codec=9)
        time.sleep(INTERVAL_S)
        out["push_too_large"] = _push(c, inst, sid, b"\x00" * 1_048_577)
        time.sleep(INTERVAL_S)
        out["push_corrupt_gzip"] = _push(c, inst, sid, b"\xff\xff\xff", codec=compression.GZIP)
        time.sleep(INTERVAL_S)
        data = compression.compress(compression.ZSTD, otlp_gauge("org.apache.kafka.consumer.poll.idle.ratio.avg", 0.5))
        out["push_otlp_zstd"] = _push(c, inst, sid, data, codec=compression.ZSTD)
        out["push_terminating_early"] = _push(c, inst, sid, terminating=True)
        out["push_after_terminating"] = _push(c, inst, sid)
        out["push_unknown_instance"] = _push(c, uuid.uuid4(), sid)
        shaped, other = _get(c)
        out["get_second_instance"] = shaped
        out["push_right_after_get"] = _push(c, other.client_instance_id, other.subscription_id)

        for name in ("diff-a", "diff-b", "diff-c"):
            out[f"delete_{name}"] = _inc(
                c, name, [("metrics", DELETE, None), ("interval.ms", DELETE, None), ("match", DELETE, None)], False
            )
        time.sleep(settle_s)
        out["list_after_delete"] = _listed(c)
    return out


def record() -> Path:
    """Run the scenario against a fresh Apache Kafka 4.3.1 (its controller given a second to settle) and
    save its answers."""
    return record_golden(GOLDEN, "client-metrics-", run, settle=1.0)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        print(record())
    else:
        print(__doc__)
