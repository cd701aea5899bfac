"""DescribeLogDirs (35): the broker's one data directory and the partitions in it."""

from __future__ import annotations

import os

from kafkapy.protocol.error_codes import ErrorCode
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
    topics: list[DescribeLogDirsTopic] = []
    for name, partitions in _wanted(state, req).items():
        entries = []
        for index in partitions:
            plog = state.logs.get(name, index)
            if plog is None:
                continue  # Kafka leaves out partitions this broker does not host
            # Single replica, no ReplicaAlterLogDirs: never lagging, never a future log.
            entries.append(
                DescribeLogDirsPartition(
                    partition_index=index, partition_size=plog.size, offset_lag=0, is_future_key=False
                )
            )
        if entries:
            topics.append(DescribeLogDirsTopic(name=name, partitions=entries))
    path = os.path.abspath(state.data_dir)
    total, usable = _space(path)
    return DescribeLogDirsResponse(
        error_code=ErrorCode.NONE,
        results=[
            DescribeLogDirsResult(
                error_code=ErrorCode.NONE, log_dir=path, topics=topics, total_bytes=total, usable_bytes=usable
            )
        ],
    )
