"""Client telemetry (KIP-714): client-metrics subscriptions, GetTelemetrySubscriptions /
PushTelemetry state per client instance, and the pushed OTLP metrics re-exported on /metrics.

Subscriptions are Kafka's `client-metrics` config resources (kept in the metadata store, so every
broker of a cluster applies the same ones): `metrics` (metric name prefixes, `*` for all),
`interval.ms` (push interval, 100..3600000, default 300000) and `match` (`key=regex` pairs on
client_instance_id, client_id, client_software_name/version, client_source_address/port; none:
every client). A client gets the union of the metrics of every subscription it matches and the
smallest of their intervals; its subscription id is a hash of the two and its instance id.

The payload of a push is an OTLP `MetricsData` protobuf (decoded with the `opentelemetry-proto`
package); the last value of each data point is kept per client instance and exported as
`kafka_client_<metric name>` (`org.apache.kafka.` dropped, then Prometheus-sanitised), labelled
by client_instance_id, client_id, client_software_name, client_software_version and the data
point's attributes. Gauges stay gauges; monotonic sums become counters (deltas are added up, as
the broker asks for delta temporality); other sums are gauges; histograms and summaries are
skipped. State is bounded: instances that stop pushing for three intervals (at least a minute)
are dropped, and a
cap on the number of series (`MAX_SERIES`) drops new series beyond it (counted).

Nothing here is on a produce or fetch path: only the two telemetry APIs and a scrape touch it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from crc32c import crc32c
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kafkapy.logging import get_logger
from kafkapy.protocol import compression
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.get_telemetry_subscriptions_response import GetTelemetrySubscriptionsResponse
from kafkapy.protocol.primitives import ZERO_UUID

INTERVAL_MS, MATCH, METRICS = "interval.ms", "match", "metrics"
KEYS = (INTERVAL_MS, MATCH, METRICS)  # Kafka's ClientMetricsConfigs, in its DescribeConfigs order
DOCS = {
    INTERVAL_MS: "Metrics push interval in milliseconds",
    MATCH: "Client match criteria",
    METRICS: "Telemetry metric name prefix list",
}
DEFAULT_INTERVAL_MS = 300_000
MIN_INTERVAL_MS, MAX_INTERVAL_MS = 100, 3_600_000
ALL_METRICS = "*"
MATCH_KEYS = (
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
)
# What Kafka 4.3.1 answers (zstd, lz4, gzip, snappy); none is always accepted
ACCEPTED_COMPRESSION = (compression.ZSTD, compression.LZ4, compression.GZIP, compression.SNAPPY)
SUPPORTED_COMPRESSION = frozenset((compression.NONE, *ACCEPTED_COMPRESSION))
MAX_INSTANCES = 16_384  # client instances tracked (the least recently seen go first)
MAX_SERIES = 20_000  # exported series over all instances; new ones past this are dropped
MAX_INFLATED = 32 << 20  # a decompressed payload larger than this is refused (INVALID_RECORD)
EXPIRY_INTERVALS = 3  # an instance silent for this many push intervals is forgotten...
EXPIRY_MIN_MS = 60_000  # ...but not sooner than this, so a scrape every 15-60 s still sees a client that left
PREFIX = "kafka_client_"
_STRIP = "org.apache.kafka."
_BASE_LABELS = ("client_instance_id", "client_id", "client_software_name", "client_software_version")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")

log = get_logger(__name__)


class SubscriptionError(Exception):
    """A client-metrics resource Kafka would refuse: its error code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _list(value: str) -> list[str]:
    """Kafka's LIST parse: comma-separated, each item trimmed; blank is the empty list."""
    value = value.strip()
    return [] if value == "" else [item.strip() for item in value.split(",")]


def _patterns(items: list[str]) -> dict[str, re.Pattern[str]]:
    out: dict[str, re.Pattern[str]] = {}
    for item in items:
        key, eq, regex = item.partition("=")
        key, regex = key.strip(), regex.strip()
        if not eq or key not in MATCH_KEYS or regex == "":
            raise SubscriptionError(ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {item}")
        try:
            out[key] = re.compile(regex)
        except re.error:
            raise SubscriptionError(ErrorCode.INVALID_CONFIG, f"Illegal client matching pattern: {item}") from None
    return out


def validate(name: str, configs: Mapping[str, str]) -> dict[str, str]:
    """The resource's configs as stored (lists joined by ","), or SubscriptionError with Kafka 4.3.1's answer."""
    if name == "":
        raise SubscriptionError(ErrorCode.INVALID_REQUEST, "Subscription name can't be empty")
    out: dict[str, str] = {}
    for key, value in configs.items():
        if key not in KEYS:
            raise SubscriptionError(ErrorCode.INVALID_REQUEST, f"Unknown client metrics configuration: {key}")
        if key == INTERVAL_MS:
            try:
                interval = int(value.strip())
                if not -(2**31) <= interval < 2**31:
                    raise ValueError
            except ValueError:
                raise SubscriptionError(
                    ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {key}: Not a number of type INT"
                ) from None
            if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
                raise SubscriptionError(
                    ErrorCode.INVALID_REQUEST,
                    f"Invalid value {interval} for {key}, interval must be between 100 and 3600000 (1 hour)",
                )
            out[key] = str(interval)
        else:
            items = _list(value)
            if key == MATCH:
                _patterns(items)
            out[key] = ",".join(items)
    return out


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    metrics: tuple[str, ...]
    interval_ms: int
    match: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, name: str, configs: Mapping[str, str]) -> Subscription:
        match = _patterns(_list(configs.get(MATCH, ""))) if configs.get(MATCH) else {}
        return cls(
            name,
            tuple(_list(configs.get(METRICS, ""))),
            int(configs.get(INTERVAL_MS, DEFAULT_INTERVAL_MS)),
            tuple(sorted(match.items())),
        )

    def matches(self, attrs: Mapping[str, str]) -> bool:
        return all(p.fullmatch(attrs.get(k, "")) for k, p in self.match)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a client instance is asked for: requested metric prefixes, push interval, subscription id."""

    metrics: tuple[str, ...]
    interval_ms: int
    subscription_id: int


def _java_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), unsigned."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h


def _hash_set_order(items: list[str]) -> list[str]:
    """`items` in the order a Java HashSet of them iterates, the order Kafka answers requested metrics in
    (bucket of the spread String hash at the final table size, then insertion order)."""
    capacity = 16
    while len(items) > capacity * 0.75:
        capacity *= 2

    def bucket(i: int) -> tuple[int, int]:
        h = _java_hash(items[i])
        return (h ^ (h >> 16)) & (capacity - 1), i

    return [items[i] for i in sorted(range(len(items)), key=bucket)]


def plan_for(instance_id: uuid.UUID, attrs: Mapping[str, str], subscriptions: list[Subscription]) -> Plan:
    metrics: list[str] = []
    interval = None
    for sub in subscriptions:
        if not sub.matches(attrs):
            continue
        interval = sub.interval_ms if interval is None else min(interval, sub.interval_ms)
        metrics.extend(m for m in sub.metrics if m not in metrics)
    metrics = [ALL_METRICS] if ALL_METRICS in metrics else _hash_set_order(metrics)
    interval = DEFAULT_INTERVAL_MS if interval is None else interval
    digest = crc32c(f"{metrics}{interval}".encode()) ^ (instance_id.int & 0xFFFFFFFF)
    return Plan(tuple(metrics), interval, digest - (1 << 32) if digest >= 1 << 31 else digest)


# ------------------------------------------------------------------ OTLP


GAUGE, COUNTER = "gauge", "counter"


@dataclass(slots=True)
class Point:
    family: str  # exported family name
    kind: str  # GAUGE or COUNTER
    doc: str
    labels: tuple[tuple[str, str], ...]  # the data point's attributes, sanitised
    value: float
    delta: bool  # add to the kept value instead of replacing it


def family_name(otlp_name: str) -> str:
    name = otlp_name[len(_STRIP) :] if otlp_name.startswith(_STRIP) else otlp_name
    return PREFIX + _NOT_NAME.sub("_", name)


def _label(key: str) -> str | None:
    name = _NOT_NAME.sub("_", key)
    if name[:1].isdigit():
        name = "_" + name
    return None if name in _BASE_LABELS or name.startswith("__") or name == "" else name


def decode(payload: bytes) -> list[Point]:
    """The data points of an OTLP MetricsData; ValueError when it does not decode."""
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    data = metrics_pb2.MetricsData()
    try:
        data.ParseFromString(payload)
    except Exception as e:  # google.protobuf's DecodeError (and RuntimeWarnings of the C parser)
        raise ValueError(f"not an OTLP MetricsData: {e}") from None
    delta = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    out: list[Point] = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind == "gauge":
                    points, as_kind, is_delta = metric.gauge.data_points, GAUGE, False
                elif kind == "sum":
                    s = metric.sum
                    points, as_kind = s.data_points, COUNTER if s.is_monotonic else GAUGE
                    is_delta = s.aggregation_temporality == delta
                else:
                    continue  # histograms and summaries: not sent by Kafka's clients
                name = family_name(metric.name)
                for p in points:
                    labels = []
                    for kv in p.attributes:
                        label = _label(kv.key)
                        if label is None:
                            continue
                        v = kv.value
                        which = v.WhichOneof("value")
                        text = str(getattr(v, which)) if which in ("string_value", "int_value", "double_value") else ""
                        if which == "bool_value":
                            text = "true" if v.bool_value else "false"
                        labels.append((label, text))
                    value = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
                    out.append(Point(name, as_kind, metric.description, tuple(sorted(labels)), value, is_delta))
    return out


# ------------------------------------------------------------------ client instances


@dataclass(slots=True)
class Instance:
    instance_id: uuid.UUID
    plan: Plan
    labels: tuple[str, str, str, str]  # client_instance_id, client_id, software name, software version
    last_get: float = float("-inf")  # ms
    last_push: float = float("-inf")
    last_seen: float = 0.0
    last_error: int = ErrorCode.NONE
    terminating: bool = False
    series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class ClientTelemetry:
    """The client instances a broker has seen and the metrics they pushed."""

    max_bytes: int = 1_048_576  # telemetry.max.bytes
    now_ms: Callable[[], float] = field(default=lambda: time.monotonic() * 1000.0)
    max_instances: int = MAX_INSTANCES
    max_series: int = MAX_SERIES
    instances: dict[uuid.UUID, Instance] = field(default_factory=dict)  # least recently seen first
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)  # family -> (kind, doc), first seen wins
    series_count: int = 0
    dropped_series: int = 0
    pushes: dict[int, int] = field(default_factory=dict)  # error code -> pushes answered with it
    _parsed: tuple[dict[str, dict[str, str]], list[Subscription]] = field(default_factory=lambda: ({}, []))
    _next_purge: float = 0.0

    # -------------------------------------------------------------- subscriptions

    def subscriptions(self, configs: dict[str, dict[str, str]]) -> list[Subscription]:
        if configs != self._parsed[0]:
            subs = []
            for name in sorted(configs):
                try:
                    subs.append(Subscription.parse(name, configs[name]))
                except (SubscriptionError, ValueError):
                    continue  # stored by an older or foreign writer: ignored, as nothing would match it
            self._parsed = (configs, subs)
        return self._parsed[1]

    def _instance(
        self, instance_id: uuid.UUID, attrs: Mapping[str, str], configs: dict[str, dict[str, str]], now: float
    ) -> Instance:
        """The instance, created or (when its subscriptions changed) replaced with fresh state."""
        plan = plan_for(instance_id, attrs, self.subscriptions(configs))
        inst = self.instances.pop(instance_id, None)
        if inst is None or inst.plan != plan:
            if inst is not None:
                self._forget(inst)
            labels = (
                str(instance_id),
                attrs.get("client_id", ""),
                attrs.get("client_software_name", ""),
                attrs.get("client_software_version", ""),
            )
            inst = Instance(instance_id, plan, labels)
        inst.last_seen = now
        self.instances[instance_id] = inst  # most recently seen last
        while len(self.instances) > self.max_instances:
            self._forget(self.instances.pop(next(iter(self.instances))))
        return inst

    def _forget(self, inst: Instance) -> None:
        self.series_count -= len(inst.series)
        inst.series.clear()

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + 1000.0
        gone = [
            i
            for i, inst in self.instances.items()
            if now - inst.last_seen > max(EXPIRY_INTERVALS * inst.plan.interval_ms, EXPIRY_MIN_MS)
        ]
        for i in gone:
            self._forget(self.instances.pop(i))

    # -------------------------------------------------------------- the two APIs

    def get_subscriptions(
        self, instance_id: uuid.UUID, attrs: Mapping[str, str], configs: dict[str, dict[str, str]]
    ) -> GetTelemetrySubscriptionsResponse:
        now = self.now_ms()
        self._purge(now)
        if instance_id == ZERO_UUID:
            instance_id = uuid.uuid4()
        attrs = {**attrs, "client_instance_id": str(instance_id)}
        if not configs:  # no subscription at all: Kafka's default answer, and nothing kept about the client
            return self._answer(instance_id, plan_for(instance_id, attrs, []))
        inst = self._instance(instance_id, attrs, configs, now)
        allowed = now - max(inst.last_get, inst.last_push) >= inst.plan.interval_ms
        if not allowed and inst.last_error not in (
            ErrorCode.UNKNOWN_SUBSCRIPTION_ID,
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
        ):
            inst.last_error = ErrorCode.THROTTLING_QUOTA_EXCEEDED
            return GetTelemetrySubscriptionsResponse(error_code=ErrorCode.THROTTLING_QUOTA_EXCEEDED)
        inst.last_get, inst.last_error = now, ErrorCode.NONE
        log.debug(
            "client telemetry subscription",
            client_instance_id=str(instance_id),
            client_id=attrs.get("client_id"),
            metrics=len(inst.plan.metrics),
            interval_ms=inst.plan.interval_ms,
        )
        return self._answer(instance_id, inst.plan)

    def _answer(self, instance_id: uuid.UUID, plan: Plan) -> GetTelemetrySubscriptionsResponse:
        return GetTelemetrySubscriptionsResponse(
            error_code=ErrorCode.NONE,
            client_instance_id=instance_id,
            subscription_id=plan.subscription_id,
            accepted_compression_types=list(ACCEPTED_COMPRESSION),
            push_interval_ms=plan.interval_ms,
            telemetry_max_bytes=self.max_bytes,
            delta_temporality=True,
            requested_metrics=list(plan.metrics),
        )

    def push(
        self,
        instance_id: uuid.UUID,
        subscription_id: int,
        terminating: bool,
        compression_type: int,
        payload: bytes,
        attrs: Mapping[str, str],
        configs: dict[str, dict[str, str]],
    ) -> int:
        """PushTelemetry's error code, checks in Kafka's order; a good payload's metrics are kept."""
        code = self._push(instance_id, subscription_id, terminating, compression_type, payload, attrs, configs)
        self.pushes[code] = self.pushes.get(code, 0) + 1
        log.debug(
            "client telemetry push",
            client_instance_id=str(instance_id),
            client_id=attrs.get("client_id"),
            bytes=len(payload),
            compression=compression_type,
            terminating=terminating,
            error=int(code),
        )
        return code

    def _push(
        self,
        instance_id: uuid.UUID,
        subscription_id: int,
        terminating: bool,
        compression_type: int,
        payload: bytes,
        attrs: Mapping[str, str],
        configs: dict[str, dict[str, str]],
    ) -> int:
        if instance_id == ZERO_UUID:
            return ErrorCode.INVALID_REQUEST
        now = self.now_ms()
        self._purge(now)
        inst = self._instance(instance_id, {**attrs, "client_instance_id": str(instance_id)}, configs, now)
        code = self._check_push(inst, subscription_id, terminating, compression_type, payload, now)
        if code == ErrorCode.NONE and payload:
            try:
                points = decode(compression.decompress(compression_type, payload, MAX_INFLATED))
            except Exception:  # corrupt, too large once inflated, not protobuf: Kafka's INVALID_RECORD
                code = ErrorCode.INVALID_RECORD
            else:
                self._keep(inst, points)
        if code == ErrorCode.NONE:
            inst.terminating = terminating
        inst.last_error = code
        return code

    def _check_push(
        self, inst: Instance, subscription_id: int, terminating: bool, compression_type: int, payload: bytes, now: float
    ) -> int:
        if inst.terminating:
            return ErrorCode.INVALID_REQUEST  # nothing is accepted after a terminating push
        # a push right after a GetTelemetrySubscriptions is accepted (clients add jitter to the interval)
        if inst.last_get > inst.last_push or now - inst.last_push >= inst.plan.interval_ms:
            inst.last_push = now
        elif not terminating:
            return ErrorCode.THROTTLING_QUOTA_EXCEEDED
        if subscription_id != inst.plan.subscription_id:
            return ErrorCode.UNKNOWN_SUBSCRIPTION_ID
        if compression_type not in SUPPORTED_COMPRESSION:
            return ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
        if len(payload) > self.max_bytes:
            return ErrorCode.TELEMETRY_TOO_LARGE
        return ErrorCode.NONE

    def _keep(self, inst: Instance, points: list[Point]) -> None:
        for p in points:
            known = self.kinds.get(p.family)
            if known is None:
                known = self.kinds[p.family] = (p.kind, p.doc)
            elif known[0] != p.kind:
                continue  # the same name as another kind from another client: the first one seen stays
            key = (p.family, p.labels)
            old = inst.series.get(key)
            if old is None:
                if self.series_count >= self.max_series:
                    self.dropped_series += 1
                    continue
                self.series_count += 1
                inst.series[key] = p.value
            else:
                inst.series[key] = old + p.value if p.delta else p.value

    # -------------------------------------------------------------- export

    def snapshot(self) -> Collector:
        """On the event loop: a copy of the kept values, as a collector safe to run in any thread."""
        self._purge(self.now_ms())
        rows = [(inst.labels, list(inst.series.items())) for inst in self.instances.values() if inst.series]
        stats = (len(self.instances), self.series_count, self.dropped_series, sorted(self.pushes.items()))
        return _TelemetryCollector(dict(self.kinds), rows, stats)


@dataclass(slots=True, eq=False)
class _TelemetryCollector(Collector):
    kinds: dict[str, tuple[str, str]]
    rows: list[tuple[tuple[str, str, str, str], list[tuple[tuple[str, tuple[tuple[str, str], ...]], float]]]]
    stats: tuple[int, int, int, list[tuple[int, int]]]

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for base, series in self.rows:
            for (family, labels), value in series:
                m = families.get(family)
                if m is None:
                    kind, doc = self.kinds.get(family, (GAUGE, ""))
                    m = families[family] = (
                        CounterMetricFamily(family, doc or "client metric (KIP-714)")
                        if kind == COUNTER
                        else GaugeMetricFamily(family, doc or "client metric (KIP-714)")
                    )
                sample = m.name + "_total" if isinstance(m, CounterMetricFamily) else m.name
                m.add_sample(sample, {**dict(zip(_BASE_LABELS, base, strict=True)), **dict(labels)}, value)
        yield from families.values()
        instances, kept, dropped, pushes = self.stats
        yield GaugeMetricFamily(
            "kafkapy_client_telemetry_instances", "client instances known (KIP-714)", value=instances
        )
        yield GaugeMetricFamily("kafkapy_client_telemetry_series", "client metric series kept", value=kept)
        yield CounterMetricFamily(
            "kafkapy_client_telemetry_series_dropped", "client metric series dropped (series cap)", value=dropped
        )
        counter = CounterMetricFamily(
            "kafkapy_client_telemetry_pushes", "PushTelemetry requests by answer", labels=["error"]
        )
        for code, n in pushes:
            try:
                label = ErrorCode(code).name
            except ValueError:
                label = str(code)
            counter.add_metric([label], n)
        yield counter
