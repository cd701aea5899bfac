"""The broker's request and topic counters, kept as plain ints on the hot path.

Only made when the metrics endpoint is on (`kafkapy.metrics.listen`); the
handlers skip all of it when `BrokerServices.stats` is None. Nothing here
imports prometheus_client: `kafkapy.server.metrics` reads these objects at
scrape time and turns them into Prometheus families.

Request times go into a ring of the last `RESERVOIR` requests per API (a
fixed-size uniform window, where Kafka's Yammer histograms keep an
exponentially decaying reservoir of 1028): one tuple per request holding its
TotalTimeMs and the five parts Kafka splits it into (see `RequestTimer`);
percentiles are computed from the ring at scrape time, counts and sums are
exact.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from random import random

RESERVOIR = 1024  # a power of two: the ring index is a mask
# Kafka's RequestMetrics name Fetch by who sends it: "FetchConsumer" (kept under Fetch's api key) and
# "FetchFollower" (kept under this key of its own)
FETCH_FOLLOWER = -1
NOT_SERVED = -2  # a RequestTimer's key until the dispatcher serves the request
_MASK = RESERVOIR - 1
SAMPLED_PER_S = 1000.0  # requests a second whose time is split into Kafka's parts, about, at most
MAX_GAP = 10_000.0  # requests between two whose time is split, at most on average
RATE_WINDOW = 1.0  # seconds over which the request rate is measured for that
LOOP_SAMPLE_S = 1.0  # the event loop's CPU share is sampled this often ...
LOOP_WINDOW = 30  # ... and reported over this many samples (Kafka's metrics: two 30 s windows)


@dataclass(slots=True)
class TopicCounters:
    """Kafka's BrokerTopicMetrics meters of one topic (their Count)."""

    messages_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    bytes_rejected: int = 0
    produce_requests: int = 0
    fetch_requests: int = 0
    failed_produce: int = 0
    failed_fetch: int = 0


@dataclass(slots=True)
class RemoteCounters:
    """Kafka's remote storage BrokerTopicMetrics meters of one tiered topic (their Count)."""

    copy_bytes: int = 0  # RemoteCopyBytesPerSec
    copy_requests: int = 0  # RemoteCopyRequestsPerSec: segments whose copy was started
    copy_errors: int = 0  # RemoteCopyErrorsPerSec
    fetch_bytes: int = 0  # RemoteFetchBytesPerSec
    fetch_requests: int = 0  # RemoteFetchRequestsPerSec
    fetch_errors: int = 0  # RemoteFetchErrorsPerSec
    delete_requests: int = 0  # RemoteDeleteRequestsPerSec: remote segments deleted


MAX_VERSION = 64  # request versions counted per API (Kafka's highest today: 17)


# Kafka's RequestMetrics histograms of a request's time, in the order `RequestTimer.times` gives them
TIME_PARTS = (
    "TotalTimeMs",
    "RequestQueueTimeMs",
    "LocalTimeMs",
    "RemoteTimeMs",
    "ResponseQueueTimeMs",
    "ResponseSendTimeMs",
)
Times = tuple[float, float, float, float, float, float]


class RequestTimer:
    """The time.perf_counter() marks of one request whose time is split (a sample: about SAMPLED_PER_S
    requests a second, see `BrokerStats.sampled`), made only with the metrics endpoint on.

    The network layer makes it when the frame is read whole (`received`), marks when the connection's
    writer takes the response (`taken`) and when it is handed to the transport (`sent`); the dispatcher
    marks when it takes the request (`started`) and when the response is encoded (`done`); handlers add
    the seconds they wait in a purgatory (`remote`: acks=all waiting for the followers, a fetch waiting
    for min bytes, a join waiting for the group). Once recorded, a timer is not changed again: the ring
    of its API keeps its marks (a tuple of floats, which the garbage collector stops tracking, where a
    ring of timers would keep a thousand tracked objects per API alive into the old generation and make
    full collections more frequent).

    A plain class, not a slotted dataclass: the network layer makes one with `bare_timer` and sets
    `received` only, the other fields reading these class defaults until set, which skips an `__init__`
    frame and nine stores (counted with callgrind: see docs/performance.md)."""

    received: float = 0.0
    started: float = 0.0
    remote: float = 0.0
    done: float = 0.0
    taken: float = 0.0
    sent: float = 0.0
    key: int = NOT_SERVED  # the stats key, set by the dispatcher for a request it served
    version: int = 0
    weight: int = 1  # the requests this sample stands for in TotalTimeMs' sum (the gap since the last)

    def __init__(self, received: float) -> None:
        self.received = received


bare_timer = object.__new__  # bare_timer(RequestTimer): a timer without its __init__ (see the class)


Marks = tuple[float, float, float, float, float, float]  # received, started, remote, done, taken, sent


def times(marks: Marks) -> Times:
    """Kafka's split of one request's marks, in ms, in TIME_PARTS order: the total from the frame read to
    the response written; the request queue until the dispatcher took it; local work (less the purgatory
    waits); remote (the waits); the response queue until the writer took it (responses go in request
    order); the send."""
    received, started, remote, done, taken, sent = marks
    return (
        (sent - received) * 1000.0,
        (started - received) * 1000.0,
        (done - started - remote) * 1000.0,
        remote * 1000.0,
        (taken - done) * 1000.0,
        (sent - taken) * 1000.0,
    )


@dataclass(slots=True)
class ApiStats:
    """One API's requests: per version, failed, TotalTimeMs' exact count and sum (in seconds), and the
    marks of the last RESERVOIR requests."""

    versions: list[int] = field(default_factory=lambda: [0] * MAX_VERSION)  # their sum is the count
    failed: int = 0
    total_s: float = 0.0
    samples: int = 0  # requests whose marks went into the ring
    ring: list[Marks] = field(default_factory=lambda: [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)] * RESERVOIR)
    # ThrottleTimeMs: (the request's number, its throttle ms) of the last throttled requests; a request
    # not listed among the last RESERVOIR was given no throttle (only quota-governed clients get one)
    throttles: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RESERVOIR))

    def throttle_window(self) -> list[float]:
        """ThrottleTimeMs of the last RESERVOIR requests (up to), zeros for those not throttled."""
        count = sum(self.versions)
        first = count - RESERVOIR
        given = [float(ms) for n, ms in self.throttles if n > first]
        return given + [0.0] * (min(count, RESERVOIR) - len(given))

    def held(self) -> list[Marks]:
        """The marks in the ring (up to RESERVOIR), in slot order."""
        return self.ring[: min(self.samples, RESERVOIR)]


@dataclass(slots=True)
class BrokerStats:
    """Counters of one broker since it started."""

    topics: dict[str, TopicCounters] = field(default_factory=dict)
    apis: dict[int, ApiStats] = field(default_factory=dict)  # api key -> its requests
    errors: dict[tuple[int, int], int] = field(default_factory=dict)  # (api key, error code) -> count, NONE aside
    gone: TopicCounters = field(default_factory=TopicCounters)  # deleted topics' counts, still in the totals
    replication_bytes_out: int = 0  # ReplicationBytesOutPerSec: record bytes sent to followers (all topics)
    # tiered storage's meters per topic (only topics that copied or read remotely), deleted topics' in `remote_gone`
    remote: dict[str, RemoteCounters] = field(default_factory=dict)
    remote_gone: RemoteCounters = field(default_factory=RemoteCounters)
    # socket-server-metrics connection-creation-total / connection-close-total, per listener name
    connections_created: dict[str, int] = field(default_factory=dict)
    connections_closed: dict[str, int] = field(default_factory=dict)
    # the event loop thread's (wall clock, CPU time) every LOOP_SAMPLE_S, the last LOOP_WINDOW of them
    loop_samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=LOOP_WINDOW + 1))
    # Time splitting: the network layer counts `skip` down per request and splits the time of the one
    # that takes it to 0 (`sampled`). Up to ~SAMPLED_PER_S requests a second that is every request;
    # above, about SAMPLED_PER_S a second, at random gaps (a clock read costs ~0.2 us on some machines).
    skip: int = 1
    _gap: int = 1
    _mean_gap: float = 1.0
    _window_start: float = 0.0
    _window_requests: int = 0

    def topic(self, name: str) -> TopicCounters:
        counters = self.topics.get(name)
        if counters is None:
            counters = self.topics[name] = TopicCounters()
        return counters

    def remote_topic(self, name: str) -> RemoteCounters:
        counters = self.remote.get(name)
        if counters is None:
            counters = self.remote[name] = RemoteCounters()
        return counters

    def api(self, key: int) -> ApiStats:
        api = self.apis.get(key)
        if api is None:
            api = self.apis[key] = ApiStats()
        return api

    def sampled(self, t: RequestTimer) -> None:
        """The network layer's `skip` reached 0 at `t`'s request: its weight, and the gap to the next
        sample. The mean gap follows the request rate of the last RATE_WINDOW seconds or more, so that
        about SAMPLED_PER_S requests a second are split (every request below that rate)."""
        t.weight = gap = self._gap
        self._window_requests += gap
        elapsed = t.received - self._window_start
        if elapsed >= RATE_WINDOW:
            rate = self._window_requests / elapsed
            self._mean_gap = min(MAX_GAP, max(1.0, rate / SAMPLED_PER_S))
            self._window_start, self._window_requests = t.received, 0
        mean = self._mean_gap
        # uniform on 1 .. 2 * mean - 1: its mean is `mean`, and no request pattern lines up with it
        self._gap = self.skip = 1 if mean < 1.5 else 1 + int(random() * (2 * mean - 1))

    def request_sent(self, t: RequestTimer) -> None:
        """A sampled request's response handed to the transport (or none to send, for acks=0, `taken` and
        `sent` then the writer's time): its marks into its API's ring, its time (times its weight) into
        TotalTimeMs' sum. The dispatcher counted the request itself."""
        api = self.apis.get(t.key)
        if api is None:
            return  # not served (the dispatcher counts what it serves)
        received, sent = t.received, t.sent
        api.total_s += (sent - received) * t.weight
        api.ring[api.samples & _MASK] = (received, t.started, t.remote, t.done, t.taken, sent)
        api.samples += 1

    def throttled(self, key: int, ms: int) -> None:
        """A response given a client-quota throttle of `ms` (a quota-governed connection's request)."""
        api = self.apis.get(key)
        if api is not None:
            api.throttles.append((sum(api.versions), ms))

    def error(self, api_key: int, code: int, n: int = 1) -> None:
        """Errors carried inside a response (a Produce or Fetch partition's code)."""
        key = (api_key, code)
        self.errors[key] = self.errors.get(key, 0) + n

    def connection_made(self, listener: str) -> None:
        self.connections_created[listener] = self.connections_created.get(listener, 0) + 1

    def connection_lost(self, listener: str) -> None:
        self.connections_closed[listener] = self.connections_closed.get(listener, 0) + 1

    def sample_loop(self) -> None:
        """On the event loop thread: note the wall clock and the thread's CPU time."""
        self.loop_samples.append((time.monotonic(), time.thread_time()))

    def loop_idle(self) -> float | None:
        """The share of wall time the event loop thread did not use the CPU over the samples held (up to
        LOOP_WINDOW seconds): kafkapy's NetworkProcessorAvgIdlePercent, 0..1. None before two samples."""
        samples = self.loop_samples
        if len(samples) < 2:
            return None
        (wall0, cpu0), (wall1, cpu1) = samples[0], samples[-1]
        if wall1 <= wall0:
            return None
        return min(1.0, max(0.0, 1.0 - (cpu1 - cpu0) / (wall1 - wall0)))

    def forget_topic(self, name: str) -> None:
        """A deleted topic: its series go, its counts stay in the all-topics totals (as Kafka's meters)."""
        counters = self.topics.pop(name, None)
        if counters is not None:
            gone = self.gone
            for attr in TopicCounters.__slots__:
                setattr(gone, attr, getattr(gone, attr) + getattr(counters, attr))
        remote = self.remote.pop(name, None)
        if remote is not None:
            for attr in RemoteCounters.__slots__:
                setattr(self.remote_gone, attr, getattr(self.remote_gone, attr) + getattr(remote, attr))
