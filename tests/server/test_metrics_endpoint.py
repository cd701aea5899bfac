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

from kafkapy.testing import BrokerProcess, free_port
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic, produce

confluent_kafka = pytest.importorskip("confluent_kafka")
parser = pytest.importorskip("prometheus_client.parser")

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
TOPIC = "metrics-topic"
RECORDS = 25
EXTRA = 5  # produced after the group committed: its lag


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
    consumer.commit(asynchronous=False)
    consumer.close()
    for _ in range(EXTRA):
        producer.produce(TOPIC, value=b"w" * 100, partition=0)
    assert producer.flush(10) == 0

    after = scrape(base)
    names = {name for name, _ in after}
    documented = documented_names()
    assert len(documented) >= 30
    missing = [n for n in documented if n not in names]
    assert not missing, f"documented but not served: {missing}"

    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=TOPIC) == RECORDS + EXTRA
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total") == RECORDS + EXTRA
    assert value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=TOPIC) > RECORDS * 100
    assert value(after, "kafka_server_brokertopicmetrics_bytesout_total", topic=TOPIC) > RECORDS * 100
    assert value(after, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic=TOPIC) >= 2
    assert value(after, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=TOPIC) >= 2
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total") == 1
    assert value(after, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=TOPIC) == 0
    assert value(after, "kafka_server_brokertopicmetrics_bytesrejected_total") == 70
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
