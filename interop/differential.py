"""Differential tests: the same scripted raw requests to Apache Kafka and to
kafkapy, responses compared field by field after normalising what
legitimately differs.

The script (`SCRIPT`) is a list of steps; each builds one request (kafkapy's
own codec, `kafkapy.protocol.frames`) and names it. `run_script(bootstrap)`
sends them in order over one blocking connection and returns each step's
normalised response as plain JSON data. `diff(kafka, kafkapy)` lists the
differing paths.

Apache Kafka's answers are kept as golden fixtures in interop/golden_kafka/
so the comparison runs without a JVM (interop/test_differential.py):

    python -m interop.differential regenerate   # start Apache Kafka, rewrite the fixtures
    python -m interop.differential compare      # start both brokers, print the differences

Normalised away: throttle times, cluster ids, node ids' hosts and ports,
topic ids (kept as "zero"/"set"), timestamps (log append times: "set"/-1),
session and member ids, error message texts (kept as "null"/"set").
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkapy.protocol import records
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkapy.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
)
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.protocol.messages.metadata_request import (
    MetadataRequest,
    MetadataRequestTopic,
)
from kafkapy.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkapy.protocol.primitives import Entity, Message

GOLDEN_DIR = Path(__file__).resolve().parent / "golden_kafka"
GOLDEN_FILE = GOLDEN_DIR / "responses.json"

# Fixed names: the script runs against a fresh broker, so its answers are deterministic.
KNOWN = "diff-known"  # 2 partitions, created by the script
EMPTY = "diff-empty"  # 1 partition, never written
MISSING = "diff-missing"  # never created, never auto-created (allow_auto_topic_creation=False)
T0 = 1_700_000_000_000  # record timestamps (CreateTime)


# ---------------------------------------------------------------- connection


class Conn:
    """One blocking connection; `call` sends a request and decodes its answer."""

    def __init__(self, bootstrap: str, timeout: float = 15.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def call(self, body: Message, version: int, raw: bytes | None = None) -> Message:
        self.correlation_id += 1
        frame = raw if raw is not None else encode_request(body, version, self.correlation_id, client_id="kafkapy-differential")
        self.sock.sendall(frame)
        size = struct.unpack(">i", self._read(4))[0]
        cid, resp = decode_response(body.API_KEY, version, self._read(size))
        if cid != self.correlation_id:
            raise ValueError(f"correlation id {cid}, expected {self.correlation_id}")
        return resp

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            out += chunk
        return bytes(out)


# ---------------------------------------------------------------- normalising

ZERO_UUID = uuid.UUID(int=0)
DROP = {"throttle_time_ms", "unknown_tagged_fields", "cluster_id", "host", "port", "rack"}
SET_OR_NOT = {"error_message", "member_id", "session_id", "topic_id", "log_append_time_ms", "client_id", "client_host"}


def to_data(value: Any) -> Any:
    """Entities as dicts (slot order), bytes as their length, UUIDs as strings."""
    if isinstance(value, Entity):
        slots: tuple[str, ...] = value.__slots__
        return {name: to_data(getattr(value, name)) for name in slots}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            if key in DROP:
                continue
            if key in SET_OR_NOT:
                if v in (None, "", -1, str(ZERO_UUID)):
                    out[key] = v if v in (None, -1) else "unset"
                else:
                    out[key] = "set"
                continue
            if key in ("node_id", "leader_id", "controller_id", "coordinator_id") and isinstance(v, int):
                out[key] = "node" if v >= 0 else v
                continue
            if key in ("replica_nodes", "isr_nodes", "offline_replicas") and isinstance(v, list):
                out[key] = ["node" for _ in v]
                continue
            if key == "configs" and isinstance(v, list) and all(isinstance(c, dict) and "name" in c for c in v):
                # a set keyed by name, not a sequence
                out[key] = {str(c["name"]): normalise({k: x for k, x in c.items() if k != "name"}) for c in v}
                continue
            out[key] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def diff(kafka: Any, ours: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, Kafka's value, kafkapy's value) for every difference."""
    if isinstance(kafka, dict) and isinstance(ours, dict):
        out = []
        for key in list(kafka) + [k for k in ours if k not in kafka]:
            out += diff(kafka.get(key, "<absent>"), ours.get(key, "<absent>"), f"{path}.{key}" if path else key)
        return out
    if isinstance(kafka, list) and isinstance(ours, list):
        if len(kafka) != len(ours):
            return [(f"{path}[len]", len(kafka), len(ours))] + [
                d for i, (a, b) in enumerate(zip(kafka, ours)) for d in diff(a, b, f"{path}[{i}]")
            ]
        return [d for i, (a, b) in enumerate(zip(kafka, ours)) for d in diff(a, b, f"{path}[{i}]")]
    return [] if kafka == ours else [(path, kafka, ours)]


# ---------------------------------------------------------------- the script


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    build: Callable[[], Message]
    version: int
    # post-processing of the normalised answer (sorting lists whose order is not meaningful)
    post: Callable[[Any], Any] | None = None
    # send these bytes instead of encoding `build()` (malformed requests); `build()` still names the API
    raw: Callable[[int], bytes] | None = None


def _batch(n: int, start: int = 0) -> bytes:
    return bytes(records.build_batch([(f"k{i}".encode(), f"v{i}".encode(), [], T0 + i) for i in range(start, start + n)]))


def _corrupt_crc(n: int) -> bytes:
    b = bytearray(_batch(n))
    b[-1] ^= 0xFF  # last payload byte: the CRC (bytes 17-20) no longer matches
    return bytes(b)


def produce(topic: str, partition: int, data: bytes, acks: int = -1) -> ProduceRequest:
    return ProduceRequest(
        acks=acks,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=data)])],
    )


def fetch(topic: str, partition: int, offset: int, max_bytes: int = 1 << 20) -> FetchRequest:
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)],
            )
        ],
    )


def list_offsets(topic: str, partitions: list[int], timestamp: int) -> ListOffsetsRequest:
    return ListOffsetsRequest(
        replica_id=-1,
        isolation_level=0,
        topics=[
            ListOffsetsTopic(
                name=topic,
                partitions=[ListOffsetsPartition(partition_index=p, current_leader_epoch=-1, timestamp=timestamp) for p in partitions],
            )
        ],
    )


def create(*topics: CreatableTopic, validate_only: bool = False) -> CreateTopicsRequest:
    return CreateTopicsRequest(topics=list(topics), timeout_ms=10_000, validate_only=validate_only)


def topic(name: str, partitions: int = 1, rf: int = 1, **configs: str) -> CreatableTopic:
    return CreatableTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=rf,
        configs=[CreatableTopicConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()],
    )


def metadata(*names: str, auto: bool = False) -> MetadataRequest:
    return MetadataRequest(topics=[MetadataRequestTopic(name=n) for n in names], allow_auto_topic_creation=auto)


def _sort_topics(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("topics"), list):
        data["topics"] = sorted(data["topics"], key=lambda t: str(t.get("name")))
    return data


def _only_script_topics(data: Any) -> Any:
    """Metadata for all topics: keep the script's own (Kafka may have __consumer_offsets)."""
    data = _sort_topics(data)
    data["topics"] = [t for t in data["topics"] if str(t.get("name", "")).startswith("diff-")]
    return data


def _api_ranges(data: Any) -> Any:
    return data  # ApiVersions is compared range by range by compare_api_versions, not field by field


SCRIPT: list[Step] = [
    Step("api_versions_v3", lambda: ApiVersionsRequest(client_software_name="kafkapy-diff", client_software_version="1"), 3, _api_ranges),
    # CreateTopics and its errors
    Step("create_known", lambda: create(topic(KNOWN, 2), topic(EMPTY, 1)), 7, _sort_topics),
    Step("create_exists", lambda: create(topic(KNOWN, 2)), 7),
    Step("create_bad_name", lambda: create(topic("bad/name")), 7),
    Step("create_dot_name", lambda: create(topic("..")), 7),
    Step("create_long_name", lambda: create(topic("x" * 250)), 7),
    Step("create_zero_partitions", lambda: create(topic("diff-zero", 0)), 7),
    Step("create_negative_partitions", lambda: create(topic("diff-neg", -2)), 7),
    Step("create_bad_rf", lambda: create(topic("diff-rf", 1, 3)), 7),
    Step("create_zero_rf", lambda: create(topic("diff-rf0", 1, 0)), 7),
    Step("create_bad_config_value", lambda: create(topic("diff-cfg", 1, cleanup_policy="nope")), 7),
    Step("create_unknown_config", lambda: create(topic("diff-cfg2", 1, no_such_config="1")), 7),
    Step("create_validate_only", lambda: create(topic("diff-dry", 3), validate_only=True), 7),
    Step("create_duplicate_in_request", lambda: create(topic("diff-dup"), topic("diff-dup")), 7),
    # Metadata
    Step("metadata_known", lambda: metadata(KNOWN, EMPTY), 12, _sort_topics),
    Step("metadata_unknown", lambda: metadata(MISSING), 12),
    Step("metadata_invalid_name", lambda: metadata("bad/name"), 12),
    Step("metadata_all", lambda: MetadataRequest(topics=None), 12, _only_script_topics),
    Step("metadata_known_v1", lambda: metadata(KNOWN), 1, _sort_topics),
    # Produce
    Step("produce_ok", lambda: produce(KNOWN, 0, _batch(3)), 9),
    Step("produce_ok_again", lambda: produce(KNOWN, 0, _batch(2, 3)), 9),
    Step("produce_unknown_topic", lambda: produce(MISSING, 0, _batch(1)), 9),
    Step("produce_unknown_partition", lambda: produce(KNOWN, 7, _batch(1)), 9),
    Step("produce_corrupt_crc", lambda: produce(KNOWN, 1, _corrupt_crc(2)), 9),
    Step("produce_invalid_topic", lambda: produce("bad/name", 0, _batch(1)), 9),
    # Fetch
    Step("fetch_ok", lambda: fetch(KNOWN, 0, 0), 12),
    Step("fetch_at_end", lambda: fetch(KNOWN, 0, 5), 12),
    Step("fetch_out_of_range_high", lambda: fetch(KNOWN, 0, 6), 12),
    Step("fetch_out_of_range_negative", lambda: fetch(KNOWN, 0, -1), 12),
    Step("fetch_unknown_partition", lambda: fetch(KNOWN, 9, 0), 12),
    Step("fetch_unknown_topic", lambda: fetch(MISSING, 0, 0), 12),
    Step("fetch_empty", lambda: fetch(EMPTY, 0, 0), 12),
    # ListOffsets
    Step("list_offsets_latest", lambda: list_offsets(KNOWN, [0, 1], -1), 7),
    Step("list_offsets_earliest", lambda: list_offsets(KNOWN, [0, 1], -2), 7),
    Step("list_offsets_max_timestamp", lambda: list_offsets(KNOWN, [0], -3), 7),
    Step("list_offsets_for_time", lambda: list_offsets(KNOWN, [0], T0 + 2), 7),
    Step("list_offsets_after_last", lambda: list_offsets(KNOWN, [0], T0 + 100), 7),
    Step("list_offsets_unknown_partition", lambda: list_offsets(KNOWN, [5], -1), 7),
    Step("list_offsets_unknown_topic", lambda: list_offsets(MISSING, [0], -1), 7),
    Step("list_offsets_empty", lambda: list_offsets(EMPTY, [0], -1), 7),
    Step("list_offsets_v0_latest", lambda: list_offsets(KNOWN, [0], -1), 1),
]


def run_script(bootstrap: str, steps: list[Step] | None = None) -> dict[str, Any]:
    """Every step's normalised answer, by name. A broker that closes the
    connection answers {"closed": true} (the next step reconnects)."""
    answers: dict[str, Any] = {}
    conn = Conn(bootstrap)
    try:
        for step in steps or SCRIPT:
            body = step.build()
            try:
                resp = conn.call(body, step.version, step.raw(conn.correlation_id + 1) if step.raw else None)
            except (ConnectionError, OSError):
                answers[step.name] = {"closed": True}
                conn.close()
                conn = Conn(bootstrap)
                continue
            data = normalise(to_data(resp))
            answers[step.name] = step.post(data) if step.post else data
            if step.name.startswith("create_"):
                time.sleep(0.05)  # Kafka creates asynchronously; let metadata catch up
    finally:
        conn.close()
    return answers


def api_ranges(answer: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in answer["api_keys"]}


def compare_api_versions(kafka: dict[str, Any], ours: dict[str, Any]) -> dict[str, list[tuple[int, Any, Any]]]:
    """ApiVersions ranges: kafkapy's against Kafka's, by API key."""
    k, o = api_ranges(kafka), api_ranges(ours)
    return {
        "only_kafka": sorted((key, k[key], None) for key in k if key not in o),
        "only_kafkapy": sorted((key, None, o[key]) for key in o if key not in k),
        "different_range": sorted((key, k[key], o[key]) for key in k if key in o and k[key] != o[key]),
    }


def compare(kafka: dict[str, Any], ours: dict[str, Any]) -> dict[str, list[tuple[str, Any, Any]]]:
    """Differences per step (ApiVersions excluded: see compare_api_versions)."""
    out: dict[str, list[tuple[str, Any, Any]]] = {}
    for name, answer in kafka.items():
        if name.startswith("api_versions"):
            continue
        d = diff(answer, ours.get(name, "<missing>"))
        if d:
            out[name] = d
    return out


# ---------------------------------------------------------------- CLI


def regenerate() -> Path:
    import tempfile

    from interop.apache_kafka import start_kafka

    with tempfile.TemporaryDirectory(prefix="golden-kafka-") as tmp:
        kafka = start_kafka(Path(tmp))
        try:
            time.sleep(1.0)  # let the controller settle (first CreateTopics right after start)
            answers = run_script(kafka.bootstrap)
        finally:
            kafka.stop()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"kafka_version": kafka.version, "regenerate": "python -m interop.differential regenerate", "responses": answers}
    GOLDEN_FILE.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return GOLDEN_FILE


def load_golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN_FILE.read_text())
    return data


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "compare"
    if cmd == "regenerate":
        print(f"wrote {regenerate()}")
        return 0
    if cmd == "compare":
        import tempfile

        from interop._common import start_broker

        golden = load_golden()["responses"]
        with tempfile.TemporaryDirectory(prefix="diff-kafkapy-") as tmp:
            broker = start_broker(Path(tmp) / "data")
            try:
                ours = run_script(broker.bootstrap)
            finally:
                broker.stop()
        print(json.dumps(compare_api_versions(golden["api_versions_v3"], ours["api_versions_v3"])))
        for name, diffs in compare(golden, ours).items():
            for path, k, o in diffs:
                print(f"{name}: {path}: kafka={k!r} kafkapy={o!r}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
