"""A real Kafka Streams application (interop/java StreamsApp: word count with a
repartition topic and a changelogged state store, exactly_once_v2) against
kafkapy and against Apache Kafka 4.3.1, with the same input and a crash
(SIGKILL) and restart midway. Each run's read_committed output must be
exactly-once (per word 1, 2, 3, ... n with no repeat and no gap, n the word's
count in the input) and the two brokers' outputs must be identical.

Every test runs under both rebalance protocols: group.protocol=classic (the
consumer group protocol and the Streams partition assignor in the client) and
group.protocol=streams (KIP-1071: StreamsGroupHeartbeat, the broker assigns
tasks and creates the internal topics). Each protocol has its own topics and
application id.
"""

from __future__ import annotations

import os
import random
import re
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

from interop.adapters.java import TOOL_JVM, available, client_classpath, java_command, reference_classpath
from interop.apache_kafka import REFERENCE_44, KafkaProcess, SharedApacheKafka
from interop.test_mirrormaker import (
    create_topic,
    produce,
    start_kafkapy,
    topics,
    wait_for,
)
from kafkapy.protocol.messages.streams_group_describe_request import StreamsGroupDescribeRequest
from kafkapy.protocol.messages.streams_group_describe_response import StreamsGroupDescribeResponse
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_streams.py: {_missing} (scripts/test installs and builds it)")

STREAMS_MAIN = "kafkapy.interop.StreamsApp"
PROTOCOLS = ("classic", "streams")
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


@dataclass(frozen=True, slots=True)
class App:
    """One protocol's run: its group.protocol, topics and application id."""

    protocol: str
    release: str | None = None  # the Kafka Streams client's: None interop/java's 4.3.1, REFERENCE_44

    @property
    def suffix(self) -> str:
        return f"-{self.protocol}" + (f"-{self.release}" if self.release else "")

    @property
    def input(self) -> str:
        return f"lines{self.suffix}"

    @property
    def output(self) -> str:
        return f"word-counts{self.suffix}"

    @property
    def app_id(self) -> str:
        return f"wordcount{self.suffix}"


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


def start_streams(bootstrap: str, workdir: Path, run: str, app: App) -> StreamsProcess:
    rundir = workdir / run
    rundir.mkdir(parents=True, exist_ok=True)
    log4j = rundir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=rundir / "streams.log"))
    jvm = ("-Xmx384m", f"-Dlog4j2.configurationFile={log4j}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
    # the restarted app's group waits for the SIGKILLed member until its session times out:
    # classic: the brokers' minimum (group.min.session.timeout.ms, 6 s) instead of StreamsApp's 10 s;
    # streams: the broker's group.streams.session.timeout.ms (45 s, as Kafka) decides
    extra: tuple[str, ...] = ("consumer.session.timeout.ms=6000", "consumer.heartbeat.interval.ms=1500")
    if app.protocol != "classic":
        extra = (f"group.protocol={app.protocol}",)
    with open(rundir / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            java_command(
                STREAMS_MAIN,
                bootstrap,
                app.app_id,
                app.input,
                app.output,
                str(workdir / "state"),
                *extra,
                jvm_args=jvm,
                cp=client_classpath(app.release) if app.release else None,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return StreamsProcess(proc, rundir)


def read_counts(bootstrap: str, app: App) -> list[tuple[str, int]]:
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
    parts = [TopicPartition(app.output, p) for p in range(OUTPUT_PARTITIONS)]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    consumer.assign([TopicPartition(app.output, p, 0) for p in range(OUTPUT_PARTITIONS)])
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


def produce_lines(bootstrap: str, lines: list[str], offset: int, app: App) -> None:
    produce(
        bootstrap,
        app.input,
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


def streams_groups_tool(bootstrap: str, *args: str) -> list[list[str]]:
    """Kafka's kafka-streams-groups (StreamsGroupCommand, 4.3.1) against `bootstrap`: its table rows, split."""
    cmd = java_command(
        "org.apache.kafka.tools.streams.StreamsGroupCommand", "--bootstrap-server", bootstrap, *args, jvm_args=TOOL_JVM
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line.split() for line in proc.stdout.splitlines() if line.strip()]


def tool_view(bootstrap: str, app: App) -> dict[str, object]:
    """What kafka-streams-groups shows of the running app's group, without ids, hosts and ports."""
    members = streams_groups_tool(bootstrap, "--describe", "--group", app.app_id, "--members")
    state = streams_groups_tool(bootstrap, "--describe", "--group", app.app_id, "--state")
    lags = streams_groups_tool(bootstrap, "--describe", "--group", app.app_id)
    return {
        "listed": app.app_id in {row[0] for row in streams_groups_tool(bootstrap, "--list")},
        "members": [" ".join(row[4:]) for row in members[1:]],  # the ASSIGNMENTS column
        "state": [(row[-2], row[-1]) for row in state[1:]],  # STATE, #MEMBERS
        "partitions": sorted((row[1], int(row[2])) for row in lags[1:]),
    }


def dumped_streams_records(data_dir: Path, group: str) -> dict[int, int]:
    """Kafka's DumpLogSegments (--offsets-decoder) over kafkapy's __consumer_offsets: how many records of
    each Streams group record type (17-23) for `group` it decoded (Kafka's own reading of the layouts)."""
    segments = [str(f) for f in sorted(data_dir.glob("__consumer_offsets-*/*.log")) if f.stat().st_size > 0]
    cmd = java_command(
        "org.apache.kafka.tools.DumpLogSegments",
        "--files",
        ",".join(segments),
        "--offsets-decoder",
        "--print-data-log",
        jvm_args=TOOL_JVM,
        cp=reference_classpath(),
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts: dict[int, int] = {}
    for line in proc.stdout.splitlines():
        m = re.search(r'key: \{"type":"(\d+)","data":\{"groupId":"([^"]+)"', line)
        if m and m.group(2) == group and 17 <= int(m.group(1)) <= 23:
            assert 'payload: {"version":"0","data":{' in line or "payload: <DELETE>" in line, line
            counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def run_word_count(
    bootstrap: str, workdir: Path, app: App
) -> tuple[list[tuple[str, int]], set[str], dict[str, object]]:
    """Phase 1 processed; phase 2 produced and the app SIGKILLed while it
    works; restarted; phase 3 produced; returns the committed output, the
    topic names once every count is final and (streams protocol) what
    kafka-streams-groups shows of the group while the app runs."""
    create_topic(bootstrap, app.input, INPUT_PARTITIONS)
    create_topic(bootstrap, app.output, OUTPUT_PARTITIONS)
    produce_lines(bootstrap, PHASES[0], 0, app)
    proc = start_streams(bootstrap, workdir, "run-1", app)
    try:
        proc.wait_running()
        want = expected_counts(PHASES[:1])
        wait_for("phase 1 counted", lambda: latest(read_counts(bootstrap, app)) == want, timeout=120, interval=1)
        produce_lines(bootstrap, PHASES[1], 200, app)
        time.sleep(0.3)  # part of phase 2 is being processed (and possibly in an open transaction)
        proc.kill()
        proc = start_streams(bootstrap, workdir, "run-2", app)
        proc.wait_running()
        produce_lines(bootstrap, PHASES[2], 400, app)
        want = expected_counts(PHASES)
        wait_for(
            "all phases counted after the crash",
            lambda: latest(read_counts(bootstrap, app)) == want,
            timeout=120,
            interval=1,
        )
        view: dict[str, object] = {}
        if app.protocol == "streams":  # the client really ran the KIP-1071 protocol
            assert "Streams rebalance protocol enabled" in proc.log_tail(10_000)
            view = tool_view(bootstrap, app)
        assert proc.stop() in (0, 143), f"Streams app did not close cleanly:\n{proc.log_tail()}"
    except BaseException:
        print(
            f"\n--- Streams log ({proc.workdir}):\n{proc.log_tail(80)}\n--- errors:\n" + "\n".join(proc.errors()[-10:])
        )
        raise
    finally:
        proc.kill()
    return read_counts(bootstrap, app), set(topics(bootstrap)), view


Run = tuple[list[tuple[str, int]], set[str], dict[str, object]]


@pytest.fixture(scope="module", params=PROTOCOLS)
def app(request: pytest.FixtureRequest) -> App:
    return App(str(request.param))


@pytest.fixture(scope="module")
def kafkapy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = start_kafkapy(tmp_path_factory.mktemp("kp"), "kp")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def kafkapy_run(tmp_path_factory: pytest.TempPathFactory, kafkapy_broker: BrokerProcess, app: App) -> Run:
    return run_word_count(kafkapy_broker.bootstrap, tmp_path_factory.mktemp(f"streams-kafkapy-{app.protocol}"), app)


@pytest.fixture(scope="module")
def apache_run(tmp_path_factory: pytest.TempPathFactory, shared_apache_kafka: SharedApacheKafka, app: App) -> Run:
    # the session's reference broker (interop/conftest.py): this app's topics and group are its own
    kafka: KafkaProcess = shared_apache_kafka.use(__name__)
    return run_word_count(kafka.bootstrap, tmp_path_factory.mktemp(f"streams-apache-{app.protocol}"), app)


def _check_exactly_once(counts: list[tuple[str, int]]) -> None:
    want = expected_counts(PHASES)
    seqs = per_word(counts)
    assert set(seqs) == set(want)
    for word, n in want.items():
        assert seqs[word] == list(range(1, n + 1)), f"{word}: committed counts {seqs[word]} (expected 1..{n})"


def test_word_count_exactly_once_on_kafkapy(kafkapy_run: Run, kafkapy_broker: BrokerProcess, app: App) -> None:
    counts, names, _ = kafkapy_run
    _check_exactly_once(counts)
    changelog, repartition = f"{app.app_id}-counts-changelog", f"{app.app_id}-by-word-repartition"
    assert {changelog, repartition} <= names
    client = AdminClient({"bootstrap.servers": kafkapy_broker.bootstrap})
    [future] = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, changelog)]).values()
    assert future.result(10)["cleanup.policy"].value == "compact"
    if app.protocol != "streams":
        return
    # the group's records in __consumer_offsets, as Kafka's own tool decodes them
    assert set(dumped_streams_records(kafkapy_broker.data_dir, app.app_id)) == {17, 19, 20, 21, 22, 23}
    # the group kafkapy kept is a Streams group: its topology as the broker configured it
    with RawClient(kafkapy_broker.bootstrap) as c:
        resp = c.request(StreamsGroupDescribeRequest(group_ids=[app.app_id]), 0)
    assert isinstance(resp, StreamsGroupDescribeResponse)
    [group] = resp.groups
    assert group.error_code == 0 and group.group_state == "Empty" and group.group_epoch > 0
    assert group.topology is not None and group.topology.subtopologies is not None
    subs = {s.subtopology_id: s for s in group.topology.subtopologies}
    assert sorted(subs) == ["0", "1"]
    assert subs["0"].source_topics == [app.input] and subs["0"].repartition_sink_topics == [repartition]
    assert [(t.name, t.partitions) for t in subs["1"].repartition_source_topics] == [(repartition, INPUT_PARTITIONS)]
    assert [(t.name, t.partitions) for t in subs["1"].state_changelog_topics] == [(changelog, INPUT_PARTITIONS)]


def test_word_count_exactly_once_on_apache_kafka(apache_run: Run) -> None:
    _check_exactly_once(apache_run[0])


def test_same_output_as_apache_kafka(kafkapy_run: Run, apache_run: Run, app: App) -> None:
    assert per_word(kafkapy_run[0]) == per_word(apache_run[0])
    internal = {n for n in apache_run[1] if n.startswith(app.app_id + "-")}
    assert internal <= kafkapy_run[1], f"internal topics missing on kafkapy: {internal - kafkapy_run[1]}"
    assert latest(kafkapy_run[0]) == latest(apache_run[0]) == expected_counts(PHASES)
    # kafka-streams-groups shows the same group on both (one member with all 6 tasks, every input partition)
    assert kafkapy_run[2] == apache_run[2]
    if app.protocol == "streams":
        assert kafkapy_run[2]["listed"] and kafkapy_run[2]["state"] == [("Stable", "1")]
        assert kafkapy_run[2]["members"] == ["ACTIVE: 0:[0,1,2]; 1:[0,1,2];"]


def test_kafka_streams_4_4_0_client_on_kafkapy(kafkapy_broker: BrokerProcess, tmp_path: Path) -> None:
    """The Kafka Streams 4.4.0 client (interop/java's StreamsApp on Kafka 4.4.0's jars) with
    group.protocol=streams (StreamsGroupHeartbeat v1): one run, no crash, counts exactly once."""
    app = App("streams", REFERENCE_44)
    bootstrap = kafkapy_broker.bootstrap
    create_topic(bootstrap, app.input, INPUT_PARTITIONS)
    create_topic(bootstrap, app.output, OUTPUT_PARTITIONS)
    produce_lines(bootstrap, PHASES[0], 0, app)
    proc = start_streams(bootstrap, tmp_path, "run-44", app)
    try:
        proc.wait_running()
        want = expected_counts(PHASES[:1])
        wait_for("phase 1 counted", lambda: latest(read_counts(bootstrap, app)) == want, timeout=120, interval=1)
        log = proc.log_tail(10_000)
        assert "Streams rebalance protocol enabled" in log and "Kafka version: 4.4.0" in log
        assert proc.stop() in (0, 143), f"Streams app did not close cleanly:\n{proc.log_tail()}"
    except BaseException:
        print(f"\n--- Streams log ({proc.workdir}):\n{proc.log_tail(80)}")
        raise
    finally:
        proc.kill()
    seqs = per_word(read_counts(bootstrap, app))
    assert seqs == {word: list(range(1, n + 1)) for word, n in want.items()}
