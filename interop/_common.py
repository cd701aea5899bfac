"""Types and helpers shared by the interop tests: records, the client adapter
interface, the broker process launcher, unique names and payloads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

CODECS: tuple[str, ...] = ("none", "gzip", "snappy", "lz4", "zstd")
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Out:
    """A record to produce. partition None: the client's partitioner decides."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class In:
    """A consumed record, as the client reports it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


class ClientAdapter(Protocol):
    """What a scenario needs from a client. Every method takes the bootstrap
    address, opens its own client objects and closes them before returning."""

    name: str
    codecs: tuple[str, ...]  # codecs this client can produce
    has_admin: bool  # create topics / describe configs with its own API
    sets_timestamps: bool  # can set a record's CreateTime
    not_applicable: ClassVar[dict[str, str]]  # scenario id -> why the client can't do it

    def create_topic(
        self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None
    ) -> None: ...

    def list_topics(self, bootstrap: str) -> dict[str, int]: ...

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None: ...

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
    ) -> None: ...

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        """Produce with the client's default producer settings (only the bootstrap address)."""
        ...

    def consume(
        self,
        bootstrap: str,
        topic: str,
        starts: dict[int, int],
        count: int,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int | None = None,
    ) -> list[In]: ...

    def group_consume(self, bootstrap: str, topic: str, group: str, count: int, timeout_s: float = 40.0) -> list[In]:
        """subscribe() as a member of `group` (earliest if no commit), read
        `count` records, commit them, leave the group."""
        ...

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]: ...

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int: ...

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]: ...

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None: ...


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def payload(i: int, size: int = 0) -> bytes:
    """A deterministic printable value, `size` bytes if given."""
    head = f"value-{i:06d}-".encode()
    if size <= len(head):
        return head
    filler = (b"abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[: size - len(head)]
    return head + filler


# ---------------------------------------------------------------- broker process


@dataclass(slots=True)
class BrokerProcess:
    """A kafkapy broker subprocess listening on a free loopback port."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    log_path: Path
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_broker(data_dir: Path, settings: dict[str, str] | None = None, ready_timeout: float = 30.0) -> BrokerProcess:
    """`python -m kafkapy broker` on 127.0.0.1:0; returns once it logs broker_ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    cmd = [
        sys.executable,
        "-m",
        "kafkapy",
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        "--log-format",
        "json",
    ]
    for key, value in (settings or {}).items():
        cmd += ["--set", f"{key}={value}"]
    repo_root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH", "")]))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=repo_root)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "broker_ready":
                listen = str(event["listen"]).split(",")[0].split("://", 1)[-1]
                host, _, port = listen.rpartition(":")
                return BrokerProcess(proc, host, int(port), data_dir, log_path, dict(settings or {}))
        if proc.poll() is not None:
            raise RuntimeError(
                f"broker exited with {proc.returncode} before ready:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"broker not ready after {ready_timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def wait_until(predicate: object, timeout_s: float = 10.0, interval_s: float = 0.1) -> bool:
    """Poll a zero-argument callable until it returns truthy or time runs out."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def listener_port(log_path: Path, name: str) -> int:
    """The port of listener `name` from a broker's `broker_ready` log line."""
    for line in log_path.read_text().splitlines():
        if '"broker_ready"' in line:
            for item in str(json.loads(line)["listen"]).split(","):
                if item.upper().startswith(f"{name}://"):
                    return int(item.rpartition(":")[2])
    raise AssertionError(f"no {name} listener in the broker_ready line")


def save_golden(path: Path, answers: dict[str, Any]) -> Path:
    """A differential scenario's answers from Apache Kafka, as interop/golden_kafka keeps them."""
    path.write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    return path


def load_golden(path: Path, *, meta: bool = True) -> dict[str, Any]:
    """A golden file's answers; without `meta`, the keys starting with "_" (such as "_meta") left out."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data if meta else {k: v for k, v in data.items() if not k.startswith("_")}


def record_golden(
    path: Path,
    prefix: str,
    run: Callable[[str], dict[str, Any]],
    settings: dict[str, str] | None = None,
    settle: float = 0.0,
    release: str | None = None,
) -> Path:
    """Run a differential scenario (`run(bootstrap)`) against a fresh Apache Kafka with `settings` and
    save its answers, with the Kafka version under "_meta" (`release`: see apache_kafka.start_kafka)."""
    from interop import apache_kafka

    kafka = apache_kafka.start_kafka(Path(tempfile.mkdtemp(prefix=prefix)), dict(settings or {}), release=release)
    try:
        time.sleep(settle)
        answers = run(kafka.bootstrap)
    finally:
        kafka.stop()
    answers["_meta"] = {"kafka": kafka.version}
    return save_golden(path, answers)
