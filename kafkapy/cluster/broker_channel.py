"""Requests from this broker to another one's inter-broker endpoint, one reused connection per broker.

Used by the share-partition leader to reach share coordinators
(ReadShareGroupState, WriteShareGroupState, ...): `send` raises what the
connection raises (a dropped connection is closed and made again next time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkapy.cluster.markers import _close, _connect
from kafkapy.cluster.replication import ReplicaManager

if TYPE_CHECKING:
    from kafkapy.client import BrokerConnection


@dataclass(slots=True)
class BrokerChannel:
    replicas: ReplicaManager
    client_id: str = "kafkapy-broker"
    _conns: dict[int, BrokerConnection] = field(default_factory=dict)

    async def send(self, node: int, request: Any, version: int) -> Any:
        try:
            conn = await _connect(self.replicas, self._conns, node, f"{self.client_id}-{self.replicas.node_id}")
            return await conn.request(request, version)
        except Exception:
            old = self._conns.pop(node, None)
            if old is not None:
                await _close(old)
            raise

    async def close(self) -> None:
        for conn in self._conns.values():
            await _close(conn)
        self._conns.clear()
