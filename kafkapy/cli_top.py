"""`kafkapy top`: a terminal dashboard of brokers' /metrics endpoints (`--metrics-listen`).

Each refresh scrapes every endpoint (Prometheus text, parsed by prometheus_client) and shows rates
from the counters' change since the previous scrape: messages and bytes in/out per topic, p99
latency per request type, under-replicated and offline partitions, the active controller and the
consumer groups with the largest lag. An endpoint that does not answer is shown as down.

`--once` scrapes twice, `--interval` apart, prints one frame and exits. In the live view `q` (or
Ctrl-C) quits. Exit status: 0 ok, 1 no endpoint answered (--once), 2 bad usage.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

EXIT_ERROR = 1
EXIT_USAGE = 2

MESSAGES_IN = "kafka_server_brokertopicmetrics_messagesin_total"
BYTES_IN = "kafka_server_brokertopicmetrics_bytesin_total"
BYTES_OUT = "kafka_server_brokertopicmetrics_bytesout_total"
REQUESTS = "kafka_network_requestmetrics_requests_total"
TOTAL_TIME = "kafka_network_requestmetrics_totaltimems"
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"
ACTIVE_CONTROLLER = "kafka_controller_kafkacontroller_activecontrollercount"
OFFLINE = "kafka_controller_kafkacontroller_offlinepartitionscount"
LAG = "kafka_consumergroup_lag"

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Scrape:
    """One endpoint's samples at one moment (monotonic seconds); `error` is set when it was down."""

    url: str
    at: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    families: set[str] = field(default_factory=set)
    error: str | None = None

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name: str) -> Iterator[tuple[dict[str, str], float]]:
        for (n, labels), value in self.samples.items():
            if n == name:
                yield dict(labels), value


@dataclass(slots=True, frozen=True)
class TopicRates:
    topic: str
    messages_in: float
    bytes_in: float
    bytes_out: float


@dataclass(slots=True, frozen=True)
class Latency:
    request: str
    p99_ms: float
    requests_per_sec: float


@dataclass(slots=True, frozen=True)
class GroupLag:
    group: str
    lag: float
    partitions: int


@dataclass(slots=True, frozen=True)
class BrokerRow:
    url: str
    error: str | None
    controller: bool
    under_replicated: float
    messages_in: float


@dataclass(slots=True, frozen=True)
class Frame:
    """What one refresh shows; made from two scrapes of the same endpoints."""

    brokers: list[BrokerRow]
    topics: list[TopicRates]
    latencies: list[Latency]
    under_replicated: float
    offline: float
    controllers: list[str]
    lag: list[GroupLag] | None  # None: no endpoint exports kafka_consumergroup_lag
    seconds: float


def metrics_url(spec: str) -> str:
    """`host:port` or an http(s) URL; a URL without a path gets /metrics."""
    url = spec if "://" in spec else f"http://{spec}"
    scheme, _, rest = url.partition("://")
    if "/" not in rest:
        url = f"{scheme}://{rest}/metrics"
    return url


def short(url: str) -> str:
    """An endpoint as shown: without the scheme and a /metrics path."""
    rest = url.partition("://")[2] or url
    return rest.removesuffix("/metrics")


def parse_scrape(url: str, text: str, at: float) -> Scrape:
    scrape = Scrape(url=url, at=at)
    for family in text_string_to_metric_families(text):
        scrape.families.add(family.name)
        for s in family.samples:
            scrape.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return scrape


def fetch(url: str, timeout: float) -> Scrape:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read().decode()
        return parse_scrape(url, body, time.monotonic())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        text = getattr(reason, "strerror", None) or str(reason)
        return Scrape(url=url, at=time.monotonic(), error=text)


def fetch_all(urls: Sequence[str], timeout: float) -> list[Scrape]:
    """Every endpoint at once, so one that hangs costs `timeout` once, not per endpoint."""
    with ThreadPoolExecutor(max_workers=min(len(urls), 16)) as pool:
        return list(pool.map(lambda u: fetch(u, timeout), urls))


def _rate(after: float, before: float, seconds: float) -> float:
    # a counter that went down was reset (the broker restarted): count from zero
    delta = after - before if after >= before else after
    return delta / seconds if seconds > 0 else 0.0


def compute_frame(before: Sequence[Scrape], after: Sequence[Scrape], top: int = 10) -> Frame:
    """Rates between two scrapes of the same endpoints (matched by URL); gauges from `after`."""
    previous = {s.url: s for s in before if s.error is None}
    topics: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    p99: dict[str, float] = {}
    request_rates: dict[str, float] = defaultdict(float)
    lag: dict[tuple[str, str, str], float] = {}
    lag_exported = False
    brokers: list[BrokerRow] = []
    controllers: list[str] = []
    under_replicated = offline = 0.0
    seconds = 0.0
    for cur in after:
        if cur.error is not None:
            brokers.append(BrokerRow(cur.url, cur.error, False, 0.0, 0.0))
            continue
        prev = previous.get(cur.url)
        dt = cur.at - prev.at if prev is not None else 0.0
        seconds = max(seconds, dt)
        messages = 0.0  # this broker's, the sum of its topics' (the all-topics series may lag a scrape)
        for i, name in enumerate((MESSAGES_IN, BYTES_IN, BYTES_OUT)):
            for labels, value in cur.series(name):
                if "topic" not in labels:
                    continue
                row = topics[labels["topic"]]  # listed from the first scrape, rates from the second
                if prev is not None:
                    rate = _rate(value, prev.get(name, **labels), dt)
                    row[i] += rate
                    messages += rate if name == MESSAGES_IN else 0.0
        for labels, value in cur.series(REQUESTS):
            if "request" in labels and prev is not None:
                request_rates[labels["request"]] += _rate(value, prev.get(REQUESTS, **labels), dt)
        for labels, value in cur.series(TOTAL_TIME):
            if labels.get("quantile") == "0.99" and "request" in labels and not math.isnan(value):
                p99[labels["request"]] = max(p99.get(labels["request"], 0.0), value)
        if LAG in cur.families:
            lag_exported = True
            for labels, value in cur.series(LAG):
                key = (labels.get("consumergroup", ""), labels.get("topic", ""), labels.get("partition", ""))
                lag[key] = max(lag.get(key, 0.0), value)  # a partition reported by several brokers
        is_controller = cur.get(ACTIVE_CONTROLLER) >= 1
        if is_controller:
            controllers.append(cur.url)
        urp = cur.get(UNDER_REPLICATED)
        under_replicated += urp  # each broker counts the partitions it leads
        offline = max(offline, cur.get(OFFLINE))  # the controller's view; others report 0
        brokers.append(BrokerRow(cur.url, None, is_controller, urp, messages))
    topic_rows = sorted(
        (TopicRates(t, *v) for t, v in topics.items()),
        key=lambda r: (-r.messages_in, -(r.bytes_in + r.bytes_out), r.topic),
    )[:top]
    # the busiest request types first: a long poll's p99 (JoinGroup, an idle Fetch) is its wait
    latency_rows = sorted(
        (Latency(r, v, request_rates.get(r, 0.0)) for r, v in p99.items()),
        key=lambda r: (-r.requests_per_sec, -r.p99_ms, r.request),
    )[:top]
    group_rows: list[GroupLag] | None = None
    if lag_exported:
        per_group: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for (group, _, _), value in lag.items():
            per_group[group][0] += value
            per_group[group][1] += 1
        group_rows = sorted(
            (GroupLag(g, v[0], int(v[1])) for g, v in per_group.items()), key=lambda r: (-r.lag, r.group)
        )[:top]
    return Frame(brokers, topic_rows, latency_rows, under_replicated, offline, controllers, group_rows, seconds)


def human_bytes(rate: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(rate) < 1024 or unit == "GiB":
            return f"{rate:.0f} {unit}/s" if unit == "B" else f"{rate:.1f} {unit}/s"
        rate /= 1024
    raise AssertionError("unreachable")


def render(frame: Frame, refresh: int | None = None) -> RenderableType:
    up = sum(1 for b in frame.brokers if b.error is None)
    clock = time.strftime("%H:%M:%S")
    head = Text.assemble(
        ("kafkapy top", "bold"),
        f"  {clock}",
        f"  refresh #{refresh}" if refresh is not None else "",
        f"  brokers up {up}/{len(frame.brokers)}",
        f"  rates over {frame.seconds:.1f}s",
    )
    urp_style = "bold red" if frame.under_replicated else "green"
    offline_style = "bold red" if frame.offline else "green"
    ctl_style = "green" if len(frame.controllers) == 1 else "bold red"
    controller = ", ".join(short(u) for u in frame.controllers) if frame.controllers else "none"
    health = Text.assemble(
        "under-replicated: ",
        (f"{frame.under_replicated:.0f}", urp_style),
        "  offline: ",
        (f"{frame.offline:.0f}", offline_style),
        "  controller: ",
        (controller, ctl_style),
    )

    brokers = Table(title="brokers", title_justify="left", expand=False)
    for col in ("endpoint", "state", "controller", "under-repl.", "msgs in/s"):
        brokers.add_column(col, justify="left" if col in ("endpoint", "state") else "right")
    for b in frame.brokers:
        state = Text("up", "green") if b.error is None else Text(f"DOWN ({b.error})", "bold red")
        ctl = "yes" if b.controller else ""
        brokers.add_row(short(b.url), state, ctl, f"{b.under_replicated:.0f}", f"{b.messages_in:.1f}")

    topics = Table(title="topics", title_justify="left")
    topics.add_column("topic")
    for col in ("msgs in/s", "bytes in/s", "bytes out/s"):
        topics.add_column(col, justify="right")
    for t in frame.topics:
        topics.add_row(t.topic, f"{t.messages_in:.1f}", human_bytes(t.bytes_in), human_bytes(t.bytes_out))

    latency = Table(title="request latency", title_justify="left")
    latency.add_column("request")
    latency.add_column("p99 ms", justify="right")
    latency.add_column("req/s", justify="right")
    for r in frame.latencies:
        latency.add_row(r.request, f"{r.p99_ms:.2f}", f"{r.requests_per_sec:.1f}")

    parts: list[RenderableType] = [head, health, brokers, topics, latency]
    if frame.lag is None:
        parts.append(Text("lag: not exported"))
    else:
        lag = Table(title="consumer lag", title_justify="left")
        lag.add_column("group")
        lag.add_column("lag", justify="right")
        lag.add_column("partitions", justify="right")
        for g in frame.lag:
            lag.add_row(g.group, f"{g.lag:.0f}", str(g.partitions))
        parts.append(lag)
    return Group(*parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        metavar="URL[,URL...]",
        required=True,
        help="each broker's metrics endpoint (its --metrics-listen): HOST:PORT or http://HOST:PORT/metrics",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1.0)")
    parser.add_argument("--once", action="store_true", help="print one frame (rates over --interval) and exit")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="rows per table (default 10)")


@contextmanager
def _keys() -> Iterator[int | None]:
    """stdin in cbreak mode (keys arrive unbuffered, unechoed) while the live view runs."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_within(fd: int | None, seconds: float) -> bool:
    """Wait up to `seconds`; True if `q` was pressed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if fd is None:
            time.sleep(left)
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready and os.read(fd, 1) in (b"q", b"Q"):
            return True
    return False


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0 or args.top <= 0:
        print("kafkapy top: error: --interval and --top must be positive", file=sys.stderr)
        return EXIT_USAGE
    urls = [metrics_url(u.strip()) for u in args.metrics.split(",") if u.strip()]
    if not urls:
        print("kafkapy top: error: --metrics needs at least one endpoint", file=sys.stderr)
        return EXIT_USAGE
    timeout = max(0.5, min(args.interval, 5.0))
    console = Console()
    if args.once:
        before = fetch_all(urls, timeout)
        time.sleep(args.interval)
        after = fetch_all(urls, timeout)
        console.print(render(compute_frame(before, after, args.top)))
        return 0 if any(s.error is None for s in after) else EXIT_ERROR
    from rich.live import Live

    try:
        with _keys() as fd, Live(console=console, screen=True, auto_refresh=False) as live:
            live.update(Text("kafkapy top: first scrape ... (q quits)"), refresh=True)
            previous = fetch_all(urls, timeout)
            refresh = 0
            while not _quit_within(fd, args.interval):
                current = fetch_all(urls, timeout)
                refresh += 1
                frame = Group(render(compute_frame(previous, current, args.top), refresh), Text("q quits", "dim"))
                live.update(frame, refresh=True)
                previous = current
    except KeyboardInterrupt:
        pass
    return 0
