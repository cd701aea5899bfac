"""Kafka's own kafka-features (org.apache.kafka.tools.FeatureCommand) and kafka-metadata-quorum
(org.apache.kafka.tools.MetadataQuorumCommand) from the Apache Kafka 4.3.1 jars against kafkapy: the
Java Admin's describeFeatures, updateFeatures and describeMetadataQuorum underneath. They print
kafkapy's supported and finalized levels, downgrade and upgrade group.version (seen by the consumer
protocol), refuse what kafkapy cannot do with its message, and describe the metadata quorum as
kafkapy maps it: the controller leads and votes, the other brokers observe."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop import diff_features
from interop.adapters.java import TOOL_JVM, available, client_classpath, java_command
from interop.apache_kafka import REFERENCE_44
from kafkapy.cluster.features import FEATURES
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_kafka_feature_tools.py: {_missing} (scripts/test installs and builds it)")

FEATURE_COMMAND = "org.apache.kafka.tools.FeatureCommand"
QUORUM_COMMAND = "org.apache.kafka.tools.MetadataQuorumCommand"
CLUSTER_TOOL = "org.apache.kafka.tools.ClusterTool"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    root = tmp_path_factory.mktemp("kafka-features")
    b = BrokerProcess(root / "data", root / "broker.log").start()
    try:
        yield b
    finally:
        b.stop()


def tool(main: str, bootstrap: str, *args: str, cp: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = java_command(main, "--bootstrap-server", bootstrap, *args, jvm_args=TOOL_JVM, cp=cp)
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def describe(bootstrap: str, cp: str | None = None) -> dict[str, dict[str, str]]:
    """kafka-features describe: feature -> its printed fields."""
    rows = {}
    for line in ok(tool(FEATURE_COMMAND, bootstrap, "describe", cp=cp)).splitlines():
        fields = dict(re.findall(r"(\w+): (\S+)", line))
        rows[fields.pop("Feature")] = fields
    return rows


def test_kafka_features_describe_downgrade_upgrade(broker: BrokerProcess) -> None:
    b = broker.bootstrap
    rows = describe(b)
    assert sorted(rows) == sorted(f.name for f in FEATURES)
    assert rows["metadata.version"] == {
        "SupportedMinVersion": "4.3-IV0",
        "SupportedMaxVersion": "4.3-IV0",
        "FinalizedVersionLevel": "4.3-IV0",
        "Epoch": rows["metadata.version"]["Epoch"],
    }
    assert rows["group.version"]["SupportedMaxVersion"] == "1" and rows["group.version"]["FinalizedVersionLevel"] == "1"
    assert rows["kraft.version"]["SupportedMaxVersion"] == "0"
    for f in FEATURES:
        assert rows[f.name]["FinalizedVersionLevel"] == (str(f.default) if f.name != "metadata.version" else "4.3-IV0")
    epoch = int(rows["group.version"]["Epoch"])

    assert ok(tool(FEATURE_COMMAND, b, "downgrade", "--feature", "group.version=0", "--dry-run")).strip() == (
        "group.version can be downgraded to 0."
    )
    assert describe(b)["group.version"]["FinalizedVersionLevel"] == "1"
    assert ok(tool(FEATURE_COMMAND, b, "downgrade", "--feature", "group.version=0")).strip() == (
        "group.version was downgraded to 0."
    )
    after = describe(b)["group.version"]
    assert after["FinalizedVersionLevel"] == "0" and int(after["Epoch"]) > epoch
    with RawClient(b) as c:
        assert diff_features.heartbeat(c)[0] == 35  # UNSUPPORTED_VERSION: the consumer protocol is off
    assert ok(tool(FEATURE_COMMAND, b, "upgrade", "--feature", "group.version=1")).strip() == (
        "group.version was upgraded to 1."
    )
    with RawClient(b) as c:
        assert diff_features.heartbeat(c)[0] == 0

    refused = tool(FEATURE_COMMAND, b, "upgrade", "--feature", "kraft.version=1")
    assert refused.returncode == 1
    assert (
        "Could not upgrade kraft.version to 1. The update failed for all features since the following feature had "
        "an error: Invalid update version 1 for feature kraft.version. Local controller 0 only supports versions 0-0"
    ) in refused.stdout
    assert (
        ok(tool(FEATURE_COMMAND, b, "upgrade", "--metadata", "4.3-IV0"))
        .strip()
        .endswith("metadata.version was upgraded to 30.")
    )


def _status(bootstrap: str) -> dict[str, str]:
    out = ok(tool(QUORUM_COMMAND, bootstrap, "describe", "--status"))
    return {k: v.strip() for k, v in re.findall(r"^(\w+):\s+(.*)$", out, re.M)}


def _replication(bootstrap: str) -> list[dict[str, str]]:
    lines = ok(tool(QUORUM_COMMAND, bootstrap, "describe", "--replication")).splitlines()
    header = lines[0].split()
    return [dict(zip(header, line.split(), strict=True)) for line in lines[1:] if line.strip()]


def test_kafka_metadata_quorum_on_one_broker(broker: BrokerProcess) -> None:
    status = _status(broker.bootstrap)
    assert status["LeaderId"] == "0" and status["LeaderEpoch"] == "1"
    assert status["CurrentVoters"] == f'[{{"id": 0, "endpoints": ["PLAINTEXT://{broker.bootstrap}"]}}]'
    assert status["CurrentObservers"] == "[]" and status["MaxFollowerLag"] == "0"
    [leader] = _replication(broker.bootstrap)
    assert leader["NodeId"] == "0" and leader["Status"] == "Leader" and leader["Lag"] == "0"
    assert leader["DirectoryId"] == "AAAAAAAAAAAAAAAAAAAAAA"  # zero: kraft.version 0, as Kafka


def test_kafka_metadata_quorum_in_a_cluster(kafka_cluster_factory: Any) -> None:
    from tests.cluster.test_cluster import FAST

    cluster: LocalCluster = kafka_cluster_factory(2, FAST)
    ids = sorted(cluster.brokers)
    for b in cluster.brokers.values():
        wait_until(lambda b=b: _status(b.bootstrap)["LeaderId"] != "-1", what="a controller")
        status = _status(b.bootstrap)
        controller = int(status["LeaderId"])
        assert controller in ids and int(status["LeaderEpoch"]) >= 1 and int(status["HighWatermark"]) > 0
        ids_in = lambda text: [int(i) for i in re.findall(r'"id": (\d+)', text)]  # noqa: E731
        assert ids_in(status["CurrentVoters"]) == [controller]
        assert ids_in(status["CurrentObservers"]) == [i for i in ids if i != controller]
        rows = {int(r["NodeId"]): r["Status"] for r in _replication(b.bootstrap)}
        assert rows == {i: "Leader" if i == controller else "Observer" for i in ids}


def test_kafka_features_sees_an_update_from_another_broker(kafka_cluster_factory: Any) -> None:
    from tests.cluster.test_cluster import FAST

    cluster: LocalCluster = kafka_cluster_factory(2, FAST)
    one, two = (cluster.brokers[i].bootstrap for i in sorted(cluster.brokers))
    ok(tool(FEATURE_COMMAND, one, "downgrade", "--feature", "group.version=0"))
    wait_until(lambda: describe(two)["group.version"]["FinalizedVersionLevel"] == "0", what="level 0 on broker 2")
    ok(tool(FEATURE_COMMAND, two, "upgrade", "--feature", "group.version=1"))
    wait_until(lambda: describe(one)["group.version"]["FinalizedVersionLevel"] == "1", what="level 1 on broker 1")


def test_kafka_440_tools(broker: BrokerProcess) -> None:
    """The 4.4.0 tools know metadata.version 30 as 4.3-IV0 too, and read the same quorum."""
    cp = client_classpath(REFERENCE_44)
    rows = describe(broker.bootstrap, cp)
    assert sorted(rows) == sorted(f.name for f in FEATURES)
    assert rows["metadata.version"]["FinalizedVersionLevel"] == "4.3-IV0"
    out = ok(tool(QUORUM_COMMAND, broker.bootstrap, "describe", "--status", cp=cp))
    assert re.search(r"^LeaderId:\s+0$", out, re.M) and re.search(r"^CurrentObservers:\s+\[\]$", out, re.M), out


def _java(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = java_command(main, *args, jvm_args=TOOL_JVM)
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_kafka_metadata_quorum_cannot_change_the_static_quorum(broker: BrokerProcess, tmp_path: Path) -> None:
    """add-controller and remove-controller fail as against Kafka with a static quorum (kraft.version 0,
    interop/golden_kafka/raft.json): kafkapy has no Raft quorum whose voters could change."""
    (tmp_path / "meta.properties").write_text(
        "version=1\ncluster.id=x\nnode.id=5\ndirectory.id=pbvuBlaTTwKRxS5NLJwRFQ\n"
    )
    config = tmp_path / "controller.properties"
    config.write_text(
        "process.roles=controller\nnode.id=5\ncontroller.listener.names=CONTROLLER\n"
        f"listeners=CONTROLLER://127.0.0.1:9999\nmetadata.log.dir={tmp_path}\n"
    )
    b = broker.bootstrap
    add = _java(QUORUM_COMMAND, "--bootstrap-server", b, "--command-config", str(config), "add-controller")
    assert add.returncode == 1
    assert (
        "UnsupportedVersionException: Cluster doesn't support adding voter because the kraft.version feature is 0"
        in add.stderr
    ), add.stderr
    remove = tool(
        QUORUM_COMMAND,
        b,
        "remove-controller",
        "--controller-id",
        "0",
        "--controller-directory-id",
        "pbvuBlaTTwKRxS5NLJwRFQ",
    )
    assert remove.returncode == 1
    assert "Cluster doesn't support removing voter because the kraft.version feature is 0" in remove.stderr


def test_kafka_cluster_unregister_a_stopped_broker(kafka_cluster_factory: Any) -> None:
    """kafka-cluster unregister (Admin.unregisterBroker): a stopped broker of a cluster is unregistered
    once; then it is not registered, in Kafka's words."""
    from tests.cluster.test_cluster import FAST

    cluster: LocalCluster = kafka_cluster_factory(2, FAST)
    one, two = sorted(cluster.brokers)
    wait_until(lambda: f"broker-dirs/{two}" in cluster.etcd_keys(), what="broker 2's data dir recorded")
    cluster.brokers[two].stop()
    b = cluster.brokers[one].bootstrap
    wait_until(lambda: f"brokers/{two}" not in cluster.etcd_keys(), what="broker 2 no longer live")
    out = _java(CLUSTER_TOOL, "unregister", "--bootstrap-server", b, "--id", str(two))
    assert out.returncode == 0 and out.stdout.strip() == f"Broker {two} is no longer registered.", out.stderr
    assert f"broker-dirs/{two}" not in cluster.etcd_keys()
    again = _java(CLUSTER_TOOL, "unregister", "--bootstrap-server", b, "--id", str(two))
    assert again.returncode == 1
    assert f"BrokerIdNotRegisteredException: Broker ID {two} is not currently registered" in again.stderr
