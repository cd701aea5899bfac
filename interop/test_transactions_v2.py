"""Transactions v2 (KIP-890 part 2) with the Java 4.3.1 clients: kafkapy finalizes transaction.version 2,
so the transactional producer sends EndTxn v5, Produce v12+ and TxnOffsetCommit v5 and no longer
AddPartitionsToTxn or AddOffsetsToTxn (counted by the broker: RequestsPerSec by version), and
consume-transform-produce with sendOffsetsToTransaction still commits and aborts exactly; librdkafka
(confluent-kafka) stays on the classic protocol against the same broker."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

import confluent_kafka as ck
import pytest

from interop._common import Out, unique_topic, wait_until
from interop.adapters.java import JavaClient, available, b64, to_in
from interop.test_transactions import create_topic

_missing = available()


def _requests(port: int) -> dict[str, set[int]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    used: dict[str, set[int]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "kafka_network_requestmetrics_requests_total" and s.value > 0:
                used[s.labels["request"]].add(int(s.labels["version"]))
    return dict(used)


def _broker(factory: Any) -> tuple[Any, int]:
    from kafkapy.testing import free_port

    port = free_port()
    return factory(extra_args=["--metrics-listen", f"127.0.0.1:{port}"]), port


@pytest.mark.skipif(_missing is not None, reason=str(_missing))
def test_java_producer_runs_transactions_v2(kafka_broker_factory: Any) -> None:
    broker, port = _broker(kafka_broker_factory)
    a, b = JavaClient(), broker.bootstrap
    source, sink = unique_topic("tv2-src"), unique_topic("tv2-sink")
    group, txn_id = unique_topic("tv2-g"), unique_topic("tv2-t")
    a.create_topic(b, source, 2)
    a.create_topic(b, sink, 2)
    a.produce(b, source, [Out(f"k{i}".encode(), f"v{i}".encode(), partition=i % 2) for i in range(20)])

    def transform(commit: bool, suffix: str) -> dict[str, int]:
        res = a.call(
            "eos_transform", b, input=source, output=sink, group=group, transactional_id=txn_id,
            count=20, suffix=suffix, commit=commit, timeout_s=120,
        )  # fmt: skip
        return {k: int(v) for k, v in res["offsets"].items()}

    offsets = transform(False, "-aborted")
    assert a.call("group_offsets", b, group=group)["offsets"] == {}
    assert transform(True, "-done") == offsets
    assert wait_until(lambda: a.call("group_offsets", b, group=group)["offsets"] == offsets, timeout_s=15)
    res = a.call("read_to_end", b, topic=sink, config={"isolation.level": "read_committed"})
    assert sorted(to_in(m).value or b"" for m in res["records"]) == sorted(f"v{i}-done".encode() for i in range(20))
    # several transactions on one producer: each EndTxn v5 bumps the epoch the next one uses
    handle = unique_topic("tv2-many")
    a.call("txn_init", b, handle=handle, transactional_id=handle)
    try:
        for i in range(4):
            recs = [{"key": None, "value": b64(f"m{i}-{j}".encode()), "partition": j % 2} for j in range(6)]
            a.call("txn_send", b, handle=handle, topic=sink, records=recs)
            a.call("txn_end", b, handle=handle, commit=i % 2 == 0)
    finally:
        a.call("txn_close", b, handle=handle)
    res = a.call("read_to_end", b, topic=sink, config={"isolation.level": "read_committed"})
    many = sorted(v for m in res["records"] if (v := to_in(m).value or b"").startswith(b"m"))
    assert many == sorted(f"m{i}-{j}".encode() for i in (0, 2) for j in range(6))

    used = _requests(port)
    assert used.get("EndTxn") == {5}, used
    assert used.get("TxnOffsetCommit") == {5}, used
    assert min(used["Produce"]) >= 12, used  # v13 (topic ids) where the client knows the topic's id
    assert "AddPartitionsToTxn" not in used and "AddOffsetsToTxn" not in used, used


def test_librdkafka_stays_on_the_classic_protocol(kafka_broker_factory: Any) -> None:
    broker, port = _broker(kafka_broker_factory)
    topic = unique_topic("tv2-rdk")
    create_topic(broker.bootstrap, topic, 1)
    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": topic})
    p.init_transactions(30)
    for commit in (True, False, True):
        p.begin_transaction()
        p.produce(topic, b"x")
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    used = _requests(port)
    assert used.get("AddPartitionsToTxn") and max(used["AddPartitionsToTxn"]) <= 3, used
    assert max(used["EndTxn"]) <= 4 and max(used["Produce"]) <= 11, used


def _set_transaction_version(bootstrap: str, level: int) -> None:
    from kafkapy.protocol.messages.update_features_request import FeatureUpdateKey, UpdateFeaturesRequest
    from tests.server.rawclient import RawClient

    update = FeatureUpdateKey(feature="transaction.version", max_version_level=level, upgrade_type=1 if level else 2)
    with RawClient(bootstrap) as c:
        r = c.request(UpdateFeaturesRequest(feature_updates=[update]), 1)
        assert r.error_code == 0 and all(x.error_code == 0 for x in r.results), r


@pytest.mark.skipif(_missing is not None, reason=str(_missing))
def test_java_producer_follows_the_finalized_transaction_version(kafka_broker_factory: Any) -> None:
    """transaction.version downgraded to 0 (UpdateFeatures): a new Java producer runs the classic protocol
    (AddPartitionsToTxn v3, EndTxn v4, Produce up to v11); upgraded back to 2, a new one runs v2 again."""
    broker, port = _broker(kafka_broker_factory)
    a, b = JavaClient(), broker.bootstrap
    topic = unique_topic("tv-switch")
    a.create_topic(b, topic, 2)

    def transactions(handle: str, tag: str) -> None:
        a.call("txn_init", b, handle=handle, transactional_id=handle)
        try:
            for i, commit in enumerate((True, False, True)):
                recs = [{"key": None, "value": b64(f"{tag}{i}-{j}".encode()), "partition": j % 2} for j in range(4)]
                a.call("txn_send", b, handle=handle, topic=topic, records=recs)
                a.call("txn_end", b, handle=handle, commit=commit)
        finally:
            a.call("txn_close", b, handle=handle)

    _set_transaction_version(b, 0)
    transactions(unique_topic("tv0"), "c")
    classic = _requests(port)
    assert classic.get("EndTxn") == {4} and classic.get("AddPartitionsToTxn") == {3}, classic
    assert max(classic["Produce"]) <= 11, classic
    _set_transaction_version(b, 2)
    transactions(unique_topic("tv2"), "n")
    after = _requests(port)
    assert after["EndTxn"] == {4, 5} and after["AddPartitionsToTxn"] == {3}, after
    res = a.call("read_to_end", b, topic=topic, config={"isolation.level": "read_committed"})
    got = sorted(to_in(m).value or b"" for m in res["records"])
    assert got == sorted(f"{t}{i}-{j}".encode() for t in "cn" for i in (0, 2) for j in range(4))


@pytest.mark.skipif(_missing is not None, reason=str(_missing))
def test_java_4_4_0_commits_offsets_by_topic_id(kafka_broker_factory: Any) -> None:
    """Kafka 4.4.0's producer sends TxnOffsetCommit v6 (KIP-1319: topic ids) in a consume-transform-produce;
    the offsets are committed with the transaction and the output holds each record once."""
    from interop.adapters.java import DRIVER44

    broker, port = _broker(kafka_broker_factory)
    a, b = JavaClient(DRIVER44), broker.bootstrap
    source, sink = unique_topic("tv2-44-src"), unique_topic("tv2-44-sink")
    group = unique_topic("tv2-44-g")
    a.create_topic(b, source, 2)
    a.create_topic(b, sink, 2)
    a.produce(b, source, [Out(f"k{i}".encode(), f"v{i}".encode(), partition=i % 2) for i in range(10)])
    res = a.call(
        "eos_transform", b, input=source, output=sink, group=group, transactional_id=unique_topic("tv2-44-t"),
        count=10, suffix="-done", commit=True, timeout_s=120,
    )  # fmt: skip
    offsets = {k: int(v) for k, v in res["offsets"].items()}
    assert offsets == {f"{source}:0": 5, f"{source}:1": 5}
    assert wait_until(lambda: a.call("group_offsets", b, group=group)["offsets"] == offsets, timeout_s=15)
    got = a.call("read_to_end", b, topic=sink, config={"isolation.level": "read_committed"})
    assert sorted(to_in(m).value or b"" for m in got["records"]) == sorted(f"v{i}-done".encode() for i in range(10))
    used = _requests(port)
    assert used.get("TxnOffsetCommit") == {6} and used.get("EndTxn") == {5}, used
