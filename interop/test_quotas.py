"""Client quotas against a kafkapy broker process (docs/quotas.md).

- The raw-request scenario of interop/diff_quotas.py gives the answers Apache Kafka 4.3.1 gave
  (golden file): AlterClientQuotas validation, DescribeClientQuotas matching, and the shape of
  enforcement (throttle times, KIP-219 muting, empty throttled fetches, THROTTLING_QUOTA_EXCEEDED).
- Kafka's kafka-configs tool (kafka.admin.ConfigCommand, Java admin 4.3.1) sets, describes and deletes
  quotas of clients, the default client, users and (user, client-id) pairs, unchanged.
- librdkafka, kafka-python and the Java producer (Kafka's ProducerPerformance) under a 1 MB/s
  producer_byte_rate each see throttle times and are held near the rate (6 MB take ~5 s instead of
  well under one); librdkafka's consumer the same under consumer_byte_rate.
- A quota on a user governs the connections authenticated (SASL PLAIN) as that user, and the user's
  (user, client-id) pair takes precedence over it.

The broker runs with quota.window.num=2 (2 samples of 1 s), as the golden scenario, so the burst a
client gets before the first throttle is about one second's worth.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import diff_quotas as dq
from interop._common import BrokerProcess, listener_port, start_broker, unique_topic
from interop.adapters.java import TOOL_JVM, java_command

RATE = 1_000_000  # bytes per second
TOTAL = 6_000_000  # 6 MB: ~1 s of burst, then ~5 s at the rate
RECORD = 10_000


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = start_broker(tmp_path_factory.mktemp("quotas") / "data", dict(dq.SETTINGS))
    try:
        yield b
    finally:
        b.stop()


def test_answers_as_kafka(broker: BrokerProcess) -> None:
    golden = dq.load()
    answers = {k: v for k, v in dq.run(broker.bootstrap, settle=0.1).items() if not k.startswith("_")}
    differences = {k: (answers.get(k), golden.get(k)) for k in golden.keys() | answers.keys()}
    differences = {k: v for k, v in differences.items() if v[0] != v[1]}
    assert not differences, json.dumps(differences, indent=1, sort_keys=True)


# Kafka's ConfigCommand run several times in one JVM (a JVM start is seconds on a busy machine): the
# argument lists are separated by "--next"; ConfigCommand.main returns after a command that succeeded
# and exits 1 after one that failed
MANY_CONFIG_COMMANDS = """
import java.util.ArrayList;
import java.util.List;

public class ManyConfigCommands {
    public static void main(String[] args) throws Exception {
        List<String> current = new ArrayList<>();
        for (String a : args) {
            if (a.equals("--next")) { run(current); current = new ArrayList<>(); } else { current.add(a); }
        }
        run(current);
    }

    static void run(List<String> args) throws Exception {
        System.out.println("=== " + String.join(" ", args));
        System.out.flush();
        kafka.admin.ConfigCommand.main(args.toArray(new String[0]));
        System.out.flush();
    }
}
"""


def kafka_configs(broker: BrokerProcess, tmp: Path, *commands: list[str]) -> list[str]:
    """Each command's standard output, in order."""
    source = tmp / "ManyConfigCommands.java"
    source.write_text(MANY_CONFIG_COMMANDS)
    args: list[str] = []
    for i, command in enumerate(commands):
        args += (["--next"] if i else []) + ["--bootstrap-server", broker.bootstrap, *command]
    cmd = java_command(str(source), *args, jvm_args=TOOL_JVM)
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return [part.partition("\n")[2] for part in out.stdout.split("=== ")[1:]]


PAIR = ["--entity-type", "users", "--entity-name", "tool-alice", "--entity-type", "clients", "--entity-name", "tool-c1"]
CLIENT = ["--entity-type", "clients", "--entity-name", "tool-c1"]
DEFAULT_CLIENT = ["--entity-type", "clients", "--entity-default"]


def test_kafka_configs_tool(broker: BrokerProcess, tmp_path: Path) -> None:
    outputs = kafka_configs(
        broker,
        tmp_path,
        ["--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048", *CLIENT],
        ["--alter", "--add-config", "request_percentage=12.5", *DEFAULT_CLIENT],
        ["--alter", "--add-config", "controller_mutation_rate=3", *PAIR],
        ["--alter", "--add-config", "consumer_byte_rate=4096", "--entity-type", "users", "--entity-name", "tool-bob"],
        ["--alter", "--delete-config", "consumer_byte_rate", *CLIENT],
        ["--describe", *CLIENT],
        ["--describe", *DEFAULT_CLIENT],
        ["--describe", "--entity-type", "users", "--entity-name", "tool-alice", "--entity-type", "clients"],
        ["--describe", "--entity-type", "users", "--entity-name", "tool-bob"],
    )
    described = "".join(outputs[5:])
    assert "Quota configs for client-id 'tool-c1' are producer_byte_rate=1024.0" in outputs[5], described
    assert "consumer_byte_rate" not in outputs[5]
    assert "Quota configs for the default client-id are request_percentage=12.5" in outputs[6], described
    assert (
        "Quota configs for user-principal 'tool-alice', client-id 'tool-c1' are controller_mutation_rate=3.0"
        in outputs[7]
    ), described
    assert "Quota configs for user-principal 'tool-bob' are consumer_byte_rate=4096.0" in outputs[8], described
    # what the tool wrote is what the broker serves (and the kafkapy CLI shows)
    cli = subprocess.run(
        ["python", "-m", "kafkapy", "quotas", "describe", "--client-id", "tool-c1", "-b", broker.bootstrap],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "client-id=tool-c1\tproducer_byte_rate=1024" in cli, cli
    assert "client-id=tool-c1 user=tool-alice\tcontroller_mutation_rate=3" in cli, cli
    outputs = kafka_configs(
        broker,
        tmp_path,
        ["--alter", "--delete-config", "request_percentage", *DEFAULT_CLIENT],
        ["--alter", "--delete-config", "controller_mutation_rate", *PAIR],
        ["--alter", "--delete-config", "producer_byte_rate", *CLIENT],
        ["--alter", "--delete-config", "consumer_byte_rate", "--entity-type", "users", "--entity-name", "tool-bob"],
        ["--describe", "--entity-type", "clients"],
        ["--describe", "--entity-type", "users"],
    )
    assert "Quota configs" not in outputs[4] + outputs[5], outputs


def set_quota(broker: BrokerProcess, client_id: str, key: str, value: int) -> None:
    subprocess.run(
        [
            "python",
            "-m",
            "kafkapy",
            "quotas",
            "set",
            "--client-id",
            client_id,
            f"{key}={value}",
            "-b",
            broker.bootstrap,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def create_topic(broker: BrokerProcess, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def held_to_rate(elapsed: float, total: int, rate: int, slowest: float = 2.5) -> None:
    """`total` bytes in `elapsed` s: at the rate after a burst of about one window (not faster, and not
    throttled to a crawl either: at most `slowest` times the time the rate gives)."""
    expected = (total - rate) / rate
    assert 0.7 * expected <= elapsed <= slowest * expected + 2, (elapsed, expected)


def test_librdkafka_producer_and_consumer_throttled(broker: BrokerProcess) -> None:
    from confluent_kafka import Consumer, Producer

    topic = unique_topic("quota-rdkafka")
    create_topic(broker, topic)
    set_quota(broker, "rd-producer", "producer_byte_rate", RATE)
    set_quota(broker, "rd-consumer", "consumer_byte_rate", RATE)
    throttles: list[int] = []
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "rd-producer",
            "linger.ms": 5,
            "throttle_cb": lambda event: throttles.append(int(event.throttle_time * 1000)),
        }
    )
    began = time.monotonic()
    for _ in range(TOTAL // RECORD):
        while True:
            try:
                p.produce(topic, b"x" * RECORD)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    held_to_rate(time.monotonic() - began, TOTAL, RATE)
    assert throttles and max(throttles) > 0, throttles

    consumer_throttles: list[int] = []
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "rd-consumer",
            "group.id": unique_topic("g"),
            "auto.offset.reset": "earliest",
            "throttle_cb": lambda event: consumer_throttles.append(int(event.throttle_time * 1000)),
        }
    )
    c.subscribe([topic])
    got, began = 0, time.monotonic()
    try:
        while got < TOTAL and time.monotonic() - began < 60:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got += len(m.value() or b"")
        elapsed = time.monotonic() - began
    finally:
        c.close()
    assert got >= TOTAL
    # a throttled fetch is answered empty and the next one waits out the throttle, as in Kafka: with
    # 2 samples of 1 s a consumer gets between half the quota and the quota
    held_to_rate(elapsed, TOTAL, RATE, slowest=4)
    assert consumer_throttles and max(consumer_throttles) > 0


def test_kafka_python_producer_throttled(broker: BrokerProcess) -> None:
    from kafka import KafkaProducer

    topic = unique_topic("quota-kpy")
    create_topic(broker, topic)
    set_quota(broker, "kpy-producer", "producer_byte_rate", RATE)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="kpy-producer", linger_ms=5)
    began = time.monotonic()
    try:
        for _ in range(TOTAL // RECORD):
            p.send(topic, b"x" * RECORD)
        p.flush(60)
        elapsed = time.monotonic() - began
        metrics: dict[str, Any] = p.metrics()
    finally:
        p.close()
    held_to_rate(elapsed, TOTAL, RATE)
    throttle_max = [v for group in metrics.values() for k, v in group.items() if k.endswith("throttle-time-max")]
    assert throttle_max and max(throttle_max) > 0, metrics


def test_java_producer_throttled(broker: BrokerProcess) -> None:
    topic = unique_topic("quota-java")
    create_topic(broker, topic)
    set_quota(broker, "java-producer", "producer_byte_rate", RATE)
    cmd = java_command(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(TOTAL // RECORD),
        "--record-size",
        str(RECORD),
        "--throughput",
        "-1",
        "--print-metrics",
        "--producer-props",
        f"bootstrap.servers={broker.bootstrap}",
        "client.id=java-producer",
        "linger.ms=5",
        jvm_args=TOOL_JVM,
    )
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = re.search(r"(\d+) records sent, [\d.]+ records/sec \(([\d.]+) MB/sec\)", out.stdout)
    assert summary is not None, out.stdout
    mb_per_s = float(summary.group(2))
    throttle_max = re.search(
        r"producer-metrics:produce-throttle-time-max:\{client-id=java-producer\}\s*:\s*([\d.]+)", out.stdout
    )
    assert throttle_max is not None and float(throttle_max.group(1)) > 0, out.stdout[-3000:]
    # ProducerPerformance's MB is 2**20 bytes; the rate over the run includes the first burst
    assert mb_per_s * 2**20 <= 1.6 * RATE, mb_per_s


def test_user_quotas_follow_the_sasl_principal(tmp_path: Path) -> None:
    """A quota on user alice governs connections authenticated as User:alice (SASL PLAIN), not admin's;
    alice's (user, client-id) pair takes precedence over her user quota."""
    from interop.differential import create, produce, topic
    from tests.security.test_sasl_server import authenticate_plain, sasl_settings
    from tests.server.rawclient import RawClient

    b = start_broker(tmp_path / "data", sasl_settings(**dq.SETTINGS))
    try:
        internal = f"127.0.0.1:{listener_port(b.log_path, 'INTERNAL')}"
        with RawClient(internal) as c:
            dq.request(c, create(topic("sasl-quota", 1, 1)), 5)
            answers = dq.alter(
                c,
                ([("user", "alice")], [("producer_byte_rate", 20_000, False)]),
                ([("user", "alice"), ("client-id", "fast")], [("producer_byte_rate", 10**9, False)]),
            )
            assert [a["error"] for a in answers] == [0, 0]
        data = dq.batch(10_000)

        def max_throttle(user: str, password: str, client_id: str) -> int:
            with RawClient(b.bootstrap) as s:
                assert authenticate_plain(s, user, password).error_code == 0  # type: ignore[attr-defined]
                return max(
                    dq.request(s, produce("sasl-quota", 0, data), 9, client_id=client_id).throttle_time_ms
                    for _ in range(4)
                )

        assert max_throttle("alice", "alice-secret", "slow") > 0
        assert max_throttle("alice", "alice-secret", "fast") == 0
        assert max_throttle("admin", "admin-secret", "slow") == 0
    finally:
        b.stop()
