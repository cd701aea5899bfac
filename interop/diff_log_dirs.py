"""JBOD (several `log.dirs`): AlterReplicaLogDirs (34) and DescribeLogDirs (35) recorded against Apache
Kafka 4.3.1 with two log dirs (golden file) and compared with kafkapy by tests/server/test_jbod.py.

The scenario: a topic of three partitions is created on a broker with two empty log dirs (where did
each partition go?), one partition gets records, then AlterReplicaLogDirs asks for moves: to the other
dir, to the dir it is in, to a known dir spelt with a trailing slash, to a dir the broker does not
have, for a partition and a topic the broker does not host, a relative path; the moved partition is
read back whole and DescribeLogDirs shows where every partition ended up. Dirs are named by their
place in `log.dirs` (0, 1), sizes reduced to "set" / 0.

    python -m interop.diff_log_dirs record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol import records
from kafkapy.protocol.messages.alter_replica_log_dirs_request import (
    AlterReplicaLogDir,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirTopic,
)
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.describe_log_dirs_request import DescribableLogDirTopic, DescribeLogDirsRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "log_dirs.json"
TOPIC = "jbod-topic"
RECORDS = 50


def _dir_name(path: str, dirs: list[str]) -> str:
    """A log dir's place in `log.dirs` ("0", "1"), else the path as sent (an unknown dir)."""
    norm = path.rstrip("/")
    return str(dirs.index(norm)) if norm in dirs else path


def describe(c: RawClient, dirs: list[str], version: int = 4, topics: list[str] | None = None) -> dict[str, Any]:
    """DescribeLogDirs of `topics` (None: every topic) as {dir: {...}} with dirs by place."""
    req = DescribeLogDirsRequest(
        topics=None if topics is None else [DescribableLogDirTopic(topic=t, partitions=[0, 1, 2]) for t in topics]
    )
    resp = c.request(req, version)
    out: dict[str, Any] = {"error": resp.error_code}
    for r in resp.results:
        out[_dir_name(r.log_dir, dirs)] = {
            "error": r.error_code,
            "total": "set" if r.total_bytes > 0 else r.total_bytes,
            "usable": "set" if r.usable_bytes > 0 else r.usable_bytes,
            "partitions": sorted(
                [t.name, p.partition_index, "set" if p.partition_size > 0 else p.partition_size, p.is_future_key]
                for t in r.topics
                for p in t.partitions
                if not t.name.startswith("__")
            ),
        }
    return out


def where(c: RawClient, dirs: list[str]) -> dict[str, str]:
    """partition index -> the dir holding it (future replicas left out)."""
    got = describe(c, dirs, topics=[TOPIC])
    return {str(p[1]): d for d, v in got.items() if d != "error" for p in v["partitions"] if p[0] == TOPIC and not p[3]}


def alter(c: RawClient, dirs: list[str], moves: list[tuple[str, str, list[int]]], version: int = 2) -> list[Any]:
    """AlterReplicaLogDirs of (path, topic, partitions) as [[dir, topic, partition, error]]."""
    by_path: dict[str, list[AlterReplicaLogDirTopic]] = {}
    for path, topic, parts in moves:
        by_path.setdefault(path, []).append(AlterReplicaLogDirTopic(name=topic, partitions=parts))
    req = AlterReplicaLogDirsRequest(dirs=[AlterReplicaLogDir(path=p, topics=t) for p, t in by_path.items()])
    resp = c.request(req, version)
    return sorted([t.topic_name, p.partition_index, p.error_code] for t in resp.results for p in t.partitions)


def _produce(c: RawClient, partition: int, count: int) -> int:
    batch = records.build_batch([(b"k", b"v%d" % i, [], int(time.time() * 1000)) for i in range(count)])
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[
            TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=partition, records=bytes(batch))])
        ],
    )
    return int(c.request(req, 9).responses[0].partition_responses[0].error_code)


def fetch_count(c: RawClient, partition: int) -> int:
    """Records read back from offset 0 of `partition`."""
    total, offset = 0, 0
    for _ in range(20):
        req = FetchRequest(
            replica_id=-1,
            max_wait_ms=100,
            min_bytes=1,
            max_bytes=1 << 20,
            topics=[
                FetchTopic(
                    topic=TOPIC,
                    partitions=[FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)],
                )
            ],
        )
        part = c.request(req, 11).responses[0].partitions[0]
        got = list(records.iter_all_records(bytes(part.records or b"")))
        if not got:
            break
        total += len(got)
        offset = got[-1][1].offset + 1
    return total


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def run(bootstrap: str, dirs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with RawClient(bootstrap, timeout=30.0) as c:
        c.request(
            CreateTopicsRequest(
                topics=[CreatableTopic(name=TOPIC, num_partitions=3, replication_factor=1)], timeout_ms=10_000
            ),
            7,
        )
        _wait(lambda: len(where(c, dirs)) == 3)
        placed = where(c, dirs)
        out["placed"] = placed
        out["produce"] = _produce(c, 0, RECORDS)
        home = placed["0"]
        other = dirs[1 - int(home)]
        out["describe_before"] = describe(c, dirs)
        out["alter_errors"] = alter(
            c,
            dirs,
            [
                ("/no/such/kafka/dir", TOPIC, [1]),
                (dirs[int(placed["2"])], TOPIC, [2]),  # the dir it is in
                (other, "jbod-unknown-topic", [0]),
                (other, TOPIC, [7]),
            ],
        )
        out["alter_relative"] = alter(c, dirs, [("relative/dir", TOPIC, [1])])
        # a known dir spelt with a trailing slash: Kafka compares the path as sent
        out["alter_trailing_slash"] = alter(c, dirs, [(dirs[1 - int(placed["1"])] + "/", TOPIC, [1])])
        out["alter_errors_v1"] = alter(c, dirs, [("/no/such/kafka/dir", TOPIC, [1]), (other, TOPIC, [7])], 1)
        out["alter_empty"] = alter(c, dirs, [])
        out["alter_move"] = alter(c, dirs, [(other, TOPIC, [0])])
        out["moved"] = _wait(lambda: where(c, dirs).get("0") == str(dirs.index(other)))
        out["placed_after"] = where(c, dirs)
        out["fetched_after"] = fetch_count(c, 0)
        out["describe_after"] = describe(c, dirs)
        out["describe_after_v5"] = describe(c, dirs, version=5, topics=[TOPIC, "jbod-unknown-topic"])
        out["alter_back"] = alter(c, dirs, [(dirs[int(home)], TOPIC, [0])])
        out["moved_back"] = _wait(lambda: where(c, dirs).get("0") == home)
        out["fetched_back"] = fetch_count(c, 0)
    return out


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


def main(argv: list[str]) -> int:
    if argv[1:] == ["record"]:
        base = Path(tempfile.mkdtemp(prefix="kafka-jbod-dirs-", dir="/dev/shm"))
        dirs = [str(base / "a"), str(base / "b")]
        print(record_golden(GOLDEN, "kafka-jbod-", lambda b: run(b, dirs), {"log.dirs": ",".join(dirs)}))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
