"""A real Kafka Streams application (interop/java StreamsApp: word count with a
repartition topic and a changelogged state store, exactly_once_v2) against
kafkapy and against Apache Kafka 4.3.1, with the same input and a crash
(SIGKILL) and restart midway. Each run's read_committed output must be
exactly-once (per word 1, 2, 3, ... n with no repeat and no gap, n the word's
count in the input) and the two brokers' outputs must be identical.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from interop.adapters.java import available, java_command
from interop.apache_kafka import KafkaProcess, SharedApacheKafka
from interop.test_mirrormaker import (
    create_topic,
    produce,
    start_kafkapy,
    topics,
    wait_for,
)
from kafkapy.testing import BrokerProcess

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_streams.py: {_missing} (scripts/test installs and builds it)")

STREAMS_MAIN = "kafkapy.interop.StreamsApp"
INPUT, OUTPUT, APP_ID = "lines", "word-counts", "wordcount"
INPUT_PARTITIONS, OUTPUT_PARTITIONS = 3, 2
VOCABULARY = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]

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
logger.net.name = org.apache.kafka.clients.NetworkClient
logger.net.level = info
"""


def make_lines(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 6))).upper() for _ in range(count)]


PHASES = [make_lines(1, 200), make_lines(2, 200), make_lines(3, 200)]


def expected_counts(phases: list[list[str]]) -> dict[str, int]:
    return dict(Counter(w.lower() for lines in phases for line in lines for w in line.split()))


@dataclass(slots=True)
class StreamsProcess:
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def stdout(self) -> str:
        try:
            return (self.workdir / "stdout.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = (self.workdir / "streams.log").read_text(errors="replace")
        except OSError:
            text = ""
        return "\n".join((text + self.stdout).splitlines()[-lines:])

    def errors(self) -> list[str]:
        try:
            lines = (self.workdir / "streams.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        return ["\n".join(lines[i : i + 3]) for i, line in enumerate(lines) if " ERROR " in line]

    def wait_running(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Streams app exited with {self.proc.returncode}:\n{self.log_tail()}")
            if "-> RUNNING" in self.stdout:
                return
            time.sleep(0.2)
        raise AssertionError(f"Streams app not RUNNING after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def start_streams(bootstrap: str, workdir: Path, run: str) -> StreamsProcess:
    rundir = workdir / run
    rundir.mkdir(parents=True, exist_ok=True)
    log4j = rundir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=rundir / "streams.log"))
    jvm = ("-Xmx384m", f"-Dlog4j2.configurationFile={log4j}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
    # the restarted app's group waits for the SIGKILLed member until its session times out:
    # the brokers' minimum (group.min.session.timeout.ms, 6 s) instead of StreamsApp's 10 s
    session = ("consumer.session.timeout.ms=6000", "consumer.heartbeat.interval.ms=1500")
    with open(rundir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            java_command(
                STREAMS_MAIN, bootstrap, APP_ID, INPUT, OUTPUT, str(workdir / "state"), *session, jvm_args=jvm
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return StreamsProcess(proc, rundir)


def read_counts(bootstrap: str) -> list[tuple[str, int]]:
    """Every committed (word, count) of the output, per partition in offset
    order, up to the end offsets (the last stable offsets for read_committed)
    taken when the call starts."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    parts = [TopicPartition(OUTPUT, p) for p in range(OUTPUT_PARTITIONS)]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    consumer.assign([TopicPartition(OUTPUT, p, 0) for p in range(OUTPUT_PARTITIONS)])
    out: list[tuple[str, int]] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            if msg is None:
                positions = consumer.position(parts)
                if all(tp.offset >= ends[tp.partition] or ends[tp.partition] <= 0 for tp in positions):
                    break
                continue
            if not msg.error():
                out.append(((msg.key() or b"").decode(), int(msg.value() or b"0")))
    finally:
        consumer.close()
    return out


def latest(counts: list[tuple[str, int]]) -> dict[str, int]:
    final: dict[str, int] = {}
    for word, n in counts:
        final[word] = max(n, final.get(word, 0))
    return final


def per_word(counts: list[tuple[str, int]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for word, n in counts:
        seqs.setdefault(word, []).append(n)
    return seqs


def produce_lines(bootstrap: str, lines: list[str], offset: int) -> None:
    produce(
        bootstrap,
        INPUT,
        [
            (
                (offset + i) % INPUT_PARTITIONS,
                f"line-{offset + i}".encode(),
                line.encode(),
                [],
                1_700_000_000_000 + offset + i,
            )
            for i, line in enumerate(lines)
        ],
    )


def run_word_count(bootstrap: str, workdir: Path) -> tuple[list[tuple[str, int]], set[str]]:
    """Phase 1 processed; phase 2 produced and the app SIGKILLed while it
    works; restarted; phase 3 produced; returns the committed output and the
    topic names once every count is final."""
    create_topic(bootstrap, INPUT, INPUT_PARTITIONS)
    create_topic(bootstrap, OUTPUT, OUTPUT_PARTITIONS)
    produce_lines(bootstrap, PHASES[0], 0)
    app = start_streams(bootstrap, workdir, "run-1")
    try:
        app.wait_running()
        want = expected_counts(PHASES[:1])
        wait_for("phase 1 counted", lambda: latest(read_counts(bootstrap)) == want, timeout=60, interval=1)
        produce_lines(bootstrap, PHASES[1], 200)
        time.sleep(0.3)  # part of phase 2 is being processed (and possibly in an open transaction)
        app.kill()
        app = start_streams(bootstrap, workdir, "run-2")
        app.wait_running()
        produce_lines(bootstrap, PHASES[2], 400)
        want = expected_counts(PHASES)
        wait_for(
            "all phases counted after the crash", lambda: latest(read_counts(bootstrap)) == want, timeout=90, interval=1
        )
        assert app.stop() in (0, 143), f"Streams app did not close cleanly:\n{app.log_tail()}"
    except BaseException:
        print(f"\n--- Streams log ({app.workdir}):\n{app.log_tail(80)}\n--- errors:\n" + "\n".join(app.errors()[-10:]))
        raise
    finally:
        app.kill()
    return read_counts(bootstrap), set(topics(bootstrap))


@pytest.fixture(scope="module")
def kafkapy_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[tuple[str, int]], set[str], BrokerProcess]]:
    broker = start_kafkapy(tmp_path_factory.mktemp("kp"), "kp")
    try:
        counts, names = run_word_count(broker.bootstrap, tmp_path_factory.mktemp("streams-kafkapy"))
        yield counts, names, broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def apache_run(
    tmp_path_factory: pytest.TempPathFactory, shared_apache_kafka: SharedApacheKafka
) -> tuple[list[tuple[str, int]], set[str]]:
    # the session's reference broker (interop/conftest.py): this app's topics and group are its own
    kafka: KafkaProcess = shared_apache_kafka.use(__name__)
    return run_word_count(kafka.bootstrap, tmp_path_factory.mktemp("streams-apache"))


def _check_exactly_once(counts: list[tuple[str, int]]) -> None:
    want = expected_counts(PHASES)
    seqs = per_word(counts)
    assert set(seqs) == set(want)
    for word, n in want.items():
        assert seqs[word] == list(range(1, n + 1)), f"{word}: committed counts {seqs[word]} (expected 1..{n})"


def test_word_count_exactly_once_on_kafkapy(kafkapy_run: tuple[list[tuple[str, int]], set[str], BrokerProcess]) -> None:
    counts, names, broker = kafkapy_run
    _check_exactly_once(counts)
    changelog, repartition = f"{APP_ID}-counts-changelog", f"{APP_ID}-by-word-repartition"
    assert {changelog, repartition} <= names
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    [future] = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, changelog)]).values()
    assert future.result(10)["cleanup.policy"].value == "compact"


def test_word_count_exactly_once_on_apache_kafka(apache_run: tuple[list[tuple[str, int]], set[str]]) -> None:
    _check_exactly_once(apache_run[0])


def test_same_output_as_apache_kafka(
    kafkapy_run: tuple[list[tuple[str, int]], set[str], BrokerProcess],
    apache_run: tuple[list[tuple[str, int]], set[str]],
) -> None:
    assert per_word(kafkapy_run[0]) == per_word(apache_run[0])
    internal = {n for n in apache_run[1] if n.startswith(APP_ID)}
    assert internal <= kafkapy_run[1], f"internal topics missing on kafkapy: {internal - kafkapy_run[1]}"
    assert latest(kafkapy_run[0]) == latest(apache_run[0]) == expected_counts(PHASES)
