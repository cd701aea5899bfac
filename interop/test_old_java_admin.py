"""Kafka 1.1.1's Java AdminClient against kafkapy: CreateAcls, DescribeAcls and DeleteAcls v0, which
and AlterReplicaLogDirs v0, which Kafka 4 removed (KIP-896) and kafkapy keeps for such clients
(docs/compatibility.md, "Admin APIs of Kafka 1.x"). One JVM run (interop/java_old/OldAdmin.java)
creates two ACLs, describes and deletes them and describes again, then moves a new topic's replica
to the other of the broker's two log dirs; the broker's RequestsPerSec by version shows v0 was what
the client sent.

The jars come from Maven Central through `mvn dependency:build-classpath` and OldAdmin is compiled
with javac, both kept in interop/java/target/old-java/ as interop/test_old_java_clients.py keeps its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.test_old_java_clients import CACHE, POM
from kafkapy.testing import BrokerProcess, free_port
from tests.security.test_acl_cluster import sasl_settings

SOURCE = Path(__file__).parent / "java_old" / "OldAdmin.java"
VERSION = "1.1.1"
PRINCIPAL = "User:old-admin"


def _classpath() -> str:
    """kafka-clients 1.1.1 plus OldAdmin compiled against it, built once and kept in CACHE."""
    key = hashlib.sha256(POM.format(version=VERSION).encode() + SOURCE.read_bytes()).hexdigest()[:16]
    final = CACHE / f"admin-{VERSION}-{key}"
    cp_file, main_class = final / "cp.txt", final / "classes" / "OldAdmin.class"
    if cp_file.is_file() and main_class.is_file():
        deps = cp_file.read_text().strip()
        if all(Path(jar).is_file() for jar in deps.split(os.pathsep)):
            return f"{final / 'classes'}:{deps}"
    mvn, javac = shutil.which("mvn"), shutil.which("javac")
    assert mvn and javac, "the old Java clients need mvn and javac (scripts/test installs Maven and a JDK)"
    tmp = CACHE / f"admin-{VERSION}-{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "pom.xml").write_text(POM.format(version=VERSION))
    cmd = [mvn, "-q", "dependency:build-classpath", f"-Dmdep.outputFile={tmp / 'cp.txt'}", "-f", str(tmp / "pom.xml")]
    proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")[-2000:]
    deps = (tmp / "cp.txt").read_text().strip()
    proc = subprocess.run(
        [javac, "-d", str(tmp / "classes"), "-cp", deps, str(SOURCE)], capture_output=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    shutil.rmtree(final, ignore_errors=True)
    try:
        tmp.rename(final)
    except OSError:  # another run built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{final / 'classes'}:{deps}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, list[str]]]:
    root: Path = tmp_path_factory.mktemp("old-admin")
    inside, port, metrics = free_port(), free_port(), free_port()
    dirs = [str(root / "a"), str(root / "b")]
    b = BrokerProcess(
        root / "a",
        root / "broker.log",
        port=inside,
        settings={**sasl_settings(inside, port), "log.dirs": ",".join(dirs)},
        extra_args=["--metrics-listen", f"127.0.0.1:{metrics}"],
    ).start()
    try:
        yield f"127.0.0.1:{port}", metrics, dirs
    finally:
        b.stop()


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


def test_kafka_1_1_admin_client_acls_and_log_dirs(broker: tuple[str, int, list[str]]) -> None:
    bootstrap, metrics, dirs = broker
    cp = _classpath()
    proc = subprocess.run(
        ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", cp, "OldAdmin"]
        + [bootstrap, "admin", "admin-secret", PRINCIPAL, *dirs],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sorted(x for x in lines if x.startswith("DESCRIBED")) == [
        "DESCRIBED old-admin READ",
        "DESCRIBED old-admin WRITE",
    ]
    assert sorted(x for x in lines if x.startswith("DELETED")) == ["DELETED old-admin READ", "DELETED old-admin WRITE"]
    assert "LEFT 0" in lines
    [moved] = [x.split(" ") for x in lines if x.startswith("MOVED")]
    assert sorted(moved[1:]) == sorted(dirs)  # from one dir to the other, and it got there
    assert (Path(moved[2]) / "old-admin-dirs-0").is_dir()
    used = _requests(metrics)
    apis = ("CreateAcls", "DescribeAcls", "DeleteAcls", "AlterReplicaLogDirs")
    assert {api: used.get(api) for api in apis} == {api: {0} for api in apis}
