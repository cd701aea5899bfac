"""Connection limits as Kafka's ConnectionQuotas applies them (KIP-402, KIP-612): sans-IO.

The network layer (kafkapy.server.network) asks this module, for each listener's accept loop:

- `slot_free(listener)`: whether it may accept now: the listener is under its own
  `listener.name.<l>.max.connections` and the broker under `max.connections`. The inter-broker
  listener is never held to the broker-wide limit (KIP-402); when it takes the broker over it,
  `over_broker_limit()` tells the caller to close another listener's least recently used connection.
- `accept_delay_ms(listener, now)`: how long to wait before the next accept so the connections
  accepted stay within `max.connection.creation.rate` (broker-wide; not applied to the inter-broker
  listener) and the listener's own rate (KIP-612). Accepts are delayed, never refused.
- `admit(listener, ip, now)` right after an accept: the IP's connection-creation quota
  (`connection_creation_rate` of an IP client quota, KIP-612: over it, the connection is held and
  closed after the throttle time) and `max.connections.per.ip` with its overrides (over it, closed
  at once); else the connection is counted and recorded on the rates.
- `release(listener, ip)` when it closes.

Rates are Kafka's sampled rates (`quota.window.num` samples of `quota.window.size.seconds`,
kafkapy.server.quotas.SampledRate). Times are seconds from a monotonic clock.

For the metrics endpoint (read at scrape time, changed only when an accept waits or is throttled,
never per request): `blocked_seconds(listener, now)`, the time the listener's acceptor spent waiting
for a slot or for the creation rates (Kafka's AcceptorBlockedPercent meter, which it marks in
nanoseconds), the wait going on now included; `accept_throttle_ms(listener, now)`, the average of the
non-zero accept delays the creation rates gave (Kafka's `connection-accept-throttle-time`, an Avg
over its default metrics window of 2 samples of 30 s).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.config import INT_MAX, ConfigError
from kafkapy.server.quotas import SampledAvg, SampledRate

if TYPE_CHECKING:
    from kafkapy.config import BrokerConfig

ACCEPTED, TOO_MANY, THROTTLED = "accepted", "too_many", "throttled"
# Kafka's metrics.num.samples / metrics.sample.window.ms defaults: the window of connection-accept-throttle-time
METRIC_SAMPLES, METRIC_WINDOW = 2, 30.0


def parse_ip_overrides(text: str, resolve: Callable[[str], str] | None = None) -> dict[str, int]:
    """max.connections.per.ip.overrides ("host:count,ip:count") as {ip: count}; hostnames are resolved
    once (as Kafka does when it reads the setting). Raises ConfigError for a malformed entry."""
    key = "max.connections.per.ip.overrides"
    result: dict[str, int] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        host = host.strip().strip("[]")
        if not sep or not host:
            raise ConfigError(key, f"entry {item!r} is not host:count")
        try:
            limit = int(count.strip())
        except ValueError:
            raise ConfigError(key, f"entry {item!r}: {count.strip()!r} is not a number") from None
        if limit < 0:
            raise ConfigError(key, f"entry {item!r}: the count must be at least 0")
        try:
            address = (resolve or _resolve)(host)
        except OSError as exc:
            raise ConfigError(key, f"entry {item!r}: {host} does not resolve ({exc})") from None
        result[address] = limit
    return result


def _resolve(host: str) -> str:
    return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


@dataclass(slots=True)
class ConnectionLimits:
    """The settings (all Kafka's defaults: unlimited)."""

    max_connections: int = INT_MAX
    listener_max_connections: dict[str, int] = field(default_factory=dict)  # only listeners with one set
    max_per_ip: int = INT_MAX
    per_ip_overrides: dict[str, int] = field(default_factory=dict)
    creation_rate: int = INT_MAX
    listener_creation_rate: dict[str, int] = field(default_factory=dict)
    inter_broker_listener: str | None = None
    samples: int = 11
    window: float = 1.0

    @classmethod
    def from_config(cls, config: BrokerConfig, resolve: Callable[[str], str] | None = None) -> ConnectionLimits:
        from kafkapy.config import BROKER_KEYS

        per_listener: dict[str, dict[str, int]] = {"max.connections": {}, "max.connection.creation.rate": {}}
        for listener in config.listener_list:
            for key, found in per_listener.items():
                raw = config.explicit.get(f"listener.name.{listener.name.lower()}.{key}")
                if raw is not None:
                    found[listener.name] = int(BROKER_KEYS[key].parse(raw))
        overrides = parse_ip_overrides(config.max_connections_per_ip_overrides, resolve)
        if config.max_connections_per_ip == 0 and not overrides:
            # Kafka's requirement: a limit of 0 per IP only makes sense with overrides letting some in
            raise ConfigError(
                "max.connections.per.ip",
                "0 needs max.connections.per.ip.overrides (else no client could connect)",
            )
        try:
            inter_broker: str | None = config.inter_broker_listener()[0]
        except ConfigError:
            inter_broker = None
        return cls(
            max_connections=config.max_connections,
            listener_max_connections=per_listener["max.connections"],
            max_per_ip=config.max_connections_per_ip,
            per_ip_overrides=overrides,
            creation_rate=config.max_connection_creation_rate,
            listener_creation_rate=per_listener["max.connection.creation.rate"],
            inter_broker_listener=inter_broker if len(config.listener_list) > 1 else None,
            samples=config.quota_window_num,
            window=float(config.quota_window_size_seconds),
        )


@dataclass(slots=True)
class ConnectionQuotas:
    """Connection counts and creation rates against `limits`."""

    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # the connection_creation_rate quota of an IP (its own, else the default IP quota), None: no quota
    ip_quota: Callable[[str], float | None] | None = None
    total: int = 0
    by_listener: dict[str, int] = field(default_factory=dict)
    by_ip: dict[str, int] = field(default_factory=dict)
    _broker_rate: SampledRate | None = None
    _listener_rates: dict[str, SampledRate] = field(default_factory=dict)
    _ip_rates: dict[str, SampledRate] = field(default_factory=dict)
    _swept: float = 0.0
    # metrics: seconds each listener's acceptor waited (finished waits), the waits going on now
    # (accept loops of the listener waiting, since when) and the accept delays the creation rates gave
    _blocked: dict[str, float] = field(default_factory=dict)
    _blocked_now: dict[str, tuple[int, float]] = field(default_factory=dict)
    _accept_throttle: dict[str, SampledAvg] = field(default_factory=dict)

    def _protected(self, listener: str) -> bool:
        return listener == self.limits.inter_broker_listener

    def slot_free(self, listener: str) -> bool:
        limits = self.limits
        if self.by_listener.get(listener, 0) >= limits.listener_max_connections.get(listener, INT_MAX):
            return False
        return self.total < limits.max_connections or self._protected(listener)

    def rate_limited(self, listener: str) -> bool:
        """Whether a creation rate (the listener's, or the broker's) applies to `listener`."""
        limits = self.limits
        return limits.listener_creation_rate.get(listener, INT_MAX) < INT_MAX or (
            limits.creation_rate < INT_MAX and not self._protected(listener)
        )

    def over_broker_limit(self) -> bool:
        """More connections than max.connections (only the inter-broker listener takes it there)."""
        return self.total > self.limits.max_connections

    def _rate(self, table: dict[str, SampledRate], key: str) -> SampledRate:
        rate = table.get(key)
        if rate is None:
            rate = table[key] = SampledRate(self.limits.samples, self.limits.window)
        return rate

    def _broker(self) -> SampledRate:
        if self._broker_rate is None:
            self._broker_rate = SampledRate(self.limits.samples, self.limits.window)
        return self._broker_rate

    def accept_delay_ms(self, listener: str, now: float) -> int:
        """Milliseconds to wait before accepting on `listener` (0: accept now)."""
        limits = self.limits
        delay = 0
        bound = limits.listener_creation_rate.get(listener, INT_MAX)
        if bound < INT_MAX:
            delay = self._rate(self._listener_rates, listener).throttle_ms(max(bound, 1e-9), now)
        if limits.creation_rate < INT_MAX and not self._protected(listener):
            delay = max(delay, self._broker().throttle_ms(max(limits.creation_rate, 1e-9), now))
        if delay > 0:
            avg = self._accept_throttle.get(listener)
            if avg is None:
                avg = self._accept_throttle[listener] = SampledAvg.new(METRIC_SAMPLES, METRIC_WINDOW)
            avg.record(float(delay), now)
        return delay

    def block_started(self, listener: str, now: float) -> None:
        """An accept loop of `listener` waits (max.connections, a creation rate) from `now`."""
        waiting, since = self._blocked_now.get(listener, (0, now))
        self._blocked_now[listener] = (waiting + 1, since)

    def block_ended(self, listener: str, now: float) -> None:
        waiting, since = self._blocked_now.pop(listener, (1, now))
        if waiting > 1:  # another accept loop of the listener (another address) still waits
            self._blocked_now[listener] = (waiting - 1, since)
        else:
            self._blocked[listener] = self._blocked.get(listener, 0.0) + max(0.0, now - since)

    def blocked_seconds(self, listener: str, now: float) -> float:
        """Seconds `listener`'s acceptor has waited, up to `now` (a wait going on included)."""
        total = self._blocked.get(listener, 0.0)
        current = self._blocked_now.get(listener)
        if current is not None:
            total += max(0.0, now - current[1])
        return total

    def accept_throttle_ms(self, listener: str, now: float) -> float:
        """The average accept delay (ms) the creation rates gave `listener` over the last minute; 0: none."""
        avg = self._accept_throttle.get(listener)
        return avg.value(now) if avg is not None else 0.0

    def admit(self, listener: str, ip: str, now: float) -> tuple[str, int]:
        """After an accept: (ACCEPTED, 0) and counted, (TOO_MANY, the IP's limit): close it now,
        or (THROTTLED, ms): the IP is over its connection_creation_rate, close it after ms."""
        limits = self.limits
        quota = self.ip_quota(ip) if self.ip_quota is not None else None
        if quota is not None:
            if now - self._swept > 60.0:
                self._sweep(now)
            rate = self._rate(self._ip_rates, ip)
            rate.record(1.0, now)
            throttle = rate.throttle_ms(quota, now)
            if throttle > 0:
                rate.unrecord(1.0, now)
                return THROTTLED, throttle
        limit = limits.per_ip_overrides.get(ip, limits.max_per_ip)
        if self.by_ip.get(ip, 0) >= limit:
            return TOO_MANY, limit
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        self.by_listener[listener] = self.by_listener.get(listener, 0) + 1
        self.total += 1
        if limits.listener_creation_rate.get(listener, INT_MAX) < INT_MAX:
            self._rate(self._listener_rates, listener).record(1.0, now)
        if limits.creation_rate < INT_MAX and not self._protected(listener):
            self._broker().record(1.0, now)
        return ACCEPTED, 0

    def release(self, listener: str, ip: str) -> None:
        count = self.by_ip.get(ip, 0) - 1
        if count > 0:
            self.by_ip[ip] = count
        else:
            self.by_ip.pop(ip, None)
        self.by_listener[listener] = max(0, self.by_listener.get(listener, 0) - 1)
        self.total = max(0, self.total - 1)

    def _sweep(self, now: float) -> None:
        """Forget IP rate sensors unused for an hour (Kafka expires them the same way)."""
        self._swept = now
        for ip in [ip for ip, r in self._ip_rates.items() if now - r.last_used > 3600]:
            del self._ip_rates[ip]
