"""The broker's services, built once at start-up and handed to every handler.

- `config`: the broker's typed configuration.
- `metadata`: the metadata store (`kafkapy.cluster.view.MetadataStore`):
  the embedded JSON store of a single broker or the etcd store of a cluster.
- `logs`: the partition logs on this broker's disk (`LogManager`).
- `replicas`: the replica manager, the one place that answers "am I the
  leader at this epoch" (`replicas.partition(topic, index, epoch)` gives a
  `Partition` or a Kafka error code). A single broker is a cluster of one:
  every partition has replication factor 1 and this broker leads it.
- `groups`, `txns`, `producer_ids`: the coordinators, created on first use.
- `fetch_sessions`: the KIP-227 fetch session cache.

Every metadata change reaches `on_metadata` in the store's order: it creates
and deletes local logs, moves replica roles and loads or unloads coordinator
partitions, the same way on one broker as in a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kafkapy.clock import now_ms
from kafkapy.cluster.metadata import BrokerInfo, Changes, PartitionInfo, TopicInfo
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig, describe_topic_config
from kafkapy.coordinator import OFFSETS_TOPIC, TXN_TOPIC
from kafkapy.logging import get_logger
from kafkapy.server.fetch_sessions import FetchSessionCache
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log_manager import LogManager

if TYPE_CHECKING:
    from kafkapy.cluster.acl_store import AclStore
    from kafkapy.cluster.scram_store import ScramStore
    from kafkapy.cluster.token_store import TokenStore
    from kafkapy.coordinator.consumer_coordinator import ConsumerGroupCoordinator
    from kafkapy.coordinator.coordinator import GroupCoordinator
    from kafkapy.coordinator.producer_ids import ProducerIdManager
    from kafkapy.coordinator.transactions import TransactionCoordinator
    from kafkapy.security.acl import Authorizer
    from kafkapy.security.delegation_token import TokenCredentials
    from kafkapy.security.scram import ScramCredential
    from kafkapy.server.sasl_setup import SaslSetup
    from kafkapy.server.stats import BrokerStats

log = get_logger(__name__)


@dataclass(slots=True)
class BrokerServices:
    config: BrokerConfig
    metadata: MetadataStore
    logs: LogManager
    replicas: ReplicaManager
    data_dir: Path
    advertised: BrokerInfo  # this broker as clients reach it (the first advertised listener)
    fetch_sessions: FetchSessionCache
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # set on a clustered broker: kicked on broker and reassignment changes
    controller_kick: Callable[[], None] | None = None
    _groups: GroupCoordinator | None = None
    _consumer_groups: ConsumerGroupCoordinator | None = None
    _txns: TransactionCoordinator | None = None
    _producer_ids: ProducerIdManager | None = None
    _led: dict[tuple[str, int], int] = field(default_factory=dict)  # coordinator partitions led -> leader epoch
    # ACLs in force when authorizer.class.name is set (None: no authorizer, every check is skipped)
    authorizer: Authorizer | None = None
    acl_store: AclStore | None = None
    sasl: SaslSetup | None = None  # the SASL listeners' mechanisms (set by the dispatcher)
    scram: ScramStore | None = None  # SCRAM credentials (salted), opened by start()
    # delegation tokens, opened by start() when delegation.token.secret.key is set (None: tokens disabled)
    tokens: TokenStore | None = None
    token_credentials: TokenCredentials | None = None
    stats: BrokerStats | None = None  # request and topic counters (None: metrics endpoint off)

    @classmethod
    def build(
        cls,
        config: BrokerConfig,
        metadata: MetadataStore,
        data_dir: Path,
        advertised: BrokerInfo,
        *,
        auto_high_watermark: bool,
    ) -> BrokerServices:
        """The services over `metadata`, with the data dir's logs loaded; call `start` next.

        `auto_high_watermark`: a single broker is the whole ISR of its partitions, so its logs move
        the high watermark with the log end themselves."""
        from concurrent.futures import ThreadPoolExecutor

        holder: list[BrokerServices] = []

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
        services = cls(
            config=config,
            metadata=metadata,
            logs=logs,
            replicas=ReplicaManager(config, metadata, logs),
            data_dir=data_dir,
            advertised=advertised,
            fetch_sessions=FetchSessionCache(
                max_sessions=int(config.get("max.incremental.fetch.session.cache.slots") or 1000)
            ),
        )
        holder.append(services)
        return services

    async def start(self, *, replicating: bool) -> None:
        """Open the logs the metadata names, apply every partition's role, follow metadata changes."""
        await self.open_acls()
        await self.open_scram()
        await self.open_tokens()
        self.open_logs()
        await self.replicas.start(replicating=replicating)
        for info in list(self.metadata.topics()):
            for p in info.partitions:
                self.replicas.apply(info.name, p)
        self.metadata.listener = self.on_metadata
        self.tasks.append(asyncio.get_running_loop().create_task(self._housekeeping()))
        if self.metadata.topic(TXN_TOPIC) is not None:
            self.txns  # noqa: B018  finish transactions a crash left half-completed

    async def close(self) -> None:
        if self.acl_store is not None:
            await self.acl_store.close()
        if self.scram is not None:
            await self.scram.close()
        if self.tokens is not None:
            await self.tokens.close()
        for coord in (self._groups, self._txns, self._producer_ids):
            if coord is not None:
                coord.close()
        for t in self.tasks:
            t.cancel()
        await self.replicas.close()
        self.logs.close()
        log.info("logs closed", data_dir=str(self.data_dir))

    async def _housekeeping(self) -> None:
        interval = min(self.config.log_retention_check_interval_ms, 1000) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.logs.tick(now_ms())
            except Exception:
                log.exception("housekeeping failed")

    async def open_acls(self) -> None:
        """With authorizer.class.name set: the authorizer, kept current from the metadata store's ACLs."""
        if not self.config.authorizer_class_name.strip():
            return
        from kafkapy.cluster.acl_store import EtcdAclStore, FileAclStore
        from kafkapy.cluster.etcd_metadata import EtcdMetadata
        from kafkapy.security.acl import Authorizer, parse_super_users

        authorizer = Authorizer(
            parse_super_users(self.config.super_users),
            allow_everyone_if_no_acl_found=self.config.allow_everyone_if_no_acl_found,
        )
        md = self.metadata
        if isinstance(md, EtcdMetadata):
            self.acl_store = await EtcdAclStore.open(md.client, md.prefix, authorizer)
        else:
            self.acl_store = FileAclStore(self.data_dir, authorizer)
        self.authorizer = authorizer

    async def open_scram(self) -> None:
        """The SCRAM credential store: a file in the data dir, or etcd keys in a cluster."""
        from kafkapy.cluster.etcd_metadata import EtcdMetadata
        from kafkapy.cluster.scram_store import EtcdScramStore, FileScramStore

        md = self.metadata
        if isinstance(md, EtcdMetadata):
            self.scram = await EtcdScramStore.open(md.client, md.prefix)
        else:
            self.scram = FileScramStore(self.data_dir)

    def scram_lookup(self, mechanism: str, user: str) -> ScramCredential | None:
        return self.scram.get(mechanism, user) if self.scram is not None else None

    @property
    def token_secret_key(self) -> str | None:
        """delegation.token.secret.key, else the deprecated delegation.token.master.key; None: tokens disabled."""
        key = self.config.delegation_token_secret_key or self.config.delegation_token_master_key
        return key or None

    async def open_tokens(self) -> None:
        """The delegation token store (a file in the data dir, or etcd keys in a cluster) and the sweep of
        expired tokens every delegation.token.expiry.check.interval.ms; nothing without a secret key."""
        secret = self.token_secret_key
        if secret is None:
            return
        from kafkapy.cluster.etcd_metadata import EtcdMetadata
        from kafkapy.cluster.token_store import EtcdTokenStore, FileTokenStore
        from kafkapy.security.delegation_token import TokenCredentials

        md = self.metadata
        store: TokenStore
        if isinstance(md, EtcdMetadata):
            store = await EtcdTokenStore.open(md.client, md.prefix)
        else:
            store = FileTokenStore(self.data_dir)
        self.tokens = store
        self.token_credentials = TokenCredentials(secret, store.get)
        self.tasks.append(asyncio.get_running_loop().create_task(self._sweep_tokens(store)))

    async def _sweep_tokens(self, store: TokenStore) -> None:
        interval = self.config.delegation_token_expiry_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = now_ms()
            expired = [t for t in store.tokens() if t.expired(now)]
            for t in expired:
                log.info("delegation token expired", token_id=t.token_id, owner=t.owner)
            try:
                await store.remove([t.token_id for t in expired])
            except Exception:
                log.exception("removing expired delegation tokens failed")

    def token_lookup(self, mechanism: str, token_id: str) -> tuple[ScramCredential, str, int] | None:
        creds = self.token_credentials
        return creds.lookup(mechanism, token_id) if creds is not None else None

    @property
    def node_id(self) -> int:
        return self.advertised.node_id

    # ------------------------------------------------------------ coordinators (created on first use)

    @property
    def groups(self) -> GroupCoordinator:
        if self._groups is None:
            from kafkapy.coordinator.coordinator import GroupCoordinator

            self._groups = GroupCoordinator.open(self.replicas, self.metadata, self.config)
        return self._groups

    @property
    def groups_if_open(self) -> GroupCoordinator | None:
        """The group coordinator if something already needed it (metrics must not create it)."""
        return self._groups

    @property
    def txns(self) -> TransactionCoordinator:
        if self._txns is None:
            from kafkapy.coordinator.transactions import TransactionCoordinator

            self._txns = TransactionCoordinator.open(
                self.replicas, self.metadata, self.config, self.producer_ids, groups=lambda: self._groups
            )
        return self._txns

    @property
    def consumer_groups(self) -> ConsumerGroupCoordinator:
        """The KIP-848 side of the group coordinator (its timer is one of `groups`' tasks)."""
        if self._consumer_groups is None:
            from kafkapy.coordinator.consumer_coordinator import ConsumerGroupCoordinator

            self._consumer_groups = ConsumerGroupCoordinator.open(self.groups)
        return self._consumer_groups

    @property
    def producer_ids(self) -> ProducerIdManager:
        if self._producer_ids is None:
            from kafkapy.coordinator.producer_ids import ProducerIdManager

            self._producer_ids = ProducerIdManager(self.metadata)
        return self._producer_ids

    # ------------------------------------------------------------ metadata changes

    def on_metadata(self, changes: Changes) -> None:
        """Apply one batch of metadata changes to the local logs, replicas and coordinators."""
        me = self.node_id
        logs = self.logs
        for info in changes.topics_deleted:
            if self.stats is not None:
                self.stats.forget_topic(info.name)
            for p in info.partitions:
                self.replicas.forget(info.name, p.index)
                if logs.get(info.name, p.index) is not None:
                    logs.delete(info.name, p.index)
        for info in changes.topics_reconfigured:
            if any(logs.get(info.name, p.index) is not None for p in info.partitions):
                logs.update_config(info.name, self.log_config(info))
        for topic, p in changes.partitions:
            tinfo = self.metadata.topic(topic)
            if tinfo is None:
                continue
            hosted = me in p.replicas or me in p.adding_replicas
            if hosted and logs.get(topic, p.index) is None:
                logs.create(topic, p.index, self.log_config(tinfo), topic_id=tinfo.topic_id)
            self.replicas.apply(topic, p)
            if topic in (OFFSETS_TOPIC, TXN_TOPIC):
                self._coordinator_leadership(topic, p)
            if not hosted and logs.get(topic, p.index) is not None:
                log.info("replica reassigned away; deleting its log", topic=topic, partition=p.index)
                logs.delete(topic, p.index)
        if self.controller_kick is not None:
            reassigning = any(p.adding_replicas or p.removing_replicas for _, p in changes.partitions)
            if changes.brokers_added or changes.brokers_removed or changes.controller_changed or reassigning:
                self.controller_kick()

    def _coordinator_leadership(self, topic: str, p: PartitionInfo) -> None:
        """Load a coordinator partition this broker starts leading; unload one it stops leading."""
        key = (topic, p.index)
        leads = p.leader == self.node_id
        before = self._led.get(key)
        coord = self._groups if topic == OFFSETS_TOPIC else self._txns
        if leads and before != p.leader_epoch:
            self._led[key] = p.leader_epoch
            if coord is not None:
                coord.load_partition(p.index)
        elif not leads and before is not None:
            del self._led[key]
            if coord is not None:
                coord.unload_partition(p.index)

    # ------------------------------------------------------------ topics

    def topic_config_strings(self, topic: TopicInfo) -> dict[str, str]:
        return {d.name: d.value for d in describe_topic_config(self.config, topic.configs) if d.value is not None}

    def log_config(self, topic: TopicInfo) -> LogConfig:
        return LogConfig.from_topic_configs(self.topic_config_strings(topic))

    def open_logs(self) -> None:
        """Make sure every partition hosted here has a log (after a crash mid-create); delete the logs
        of replicas reassigned away while the broker was stopped."""
        me = self.node_id
        for info in self.metadata.topics():
            cfg = self.log_config(info)
            for p in info.partitions:
                if me not in p.replicas and me not in p.adding_replicas:
                    continue
                if self.logs.get(info.name, p.index) is None:
                    self.logs.create(info.name, p.index, cfg, topic_id=info.topic_id)
        for topic, index in self.logs.partitions():
            tinfo = self.metadata.topic(topic)
            if tinfo is not None and index < len(tinfo.partitions):
                p = tinfo.partitions[index]
                if me not in p.replicas and me not in p.adding_replicas:
                    log.info("replica reassigned away while stopped; deleting its log", topic=topic, partition=index)
                    self.logs.delete(topic, index)

    async def maybe_auto_create(self, name: str) -> TopicInfo | None:
        if not self.config.auto_create_topics_enable:
            return None
        rf = self.metadata.internal_replication_factor(self.config.default_replication_factor, True)
        return await self.metadata.create_topic(name, self.config.num_partitions, rf)

    def live_brokers(self) -> list[BrokerInfo]:
        """Brokers to list in Metadata and DescribeCluster."""
        return self.metadata.brokers()


async def open_single(config: BrokerConfig, advertised: BrokerInfo, cluster_id: str | None) -> BrokerServices:
    """The services of a single broker: embedded metadata in the first data dir, every partition led here."""
    from kafkapy.cluster.metadata import EmbeddedMetadata

    data_dir = Path(config.data_dirs[0])
    metadata = EmbeddedMetadata(data_dir, advertised, cluster_id or None)
    services = BrokerServices.build(config, metadata, data_dir, advertised, auto_high_watermark=True)
    await services.start(replicating=False)
    return services
