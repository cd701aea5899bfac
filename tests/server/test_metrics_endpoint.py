"""The metrics endpoint of a real broker process: every name docs/monitoring.md lists is served and
moves when it should; /healthz, /readyz; OpenMetrics by content negotiation."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.testing import BrokerProcess, free_port
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic, produce

confluent_kafka = pytest.importorskip("confluent_kafka")
parser = pytest.importorskip("prometheus_client.parser")

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
TOPIC = "metrics-topic"
RECORDS = 25
EXTRA = 5  # produced after the group committed: its lag
# documented names only a broker with replica fetchers serves (tests/cluster/test_metrics_cluster.py checks them)
CLUSTER_ONLY = {
    "kafka_server_fetcherlagmetrics_consumerlag",
    "kafka_server_fetcherstats_requests_total",
    "kafka_server_fetcherstats_bytes_total",
}
# documented names served only for a client a quota governs (test_housekeeping_and_quota_metrics_move)
QUOTA_ONLY = {
    "kafka_server_quota_byte_rate",
    "kafka_server_quota_request_time",
    "kafka_server_quota_throttle_time",
    "kafka_server_quota_mutation_rate",
    "kafka_server_quota_tokens",
}
TIME_PARTS = (
    "totaltimems",
    "requestqueuetimems",
    "localtimems",
    "remotetimems",
    "responsequeuetimems",
    "responsesendtimems",
)


def documented_names() -> list[str]:
    """The metric names in the middle column of docs/monitoring.md's mapping table."""
    names = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (m := re.fullmatch(r"`([a-z_]+)`", cells[1])):
            names.append(m.group(1))
    return names


def get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics (text format), keyed by name and sorted labels."""
    status, _, body = get(base + "/metrics")
    assert status == 200
    out = {}
    for family in parser.text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_endpoint_of_a_live_broker(kafka_broker_factory) -> None:
    port = free_port()
    broker: BrokerProcess = kafka_broker_factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    base = f"http://127.0.0.1:{port}"

    status, headers, body = get(base + "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["Content-Type"] == "application/json"
    status, _, body = get(base + "/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ready", ready
    assert set(ready["checks"]) == {"log_recovery", "metadata", "listeners", "running"}
    assert get(base + "/nope")[0] == 404

    before = scrape(base)
    assert value(before, "kafka_server_brokertopicmetrics_messagesin_total") == 0
    assert value(before, "kafka_controller_kafkacontroller_activecontrollercount") == 1

    with RawClient(broker.bootstrap) as client:
        assert create_topic(client, TOPIC, partitions=2) == 0
        # partition 7 does not exist: a failed produce, counted in the all-topics series only
        assert produce(client, TOPIC, b"\0" * 70, partition=7).error_code != 0
        # flush.messages=1: the append is fsynced at once (LogFlushStats)
        assert create_topic(client, "metrics-flushed", 1, **{"flush.messages": "1"}) == 0
        batch = records.build_batch([(None, b"flushed", [], int(time.time() * 1000))])
        assert produce(client, "metrics-flushed", bytes(batch)).error_code == 0
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(RECORDS):
        producer.produce(TOPIC, value=b"v" * 100, key=str(i).encode(), partition=i % 2)
    assert producer.flush(10) == 0
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "metrics-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    got = 0
    deadline = time.monotonic() + 15
    while got < RECORDS and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got += 1
    assert got == RECORDS
    assert consumer.poll(0.8) is None  # caught up: its next fetch waits out fetch.wait.max.ms (500 ms) and is answered
    consumer.commit(asynchronous=False)
    consumer.close()
    for _ in range(EXTRA):
        producer.produce(TOPIC, value=b"w" * 100, partition=0)
    assert producer.flush(10) == 0
    # a transaction left open while scraped, then committed
    txn = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "metrics-txn"})
    txn.init_transactions(10)
    txn.begin_transaction()
    txn.produce("metrics-flushed", value=b"t")
    assert txn.flush(10) == 0
    during = scrape(base)
    txn.commit_transaction(10)

    after = scrape(base)
    names = {name for name, _ in after}
    documented = documented_names()
    assert len(documented) >= 70
    missing = [n for n in documented if n not in names and n not in CLUSTER_ONLY | QUOTA_ONLY]
    assert not missing, f"documented but not served: {missing}"

    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=TOPIC) == RECORDS + EXTRA
    # and metrics-flushed's two records (one produced raw, one in the transaction)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total") == RECORDS + EXTRA + 2
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=TOPIC) > RECORDS * 100
    assert value(after, "kafka_server_brokertopicmetrics_bytesout_total", topic=TOPIC) > RECORDS * 100
    assert value(after, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic=TOPIC) >= 2
    assert value(after, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=TOPIC) >= 2
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total") == 1
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=TOPIC) == 0
    assert value(after, "kafka_server_brokertopicmetrics_bytesrejected_total") == 70
    # a single broker has no followers: nothing replicated either way
    assert value(after, "kafka_server_brokertopicmetrics_replicationbytesin_total") == 0
    assert value(after, "kafka_server_brokertopicmetrics_replicationbytesout_total") == 0
    assert (
        value(after, "kafka_network_requestmetrics_errors_total", request="Produce", error="UNKNOWN_TOPIC_OR_PARTITION")
        == 1
    )

    produce_requests = sum(
        v
        for (n, labels), v in after.items()
        if n == "kafka_network_requestmetrics_requests_total" and ("request", "Produce") in labels
    )
    assert produce_requests >= 2
    assert value(after, "kafka_network_requestmetrics_requests_total", request="Produce", version="9") >= 1
    # Kafka names Fetch by its sender: FetchConsumer here (FetchFollower from a replica)
    assert value(after, "kafka_network_requestmetrics_totaltimems_count", request="FetchConsumer") >= 1
    assert not [n for n, labels in after if ("request", "Fetch") in labels]
    for q in ("0.50", "0.75", "0.95", "0.98", "0.99", "0.999"):
        assert (("kafka_network_requestmetrics_totaltimems", (("quantile", q), ("request", "Produce")))) in after
    assert value(after, "kafka_network_requestmetrics_totaltimems", request="Produce", quantile="0.99") > 0
    # Kafka's split of a request's time: every part has the same count; each part of a request is within
    # its total, so each quantile of a part is within the total's
    for request in ("Produce", "FetchConsumer", "JoinGroup"):
        count = value(after, "kafka_network_requestmetrics_totaltimems_count", request=request)
        assert count >= 1
        for p in TIME_PARTS:
            assert value(after, f"kafka_network_requestmetrics_{p}_count", request=request) == count
        for q in ("0.50", "0.99", "0.999"):
            total = value(after, "kafka_network_requestmetrics_totaltimems", request=request, quantile=q)
            parts = [value(after, f"kafka_network_requestmetrics_{p}", request=request, quantile=q) for p in TIME_PARTS]
            assert all(0 <= x <= total for x in parts[1:]), (request, q, total, parts)
    # a consumer's fetch waits for records (max wait), a JoinGroup for the group: RemoteTimeMs
    assert value(after, "kafka_network_requestmetrics_remotetimems", request="FetchConsumer", quantile="0.999") > 400
    assert value(after, "kafka_network_requestmetrics_remotetimems", request="JoinGroup", quantile="0.999") > 0
    assert value(after, "kafka_network_requestmetrics_localtimems", request="Produce", quantile="0.99") > 0

    ends = [value(after, "kafka_log_log_logendoffset", topic=TOPIC, partition=p) for p in ("0", "1")]
    assert sum(ends) == RECORDS + EXTRA
    # kafka_exporter's names: the partitions' offsets, the group's committed offsets and its lag
    for p, end in zip(("0", "1"), ends):
        assert value(after, "kafka_topic_partition_current_offset", topic=TOPIC, partition=p) == end
        assert value(after, "kafka_topic_partition_oldest_offset", topic=TOPIC, partition=p) == 0
    group = {"consumergroup": "metrics-group", "topic": TOPIC}
    committed = [value(after, "kafka_consumergroup_current_offset", partition=p, **group) for p in ("0", "1")]
    assert sum(committed) == RECORDS
    assert value(after, "kafka_consumergroup_lag", partition="0", **group) == EXTRA
    assert value(after, "kafka_consumergroup_lag", partition="1", **group) == 0
    assert value(after, "kafka_log_log_size", topic=TOPIC, partition="0") > 0
    assert value(after, "kafka_log_log_numlogsegments", topic=TOPIC, partition="0") == 1
    assert value(after, "kafka_server_replicamanager_leadercount") >= 2
    assert value(after, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(after, "kafka_controller_kafkacontroller_globaltopiccount") >= 1
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "kafka_log_logflushstats_logflushrateandtimems_count") >= 1
    assert value(after, "kafka_log_logflushstats_logflushrateandtimems", quantile="0.99") > 0
    assert value(after, "kafka_coordinator_group_groupmetadatamanager_numgroups") >= 1
    # the group's consumer closed: Empty (its committed offsets kept)
    assert value(after, "kafka_coordinator_group_groupmetadatamanager_numgroupsempty") >= 1
    assert value(after, "kafka_coordinator_group_groupmetadatamanager_numgroupsstable") == 0
    assert value(after, "kafka_coordinator_group_groupmetadatamanager_numoffsets") >= 2
    assert value(after, "kafka_server_group_coordinator_metrics_classic_group_completed_rebalance_count") >= 1
    assert value(during, "kafkapy_transaction_coordinator_active_transactions") == 1
    assert value(during, "kafkapy_transaction_coordinator_transactional_ids", state="Ongoing") == 1
    assert value(after, "kafkapy_transaction_coordinator_active_transactions") == 0
    socket = {"listener": "PLAINTEXT", "networkProcessor": "0"}
    assert value(after, "kafka_server_socket_server_metrics_connection_creation_total", **socket) >= 3
    assert value(after, "kafka_server_socket_server_metrics_connection_close_total", **socket) >= 1
    assert value(after, "kafka_server_socket_server_metrics_connection_count", **socket) == value(
        after, "kafka_server_socket_server_metrics_connection_creation_total", **socket
    ) - value(after, "kafka_server_socket_server_metrics_connection_close_total", **socket)
    assert 0 < value(after, "kafka_network_socketserver_networkprocessoravgidle_percent") <= 1
    assert value(after, "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent") == value(
        after, "kafka_network_socketserver_networkprocessoravgidle_percent"
    )  # one event loop reads and handles
    assert value(after, "kafka_server_replicafetchermanager_maxlag", clientId="Replica") == 0
    for op in ("Produce", "Fetch", "DeleteRecords", "Rebalance"):
        assert ("kafka_server_delayedoperationpurgatory_purgatorysize", (("delayedOperation", op),)) in after
    log_dir = str(broker.data_dir)
    used = value(after, "kafkapy_log_dir_usage_bytes", log_dir=log_dir)
    assert 0 < used <= value(after, "kafkapy_log_dir_capacity_bytes", log_dir=log_dir)

    # OpenMetrics when asked for, Prometheus text otherwise
    status, headers, body = get(base + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert b"kafka_server_brokertopicmetrics_messagesin_total" in body
    status, headers, body = get(base + "/metrics")
    assert headers["Content-Type"].startswith("text/plain") and b"# EOF" not in body

    # a clean stop with the endpoint open
    assert broker.stop() == 0


def test_readyz_names_what_is_not_ready_yet() -> None:
    """Before the services exist (log recovery, metadata, etcd registration): 503 with each reason."""
    import asyncio

    from prometheus_client.registry import CollectorRegistry

    from kafkapy.config import BrokerConfig
    from kafkapy.server.broker import Broker
    from kafkapy.server.http_endpoint import HttpEndpoint

    config = BrokerConfig.load(
        None, [("kafkapy.metrics.listen", "127.0.0.1:0"), ("metadata.connect", "etcd://127.0.0.1:1")]
    )
    broker = Broker(config, lambda b: None)  # type: ignore[arg-type,return-value]  # never started: no handler

    async def main() -> tuple[int, bytes, int]:
        endpoint = HttpEndpoint(lambda: (CollectorRegistry(), False), broker.readiness, "127.0.0.1", 0)
        await endpoint.start()
        try:
            base = f"http://127.0.0.1:{endpoint.bound_port}"
            loop = asyncio.get_running_loop()
            status, _, body = await loop.run_in_executor(None, get, base + "/readyz")
            healthz = (await loop.run_in_executor(None, get, base + "/healthz"))[0]
            return status, body, healthz
        finally:
            await endpoint.close()

    status, body, healthz = asyncio.run(main())
    assert (status, healthz) == (503, 200)
    answer = json.loads(body)
    assert answer["status"] == "not ready"
    checks = answer["checks"]
    assert checks["log_recovery"] == {"ok": False, "reason": "logs are being loaded and recovered"}
    assert checks["registered"] == {"ok": False, "reason": "not registered with the cluster (etcd)"}
    assert checks["listeners"]["ok"] is False and checks["running"] == {"ok": True}


@pytest.mark.parametrize("large", [False, True])
def test_metrics_formatted_on_the_loop_or_in_a_thread(large: bool) -> None:
    """A snapshot said to be large is formatted in a worker thread: the same body either way."""
    import asyncio

    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector, CollectorRegistry

    from kafkapy.server.http_endpoint import HttpEndpoint

    class One(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            yield GaugeMetricFamily("kafka_server_replicamanager_leadercount", "LeaderCount", value=3)

    def metrics() -> tuple[CollectorRegistry, bool]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(One())
        return registry, large

    async def main() -> bytes:
        endpoint = HttpEndpoint(metrics, lambda: {}, "127.0.0.1", 0)
        await endpoint.start()
        try:
            url = f"http://127.0.0.1:{endpoint.bound_port}/metrics"
            return (await asyncio.get_running_loop().run_in_executor(None, get, url))[2]
        finally:
            await endpoint.close()

    assert b"kafka_server_replicamanager_leadercount 3.0\n" in asyncio.run(main())


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.1)


def test_housekeeping_and_quota_metrics_move(kafka_broker_factory) -> None:
    """Retention deleting segments, the cleaner compacting a log, and a client quota's sensors throttling
    a producer move their metrics (a retention check every 200 ms, segments of ~4 batches)."""
    from kafkapy.protocol.messages.alter_client_quotas_request import (
        AlterClientQuotasRequest,
        EntityData,
        EntryData,
        OpData,
    )

    port = free_port()
    broker: BrokerProcess = kafka_broker_factory(
        settings={"log.retention.check.interval.ms": 200},
        extra_args=["--metrics-listen", f"127.0.0.1:{port}"],
    )
    base = f"http://127.0.0.1:{port}"
    before = scrape(base)
    assert value(before, "kafkapy_log_retention_deleted_segments_total") == 0
    assert value(before, "kafkapy_log_cleaner_runs_total") == 0
    assert not [name for name, _ in before if name in QUOTA_ONLY]  # no quota: no sensor

    def batch(key: bytes, i: int) -> bytes:
        return bytes(records.build_batch([(key, b"v" * 400, [], int(time.time() * 1000) + i)]))

    with RawClient(broker.bootstrap) as client:
        assert create_topic(client, "m-retained", **{"internal.segment.bytes": "2000", "retention.bytes": "2000"}) == 0
        assert (
            create_topic(
                client,
                "m-compacted",
                **{"internal.segment.bytes": "2000", "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"},
            )
            == 0
        )
        for i in range(12):
            assert produce(client, "m-retained", batch(b"k", i)).error_code == 0
        # six keys written once, then one key six times: a compaction keeps the six and the last of the rest
        for i in range(12):
            key = f"u{i}".encode() if i < 6 else b"dup"
            assert produce(client, "m-compacted", batch(key, i)).error_code == 0

        def housekept() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            now = scrape(base)
            done = (
                value(now, "kafkapy_log_retention_deleted_segments_total") >= 1
                and value(now, "kafkapy_log_cleaner_runs_total") >= 1
            )
            return now if done else None

        after = wait_for(housekept, what="a retention deletion and a compaction")
        retained = {"topic": "m-retained", "partition": "0"}
        assert value(after, "kafka_log_log_logstartoffset", **retained) > 0
        # whole segments went: what is left is less than what was appended
        assert value(after, "kafka_log_log_size", **retained) < value(
            after, "kafka_server_brokertopicmetrics_bytesin_total", topic="m-retained"
        )
        # the cleaner's gauges describe that compaction: it copied some bytes, not all, and looked recently
        assert 0 < value(after, "kafka_log_logcleaner_cleaner_recopy_percent") < 100
        assert value(after, "kafka_log_logcleanermanager_time_since_last_run_ms") < 5000
        assert value(after, "kafka_log_logcleaner_deadthreadcount") == 0

        # a quota on this client id (RawClient sends "rawclient"): ~2 KiB/s of produce, a loose request quota
        ops = [
            OpData(key="producer_byte_rate", value=2048.0, remove=False),
            OpData(key="request_percentage", value=1000.0, remove=False),
            OpData(key="controller_mutation_rate", value=1.0, remove=False),
        ]
        entry = EntryData(entity=[EntityData(entity_type="client-id", entity_name="rawclient")], ops=ops)
        altered = client.request(AlterClientQuotasRequest(entries=[entry], validate_only=False), 1)
        assert [e.error_code for e in altered.entries] == [0]
        # 11 one-second samples: the rate divides by at least 10 s, so 30 KB earn a throttle
        throttles = [
            client.request(
                ProduceRequest(
                    acks=1,
                    timeout_ms=5000,
                    topic_data=[
                        TopicProduceData(
                            name="m-retained",
                            partition_data=[PartitionProduceData(index=0, records=batch(b"q" * 10_000, 0))],
                        )
                    ],
                ),
                9,
            ).throttle_time_ms
            for _ in range(3)
        ]
    assert throttles[0] == 0 and throttles[-1] > 0, throttles
    # that connection is muted for its throttle; on another, 20 partitions take the bucket's 11 tokens
    # (1/s over 11 one-second samples) and 9 more, so the next topic is refused while it is below zero
    with RawClient(broker.bootstrap) as admin:
        assert create_topic(admin, "m-mutated", 20) == 0
        assert create_topic(admin, "m-refused", 1) == ErrorCode.THROTTLING_QUOTA_EXCEEDED
    quota = scrape(base)
    mutations = {"resource": "ControllerMutation", "clientId": "rawclient"}
    assert value(quota, "kafka_server_quota_mutation_rate", **mutations) > 0
    assert value(quota, "kafka_server_quota_tokens", **mutations) < 0
    assert value(quota, "kafka_server_quota_throttle_time", **mutations) > 1000
    sensor = {"resource": "Produce", "clientId": "rawclient"}
    assert value(quota, "kafka_server_quota_byte_rate", **sensor) > 2048
    assert value(quota, "kafka_server_quota_throttle_time", **sensor) > 0
    request_sensor = {"resource": "Request", "clientId": "rawclient"}
    assert value(quota, "kafka_server_quota_request_time", **request_sensor) > 0
    assert value(quota, "kafka_server_quota_throttle_time", **request_sensor) == 0  # within its quota
    assert not [labels for name, labels in quota if name in QUOTA_ONLY and ("user", "") in labels]
    # RequestMetrics' ThrottleTimeMs: the throttled produces' throttles among the last requests' zeros
    throttle = "kafka_network_requestmetrics_throttletimems"
    assert value(quota, throttle, request="Produce", quantile="0.999") == max(throttles), throttles
    assert value(quota, throttle, request="Produce", quantile="0.50") == 0
    assert value(quota, throttle + "_count", request="Produce") == value(
        quota, "kafka_network_requestmetrics_totaltimems_count", request="Produce"
    )
    assert value(quota, throttle, request="Metadata", quantile="0.999") == 0
