"""Client quotas, sans-IO (kafkapy.server.quotas) and the file store; the broker-level behaviour is in
interop/test_quotas.py (against Kafka 4.3.1's answers and with real clients)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kafkapy.cluster.quota_store import FileQuotaStore, decode_entity, encode_entity
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.server.quotas import (
    CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    QuotaError,
    QuotaManager,
    SampledRate,
    TokenBucket,
    entity_string,
    matches,
    mutation_quota,
    validate_entry,
)


def test_sampled_rate_lets_a_burst_pass_then_throttles_as_kafka() -> None:
    rate = SampledRate(samples=11, window=1.0)
    # the rate divides by at least 10 windows: 10 s worth of quota passes before the first throttle
    rate.record(9_000_000, 0.0)
    assert rate.throttle_ms(1_000_000, 0.0) == 0
    rate.record(2_000_000, 0.5)
    # 11 MB over 10.5 s against 1 MB/s: (11/10.5 - 1) / 1 x 10.5 s = 0.5 s
    assert rate.throttle_ms(1_000_000, 0.5) == 500
    # samples older than the whole window are forgotten
    assert rate.rate(30.0) == 0.0


def test_sampled_rate_window_grows_with_elapsed_time() -> None:
    rate = SampledRate(samples=2, window=1.0)
    rate.record(30_000, 0.0)
    assert rate.window_size(0.0) == 1.0
    assert rate.throttle_ms(20_000, 0.0) == 500  # (30k - 20k) / 20k x 1 s
    rate.record(10_000, 1.5)
    assert rate.window_size(1.5) == pytest.approx(1.5)


def test_precedence_and_sharing() -> None:
    m = QuotaManager(samples=2, window=1.0)
    m.update(
        {
            (("user", "alice"),): {PRODUCER_BYTE_RATE: 100.0},
            (("client-id", "app"), ("user", "alice")): {PRODUCER_BYTE_RATE: 200.0},
            (("client-id", None), ("user", None)): {CONSUMER_BYTE_RATE: 300.0},
            (("client-id", "app"),): {PRODUCER_BYTE_RATE: 400.0, REQUEST_PERCENTAGE: 50.0},
            (("client-id", None),): {PRODUCER_BYTE_RATE: 500.0},
        }
    )
    got = m.governing("User:alice", "app", PRODUCER_BYTE_RATE)
    assert got is not None and (got.value, got.tags) == (200.0, ("alice", "app"))
    got = m.governing("User:alice", "other", PRODUCER_BYTE_RATE)  # alice's own quota, shared by her clients
    assert got is not None and (got.value, got.tags) == (100.0, ("alice", ""))
    got = m.governing("User:bob", "app", PRODUCER_BYTE_RATE)  # no user quota for bob: the client-id's
    assert got is not None and (got.value, got.tags) == (400.0, ("", "app"))
    got = m.governing("User:bob", "x", PRODUCER_BYTE_RATE)  # the default client-id: each its own sensor
    assert got is not None and (got.value, got.tags) == (500.0, ("", "x"))
    got = m.governing("User:bob", "x", CONSUMER_BYTE_RATE)  # (default user, default client) beats clients
    assert got is not None and (got.value, got.tags) == (300.0, ("bob", "x"))
    assert m.governing("User:bob", "x", REQUEST_PERCENTAGE) is None
    assert m.governing("User:alice", "app", REQUEST_PERCENTAGE) is not None  # per key: the client-id's


def test_manager_records_throttles_and_a_removed_quota_lifts() -> None:
    m = QuotaManager(samples=2, window=1.0)
    assert not m.active
    m.update({(("client-id", "p"),): {PRODUCER_BYTE_RATE: 1000.0}})
    assert m.active
    assert m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 1000, 0.0) == 0
    assert m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 2000, 0.1) > 0
    assert m.record("User:ANONYMOUS", "other", PRODUCER_BYTE_RATE, 10**9, 0.1) == 0  # not governed
    m.update({})
    assert not m.active and not m.rates
    assert m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 10**9, 0.2) == 0


def test_manager_metric_rows_as_kafkas_quota_sensors() -> None:
    """Each sensor in use: its rate (byte-rate / request-time) and the average throttle it gave."""
    m = QuotaManager(samples=2, window=1.0)
    m.update({(("client-id", "p"),): {PRODUCER_BYTE_RATE: 1000.0}, (("user", "alice"),): {REQUEST_PERCENTAGE: 50.0}})
    assert m.metric_rows(0.0) == []  # no sensor until a governed client is recorded
    assert m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 1000, 0.0) == 0
    assert m.metric_rows(0.0) == [("Produce", "byte-rate", "", "p", 1000.0), ("Produce", "throttle-time", "", "p", 0.0)]
    first = m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 2000, 0.5)
    second = m.record("User:ANONYMOUS", "p", PRODUCER_BYTE_RATE, 2000, 0.6)
    assert 0 < first < second
    rows = {(r, a): (u, c, v) for r, a, u, c, v in m.metric_rows(0.6)}
    assert rows[("Produce", "throttle-time")] == ("", "p", (first + second) / 2)
    assert m.record("User:alice", "any", REQUEST_PERCENTAGE, 20.0, 0.6) == 0
    rows = {(r, a): (u, c, v) for r, a, u, c, v in m.metric_rows(0.6)}
    assert rows[("Request", "request-time")] == ("alice", "", 20.0)
    assert rows[("Request", "throttle-time")] == ("alice", "", 0.0)
    # the throttles leave the average once their samples are out of the window (2 x 1 s)
    assert {(r, a): v for r, a, _, _, v in m.metric_rows(5.0)}[("Produce", "throttle-time")] == 0.0


def test_controller_mutation_metric_rows() -> None:
    """KIP-599's bucket: mutation-rate, tokens left, and the average throttle of the responses."""
    m = QuotaManager(mutation_samples=2, mutation_window=1.0)
    m.update({(("client-id", "admin"),): {CONTROLLER_MUTATION_RATE: 1.0}})
    strict = mutation_quota(m, "User:ANONYMOUS", "admin", strict=True)
    assert strict.admit(5, 0.0) and strict.throttle_ms(0.0) == 0  # a burst of 2 tokens: 5 taken, 3 owed
    rows = {a: (r, u, c, v) for r, a, u, c, v in m.metric_rows(0.0)}
    assert rows["mutation-rate"] == ("ControllerMutation", "", "admin", 5.0)
    assert rows["tokens"] == ("ControllerMutation", "", "admin", -3.0)
    assert rows["throttle-time"] == ("ControllerMutation", "", "admin", 0.0)
    refused = mutation_quota(m, "User:ANONYMOUS", "admin", strict=True)
    assert not refused.admit(1, 1.0) and refused.throttle_ms(1.0) == 2000  # 2 tokens still owed at 1 s
    rows = {a: v for _, a, _, _, v in m.metric_rows(1.0)}
    assert (rows["tokens"], rows["throttle-time"]) == (-2.0, 2000.0)


def test_controller_mutation_quota_strict_and_permissive() -> None:
    m = QuotaManager(mutation_samples=2, mutation_window=1.0)
    m.update({(("client-id", "admin"),): {CONTROLLER_MUTATION_RATE: 1.0}})
    strict = mutation_quota(m, "User:ANONYMOUS", "admin", strict=True)
    assert strict.admit(3, 0.0)  # the bucket holds 2: one request may take it below zero
    assert strict.throttle_ms(0.0) == 0  # as Kafka: no throttle time without a refusal
    assert not strict.admit(1, 0.5)  # -1 + 0.5 < 0: refused
    assert strict.throttle_ms(0.5) == 500
    permissive = mutation_quota(m, "User:ANONYMOUS", "admin", strict=False)
    assert permissive.admit(1, 0.5)
    assert permissive.throttle_ms(0.5) == 1500
    unbounded = mutation_quota(m, "User:ANONYMOUS", "someone-else", strict=True)
    assert unbounded.admit(1000, 0.5) and unbounded.throttle_ms(0.5) == 0
    bucket = TokenBucket(samples=2, window=1.0)
    assert bucket.refill(5.0, 0.0) == 10.0  # starts full


@pytest.mark.parametrize(
    ("pairs", "ops", "message"),
    [
        ([("client-id", "c")], [(PRODUCER_BYTE_RATE, -1.0, False)], "Quota producer_byte_rate must be greater than 0"),
        ([("client-id", "c")], [(PRODUCER_BYTE_RATE, 0.0, False)], "Quota producer_byte_rate must be greater than 0"),
        ([("client-id", "c")], [(PRODUCER_BYTE_RATE, 1.5, False)], "producer_byte_rate cannot be a fractional value."),
        ([("client-id", "c")], [("foo", 1.0, False)], "Invalid configuration key foo"),
        ([], [(PRODUCER_BYTE_RATE, 1.0, False)], "Invalid empty client quota entity"),
        ([("user", "")], [(PRODUCER_BYTE_RATE, 1.0, False)], "Empty user not supported"),
        ([("group", "g")], [(PRODUCER_BYTE_RATE, 1.0, False)], "Unhandled client quota entity type: group"),
        ([("ip", "x")], [("connection_creation_rate", 1.0, False)], "x is not a valid IP or resolvable host."),
        ([("ip", "1.2.3.4")], [(PRODUCER_BYTE_RATE, 1.0, False)], "Invalid configuration key producer_byte_rate"),
    ],
)
def test_validation_as_kafka(
    pairs: list[tuple[str, str | None]], ops: list[tuple[str, float, bool]], message: str
) -> None:
    with pytest.raises(QuotaError) as e:
        validate_entry(pairs, ops)
    assert (e.value.code, e.value.message) == (ErrorCode.INVALID_REQUEST, message)


def test_valid_entries() -> None:
    assert validate_entry([("user", "a"), ("user", "b")], [(PRODUCER_BYTE_RATE, 5.0, False)]) == (("user", "b"),)
    assert validate_entry([("client-id", "c")], [(REQUEST_PERCENTAGE, 250.5, False), ("foo", 0.0, True)])
    assert entity_string((("client-id", None), ("user", "u"))) == "ClientQuotaEntity(entries={client-id=null, user=u})"


def test_describe_matching() -> None:
    pair = (("client-id", "c"), ("user", "u"))
    user_default = (("user", None),)
    assert matches(pair, [("user", 0, "u")], strict=False)
    assert not matches(pair, [("user", 0, "u")], strict=True)
    assert matches(pair, [("user", 2, None), ("client-id", 2, None)], strict=True)
    assert matches(user_default, [("user", 1, None)], strict=True)
    assert not matches(user_default, [("user", 0, "u")], strict=False)
    assert not matches(pair, [], strict=True) and matches(pair, [], strict=False)


def test_file_store_persists(tmp_path: Path) -> None:
    entity = (("client-id", "a&b=<default>"), ("user", None))
    assert decode_entity(encode_entity(entity)) == entity
    store = FileQuotaStore(tmp_path)
    seen: list[int] = []
    store.listener = lambda image: seen.append(len(image))
    asyncio.run(store.alter({entity: {PRODUCER_BYTE_RATE: 10.0}, (("user", "x"),): {}}))
    assert seen == [1]
    assert FileQuotaStore(tmp_path).quotas() == {entity: {PRODUCER_BYTE_RATE: 10.0}}
    asyncio.run(store.alter({entity: {}}))
    assert FileQuotaStore(tmp_path).quotas() == {}


def test_cli_set_describe_delete(kafka_broker: Any) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kafkapy", "quotas", *args, "-b", kafka_broker.bootstrap],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert cli("set", "--user", "alice", "--default-client-id", "producer_byte_rate=1024").returncode == 0
    assert cli("set", "--client-id", "app", "request_percentage=12.5", "consumer_byte_rate=2048").returncode == 0
    assert cli("describe").stdout.splitlines() == [
        "client-id=<default> user=alice\tproducer_byte_rate=1024",
        "client-id=app\tconsumer_byte_rate=2048, request_percentage=12.5",
    ]
    assert cli("describe", "--user", "alice", "--strict").stdout == ""
    refused = cli("set", "--client-id", "app", "producer_byte_rate=-1")
    assert refused.returncode == 1 and "Quota producer_byte_rate must be greater than 0" in refused.stderr
    assert cli("set", "producer_byte_rate=1").returncode == 2  # no entity named
    assert cli("delete", "--client-id", "app", "consumer_byte_rate", "request_percentage").returncode == 0
    assert cli("describe", "--client-id", "app").stdout == ""
