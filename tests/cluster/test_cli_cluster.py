"""`kafkapy cluster status|rebalance|elect-leaders` against real brokers.

A single `kafkapy broker` (the kafka_broker fixture) for the output and the
errors; a local cluster (etcd + brokers on loopback) for plans over several
brokers, under-replicated partitions and the execution of a plan when the
brokers serve AlterPartitionReassignments.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkapy.client import RESOURCE_BROKER, KafkaClient, KafkaError
from kafkapy.protocol.api import ApiKey
from kafkapy.testing import BrokerProcess

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, bootstrap: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kafkapy", *args, "--bootstrap-server", bootstrap],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def ok(*args: str, bootstrap: str, timeout: float = 120) -> str:
    r = cli(*args, bootstrap=bootstrap, timeout=timeout)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def advertised(bootstrap: str, api: ApiKey) -> bool:
    async def probe() -> bool:
        async with KafkaClient(bootstrap) as client:
            return api in (await client.controller_connection()).versions

    return asyncio.run(probe())


def assignment_of(bootstrap: str) -> dict[tuple[str, int], list[int]]:
    async def load() -> dict[tuple[str, int], list[int]]:
        async with KafkaClient(bootstrap) as client:
            meta = await client.refresh_metadata()
            return {
                (t, p.partition): list(p.replicas) for t, info in meta.topics.items() for p in info.partitions.values()
            }

    return asyncio.run(load())


def summary(out: str) -> dict[str, int]:
    m = re.search(
        r"Partitions: (\d+)\tto move: (\d+)\treplica moves: (\d+)\tleadership moves: (\d+)\treassignments: (\d+)", out
    )
    assert m, out
    keys = ("partitions", "moved", "replica_moves", "leadership_moves", "reassignments")
    return dict(zip(keys, map(int, m.groups()), strict=True))


# ------------------------------------------------------------------ one broker


@pytest.fixture
def one_broker(kafka_broker: BrokerProcess) -> str:
    b = kafka_broker.bootstrap
    ok("topics", "create", "alpha", "--partitions", "3", bootstrap=b)
    ok("topics", "create", "beta", "--partitions", "2", bootstrap=b)
    ok("topics", "create", "strict", "--partitions", "1", "--config", "min.insync.replicas=2", bootstrap=b)
    return b


def test_status_one_broker(one_broker: str) -> None:
    out = ok("cluster", "status", bootstrap=one_broker)
    lines = out.splitlines()
    assert lines[0].startswith("Cluster: ") and len(lines[0]) > len("Cluster: ")
    assert "Controller: 0" in lines
    assert "Brokers: 1" in lines
    host, port = one_broker.split(":")
    assert f"  0\t{host}:{port}\track: -\t(controller)" in lines
    assert "Topics: 3 (0 internal)\tPartitions: 6" in lines
    assert "Under-replicated partitions: 0" in lines
    assert "Offline partitions: 0" in lines
    # one replica can never satisfy min.insync.replicas=2
    i = lines.index("Under-min-ISR partitions: 1")
    assert lines[i + 1] == "  Topic: strict\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0\tMinIsr: 2"
    assert not any("alpha" in line or "beta" in line for line in lines)


def test_rebalance_refuses_an_unregistered_broker(one_broker: str) -> None:
    r = cli("cluster", "rebalance", "--dry-run", "--add-broker", "2", bootstrap=one_broker)
    assert r.returncode == 1
    assert "broker(s) 2 not registered in the cluster (live brokers: 0)" in r.stderr
    assert r.stdout == ""


def test_rebalance_dry_run_on_a_balanced_broker(one_broker: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    out = ok(
        "cluster", "rebalance", "--dry-run", "--add-broker", "0", "--plan-json", str(plan_file), bootstrap=one_broker
    )
    assert summary(out) == {"partitions": 6, "moved": 0, "replica_moves": 0, "leadership_moves": 0, "reassignments": 0}
    assert "Brokers: 0 -> 0" in out
    assert "  0\t6 -> 6\t6 -> 6" in out
    assert "Dry run: nothing submitted." in out
    plan = json.loads(plan_file.read_text())
    assert plan["version"] == 1
    assert sorted((p["topic"], p["partition"], p["replicas"]) for p in plan["partitions"]) == [
        ("alpha", 0, [0]),
        ("alpha", 1, [0]),
        ("alpha", 2, [0]),
        ("beta", 0, [0]),
        ("beta", 1, [0]),
        ("strict", 0, [0]),
    ]


def test_rebalance_usage_errors(one_broker: str) -> None:
    r = cli("cluster", "rebalance", "--add-broker", "0", "--remove-broker", "0", "--dry-run", bootstrap=one_broker)
    assert r.returncode == 2 and "both added and removed" in r.stderr
    r = cli("cluster", "rebalance", "--remove-broker", "0", "--dry-run", bootstrap=one_broker)
    assert r.returncode == 2 and "no broker left" in r.stderr
    r = cli("cluster", "rebalance", "--dry-run", "--topic", "nope", bootstrap=one_broker)
    assert r.returncode == 1 and "no such topic(s): nope" in r.stderr


def test_rebalance_execute_needs_the_reassignment_api(one_broker: str) -> None:
    r = cli("cluster", "rebalance", "--add-broker", "0", bootstrap=one_broker)
    if advertised(one_broker, ApiKey.ALTER_PARTITION_REASSIGNMENTS):
        assert r.returncode == 0, r.stderr
        assert "Nothing to move." in r.stdout
    else:
        assert r.returncode == 1
        assert "does not serve AlterPartitionReassignments" in r.stderr
        assert "--dry-run still plans" in r.stderr


def test_elect_leaders(one_broker: str) -> None:
    r = cli("cluster", "elect-leaders", "--topic", "alpha", bootstrap=one_broker)
    if advertised(one_broker, ApiKey.ELECT_LEADERS):
        # the only replica already leads: Kafka answers ELECTION_NOT_NEEDED
        assert r.returncode == 0, r.stderr
        assert "alpha-0\tnot needed" in r.stdout
        assert "Preferred election: 3 of 3 partition(s) ok." in r.stdout
    else:
        assert r.returncode == 1
        assert "does not support ElectLeaders" in r.stderr
        assert r.stdout == ""


def test_elect_leaders_usage(one_broker: str) -> None:
    r = cli("cluster", "elect-leaders", "--partition", "1", bootstrap=one_broker)
    assert r.returncode == 2 and "--partition needs --topic" in r.stderr
    r = cli("cluster", "elect-leaders", "--topic", "alpha", "--partition", "7", bootstrap=one_broker)
    assert r.returncode == 1 and "has no partition(s) 7" in r.stderr


def test_no_broker_is_a_clear_error() -> None:
    from kafkapy.testing import free_port

    r = cli("cluster", "status", bootstrap=f"127.0.0.1:{free_port()}", timeout=60)
    assert r.returncode == 1
    assert "cannot connect to 127.0.0.1" in r.stderr


# ------------------------------------------------------------------ a local cluster


@pytest.fixture
def three_brokers(tmp_path: Path) -> Iterator[object]:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (scripts/test installs etcd-server)")
    from kafkapy.local_cluster import LocalCluster

    cluster = LocalCluster(tmp_path / "cluster", 3)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def _wait_for_status(bootstrap: str, *texts: str) -> str:
    deadline = time.monotonic() + 30
    out = ""
    while time.monotonic() < deadline:
        out = cli("cluster", "status", bootstrap=bootstrap).stdout
        if all(t in out for t in texts):
            return out
        time.sleep(0.3)
    raise AssertionError(f"status never showed {texts}: {out}")


def _wait_for_brokers(bootstrap: str, count: int) -> None:
    _wait_for_status(bootstrap, f"Brokers: {count}\n")


def test_cluster_status_plan_and_decommission(three_brokers: object) -> None:
    from kafkapy.local_cluster import LocalCluster

    assert isinstance(three_brokers, LocalCluster)
    cluster = three_brokers
    b = cluster.bootstrap
    ok("topics", "create", "t", "--partitions", "30", "--replication-factor", "2", bootstrap=b)
    ok(
        "topics",
        "create",
        "u",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--config",
        "min.insync.replicas=3",
        bootstrap=b,
    )
    out = ok("cluster", "status", bootstrap=b)
    assert "Brokers: 3" in out and "Topics: 2 (0 internal)\tPartitions: 33" in out
    assert "Under-replicated partitions: 0" in out and "Under-min-ISR partitions: 0" in out

    cluster.add_broker(4, settings={"broker.rack": "rack-b"})
    _wait_for_brokers(b, 4)
    assert re.search(r"\n  4\t127\.0\.0\.1:\d+\track: rack-b\n", ok("cluster", "status", bootstrap=b))
    before = assignment_of(b)
    # not every broker has a rack: the plan ignores racks
    out = ok("cluster", "rebalance", "--add-broker", "4", "--dry-run", bootstrap=b)
    # 60 + 9 = 69 replicas over 4 brokers: shares 18/17/17/17, broker 4 receives 17
    # and 33 preferred leaders: 9/8/8/8, broker 4 gets 8
    assert "Brokers: 1,2,3 -> 1,2,3,4 (adding 4)" in out
    s = summary(out)
    assert s["replica_moves"] == 17 and s["moved"] == 17 and s["leadership_moves"] == 8
    assert re.search(r"  4\t0 -> 17\t0 -> 8\n", out)
    assert assignment_of(b) == before  # a dry run changes nothing

    # broker 3 dies: its partitions are under-replicated, u's are under min ISR
    cluster.brokers[3].stop()
    _wait_for_brokers(b, 3)
    holds_3 = sorted(k for k, reps in before.items() if 3 in reps)
    out = _wait_for_status(b, f"Under-replicated partitions: {len(holds_3)}\n", "Under-min-ISR partitions: 3\n")
    assert "Offline partitions: 0" in out
    listed = re.findall(
        r"  Topic: (\w+)\tPartition: (\d+)\tLeader: \d+\tReplicas: [\d,]+\tIsr: [\d,]+\tOffline: 3\n", out
    )
    assert sorted((t, int(p)) for t, p in listed[: len(holds_3)]) == holds_3
    r = cli("cluster", "rebalance", "--dry-run", bootstrap=b)
    assert r.returncode == 1 and "broker(s) 3 hold replicas but are not registered" in r.stderr
    out = ok("cluster", "rebalance", "--remove-broker", "3", "--dry-run", bootstrap=b)
    s = summary(out)
    counts = Counter(x for reps in before.values() for x in reps)
    # only broker 3's replicas move, onto 1, 2 and 4 (23 each)
    assert s["replica_moves"] == counts[3]
    assert re.search(rf"  3\t{counts[3]} -> 0\t\d+ -> 0\n", out)
    assert re.search(r"  4\t0 -> 23\t0 -> 11\n", out)


def test_cluster_rebalance_executes(three_brokers: object) -> None:
    from kafkapy.local_cluster import LocalCluster

    assert isinstance(three_brokers, LocalCluster)
    cluster = three_brokers
    b = cluster.bootstrap
    ok("topics", "create", "t", "--partitions", "12", "--replication-factor", "2", bootstrap=b)
    cluster.add_broker(4)
    _wait_for_brokers(b, 4)
    args = (
        "cluster",
        "rebalance",
        "--add-broker",
        "4",
        "--throttle",
        "10000000",
        "--wait",
        "--poll-interval-ms",
        "200",
    )
    if not advertised(b, ApiKey.ALTER_PARTITION_REASSIGNMENTS):
        r = cli(*args, bootstrap=b)
        assert r.returncode == 1 and "does not serve AlterPartitionReassignments" in r.stderr
        return
    plan_file = cluster.root / "plan.json"
    ok("cluster", "rebalance", "--add-broker", "4", "--dry-run", "--plan-json", str(plan_file), bootstrap=b)
    before = assignment_of(b)
    r = cli(*args, bootstrap=b, timeout=180)
    if r.returncode != 0 and "INVALID_CONFIG" in r.stderr:
        # a broker without dynamic broker configs refuses the throttle: nothing was submitted
        assert "Replication throttle set" not in r.stdout
        assert assignment_of(b) == before
        r = cli(*(a for a in args if a not in ("--throttle", "10000000")), bootstrap=b, timeout=180)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = r.stdout
    assert "Reassigned 6/6 partition(s), 0 moving" in out and "Done: 6 partition(s) moved, 0 failed." in out
    want = {
        (p["topic"], p["partition"]): sorted(p["replicas"]) for p in json.loads(plan_file.read_text())["partitions"]
    }
    got = {k: sorted(v) for k, v in assignment_of(b).items()}
    assert got == want
    assert Counter(x for reps in got.values() for x in reps)[4] == 6


def test_clear_throttle_removes_the_throttle_configs(one_broker: str) -> None:
    ok(
        "topics",
        "alter",
        "alpha",
        "--config",
        "leader.replication.throttled.replicas=0:0,1:0",
        "--config",
        "follower.replication.throttled.replicas=2:0",
        "--config",
        "retention.ms=1000000",
        bootstrap=one_broker,
    )

    async def set_rate() -> bool:
        async with KafkaClient(one_broker) as client:
            try:
                await client.alter_configs(
                    "0", {"leader.replication.throttled.rate": "1000"}, resource_type=RESOURCE_BROKER
                )
            except KafkaError as exc:  # a broker without dynamic broker configs
                assert exc.name == "INVALID_CONFIG"
                return False
            return True

    rate_set = asyncio.run(set_rate())
    assert ("leader.replication.throttled.rate=1000" in broker_configs(one_broker)) == rate_set
    assert "leader.replication.throttled.replicas" in ok("topics", "describe", "alpha", bootstrap=one_broker)
    out = ok("cluster", "rebalance", "--clear-throttle", bootstrap=one_broker)
    assert out == "Replication throttle removed.\n"
    described = ok("topics", "describe", "alpha", "--configs-only", bootstrap=one_broker)
    assert described.splitlines() == ["retention.ms=1000000"]  # the other configs stay
    assert "leader.replication.throttled.rate=1000" not in broker_configs(one_broker)


def broker_configs(bootstrap: str) -> set[str]:
    async def load() -> set[str]:
        async with KafkaClient(bootstrap) as client:
            return {f"{e.name}={e.value}" for e in await client.describe_configs("0", RESOURCE_BROKER)}

    return asyncio.run(load())


# ------------------------------------------------------------------ Apache Kafka, two brokers


@pytest.fixture
def apache_kafka_pair(tmp_path: Path) -> Iterator[str]:
    """Apache Kafka (the jars interop/java pins): node 1 broker+controller, node 2 a broker."""
    from interop.adapters.java import available

    missing = available()
    if missing:
        pytest.skip(missing)
    from interop.adapters.java import java_command
    from interop.apache_kafka import (
        DEFAULT_SETTINGS,
        KAFKA_MAIN,
        LOG4J2,
        STORAGE_TOOL,
        free_port,
        start_kafka,
    )

    first = start_kafka(tmp_path / "node1")
    second: subprocess.Popen[bytes] | None = None
    try:
        work = tmp_path / "node2"
        work.mkdir()
        port = free_port()
        props = {
            **DEFAULT_SETTINGS,
            "process.roles": "broker",
            "node.id": "2",
            "controller.quorum.voters": f"1@127.0.0.1:{first.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(work / "data"),
        }
        config = work / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = work / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=work / "server.log"))
        jvm = ("-Xmx512m", "-Xms512m", f"-Dlog4j2.configurationFile={log4j}")
        # the storage tool is a short-lived JVM: C1 only, serial GC, no pre-touched heap
        tool_jvm = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", jvm[2])
        subprocess.run(
            java_command(STORAGE_TOOL, "format", "-t", first.cluster_id, "-c", str(config), jvm_args=tool_jvm),
            capture_output=True,
            timeout=120,
            check=True,
        )
        with open(work / "stdout.log", "wb") as log:
            second = subprocess.Popen(
                java_command(KAFKA_MAIN, str(config), jvm_args=jvm),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_brokers(first.bootstrap, 2)
        yield first.bootstrap
    finally:
        if second is not None:
            second.terminate()
            try:
                second.wait(60)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
        first.stop()


def test_rebalance_executes_on_apache_kafka(apache_kafka_pair: str) -> None:
    b = apache_kafka_pair
    ok("topics", "create", "t", "--partitions", "6", "--replication-factor", "1", bootstrap=b)
    wait = ("--throttle", "1000000", "--wait", "--poll-interval-ms", "200")
    out = ok("cluster", "rebalance", "--remove-broker", "2", *wait, bootstrap=b)
    s = summary(out)
    assert s["replica_moves"] == s["moved"] == 3  # Kafka spread 6 partitions 3/3
    assert "Reassigned 3/3 partition(s), 0 moving" in out
    assert "Replication throttle set to 1000000 B/s on broker(s) 1,2." in out
    assert "Replication throttle removed." in out
    assert "Preferred leaders elected: 3/3 partition(s)." in out
    assert set(map(tuple, assignment_of(b).values())) == {(1,)}

    out = ok("cluster", "rebalance", "--add-broker", "2", *wait, bootstrap=b)
    assert summary(out)["replica_moves"] == 3 and "Done: 3 partition(s) moved, 0 failed." in out
    after = assignment_of(b)
    assert Counter(r[0] for r in after.values()) == {1: 3, 2: 3}
    assert "throttled" not in ok("topics", "describe", "t", bootstrap=b)
    assert not {c for c in broker_configs_of(b, 1) if "throttled.rate" in c}

    out = ok("cluster", "elect-leaders", "--topic", "t", "--partition", "0", bootstrap=b)
    assert out.splitlines()[0].startswith("t-0\tnot needed")
    status = ok("cluster", "status", bootstrap=b)
    assert "Brokers: 2" in status and "Under-replicated partitions: 0" in status


def broker_configs_of(bootstrap: str, node: int) -> set[str]:
    async def load() -> set[str]:
        async with KafkaClient(bootstrap) as client:
            return {
                f"{e.name}={e.value}"
                for e in await client.describe_configs(str(node), RESOURCE_BROKER)
                if e.source == "DYNAMIC_BROKER_CONFIG"
            }

    return asyncio.run(load())
