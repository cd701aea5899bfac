"""High watermarks of partitions this broker does not host, asked of their leaders.

A group coordinator knows its groups' committed offsets, and the high
watermark of the partitions it hosts; consumer lag on a partition hosted
elsewhere needs that partition's high watermark from its leader. The broker's
metrics ask for it here: `wanted(keys)` (at scrape time, on the event loop)
returns what the last refresh learnt and, unless one is running, starts the
next in the background: one ListOffsets (LATEST, read_uncommitted: the high
watermark, as a consumer sees it) per leader, over the inter-broker listener,
as a client (replica id -1). The figures a scrape shows are therefore those
of the refresh the previous scrape started (one scrape interval old), and the
work follows the scrapes: nothing runs while nobody scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from kafkapy.client import BrokerConnection, ConnectionSecurity, KafkaError
from kafkapy.cluster.view import ClusterView
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)

log = get_logger(__name__)

LATEST = -1
TIMEOUT_S = 10.0

Key = tuple[str, int]


@dataclass(slots=True, eq=False)
class RemoteHighWatermarks:
    """The last high watermarks learnt from other leaders; see the module docstring."""

    view: ClusterView
    node_id: int
    security: ConnectionSecurity
    known: dict[Key, int] = field(default_factory=dict)
    refreshes: int = 0  # refreshes finished
    _task: asyncio.Task[None] | None = None
    _conns: dict[int, BrokerConnection] = field(default_factory=dict)

    def wanted(self, keys: set[Key]) -> dict[Key, int]:
        """The high watermarks known of `keys` (a partition hosted elsewhere each); a refresh of them
        starts in the background unless one runs."""
        if keys and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._refresh(set(keys)))
        return {k: self.known[k] for k in keys if k in self.known}

    async def _refresh(self, keys: set[Key]) -> None:
        by_leader: dict[int, dict[str, list[int]]] = {}
        for topic, index in keys:
            info = self.view.topic(topic)
            if info is None or not 0 <= index < len(info.partitions):
                continue
            leader = info.partitions[index].leader
            if leader < 0 or leader == self.node_id:
                continue
            by_leader.setdefault(leader, {}).setdefault(topic, []).append(index)
        found: dict[Key, int] = {}
        results = await asyncio.gather(
            *(self._ask(leader, topics) for leader, topics in by_leader.items()), return_exceptions=True
        )
        for leader, result in zip(by_leader, results):
            if isinstance(result, BaseException):
                log.info("high watermarks not read", leader=leader, error=str(result) or type(result).__name__)
                await self._drop(leader)
                continue
            found.update(result)
        # keep what a failed leader gave before, for the keys still wanted
        self.known = {k: found.get(k, self.known.get(k, -1)) for k in keys if k in found or k in self.known}
        self.refreshes += 1

    async def _ask(self, leader: int, topics: dict[str, list[int]]) -> dict[Key, int]:
        conn = await self._connection(leader)
        req = ListOffsetsRequest(
            replica_id=-1,
            isolation_level=0,
            topics=[
                ListOffsetsTopic(
                    name=topic, partitions=[ListOffsetsPartition(partition_index=i, timestamp=LATEST) for i in indexes]
                )
                for topic, indexes in topics.items()
            ],
        )
        resp: Any = await asyncio.wait_for(conn.request(req), TIMEOUT_S)
        out: dict[Key, int] = {}
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code == ErrorCode.NONE and p.offset >= 0:
                    out[(t.name, p.partition_index)] = p.offset
        return out

    async def _connection(self, leader: int) -> BrokerConnection:
        info = self.view.broker_info(leader)
        if info is None:
            raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"broker {leader} is not registered")
        conn = self._conns.get(leader)
        if conn is not None and not conn.closed and (conn.host, conn.port) == (info.host, info.port):
            return conn
        await self._drop(leader)
        conn = BrokerConnection(
            info.host,
            info.port,
            client_id=f"kafkapy-metrics-{self.node_id}",
            request_timeout=TIMEOUT_S,
            security=self.security,
        )
        await conn.connect(TIMEOUT_S)
        self._conns[leader] = conn
        return conn

    async def _drop(self, leader: int) -> None:
        conn = self._conns.pop(leader, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for leader in list(self._conns):
            await self._drop(leader)
