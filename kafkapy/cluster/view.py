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

from kafkapy.cluster.metadata import BrokerInfo, MetadataListener, Outcome, PartitionInfo, TopicInfo


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


class MetadataStore(ClusterView, Protocol):
    """ClusterView plus the changes the broker's handlers and coordinators make.

    Every change reaches `listener` (in the store's order) once applied; the
    broker's services create and delete local logs and move replica roles
    from there, so a store never touches logs itself.
    """

    listener: MetadataListener | None
    supports_dynamic_broker_configs: bool  # replication throttle rates (a cluster's etcd store)

    def live_ids(self) -> set[int]: ...

    def broker_configs(self, entity: str) -> dict[str, str]:
        """Dynamic configs of broker `entity` (its id, or "default"); none on a single broker."""
        ...

    async def set_broker_configs(self, entity: str, configs: dict[str, str], expected: dict[str, str]) -> bool: ...

    def client_metrics(self) -> dict[str, dict[str, str]]:
        """The client-metrics (KIP-714) config resources: name -> the keys set."""
        ...

    async def set_client_metrics(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace client-metrics resource `name`'s configs (empty: delete it) if still `expected` (CAS)."""
        ...

    def group_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic group configs (KIP-848/932 GROUP config resources): group id -> the keys set."""
        ...

    async def set_group_configs(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace group `name`'s configs (empty: delete them) if still `expected` (CAS)."""
        ...

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        """MetadataError with Kafka's code when the topic cannot be created."""
        ...

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        assignment: dict[int, list[int]] | None = None,
    ) -> TopicInfo: ...

    async def delete_topic(self, name: str) -> TopicInfo: ...

    async def add_partitions(self, name: str, total: int, assignment: list[list[int]] | None = None) -> TopicInfo: ...

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None: ...

    def ensure_internal_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None:
        """Create an internal topic if missing: at once on one broker, in the background (once enough
        brokers are live) in a cluster."""
        ...

    def internal_replication_factor(self, configured: int, explicit: bool) -> int:
        """The replication factor an internal topic gets given its configured value."""
        ...

    async def elect_leader(self, topic: str, index: int, election_type: int) -> Outcome:
        """ElectLeaders for one partition (PREFERRED or UNCLEAN)."""
        ...

    async def alter_reassignment(self, topic: str, index: int, target: list[int] | None) -> Outcome:
        """Start (target) or cancel (None) a partition's KIP-455 reassignment."""
        ...

    async def alter_reassignments(self, requests: list[tuple[str, int, list[int] | None]]) -> list[Outcome]:
        """alter_reassignment for many (topic, partition, target) at once, applied as one decision; the
        answers in the same order."""
        ...

    async def reserve_producer_ids(self, count: int) -> int:
        """First id of a fresh, durably reserved block of `count` producer ids."""
        ...

    async def close(self) -> None: ...
