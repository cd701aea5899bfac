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
- `remote_log`: with remote.log.storage.system.enable, the tiered storage task and its
  RemoteLogManager (`kafkapy.server.tiering`); None otherwise.

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
from kafkapy.cluster.features import FeatureStore, MemoryFeatureStore
from kafkapy.cluster.metadata import BrokerInfo, Changes, MetadataError, PartitionInfo, TopicInfo
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.cluster.view import MetadataStore
from kafkapy.config import BrokerConfig, describe_topic_config
from kafkapy.coordinator import OFFSETS_TOPIC, TXN_TOPIC
from kafkapy.logging import get_logger
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.server.fetch_sessions import FetchSessionCache
from kafkapy.server.new_logs import INLINE as INLINE_NEW_LOGS
from kafkapy.server.new_logs import NewLogs
from kafkapy.server.quotas import QuotaManager
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import LogDirError
from kafkapy.storage.log_manager import LogManager

if TYPE_CHECKING:
    from kafkapy.cluster.acl_store import AclStore
    from kafkapy.cluster.broker_channel import BrokerChannel
    from kafkapy.cluster.controller import Controller
    from kafkapy.cluster.quota_store import QuotaStore
    from kafkapy.cluster.scram_store import ScramStore
    from kafkapy.cluster.token_store import TokenStore
    from kafkapy.coordinator.consumer_coordinator import ConsumerGroupCoordinator
    from kafkapy.coordinator.coordinator import GroupCoordinator
    from kafkapy.coordinator.producer_ids import ProducerIdManager
    from kafkapy.coordinator.share_coordinator import ShareCoordinator
    from kafkapy.coordinator.share_state import ShareStateStore
    from kafkapy.coordinator.streams_coordinator import StreamsGroupCoordinator
    from kafkapy.coordinator.transactions import TransactionCoordinator
    from kafkapy.security.acl import Authorizer
    from kafkapy.security.delegation_token import TokenCredentials
    from kafkapy.security.scram import ScramCredential
    from kafkapy.server.client_telemetry import ClientTelemetry
    from kafkapy.server.sasl_setup import SaslSetup
    from kafkapy.server.stats import BrokerStats
    from kafkapy.server.tiering import RemoteLogTask

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
    controller: Controller | None = None  # a clustered broker's controller candidate (its election counts)
    _groups: GroupCoordinator | None = None
    _consumer_groups: ConsumerGroupCoordinator | None = None
    _share_groups: ShareCoordinator | None = None  # KIP-932 share groups, opened by the first share request
    _share_state: ShareStateStore | None = None  # KIP-932 share coordinator (RPCs 83-87)
    _share_channel: BrokerChannel | None = None  # to other brokers' share coordinators
    _streams_groups: StreamsGroupCoordinator | None = None
    _txns: TransactionCoordinator | None = None
    _producer_ids: ProducerIdManager | None = None
    _led: dict[tuple[str, int], int] = field(default_factory=dict)  # coordinator partitions led -> leader epoch
    # ACLs in force when authorizer.class.name is set (None: no authorizer, every check is skipped)
    authorizer: Authorizer | None = None
    acl_store: AclStore | None = None
    sasl: SaslSetup | None = None  # the SASL listeners' mechanisms (set by the dispatcher)
    scram: ScramStore | None = None  # SCRAM credentials (salted), opened by start()
    # client quotas: the store (opened by start()) and the sensors (`quotas.active`: any quota configured)
    quota_store: QuotaStore | None = None
    quotas: QuotaManager = field(default_factory=QuotaManager)
    # finalized feature levels (KIP-584): `features.level(name)`; the store is opened by start()
    features: FeatureStore = field(default_factory=MemoryFeatureStore)
    # delegation tokens, opened by start() when delegation.token.secret.key is set (None: tokens disabled)
    tokens: TokenStore | None = None
    token_credentials: TokenCredentials | None = None
    stats: BrokerStats | None = None  # request and topic counters (None: metrics endpoint off)
    remote_log: RemoteLogTask | None = None  # tiered storage (None: remote.log.storage.system.enable off)
    _client_telemetry: ClientTelemetry | None = None  # KIP-714 client instances, made by the first telemetry request
    _new_logs: NewLogs | None = None  # logs of many new partitions, made in worker threads
    # told when the data dir starts or stops taking writes (a clustered broker announces it)
    on_log_dir: Callable[[str], None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def build(
        cls,
        config: BrokerConfig,
        metadata: MetadataStore,
        data_dir: Path,
        advertised: BrokerInfo,
        *,
        auto_high_watermark: bool,
        data_dirs: list[Path] | None = None,
    ) -> BrokerServices:
        """The services over `metadata`, with the data dir's logs loaded; call `start` next.

        `auto_high_watermark`: a single broker is the whole ISR of its partitions, so its logs move
        the high watermark with the log end themselves."""
        from concurrent.futures import ThreadPoolExecutor

        holder: list[BrokerServices] = []

        def config_for_topic(name: str) -> LogConfig | None:
            info = metadata.topic(name)
            if info is None:
                return None
            # the logs are loaded before the services exist: a tiered log must load as tiered
            return holder[0].log_config(info) if holder else topic_log_config(config, info)

        logs = LogManager(
            data_dirs or [data_dir],  # log.dirs (JBOD); `data_dir` is the first
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
        for health in logs.healths.values():
            health.listener = services.log_dir_changed
        return services

    async def start(self, *, replicating: bool) -> None:
        """Open the logs the metadata names, apply every partition's role, follow metadata changes."""
        await self.open_acls()
        await self.open_scram()
        await self.open_quotas()
        await self.open_features()
        await self.open_tokens()
        self.open_logs()
        await self.replicas.start(replicating=replicating)
        for info in list(self.metadata.topics()):
            for p in info.partitions:
                self.replicas.apply(info.name, p)
        self.metadata.listener = self.on_metadata
        self._loop = asyncio.get_running_loop()
        self.tasks.append(self._loop.create_task(self._housekeeping()))
        self.tasks.append(self._loop.create_task(self._move_logs()))
        if self.config.remote_log_storage_system_enable:
            self.open_remote_log()
        else:
            tiered = [t.name for t in self.metadata.topics() if t.configs.get("remote.storage.enable") == "true"]
            if tiered:  # Kafka refuses to start; kafkapy serves their local data (docs/tiered-storage.md)
                log.error(
                    "You have to delete all topics with the property remote.storage.enable=true before disabling "
                    "tiered storage cluster-wide; their remote data cannot be read",
                    topics=tiered,
                )
        if self.metadata.topic(TXN_TOPIC) is not None:
            self.txns  # noqa: B018  finish transactions a crash left half-completed

    async def close(self) -> None:
        if self.acl_store is not None:
            await self.acl_store.close()
        if self.scram is not None:
            await self.scram.close()
        if self.quota_store is not None:
            await self.quota_store.close()
        if self.tokens is not None:
            await self.tokens.close()
        await self.features.close()
        if self._share_groups is not None:
            self._share_groups.close()
        if self._share_channel is not None:
            await self._share_channel.close()
        for coord in (self._groups, self._txns, self._producer_ids):
            if coord is not None:
                coord.close()
        for t in self.tasks:
            t.cancel()
        if self.remote_log is not None:
            await self.remote_log.close()
        if self._new_logs is not None:
            await self._new_logs.close()
        await self.replicas.close()
        self.logs.close()
        log.info("logs closed", data_dir=str(self.data_dir))

    async def _housekeeping(self) -> None:
        # every second, or as often as log.flush.scheduler.interval.ms asks (flush.ms is checked here)
        config = self.config
        ms = min(config.log_retention_check_interval_ms, 1000, config.log_flush_scheduler_interval_ms)
        interval = max(ms, 10) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.logs.tick(now_ms())
            except Exception:
                log.exception("housekeeping failed")

    async def _move_logs(self) -> None:
        """Copy partitions being moved to another log dir (AlterReplicaLogDirs) a chunk at a time between
        other work, and swap them in once caught up; idle, a look every 100 ms."""
        while True:
            try:
                busy = self.logs.copy_futures()
            except Exception:
                log.exception("log dir move failed")
                busy = False
            await asyncio.sleep(0 if busy else 0.1)

    def open_remote_log(self) -> None:
        """Tiered storage: the object store, the remote log metadata under the first log dir and the
        task copying and expiring the tiered partitions led here."""
        from kafkapy.server.tiering import RemoteLogTask

        self.remote_log = RemoteLogTask.open(
            self.config, self.replicas, self.metadata, self.data_dir, self.node_id, lambda: self.stats
        )
        self.remote_log.start()

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

    async def open_quotas(self) -> None:
        """The client quota store (a file in the data dir, or etcd keys in a cluster) feeding the sensors."""
        from kafkapy.cluster.etcd_metadata import EtcdMetadata
        from kafkapy.cluster.quota_store import EtcdQuotaStore, FileQuotaStore

        self.quotas = QuotaManager.from_config(self.config)
        md = self.metadata
        store: QuotaStore
        if isinstance(md, EtcdMetadata):
            store = await EtcdQuotaStore.open(md.client, md.prefix)
        else:
            store = FileQuotaStore(self.data_dir)
        store.listener = self.quotas.update
        self.quotas.update(store.quotas())
        self.quota_store = store

    async def open_features(self) -> None:
        """The finalized feature levels: a file in the data dir, or an etcd key in a cluster."""
        from kafkapy.cluster.etcd_metadata import EtcdMetadata
        from kafkapy.cluster.features import EtcdFeatureStore, FileFeatureStore

        md = self.metadata
        if isinstance(md, EtcdMetadata):
            self.features = await EtcdFeatureStore.open(md.client, md.prefix)
        else:
            self.features = FileFeatureStore(self.data_dir)

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
    def client_telemetry(self) -> ClientTelemetry:
        if self._client_telemetry is None:
            from kafkapy.server.client_telemetry import ClientTelemetry

            self._client_telemetry = ClientTelemetry(max_bytes=self.config.telemetry_max_bytes)
        return self._client_telemetry

    @property
    def client_telemetry_if_open(self) -> ClientTelemetry | None:
        """The client telemetry state if a client has asked for it (metrics must not create it)."""
        return self._client_telemetry

    @property
    def groups_if_open(self) -> GroupCoordinator | None:
        """The group coordinator if something already needed it (metrics must not create it)."""
        return self._groups

    @property
    def txns_if_open(self) -> TransactionCoordinator | None:
        """The transaction coordinator if something already needed it (metrics must not create it)."""
        return self._txns

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
    def streams_groups(self) -> StreamsGroupCoordinator:
        """The KIP-1071 side of the group coordinator (its timer is one of `groups`' tasks)."""
        if self._streams_groups is None:
            from kafkapy.coordinator.streams_coordinator import StreamsGroupCoordinator

            self._streams_groups = StreamsGroupCoordinator.open(self.groups)
        return self._streams_groups

    @property
    def share_groups(self) -> ShareCoordinator:
        """The share group coordinator (KIP-932), over `__share_group_state`."""
        if self._share_groups is None:
            from kafkapy.cluster.broker_channel import BrokerChannel
            from kafkapy.coordinator.share_coordinator import ShareCoordinator
            from kafkapy.coordinator.share_state import ShareStatePersister

            self._share_channel = BrokerChannel(self.replicas, "kafkapy-share-state")
            persister = ShareStatePersister(self.share_state, self._share_channel)
            self._share_groups = ShareCoordinator.open(self.replicas, self.metadata, self.config, persister)
        return self._share_groups

    @property
    def share_state(self) -> ShareStateStore:
        """The share coordinator (KIP-932 RPCs 83-87), over `__share_group_state`."""
        if self._share_state is None:
            from kafkapy.coordinator.share_state import ShareStateStore

            self._share_state = ShareStateStore.open(self.replicas, self.metadata, self.config)
        return self._share_state

    @property
    def share_groups_if_open(self) -> ShareCoordinator | None:
        return self._share_groups

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
            logs.delete_many((info.name, p.index) for p in info.partitions)  # one fsync of the data dir
        for info in changes.topics_reconfigured:
            if any(logs.get(info.name, p.index) is not None for p in info.partitions):
                logs.update_config(info.name, self.log_config(info))
        new_logs = self.new_logs
        # internal topics' logs are made inline: the coordinator request that created the topic is
        # answered once they are loaded, as before (__consumer_offsets, __transaction_state: 50 each)
        missing = [
            (topic, p)
            for topic, p in changes.partitions
            if (me in p.replicas or me in p.adding_replicas)
            and logs.get(topic, p.index) is None
            and (topic, p.index) not in new_logs.pending
            and (tinfo := self.metadata.topic(topic)) is not None
            and not tinfo.internal
        ]
        if len(missing) > INLINE_NEW_LOGS:  # thousands of fsyncs: off the event loop
            new_logs.start(missing)
        for topic, p in changes.partitions:
            tinfo = self.metadata.topic(topic)
            if tinfo is None or (topic, p.index) in new_logs.pending:
                continue  # a pending partition is served with its state then, once its log exists
            hosted = me in p.replicas or me in p.adding_replicas
            if hosted and logs.get(topic, p.index) is None and not self._create_log(tinfo, p.index):
                continue  # the data dir refuses writes: made (and served) once it takes them again
            self._serve_partition(topic, p)
            if not hosted and logs.get(topic, p.index) is not None:
                log.info("replica reassigned away; deleting its log", topic=topic, partition=p.index)
                logs.delete(topic, p.index)
        if self.controller_kick is not None:
            # a reassignment moving, or a partition left without a leader (one cancelled or replaced it)
            reassigning = any(p.adding_replicas or p.removing_replicas or p.leader < 0 for _, p in changes.partitions)
            if changes.brokers_added or changes.brokers_removed or changes.controller_changed or reassigning:
                self.controller_kick()

    def _create_log(self, info: TopicInfo, index: int) -> bool:
        """A hosted partition's new log; False when the data dir refuses the files (told to its health)."""
        try:
            self.logs.create(info.name, index, self.log_config(info), topic_id=info.topic_id)
        except OSError as exc:
            d = self.logs.healths[next(iter(self.logs.healths))]
            for health in self.logs.healths.values():
                if exc.filename and str(exc.filename).startswith(str(health.data_dir)):
                    d = health
            d.report(LogDirError.from_os(exc, exc.filename or d.data_dir))
            return False
        return True

    def log_dir_changed(self, state: str) -> None:
        """LogManager.health's listener (any thread): handled on the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._log_dir_changed, state)

    def _log_dir_changed(self, state: str) -> None:
        """The data dir's state changed: back online, the logs a full disk did not let us make are
        made and served; then `on_log_dir` (a clustered broker's announcement)."""
        if state == "online":
            me = self.node_id
            for info in list(self.metadata.topics()):
                for p in info.partitions:
                    hosted = me in p.replicas or me in p.adding_replicas
                    if (
                        hosted
                        and self.logs.get(info.name, p.index) is None
                        and (info.name, p.index) not in self.new_logs.pending
                    ):
                        if not self._create_log(info, p.index):
                            return
                        self._serve_partition(info.name, p)
        if self.on_log_dir is not None:
            # several log dirs: the broker is announced offline once none takes writes (one failed
            # dir refuses its own partitions' writes; their leaders are not moved, docs/reliability.md)
            states = [h.state for h in self.logs.healths.values()]
            self.on_log_dir(state if state != "online" and all(st != "online" for st in states) else "online")

    @property
    def new_logs(self) -> NewLogs:
        if self._new_logs is None:
            self._new_logs = NewLogs(
                self.logs, self.metadata, self.node_id, self._topic_log_config, self._serve_partition
            )
        return self._new_logs

    def _topic_log_config(self, topic: str) -> LogConfig:
        info = self.metadata.topic(topic)
        return self.log_config(info) if info is not None else self.logs.config_for(topic)

    def _serve_partition(self, topic: str, p: PartitionInfo) -> None:
        """A partition's new state, its log present if hosted: replica role, coordinator loading."""
        self.replicas.apply(topic, p)
        if topic in (OFFSETS_TOPIC, TXN_TOPIC):
            self._coordinator_leadership(topic, p)

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
        return topic_log_config(self.config, topic)

    def open_logs(self) -> None:
        """Make sure every partition hosted here has a log (after a crash mid-create); delete the logs
        of replicas reassigned away while the broker was stopped."""
        me = self.node_id
        for info in self.metadata.topics():
            for p in info.partitions:
                if me not in p.replicas and me not in p.adding_replicas:
                    continue
                if self.logs.get(info.name, p.index) is None:
                    self._create_log(info, p.index)
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
        if name == "__share_group_state":  # as Kafka: made with its own partitions and configs, not the defaults
            return self.share_state.metadata.topic(name)
        if name in (OFFSETS_TOPIC, TXN_TOPIC):
            # their coordinators make them with their own partitions, replication and compaction (once
            # enough brokers are live); a client's Metadata must not make them with the defaults first
            info = self.metadata.topic(name)
            if info is None:
                raise MetadataError(ErrorCode.LEADER_NOT_AVAILABLE, f"{name} is not created yet")
            return info
        rf = self.metadata.internal_replication_factor(self.config.default_replication_factor, True)
        return await self.metadata.create_topic(name, self.config.num_partitions, rf)

    def live_brokers(self) -> list[BrokerInfo]:
        """Brokers to list in Metadata and DescribeCluster."""
        return self.metadata.brokers()


def topic_log_config(config: BrokerConfig, topic: TopicInfo) -> LogConfig:
    """A topic's log settings: its overrides over the broker's defaults."""
    described = describe_topic_config(config, topic.configs)
    return LogConfig.from_topic_configs({d.name: d.value for d in described if d.value is not None})


async def open_single(config: BrokerConfig, advertised: BrokerInfo, cluster_id: str | None) -> BrokerServices:
    """The services of a single broker: embedded metadata in the first data dir, every partition led here."""
    from kafkapy.cluster.metadata import EmbeddedMetadata

    data_dir = Path(config.data_dirs[0])
    metadata = EmbeddedMetadata(data_dir, advertised, cluster_id or None)
    dirs = [Path(d) for d in config.data_dirs]
    services = BrokerServices.build(config, metadata, data_dir, advertised, auto_high_watermark=True, data_dirs=dirs)
    await services.start(replicating=False)
    return services
