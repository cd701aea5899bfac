"""Apache Kafka's own Java clients 0.9.0.1, 0.10.0.1 and 0.10.2.2 against kafkapy.

Those are the clients of the brokers before 0.11: 0.9.0.1 speaks Produce v1 and Fetch v1
(magic 0), 0.10.0.1 Produce v2 and Fetch v2 (magic 1, timestamps) with ListOffsets v0, and
0.10.2.2 asks ApiVersions and uses Fetch v3 and ListOffsets v1. Each reads a topic written by a
modern producer (interop/test_old_clients.py's: plain, gzip, snappy and lz4 batches, a committed
and an aborted transaction) with a partition assigned and as a group member (JoinGroup,
SyncGroup, OffsetCommit of its era), and produces with every codec it has, reading that back.

The jars come from Maven Central through `mvn dependency:build-classpath` (the local repository
keeps them after the first run); interop/java_old/OldClient.java is compiled with javac for each.
Both are kept in interop/java/target/old-java/<version>-<key>/ (key: a hash of the pom and the
source), so later runs start no mvn or javac while the source, pom and jars are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from interop._common import BrokerProcess, unique_topic
from interop.test_old_clients import ALL_CODECS, ModernTopic, _create, _write_modern

SOURCE = Path(__file__).parent / "java_old" / "OldClient.java"
CACHE = Path(__file__).parent / "java" / "target" / "old-java"
VERSIONS = ("0.9.0.1", "0.10.0.1", "0.10.2.2")
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkapy.interop</groupId><artifactId>old-java-{version}</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
"""


def _build(workdir: Path, version: str) -> str:
    """Classpath of kafka-clients `version` plus OldClient compiled against it."""
    mvn, javac = shutil.which("mvn"), shutil.which("javac")
    assert mvn and javac, "the old Java clients need mvn and javac (scripts/test installs Maven and a JDK)"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pom.xml").write_text(POM.format(version=version))
    cp_file = workdir / "cp.txt"
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(workdir / "pom.xml"),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={cp_file}",
    ]
    proc = subprocess.run([*cmd[:2], "-o", *cmd[2:]], capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:  # not in the local repository yet
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")[-2000:]
    deps = cp_file.read_text().strip()
    classes = workdir / "classes"
    proc = subprocess.run(
        [javac, "-d", str(classes), "-cp", deps, str(SOURCE)], capture_output=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return f"{classes}:{deps}"


def _cached_build(version: str) -> str:
    """_build's classpath, from CACHE when a build of this pom and source is there and its jars still are."""
    key = hashlib.sha256(POM.format(version=version).encode() + SOURCE.read_bytes()).hexdigest()[:16]
    final = CACHE / f"{version}-{key}"
    cp_file, main_class = final / "cp.txt", final / "classes" / "OldClient.class"
    if cp_file.is_file() and main_class.is_file():
        deps = cp_file.read_text().strip()
        if all(Path(jar).is_file() for jar in deps.split(os.pathsep)):
            return f"{final / 'classes'}:{deps}"
        shutil.rmtree(final, ignore_errors=True)
    tmp = CACHE / f"{version}-{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _build(tmp, version)
    try:
        tmp.rename(final)
    except OSError:  # another run built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{final / 'classes'}:{cp_file.read_text().strip()}"


@pytest.fixture(scope="module")
def classpaths() -> dict[str, str]:
    return {v: _cached_build(v) for v in VERSIONS}


def _run(cp: str, *args: str) -> list[str]:
    proc = subprocess.run(
        # short-lived client JVMs: C1 only and the serial collector start and finish sooner
        ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", cp, "OldClient", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def _records(lines: list[str]) -> tuple[list[tuple[int, str, str, int]], int]:
    recs = []
    pos = -1
    for line in lines:
        parts = line.split(" ")
        if parts[0] == "REC":
            recs.append((int(parts[1]), parts[2], parts[3], int(parts[4])))
        elif parts[0] == "POS":
            pos = int(parts[1])
    return recs, pos


@pytest.fixture(scope="module")
def modern(broker: BrokerProcess) -> ModernTopic:
    return _write_modern(broker.bootstrap, ALL_CODECS)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mode", ["assign", "group"])
def test_old_java_consumer_reads_a_modern_topic(
    broker: BrokerProcess, classpaths: dict[str, str], modern: ModernTopic, version: str, mode: str
) -> None:
    topic, written = modern
    recs, pos = _records(_run(classpaths[version], broker.bootstrap, mode, topic, str(len(written))))
    timestamps = version != "0.9.0.1"
    assert recs == [
        (r.offset, (r.key or b"").decode(), (r.value or b"").decode(), r.timestamp if timestamps else -1)
        for r in written
    ]
    assert pos == written[-1].offset + 1


@pytest.mark.parametrize("version", VERSIONS)
def test_old_java_producer_every_codec(broker: BrokerProcess, classpaths: dict[str, str], version: str) -> None:
    topic = unique_topic("old-java-own")
    _create(broker.bootstrap, topic)
    codecs = ("none", "gzip", "snappy", "lz4")
    # one JVM: a producer per codec in turn, each closed before the next starts
    _run(classpaths[version], broker.bootstrap, "produce", topic, "3", ",".join(codecs))
    recs, pos = _records(_run(classpaths[version], broker.bootstrap, "assign", topic, str(3 * len(codecs))))
    assert [(o, k, v) for o, k, v, _ts in recs] == [(i, f"jk{i % 3}", f"jv{i % 3}") for i in range(3 * len(codecs))]
    assert pos == 3 * len(codecs)
