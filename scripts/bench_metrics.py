#!/usr/bin/env python3
"""`scripts/bench metrics`: what the metrics endpoint costs a kafkapy broker's produce path.

Two kafkapy brokers on 127.0.0.1, the same code: "off" (no kafkapy.metrics.listen: no counters kept,
prometheus_client not imported) and "on" (--metrics-listen on a free port, every counter kept, and
a separate process scraping /metrics every --scrape-interval seconds while the produce runs: 1 s by
default, far more often than Prometheus' usual 15-60 s, so the scrapes' own CPU shows).

Load: this process writes --mb MB of --size B records to one partition, --batch-records records per
batch, one batch per Produce request (v8, acks=1), --inflight requests pipelined on one connection
(the request is built once and sent again and again, so the client's CPU stays small on a shared
machine; scripts/bench_waiters.py's producer). Small batches make the per-request cost of the
counters and the request timing weigh more than in a typical load: a pessimistic setting.

Rounds alternate which broker goes first; reported as medians over --repeats rounds: produce MB/s,
broker CPU ms per MB (utime+stime of the broker PID from /proc), the ratio of the medians on / off
and the median of each round's ratio. The issue's target (#16): within 3 %.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import asyncio

import bench_broker as bb
import bench_waiters as bw

from kafkapy.client import KafkaClient

_SCRAPER = """
import signal, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
n = size = 0
def done(*_):
    print(n, size, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    with urllib.request.urlopen(url, timeout=10) as resp:
        size = len(resp.read())
    n += 1
    time.sleep(interval)
"""


class Scraper:
    """GET /metrics every `interval` seconds from a separate process (as Prometheus would: a thread here
    would take the producer's GIL and change its pacing) until stopped; counts scrapes."""

    def __init__(self, url: str, interval: float) -> None:
        self.url, self.interval = url, interval
        self.scrapes = self.bytes = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Scraper:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SCRAPER, self.url, str(self.interval)], stdout=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=15)
        n, size = out.split()
        self.scrapes, self.bytes = int(n), int(n) * int(size)


async def create_topic(port: int) -> None:
    async with KafkaClient(f"{bb.HOST}:{port}") as client:
        await client.create_topic(bw.LOAD_TOPIC, partitions=1, replication_factor=1)
        await client.wait_for_topic(bw.LOAD_TOPIC)


def scrape_cost(partitions: int, scrapes: int) -> int:
    """One broker with the endpoint, a topic of `partitions` partitions (one record each) and a group that
    committed an offset on every one: broker CPU and wall time per scrape, and its size."""
    import confluent_kafka

    bb.compile_kafkapy()
    root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    metrics_port = bb.free_port()

    def argv_on(port: int, data_dir: Path) -> list[str]:
        return [*bb.kafkapy_argv(port, data_dir), "--metrics-listen", f"{bb.HOST}:{metrics_port}"]

    broker = bb.Broker("on", "kafkapy", argv_on, root, deadline_s=120)
    try:
        broker.start()

        # topics of at most 1000 partitions: one CreateTopics of 10,000 takes longer than the client waits
        sizes = [min(1000, partitions - i) for i in range(0, partitions, 1000)]
        names = [f"wide-{i}" for i in range(len(sizes))]

        async def create() -> None:
            async with KafkaClient(broker.bootstrap) as client:
                for name, n in zip(names, sizes):
                    await client.create_topic(name, partitions=n, replication_factor=1)
                    await client.wait_for_topic(name, timeout_ms=120_000)

        t0 = time.perf_counter()
        asyncio.run(create())
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
        tps = [(name, p) for name, n in zip(names, sizes) for p in range(n)]
        for name, p in tps:
            producer.produce(name, b"x", partition=p)
        assert producer.flush(120) == 0
        consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wide-group"})
        consumer.commit(offsets=[confluent_kafka.TopicPartition(name, p, 1) for name, p in tps], asynchronous=False)
        consumer.close()
        print(
            f"set-up: {partitions} partitions, one record and one committed offset each, {time.perf_counter() - t0:.1f} s"
        )
        url = f"http://{bb.HOST}:{metrics_port}/metrics"

        def pings(seconds: float) -> list[float]:
            """ApiVersions round trips (ms) on a connection of their own, back to back: how long the
            broker's event loop keeps a request waiting."""
            out, end = [], time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                bb.api_versions_ok(broker.port, timeout=5)
                out.append((time.perf_counter() - t) * 1e3)
            return out

        idle = pings(2.0)
        cpu0, wall0, size = broker.cpu_s(), time.perf_counter(), 0
        busy: list[float] = []
        stop = threading.Event()

        def pinger() -> None:
            while not stop.is_set():
                busy.extend(pings(0.2))

        thread = threading.Thread(target=pinger, daemon=True)
        thread.start()
        for _ in range(scrapes):
            with urllib.request.urlopen(url, timeout=60) as resp:
                size = len(resp.read())
        cpu, wall = broker.cpu_s() - cpu0, time.perf_counter() - wall0
        stop.set()
        thread.join(10)
        print(
            f"| {partitions} partitions, 1 group | {cpu * 1e3 / scrapes:.0f} ms broker CPU per scrape | "
            f"{wall * 1e3 / scrapes:.0f} ms per scrape | {size / 1e6:.2f} MB | ApiVersions round trip idle "
            f"p50 {statistics.median(idle):.1f} / max {max(idle):.1f} ms, while scraping p50 "
            f"{statistics.median(busy):.1f} / max {max(busy):.1f} ms |"
        )
    finally:
        broker.stop()
    return 0


async def _pipeline(port: int, request: bytes, count: int, inflight: int) -> None:
    """`count` copies of `request` over one connection, `inflight` pipelined; answers read as frames only
    (the client's work is small and the same for both brokers)."""
    reader, writer = await asyncio.open_connection(bb.HOST, port)
    sent = done = 0
    try:
        while done < count:
            while sent < count and sent - done < inflight:
                writer.write(request)
                sent += 1
            size = int.from_bytes(await reader.readexactly(4), "big")
            await reader.readexactly(size)
            done += 1
    finally:
        writer.close()


async def _in_process(args: argparse.Namespace) -> int:
    """Both brokers in this process, on this event loop, with the client: each round times, in CPU time of
    the loop's thread (time.thread_time: broker and client, no other process), the same requests sent to
    one broker then the other. The client's share is the same for both, so on - off is what the metrics
    cost a request; the machine's other load moves both alike within a round."""
    from kafkapy.config import BrokerConfig
    from kafkapy.server.broker import Broker
    from kafkapy.server.dispatch import build_handler

    root = Path(tempfile.mkdtemp(prefix="bench-metrics-inproc-"))
    request = bw.produce_request(args.size, args.batch_records)
    brokers: dict[str, Broker] = {}
    ports: dict[str, int] = {}
    # the broker made second runs a little slower in an A/A run here (its objects later in memory?):
    # --on-first swaps which is made first, to see that bias on both sides
    for setup in ("on", "off") if args.on_first else ("off", "on"):
        ports[setup] = bb.free_port()
        pairs = [
            ("listeners", f"{bb.HOST}:{ports[setup]}"),
            ("log.dirs", str(root / setup)),
            ("group.initial.rebalance.delay.ms", "0"),
        ]
        if setup == "on" and (args.toggle or not args.same):
            pairs.append(("kafkapy.metrics.listen", f"{bb.HOST}:0"))
        broker = Broker(BrokerConfig.load(None, pairs), build_handler)
        await broker.start()
        brokers[setup] = broker
        await create_topic(ports[setup])
    if args.toggle:
        # one broker (the one with the endpoint): its stats switched on and off between rounds, so both
        # setups share the process, its heap and the log; --same switches between two "off" states
        one = brokers["on"]  # the other broker stays idle
        ports["off"] = ports["on"]
        stats = one.stats

        def switch(setup: str) -> None:
            on = setup == "on" and not args.same
            assert one.server is not None and one.services is not None
            one.server.stats = stats if on else None
            one.services.stats = stats if on else None

    per_request: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for setup in ("off", "on"):  # warm-up
            await _pipeline(ports[setup], request, args.in_process // 4, args.inflight)
        for i in range(args.repeats):
            for setup in ("off", "on") if i % 2 == 0 else ("on", "off"):
                if args.toggle:
                    switch(setup)
                c0 = time.thread_time()
                await _pipeline(ports[setup], request, args.in_process, args.inflight)
                per_request[setup].append((time.thread_time() - c0) / args.in_process * 1e6)
    finally:
        for broker in brokers.values():
            await broker.shutdown()
    off, on = per_request["off"], per_request["on"]
    diffs = [b - a for a, b in zip(off, on)]
    print(
        f"{args.repeats} rounds of {args.in_process} x {len(request)} B Produce requests ({args.inflight} in flight), "
        f"{'one broker, its stats switched per round' if args.toggle else 'both brokers'} and the client on one "
        f"event loop{' (A/A: both without metrics)' if args.same else ''}"
    )
    print("| loop CPU per request, µs (broker + client) | metrics off | metrics on | on - off | on / off |")
    print("|---|---|---|---|---|")
    print(
        f"| median of rounds | {statistics.median(off):.1f} | {statistics.median(on):.1f} | "
        f"{statistics.median(diffs):+.2f} | {statistics.median(b / a for a, b in zip(off, on)):.3f} |"
    )
    # the quietest round of each: the least disturbed by the machine's other load
    print(f"| fastest round | {min(off):.1f} | {min(on):.1f} | {min(on) - min(off):+.2f} | {min(on) / min(off):.3f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench metrics", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=256.0, help="MB produced per run (default 256)")
    ap.add_argument("--size", type=int, default=1024, help="record value size in bytes (1024)")
    ap.add_argument("--batch-records", type=int, default=16, help="records per batch = per request (16)")
    ap.add_argument("--inflight", type=int, default=8, help="pipelined requests (8)")
    ap.add_argument("--repeats", type=int, default=7, help="rounds, each running both brokers (7)")
    ap.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes of 'on' (1.0; 0: none)")
    ap.add_argument("--time-box", type=float, default=120.0, help="max seconds per produce run")
    ap.add_argument(
        "--scrape-partitions",
        type=int,
        default=0,
        help="instead: the cost of one scrape of a broker with this many partitions and a group committed on all",
    )
    ap.add_argument(
        "--same",
        action="store_true",
        help="an A/A check: both brokers without metrics (and no scrapes), to see the noise between two processes",
    )
    ap.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="instead: both brokers and the client in this process, N requests per round, CPU time of the loop",
    )
    ap.add_argument("--on-first", action="store_true", help="--in-process: make the 'on' broker first")
    ap.add_argument(
        "--toggle", action="store_true", help="--in-process: one broker, its stats switched on and off between rounds"
    )
    args = ap.parse_args(argv)
    if args.in_process:
        bb.compile_kafkapy()
        from kafkapy.logging import configure_logging

        configure_logging("warning")
        from kafkapy.server.broker import new_event_loop

        loop = new_event_loop("auto")
        try:
            return loop.run_until_complete(_in_process(args))
        finally:
            loop.close()
    if args.scrape_partitions:
        return scrape_cost(args.scrape_partitions, scrapes=10)

    bb.compile_kafkapy()
    root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    metrics_port = bb.free_port()

    def argv_on(port: int, data_dir: Path) -> list[str]:
        return [*bb.kafkapy_argv(port, data_dir), "--metrics-listen", f"{bb.HOST}:{metrics_port}"]

    if args.same:
        args.scrape_interval = 0
    brokers = {
        "off": bb.Broker("off", "kafkapy", bb.kafkapy_argv, root),
        "on": bb.Broker("on", "kafkapy", bb.kafkapy_argv if args.same else argv_on, root),
    }
    request = bw.produce_request(args.size, args.batch_records)
    payload = args.size * args.batch_records
    count = max(1, int(args.mb * 1e6 / payload))
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}  # (MB/s, CPU ms per MB)
    scraper: Scraper | None = None
    try:
        for b in brokers.values():
            b.start()
            asyncio.run(create_topic(b.port))
        if args.scrape_interval > 0:
            # one scraper for the whole bench, as a Prometheus server: its own CPU falls on both setups alike,
            # the broker's CPU for the scrapes only on "on"
            scraper = Scraper(f"http://{bb.HOST}:{metrics_port}/metrics", args.scrape_interval).__enter__()
        # one warm-up run each (page cache, first segment, code paths)
        for b in brokers.values():
            bw.produce(b.port, request, count // 4, args.inflight, payload, args.time_box)
        for i in range(args.repeats):
            order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
            for setup in order:
                b = brokers[setup]
                c0 = b.cpu_s()
                result = bw.produce(b.port, request, count, args.inflight, payload, args.time_box)
                cpu = b.cpu_s() - c0
                if result.errors or result.timed_out:
                    raise RuntimeError(f"{setup}: {result.errors} errors, timed out: {result.timed_out}")
                runs[setup].append((result.mb_s, cpu * 1e3 / result.mb))
                print(
                    f"round {i + 1} {setup:3s}: {result.mb_s:7.1f} MB/s  {cpu * 1e3 / result.mb:6.1f} CPU ms/MB",
                    flush=True,
                )
    finally:
        if scraper is not None:
            scraper.__exit__()
        for b in brokers.values():
            b.stop()
    scrapes = scraper.scrapes if scraper is not None else 0
    scraped = scraper.bytes // max(1, scrapes) if scraper is not None else 0

    def median(setup: str, k: int) -> float:
        return statistics.median(r[k] for r in runs[setup])

    off_mb, on_mb = median("off", 0), median("on", 0)
    off_cpu, on_cpu = median("off", 1), median("on", 1)
    print()
    print(
        f"{args.repeats} rounds of {count} x {payload} B requests ({args.batch_records} x {args.size} B records, "
        f"{args.inflight} in flight); 'on' scraped every {args.scrape_interval} s ({scrapes} scrapes, ~{scraped} B each)"
    )
    # each round's on / off, then the median: the pairs ran back to back, so slow spells of a shared machine
    # fall on both sides of a ratio
    paired_mb = statistics.median(on[0] / off[0] for on, off in zip(runs["on"], runs["off"]))
    paired_cpu = statistics.median(on[1] / off[1] for on, off in zip(runs["on"], runs["off"]))
    print("| | metrics off | metrics on | on / off (of medians) | on / off (median of rounds) |")
    print("|---|---|---|---|---|")
    print(f"| produce MB/s | {off_mb:.1f} | {on_mb:.1f} | {on_mb / off_mb:.3f} | {paired_mb:.3f} |")
    print(f"| broker CPU ms per MB | {off_cpu:.2f} | {on_cpu:.2f} | {on_cpu / off_cpu:.3f} | {paired_cpu:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
