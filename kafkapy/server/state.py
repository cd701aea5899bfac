"""The broker's state as handlers see it: config, metadata, logs, waiters.

Handlers go through these methods; they never touch files or the metadata
image directly. Everything runs on the broker's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkapy.cluster.metadata import BrokerInfo, EmbeddedMetadata, TopicInfo
from kafkapy.config import BrokerConfig, describe_topic_config
from kafkapy.logging import get_logger
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.log_manager import LogManager

log = get_logger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class AppendSignal:
    """Wakes long-polling fetches when any partition grows.

    One future per generation: `notify` resolves it and starts the next, so a
    waiter never misses an append that happens after it read the log.
    """

    _future: asyncio.Future[None] | None = None

    def current(self) -> asyncio.Future[None]:
        if self._future is None or self._future.done():
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def notify(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


@dataclass(slots=True)
class BrokerState:
    config: BrokerConfig
    metadata: EmbeddedMetadata
    logs: LogManager
    data_dir: Path
    broker: Any  # kafkapy.server.broker.Broker: advertised listeners, shutdown hooks
    appends: AppendSignal = field(default_factory=AppendSignal)
    extras: dict[str, Any] = field(default_factory=dict)  # coordinators etc. plug in here
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Leader/follower replication (kafkapy.cluster.replication.ReplicaManager); None on a single broker.
    replicas: Any = None
    # kafkapy.server.cluster_node.ClusterNode (etcd metadata, controller); None on a single broker.
    cluster: Any = None

    @classmethod
    def open(cls, broker: Any) -> BrokerState:
        """Load metadata and logs from the first data dir; start housekeeping."""
        config: BrokerConfig = broker.config
        data_dir = Path(config.data_dirs[0])
        first = broker.advertised[0] if broker.advertised else None
        me = BrokerInfo(config.effective_node_id, first.host if first else "127.0.0.1", first.port if first else 9092)
        metadata = EmbeddedMetadata(data_dir, me, broker.cluster_id or None)
        broker.cluster_id = metadata.cluster_id
        state = cls.build(broker, metadata, data_dir)
        state.open_logs()
        state.tasks.append(asyncio.get_running_loop().create_task(state._housekeeping()))
        broker.add_shutdown_hook(state.close)
        return state

    @classmethod
    def build(cls, broker: Any, metadata: Any, data_dir: Path, *, auto_high_watermark: bool = True) -> BrokerState:
        """The state over `metadata` with the data dir's logs loaded (not yet opened for new topics)."""
        config: BrokerConfig = broker.config
        holder: list[BrokerState] = []

        def config_for_topic(name: str) -> LogConfig | None:
            info = metadata.topic(name)
            return holder[0].log_config(info) if holder and info is not None else None

        logs = LogManager(
            data_dir,
            config_for_topic=config_for_topic,
            compaction_executor=ThreadPoolExecutor(1, thread_name_prefix="log-cleaner"),
            retention_check_interval_ms=config.log_retention_check_interval_ms,
            producer_id_expiration_ms=config.producer_id_expiration_ms,
            producer_expiration_check_interval_ms=min(600_000, config.producer_id_expiration_ms),
            auto_high_watermark=auto_high_watermark,
        )
        state = cls(config=config, metadata=metadata, logs=logs, data_dir=data_dir, broker=broker)
        holder.append(state)
        return state

    async def _housekeeping(self) -> None:
        interval = min(self.config.log_retention_check_interval_ms, 1000) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.logs.tick(now_ms())
            except Exception:
                log.exception("housekeeping failed")

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.logs.close()
        log.info("logs closed", data_dir=str(self.data_dir))

    @property
    def node_id(self) -> int:
        return self.metadata.broker.node_id

    @property
    def advertised(self) -> BrokerInfo:
        listeners = getattr(self.broker, "advertised", None)
        if listeners:
            first = listeners[0]
            return BrokerInfo(self.node_id, first.host, first.port, None)
        return self.metadata.broker

    # ------------------------------------------------------------ topic config

    def topic_config_strings(self, topic: TopicInfo) -> dict[str, str]:
        return {d.name: d.value for d in describe_topic_config(self.config, topic.configs) if d.value is not None}

    def log_config(self, topic: TopicInfo) -> LogConfig:
        return LogConfig.from_topic_configs(self.topic_config_strings(topic))

    # ---------------------------------------------------------------- topics

    @property
    def clustered(self) -> bool:
        return self.cluster is not None

    def live_brokers(self) -> list[BrokerInfo]:
        """Brokers to list in Metadata/DescribeCluster."""
        return self.metadata.brokers() if self.cluster is not None else [self.advertised]

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        assignment: dict[int, list[int]] | None = None,
    ) -> TopicInfo:
        if self.cluster is not None:
            # Logs of local replicas are created by the metadata listener before this returns.
            return await self.metadata.create_topic(name, partitions, replication_factor, configs, assignment)  # type: ignore[no-any-return]
        return self.create_topic_now(name, partitions, replication_factor, configs)

    def create_topic_now(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str] | None = None
    ) -> TopicInfo:
        """Single broker only: create the topic and its logs synchronously."""
        info = self.metadata.create_topic(name, partitions, replication_factor, configs)
        cfg = self.log_config(info)
        for p in info.partitions:
            self.logs.create(name, p.index, cfg, topic_id=info.topic_id)
        return info

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        self.metadata.check_new_topic(name, partitions, replication_factor)

    async def delete_topic(self, name: str) -> TopicInfo:
        if self.cluster is not None:
            return await self.metadata.delete_topic(name)  # type: ignore[no-any-return]
        info = self.metadata.delete_topic(name)
        for p in info.partitions:
            self.logs.delete(name, p.index)
        return info

    async def add_partitions(self, name: str, total: int, assignment: list[list[int]] | None = None) -> TopicInfo:
        if self.cluster is not None:
            return await self.metadata.add_partitions(name, total, assignment)  # type: ignore[no-any-return]
        info = self.metadata.add_partitions(name, total)
        cfg = self.log_config(info)
        for p in info.partitions:
            if self.logs.get(name, p.index) is None:
                self.logs.create(name, p.index, cfg, topic_id=info.topic_id)
        return info

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        if self.cluster is not None:
            await self.metadata.set_topic_configs(name, configs)
            return  # the listener updates the local logs' configs
        self.metadata.set_topic_configs(name, configs)
        info = self.metadata.topic(name)
        assert info is not None
        self.logs.update_config(name, self.log_config(info))

    async def maybe_auto_create(self, name: str) -> TopicInfo | None:
        if not self.config.auto_create_topics_enable:
            return None
        rf = self.config.default_replication_factor if self.cluster is not None else 1
        return await self.create_topic(name, self.config.num_partitions, rf)

    def partition_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get(topic, partition)

    def leader_epoch(self, topic: str, partition: int) -> int:
        info = self.metadata.topic(topic)
        if info is None or partition >= len(info.partitions):
            return -1
        return info.partitions[partition].leader_epoch

    @staticmethod
    def last_stable_offset(plog: PartitionLog) -> int:
        # min(first offset of the open transactions, high watermark): storage/log.py
        return plog.last_stable_offset

    def open_logs(self) -> None:
        """Make sure every partition in the metadata has a log (after a crash mid-create)."""
        me = self.node_id
        for info in self.metadata.topics():
            cfg = self.log_config(info)
            for p in info.partitions:
                if self.cluster is not None and me not in p.replicas and me not in p.adding_replicas:
                    continue
                plog = self.logs.get(info.name, p.index)
                if plog is None:
                    self.logs.create(info.name, p.index, cfg, topic_id=info.topic_id)

    def topics(self) -> Iterable[TopicInfo]:
        return self.metadata.topics()
