"""A real Apache Kafka broker, from the jars interop/java pins: the reference
peer for the Java driver, the differential tests and the benchmarks.

`start_kafka(workdir)` writes a KRaft combined-mode server.properties (one
node, broker and controller, PLAINTEXT and CONTROLLER listeners on free
loopback ports, replication factors and min ISR 1, no initial rebalance
delay), formats the log dir with Kafka's storage tool (`kafka.tools.StorageTool
format`), runs `kafka.Kafka` and returns once the broker answers a Metadata
request listing itself. `KafkaProcess.stop()` sends SIGTERM to that PID (and
SIGKILL if it lingers).

    python -m interop.apache_kafka [DIR]   # run one in the foreground, Ctrl-C stops it
    python -m interop.apache_kafka --release 4.4.0 [DIR]   # the second reference (interop/java44)
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from interop.adapters.java import (
    DEPS_FILE,
    DEPS_FILE_44,
    REFERENCE_44,
    java_command,
    kafka_version,
    reference_classpath,
)
from kafkapy.protocol.uuids import random_cluster_id

STORAGE_TOOL = "kafka.tools.StorageTool"
KAFKA_MAIN = "kafka.Kafka"

DEFAULT_SETTINGS: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "min.insync.replicas": "1",
    "default.replication.factor": "1",
    "num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "log.flush.interval.messages": "9223372036854775807",
}

LOG4J2 = """status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class KafkaProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    controller_port: int
    workdir: Path
    cluster_id: str
    version: str
    started_in_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log_path, self.workdir / "stdout.log"):
            try:
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
            except OSError:
                pass
        return text

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def _metadata_lists_broker(host: str, port: int, timeout: float = 2.0) -> bool:
    """A Metadata v12 request (all topics) answered with at least one broker."""
    from kafkapy.protocol.frames import decode_response, encode_request
    from kafkapy.protocol.messages.metadata_request import MetadataRequest

    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(encode_request(MetadataRequest(topics=None), 12, 1, client_id="kafkapy-ready-probe"))
            size = struct.unpack(">i", _read(s, 4))[0]
            _, resp = decode_response(MetadataRequest.API_KEY, 12, _read(s, size))
            return bool(getattr(resp, "brokers", None))
    except (OSError, ValueError, ConnectionError):
        return False


def _read(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def write_config(
    workdir: Path,
    port: int,
    controller_port: int,
    settings: dict[str, str],
    *,
    node_id: int = 1,
    voters: str | None = None,
    host: str = "127.0.0.1",
) -> Path:
    """server.properties of a combined KRaft broker and controller (a single node unless `voters`
    names the quorum, as `id@host:port,...`)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        **DEFAULT_SETTINGS,
        **settings,
    }
    path = workdir / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def start_kafka(
    workdir: Path | None = None,
    settings: dict[str, str] | None = None,
    ready_timeout: float = 90.0,
    heap: str = "512m",
    release: str | None = None,
) -> KafkaProcess:
    """Format and start a one-node KRaft Apache Kafka; returns once it serves Metadata. `release`:
    None runs interop/java's pinned version (4.3.1), REFERENCE_44 ("4.4.0") interop/java44's."""
    cp = reference_classpath(release)
    version = kafka_version(DEPS_FILE_44 if release == REFERENCE_44 else DEPS_FILE)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="apache-kafka-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_port(), free_port()
    while controller_port == port:
        controller_port = free_port()
    config = write_config(workdir, port, controller_port, settings or {})
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "server.log"))
    jvm = (f"-Xmx{heap}", f"-Xms{heap}", f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true")
    cluster_id = random_cluster_id()
    # the storage tool is a short-lived JVM: C1 only, serial GC, no pre-touched heap (the broker keeps `jvm`)
    tool_jvm = (f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", *jvm[2:])
    fmt = subprocess.run(
        java_command(STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(config), jvm_args=tool_jvm, cp=cp),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if fmt.returncode != 0:
        raise RuntimeError(
            f"kafka storage format failed:\n{(fmt.stdout + fmt.stderr).decode(errors='replace')[-3000:]}"
        )
    t0 = time.monotonic()
    with open(workdir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            java_command(KAFKA_MAIN, str(config), jvm_args=jvm, cp=cp),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    kafka = KafkaProcess(
        proc, "127.0.0.1", port, controller_port, workdir, cluster_id, version, 0.0, dict(settings or {})
    )
    deadline = t0 + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Apache Kafka exited with {proc.returncode} before ready:\n{kafka.log_tail(60)}")
        if _metadata_lists_broker("127.0.0.1", port):
            kafka.started_in_s = time.monotonic() - t0
            return kafka
        time.sleep(0.1)
    kafka.stop()
    raise RuntimeError(f"Apache Kafka not ready after {ready_timeout}s:\n{kafka.log_tail(60)}")


# The shared reference broker's settings: message.max.bytes for the 1 MiB scenario of
# interop/test_apache_kafka_reference.py (what `large_broker` asks of kafkapy).
SHARED_APACHE_KAFKA_SETTINGS = {"message.max.bytes": "2000000"}


@dataclass(slots=True)
class SharedApacheKafka:
    """One reference broker for a pytest session (fixture shared_apache_kafka, interop/conftest.py),
    started on first use, instead of a JVM per module; `users` are the modules that have used it."""

    root: Path
    kafka: KafkaProcess | None = None
    users: set[str] = field(default_factory=set)

    def use(self, module: str) -> KafkaProcess:
        if self.kafka is None:
            self.kafka = start_kafka(self.root, SHARED_APACHE_KAFKA_SETTINGS)
        self.users.add(module)
        return self.kafka

    def fresh_for(self, module: str) -> bool:
        """No other module has used it yet (nothing of theirs on it)."""
        return not self.users - {module}


def main(argv: list[str]) -> int:
    release = None
    if argv[:1] == ["--release"]:
        release, argv = argv[1], argv[2:]
    kafka = start_kafka(Path(argv[0]) if argv else None, release=release)
    print(
        f"Apache Kafka {kafka.version} on {kafka.bootstrap} (pid {kafka.pid}, ready in {kafka.started_in_s:.1f}s, dir {kafka.workdir})"
    )
    try:
        kafka.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        kafka.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
