"""The broker's Prometheus metrics, named as Strimzi's JMX exporter rules name Kafka's MBeans.

A scrape has two halves. `BrokerMetrics.snapshot()` runs on the event loop
and copies the figures into plain tuples: gauges from the replica manager,
the metadata store, the logs, the group coordinator and the network server;
counters from the plain ints of `kafkapy.server.stats.BrokerStats`. The
registry it returns turns that copy into metric families, and the HTTP
endpoint formats them: on the loop for a small broker, in a worker thread
past `THREAD_ROWS` partition rows. Building and formatting ~8 samples per
partition is most of a scrape's cost (~70 ms per thousand partitions); the
copy keeps the thread off the broker's live objects. Below the threshold the
loop formats itself: handing a few ms of work to a thread costs more (GIL
hand-offs slow the loop; measured in scripts/bench_metrics.py).
Nothing registers a prometheus_client Counter or Histogram on the request
path, so a request costs a few integer updates whether or not anyone scrapes.

Naming (docs/monitoring.md has the table): Strimzi's `kafka-metrics.yaml`
lowercases `kafka.<domain><type=T, name=N, k=v...>` into
`kafka_<domain>_<t>_<n>` with the MBean's keys as labels; a meter's
`...PerSec` Count becomes a counter without the `PerSec` (`_total` added), a
gauge's Value keeps the name, and a histogram's `NthPercentile` attributes
become samples with `quantile="0.N"` next to its `_count`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass, field

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.server.network import Server
from kafkapy.server.services import BrokerServices
from kafkapy.server.stats import FETCH_FOLLOWER, RESERVOIR, BrokerStats, TopicCounters

THREAD_ROWS = 250  # partition rows (Log gauges, group offsets) past which a scrape is formatted in a thread

# Kafka's histogram percentiles, as Strimzi's rule labels them ("0.$N" of NthPercentile)
QUANTILES = (("0.50", 0.50), ("0.75", 0.75), ("0.95", 0.95), ("0.98", 0.98), ("0.99", 0.99), ("0.999", 0.999))

# BrokerTopicMetrics, in TopicCounters' field order: (metric name, help)
TOPIC_COUNTERS = (
    ("kafka_server_brokertopicmetrics_messagesin", "MessagesInPerSec: records appended"),
    ("kafka_server_brokertopicmetrics_bytesin", "BytesInPerSec: produced bytes appended"),
    ("kafka_server_brokertopicmetrics_bytesout", "BytesOutPerSec: bytes sent to consumers"),
    ("kafka_server_brokertopicmetrics_bytesrejected", "BytesRejectedPerSec: produced bytes refused"),
    ("kafka_server_brokertopicmetrics_totalproducerequests", "TotalProduceRequestsPerSec: partition appends asked for"),
    ("kafka_server_brokertopicmetrics_totalfetchrequests", "TotalFetchRequestsPerSec: partition reads asked for"),
    (
        "kafka_server_brokertopicmetrics_failedproducerequests",
        "FailedProduceRequestsPerSec: partition appends answered with an error",
    ),
    (
        "kafka_server_brokertopicmetrics_failedfetchrequests",
        "FailedFetchRequestsPerSec: partition reads answered with an error",
    ),
)
assert len(TOPIC_COUNTERS) == len(TopicCounters.__slots__)


def quantile(window: list[float], q: float) -> float:
    """The q-quantile of sorted samples (nearest rank); 0 with none."""
    if not window:
        return 0.0
    return window[min(len(window) - 1, int(q * len(window)))]


def _api_name(api_key: int) -> str:
    """Kafka's RequestMetrics name: the API's, but FetchConsumer / FetchFollower for Fetch."""
    if api_key == ApiKey.FETCH:
        return "FetchConsumer"
    if api_key == FETCH_FOLLOWER:
        return "FetchFollower"
    try:
        return api_spec(api_key).name
    except Exception:
        return str(api_key)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


@dataclass(slots=True)
class Snapshot:
    """The broker's figures at one instant, in plain values only (safe to read from another thread)."""

    topics: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    gone: tuple[int, ...] = ()
    # api key, requests per version, answered without error, count, total ms, the samples held
    apis: list[tuple[int, list[int], int, int, float, list[float]]] = field(default_factory=list)
    errors: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    # hosted, leaders, under-replicated, under min ISR, at min ISR, ISR shrinks, ISR expands
    replica_manager: tuple[int, int, int, int, int, int, int] | None = None
    controller: tuple[int, int, int, int] | None = None  # active, offline, topics, partitions
    logs: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)  # size, segments, start, end
    log_dirs: list[str] = field(default_factory=list)
    led: list[tuple[str, int, int, int]] = field(default_factory=list)  # topic, partition, high watermark, start
    groups: list[tuple[str, str, int, int, int | None]] = field(default_factory=list)  # committed, lag
    connections: dict[str, int] | None = None


@dataclass(slots=True, eq=False)  # hashable: a registry keys on its collectors
class BrokerMetrics:
    """Takes snapshots of one broker. `services` and `server` return None until they are built."""

    stats: BrokerStats
    services: Callable[[], BrokerServices | None]
    server: Callable[[], Server | None]
    process: ProcessCollector = field(default_factory=lambda: ProcessCollector(registry=None))

    def snapshot(self) -> tuple[CollectorRegistry, bool]:
        """On the event loop: copy the figures; the registry returned builds its families from the copy
        (and reads /proc for the process metrics), so it may be collected in any thread; True when it is
        large enough to be worth formatting in one."""
        snap = Snapshot()
        _copy_stats(self.stats, snap)
        services = self.services()
        if services is not None:
            _copy_services(services, snap)
        server = self.server()
        if server is not None:
            snap.connections = server.connections_by_listener()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snap))
        registry.register(self.process)
        return registry, len(snap.logs) + len(snap.groups) > THREAD_ROWS


def _copy_stats(stats: BrokerStats, snap: Snapshot) -> None:
    snap.topics = [(name, astuple(c)) for name, c in stats.topics.items()]
    snap.gone = astuple(stats.gone)
    snap.apis = [
        (key, list(a.versions), a.ok, a.count, a.total_ms, a.samples[: min(a.count, RESERVOIR)].tolist())
        for key, a in sorted(stats.apis.items())
    ]
    snap.errors = sorted(stats.errors.items())


def _copy_services(services: BrokerServices, snap: Snapshot) -> None:
    rm = services.replicas
    hosted = leaders = under = under_min = at_min = 0
    min_isr: dict[str, int] = {}
    led = snap.led
    for r in rm.all_replicas():
        hosted += 1
        if not r.is_leader:
            continue
        leaders += 1
        isr = len(r.info.isr)
        if isr < len(r.info.replicas):
            under += 1
        floor = min_isr.get(r.topic)
        if floor is None:
            floor = min_isr[r.topic] = rm.min_isr(r.topic)
        if isr < floor:
            under_min += 1
        elif isr == floor:
            at_min += 1
        plog = r.plog
        led.append((r.topic, r.index, plog.high_watermark, plog.log_start_offset))
    snap.replica_manager = (hosted, leaders, under, under_min, at_min, rm.isr_shrinks, rm.isr_expands)

    md = services.metadata
    active = md.controller_id == services.node_id
    topics = partitions = offline = 0
    if active:
        live = md.live_ids()
        for info in md.topics():
            topics += 1
            partitions += len(info.partitions)
            offline += sum(1 for p in info.partitions if p.leader < 0 or p.leader not in live)
    snap.controller = (int(active), offline, topics, partitions)

    snap.logs = [
        (plog.topic, plog.partition, plog.size, len(plog.segments), plog.log_start_offset, plog.log_end_offset)
        for plog in services.logs.logs()
    ]
    snap.log_dirs = list(services.config.data_dirs)

    coord = services.groups_if_open
    if coord is not None:
        owned = set(coord.owned_partitions())
        logs = services.logs
        groups = snap.groups
        for group, offsets in coord.offsets.groups.items():
            if coord.partition_of(group) not in owned:
                continue
            for (topic, index), committed in offsets.items():
                hosted_log = logs.get(topic, index)
                lag = None if hosted_log is None else max(0, hosted_log.high_watermark - committed.offset)
                groups.append((group, topic, index, committed.offset, lag))


@dataclass(slots=True, eq=False)
class SnapshotCollector(Collector):
    """Metric families from one snapshot."""

    snap: Snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snap
        yield from _topic_metrics(snap)
        yield from _request_metrics(snap)
        if snap.replica_manager is not None:
            yield from _replica_manager(snap.replica_manager)
        if snap.controller is not None:
            yield from _controller(snap.controller)
        yield from _logs(snap)
        yield from _log_dirs(snap.log_dirs)
        yield from _offsets(snap)
        if snap.connections is not None:
            connections = GaugeMetricFamily(
                "kafka_server_socket_server_metrics_connection_count",
                "socket-server-metrics connection-count: open connections per listener",
                labels=["listener", "networkProcessor"],
            )
            for listener, n in sorted(snap.connections.items()):
                connections.add_metric([listener, "0"], n)
            yield connections


def _topic_metrics(snap: Snapshot) -> Iterator[Metric]:
    for i, (name, doc) in enumerate(TOPIC_COUNTERS):
        family = CounterMetricFamily(name, doc)
        total = snap.gone[i]
        for topic, counts in snap.topics:
            total += counts[i]
            family.add_sample(name + "_total", {"topic": topic}, counts[i])
        family.add_sample(name + "_total", {}, total)
        yield family


def _request_metrics(snap: Snapshot) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "kafka_network_requestmetrics_requests",
        "RequestsPerSec: requests answered per request type and version",
        labels=["request", "version"],
    )
    errors = CounterMetricFamily(
        "kafka_network_requestmetrics_errors",
        "ErrorsPerSec: error codes answered per request type (NONE for a request answered without one)",
        labels=["request", "error"],
    )
    name = "kafka_network_requestmetrics_totaltimems"
    times = Metric(
        name, "TotalTimeMs: request time in the broker, ms (from the frame read to the response encoded)", "summary"
    )
    for api_key, versions, ok, count, total_ms, samples in snap.apis:
        request = _api_name(api_key)
        for version, n in enumerate(versions):
            if n:
                requests.add_metric([request, str(version)], n)
        if ok:
            errors.add_metric([request, "NONE"], ok)
        samples.sort()
        for label, q in QUANTILES:
            times.add_sample(name, {"request": request, "quantile": label}, quantile(samples, q))
        times.add_sample(name + "_count", {"request": request}, count)
        times.add_sample(name + "_sum", {"request": request}, total_ms)
    for (api_key, code), n in snap.errors:
        errors.add_metric([_api_name(api_key), _error_name(code)], n)
    yield from (requests, errors, times)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _replica_manager(figures: tuple[int, int, int, int, int, int, int]) -> Iterator[Metric]:
    hosted, leaders, under, under_min, at_min, shrinks, expands = figures
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
    yield CounterMetricFamily(prefix + "isrshrinks", "IsrShrinksPerSec: ISR shrinks made as leader", value=shrinks)
    yield CounterMetricFamily(prefix + "isrexpands", "IsrExpandsPerSec: ISR expansions made as leader", value=expands)


def _controller(figures: tuple[int, int, int, int]) -> Iterator[Metric]:
    """KafkaController gauges; the cluster-wide ones only on the active controller (0 elsewhere), so that
    a sum over the brokers counts each once."""
    active, offline, topics, partitions = figures
    prefix = "kafka_controller_kafkacontroller_"
    yield _gauge(prefix + "activecontrollercount", "ActiveControllerCount: 1 on the active controller", active)
    yield _gauge(prefix + "offlinepartitionscount", "OfflinePartitionsCount: partitions without a live leader", offline)
    yield _gauge(prefix + "globaltopiccount", "GlobalTopicCount: topics in the cluster", topics)
    yield _gauge(prefix + "globalpartitioncount", "GlobalPartitionCount: partitions in the cluster", partitions)


def _logs(snap: Snapshot) -> Iterator[Metric]:
    labels = ["topic", "partition"]
    size = GaugeMetricFamily("kafka_log_log_size", "Log Size: bytes of the partition's segments", labels=labels)
    segments = GaugeMetricFamily("kafka_log_log_numlogsegments", "Log NumLogSegments", labels=labels)
    start = GaugeMetricFamily("kafka_log_log_logstartoffset", "Log LogStartOffset", labels=labels)
    end = GaugeMetricFamily("kafka_log_log_logendoffset", "Log LogEndOffset", labels=labels)
    for topic, partition, n_bytes, n_segments, start_offset, end_offset in snap.logs:
        key = [topic, str(partition)]
        size.add_metric(key, n_bytes)
        segments.add_metric(key, n_segments)
        start.add_metric(key, start_offset)
        end.add_metric(key, end_offset)
    yield from (size, segments, start, end)


def _log_dirs(directories: list[str]) -> Iterator[Metric]:
    """kafkapy's own (Kafka has no MBean for it): the filesystem holding each log dir, as `df` counts it."""
    usage = GaugeMetricFamily(
        "kafkapy_log_dir_usage_bytes",
        "Bytes used on the filesystem holding the log dir (df's Used)",
        labels=["log_dir"],
    )
    capacity = GaugeMetricFamily(
        "kafkapy_log_dir_capacity_bytes", "Size of the filesystem holding the log dir", labels=["log_dir"]
    )
    for directory in directories:
        try:
            du = shutil.disk_usage(directory)
        except OSError:
            continue
        usage.add_metric([directory], du.used)
        capacity.add_metric([directory], du.total)
    yield from (usage, capacity)


def _offsets(snap: Snapshot) -> Iterator[Metric]:
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
    for topic, index, high_watermark, log_start in snap.led:
        key = [topic, str(index)]
        newest.add_metric(key, high_watermark)
        oldest.add_metric(key, log_start)
    yield from (newest, oldest)
    group_labels = ["consumergroup", "topic", "partition"]
    current = GaugeMetricFamily(
        "kafka_consumergroup_current_offset", "The group's committed offset", labels=group_labels
    )
    lags = GaugeMetricFamily(
        "kafka_consumergroup_lag", "High watermark - committed offset, for partitions hosted here", labels=group_labels
    )
    for group, topic, index, committed, lag in snap.groups:
        key = [group, topic, str(index)]
        current.add_metric(key, committed)
        if lag is not None:
            lags.add_metric(key, lag)
    yield from (current, lags)
