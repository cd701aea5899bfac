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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple, dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from kafkapy.coordinator.txn_state import TxnState
from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.server.network import Server
from kafkapy.server.services import BrokerServices
from kafkapy.server.stats import (
    FETCH_FOLLOWER,
    TIME_PARTS,
    BrokerStats,
    Marks,
    RemoteCounters,
    TopicCounters,
    times,
)
from kafkapy.storage.segment import now_ms

if TYPE_CHECKING:
    from kafkapy.cluster.remote_offsets import RemoteHighWatermarks

# the states Kafka's GroupMetadataManager counts (classic groups) and KIP-848 consumer groups' states
CLASSIC_STATES = ("PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty")
CONSUMER_STATES = ("Empty", "Assigning", "Reconciling", "Stable", "Dead")

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

# tiered storage's BrokerTopicMetrics meters, in RemoteCounters' field order (only with tiered storage on)
REMOTE_COUNTERS = (
    ("kafka_server_brokertopicmetrics_remotecopybytes", "RemoteCopyBytesPerSec: bytes copied to remote storage"),
    ("kafka_server_brokertopicmetrics_remotecopyrequests", "RemoteCopyRequestsPerSec: segment copies started"),
    ("kafka_server_brokertopicmetrics_remotecopyerrors", "RemoteCopyErrorsPerSec: segment copies failed"),
    ("kafka_server_brokertopicmetrics_remotefetchbytes", "RemoteFetchBytesPerSec: bytes read from remote storage"),
    ("kafka_server_brokertopicmetrics_remotefetchrequests", "RemoteFetchRequestsPerSec: fetches read remotely"),
    ("kafka_server_brokertopicmetrics_remotefetcherrors", "RemoteFetchErrorsPerSec: remote reads failed"),
    ("kafka_server_brokertopicmetrics_remotedeleterequests", "RemoteDeleteRequestsPerSec: remote segments deleted"),
)
assert len(REMOTE_COUNTERS) == len(RemoteCounters.__slots__)
# and its gauges, per topic over the partitions led here
REMOTE_GAUGES = (
    ("kafka_server_brokertopicmetrics_remotelogsizebytes", "RemoteLogSizeBytes: bytes in remote storage"),
    ("kafka_server_brokertopicmetrics_remotelogmetadatacount", "RemoteLogMetadataCount: remote segments"),
    (
        "kafka_server_brokertopicmetrics_remotecopylagbytes",
        "RemoteCopyLagBytes: bytes of closed local segments not copied yet",
    ),
)


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
    replication: tuple[int, int] = (0, 0)  # ReplicationBytesIn (the fetchers' bytes), ReplicationBytesOut
    # api key, requests per version, answered without error, count, TotalTimeMs' sum (ms), the marks of
    # the last requests
    # api key, requests by version, answered without error, count, TotalTimeMs sum, marks, ThrottleTimeMs window
    apis: list[tuple[int, list[int], int, int, float, list[Marks], list[float]]] = field(default_factory=list)
    errors: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    # hosted, leaders, under-replicated, under min ISR, at min ISR, ISR shrinks, ISR expands
    replica_manager: tuple[int, int, int, int, int, int, int] | None = None
    controller: tuple[int, int, int, int, int] | None = None  # active, offline, topics, partitions, imbalance
    # election passes, their ms sum, their last times (ms), unclean elections
    elections: tuple[int, float, list[float], int] = (0, 0.0, [], 0)
    purgatory: dict[str, int] = field(default_factory=dict)  # delayed operation -> waiting
    fetchers: list[tuple[str, str, int, int]] = field(default_factory=list)  # client id, broker, requests, bytes
    fetcher_lag: list[tuple[str, str, int, int]] = field(default_factory=list)  # client id, topic, partition, lag
    # flushes, their ms sum, their last times, retention deletions, cleaner runs, ms since the cleaner looked,
    # max dirty %, recopy %, max clean time s
    log_activity: tuple[int, float, list[float], int, int, int, int, int, int] | None = None
    classic_groups: dict[str, int] | None = None  # state -> groups coordinated here (None: coordinator not open)
    consumer_groups: dict[str, int] = field(default_factory=dict)  # KIP-848 groups, state -> count
    rebalances: tuple[int, int] = (0, 0)  # classic completed, consumer group epoch bumps
    num_offsets: int = 0
    transactions: dict[str, int] | None = None  # state -> transactional ids coordinated here
    connections_created: list[tuple[str, int]] = field(default_factory=list)
    connections_closed: list[tuple[str, int]] = field(default_factory=list)
    loop_idle: float | None = None
    logs: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)  # size, segments, start, end
    log_dirs: list[str] = field(default_factory=list)
    led: list[tuple[str, int, int, int]] = field(default_factory=list)  # topic, partition, high watermark, start
    groups: list[tuple[str, str, int, int, int | None]] = field(default_factory=list)  # committed, lag
    connections: dict[str, int] | None = None
    acceptors: list[tuple[str, float, float]] = field(default_factory=list)  # listener, blocked s, throttle ms
    memory_pool: tuple[int, int] | None = None  # available, used
    log_dir_offline: list[tuple[str, int]] | None = None  # data dir, 1 while full or failed
    quotas: list[tuple[str, str, str, str, float]] = field(default_factory=list)  # kafkapy.server.quotas
    # tiered storage (None: off): counters per topic, deleted topics' counts, gauges per topic
    remote: tuple[list[tuple[str, tuple[int, ...]]], tuple[int, ...], dict[str, tuple[int, int, int]]] | None = None


@dataclass(slots=True, eq=False)  # hashable: a registry keys on its collectors
class BrokerMetrics:
    """Takes snapshots of one broker. `services` and `server` return None until they are built."""

    stats: BrokerStats
    services: Callable[[], BrokerServices | None]
    server: Callable[[], Server | None]
    process: ProcessCollector = field(default_factory=lambda: ProcessCollector(registry=None))
    # a clustered broker's high watermarks of partitions led elsewhere, for consumer lag (made on first use)
    remote: RemoteHighWatermarks | None = None

    def snapshot(self) -> tuple[CollectorRegistry, bool]:
        """On the event loop: copy the figures; the registry returned builds its families from the copy
        (and reads /proc for the process metrics), so it may be collected in any thread; True when it is
        large enough to be worth formatting in one."""
        snap = Snapshot()
        _copy_stats(self.stats, snap)
        services = self.services()
        if services is not None:
            _copy_services(services, snap, self._remote(services))
        server = self.server()
        if server is not None:
            snap.connections = server.connections_by_listener()
            snap.acceptors = server.acceptor_figures()
            snap.memory_pool = server.memory_pool()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snap))
        registry.register(self.process)
        telemetry = services.client_telemetry_if_open if services is not None else None
        if telemetry is not None:  # client metrics pushed (KIP-714): kafkapy.server.client_telemetry
            registry.register(telemetry.snapshot())
        return registry, len(snap.logs) + len(snap.groups) > THREAD_ROWS

    def _remote(self, services: BrokerServices) -> RemoteHighWatermarks | None:
        """Where a clustered broker learns other leaders' high watermarks (None on a single broker)."""
        if self.remote is None and services.config.metadata_connect:
            from kafkapy.cluster.inter_broker import inter_broker_security
            from kafkapy.cluster.remote_offsets import RemoteHighWatermarks

            self.remote = RemoteHighWatermarks(
                services.metadata, services.node_id, inter_broker_security(services.config)
            )
        return self.remote

    async def close(self) -> None:
        if self.remote is not None:
            await self.remote.close()


def _copy_stats(stats: BrokerStats, snap: Snapshot) -> None:
    snap.topics = [(name, astuple(c)) for name, c in stats.topics.items()]
    snap.gone = astuple(stats.gone)
    snap.replication = (0, stats.replication_bytes_out)
    snap.apis = [
        (
            key,
            list(a.versions),
            sum(a.versions) - a.failed,
            sum(a.versions),
            a.total_s * 1000.0,
            a.held(),
            a.throttle_window(),
        )
        for key, a in sorted(stats.apis.items())
    ]
    snap.errors = sorted(stats.errors.items())
    snap.connections_created = sorted(stats.connections_created.items())
    snap.connections_closed = sorted(stats.connections_closed.items())
    snap.loop_idle = stats.loop_idle()


def _copy_services(services: BrokerServices, snap: Snapshot, remote: RemoteHighWatermarks | None) -> None:
    rm = services.replicas
    if services.remote_log is not None:
        stats = services.stats
        counters = [(name, astuple(c)) for name, c in stats.remote.items()] if stats is not None else []
        gone = astuple(stats.remote_gone) if stats is not None else astuple(RemoteCounters())
        snap.remote = (counters, gone, services.remote_log.topic_figures())
    hosted = leaders = under = under_min = at_min = produce_waits = delete_waits = 0
    min_isr: dict[str, int] = {}
    led = snap.led
    for r in rm.all_replicas():
        hosted += 1
        if not r.is_leader:
            continue
        leaders += 1
        produce_waits += len(r.waiters)
        delete_waits += len(r.start_waiters)
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
    snap.purgatory = {
        "Produce": produce_waits,
        "Fetch": len(rm.consumer_waits) + len(rm.follower_waits),
        "DeleteRecords": delete_waits,
        "Rebalance": 0,
    }
    _copy_fetchers(services, snap)
    if services.quotas.active:
        snap.quotas = services.quotas.metric_rows(time.monotonic())

    md = services.metadata
    active = md.controller_id == services.node_id
    topics = partitions = offline = imbalance = 0
    if active:
        live = md.live_ids()
        for info in md.topics():
            topics += 1
            partitions += len(info.partitions)
            for p in info.partitions:
                if p.leader < 0 or p.leader not in live:
                    offline += 1
                if p.replicas and p.leader != p.replicas[0]:
                    imbalance += 1
    snap.controller = (int(active), offline, topics, partitions, imbalance)
    controller = services.controller
    if controller is not None:
        snap.elections = (
            controller.election_passes,
            controller.election_ms_sum,
            list(controller.election_ms),
            controller.unclean_elections,
        )

    snap.logs = [
        (plog.topic, plog.partition, plog.size, len(plog.segments), plog.log_start_offset, plog.log_end_offset)
        for plog in services.logs.logs()
    ]
    snap.log_dirs = list(services.config.data_dirs)
    snap.log_dir_offline = [(str(d), int(not h.online)) for d, h in services.logs.healths.items()]
    a = services.logs.activity
    snap.log_activity = (
        a.flushes,
        a.flush_ms_sum,
        list(a.flush_ms),
        a.retention_deleted_segments,
        a.cleaner_runs,
        max(0, now_ms() - a.cleaner_last_check_ms),
        a.max_dirty_percent,
        a.cleaner_recopy_percent,
        a.max_clean_time_secs,
    )

    txns = services.txns_if_open
    if txns is not None:
        states: dict[str, int] = {}
        for md_txn in txns.txns.values():
            states[md_txn.state.value] = states.get(md_txn.state.value, 0) + 1
        snap.transactions = states

    coord = services.groups_if_open
    if coord is not None:
        snap.purgatory["Rebalance"] = len(coord.join_waiters) + len(coord.sync_waiters)
        classic = dict.fromkeys(CLASSIC_STATES, 0)
        for g in coord.groups.values():
            classic[g.state.value] = classic.get(g.state.value, 0) + 1
        snap.classic_groups = classic
        consumer = dict.fromkeys(CONSUMER_STATES, 0)
        for cg in coord.consumer.groups.values():
            consumer[cg.state.value] = consumer.get(cg.state.value, 0) + 1
        snap.consumer_groups = consumer
        snap.rebalances = (coord.completed_rebalances, coord.consumer_rebalances)
        owned = set(coord.owned_partitions())
        logs = services.logs
        groups = snap.groups
        elsewhere: set[tuple[str, int]] = set()
        for group, offsets in coord.offsets.groups.items():
            if coord.partition_of(group) not in owned:
                continue
            snap.num_offsets += len(offsets)
            for (topic, index), committed in offsets.items():
                hosted_log = logs.get(topic, index)
                if hosted_log is None:
                    elsewhere.add((topic, index))
                    groups.append((group, topic, index, committed.offset, None))
                else:
                    groups.append(
                        (group, topic, index, committed.offset, max(0, hosted_log.high_watermark - committed.offset))
                    )
        if elsewhere and remote is not None:
            # the partitions hosted elsewhere: their leaders' high watermarks as the last refresh read them
            known = remote.wanted(elsewhere)
            for i, (group, topic, index, committed_offset, known_lag) in enumerate(groups):
                if known_lag is None and (hw := known.get((topic, index))) is not None:
                    groups[i] = (group, topic, index, committed_offset, max(0, hw - committed_offset))


def _copy_fetchers(services: BrokerServices, snap: Snapshot) -> None:
    """Replica fetchers, named as Kafka names its threads: ReplicaFetcherThread-<fetcher id>-<leader id>."""
    fetchers = services.replicas.fetchers
    if fetchers is None:
        return
    md = services.metadata
    replicated = 0  # ReplicationBytesIn: the fetchers live as long as the broker, so their sum only grows
    for (leader, fetcher_id), fetcher in sorted(fetchers.fetchers.items()):
        client_id = f"ReplicaFetcherThread-{fetcher_id}-{leader}"
        info = md.broker_info(leader)
        broker = f"{info.host}:{info.port}" if info is not None else str(leader)
        snap.fetchers.append((client_id, broker, fetcher.requests, fetcher.bytes))
        replicated += fetcher.bytes
        for fp in fetcher.partitions.values():
            snap.fetcher_lag.append((client_id, fp.topic, fp.index, fp.lag))
    snap.replication = (replicated, snap.replication[1])


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
            yield from _purgatory(snap.purgatory)
            yield from _fetchers(snap)
        if snap.controller is not None:
            yield from _controller(snap.controller, snap.elections)
        yield from _logs(snap)
        yield from _log_dirs(snap.log_dirs)
        if snap.log_dir_offline is not None:
            yield from _log_manager(snap.log_dir_offline)
        if snap.log_activity is not None:
            yield from _log_activity(snap.log_activity)
            yield from _coordinators(snap)
        yield from _offsets(snap)
        yield from _socket_server(snap)
        if snap.quotas:
            yield from _quotas(snap.quotas)
        if snap.remote is not None:
            yield from _remote_metrics(*snap.remote)


def _remote_metrics(
    topics: list[tuple[str, tuple[int, ...]]], gone: tuple[int, ...], gauges: dict[str, tuple[int, int, int]]
) -> Iterator[Metric]:
    for i, (name, doc) in enumerate(REMOTE_COUNTERS):
        family = CounterMetricFamily(name, doc)
        total = gone[i]
        for topic, counts in topics:
            total += counts[i]
            family.add_sample(name + "_total", {"topic": topic}, counts[i])
        family.add_sample(name + "_total", {}, total)
        yield family
    for i, (name, doc) in enumerate(REMOTE_GAUGES):
        gauge = GaugeMetricFamily(name, doc, labels=["topic"])
        for topic, figures in sorted(gauges.items()):
            gauge.add_metric([topic], figures[i])
        yield gauge


def _topic_metrics(snap: Snapshot) -> Iterator[Metric]:
    for i, (name, doc) in enumerate(TOPIC_COUNTERS):
        family = CounterMetricFamily(name, doc)
        total = snap.gone[i]
        for topic, counts in snap.topics:
            total += counts[i]
            family.add_sample(name + "_total", {"topic": topic}, counts[i])
        family.add_sample(name + "_total", {}, total)
        yield family
    replicated_in, replicated_out = snap.replication
    yield CounterMetricFamily(
        "kafka_server_brokertopicmetrics_replicationbytesin",
        "ReplicationBytesInPerSec: record bytes this broker's replica fetchers got from leaders",
        value=replicated_in,
    )
    yield CounterMetricFamily(
        "kafka_server_brokertopicmetrics_replicationbytesout",
        "ReplicationBytesOutPerSec: record bytes sent to followers' fetches",
        value=replicated_out,
    )


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
    parts = [
        Metric(f"kafka_network_requestmetrics_{part.lower()}", f"{part}: {doc}", "summary")
        for part, doc in zip(TIME_PARTS, TIME_DOCS)
    ]
    throttle = Metric(
        "kafka_network_requestmetrics_throttletimems",
        "ThrottleTimeMs: the client-quota throttle given to each of the last requests, ms (0 for most)",
        "summary",
    )
    for api_key, versions, ok, count, total_ms, held, throttles in snap.apis:
        request = _api_name(api_key)
        for version, n in enumerate(versions):
            if n:
                requests.add_metric([request, str(version)], n)
        if ok:
            errors.add_metric([request, "NONE"], ok)
        rows = [times(m) for m in held]
        for i, family in enumerate(parts):
            name = family.name
            window = sorted([row[i] for row in rows])
            for label, q in QUANTILES:
                family.add_sample(name, {"request": request, "quantile": label}, quantile(window, q))
            family.add_sample(name + "_count", {"request": request}, count)
            if i == 0:
                family.add_sample(name + "_sum", {"request": request}, total_ms)
        window = sorted(throttles)
        for label, q in QUANTILES:
            throttle.add_sample(throttle.name, {"request": request, "quantile": label}, quantile(window, q))
        throttle.add_sample(throttle.name + "_count", {"request": request}, count)
    for (api_key, code), n in snap.errors:
        errors.add_metric([_api_name(api_key), _error_name(code)], n)
    yield from (requests, errors, *parts, throttle)


TIME_DOCS = (
    "request time in the broker, ms (from the frame read whole to the response written)",
    "ms from the frame read whole to the dispatcher taking it",
    "ms the broker worked on the request (dispatched to response encoded, less RemoteTimeMs)",
    "ms waiting in a purgatory (acks=all for the followers, a fetch for min bytes, a join for the group)",
    "ms from the response encoded to the connection's writer taking it (earlier responses go first)",
    "ms handing the response to the socket (and waiting while it is full)",
)


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


def _controller(
    figures: tuple[int, int, int, int, int], elections: tuple[int, float, list[float], int]
) -> Iterator[Metric]:
    """KafkaController gauges; the cluster-wide ones only on the active controller (0 elsewhere), so that
    a sum over the brokers counts each once. ControllerStats: the passes of this broker's controller."""
    active, offline, topics, partitions, imbalance = figures
    prefix = "kafka_controller_kafkacontroller_"
    yield _gauge(prefix + "activecontrollercount", "ActiveControllerCount: 1 on the active controller", active)
    yield _gauge(prefix + "offlinepartitionscount", "OfflinePartitionsCount: partitions without a live leader", offline)
    yield _gauge(prefix + "globaltopiccount", "GlobalTopicCount: topics in the cluster", topics)
    yield _gauge(prefix + "globalpartitioncount", "GlobalPartitionCount: partitions in the cluster", partitions)
    yield _gauge(
        prefix + "preferredreplicaimbalancecount",
        "PreferredReplicaImbalanceCount: partitions not led by their preferred (first) replica",
        imbalance,
    )
    passes, ms_sum, samples, unclean = elections
    yield _timer(
        "kafka_controller_controllerstats_leaderelectionrateandtimems",
        "LeaderElectionRateAndTimeMs: controller passes that elected leaders, and their time in ms",
        passes,
        ms_sum,
        samples,
    )
    yield CounterMetricFamily(
        "kafka_controller_controllerstats_uncleanleaderelections",
        "UncleanLeaderElectionsPerSec: leaders elected from outside the ISR",
        value=unclean,
    )


def _timer(name: str, doc: str, count: int, total: float, samples: list[float]) -> Metric:
    """A Yammer timer or histogram as Strimzi's rules export it: quantiles and _count (and _sum)."""
    family = Metric(name, doc, "summary")
    window = sorted(samples)
    for label, q in QUANTILES:
        family.add_sample(name, {"quantile": label}, quantile(window, q))
    family.add_sample(name + "_count", {}, count)
    family.add_sample(name + "_sum", {}, total)
    return family


def _purgatory(waiting: dict[str, int]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "kafka_server_delayedoperationpurgatory_purgatorysize",
        "PurgatorySize: requests waiting (a fetch counts once per partition it waits on)",
        labels=["delayedOperation"],
    )
    for operation, n in waiting.items():
        family.add_metric([operation], n)
    yield family


def _fetchers(snap: Snapshot) -> Iterator[Metric]:
    """ReplicaFetcherManager MaxLag, FetcherLagMetrics ConsumerLag, FetcherStats (follower side)."""
    max_lag = GaugeMetricFamily(
        "kafka_server_replicafetchermanager_maxlag",
        "MaxLag: the largest lag in messages of a partition this broker follows",
        labels=["clientId"],
    )
    max_lag.add_metric(["Replica"], max((lag for *_, lag in snap.fetcher_lag), default=0))
    lags = GaugeMetricFamily(
        "kafka_server_fetcherlagmetrics_consumerlag",
        "ConsumerLag: the leader's high watermark in the last fetch answer - this follower's log end offset",
        labels=["clientId", "topic", "partition"],
    )
    for client_id, topic, index, lag in snap.fetcher_lag:
        lags.add_metric([client_id, topic, str(index)], lag)
    labels = ["clientId", "broker"]
    requests = CounterMetricFamily(
        "kafka_server_fetcherstats_requests", "FetcherStats RequestsPerSec: replica Fetch requests", labels=labels
    )
    fetched = CounterMetricFamily(
        "kafka_server_fetcherstats_bytes",
        "FetcherStats BytesPerSec: record bytes replica fetches brought",
        labels=labels,
    )
    for client_id, broker, n, n_bytes in snap.fetchers:
        requests.add_metric([client_id, broker], n)
        fetched.add_metric([client_id, broker], n_bytes)
    yield from (max_lag, lags, requests, fetched)


def _log_activity(figures: tuple[int, int | float, list[float], int, int, int, int, int, int]) -> Iterator[Metric]:
    flushes, flush_ms, samples, deleted, runs, since_ms, dirty, recopy, clean_secs = figures
    yield _timer(
        "kafka_log_logflushstats_logflushrateandtimems",
        "LogFlushRateAndTimeMs: fsyncs of a partition's segments, and their time in ms",
        flushes,
        flush_ms,
        samples,
    )
    yield _gauge(
        "kafka_log_logcleanermanager_max_dirty_percent",
        "max-dirty-percent: the dirtiest compacted log's dirty share at the cleaner's last look",
        dirty,
    )
    yield _gauge(
        "kafka_log_logcleanermanager_time_since_last_run_ms",
        "time-since-last-run-ms: since the cleaner last looked for logs to compact",
        since_ms,
    )
    yield _gauge(
        "kafka_log_logcleaner_cleaner_recopy_percent",
        "cleaner-recopy-percent: bytes written / bytes read by the last compaction",
        recopy,
    )
    yield _gauge(
        "kafka_log_logcleaner_max_clean_time_secs", "max-clean-time-secs: the last compaction's time", clean_secs
    )
    yield _gauge("kafka_log_logcleaner_deadthreadcount", "DeadThreadCount: cleaner threads that died", 0)
    yield CounterMetricFamily("kafkapy_log_cleaner_runs", "Compactions finished (kafkapy's own)", value=runs)
    yield CounterMetricFamily(
        "kafkapy_log_retention_deleted_segments",
        "Segments deleted by retention.ms / retention.bytes (kafkapy's own)",
        value=deleted,
    )


def _coordinators(snap: Snapshot) -> Iterator[Metric]:
    """GroupMetadataManager's gauges (classic groups coordinated here), Kafka 4's group-coordinator-metrics
    for KIP-848 groups and rebalances, and the transactional ids coordinated here (kafkapy's own)."""
    prefix = "kafka_coordinator_group_groupmetadatamanager_"
    classic = snap.classic_groups or dict.fromkeys(CLASSIC_STATES, 0)
    consumer = snap.consumer_groups or dict.fromkeys(CONSUMER_STATES, 0)
    yield _gauge(
        prefix + "numgroups",
        "NumGroups: groups coordinated here (classic and consumer protocol)",
        sum(classic.values()) + sum(consumer.values()),
    )
    for state in CLASSIC_STATES:
        yield _gauge(prefix + f"numgroups{state.lower()}", f"NumGroups{state}: classic groups", classic.get(state, 0))
    yield _gauge(
        prefix + "numoffsets", "NumOffsets: committed offsets of the groups coordinated here", snap.num_offsets
    )
    by_state = GaugeMetricFamily(
        "kafka_server_group_coordinator_metrics_consumer_group_count",
        "consumer-group-count: consumer protocol (KIP-848) groups coordinated here",
        labels=["state"],
    )
    for state in CONSUMER_STATES:
        by_state.add_metric([state.lower()], consumer.get(state, 0))
    yield by_state
    classic_rebalances, consumer_rebalances = snap.rebalances
    yield _gauge(
        "kafka_server_group_coordinator_metrics_classic_group_completed_rebalance_count",
        "classic-group-completed-rebalance-count: classic group rebalances completed here",
        classic_rebalances,
    )
    yield _gauge(
        "kafka_server_group_coordinator_metrics_consumer_group_rebalance_count",
        "consumer-group-rebalance-count: consumer group epoch bumps here",
        consumer_rebalances,
    )
    txns = snap.transactions or {}
    yield _gauge(
        "kafkapy_transaction_coordinator_active_transactions",
        "Transactions open (Ongoing, PrepareCommit, PrepareAbort) of the transactional ids coordinated here",
        sum(n for state, n in txns.items() if state in ("Ongoing", "PrepareCommit", "PrepareAbort")),
    )
    ids = GaugeMetricFamily(
        "kafkapy_transaction_coordinator_transactional_ids",
        "Transactional ids coordinated here, by their transaction state",
        labels=["state"],
    )
    for state in TxnState:
        ids.add_metric([state.value], txns.get(state.value, 0))
    yield ids


def _socket_server(snap: Snapshot) -> Iterator[Metric]:
    labels = ["listener", "networkProcessor"]
    connections = GaugeMetricFamily(
        "kafka_server_socket_server_metrics_connection_count",
        "socket-server-metrics connection-count: open connections per listener",
        labels=labels,
    )
    for listener, n in sorted((snap.connections or {}).items()):
        connections.add_metric([listener, "0"], n)
    created = CounterMetricFamily(
        "kafka_server_socket_server_metrics_connection_creation",
        "socket-server-metrics connection-creation-total: connections accepted per listener",
        labels=labels,
    )
    for listener, n in snap.connections_created:
        created.add_metric([listener, "0"], n)
    closed = CounterMetricFamily(
        "kafka_server_socket_server_metrics_connection_close",
        "socket-server-metrics connection-close-total: connections closed per listener",
        labels=labels,
    )
    for listener, n in snap.connections_closed:
        closed.add_metric([listener, "0"], n)
    yield from (connections, created, closed)
    yield from _connection_limits(snap)
    if snap.loop_idle is not None:
        yield _gauge(
            "kafka_network_socketserver_networkprocessoravgidle_percent",
            "NetworkProcessorAvgIdlePercent: share (0-1) of the last 30 s the event loop thread was off the CPU",
            snap.loop_idle,
        )
        yield _gauge(
            "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
            "RequestHandlerAvgIdlePercent: the same event loop's idle share (one loop reads and handles requests)",
            snap.loop_idle,
        )


def _connection_limits(snap: Snapshot) -> Iterator[Metric]:
    """The acceptors' waits (max.connections, the creation rates) and the memory pool, read at scrape time."""
    # a Yammer meter marked in nanoseconds: Strimzi's rules keep only its Count (the percent rules match
    # MeanRate without keys), so rate(..._count[1m]) / 1e9 is the share of time the acceptor was blocked
    blocked = Metric(
        "kafka_network_acceptor_acceptorblockedpercent",
        "AcceptorBlockedPercent: nanoseconds the listener's acceptor waited for max.connections or a creation rate",
        "summary",
    )
    throttle = GaugeMetricFamily(
        "kafka_server_socket_server_metrics_connection_accept_throttle_time",
        "socket-server-metrics connection-accept-throttle-time: average accept delay (ms) the connection "
        "creation rates gave over the last minute, 0 with none",
        labels=["listener"],
    )
    for listener, blocked_s, throttle_ms in snap.acceptors:
        blocked.add_sample(blocked.name + "_count", {"listener": listener}, round(blocked_s * 1e9))
        throttle.add_metric([listener], throttle_ms)
    yield from (blocked, throttle)
    if snap.memory_pool is not None:
        available, used = snap.memory_pool
        yield _gauge(
            "kafka_network_socketserver_memorypoolavailable",
            "MemoryPoolAvailable: bytes of queued.max.request.bytes free (below 0: over, Long.MAX_VALUE: no pool)",
            available,
        )
        yield _gauge(
            "kafka_network_socketserver_memorypoolused",
            "MemoryPoolUsed: bytes of requests being read or processed, taken from queued.max.request.bytes",
            used,
        )


def _log_manager(dirs: list[tuple[str, int]]) -> Iterator[Metric]:
    """LogManager's gauges: a data dir is offline while it refuses writes (full or failed)."""
    yield _gauge(
        "kafka_log_logmanager_offlinelogdirectorycount",
        "OfflineLogDirectoryCount: log dirs refusing writes (full or failed)",
        sum(offline for _, offline in dirs),
    )
    each = GaugeMetricFamily(
        "kafka_log_logmanager_logdirectoryoffline",
        "LogDirectoryOffline: 1 while the log dir refuses writes (full or failed), else 0",
        labels=["logDirectory"],
    )
    for directory, offline in dirs:
        each.add_metric([directory], offline)
    yield each


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


QUOTA_DOCS = {
    "byte_rate": "byte-rate: bytes/s on the client quota sensor (resource Produce: produced, Fetch: fetched)",
    "request_time": "request-time: the request time (percent of one thread) per second on the client quota sensor",
    "throttle_time": "throttle-time: the average throttle (ms) the client quota sensor gave over the quota window",
    "mutation_rate": "mutation-rate: partitions created or deleted per second under a controller_mutation_rate quota",
    "tokens": "tokens: what is left in the controller mutation quota's token bucket (below 0: throttling)",
}


def _quotas(rows: list[tuple[str, str, str, str, float]]) -> Iterator[Metric]:
    """Kafka's client quota sensors as Strimzi's rules name them: kafka.server<type=R, user=U, client-id=C>
    attributes become kafka_server_quota_<attribute>{resource=R, user=U, clientId=C}; as in JMX, a tag
    left empty (a quota on a user alone, or on a client id alone) is no label."""
    families: dict[str, Metric] = {}
    for resource, attribute, user, client_id, number in rows:
        name = "kafka_server_quota_" + attribute.replace("-", "_")
        family = families.get(name)
        if family is None:
            family = families[name] = Metric(name, QUOTA_DOCS.get(attribute.replace("-", "_"), attribute), "gauge")
        labels = {"resource": resource}
        if user:
            labels["user"] = user
        if client_id:
            labels["clientId"] = client_id
        family.add_sample(name, labels, number)
    yield from families.values()
