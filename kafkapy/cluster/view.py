"""What the rest of the broker may ask of the cluster metadata.

Two stores implement it: `EmbeddedMetadata` (one broker, a JSON file) and
`EtcdMetadata` (a cluster, etcd). Reads come from an in-memory image that is
always complete and consistent at some metadata revision; changes are
compare-and-swap operations that fail rather than overwrite newer state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo, TopicInfo


class ClusterView(Protocol):
    cluster_id: str
    broker: BrokerInfo  # this broker

    @property
    def controller_id(self) -> int: ...

    def brokers(self) -> list[BrokerInfo]:
        """Live (registered) brokers, sorted by node id."""
        ...

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        """A live broker by id; None when it is not registered."""
        ...

    def topics(self) -> Iterable[TopicInfo]: ...

    def topic(self, name: str) -> TopicInfo | None: ...

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None: ...

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        """Leader's ISR change, applied only if the partition epoch is still
        `partition_epoch` and this broker still leads; returns the new state
        (partition epoch + 1) or None when the change lost to a newer one."""
        ...
