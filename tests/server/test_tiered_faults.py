"""Tiered storage against a bad object store (issue 19): a loopback HTTP proxy in front of the real
SeaweedFS delays requests, answers 503 SlowDown or 500, or cuts response bodies short, for chosen
request methods, and the broker's S3 endpoint is the proxy.

- throttled and failing PUTs: produce latency is unaffected, copies are retried with backoff and
  succeed once the store heals, and no local segment is deleted before its copy is confirmed;
- GETs slower than remote.fetch.max.wait.ms: the remote partition answers empty without error (as
  Kafka's delayed remote fetch does when it expires), a local partition in the same fetch flows;
- bodies cut short: the remote read answers UNKNOWN_SERVER_ERROR, never wrong data, and every
  record is read once the store heals.
"""

from __future__ import annotations

import http.client
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

import pytest

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.records import iter_batches
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic
from tests.server.test_tiered_storage import (
    TOPIC,
    broker_settings,
    consume_all,
    list_offset,
    metric,
    produce,
    scrape,
    wait_for,
)

confluent_kafka = pytest.importorskip("confluent_kafka")

LOCAL_TOPIC = "untiered"
TIERED = {"remote.storage.enable": "true", "internal.segment.bytes": "4096", "local.retention.bytes": "1"}
_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length", "proxy-connection"}


@dataclass(slots=True)
class Fault:
    """What the proxy does to the requests of `methods`: "delay" (then forward), "slowdown" (503
    SlowDown), "error" (500 InternalError) or "partial" (half the body, then the connection closes);
    `delay_s` first in every case; `spare`: each n-th such request goes through untouched (0: none)."""

    kind: str = "none"
    methods: frozenset[str] = frozenset()
    delay_s: float = 0.0
    spare: int = 0


@dataclass(slots=True)
class FaultyProxy:
    upstream: str
    fault: Fault = field(default_factory=Fault)
    seen: list[tuple[float, str, str, int]] = field(default_factory=list)  # time, method, path, status
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _matched: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def set(self, kind: str, *methods: str, delay_s: float = 0.0, spare: int = 0) -> None:
        with self._lock:
            self.fault = Fault(kind, frozenset(methods), delay_s, spare)
            self._matched = 0

    def heal(self) -> None:
        self.set("none")

    def count(self, method: str, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for _, m, _, s in self.seen if m == method and (status is None or s == status))

    def _pick(self, method: str) -> Fault | None:
        with self._lock:
            f = self.fault
            if f.kind == "none" or method not in f.methods:
                return None
            self._matched += 1
            return None if f.spare and self._matched % f.spare == 0 else f

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.seen.append((time.monotonic(), method, path, status))

    def start(self) -> None:
        proxy = self
        up = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(parts)
                length = int(self.headers.get("Content-Length", "0"))
                return self.rfile.read(length) if length else None

            def _answer_error(self, status: int, code: str) -> None:
                body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code} (test proxy)</Message></Error>'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                method = self.command
                body = self._body()
                fault = proxy._pick(method)
                if fault is not None and fault.delay_s > 0:
                    time.sleep(fault.delay_s)
                if fault is not None and fault.kind == "slowdown":
                    self._answer_error(503, "SlowDown")
                    proxy._record(method, self.path, 503)
                    return
                if fault is not None and fault.kind == "error":
                    self._answer_error(500, "InternalError")
                    proxy._record(method, self.path, 500)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=30)
                try:
                    conn.request(method, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP:
                            self.send_header(k, v)
                    if method != "HEAD" or "content-length" not in {k.lower() for k, _ in resp.getheaders()}:
                        self.send_header("Content-Length", str(len(data)))
                    else:
                        self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                    self.end_headers()
                    proxy._record(method, self.path, resp.status)
                    if method == "HEAD":
                        return
                    if fault is not None and fault.kind == "partial" and len(data) > 1:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True  # the rest never comes
                        return
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def proxy(s3_server: Any) -> Iterator[FaultyProxy]:
    p = FaultyProxy(s3_server.endpoint)
    p.start()
    try:
        yield p
    finally:
        p.close()


def start_broker(kafka_broker_factory: Any, s3: Any, proxy: FaultyProxy, prefix: str, **more: str) -> BrokerProcess:
    store = {
        "rsm.config.storage.s3.endpoint.url": proxy.endpoint,
        "rsm.config.storage.s3.bucket.name": s3.bucket,
        "rsm.config.storage.s3.region": s3.region,
        "rsm.config.storage.aws.access.key.id": s3.access_key_id,
        "rsm.config.storage.aws.secret.access.key": s3.secret_access_key,
        "rsm.config.key.prefix": f"{prefix}-{time.monotonic_ns()}",
    }
    broker: BrokerProcess = kafka_broker_factory(broker_settings(store, **more))
    return broker


def produce_latencies(bootstrap: str, topic: str, count: int) -> list[float]:
    """Round trips of `count` produces with acks=all, one at a time."""
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        p.produce(topic, value=f"latency-{i:06d}-".encode() * 6)
        assert p.flush(10) == 0
        out.append(time.perf_counter() - t0)
    return out


def fetch_two(bootstrap: str, tiered_offset: int, local_offset: int) -> tuple[Any, Any, float]:
    """One Fetch v12 of the tiered partition and the local one; their answers and the round trip."""
    with RawClient(bootstrap, timeout=30) as c:
        req = FetchRequest(
            replica_id=-1,
            max_wait_ms=100,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic=t,
                    partitions=[FetchPartition(partition=0, fetch_offset=o, partition_max_bytes=1 << 20)],
                )
                for t, o in ((TOPIC, tiered_offset), (LOCAL_TOPIC, local_offset))
            ],
        )
        t0 = time.monotonic()
        resp = c.request(req, 12)
        took = time.monotonic() - t0
    by_topic = {r.topic: r.partitions[0] for r in resp.responses}
    return by_topic[TOPIC], by_topic[LOCAL_TOPIC], took


def records_of(pd: Any) -> bytes:
    return bytes(pd.records or b"")


def test_throttled_and_failing_puts(kafka_broker_factory: Any, s3_server: Any, proxy: FaultyProxy) -> None:
    broker = start_broker(
        kafka_broker_factory,
        s3_server,
        proxy,
        "puts",
        **{"remote.log.manager.task.retry.backoff.ms": "200", "remote.log.manager.task.retry.backoff.max.ms": "800"},
    )
    bootstrap = broker.bootstrap
    with RawClient(bootstrap) as c:
        assert create_topic(c, TOPIC, 1, **TIERED) == ErrorCode.NONE
    healthy = statistics.median(produce_latencies(bootstrap, TOPIC, 30))
    wait_for(lambda: list_offset(bootstrap, -5)[1] >= 0, 30, "a first copy through the healthy proxy")

    # throttled: every PUT waits, then 503 SlowDown
    failures_before = broker.log_path.read_text().count("remote copy failed")
    proxy.set("slowdown", "PUT", delay_s=0.1)
    throttled_from = time.monotonic()
    copied_before = list_offset(bootstrap, -5)[1]
    throttled = statistics.median(produce_latencies(bootstrap, TOPIC, 30))
    produce(bootstrap, 0, 150)  # many closed segments to copy

    def failures() -> list[float]:
        """When each copy failure since the throttling was logged (seconds)."""
        lines = [x for x in broker.log_path.read_text().splitlines() if "remote copy failed" in x]
        stamps = [re.search(r"timestamp=(\S+)", x) for x in lines[failures_before:]]
        return [datetime.fromisoformat(m.group(1)).timestamp() for m in stamps if m is not None]

    def failed() -> int:
        return len(failures())

    wait_for(lambda: failed() >= 4, 20, "copies retried")
    # retried after 200, 400, 800 ms (retry.backoff.ms doubling up to retry.backoff.max.ms), not
    # every 200 ms task interval; the attempt itself (two 100 ms refusals) comes on top
    gaps = [b - a for a, b in pairwise(failures()[:4])]
    assert all(gap >= 0.9 * min(0.2 * 2**i, 0.8) for i, gap in enumerate(gaps)), gaps
    print("copy failure gaps", [round(g, 2) for g in gaps])
    print(
        f"{failed()} copy failures in {time.monotonic() - throttled_from:.1f} s, {proxy.count('PUT', 503)} PUTs refused"
    )
    # with a 200-800 ms backoff, fewer attempts than one per 200 ms task interval
    assert failed() <= (time.monotonic() - throttled_from) / 0.2, failed()
    assert list_offset(bootstrap, -5)[1] == copied_before, "nothing was copied"
    assert list_offset(bootstrap, -4)[1] <= copied_before + 1, "no uncopied segment deleted locally"
    print(f"produce p50 {healthy * 1000:.1f} ms healthy, {throttled * 1000:.1f} ms with PUTs throttled")
    assert throttled < max(healthy * 5, healthy + 0.05), (healthy, throttled)

    # failing: two of every three PUTs answer 500 (both of a call's attempts), so segment copies
    # fail part way: still no local segment deleted before its copy is complete
    proxy.set("error", "PUT", spare=3)
    for _ in range(20):
        latest_tiered = list_offset(bootstrap, -5)[1]
        assert list_offset(bootstrap, -4)[1] <= max(latest_tiered + 1, 0), latest_tiered
        time.sleep(0.1)
    assert proxy.count("PUT", 500) > 0
    assert metric(scrape(broker), "kafka_server_brokertopicmetrics_remotecopyerrors_total") > 0

    proxy.heal()
    end = list_offset(bootstrap, -1)[1]
    wait_for(lambda: list_offset(bootstrap, -5)[1] >= end - 100, 30, "copies after the store healed")
    wait_for(lambda: list_offset(bootstrap, -4)[1] > copied_before + 1, 30, "local deletion of the copies")
    assert sorted(consume_all(bootstrap, end)) == sorted([*range(30), *range(30), *range(150)])


def test_slow_gets_answer_empty_while_local_data_flows(
    kafka_broker_factory: Any, s3_server: Any, proxy: FaultyProxy
) -> None:
    broker = start_broker(kafka_broker_factory, s3_server, proxy, "slow", **{"remote.fetch.max.wait.ms": "500"})
    bootstrap = broker.bootstrap
    with RawClient(bootstrap) as c:
        assert create_topic(c, TOPIC, 1, **TIERED) == ErrorCode.NONE
        assert create_topic(c, LOCAL_TOPIC) == ErrorCode.NONE
    produce(bootstrap, 0, 200)
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(20):
        p.produce(LOCAL_TOPIC, value=f"local-{i}".encode())
    assert p.flush(10) == 0
    wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")

    proxy.set("delay", "GET", delay_s=2.0)
    remote, local, took = fetch_two(bootstrap, 0, 0)
    assert (remote.error_code, records_of(remote)) == (ErrorCode.NONE, b"")
    assert local.error_code == ErrorCode.NONE and len(records_of(local)) > 0
    assert took < 1.8, took  # remote.fetch.max.wait.ms, not the store's 2 s
    remote, local, took = fetch_two(bootstrap, 0, 20)  # the consumer at the local end: still answered
    assert remote.error_code == ErrorCode.NONE
    assert local.error_code == ErrorCode.NONE and took < 1.8

    proxy.heal()
    wait_for(lambda: len(records_of(fetch_two(bootstrap, 0, 20)[0])) > 0, 15, "remote data after healing")
    assert consume_all(bootstrap, 200) == list(range(200))


def test_partial_bodies_fail_the_remote_read_not_the_data(
    kafka_broker_factory: Any, s3_server: Any, proxy: FaultyProxy
) -> None:
    broker = start_broker(kafka_broker_factory, s3_server, proxy, "partial", **{"remote.fetch.max.wait.ms": "5000"})
    bootstrap = broker.bootstrap
    with RawClient(bootstrap) as c:
        assert create_topic(c, TOPIC, 1, **TIERED) == ErrorCode.NONE
        assert create_topic(c, LOCAL_TOPIC) == ErrorCode.NONE
    produce(bootstrap, 0, 200)
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    p.produce(LOCAL_TOPIC, value=b"local")
    assert p.flush(10) == 0
    wait_for(lambda: list_offset(bootstrap, -4)[1] > 0, 30, "local segments deleted after their copy")

    proxy.set("partial", "GET")
    remote, local, _ = fetch_two(bootstrap, 0, 0)
    assert remote.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert records_of(remote) == b""
    assert local.error_code == ErrorCode.NONE and len(records_of(local)) > 0
    assert proxy.count("GET") > 0
    assert metric(scrape(broker), "kafka_server_brokertopicmetrics_remotefetcherrors_total") >= 1

    proxy.heal()
    remote, _, _ = fetch_two(bootstrap, 0, 1)
    assert remote.error_code == ErrorCode.NONE
    data = records_of(remote)
    assert next(h.base_offset for _, h in iter_batches(data)) == 0
    assert consume_all(bootstrap, 200) == list(range(200))
