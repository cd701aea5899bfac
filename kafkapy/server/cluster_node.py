"""A broker as a member of a cluster: etcd metadata, controller, replication.

`open_cluster_state(broker)` builds the BrokerState of a clustered broker:
it connects to etcd, registers the broker, opens the logs of the partitions
it hosts, starts replication and the controller candidate, and from then on
applies every metadata change (in etcd's order) to the local logs, the
replica manager and the coordinators.

Stopping (SIGTERM) is a controlled shutdown: the broker marks itself
`shutting_down`, the controller moves its leaderships to other in-sync
replicas, the broker waits for that (bounded), then stops serving and
revokes its lease.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkapy.cluster.controller import Controller
from kafkapy.cluster.etcd_metadata import PRODUCER_ID_BLOCK, Changes, EtcdMetadata
from kafkapy.cluster.metadata import BrokerInfo, MetadataError, PartitionInfo
from kafkapy.logging import get_logger
from kafkapy.server.state import BrokerState

log = get_logger(__name__)

COORDINATOR_TOPICS = ("__consumer_offsets", "__transaction_state")
_CONTROLLED_SHUTDOWN_WAIT_S = 15.0


class ClusterStartError(Exception):
    """etcd unreachable, cluster id mismatch, broker id taken: the broker cannot join."""


@dataclass(slots=True)
class ClusterNode:
    state: BrokerState
    md: EtcdMetadata
    controller: Controller
    _creating: set[str] = field(default_factory=set)
    _led: dict[tuple[str, int], int] = field(default_factory=dict)  # coordinator partitions we lead -> epoch
    _pid_block: tuple[int, int] = (0, 0)  # [next, end) of the producer-id block in use
    _pid_next_block: tuple[int, int] | None = None
    _pid_refill: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ metadata changes

    def on_changes(self, changes: Changes) -> None:
        state = self.state
        me = state.node_id
        for info in changes.topics_deleted:
            for p in info.partitions:
                if state.replicas is not None:
                    state.replicas.forget(info.name, p.index)
                if state.logs.get(info.name, p.index) is not None:
                    state.logs.delete(info.name, p.index)
        for info in changes.topics_reconfigured:
            if any(state.logs.get(info.name, p.index) is not None for p in info.partitions):
                state.logs.update_config(info.name, state.log_config(info))
        for topic, p in changes.partitions:
            info = self.md.topic(topic)
            if info is None:
                continue
            hosted = me in p.replicas or me in p.adding_replicas
            if hosted and state.logs.get(topic, p.index) is None:
                state.logs.create(topic, p.index, state.log_config(info), topic_id=info.topic_id)
            if state.replicas is not None:
                state.replicas.apply(topic, p)
            if topic in COORDINATOR_TOPICS:
                self._coordinator_leadership(topic, p)
            if not hosted and state.logs.get(topic, p.index) is not None:
                log.info("replica reassigned away; deleting its log", topic=topic, partition=p.index)
                state.logs.delete(topic, p.index)
        reassigning = any(p.adding_replicas or p.removing_replicas for _, p in changes.partitions)
        if changes.brokers_added or changes.brokers_removed or changes.controller_changed or reassigning:
            self.controller.kick()
        if changes.brokers_removed or changes.brokers_added:
            log.info(
                "live brokers changed",
                live=sorted(self.md.live_ids()),
                added=[b.node_id for b in changes.brokers_added],
                removed=[b.node_id for b in changes.brokers_removed],
            )

    def _coordinator_leadership(self, topic: str, p: PartitionInfo) -> None:
        """Load a coordinator partition we start leading; unload one we stop leading."""
        key = (topic, p.index)
        leads = p.leader == self.state.node_id
        before = self._led.get(key)
        if leads and before != p.leader_epoch:
            self._led[key] = p.leader_epoch
            coord = self._coordinator(topic)
            if coord is not None:
                coord.load_partition(p.index)
        elif not leads and before is not None:
            del self._led[key]
            coord = self._coordinator(topic)
            if coord is not None:
                coord.unload_partition(p.index)

    def _coordinator(self, topic: str) -> Any:
        from kafkapy.coordinator.coordinator import EXTRAS_KEY as GROUPS
        from kafkapy.coordinator.transactions import EXTRAS_KEY as TXNS

        return self.state.extras.get(GROUPS if topic == "__consumer_offsets" else TXNS)

    # ------------------------------------------------------------ internal topics

    def ensure_internal_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None:
        """Create an internal topic in the background once enough brokers are live (idempotent)."""
        if name in self._creating or self.md.topic(name) is not None:
            return
        self._creating.add(name)

        async def create() -> None:
            try:
                while self.md.topic(name) is None:
                    if len(self.md.live_ids()) >= replication_factor:
                        try:
                            await self.md.create_topic(name, partitions, replication_factor, configs)
                        except MetadataError as e:
                            if e.code != 36:  # TOPIC_ALREADY_EXISTS: another broker won
                                log.warning("internal topic not created yet", topic=name, error=e.message)
                    else:
                        log.info(
                            "waiting for brokers before creating an internal topic",
                            topic=name,
                            replication_factor=replication_factor,
                            live=len(self.md.live_ids()),
                        )
                    if self.md.topic(name) is None:
                        await asyncio.sleep(1.0)
            finally:
                self._creating.discard(name)

        self.state.tasks.append(asyncio.get_running_loop().create_task(create()))

    def internal_replication_factor(self, configured: int, key: str) -> int:
        """Kafka's default (3) unless set explicitly; kafkapy's single-broker default is 1."""
        if key in self.state.config.explicit:
            return configured
        return min(3, max(1, len(self.md.live_ids())))

    # ------------------------------------------------------------ producer ids

    def generate(self) -> int:
        """A producer id from a block reserved in etcd (the next block is fetched ahead of need)."""
        nxt, end = self._pid_block
        if nxt >= end:
            if self._pid_next_block is None:
                self._refill_producer_ids()
                raise RuntimeError("no producer id block reserved yet")
            self._pid_block, self._pid_next_block = self._pid_next_block, None
            nxt, end = self._pid_block
        self._pid_block = (nxt + 1, end)
        if self._pid_next_block is None and end - nxt < 500:
            self._refill_producer_ids()
        return nxt

    def _refill_producer_ids(self) -> None:
        if self._pid_refill is not None and not self._pid_refill.done():
            return
        self._pid_refill = asyncio.get_running_loop().create_task(self.reserve_producer_ids())

    async def reserve_producer_ids(self) -> None:
        start = await self.md.reserve_producer_ids(PRODUCER_ID_BLOCK)
        self._pid_next_block = (start, start + PRODUCER_ID_BLOCK)
        log.info("producer id block reserved", first=start, end=start + PRODUCER_ID_BLOCK)

    # ------------------------------------------------------------ shutdown

    async def controlled_shutdown(self) -> None:
        """Hand leaderships away before the network stops."""
        if not self.state.config.controlled_shutdown_enable:
            return
        me = self.state.node_id
        try:
            await self.md.announce_shutdown()
        except Exception as e:
            log.warning("controlled shutdown not announced", error=str(e))
            return
        deadline = asyncio.get_running_loop().time() + _CONTROLLED_SHUTDOWN_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            movable = [
                (t.name, p.index)
                for t in self.md.topics()
                for p in t.partitions
                if p.leader == me and any(r != me and r in self.md.live_ids() for r in p.isr)
            ]
            if not movable:
                log.info("controlled shutdown: no leaderships left to move")
                return
            await asyncio.sleep(0.1)
        log.warning("controlled shutdown timed out; stopping anyway", still_leading=len(movable))

    async def close(self) -> None:
        await self.controller.stop()
        if self.state.replicas is not None:
            await self.state.replicas.close()
        await self.md.close()


async def open_cluster_state(broker: Any) -> BrokerState:
    """The BrokerState of a broker that keeps its metadata in etcd."""
    from kafkapy.cluster.etcd import EtcdError

    config = broker.config
    data_dir = Path(config.data_dirs[0])
    first = broker.advertised[0] if broker.advertised else None
    me = BrokerInfo(
        config.effective_node_id,
        first.host if first else "127.0.0.1",
        first.port if first else 9092,
        config.broker_rack,
    )
    try:
        md = await EtcdMetadata.open(
            config.metadata_connect,
            me,
            cluster_id=config.cluster_id,
            data_dir=data_dir,
            session_timeout_ms=config.broker_session_timeout_ms,
        )
    except (EtcdError, OSError) as e:
        raise ClusterStartError(f"cannot reach etcd at {config.metadata_connect}: {e}") from None
    except MetadataError as e:
        raise ClusterStartError(e.message) from None
    broker.cluster_id = md.cluster_id
    state = BrokerState.build(broker, md, data_dir, auto_high_watermark=False)
    node = ClusterNode(state, md, Controller(md, config))
    state.cluster = node
    state.open_logs()
    for topic, index in state.logs.partitions():  # reassigned away while this broker was down
        info = md.topic(topic)
        if info is not None and index < len(info.partitions):
            p = info.partitions[index]
            if me.node_id not in p.replicas and me.node_id not in p.adding_replicas:
                log.info("replica reassigned away while stopped; deleting its log", topic=topic, partition=index)
                state.logs.delete(topic, index)
    from kafkapy.cluster.replication import ReplicaManager

    state.replicas = ReplicaManager(state)
    await state.replicas.start()
    for info in list(md.topics()):
        for p in info.partitions:
            state.replicas.apply(info.name, p)
    md.listener = node.on_changes
    md.on_session_lost = lambda: log.error("lost etcd session; no ISR changes nor controller work until it is back")
    md.on_session_restored = node.controller.kick  # changes seen while unregistered were not acted on
    state.tasks.append(asyncio.get_running_loop().create_task(state._housekeeping()))
    node.controller.start()
    await node.reserve_producer_ids()

    async def close() -> None:
        await node.close()
        state.close()

    broker.add_shutdown_hook(close)
    broker.add_pre_shutdown_hook(node.controlled_shutdown)
    return state
