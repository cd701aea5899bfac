"""Which broker coordinates a key: the leader of the key's internal-topic partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from kafkapy.cluster.metadata import BrokerInfo


class Placement:
    """Mixin for coordinators keyed by group or transactional id.

    The host class provides `state` (BrokerState), `num_partitions` and the
    class attribute TOPIC (the internal topic holding its records).
    """

    __slots__ = ()

    TOPIC: ClassVar[str]
    state: Any
    num_partitions: int

    def partition_of(self, key: str) -> int:
        from kafkapy.coordinator.coordinator import partition_for

        return partition_for(key, self.num_partitions)

    def _owns_partition(self, partition: int) -> bool:
        info = self.state.metadata.topic(self.TOPIC)
        return (
            info is not None
            and partition < len(info.partitions)
            and info.partitions[partition].leader == self.state.node_id
        )

    def owns(self, key: str) -> bool:
        return self._owns_partition(self.partition_of(key))

    def coordinator_node(self, key: str) -> BrokerInfo | None:
        """The broker leading the key's partition of the internal topic."""
        info = self.state.metadata.topic(self.TOPIC)
        if info is None:
            return None
        leader = info.partitions[self.partition_of(key)].leader
        if leader == self.state.node_id:
            return self.state.advertised  # type: ignore[no-any-return]
        return next((b for b in self.state.metadata.brokers() if b.node_id == leader), None)
