"""Feature levels (KIP-584): the table, the stores, and what ApiVersions advertises."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from interop import diff_acls, diff_features
from interop._common import start_broker
from kafkapy.cluster.features import FEATURES, FileFeatureStore, MemoryFeatureStore, feature
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.api_versions_response import ApiVersionsResponse
from kafkapy.server.handlers.features import add_features
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient


def _features(resp: ApiVersionsResponse) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]], int]:
    supported = {f.name: (f.min_version, f.max_version) for f in resp.supported_features}
    finalized = {f.name: (f.min_version_level, f.max_version_level) for f in resp.finalized_features}
    return supported, finalized, resp.finalized_features_epoch


def test_table_defaults_lie_in_the_supported_ranges() -> None:
    assert len({f.name for f in FEATURES}) == len(FEATURES)
    for f in FEATURES:
        assert f.min_version <= f.default <= f.max_version or f.default == 0, f
    group = feature("group.version")
    assert group is not None and (group.min_version, group.max_version, group.default) == (0, 1, 1)


def test_v3_leaves_out_min_zero_features_and_level_zero_is_not_finalized() -> None:
    store = MemoryFeatureStore()
    v3, v4 = ApiVersionsResponse(), ApiVersionsResponse()
    add_features(v3, store, 3)
    add_features(v4, store, 4)
    s3, f3, e3 = _features(v3)
    s4, f4, e4 = _features(v4)
    # other helpers raise their features' lines: expectations come from the table
    assert s3 == {f.name: (f.min_version, f.max_version) for f in FEATURES if f.min_version > 0}
    assert s3["metadata.version"] == (30, 30)
    assert s4 == {f.name: (f.min_version, f.max_version) for f in FEATURES}
    assert s4["group.version"] == (0, 1) and s4["kraft.version"] == (0, 0)
    assert f3 == f4 == {f.name: (f.default, f.default) for f in FEATURES if f.default > 0}
    assert f4["group.version"] == (1, 1) and "kraft.version" not in f4
    assert e3 == e4 == 0
    assert [f.name for f in v4.supported_features] == sorted(s4)


def test_file_store_persists_levels_and_epoch(tmp_path: Path) -> None:
    async def go() -> None:
        store = FileFeatureStore(tmp_path)
        seen: list[int] = []
        store.listener = lambda: seen.append(store.level("group.version"))
        assert store.level("group.version") == 1 and store.level("no.such.feature") == 0
        assert await store.update({"group.version": 0}, 0)
        assert not await store.update({"group.version": 1}, 0)  # a stale epoch
        assert (store.level("group.version"), store.epoch, seen) == (0, 1, [0])
        again = FileFeatureStore(tmp_path)
        assert (again.level("group.version"), again.epoch) == (0, 1)
        assert again.finalized()["metadata.version"] == 30

    asyncio.run(go())


def test_broker_advertises_features(tmp_path: Path) -> None:
    broker = BrokerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "broker.log").start()
    try:
        with RawClient(broker.bootstrap) as c:
            resp: Any = c.request(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 4)
            supported, finalized, epoch = _features(resp)
            assert supported["metadata.version"] == (30, 30) and supported["transaction.version"][0] == 0
            assert finalized["group.version"] == (1, 1) and "kraft.version" not in finalized
            assert epoch >= 0
            old = c.request(ApiVersionsRequest(), 2)
            assert old.supported_features == [] and old.finalized_features_epoch == -1
    finally:
        broker.stop()


# Kafka 4.3.1's answers kafkapy does not give, and why (interop/golden_kafka/features.json)
KNOWN = {
    **{
        f"update_features.v{v}.metadata_{case}": "kafkapy supports metadata.version 30 only (Kafka 7-30)"
        for v in (0, 1, 2)
        for case in ("above", "below_min", "down_safe", "down_unsafe", "zero")
    },
    "update_features.v1.kraft_up": "kafkapy supports kraft.version 0 only (no dynamic quorum)",
    "update_features.v2.kraft_up": "kafkapy supports kraft.version 0 only (no dynamic quorum)",
}


def _normalised(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"Local controller \d+", "Local controller N", value)
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    return value


def test_update_features_and_describe_quorum_answer_as_kafka(tmp_path: Path) -> None:
    golden = diff_features.load()
    broker = BrokerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "broker.log").start()
    try:
        ours = diff_features.run(broker.bootstrap, ["update_features", "describe_quorum"])
    finally:
        broker.stop()
    differences = {}
    for section in ("update_features", "describe_quorum"):
        assert set(ours[section]) == set(golden[section]), section
        for step, want in golden[section].items():
            got = _normalised(ours[section][step])
            if got != _normalised(want):
                differences[f"{section}.{step}"] = (want, got)
    unexplained = {k: v for k, v in differences.items() if k not in KNOWN}
    assert not unexplained, unexplained
    assert sorted(differences) == sorted(KNOWN)  # each known difference still is one
    assert "30-30" in ours["update_features"]["v2.metadata_above"]["message"]


def test_authorization_as_kafka(tmp_path: Path) -> None:
    """UpdateFeatures needs Alter on the cluster, DescribeQuorum Describe (StandardAuthorizer, SASL PLAIN)."""
    settings = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": diff_acls.JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:admin",
    }
    broker = start_broker(tmp_path / "data", settings)
    try:
        ours = diff_features.authorization(lambda user: diff_features.sasl_login(broker.bootstrap, user))
    finally:
        broker.stop()

    def plain(value: Any) -> Any:  # Kafka's text names its own Java request object
        text = json.dumps(value)
        return json.loads(
            re.sub(r"Request [^\"]* needs ALTER permission\.", "Request ... needs ALTER permission.", text)
        )

    assert plain(ours) == plain(diff_features.load()["authorization"])
    assert ours["alice.update.v2"]["error"] == 31 and ours["admin.update.v2"]["error"] == 0


def test_single_broker_level_survives_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "broker.log").start()
    try:
        with RawClient(broker.bootstrap) as c:
            assert diff_features.update(c, 1, [("group.version", 0, diff_features.SAFE)], True)["error"] == 0
            assert diff_features.features(c)["epoch"] == 0  # validate-only changed nothing
            assert diff_features.update(c, 1, [("group.version", 0, diff_features.SAFE)], False)["error"] == 0
            assert diff_features.heartbeat(c)[0] == 35
        broker.restart()
        with RawClient(broker.bootstrap) as c:
            got = diff_features.features(c)
            assert "group.version" not in got["finalized"] and got["epoch"] == 1
            assert diff_features.update(c, 2, [("group.version", 1, diff_features.UPGRADE)], False)["error"] == 0
            assert diff_features.heartbeat(c)[0] == 0
            assert diff_features.features(c)["epoch"] == 2
    finally:
        broker.stop()


def test_api_versions_features_have_kafkas_shape(tmp_path: Path) -> None:
    """Which features each ApiVersions version lists, as Kafka 4.3.1 (levels: interop/test_api_versions_reference.py)."""
    kafka = diff_features.load()["api_versions"]
    broker = BrokerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "broker.log").start()
    try:
        ours = diff_features.run(broker.bootstrap, ["api_versions"])["api_versions"]
    finally:
        broker.stop()
    for version in ("v3", "v4"):
        assert ours[version]["epoch"] == kafka[version]["epoch"] == "set"
        assert [*ours[version]["supported"]] == sorted(ours[version]["supported"])
    assert set(ours["v3"]["supported"]) == set(kafka["v3"]["supported"]) == {"metadata.version"}
    assert set(ours["v4"]["supported"]) == set(kafka["v4"]["supported"])
    assert "kraft.version" not in ours["v4"]["finalized"] and "kraft.version" not in kafka["v4"]["finalized"]
