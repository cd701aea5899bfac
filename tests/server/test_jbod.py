"""Several log dirs (JBOD): AlterReplicaLogDirs and DescribeLogDirs against a kafkapy broker process with
two `log.dirs`, compared with Apache Kafka 4.3.1's answers to the same scenario
(interop/golden_kafka/log_dirs.json, `python -m interop.diff_log_dirs record`); the handlers in-process
for what a process test cannot catch in time (a copy being made, a failed dir)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from interop import diff_log_dirs as dl
from interop._common import BrokerProcess, start_broker
from kafkapy.cluster.metadata import PartitionInfo, TopicInfo
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_replica_log_dirs_request import (
    AlterReplicaLogDir,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirTopic,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkapy.protocol.messages.request_header import RequestHeader
from kafkapy.server.handler import RequestContext
from kafkapy.server.handlers import log_dirs
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log_manager import LogManager
from tests.server.rawclient import RawClient
from tests.storage.helpers import make_batch


@pytest.fixture(scope="module")
def jbod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, list[str]]]:
    base = Path(tmp_path_factory.mktemp("jbod"))
    dirs = [str(base / "a"), str(base / "b")]
    b = start_broker(base / "a", {"log.dirs": ",".join(dirs)})
    try:
        yield b, dirs
    finally:
        b.stop()


def _norm(a: dict[str, Any]) -> dict[str, Any]:
    """Kafka creates a new topic's partitions in no fixed order, so which partition lands in which dir
    differs: placement as counts per dir, partition 0 (the one moved) by its dir, the rest by content."""
    out = dict(a)
    placed = a["placed"]
    home = placed["0"]
    out["placed"] = sorted(Counter(placed.values()).values())
    after = a["placed_after"]
    out["placed_after"] = {
        "0": "home" if after["0"] == home else "other",
        "others_stay": all(after[k] == placed[k] for k in ("1", "2")),
    }
    for key in ("describe_before", "describe_after", "describe_after_v5"):
        dirs = {d: v for d, v in a[key].items() if d != "error"}
        out[key] = {
            "error": a[key]["error"],
            "dirs": sorted((d, v["error"], v["total"], v["usable"]) for d, v in dirs.items()),
            "partitions": sorted(
                [*p, ("home" if d == home else "other") if p[1] == 0 else ""]
                for d, v in dirs.items()
                for p in v["partitions"]
            ),
        }
    return out


def test_answers_as_kafka(jbod: tuple[BrokerProcess, list[str]]) -> None:
    broker, dirs = jbod
    ours = dl.run(broker.bootstrap, dirs)
    golden = dl.load()
    assert ours["moved"] and ours["moved_back"]
    assert ours["fetched_after"] == ours["fetched_back"] == dl.RECORDS
    assert _norm(ours) == _norm(golden)
    # the moved partition's files are in the other dir, the source gone after file.delete.delay.ms
    home = Path(dirs[int(ours["placed"]["0"])])
    assert (home / f"{dl.TOPIC}-0").is_dir()


def test_alter_replica_log_dirs_versions(jbod: tuple[BrokerProcess, list[str]]) -> None:
    broker, _ = jbod
    with RawClient(broker.bootstrap) as c:
        resp = c.request(ApiVersionsRequest(), 3)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert ranges[ApiKey.ALTER_REPLICA_LOG_DIRS] == (0, 2)  # Kafka 4.3.1: 1-2 (KIP-896); v0 kept for old clients
    assert ranges[ApiKey.DESCRIBE_LOG_DIRS][1] == 5


def test_kafka_log_dirs_files(jbod: tuple[BrokerProcess, list[str]]) -> None:
    """Each dir has the partitions DescribeLogDirs names; a process restart keeps them where they are."""
    broker, dirs = jbod
    with RawClient(broker.bootstrap) as c:
        described = dl.describe(c, dirs)
    for d in ("0", "1"):
        for topic, index, _, _ in described[d]["partitions"]:
            assert (Path(dirs[int(d)]) / f"{topic}-{index}").is_dir()


# ------------------------------------------------------------ in-process


class _Metadata:
    def __init__(self, topics: list[TopicInfo]) -> None:
        self._topics = {t.name: t for t in topics}

    def topics(self) -> list[TopicInfo]:
        return list(self._topics.values())

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)


def _ctx(logs: LogManager, topics: list[TopicInfo], version: int) -> RequestContext:
    state = SimpleNamespace(logs=logs, metadata=_Metadata(topics), authorizer=None)
    return RequestContext(header=RequestHeader(), version=version, state=state, conn=None)  # type: ignore[arg-type]


def _topic(name: str, partitions: int) -> TopicInfo:
    return TopicInfo(name, uuid.uuid4(), [PartitionInfo(i, 0, [0], [0]) for i in range(partitions)])


def _alter(logs: LogManager, topics: list[TopicInfo], moves: list[tuple[str, str, int]]) -> list[tuple[str, int, int]]:
    req = AlterReplicaLogDirsRequest(
        dirs=[AlterReplicaLogDir(path=p, topics=[AlterReplicaLogDirTopic(name=t, partitions=[i])]) for p, t, i in moves]
    )
    resp = asyncio.run(log_dirs.alter_replica_log_dirs(_ctx(logs, topics, 2), req))
    return [(t.topic_name, p.partition_index, p.error_code) for t in resp.results for p in t.partitions]


def test_describe_shows_the_copy_being_made_and_a_failed_dir(tmp_path: Path) -> None:
    d0, d1 = tmp_path / "a", tmp_path / "b"
    logs = LogManager([d0, d1], LogConfig(retention_ms=-1))
    topics = [_topic("t", 2), _topic("other-host", 1)]
    plog = logs.create("t", 0)
    logs.create("t", 1)
    for _ in range(20):
        plog.append(make_batch(5, pad=200), leader_epoch=0)
    assert _alter(logs, topics, [(str(d1), "t", 0)]) == [("t", 0, 0)]
    logs.copy_futures(600)  # part of the way
    resp = asyncio.run(log_dirs.handle(_ctx(logs, topics, 4), DescribeLogDirsRequest(topics=None)))
    got = {
        r.log_dir: sorted((p.partition_index, p.is_future_key, p.offset_lag) for t in r.topics for p in t.partitions)
        for r in resp.results
    }
    fut = logs.future("t", 0)
    assert fut is not None
    lag = plog.log_end_offset - fut.log.log_end_offset
    assert 0 < lag < 100
    assert got == {str(d0): [(0, False, 0)], str(d1): [(0, True, lag), (1, False, 0)]}
    # moving the copy elsewhere (back home) cancels it
    assert _alter(logs, topics, [(str(d0), "t", 0)]) == [("t", 0, 0)] and logs.future("t", 0) is None
    # a partition the metadata knows but this broker has no log of: REPLICA_NOT_AVAILABLE, remembered
    assert _alter(logs, topics, [(str(d1), "other-host", 0)]) == [("other-host", 0, ErrorCode.REPLICA_NOT_AVAILABLE)]
    assert logs.create("other-host", 0).directory.parent == d1
    # the last dir named for a partition wins
    assert _alter(logs, topics, [(str(d1), "t", 1), ("/nowhere", "t", 1)]) == [("t", 1, ErrorCode.LOG_DIR_NOT_FOUND)]
    # a failed dir: its partitions and moves to it answer KAFKA_STORAGE_ERROR; DescribeLogDirs says so
    logs.healths[d1].state = "failed"
    assert _alter(logs, topics, [(str(d1), "t", 0), (str(d0), "t", 1)]) == [
        ("t", 0, ErrorCode.KAFKA_STORAGE_ERROR),
        ("t", 1, ErrorCode.KAFKA_STORAGE_ERROR),
    ]
    resp = asyncio.run(log_dirs.handle(_ctx(logs, topics, 4), DescribeLogDirsRequest(topics=None)))
    failed = next(r for r in resp.results if r.log_dir == str(d1))
    assert failed.error_code == ErrorCode.KAFKA_STORAGE_ERROR and failed.topics == []
    assert failed.total_bytes == -1 and failed.usable_bytes == -1
    logs.healths[d1].state = "online"
    # a topic name too long for the copy's directory name
    long = _topic("x" * 249, 1)
    logs.create(long.name, 0)
    assert _alter(logs, [long], [(str(d0), long.name, 0)]) == [(long.name, 0, ErrorCode.INVALID_TOPIC_EXCEPTION)]
    logs.close()
