"""`kafkapy top`: the frame computed from canned scrapes, `--once` against a real broker, and the
live view in a real terminal (tmux), as a person would use it."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

import kafkapy.pytest_plugin
from kafkapy.cli_top import Scrape, compute_frame, metrics_url, parse_scrape, render, short
from kafkapy.testing import BrokerProcess, free_port

# the plugin's fixtures, for runs where its pytest11 entry point is not installed
kafka_broker_factory = kafkapy.pytest_plugin.kafka_broker_factory

ROOT = str(Path(__file__).resolve().parent.parent)

A0 = """\
# TYPE kafka_server_brokertopicmetrics_messagesin_total counter
kafka_server_brokertopicmetrics_messagesin_total{topic="orders"} 100
kafka_server_brokertopicmetrics_messagesin_total{topic="audit"} 10
kafka_server_brokertopicmetrics_messagesin_total 110
# TYPE kafka_server_brokertopicmetrics_bytesin_total counter
kafka_server_brokertopicmetrics_bytesin_total{topic="orders"} 10000
kafka_server_brokertopicmetrics_bytesin_total 10000
# TYPE kafka_server_brokertopicmetrics_bytesout_total counter
kafka_server_brokertopicmetrics_bytesout_total{topic="orders"} 5000
# TYPE kafka_network_requestmetrics_requests_total counter
kafka_network_requestmetrics_requests_total{request="Produce",version="9"} 40
kafka_network_requestmetrics_requests_total{request="Produce",version="10"} 60
# TYPE kafka_network_requestmetrics_totaltimems summary
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.50"} 1.0
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"} 7.5
kafka_network_requestmetrics_totaltimems{request="Fetch",quantile="0.99"} 501.0
# TYPE kafka_server_replicamanager_underreplicatedpartitions gauge
kafka_server_replicamanager_underreplicatedpartitions 0
# TYPE kafka_controller_kafkacontroller_activecontrollercount gauge
kafka_controller_kafkacontroller_activecontrollercount 1
# TYPE kafka_controller_kafkacontroller_offlinepartitionscount gauge
kafka_controller_kafkacontroller_offlinepartitionscount 0
# TYPE kafka_consumergroup_lag gauge
kafka_consumergroup_lag{consumergroup="billing",topic="orders",partition="0"} 5
"""

# two seconds later: orders +300 messages, audit unchanged, 250 more Produce requests
A1 = (
    A0.replace('{topic="orders"} 100', '{topic="orders"} 400')
    .replace('{topic="orders"} 10000', '{topic="orders"} 40000')
    .replace('{topic="orders"} 5000', '{topic="orders"} 9000')
    .replace('version="10"} 60', 'version="10"} 310')
    .replace('"0.99"} 7.5', '"0.99"} 12.5')
    .replace('partition="0"} 5', 'partition="0"} 50')
    .replace("offlinepartitionscount 0", "offlinepartitionscount 2")
)

# a second broker: a follower (no controller), one under-replicated partition it leads, the same
# partition's lag reported again (counted once) and one more partition of the group
B0 = """\
# TYPE kafka_server_brokertopicmetrics_messagesin_total counter
kafka_server_brokertopicmetrics_messagesin_total{topic="orders"} 1000
# TYPE kafka_network_requestmetrics_totaltimems summary
kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"} 30.0
# TYPE kafka_server_replicamanager_underreplicatedpartitions gauge
kafka_server_replicamanager_underreplicatedpartitions 1
# TYPE kafka_controller_kafkacontroller_activecontrollercount gauge
kafka_controller_kafkacontroller_activecontrollercount 0
# TYPE kafka_consumergroup_lag gauge
kafka_consumergroup_lag{consumergroup="billing",topic="orders",partition="0"} 50
kafka_consumergroup_lag{consumergroup="billing",topic="orders",partition="1"} 7
kafka_consumergroup_lag{consumergroup="search",topic="orders",partition="1"} 100
"""
B1 = B0.replace('{topic="orders"} 1000', '{topic="orders"} 1100')

NO_LAG = "\n".join(line for line in A0.splitlines() if "consumergroup_lag" not in line)


def text_of(frame_renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(frame_renderable)
    return out.getvalue()


def test_frame_from_two_scrapes_of_two_brokers_and_one_down() -> None:
    before = [parse_scrape("http://a/metrics", A0, 10.0), parse_scrape("http://b/metrics", B0, 10.0)]
    down = Scrape(url="http://c/metrics", at=12.0, error="Connection refused")
    after = [parse_scrape("http://a/metrics", A1, 12.0), parse_scrape("http://b/metrics", B1, 12.0), down]
    frame = compute_frame(before, after, top=10)

    assert frame.seconds == 2.0
    # orders: (300 + 100) / 2 s over both brokers; audit stayed at 10
    assert [(t.topic, t.messages_in) for t in frame.topics] == [("orders", 200.0), ("audit", 0.0)]
    orders = frame.topics[0]
    assert (orders.bytes_in, orders.bytes_out) == (15000.0, 2000.0)
    # the largest p99 of any broker per request, busiest first; Produce's rate sums its versions
    assert [(r.request, r.p99_ms) for r in frame.latencies] == [("Produce", 30.0), ("Fetch", 501.0)]
    assert frame.latencies[0].requests_per_sec == 125.0
    assert frame.under_replicated == 1 and frame.offline == 2
    assert frame.controllers == ["http://a/metrics"]
    assert frame.lag is not None
    assert [(g.group, g.lag, g.partitions) for g in frame.lag] == [("search", 100.0, 1), ("billing", 57.0, 2)]
    assert [(b.url, b.error) for b in frame.brokers][2] == ("http://c/metrics", "Connection refused")
    assert [b.messages_in for b in frame.brokers] == [150.0, 50.0, 0.0]

    text = text_of(render(frame))
    assert "brokers up 2/3" in text and "DOWN (Connection refused)" in text
    assert "under-replicated: 1" in text and "offline: 2" in text and "controller: a" in text
    assert re.search(r"orders\s*│\s*200\.0\s*│\s*14\.6 KiB/s\s*│\s*2\.0 KiB/s", text), text
    assert re.search(r"search\s*│\s*100\s*│\s*1", text) and "lag: not exported" not in text


def test_frame_without_lag_metric_restarted_counter_and_top() -> None:
    restarted = A0.replace('{topic="orders"} 100', '{topic="orders"} 30')  # went down: counts from 0
    frame = compute_frame([parse_scrape("u", A0, 0.0)], [parse_scrape("u", restarted, 1.0)], top=1)
    assert [(t.topic, t.messages_in) for t in frame.topics] == [("orders", 30.0)]
    assert len(frame.latencies) == 1
    frame = compute_frame([parse_scrape("u", NO_LAG, 0.0)], [parse_scrape("u", NO_LAG, 1.0)])
    assert frame.lag is None and "lag: not exported" in text_of(render(frame))
    # the first scrape failed: no rates yet, gauges still shown
    frame = compute_frame([Scrape(url="u", at=0.0, error="timed out")], [parse_scrape("u", A1, 1.0)])
    assert frame.topics[0].messages_in == 0.0 and frame.offline == 2
    no_controller = compute_frame([], [Scrape(url="u", at=0.0, error="refused")])
    assert no_controller.controllers == [] and "controller: none" in text_of(render(no_controller))


def test_metrics_url_forms() -> None:
    assert metrics_url("127.0.0.1:9404") == "http://127.0.0.1:9404/metrics"
    assert metrics_url("http://h:1") == "http://h:1/metrics"
    assert metrics_url("https://h:1/custom") == "https://h:1/custom"
    assert short("http://h:1/metrics") == "h:1"


def run_top(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "kafkapy", "top", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def produce_for(bootstrap: str, topic: str, seconds: float, stop: threading.Event) -> None:
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        producer.produce(topic, value=b"v" * 100)
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(10)


@pytest.fixture
def broker_with_metrics(kafka_broker_factory) -> tuple[BrokerProcess, str]:  # type: ignore[no-untyped-def]
    port = free_port()
    broker: BrokerProcess = kafka_broker_factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
    return broker, f"127.0.0.1:{port}"


def test_once_against_a_real_broker(broker_with_metrics: tuple[BrokerProcess, str]) -> None:
    pytest.importorskip("confluent_kafka")
    broker, endpoint = broker_with_metrics
    stop = threading.Event()
    # produces until the frame is printed (a loaded machine may start the CLI slowly)
    producer = threading.Thread(target=produce_for, args=(broker.bootstrap, "top-orders", 30.0, stop))
    producer.start()
    try:
        time.sleep(1.0)  # the topic exists and records flow before the first scrape
        down = f"127.0.0.1:{free_port()}"
        result = run_top("--metrics", f"{endpoint},{down}", "--once", "--interval", "1.0")
    finally:
        stop.set()
        producer.join()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    row = re.search(r"top-orders\s*│\s*([0-9.]+)\s*│", out)
    assert row is not None, out
    assert float(row.group(1)) > 0, out
    assert "brokers up 1/2" in out and "DOWN" in out and f"controller: {endpoint}" in out
    assert re.search(r"Produce\s*│\s*[0-9.]+\s*│\s*[1-9]", out), out  # p99 and a non-zero request rate
    assert "consumer lag" in out or "lag: not exported" in out
    # nothing answers: exit status 1, the frame still printed
    nothing = run_top("--metrics", down, "--once", "--interval", "0.1")
    assert nothing.returncode == 1 and "brokers up 0/1" in nothing.stdout


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=True).stdout


def wait_for_pane(socket: str, pattern: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux(socket, "capture-pane", "-p", "-t", "top")
        if re.search(pattern, screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not on the screen:\n{screen}")


def test_live_view_in_tmux(broker_with_metrics: tuple[BrokerProcess, str]) -> None:
    assert shutil.which("tmux"), "tmux is needed (scripts/test installs it)"
    _, endpoint = broker_with_metrics
    socket = f"kafkapy-top-{os.getpid()}"
    top = f"env PYTHONPATH={ROOT} {sys.executable} -m kafkapy top --metrics {endpoint} --interval 0.3"
    # quit with q, then a second run ended by Ctrl-C
    command = f"{top}; echo TOP-EXIT=$?; {top}; echo CTRL-C-EXIT=$?; sleep 30"
    tmux(socket, "new-session", "-d", "-s", "top", "-x", "120", "-y", "50", command)
    try:
        first = wait_for_pane(socket, r"refresh #\d+")
        assert "brokers up 1/1" in first and "request latency" in first, first
        shown = int(re.findall(r"refresh #(\d+)", first)[0])
        later = wait_for_pane(socket, rf"refresh #(?!{shown}\b)\d+")  # the view refreshes by itself
        assert "under-replicated: 0" in later, later
        tmux(socket, "send-keys", "-t", "top", "q")
        after = wait_for_pane(socket, r"TOP-EXIT=\d+")
        assert "TOP-EXIT=0" in after, after
        assert "kafkapy top" not in after, after  # the dashboard's screen is gone, the terminal restored
        wait_for_pane(socket, r"refresh #\d+")
        tmux(socket, "send-keys", "-t", "top", "C-c")
        after = wait_for_pane(socket, r"CTRL-C-EXIT=\d+")
        assert "CTRL-C-EXIT=0" in after and "Traceback" not in after, after
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)
