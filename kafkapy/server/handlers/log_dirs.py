"""DescribeLogDirs (35) and AlterReplicaLogDirs (34): the broker's data directories (`log.dirs`, JBOD)
and moving a partition's log between them (KIP-113).

DescribeLogDirs lists every data directory with the partitions in it, their sizes, and a copy being
made by a move (IsFutureKey, its offset lag behind the partition's log end); a failed directory
answers KAFKA_STORAGE_ERROR and nothing else. v5 adds IsCordoned (KIP-1066: a cordoned directory gets
no new partitions); kafkapy has no `cordoned.log.dirs`, so no directory is ever cordoned.

AlterReplicaLogDirs answers per partition, checked in Kafka 4.3.1's order: a topic name too long for
the copy's directory name INVALID_TOPIC_EXCEPTION; a path that is not one of the data directories as
written (absolute, no trailing slash) LOG_DIR_NOT_FOUND; a directory that refuses writes, or the
partition's own, KAFKA_STORAGE_ERROR; a partition the metadata does not know UNKNOWN_TOPIC_OR_PARTITION,
one with no replica here REPLICA_NOT_AVAILABLE (the directory is kept for when its log is made here);
else NONE, and the copy runs in the background (BrokerServices._move_logs). Each partition counts
once: the last directory named for it wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.alter_replica_log_dirs_request import AlterReplicaLogDirsRequest
from kafkapy.protocol.messages.alter_replica_log_dirs_response import (
    AlterReplicaLogDirPartitionResult,
    AlterReplicaLogDirsResponse,
    AlterReplicaLogDirTopicResult,
)
from kafkapy.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkapy.protocol.messages.describe_log_dirs_response import (
    DescribeLogDirsPartition,
    DescribeLogDirsResponse,
    DescribeLogDirsResult,
    DescribeLogDirsTopic,
)
from kafkapy.security.acl import AclOperation as Op
from kafkapy.server import authz
from kafkapy.server.handler import RequestContext
from kafkapy.server.services import BrokerServices
from kafkapy.storage.errors import LogDirError
from kafkapy.storage.log_manager import FAILED, MAX_DIR_NAME, future_dir_name

log = get_logger(__name__)


def _wanted(state: BrokerServices, req: DescribeLogDirsRequest) -> dict[str, list[int]]:
    """Topic -> partitions to report; null topics means every partition."""
    if req.topics is None:
        return {t.name: [p.index for p in t.partitions] for t in state.metadata.topics()}
    wanted: dict[str, list[int]] = {}
    for t in req.topics:
        parts = wanted.setdefault(t.topic, [])
        parts.extend(p for p in t.partitions if p not in parts)
    return wanted


def _space(path: str) -> tuple[int, int]:
    """(total, usable) bytes of the file system holding `path`; (-1, -1) if unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return -1, -1
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


async def handle(ctx: RequestContext, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse:
    state = ctx.state
    if not authz.cluster(ctx, Op.DESCRIBE):  # Kafka: Describe on the cluster
        return DescribeLogDirsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[])
    logs = state.logs
    # data dir -> topic -> partition entries (the log's own first, then a copy being made)
    found: dict[Path, dict[str, list[DescribeLogDirsPartition]]] = {d: {} for d in logs.data_dirs}
    for name, partitions in _wanted(state, req).items():
        for index in partitions:
            plog = logs.get(name, index)
            if plog is None:
                continue  # Kafka leaves out partitions this broker does not host
            found[logs.dir_of(plog)].setdefault(name, []).append(
                DescribeLogDirsPartition(
                    partition_index=index, partition_size=plog.size, offset_lag=0, is_future_key=False
                )
            )
            fut = logs.future(name, index)
            if fut is not None:
                lag = max(plog.log_end_offset - fut.log.log_end_offset, 0)
                found[fut.dest].setdefault(name, []).append(
                    DescribeLogDirsPartition(
                        partition_index=index, partition_size=fut.log.size, offset_lag=lag, is_future_key=True
                    )
                )
    results = []
    for data_dir, topics in found.items():
        path = os.path.abspath(data_dir)
        if logs.healths[data_dir].state == FAILED:
            results.append(DescribeLogDirsResult(error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=path, topics=[]))
            continue
        total, usable = _space(path)
        results.append(
            DescribeLogDirsResult(
                error_code=ErrorCode.NONE,
                log_dir=path,
                topics=[DescribeLogDirsTopic(name=n, partitions=p) for n, p in topics.items()],
                total_bytes=total,
                usable_bytes=usable,
                is_cordoned=False,
            )
        )
    return DescribeLogDirsResponse(error_code=ErrorCode.NONE, results=results)


def _alter_one(state: BrokerServices, topic: str, index: int, path: str) -> ErrorCode:
    logs = state.logs
    if len(future_dir_name(topic, index)) > MAX_DIR_NAME:
        return ErrorCode.INVALID_TOPIC_EXCEPTION  # "The topic name is too long."
    dest = logs.find_dir(path)
    if dest is None:
        return ErrorCode.LOG_DIR_NOT_FOUND
    if not logs.healths[dest].online:
        return ErrorCode.KAFKA_STORAGE_ERROR
    plog = logs.get(topic, index)
    if plog is not None and logs.health_of(plog).state == FAILED:
        return ErrorCode.KAFKA_STORAGE_ERROR  # the partition is offline here
    if plog is None:
        logs.prefer_dir(topic, index, dest)  # its log goes there when it is made here
        info = state.metadata.topic(topic)
        if info is None or not any(p.index == index for p in info.partitions):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.REPLICA_NOT_AVAILABLE
    try:
        logs.move(topic, index, dest)
    except LogDirError as e:
        log.warning("log dir move refused", topic=topic, partition=index, dest=path, error=str(e))
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.NONE


async def alter_replica_log_dirs(ctx: RequestContext, req: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse:
    state = ctx.state
    wanted: dict[tuple[str, int], str] = {}  # the last directory named for a partition wins
    for d in req.dirs:
        for t in d.topics:
            for p in t.partitions:
                wanted.pop((t.name, p), None)
                wanted[(t.name, p)] = d.path
    allowed = authz.cluster(ctx, Op.ALTER)  # Kafka: Alter on the cluster
    by_topic: dict[str, list[AlterReplicaLogDirPartitionResult]] = {}
    for (topic, index), path in wanted.items():
        code = _alter_one(state, topic, index, path) if allowed else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        if code not in (ErrorCode.NONE, ErrorCode.CLUSTER_AUTHORIZATION_FAILED):
            log.info("alter replica log dir refused", topic=topic, partition=index, dir=path, error=code.name)
        by_topic.setdefault(topic, []).append(AlterReplicaLogDirPartitionResult(partition_index=index, error_code=code))
    return AlterReplicaLogDirsResponse(
        throttle_time_ms=0,
        results=[AlterReplicaLogDirTopicResult(topic_name=t, partitions=p) for t, p in by_topic.items()],
    )
