"""The broker's request and topic counters, kept as plain ints on the hot path.

Only made when the metrics endpoint is on (`kafkapy.metrics.listen`); the
handlers skip all of it when `BrokerServices.stats` is None. Nothing here
imports prometheus_client: `kafkapy.server.metrics` reads these objects at
scrape time and turns them into Prometheus families.

Request times go into a ring of the last `RESERVOIR` samples per API (a
fixed-size uniform window, where Kafka's Yammer histograms keep an
exponentially decaying reservoir of 1028); percentiles are computed from it
at scrape time, count and sum are exact.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field

RESERVOIR = 1024  # a power of two: the ring index is a mask
# Kafka's RequestMetrics name Fetch by who sends it: "FetchConsumer" (kept under Fetch's api key) and
# "FetchFollower" (kept under this key of its own)
FETCH_FOLLOWER = -1
_MASK = RESERVOIR - 1


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


MAX_VERSION = 64  # request versions counted per API (Kafka's highest today: 17)


@dataclass(slots=True)
class ApiStats:
    """One API's requests: per version, answered without an error, and times in milliseconds (exact
    count and sum, the last RESERVOIR samples)."""

    versions: list[int] = field(default_factory=lambda: [0] * MAX_VERSION)
    ok: int = 0
    count: int = 0
    total_ms: float = 0.0
    samples: array[float] = field(default_factory=lambda: array("d", bytes(8 * RESERVOIR)))

    def window(self) -> list[float]:
        """The samples held, sorted."""
        return sorted(self.samples[: min(self.count, RESERVOIR)])


@dataclass(slots=True)
class BrokerStats:
    """Counters of one broker since it started."""

    topics: dict[str, TopicCounters] = field(default_factory=dict)
    apis: dict[int, ApiStats] = field(default_factory=dict)  # api key -> its requests
    errors: dict[tuple[int, int], int] = field(default_factory=dict)  # (api key, error code) -> count, NONE aside
    gone: TopicCounters = field(default_factory=TopicCounters)  # deleted topics' counts, still in the totals

    def topic(self, name: str) -> TopicCounters:
        counters = self.topics.get(name)
        if counters is None:
            counters = self.topics[name] = TopicCounters()
        return counters

    def request_done(self, api_key: int, version: int, started: float) -> None:
        """One request answered (or dropped, for acks=0): `started` is its time.perf_counter() at dispatch."""
        ms = (time.perf_counter() - started) * 1000.0
        api = self.apis.get(api_key)
        if api is None:
            api = self.apis[api_key] = ApiStats()
        api.versions[version] += 1
        api.ok += 1
        api.samples[api.count & _MASK] = ms
        api.count += 1
        api.total_ms += ms

    def request_failed(self, api_key: int, version: int, started: float, code: int) -> None:
        """A request whose handler raised, answered with `code`."""
        self.request_done(api_key, version, started)
        self.apis[api_key].ok -= 1
        self.error(api_key, code)

    def error(self, api_key: int, code: int, n: int = 1) -> None:
        """Errors carried inside a response (a Produce or Fetch partition's code)."""
        key = (api_key, code)
        self.errors[key] = self.errors.get(key, 0) + n

    def forget_topic(self, name: str) -> None:
        """A deleted topic: its series go, its counts stay in the all-topics totals (as Kafka's meters)."""
        counters = self.topics.pop(name, None)
        if counters is not None:
            gone = self.gone
            for attr in TopicCounters.__slots__:
                setattr(gone, attr, getattr(gone, attr) + getattr(counters, attr))
