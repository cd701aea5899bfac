"""Client telemetry (KIP-714) with real clients against a kafkapy broker with its metrics endpoint:
Kafka's own kafka-configs (kafka.admin.ConfigCommand, Java admin 4.3.1) creates, describes and
deletes `client-metrics` subscriptions; librdkafka (confluent-kafka, `enable.metrics.push` on by
default) and the Java clients 4.3.1 fetch them and push OTLP metrics, which appear on /metrics
labelled by client instance: the producers' record queue time and request latency, the
consumers' poll idle ratio. Short push intervals (100-500 ms) keep it fast."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client import parser

from interop import diff_client_metrics
from interop._common import unique_topic
from interop.adapters import java
from interop.adapters.java import TOOL_JVM, java_command
from kafkapy.protocol.messages.list_client_metrics_resources_request import ListClientMetricsResourcesRequest
from kafkapy.testing import BrokerProcess, free_port
from tests.server.rawclient import RawClient

_missing = java.available()
if _missing is not None:
    raise RuntimeError(f"interop/test_client_telemetry.py: {_missing} (scripts/test installs and builds it)")

Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, str]]:
    root = tmp_path_factory.mktemp("client-telemetry")
    port = free_port()
    b = BrokerProcess(
        root / "data",
        root / "broker.log",
        settings={"group.initial.rebalance.delay.ms": "0"},
        extra_args=["--metrics-listen", f"127.0.0.1:{port}"],
    ).start()
    try:
        yield b, f"http://127.0.0.1:{port}/metrics"
    finally:
        b.stop()


def kafka_configs(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = java_command("kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, *args, jvm_args=TOOL_JVM)
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
    return [(s.name, s.labels, s.value) for f in parser.text_string_to_metric_families(body) for s in f.samples]


def pushed(url: str, names: set[str], software: str, client_id: str) -> Samples:
    """The samples of `names` pushed by the client `client_id` of `software`; empty until all are there."""
    mine = [
        s
        for s in scrape(url)
        if s[0] in names and s[1].get("client_software_name") == software and s[1].get("client_id") == client_id
    ]
    return mine if {s[0] for s in mine} == names else []


def wait_for(url: str, names: set[str], software: str, client_id: str, timeout_s: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while not (found := pushed(url, names, software, client_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PRODUCER = {"kafka_client_producer_record_queue_time_avg", "kafka_client_producer_request_latency_avg"}
CONSUMER = {"kafka_client_consumer_poll_idle_ratio_avg"}


def test_answers_as_kafka(tmp_path_factory: pytest.TempPathFactory) -> None:
    """interop/diff_client_metrics.py's scenario: every answer as Apache Kafka 4.3.1's recorded ones."""
    golden = diff_client_metrics.load()
    root = tmp_path_factory.mktemp("client-metrics-diff")
    b = BrokerProcess(root / "data", root / "broker.log").start()
    try:
        answers = diff_client_metrics.run(b.bootstrap, settle_s=0.0)  # kafkapy applies a change before answering
    finally:
        b.stop()
    assert golden.pop("_meta") == {"kafka": "4.3.1"}
    differing = {
        k: (golden.get(k), answers.get(k)) for k in set(golden) | set(answers) if golden.get(k) != answers.get(k)
    }
    assert not differing, differing


def test_kafka_configs_subscriptions_and_librdkafka_pushes(broker: tuple[BrokerProcess, str]) -> None:
    b, url = broker
    cm = ("--entity-type", "client-metrics")
    out = kafka_configs(
        b.bootstrap,
        "--alter",
        *cm,
        "--entity-name",
        "rdkafka",
        "--add-config",
        "metrics=[org.apache.kafka.producer.,org.apache.kafka.consumer.],interval.ms=500,"
        "match=[client_software_name=confluent-kafka-python]",
    )
    assert out.returncode == 0 and "Completed updating config for client-metric rdkafka." in out.stdout, out.stderr
    out = kafka_configs(b.bootstrap, "--alter", *cm, "--entity-name", "rdkafka", "--add-config", "interval.ms=50")
    assert out.returncode == 1
    assert "InvalidRequestException: Invalid value 50 for interval.ms, interval must be between 100" in out.stderr
    out = kafka_configs(b.bootstrap, "--describe", *cm)  # every resource: ListConfigResources v1 first
    assert out.returncode == 0, out.stderr
    assert "Dynamic configs for client-metric rdkafka are:" in out.stdout
    assert "interval.ms=500 sensitive=false synonyms={DYNAMIC_CLIENT_METRICS_CONFIG:interval.ms=500}" in out.stdout
    assert "match=client_software_name=confluent-kafka-python" in out.stdout
    out = kafka_configs(b.bootstrap, "--describe", "--entity-type", "groups")  # ListConfigResources [GROUP]
    assert (out.returncode, out.stdout.strip()) == (0, ""), out.stderr  # no group has configs here

    topic = unique_topic("telemetry-rd")
    producer = Producer({"bootstrap.servers": b.bootstrap, "client.id": "rd-producer"})
    consumer = Consumer(
        {
            "bootstrap.servers": b.bootstrap,
            "client.id": "rd-consumer",
            "group.id": unique_topic("telemetry-g"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        produced: Samples = []
        consumed: Samples = []
        while time.monotonic() < deadline and not (produced and consumed):
            for _ in range(20):
                producer.produce(topic, b"x" * 100)
            producer.poll(0)
            consumer.poll(0.1)
            produced = produced or pushed(url, PRODUCER, "confluent-kafka-python", "rd-producer")
            consumed = consumed or pushed(url, CONSUMER, "confluent-kafka-python", "rd-consumer")
        assert {s[0] for s in produced} == PRODUCER, produced
        assert {s[0] for s in consumed} == CONSUMER, consumed
        for _, labels, value in produced + consumed:
            assert UUID_RE.fullmatch(labels["client_instance_id"]) and labels["client_software_version"]
            assert value >= 0
        assert len({s[1]["client_instance_id"] for s in produced + consumed}) == 2  # one instance per client
    finally:
        producer.flush(10)
        consumer.close()

    out = kafka_configs(
        b.bootstrap, "--alter", *cm, "--entity-name", "rdkafka", "--delete-config", "metrics,interval.ms,match"
    )
    assert out.returncode == 0, out.stderr
    with RawClient(b.bootstrap) as c:
        assert c.request(ListClientMetricsResourcesRequest(), 0).client_metrics_resources == []


def test_java_clients_push_their_metrics(broker: tuple[BrokerProcess, str]) -> None:
    b, url = broker
    out = kafka_configs(
        b.bootstrap,
        "--alter",
        "--entity-type",
        "client-metrics",
        "--entity-name",
        "java",
        "--add-config",
        "metrics=[org.apache.kafka.producer.,org.apache.kafka.consumer.],interval.ms=100,"
        "match=[client_software_name=apache-kafka-java]",
    )
    assert out.returncode == 0, out.stderr
    topic = unique_topic("telemetry-java")
    # a transactional producer stays open between driver calls, so it keeps pushing until we look
    java.call(
        "txn_init",
        b.bootstrap,
        handle="tele",
        transactional_id=unique_topic("tele-txn"),
        config={"client.id": "java-producer"},
    )
    try:
        java.call(
            "txn_send", b.bootstrap, handle="tele", topic=topic, records=[{"key": None, "value": java.b64(b"v")}] * 20
        )
        java.call("txn_end", b.bootstrap, handle="tele", commit=True)
        produced = wait_for(url, PRODUCER, "apache-kafka-java", "java-producer")
    finally:
        java.call("txn_close", b.bootstrap, handle="tele")
    assert {s[0] for s in produced} == PRODUCER, produced
    assert all(s[1]["client_software_version"] == "4.3.1" for s in produced)
    res = java.call(
        "group_consume",
        b.bootstrap,
        topic=topic,
        group=unique_topic("tele-jg"),
        count=20,
        timeout_ms=30000,
        config={"client.id": "java-consumer", "isolation.level": "read_committed"},
    )
    assert len(res["records"]) == 20
    consumed = wait_for(url, CONSUMER, "apache-kafka-java", "java-consumer")  # pushed while it ran and as it closed
    assert {s[0] for s in consumed} == CONSUMER, consumed
    [(_, labels, ratio)] = consumed
    assert 0.0 <= ratio <= 1.0 and UUID_RE.fullmatch(labels["client_instance_id"])
