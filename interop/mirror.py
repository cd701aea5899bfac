"""Kafka's own MirrorMaker 2 in dedicated mode, from the jars interop/java pins.

`start_mirror_maker(workdir, clusters, flows)` writes an mm2.properties
(clusters, `source->target.enabled`, topics, offset-sync/checkpoint settings
with short intervals for tests, replication factor 1 for every internal
topic), runs `org.apache.kafka.connect.mirror.MirrorMaker` with the
classpath of `mvn package` in interop/java, and returns once MM2's log says
its connectors started. `MirrorMakerProcess.stop()` sends SIGTERM to that PID
(and SIGKILL if it lingers).

    python -m interop.mirror US_BOOTSTRAP EU_BOOTSTRAP [TOPICS_REGEX]   # us -> eu, Ctrl-C stops it
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from interop.adapters.java import java_command

MIRROR_MAKER_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"

# Internal topics of one node clusters, and intervals short enough for tests.
TEST_SETTINGS: dict[str, str] = {
    "replication.factor": "1",
    "checkpoints.topic.replication.factor": "1",
    "heartbeats.topic.replication.factor": "1",
    "offset-syncs.topic.replication.factor": "1",
    "offset.storage.replication.factor": "1",
    "status.storage.replication.factor": "1",
    "config.storage.replication.factor": "1",
    "sync.group.offsets.enabled": "true",
    "sync.group.offsets.interval.seconds": "1",
    "emit.checkpoints.interval.seconds": "1",
    "emit.heartbeats.interval.seconds": "1",
    "refresh.topics.interval.seconds": "2",
    "refresh.groups.interval.seconds": "2",
    "sync.topic.configs.interval.seconds": "2",
    # every record may get an offset sync, and the task commits (which
    # releases delayed offset syncs) every second instead of every minute
    "offset.lag.max": "0",
    "offset.flush.interval.ms": "1000",
    # dedicated mode: the REST server lets the nodes forward task configs
    "dedicated.mode.enable.internal.rest": "false",
}

LOG4J2 = """status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
logger.clients_net.name = org.apache.kafka.clients.NetworkClient
logger.clients_net.level = info
logger.reflections.name = org.reflections
logger.reflections.level = error
"""


def mm2_properties(
    clusters: dict[str, str],
    flows: list[tuple[str, str]],
    topics: str = ".*",
    groups: str = ".*",
    settings: dict[str, str] | None = None,
) -> str:
    """The text of an mm2.properties: `clusters` maps an alias to its
    bootstrap servers, `flows` lists the (source, target) pairs enabled."""
    lines = [f"clusters = {', '.join(clusters)}"]
    lines += [f"{alias}.bootstrap.servers = {bootstrap}" for alias, bootstrap in clusters.items()]
    for source, target in flows:
        lines += [
            f"{source}->{target}.enabled = true",
            f"{source}->{target}.topics = {topics}",
            f"{source}->{target}.groups = {groups}",
        ]
    lines += [f"{k} = {v}" for k, v in {**TEST_SETTINGS, **(settings or {})}.items()]
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class MirrorMakerProcess:
    proc: subprocess.Popen[bytes]
    workdir: Path
    clusters: dict[str, str]
    flows: list[tuple[str, str]]
    started_in_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "mm2.log"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        text = ""
        for path in (self.log_path, self.workdir / "stdout.log"):
            try:
                text += path.read_text(errors="replace")
            except OSError:
                pass
        return text

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def errors(self) -> list[str]:
        """ERROR lines of MM2's log (with the exception line after each)."""
        out: list[str] = []
        lines = self.log_text().splitlines()
        for i, line in enumerate(lines):
            if " ERROR " in line:
                out.append("\n".join(lines[i : i + 3]))
        return out

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start_mirror_maker(
    workdir: Path | None,
    clusters: dict[str, str],
    flows: list[tuple[str, str]],
    topics: str = ".*",
    groups: str = ".*",
    settings: dict[str, str] | None = None,
    ready_timeout: float = 90.0,
    heap: str = "512m",
) -> MirrorMakerProcess:
    """Write mm2.properties and run MM2 in dedicated mode; returns once MM2
    logged that it started (connectors then start their tasks)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="mm2-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mm2.properties"
    config.write_text(mm2_properties(clusters, flows, topics, groups, settings))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "mm2.log"))
    jvm = (f"-Xmx{heap}", f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true", "-XX:+UseSerialGC")
    t0 = time.monotonic()
    with open(workdir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            java_command(MIRROR_MAKER_MAIN, str(config), jvm_args=jvm),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
        )
    mm2 = MirrorMakerProcess(proc, workdir, dict(clusters), list(flows), 0.0, dict(settings or {}))
    deadline = t0 + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MirrorMaker exited with {proc.returncode} before ready:\n{mm2.log_tail(80)}")
        if "Kafka MirrorMaker started" in mm2.log_text():
            mm2.started_in_s = time.monotonic() - t0
            return mm2
        time.sleep(0.2)
    mm2.stop()
    raise RuntimeError(f"MirrorMaker not started after {ready_timeout}s:\n{mm2.log_tail(80)}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    topics = argv[2] if len(argv) > 2 else ".*"
    mm2 = start_mirror_maker(None, {"us": argv[0], "eu": argv[1]}, [("us", "eu")], topics=topics)
    print(
        f"MirrorMaker 2 us({argv[0]}) -> eu({argv[1]}) pid {mm2.pid}, started in {mm2.started_in_s:.1f}s, log {mm2.log_path}"
    )
    try:
        mm2.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        mm2.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
