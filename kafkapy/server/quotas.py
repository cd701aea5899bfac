"""Client quotas as Kafka enforces them (KIP-13, KIP-55, KIP-124, KIP-219, KIP-599): sans-IO.

- `validate_entry`: AlterClientQuotas' checks of one entry, with Apache Kafka 4.3.1's error codes and
  messages (checked against it by interop/diff_quotas.py).
- `QuotaTable`: the quotas configured (entity -> {key: value}) and the resolution of a connection's
  (user, client-id) to the quota that governs it, per quota key, in Kafka's precedence:

      (user, client-id) > (user, <default> client-id) > user > (<default> user, client-id)
      > (<default> user, <default> client-id) > <default> user > client-id > <default> client-id

  A quota matched through a default is held by each user / client-id on its own; a quota on a user
  alone is shared by all of that user's client-ids (Kafka's quota metric tags).
- `SampledRate`: Kafka's `Rate` over a `SampledStat`: `quota.window.num` samples of
  `quota.window.size.seconds`; the window a rate divides by is at least `num - 1` sample windows, so a
  short burst passes before the first throttle. Throttle time = (rate - quota) / quota x window
  (not bounded: Kafka 4.3.1 answers a produce burst far over its quota with several seconds).
- `TokenBucket`: KIP-599's controller mutation quota: a bucket of `quota x window.num x window.size`
  partition mutations, refilled at `quota` per second; a request may take it below zero, the next
  strict request (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+) is refused with
  THROTTLING_QUOTA_EXCEEDED while it is, older versions are served and throttled.
- `QuotaManager`: the broker's sensors. `active` is False while no quota is configured: the request
  path looks at that one flag and does nothing else.

Times are seconds from a monotonic clock, passed in by the caller.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.cluster.quota_store import Entity
from kafkapy.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from kafkapy.config import BrokerConfig

USER, CLIENT_ID, IP = "user", "client-id", "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

LONG, INT, DOUBLE = "LONG", "INT", "DOUBLE"
# the keys Kafka accepts, with their ConfigDef types
CLIENT_KEYS: dict[str, str] = {
    PRODUCER_BYTE_RATE: LONG,
    CONSUMER_BYTE_RATE: LONG,
    REQUEST_PERCENTAGE: DOUBLE,
    CONTROLLER_MUTATION_RATE: DOUBLE,
}
IP_KEYS: dict[str, str] = {CONNECTION_CREATION_RATE: INT}
# Kafka's quota metrics of each key's sensor: the MBean type (kafka.server:type=T,user=U,client-id=C) and
# the attribute of its rate; each also has `throttle-time` (the average throttle it gave). The controller
# mutation buckets are type=ControllerMutation: mutation-rate, tokens, throttle-time
QUOTA_METRICS: dict[str, tuple[str, str]] = {
    PRODUCER_BYTE_RATE: ("Produce", "byte-rate"),
    CONSUMER_BYTE_RATE: ("Fetch", "byte-rate"),
    REQUEST_PERCENTAGE: ("Request", "request-time"),
}
_LIMITS = {LONG: 2**63 - 1, INT: 2**31 - 1}


class QuotaError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def entity_map(pairs: list[tuple[str, str | None]]) -> dict[str, str | None]:
    """An entry's entity as Kafka reads it: a map, so a type named twice keeps its last name."""
    return {kind: name for kind, name in pairs}


def entity_string(entity: Entity) -> str:
    """Kafka's ClientQuotaEntity.toString (its HashMap puts client-id before ip before user)."""
    order = {CLIENT_ID: 0, IP: 1, USER: 2}
    inner = ", ".join(
        f"{k}={'null' if v is None else v}" for k, v in sorted(entity, key=lambda kv: order.get(kv[0], 3))
    )
    return f"ClientQuotaEntity(entries={{{inner}}})"


def validate_entity(pairs: list[tuple[str, str | None]]) -> Entity:
    """The entity of an AlterClientQuotas entry, or QuotaError as Kafka's controller answers."""
    seen = entity_map(pairs)
    if not seen:
        raise QuotaError(ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity")
    for kind, name in seen.items():
        if kind not in (USER, CLIENT_ID, IP):
            raise QuotaError(ErrorCode.INVALID_REQUEST, f"Unhandled client quota entity type: {kind}")
        if name == "":
            raise QuotaError(ErrorCode.INVALID_REQUEST, f"Empty {kind} not supported")
    if IP in seen:
        if len(seen) > 1:
            raise QuotaError(
                ErrorCode.INVALID_REQUEST,
                # sic: Kafka 4.3.1's message
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
            )
        address = seen[IP]
        if address is not None:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise QuotaError(
                    ErrorCode.INVALID_REQUEST, f"{address} is not a valid IP or resolvable host."
                ) from None
    return tuple(sorted(seen.items()))


def validate_value(entity: Entity, key: str, value: float) -> None:
    """One key and value for `entity`, or QuotaError as Kafka's controller answers."""
    keys = IP_KEYS if entity and entity[0][0] == IP else CLIENT_KEYS
    kind = keys.get(key)
    if kind is None:
        raise QuotaError(ErrorCode.INVALID_REQUEST, f"Invalid configuration key {key}")
    if value <= 0.0:
        raise QuotaError(ErrorCode.INVALID_REQUEST, f"Quota {key} must be greater than 0")
    if kind in _LIMITS:
        if value > _LIMITS[kind]:
            raise QuotaError(ErrorCode.INVALID_REQUEST, f"Proposed value for {key} is too large for a {kind}.")
        if abs(math.fmod(value, 1.0)) > 1e-6:
            raise QuotaError(ErrorCode.INVALID_REQUEST, f"{key} cannot be a fractional value.")


def validate_entry(pairs: list[tuple[str, str | None]], ops: list[tuple[str, float, bool]]) -> Entity:
    """An AlterClientQuotas entry's entity once every check passed, or QuotaError."""
    entity = validate_entity(pairs)
    for key, value, remove in ops:
        if not remove:  # Kafka checks no removal: removing a key not set (or unknown) does nothing
            validate_value(entity, key, value)
    return entity


def apply_ops(current: dict[str, float], ops: list[tuple[str, float, bool]]) -> dict[str, float]:
    """The entity's quotas after `ops` (in order; removing an unset key is a no-op)."""
    result = dict(current)
    for key, value, remove in ops:
        if remove:
            result.pop(key, None)
        else:
            result[key] = float(value)
    return result


# ---------------------------------------------------------------- DescribeClientQuotas matching

MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY = 0, 1, 2


def matches(entity: Entity, components: list[tuple[str, int, str | None]], strict: bool) -> bool:
    """Whether `entity` answers a DescribeClientQuotas filter (already validated): every component
    matches the entity's name of its type (exact name, the default, or any); strict: the entity has
    no other types. A non-strict filter also matches entities without a component's type only when
    the filter does not name it."""
    names = dict(entity)
    for kind, match_type, match in components:
        if kind not in names:
            return False
        name = names[kind]
        if match_type == MATCH_EXACT and name != match:
            return False
        if match_type == MATCH_DEFAULT and name is not None:
            return False
    return not strict or len(names) == len(components)


# ---------------------------------------------------------------- resolution


def _precedence(user: str, client_id: str) -> list[tuple[Entity, tuple[str, str]]]:
    """The entities that may govern (user, client_id), most specific first, with the metric tags a
    match gives (the sensor that counts for it)."""
    both = (user, client_id)
    return [
        (((CLIENT_ID, client_id), (USER, user)), both),
        (((CLIENT_ID, None), (USER, user)), both),
        (((USER, user),), (user, "")),
        (((CLIENT_ID, client_id), (USER, None)), both),
        (((CLIENT_ID, None), (USER, None)), both),
        (((USER, None),), (user, "")),
        (((CLIENT_ID, client_id),), ("", client_id)),
        (((CLIENT_ID, None),), ("", client_id)),
    ]


@dataclass(slots=True, frozen=True)
class Governing:
    """The quota of one key for a (user, client-id), and the sensor tags that count it."""

    value: float
    tags: tuple[str, str]


@dataclass(slots=True)
class QuotaTable:
    quotas: dict[Entity, dict[str, float]] = field(default_factory=dict)
    # (user, client_id) -> key -> the governing quota (None: unlimited); cleared on every change
    _resolved: dict[tuple[str, str], dict[str, Governing | None]] = field(default_factory=dict)
    keys_in_use: frozenset[str] = frozenset()

    def replace(self, quotas: dict[Entity, dict[str, float]]) -> None:
        self.quotas = {e: dict(v) for e, v in quotas.items() if v}
        self._resolved = {}
        self.keys_in_use = frozenset(k for v in self.quotas.values() for k in v if k in CLIENT_KEYS)

    def resolve(self, user: str, client_id: str) -> dict[str, Governing | None]:
        pair = (user, client_id)
        found = self._resolved.get(pair)
        if found is not None:
            return found
        found = {}
        order = _precedence(user, client_id)
        for key in CLIENT_KEYS:
            found[key] = None
            for entity, tags in order:
                values = self.quotas.get(entity)
                if values is not None and key in values:
                    found[key] = Governing(values[key], tags)
                    break
        if len(self._resolved) > 100_000:
            self._resolved.clear()
        self._resolved[pair] = found
        return found


# ---------------------------------------------------------------- rates


@dataclass(slots=True)
class SampledRate:
    """Kafka's Rate (per second) over `samples` windows of `window` seconds."""

    samples: int
    window: float
    starts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    current: int = 0
    last_used: float = 0.0

    def record(self, value: float, now: float) -> None:
        self.last_used = now
        if not self.starts:
            self.starts.append(now)
            self.values.append(value)
            return
        i = self.current
        if now - self.starts[i] >= self.window:  # the current sample is complete: the next one
            i = (i + 1) % self.samples
            if i == len(self.starts):
                self.starts.append(now)
                self.values.append(0.0)
            else:
                self.starts[i], self.values[i] = now, 0.0
            self.current = i
        self.values[i] += value

    def _purge(self, now: float) -> None:
        horizon = self.samples * self.window
        for i, start in enumerate(self.starts):
            if now - start >= horizon:
                self.starts[i], self.values[i] = now, 0.0

    def window_size(self, now: float) -> float:
        """Seconds the rate divides by: since the oldest sample, at least samples - 1 windows."""
        self._purge(now)
        elapsed = now - min(self.starts) if self.starts else 0.0
        full = int(elapsed / self.window)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window
        return max(elapsed, 0.001)

    def rate(self, now: float) -> float:
        size = self.window_size(now)
        return sum(self.values) / size

    def unrecord(self, value: float, now: float) -> None:
        if self.values:
            self.values[self.current] -= value

    def throttle_ms(self, bound: float, now: float) -> int:
        """Kafka's throttle time for a rate over `bound`: (rate - bound) / bound x window; 0 within."""
        size = self.window_size(now)
        observed = sum(self.values) / size
        if observed <= bound:
            return 0
        return round((observed - bound) / bound * size * 1000)


@dataclass(slots=True)
class SampledAvg:
    """Kafka's Avg over `samples` windows of `window` seconds: the sum of the values recorded in the
    samples still held over their count, 0 with none (a quota sensor's throttle-time)."""

    total: SampledRate
    count: SampledRate

    @classmethod
    def new(cls, samples: int, window: float) -> SampledAvg:
        return cls(SampledRate(samples, window), SampledRate(samples, window))

    def record(self, value: float, now: float) -> None:
        self.total.record(value, now)
        self.count.record(1.0, now)

    def value(self, now: float) -> float:
        self.total.window_size(now)  # forgets the samples past the window
        self.count.window_size(now)
        n = sum(self.count.values)
        return sum(self.total.values) / n if n > 0 else 0.0


@dataclass(slots=True)
class TokenBucket:
    """KIP-599's token bucket: `rate` tokens per second, at most rate x samples x window."""

    samples: int
    window: float
    tokens: float = math.inf
    updated: float = 0.0
    last_used: float = 0.0
    quota: float = 0.0  # the rate it was last used with (its `tokens` metric refills at it)
    # Kafka's ControllerMutation metrics: mutation-rate (partitions taken) and throttle-time
    mutations: SampledRate | None = None
    throttles: SampledAvg | None = None

    def refill(self, rate: float, now: float) -> float:
        burst = rate * self.samples * self.window
        self.tokens = min(burst, self.tokens + rate * (now - self.updated))
        self.updated = now
        return self.tokens

    def record(self, rate: float, permits: float, now: float) -> None:
        self.last_used = now
        self.refill(rate, now)
        self.tokens -= permits
        if self.mutations is None:
            self.mutations = SampledRate(self.samples, self.window)
        self.mutations.record(permits, now)

    def throttled(self, ms: int, now: float) -> None:
        """A response throttled `ms` by this bucket (its throttle-time metric)."""
        if self.throttles is None:
            self.throttles = SampledAvg.new(self.samples, self.window)
        self.throttles.record(ms, now)

    def throttle_ms(self, rate: float, now: float) -> int:
        tokens = self.refill(rate, now)
        return 0 if tokens >= 0 else round(-tokens / rate * 1000)


def user_of(principal: str) -> str:
    """The user name of a principal ("User:alice" -> "alice"; ANONYMOUS for an unauthenticated one)."""
    return principal.partition(":")[2] or principal


THROTTLING_QUOTA_EXCEEDED_MESSAGE = "The throttling quota has been exceeded."


@dataclass(slots=True)
class QuotaManager:
    """The broker's quota sensors over a `QuotaTable`.

    `active` is False while no client quota is configured: callers test it first and skip everything.
    """

    samples: int = 11
    window: float = 1.0
    mutation_samples: int = 11
    mutation_window: float = 1.0
    table: QuotaTable = field(default_factory=QuotaTable)
    active: bool = False
    rates: dict[tuple[str, str, str], SampledRate] = field(default_factory=dict)
    # the throttle times each rate's sensor gave (Kafka's throttle-time metric), only those above 0
    throttles: dict[tuple[str, str, str], SampledAvg] = field(default_factory=dict)
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _swept: float = 0.0
    _governs: dict[tuple[str, str], bool] = field(default_factory=dict)  # (principal, client_id) -> any quota

    @classmethod
    def from_config(cls, config: BrokerConfig) -> QuotaManager:
        return cls(
            samples=config.quota_window_num,
            window=float(config.quota_window_size_seconds),
            mutation_samples=config.controller_quota_window_num,
            mutation_window=float(config.controller_quota_window_size_seconds),
        )

    def update(self, quotas: dict[Entity, dict[str, float]]) -> None:
        """The configured quotas changed (the store's whole image): re-resolve from the next request.
        Sensors of keys no longer governed are dropped, so a removed quota lifts at once."""
        self.table.replace(quotas)
        self._governs = {}
        self.active = bool(self.table.keys_in_use)
        if not self.active:
            self.rates.clear()
            self.throttles.clear()
            self.buckets.clear()

    def connection_rate(self, ip: str) -> float | None:
        """The connection_creation_rate quota of an IP (KIP-612): its own, else the default IP quota;
        None: none (the network layer's accept loop asks on every accept)."""
        quotas = self.table.quotas
        if not quotas:
            return None
        for entity in (((IP, ip),), ((IP, None),)):
            values = quotas.get(entity)
            if values is not None and CONNECTION_CREATION_RATE in values:
                return values[CONNECTION_CREATION_RATE]
        return None

    def governs(self, principal: str, client_id: str) -> bool:
        """Whether any quota governs (principal, client_id): one dict lookup once resolved."""
        pair = (principal, client_id)
        found = self._governs.get(pair)
        if found is None:
            resolved = self.table.resolve(user_of(principal), client_id)
            found = any(q is not None for q in resolved.values())
            if len(self._governs) > 100_000:
                self._governs.clear()
            self._governs[pair] = found
        return found

    def governing(self, principal: str, client_id: str, key: str) -> Governing | None:
        if key not in self.table.keys_in_use:
            return None
        return self.table.resolve(user_of(principal), client_id)[key]

    def _rate(self, key: str, tags: tuple[str, str], now: float) -> SampledRate:
        sensor_key = (key, tags[0], tags[1])
        rate = self.rates.get(sensor_key)
        if rate is None:
            if now - self._swept > 60.0:
                self._sweep(now)
            rate = self.rates[sensor_key] = SampledRate(self.samples, self.window)
        return rate

    def _sweep(self, now: float) -> None:
        """Forget sensors unused for an hour (Kafka expires its quota sensors the same way)."""
        self._swept = now
        for k in [k for k, r in self.rates.items() if now - r.last_used > 3600]:
            del self.rates[k]
            self.throttles.pop(k, None)
        for b in [b for b, t in self.buckets.items() if now - t.last_used > 3600]:
            del self.buckets[b]

    def record(self, principal: str, client_id: str, key: str, value: float, now: float) -> int:
        """Record `value` (bytes, or request time in percent of one thread-second) on the sensor that
        governs (principal, client_id) for `key`; the throttle time it earns (0: none, or no quota)."""
        quota = self.governing(principal, client_id, key)
        if quota is None:
            return 0
        rate = self._rate(key, quota.tags, now)
        rate.record(value, now)
        throttle = rate.throttle_ms(quota.value, now)
        if throttle:  # rare: only a client over its quota
            sensor = (key, quota.tags[0], quota.tags[1])
            avg = self.throttles.get(sensor)
            if avg is None:
                avg = self.throttles[sensor] = SampledAvg.new(self.samples, self.window)
            avg.record(throttle, now)
        return throttle

    def unrecord(self, principal: str, client_id: str, key: str, value: float, now: float) -> None:
        quota = self.governing(principal, client_id, key)
        if quota is not None:
            self._rate(key, quota.tags, now).unrecord(value, now)

    def max_bytes_in_window(self, principal: str, client_id: str, key: str) -> int | None:
        """Kafka bounds a fetch's max_bytes by what the quota allows over the shortest window a rate
        divides by, `window.num - 1` samples (None: no quota); a fetch still returns at least a batch."""
        quota = self.governing(principal, client_id, key)
        if quota is None:
            return None
        return int(quota.value * (self.samples - 1) * self.window)

    def metric_rows(self, now: float) -> list[tuple[str, str, str, str, float]]:
        """Kafka's client quota metrics, for /metrics: (MBean type, attribute, user tag, client-id tag,
        value) of every sensor in use: its rate (`byte-rate` or `request-time`) and `throttle-time`, the
        average throttle in ms it gave over the quota window (0 when it gave none)."""
        rows = []
        for sensor, rate in sorted(self.rates.items()):
            key, user, client_id = sensor
            resource, attribute = QUOTA_METRICS.get(key, (key, "rate"))
            rows.append((resource, attribute, user, client_id, rate.rate(now)))
            avg = self.throttles.get(sensor)
            rows.append((resource, "throttle-time", user, client_id, avg.value(now) if avg is not None else 0.0))
        for (user, client_id), bucket in sorted(self.buckets.items()):
            # KIP-599's: the partitions mutated per second, the tokens left (below 0: throttling), throttle-time
            mutations = bucket.mutations.rate(now) if bucket.mutations is not None else 0.0
            tokens = bucket.refill(bucket.quota, now) if bucket.quota > 0 else bucket.tokens
            throttle = bucket.throttles.value(now) if bucket.throttles is not None else 0.0
            for attribute, number in (("mutation-rate", mutations), ("tokens", tokens), ("throttle-time", throttle)):
                rows.append(("ControllerMutation", attribute, user, client_id, number))
        return rows

    # -- controller mutations (KIP-599)

    def mutation_bucket(self, principal: str, client_id: str) -> tuple[TokenBucket, float] | None:
        quota = self.governing(principal, client_id, CONTROLLER_MUTATION_RATE)
        if quota is None:
            return None
        bucket = self.buckets.get(quota.tags)
        if bucket is None:
            bucket = self.buckets[quota.tags] = TokenBucket(self.mutation_samples, self.mutation_window)
        bucket.quota = quota.value
        return bucket, quota.value


@dataclass(slots=True)
class MutationQuota:
    """One request's view of the controller mutation quota (KIP-599). Strict (CreateTopics v6+,
    CreatePartitions v3+, DeleteTopics v5+): a topic is refused while the bucket is below zero, and only
    a refusal gives the response a throttle time (as Kafka 4.3.1); permissive: every topic is admitted
    and the response is throttled as long as the bucket is below zero."""

    bucket: TokenBucket | None
    rate: float
    strict: bool
    refused_throttle_ms: int = 0

    def admit(self, permits: int, now: float) -> bool:
        """Take `permits` (partitions to create or delete); False: refused, THROTTLING_QUOTA_EXCEEDED."""
        if self.bucket is None:
            return True
        if self.strict and self.bucket.refill(self.rate, now) < 0:
            self.refused_throttle_ms = self.bucket.throttle_ms(self.rate, now)
            return False
        self.bucket.record(self.rate, permits, now)
        return True

    def throttle_ms(self, now: float) -> int:
        """The response's throttle (asked once per response: also counted in the bucket's throttle-time)."""
        if self.bucket is None:
            return 0
        ms = self.refused_throttle_ms if self.strict else self.bucket.throttle_ms(self.rate, now)
        if ms > 0:
            self.bucket.throttled(ms, now)
        return ms


def mutation_quota(manager: QuotaManager, principal: str, client_id: str, strict: bool) -> MutationQuota:
    """The controller mutation quota of one request (unbounded without a quota)."""
    if not manager.active:
        return MutationQuota(None, 0.0, strict)
    found = manager.mutation_bucket(principal, client_id)
    if found is None:
        return MutationQuota(None, 0.0, strict)
    return MutationQuota(found[0], found[1], strict)
