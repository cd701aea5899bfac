"""Debian's real `prometheus` server scraping a 3-broker cluster, with the repository's alert rules
and the Grafana dashboard's queries.

Prometheus runs with deploy/prometheus/prometheus.yml's scrape job (its targets swapped for the
brokers' metrics endpoints, scraped and evaluated every second) and deploy/prometheus/kafkapy-alerts.yml
with its time compressed 60x: every `for:` and every range window in an expression is divided by
TIME_SCALE (5m -> 5s, [15m:1m] -> [15s:1s]); the expressions, thresholds and labels are the file's.

The test makes traffic (a producer, a consumer group that commits and lags, oversized records
refused), then evaluates every target of every dashboard panel through Prometheus's HTTP API and
expects data; then it stops a follower and follows KafkaUnderReplicatedPartitions (and
KafkaBrokerDown) through pending and firing, stops a second broker for KafkaUnderMinIsrPartitions,
and sees every alert resolve once both are back. Last, every panel query over the test's span must
have had data above 0 (but for those listed in ZERO_IN_THIS_TEST, with the reason).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.testing import free_port
from tests.cluster.test_cluster import FAST, admin, full_isr, partitions

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "kafkapy.json"

SCRAPE_S = 1  # scrape and rule evaluation interval
TIME_SCALE = 60  # rules' `for:` and range windows divided by this
# What Grafana puts for $__rate_interval with a data source scraped every SCRAPE_S: 4 scrape intervals
RATE_INTERVAL = f"{4 * SCRAPE_S}s"

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def duration_ms(text: str) -> int:
    """A Prometheus duration ("5m", "1h30m", "500ms") in milliseconds."""
    assert _DURATION.sub("", text) == "", f"not a duration: {text!r}"
    return sum(int(n) * _UNITS_MS[unit] for n, unit in _DURATION.findall(text))


def compressed(text: str) -> str:
    """A duration divided by TIME_SCALE, in milliseconds (at least 1 ms)."""
    return f"{max(1, duration_ms(text) // TIME_SCALE)}ms"


def compress_expr(expr: str) -> str:
    """Every range window and subquery resolution of a PromQL expression divided by TIME_SCALE."""

    def window(m: re.Match[str]) -> str:
        parts = [compressed(p) if p else p for p in m.group(1).split(":")]
        return "[" + ":".join(parts) + "]"

    return re.sub(r"\[([0-9a-zA-Z]+(?::[0-9a-zA-Z]*)?)\]", window, expr)


def compressed_rules() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """kafkapy-alerts.yml with its time compressed, and its alert rules by name (compressed)."""
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "kafkapy-alerts.yml").read_text())
    alerts: dict[str, dict[str, Any]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = compress_expr(rule["expr"])
            if "for" in rule:
                rule["for"] = compressed(rule["for"])
            if "alert" in rule:
                alerts[rule["alert"]] = rule
    return rules, alerts


def test_time_compression_of_the_rules() -> None:
    assert duration_ms("1h30m") == 5_400_000 and duration_ms("500ms") == 500
    assert compressed("5m") == "5000ms"
    assert compress_expr("deriv(sum(x)[15m:1m]) > 0 and rate(y[5m]) > 0 and z[30s:]") == (
        "deriv(sum(x)[15000ms:1000ms]) > 0 and rate(y[5000ms]) > 0 and z[500ms:]"
    )
    _, alerts = compressed_rules()
    assert alerts["KafkaUnderReplicatedPartitions"]["for"] == "5000ms"
    assert "[15000ms:1000ms]" in alerts["KafkaConsumerGroupLagGrowing"]["expr"]
    # the expressions are otherwise the file's
    original = yaml.safe_load((PROMETHEUS_DIR / "kafkapy-alerts.yml").read_text())
    assert [r["expr"] for g in original["groups"] for r in g["rules"] if "[" not in r["expr"]] == [
        r["expr"] for r in alerts.values() if "[" not in r["expr"]
    ]


@dataclass(slots=True)
class PrometheusServer:
    """A `prometheus` process on a loopback port, stopped by its PID."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (vector samples, or one scalar as a one-element list)."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        return [{"metric": {}, "value": data["result"]}]

    def values(self, expr: str) -> list[float]:
        return [float(s["value"][1]) for s in self.query(expr)]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts of one rule."""
        return [a for a in self.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]

    def rule_state(self, name: str) -> str:
        for group in self.get("/api/v1/rules", type="alert")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    state: str = rule["state"]
                    return state
        raise KeyError(name)

    def rule_errors(self) -> dict[str, str]:
        """The rules whose last evaluation failed, with the error (health other than "ok")."""
        return {
            rule["name"]: rule.get("lastError", "") or rule["health"]
            for group in self.get("/api/v1/rules")["groups"]
            for rule in group["rules"]
            if rule["health"] != "ok"
        }

    def states_over(self, name: str, since: float) -> dict[str, list[float]]:
        """The times at which the ALERTS series of an alert had each state since `since` (unix time)."""
        data = self.get(
            "/api/v1/query_range",
            query=f'ALERTS{{alertname="{name}"}}',
            start=str(since),
            end=str(time.time()),
            step=f"{SCRAPE_S}s",
        )
        states: dict[str, list[float]] = {}
        for series in data["result"]:
            states.setdefault(series["metric"]["alertstate"], []).extend(float(t) for t, _ in series["values"])
        return {state: sorted(times) for state, times in states.items()}

    def range_values(self, expr: str, since: float) -> dict[str, list[float]]:
        """A range query from `since` (unix time) to now, one point per scrape interval: each series'
        labels (as text) -> its values."""
        data = self.get("/api/v1/query_range", query=expr, start=str(since), end=str(time.time()), step=f"{SCRAPE_S}s")
        if data["resultType"] == "matrix":
            return {json.dumps(r["metric"], sort_keys=True): [float(v) for _, v in r["values"]] for r in data["result"]}
        return {"{}": [float(data["result"][1])]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def pending_and_firing(prom: PrometheusServer, name: str, since: float) -> dict[str, list[float]] | None:
    """The alert's ALERTS states since `since`, once it has been both pending and firing."""
    states = prom.states_over(name, since)
    return states if {"pending", "firing"} <= states.keys() else None


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Any]:
    servers: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        exe = shutil.which("prometheus")
        assert exe, "prometheus not found: apt-get install prometheus (scripts/test does)"
        rules, _ = compressed_rules()
        (tmp_path / "kafkapy-alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"] = {
            "scrape_interval": f"{SCRAPE_S}s",
            "scrape_timeout": f"{SCRAPE_S}s",
            "evaluation_interval": f"{SCRAPE_S}s",
        }
        config["rule_files"] = ["kafkapy-alerts.yml"]
        [job] = config["scrape_configs"]
        job["static_configs"] = [{"targets": targets}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    exe,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = PrometheusServer(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited: {log_path.read_text()}"
            with urllib.request.urlopen(server.base + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until(ready, timeout=30, what="prometheus ready")
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, with the dashboard's variables
    substituted as Grafana would for job kafkapy and all brokers."""
    found: list[tuple[str, str]] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for target in p.get("targets", []):
                expr = (
                    target["expr"]
                    .replace("$__rate_interval", RATE_INTERVAL)
                    .replace("$job", "kafkapy")
                    .replace("$instance", ".*")
                )
                assert "$" not in expr, f"{p['title']!r}: a variable left in {expr!r}"
                found.append((p["title"], expr))
    return found


def make_traffic(cluster: LocalCluster, topic: str, group: str) -> None:
    """Records produced with acks=all, a group that reads from every partition and commits, and more
    records after that (so it lags)."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(300):
        producer.produce(topic, f"record {i}".encode() * 10, partition=i % 3)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    read: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while (len(read) < 3 or sum(read.values()) < 150) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            partition = int(msg.partition() or 0)
            read[partition] = read.get(partition, 0) + 1
    assert len(read) == 3 and sum(read.values()) >= 150, read
    consumer.commit(asynchronous=False)
    consumer.close()
    for i in range(60):
        producer.produce(topic, b"after the commit", partition=i % 3)
    assert producer.flush(30) == 0


def refuse_an_oversized_record(cluster: LocalCluster, topic: str) -> None:
    """A record larger than the topic's max.message.bytes, refused (BytesRejected, FailedProduceRequests,
    MESSAGE_TOO_LARGE in RequestMetrics' errors)."""
    refused: list[Any] = []
    big = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.max.bytes": 2_000_000})
    big.produce(topic, b"x" * 200_000, partition=0, on_delivery=lambda err, _msg: refused.append(err))
    big.flush(30)
    assert refused and refused[0] is not None and refused[0].name() == "MSG_SIZE_TOO_LARGE", refused


# Panel queries that stay 0 all through the test, and why (every other query must be above 0 at
# some point of it, as a time series panel over the test's span would show)
ZERO_IN_THIS_TEST = {
    # no partition loses its leader: a stopped broker's leaderships move in its controlled shutdown
    "kafka_controller_kafkacontroller_offlinepartitionscount": "no partition without a leader",
    # as in Kafka, a read answered with an expected error (OFFSET_OUT_OF_RANGE, NOT_LEADER...) is not
    # a failed fetch; nothing here fails unexpectedly
    "kafka_server_brokertopicmetrics_failedfetchrequests_total": "no fetch failing with an unexpected error",
}


def produce_more(cluster: LocalCluster, topic: str) -> None:
    more = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(30):
        more.produce(topic, b"once scraped", partition=i % 3)
    assert more.flush(30) == 0


def read_again(cluster: LocalCluster, topic: str, group: str) -> None:
    """Some records of every partition, in a group that does not commit."""
    again = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    again.subscribe([topic])
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        msg = again.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.add(int(msg.partition() or 0))
    again.close()
    assert len(seen) == 3, seen


def moved_by(prom: PrometheusServer, counter: str, action: Callable[[], None], attempts: int = 5) -> None:
    """Once the counter is scraped, `action` until Prometheus shows a rate above 0 for it."""
    wait_until(lambda: prom.query(counter), what=f"{counter} scraped")
    moving = f"rate({counter}[{RATE_INTERVAL}]) > 0"
    for _ in range(attempts):
        action()
        try:
            wait_until(lambda: prom.query(moving), timeout=4 * SCRAPE_S + 4, interval=0.5, what=moving)
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{moving} never true after {attempts} tries")


def may_stay_zero(expr: str) -> bool:
    return any(name in expr for name in ZERO_IN_THIS_TEST)


def test_prometheus_scrapes_the_cluster_evaluates_the_dashboard_and_the_alerts_fire_and_resolve(
    kafka_cluster_factory: Any, start_prometheus: Any
) -> None:
    cluster: LocalCluster = kafka_cluster_factory(0, FAST)
    metrics: dict[int, str] = {}
    for node_id in (1, 2, 3):
        metrics[node_id] = f"127.0.0.1:{free_port()}"
        cluster.add_broker(node_id, settings={"kafkapy.metrics.listen": metrics[node_id]})
    prom: PrometheusServer = start_prometheus(list(metrics.values()))
    wait_until(lambda: sorted(prom.values('up{job="kafkapy"}')) == [1.0, 1.0, 1.0], what="three brokers scraped and up")
    since = time.time()

    # the broker stopped later is a follower of the topic's partitions, and not the controller
    [active] = wait_until(
        lambda: [
            s["metric"]["instance"] for s in prom.query("kafka_controller_kafkacontroller_activecontrollercount == 1")
        ],
        what="the active controller",
    )
    follower = next(n for n, address in metrics.items() if address != active)
    a, b = (n for n in metrics if n != follower)
    topic, group = "orders", "dashboard-readers"
    admin(cluster).create_topics(
        [
            NewTopic(
                topic,
                3,
                replica_assignment=[[a, b, follower], [b, a, follower], [a, follower, b]],
                config={"min.insync.replicas": "2", "max.message.bytes": "100000"},
            )
        ]
    )[topic].result(15)
    wait_until(lambda: len(partitions(cluster, topic)) == 3 and full_isr(cluster, topic, 3), what="topic in sync")
    make_traffic(cluster, topic, group)
    # the topic's produce and fetch counters appear with their first increment, and all of make_traffic
    # can fall between two scrapes; rate() needs two scraped points inside its window, which a loaded
    # machine can miss (a late scrape): move each counter again until Prometheus sees it move
    messages_in = f'kafka_server_brokertopicmetrics_messagesin_total{{topic="{topic}"}}'
    bytes_out = f'kafka_server_brokertopicmetrics_bytesout_total{{topic="{topic}"}}'
    moved_by(prom, messages_in, lambda: produce_more(cluster, topic))
    moved_by(prom, bytes_out, lambda: read_again(cluster, topic, f"{group}-again"))
    # twice: a counter series that appears with its first increment shows no rate() until it moves again
    too_large = 'kafka_network_requestmetrics_errors_total{request="Produce", error="MESSAGE_TOO_LARGE"}'
    refuse_an_oversized_record(cluster, topic)
    wait_until(lambda: prom.query(too_large), what="the first refusal scraped")
    refuse_an_oversized_record(cluster, topic)

    # every query of every dashboard panel returns data from the real Prometheus
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        wait_until(lambda e=expr: prom.query(e), timeout=30, what=f"data for panel {title!r}: {expr}")
    assert prom.values('count(up{job="kafkapy"} == 1) or vector(0)') == [3.0]
    assert prom.values('sum(kafka_controller_kafkacontroller_activecontrollercount{job="kafkapy"})') == [1.0]
    lag = prom.query(f'kafka_consumergroup_lag{{consumergroup="{group}", topic="{topic}"}}')
    assert {s["metric"]["partition"] for s in lag} == {"0", "1", "2"}
    assert sum(float(s["value"][1]) for s in lag) >= 60  # what was produced after the commit at least
    wait_until(lambda: sum(prom.values(too_large)) == 2, what="both refusals scraped")
    assert sum(prom.values(f'kafka_server_brokertopicmetrics_bytesrejected_total{{topic="{topic}"}}')) >= 400_000
    assert sum(prom.values(f'kafka_server_brokertopicmetrics_failedproducerequests_total{{topic="{topic}"}}')) == 2

    # the follower stops (SIGTERM: a controlled shutdown takes it out of the ISR at once): the leaders
    # report under-replicated partitions and the alert goes pending, then firing (as does
    # KafkaBrokerDown for its endpoint)
    _, rules = compressed_rules()

    def fires(name: str, since: float) -> None:
        """`name` goes firing, and ALERTS recorded it pending for its `for:` before."""
        wait_until(lambda: any(a["state"] == "firing" for a in prom.alerts(name)), what=f"{name} firing")
        assert prom.rule_state(name) == "firing"
        states = wait_until(lambda: pending_and_firing(prom, name, since), what=f"{name} in ALERTS")
        pending_s = states["firing"][0] - states["pending"][0]
        assert pending_s >= duration_ms(rules[name]["for"]) / 1000 - SCRAPE_S, (name, states)

    expected = ("KafkaUnderReplicatedPartitions", "KafkaBrokerDown", "KafkaUnderMinIsrPartitions")
    for name in expected:
        assert prom.rule_state(name) == "inactive"
        assert prom.alerts(name) == []
    # then a second broker (not the controller) stops too: the one left leads every partition of the
    # topic with an ISR of itself alone, below min.insync.replicas=2
    second = next(n for n in (a, b) if metrics[n] != active)
    [last] = [n for n in metrics if n not in (follower, second)]
    stopped: list[int] = []
    try:
        t0 = time.time()
        assert cluster.brokers[follower].stop() == 0
        stopped.append(follower)
        wait_until(
            lambda: sum(prom.values('kafka_server_replicamanager_underreplicatedpartitions{job="kafkapy"}')) >= 3,
            what="UnderReplicatedPartitions rises in Prometheus",
        )
        fires("KafkaUnderReplicatedPartitions", t0)
        fires("KafkaBrokerDown", t0)
        assert {a["labels"]["instance"] for a in prom.alerts("KafkaBrokerDown")} == {metrics[follower]}
        under = {a["labels"]["instance"] for a in prom.alerts("KafkaUnderReplicatedPartitions")}
        assert under and metrics[follower] not in under  # reported by the leaders
        assert prom.alerts("KafkaUnderMinIsrPartitions") == []  # an ISR of 2 is min.insync.replicas

        t1 = time.time()
        assert cluster.brokers[second].stop() == 0
        stopped.append(second)
        wait_until(
            lambda: (
                prom.values(f'kafka_server_replicamanager_underminisrpartitioncount{{instance="{metrics[last]}"}}')
                >= [3.0]
            ),
            what="UnderMinIsrPartitionCount rises in Prometheus",
        )
        fires("KafkaUnderMinIsrPartitions", t1)
        assert {a["labels"]["instance"] for a in prom.alerts("KafkaUnderMinIsrPartitions")} == {metrics[last]}
        assert {a["labels"]["instance"] for a in prom.alerts("KafkaBrokerDown")} == {
            metrics[follower],
            metrics[second],
        }
    finally:
        for node_id in stopped:
            cluster.brokers[node_id].start()

    # back: the ISR expands, the gauges return to 0 and the alerts resolve
    wait_until(lambda: full_isr(cluster, topic, 3), timeout=60, what="the stopped brokers back in the ISR")
    for name in expected:
        wait_until(
            lambda n=name: prom.alerts(n) == [] and prom.rule_state(n) == "inactive",
            timeout=60,
            what=f"{name} resolved",
        )
        assert prom.query(f'ALERTS{{alertname="{name}"}}') == []
    assert sum(prom.values('kafka_server_replicamanager_underreplicatedpartitions{job="kafkapy"}')) == 0
    assert sum(prom.values('kafka_server_replicamanager_underminisrpartitioncount{job="kafkapy"}')) == 0
    # brokers stopping one by one, each handing its leaderships over first, leave no partition offline
    # and the controller in place: those alerts never fired (the latency and disk alerts depend on the
    # machine, so they are not checked)
    quiet = "KafkaOfflinePartitions|KafkaActiveControllerCountNotOne"
    assert prom.range_values(f'ALERTS{{alertstate="firing", alertname=~"{quiet}"}}', since) == {}
    # and every rule evaluates without error against the brokers' real series
    assert len(prom.get("/api/v1/rules")["groups"]) == len(compressed_rules()[0]["groups"])
    assert prom.rule_errors() == {}

    # over the whole test, as Grafana's time series panels would draw it, every panel query has data
    # and (but for ZERO_IN_THIS_TEST) was above 0 at some point (retried: the last scrapes, such as
    # the ISR expanding again, reach a range query's steps within a few seconds)
    undrawn: list[str] = []

    def all_drawn() -> bool:
        undrawn.clear()
        for title, expr in queries:
            series = prom.range_values(expr, since)
            if not series or (not may_stay_zero(expr) and max(max(v) for v in series.values()) <= 0):
                undrawn.append(f"{title!r}: {expr}")
        return not undrawn

    try:
        wait_until(all_drawn, timeout=15, interval=1, what="every panel drawn over the test")
    except TimeoutError:
        pass
    assert undrawn == [], "panels with no data or only 0 over the test"
