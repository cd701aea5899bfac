"""The broker's Prometheus metrics, named as Strimzi's JMX exporter rules name Kafka's MBeans.

Everything is computed at scrape time by one custom collector: gauges read
the replica manager, the metadata store, the logs and the network server;
counters read the plain ints of `kafkapy.server.stats.BrokerStats`. Nothing
registers a prometheus_client Counter or Histogram on the request path, so a
request costs a few dict updates whether or not anyone scrapes.

Naming (docs/monitoring.md has the table): Strimzi's `kafka-metrics.yaml`
lowercases `kafka.<domain><type=T, name=N, k=v...>` into
`kafka_<domain>_<t>_<n>` with the MBean's keys as labels; a meter's
`...PerSec` Count becomes a counter without the `PerSec` (`_total` added), a
gauge's Value keeps the name, and a histogram's `NthPercentile` attributes
become samples with `quantile="0.N"` next to its `_count`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from kafkapy.protocol.api import api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.server.network import Server
from kafkapy.server.services import BrokerServices
from kafkapy.server.stats import ApiStats, BrokerStats

# Kafka's histogram percentiles, as Strimzi's rule labels them ("0.$N" of NthPercentile)
QUANTILES = (("0.50", 0.50), ("0.75", 0.75), ("0.95", 0.95), ("0.98", 0.98), ("0.99", 0.99), ("0.999", 0.999))

# BrokerTopicMetrics: (metric name, TopicCounters attribute, help)
TOPIC_COUNTERS = (
    ("kafka_server_brokertopicmetrics_messagesin", "messages_in", "MessagesInPerSec: records appended"),
    ("kafka_server_brokertopicmetrics_bytesin", "bytes_in", "BytesInPerSec: produced bytes appended"),
    ("kafka_server_brokertopicmetrics_bytesout", "bytes_out", "BytesOutPerSec: bytes sent to consumers"),
    ("kafka_server_brokertopicmetrics_bytesrejected", "bytes_rejected", "BytesRejectedPerSec: produced bytes refused"),
    (
        "kafka_server_brokertopicmetrics_totalproducerequests",
        "produce_requests",
        "TotalProduceRequestsPerSec: partition appends asked for",
    ),
    (
        "kafka_server_brokertopicmetrics_totalfetchrequests",
        "fetch_requests",
        "TotalFetchRequestsPerSec: partition reads asked for",
    ),
    (
        "kafka_server_brokertopicmetrics_failedproducerequests",
        "failed_produce",
        "FailedProduceRequestsPerSec: partition appends answered with an error",
    ),
    (
        "kafka_server_brokertopicmetrics_failedfetchrequests",
        "failed_fetch",
        "FailedFetchRequestsPerSec: partition reads answered with an error",
    ),
)


def quantile(window: list[float], q: float) -> float:
    """The q-quantile of sorted samples (nearest rank); 0 with none."""
    if not window:
        return 0.0
    return window[min(len(window) - 1, int(q * len(window)))]


def _api_name(api_key: int) -> str:
    try:
        return api_spec(api_key).name
    except Exception:
        return str(api_key)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


@dataclass(slots=True, eq=False)  # hashable: the registry keys on it
class BrokerCollector(Collector):
    """Reads the broker's state at each scrape. `services` and `server` are None until built."""

    stats: BrokerStats
    services: Callable[[], BrokerServices | None]
    server: Callable[[], Server | None]

    def collect(self) -> Iterable[Metric]:
        yield from self._topic_metrics()
        yield from self._request_metrics()
        services = self.services()
        if services is not None:
            yield from _replica_manager(services)
            yield from _controller(services)
            yield from _logs(services)
            yield from _log_dirs(services)
            yield from _offsets(services)
        server = self.server()
        if server is not None:
            connections = GaugeMetricFamily(
                "kafka_server_socket_server_metrics_connection_count",
                "socket-server-metrics connection-count: open connections per listener",
                labels=["listener", "networkProcessor"],
            )
            for listener, n in sorted(server.connections_by_listener().items()):
                connections.add_metric([listener, "0"], n)
            yield connections

    def _topic_metrics(self) -> Iterator[Metric]:
        topics = list(self.stats.topics.items())
        gone = self.stats.gone
        for name, attr, doc in TOPIC_COUNTERS:
            family = CounterMetricFamily(name, doc)
            total = getattr(gone, attr)
            for topic, counters in topics:
                value = getattr(counters, attr)
                total += value
                family.add_sample(name + "_total", {"topic": topic}, value)
            family.add_sample(name + "_total", {}, total)
            yield family

    def _request_metrics(self) -> Iterator[Metric]:
        stats = self.stats
        requests = CounterMetricFamily(
            "kafka_network_requestmetrics_requests",
            "RequestsPerSec: requests answered per request type and version",
            labels=["request", "version"],
        )
        apis = sorted(stats.apis.items())
        for api_key, api in apis:
            name = _api_name(api_key)
            for version, n in enumerate(api.versions):
                if n:
                    requests.add_metric([name, str(version)], n)
        yield requests
        errors = CounterMetricFamily(
            "kafka_network_requestmetrics_errors",
            "ErrorsPerSec: error codes answered per request type (NONE for a request answered without one)",
            labels=["request", "error"],
        )
        for api_key, api in apis:
            if api.ok:
                errors.add_metric([_api_name(api_key), "NONE"], api.ok)
        for (api_key, code), n in sorted(stats.errors.items()):
            errors.add_metric([_api_name(api_key), _error_name(code)], n)
        yield errors
        yield _latency_summary(
            "kafka_network_requestmetrics_totaltimems",
            "TotalTimeMs: request time in the broker, ms (from the frame read to the response encoded)",
            apis,
        )


def _latency_summary(name: str, doc: str, items: list[tuple[int, ApiStats]]) -> Metric:
    family = Metric(name, doc, "summary")
    for api_key, lat in items:
        request = _api_name(api_key)
        window = lat.window()
        for label, q in QUANTILES:
            family.add_sample(name, {"request": request, "quantile": label}, quantile(window, q))
        family.add_sample(name + "_count", {"request": request}, lat.count)
        family.add_sample(name + "_sum", {"request": request}, lat.total_ms)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _replica_manager(services: BrokerServices) -> Iterator[Metric]:
    rm = services.replicas
    hosted = leaders = under = under_min = at_min = 0
    for r in rm.all_replicas():
        hosted += 1
        if not r.is_leader:
            continue
        leaders += 1
        isr = len(r.info.isr)
        if isr < len(r.info.replicas):
            under += 1
        min_isr = rm.min_isr(r.topic)
        if isr < min_isr:
            under_min += 1
        elif isr == min_isr:
            at_min += 1
    prefix = "kafka_server_replicamanager_"
    yield _gauge(prefix + "partitioncount", "PartitionCount: partitions with a replica here", hosted)
    yield _gauge(prefix + "leadercount", "LeaderCount: partitions led here", leaders)
    yield _gauge(
        prefix + "underreplicatedpartitions", "UnderReplicatedPartitions: led here, ISR smaller than replicas", under
    )
    yield _gauge(
        prefix + "underminisrpartitioncount",
        "UnderMinIsrPartitionCount: led here, ISR below min.insync.replicas",
        under_min,
    )
    yield _gauge(
        prefix + "atminisrpartitioncount", "AtMinIsrPartitionCount: led here, ISR at min.insync.replicas", at_min
    )
    yield _gauge(prefix + "offlinereplicacount", "OfflineReplicaCount: replicas on an offline log dir", 0)


def _controller(services: BrokerServices) -> Iterator[Metric]:
    """KafkaController gauges; the cluster-wide ones only on the active controller (0 elsewhere), so that
    a sum over the brokers counts each once."""
    md = services.metadata
    active = md.controller_id == services.node_id
    topics = partitions = offline = 0
    if active:
        live = md.live_ids()
        for info in md.topics():
            topics += 1
            partitions += len(info.partitions)
            offline += sum(1 for p in info.partitions if p.leader < 0 or p.leader not in live)
    prefix = "kafka_controller_kafkacontroller_"
    yield _gauge(prefix + "activecontrollercount", "ActiveControllerCount: 1 on the active controller", int(active))
    yield _gauge(prefix + "offlinepartitionscount", "OfflinePartitionsCount: partitions without a live leader", offline)
    yield _gauge(prefix + "globaltopiccount", "GlobalTopicCount: topics in the cluster", topics)
    yield _gauge(prefix + "globalpartitioncount", "GlobalPartitionCount: partitions in the cluster", partitions)


def _logs(services: BrokerServices) -> Iterator[Metric]:
    labels = ["topic", "partition"]
    size = GaugeMetricFamily("kafka_log_log_size", "Log Size: bytes of the partition's segments", labels=labels)
    segments = GaugeMetricFamily("kafka_log_log_numlogsegments", "Log NumLogSegments", labels=labels)
    start = GaugeMetricFamily("kafka_log_log_logstartoffset", "Log LogStartOffset", labels=labels)
    end = GaugeMetricFamily("kafka_log_log_logendoffset", "Log LogEndOffset", labels=labels)
    for plog in services.logs.logs():
        key = [plog.topic, str(plog.partition)]
        size.add_metric(key, plog.size)
        segments.add_metric(key, len(plog.segments))
        start.add_metric(key, plog.log_start_offset)
        end.add_metric(key, plog.log_end_offset)
    yield from (size, segments, start, end)


def _log_dirs(services: BrokerServices) -> Iterator[Metric]:
    """kafkapy's own (Kafka has no MBean for it): the filesystem holding each log dir, as `df` counts it."""
    import shutil

    usage = GaugeMetricFamily(
        "kafkapy_log_dir_usage_bytes",
        "Bytes used on the filesystem holding the log dir (df's Used)",
        labels=["log_dir"],
    )
    capacity = GaugeMetricFamily(
        "kafkapy_log_dir_capacity_bytes", "Size of the filesystem holding the log dir", labels=["log_dir"]
    )
    for directory in services.config.data_dirs:
        try:
            du = shutil.disk_usage(directory)
        except OSError:
            continue
        usage.add_metric([directory], du.used)
        capacity.add_metric([directory], du.total)
    yield from (usage, capacity)


def _offsets(services: BrokerServices) -> Iterator[Metric]:
    """kafka_exporter's names. Partition offsets: from the partitions led here (each partition once across
    a cluster). Group offsets and lag: the groups this broker coordinates, for the partitions it hosts
    (lag = the local high watermark - the committed offset, at least 0)."""
    labels = ["topic", "partition"]
    newest = GaugeMetricFamily(
        "kafka_topic_partition_current_offset", "The partition's high watermark (led here)", labels=labels
    )
    oldest = GaugeMetricFamily(
        "kafka_topic_partition_oldest_offset", "The partition's log start offset (led here)", labels=labels
    )
    for r in services.replicas.all_replicas():
        if r.is_leader:
            key = [r.topic, str(r.index)]
            newest.add_metric(key, r.plog.high_watermark)
            oldest.add_metric(key, r.plog.log_start_offset)
    yield from (newest, oldest)
    group_labels = ["consumergroup", "topic", "partition"]
    current = GaugeMetricFamily(
        "kafka_consumergroup_current_offset", "The group's committed offset", labels=group_labels
    )
    lag = GaugeMetricFamily(
        "kafka_consumergroup_lag", "High watermark - committed offset, for partitions hosted here", labels=group_labels
    )
    coord = services.groups_if_open
    if coord is not None:
        owned = set(coord.owned_partitions())
        logs = services.logs
        for group, offsets in list(coord.offsets.groups.items()):
            if coord.partition_of(group) not in owned:
                continue
            for (topic, index), committed in list(offsets.items()):
                key = [group, topic, str(index)]
                current.add_metric(key, committed.offset)
                plog = logs.get(topic, index)
                if plog is not None:
                    lag.add_metric(key, max(0, plog.high_watermark - committed.offset))
    yield from (current, lag)


def build_registry(
    stats: BrokerStats,
    services: Callable[[], BrokerServices | None],
    server: Callable[[], Server | None],
) -> CollectorRegistry:
    """A registry of the broker's collector and prometheus_client's process collector (CPU, RSS, open fds)."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(stats, services, server))
    ProcessCollector(registry=registry)
    return registry
