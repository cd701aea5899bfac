"""Apache Kafka's Java clients: interop/java's Driver in one long-lived JVM.

`JavaDriver` starts `java -cp <classpath> kafkapy.interop.Driver serve` once
and sends it one JSON request per line (see Driver.java for the ops); the JVM
start (~1 s) is paid once per test session, not per call. The classpath comes
from `mvn package` in interop/java (scripts/test runs it; `classpath()` runs
it too when target/dependencies.txt is missing or older than the pom or the
driver sources) and is cached in interop/java/target/.

`JavaClient` is the ClientAdapter the shared scenarios use; it also exposes
the Java-only knobs (acks, idempotence, group protocol, commit mode).
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from interop._common import In, Out

JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
TARGET = JAVA_DIR / "target"
DEPS_FILE = TARGET / "dependencies.txt"
CLASSES = TARGET / "classes"
MAIN = "kafkapy.interop.Driver"
# the second reference broker (interop/java44: Apache Kafka 4.4.0's broker jars, no driver)
REFERENCE_44 = "4.4.0"
JAVA44_DIR = JAVA_DIR.parent / "java44"
DEPS_FILE_44 = JAVA44_DIR / "target" / "dependencies.txt"


class JavaError(RuntimeError):
    """An op the driver answered with {"error", "exception"}."""

    def __init__(self, op: str, answer: dict[str, Any], stderr_tail: str = "") -> None:
        self.op = op
        self.exception = str(answer.get("exception", ""))
        self.error = str(answer.get("error", ""))
        super().__init__(f"java {op}: {self.exception}: {self.error} {stderr_tail}".strip())


def available() -> str | None:
    """Why the Java driver can't run here, or None when it can."""
    if shutil.which("java") is None:
        return "java is not installed"
    if not DEPS_FILE.exists() and shutil.which("mvn") is None:
        return "mvn is not installed and interop/java/target/dependencies.txt is missing"
    return None


def _stale() -> bool:
    if not DEPS_FILE.exists() or not (CLASSES / "kafkapy" / "interop" / "Driver.class").exists():
        return True
    built = DEPS_FILE.stat().st_mtime
    sources = [JAVA_DIR / "pom.xml", *(JAVA_DIR / "src").rglob("*")]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


_build_lock = threading.Lock()


def build(project: Path = JAVA_DIR) -> None:
    """`mvn package` in interop/java, or `project` (offline first: the local
    repository usually has everything after the first run)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"mvn is not installed: cannot build {project} (scripts/test needs Maven)")
    base = [mvn, "-q", "-B", "-f", str(project / "pom.xml"), "package"]
    proc = subprocess.run([*base[:3], "-o", *base[3:]], capture_output=True, timeout=900, check=False)
    if proc.returncode != 0:
        proc = subprocess.run(base, capture_output=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"mvn package failed in {project}:\n{(proc.stdout + proc.stderr).decode(errors='replace')[-3000:]}"
        )
    (project / "target" / "dependencies.txt").touch()


def classpath() -> str:
    """The driver's classes plus every dependency jar (building when stale)."""
    with _build_lock:
        if _stale():
            build()
        return os.pathsep.join([str(CLASSES), DEPS_FILE.read_text().strip()])


def reference_classpath(release: str | None = None) -> str:
    """The classpath a reference Apache Kafka broker runs from: interop/java's (release None, the
    pinned 4.3.1, with the driver) or interop/java44's (REFERENCE_44: broker jars only), built when stale."""
    if release is None:
        return classpath()
    if release != REFERENCE_44:
        raise ValueError(f"no Maven project for Apache Kafka {release} (known: {REFERENCE_44})")
    with _build_lock:
        if not DEPS_FILE_44.exists() or (JAVA44_DIR / "pom.xml").stat().st_mtime > DEPS_FILE_44.stat().st_mtime:
            build(JAVA44_DIR)
        return DEPS_FILE_44.read_text().strip()


def client_classpath(release: str | None = None) -> str:
    """The driver's classes on Apache Kafka `release`'s clients: interop/java's own (None, 4.3.1) or
    interop/java44's jars (REFERENCE_44: clients, Streams, tools), nothing of 4.3.1 beside them."""
    if release is None:
        return classpath()
    jars = reference_classpath(release)
    with _build_lock:
        if _stale():
            build()
    return os.pathsep.join([str(CLASSES), jars])


def kafka_version(deps_file: Path = DEPS_FILE) -> str:
    for entry in deps_file.read_text().split(os.pathsep) if deps_file.exists() else []:
        name = Path(entry).name
        if name.startswith("kafka-clients-") and name.endswith(".jar"):
            return name[len("kafka-clients-") : -len(".jar")]
    return "?"


# short-lived tool JVMs (kafka-configs, kafka-acls, ...): start fast, little to optimise
TOOL_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")


def java_command(main: str, *args: str, jvm_args: tuple[str, ...] = (), cp: str | None = None) -> list[str]:
    return [shutil.which("java") or "java", *jvm_args, "-cp", cp or classpath(), main, *args]


class JavaDriver:
    """One `Driver serve` JVM; `call` is one request/answer round trip."""

    def __init__(self, release: str | None = None) -> None:
        self.release = release  # whose clients: None interop/java's 4.3.1, REFERENCE_44 4.4.0
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        self._buf = b""

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = java_command(
            MAIN,
            "serve",
            jvm_args=("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"),
            cp=client_classpath(self.release),
        )
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=JAVA_DIR
        )
        self._stderr = []
        self._buf = b""

        def drain(stream: Any, sink: list[str]) -> None:
            for raw in iter(stream.readline, b""):
                sink.append(raw.decode(errors="replace").rstrip())
                del sink[:-200]

        threading.Thread(target=drain, args=(proc.stderr, self._stderr), daemon=True).start()
        self.proc = proc
        return proc

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stderr_tail(self, lines: int = 15) -> str:
        return "\n".join(self._stderr[-lines:])

    def call(self, op: str, timeout_s: float = 120.0, **args: Any) -> dict[str, Any]:
        with self._lock:
            proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            proc.stdin.flush()
            line = self._readline(proc, timeout_s)
        if line is None:
            tail = self.stderr_tail()
            self.stop()
            raise TimeoutError(f"java {op}: no answer in {timeout_s}s (driver restarted)\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise JavaError(op, answer)
        return answer

    def _readline(self, proc: subprocess.Popen[bytes], timeout_s: float) -> bytes | None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"java driver exited ({proc.wait()}):\n{self.stderr_tail()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(5)


DRIVER = JavaDriver()
atexit.register(DRIVER.stop)
DRIVER44 = JavaDriver(REFERENCE_44)  # the driver on Apache Kafka 4.4.0's clients (started on first use)
atexit.register(DRIVER44.stop)


def call(op: str, bootstrap: str, timeout_s: float = 120.0, **args: Any) -> dict[str, Any]:
    return DRIVER.call(op, timeout_s=timeout_s, bootstrap=bootstrap, **args)


def b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def round_trip(bootstrap: str, topic: str, group: str, config: dict[str, Any], prefix: str) -> None:
    """With the Java admin, producer and consumer configured by `config`: create `topic`, produce
    three records `<prefix>0..2` and read them back in `group`; asserts each step."""
    res = call("create_topics", bootstrap, topics=[{"name": topic, "partitions": 1, "configs": {}}], config=config)
    assert not [r for r in res["results"] if r["exception"]], res
    values = [f"{prefix}{i}".encode() for i in range(3)]
    res = call(
        "produce", bootstrap, topic=topic, records=[{"key": None, "value": b64(v)} for v in values], config=config
    )
    assert not res["errors"], res
    res = call("group_consume", bootstrap, topic=topic, group=group, count=3, timeout_ms=30000, config=config)
    assert [unb64(r["value"]) for r in res["records"]] == values


def to_in(m: dict[str, Any]) -> In:
    return In(
        m["partition"],
        m["offset"],
        unb64(m["key"]),
        unb64(m["value"]),
        tuple((k, unb64(v) or b"") for k, v in m["headers"]),
        m["timestamp"],
    )


def out_json(r: Out) -> dict[str, Any]:
    return {
        "key": b64(r.key),
        "value": b64(r.value),
        "headers": [[k, b64(v)] for k, v in r.headers],
        "partition": r.partition,
        "timestamp": r.timestamp_ms,
    }


class JavaClient:
    """The shared scenarios through the Java clients (classic group protocol,
    non-idempotent producer unless a scenario asks for the defaults)."""

    name = "java"
    codecs = ("none", "gzip", "snappy", "lz4", "zstd")
    has_admin = True
    sets_timestamps = True
    not_applicable: ClassVar[dict[str, str]] = {}

    def __init__(self, driver: JavaDriver | None = None) -> None:
        self.driver = driver or DRIVER  # DRIVER44: the same calls on Kafka 4.4.0's clients

    def call(self, op: str, bootstrap: str, timeout_s: float = 120.0, **args: Any) -> dict[str, Any]:
        return self.driver.call(op, timeout_s=timeout_s, bootstrap=bootstrap, **args)

    def create_topic(self, bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        res = self.call(
            "create_topics", bootstrap, topics=[{"name": topic, "partitions": partitions, "configs": configs or {}}]
        )
        errors = [r for r in res["results"] if r["exception"]]
        assert not errors, f"createTopics: {errors}"

    def list_topics(self, bootstrap: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.call("list_topics", bootstrap)["topics"].items()}

    def trigger_auto_create(self, bootstrap: str, topic: str) -> None:
        self.call("partitions_for", bootstrap, topic=topic)

    def produce(
        self,
        bootstrap: str,
        topic: str,
        records: list[Out],
        *,
        codec: str = "none",
        max_message_bytes: int | None = None,
        acks: str = "all",
        idempotence: bool = False,
    ) -> list[tuple[int, int]]:
        config = {"compression.type": codec, "acks": acks, "enable.idempotence": str(idempotence).lower()}
        if max_message_bytes:
            config["max.request.size"] = str(max_message_bytes * 2)
            config["buffer.memory"] = str(max(33554432, max_message_bytes * 8))
        res = self.call("produce", bootstrap, topic=topic, records=[out_json(r) for r in records], config=config)
        assert not res["errors"], f"produce errors: {res['errors'][:3]}"
        return [(p, o) for p, o, _ in res["offsets"]]

    def produce_with_defaults(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        res = self.call(
            "produce", bootstrap, topic=topic, defaults=True, records=[{"key": None, "value": b64(v)} for v in values]
        )
        assert not res["errors"], f"produce errors: {res['errors'][:3]}"

    def consume(
        self,
        bootstrap: str,
        topic: str,
        starts: dict[int, int],
        count: int,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int | None = None,
    ) -> list[In]:
        config = {}
        if max_message_bytes:
            config["max.partition.fetch.bytes"] = str(max_message_bytes * 2)
            config["fetch.max.bytes"] = str(max_message_bytes * 4)
        res = self.call(
            "consume",
            bootstrap,
            timeout_s=timeout_s + 30,
            topic=topic,
            starts={str(p): o for p, o in starts.items()},
            count=count,
            timeout_ms=int(timeout_s * 1000),
            config=config,
        )
        return [to_in(m) for m in res["records"]]

    def group_consume(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        count: int,
        timeout_s: float = 40.0,
        *,
        commit: str = "sync",
        config: dict[str, str] | None = None,
    ) -> list[In]:
        res = self.call(
            "group_consume",
            bootstrap,
            timeout_s=timeout_s + 30,
            topic=topic,
            group=group,
            count=count,
            commit=commit,
            timeout_ms=int(timeout_s * 1000),
            config=config or {},
        )
        return [to_in(m) for m in res["records"]]

    def watermarks(self, bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
        low = self.call("list_offsets", bootstrap, topic=topic, partitions=[partition], spec="earliest")["offsets"][
            str(partition)
        ]
        high = self.call("list_offsets", bootstrap, topic=topic, partitions=[partition], spec="latest")["offsets"][
            str(partition)
        ]
        return int(low), int(high)

    def offset_for_time(self, bootstrap: str, topic: str, partition: int, timestamp_ms: int) -> int:
        res = self.call("offsets_for_times", bootstrap, topic=topic, partitions=[partition], timestamp=timestamp_ms)
        return int(res["offsets"][str(partition)])

    def describe_topic_configs(self, bootstrap: str, topic: str) -> dict[str, str]:
        return dict(self.call("describe_configs", bootstrap, topic=topic)["configs"])

    def alter_topic_configs(self, bootstrap: str, topic: str, configs: dict[str, str]) -> None:
        self.call("alter_configs", bootstrap, topic=topic, configs=configs)
