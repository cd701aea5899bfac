"""Cluster metadata kept in etcd (docs/cluster.md has the key layout).

Every broker holds the whole image in memory: it reads the cluster's prefix
once, then applies etcd's watch events in revision order, and tells its
listener what changed after each batch. Reads never touch etcd.

Every write is one etcd transaction guarded by a comparison, so a write based
on a stale image fails instead of overwriting a newer decision:
  - creating a topic: the topic key must be absent;
  - a partition's state (leader, ISR, epochs): its key's mod revision must be
    the one the writer read;
  - the controller key: absent to win it; it carries the winner's lease.
Writers then wait until their own watch has applied the revision they wrote,
so a handler that created a topic sees it at once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kafkapy.cluster.etcd import (
    Compare,
    EtcdClient,
    EtcdError,
    KeyValue,
    Lease,
    Op,
    WatchEvent,
)
from kafkapy.cluster.metadata import (
    BrokerInfo,
    Changes,
    Endpoint,
    MetadataError,
    MetadataListener,
    Outcome,
    PartitionInfo,
    TopicInfo,
    check_new_topic,
)
from kafkapy.logging import get_logger
from kafkapy.protocol.uuids import random_cluster_id, random_uuid

log = get_logger(__name__)

ROOT = "/kafkapy"
PRODUCER_ID_BLOCK = 1000


def partition_to_json(p: PartitionInfo) -> bytes:
    return json.dumps(
        {
            "replicas": p.replicas,
            "leader": p.leader,
            "leader_epoch": p.leader_epoch,
            "isr": p.isr,
            "partition_epoch": p.partition_epoch,
            "adding": p.adding_replicas,
            "removing": p.removing_replicas,
        },
        separators=(",", ":"),
    ).encode()


def partition_from_json(index: int, data: bytes) -> PartitionInfo:
    d = json.loads(data)
    return PartitionInfo(
        index=index,
        leader=int(d["leader"]),
        replicas=[int(r) for r in d["replicas"]],
        isr=[int(r) for r in d["isr"]],
        leader_epoch=int(d.get("leader_epoch", 0)),
        partition_epoch=int(d.get("partition_epoch", 0)),
        adding_replicas=[int(r) for r in d.get("adding", [])],
        removing_replicas=[int(r) for r in d.get("removing", [])],
    )


class EtcdMetadata:
    """Metadata of a multi-broker cluster, kept in etcd (implements ClusterView)."""

    def __init__(
        self, client: EtcdClient, cluster_id: str, broker: BrokerInfo, *, session_timeout_ms: int = 9000
    ) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.broker = broker
        self.session_timeout_ms = session_timeout_ms
        self.prefix = f"{ROOT}/{cluster_id}/"
        self.revision = 0
        self.lease: Lease | None = None
        self.listener: MetadataListener | None = None
        self.on_session_lost: Callable[[], None] | None = None
        self.on_session_restored: Callable[[], None] | None = None  # after a resumed lease or a re-registration
        self._brokers: dict[int, BrokerInfo] = {}
        self.shutting_down: set[int] = set()  # live brokers in a controlled shutdown
        self._topic_raw: dict[str, dict] = {}  # type: ignore[type-arg]
        self._parts: dict[str, dict[int, PartitionInfo]] = {}
        self._part_rev: dict[tuple[str, int], int] = {}
        self._topics: dict[str, TopicInfo] = {}
        self._by_id: dict[uuid.UUID, TopicInfo] = {}
        self._controller: int = -1
        self._controller_rev: int = 0
        self._broker_configs: dict[str, tuple[dict[str, str], int]] = {}  # "default" or id -> (configs, mod revision)
        self.controller_epoch: int = 0
        self._revision_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._reregister_task: asyncio.Task[None] | None = None
        self._closed = False
        self._creating: dict[str, asyncio.Task[None]] = {}  # internal topics being created

    # ------------------------------------------------------------ keys

    def _key(self, *parts: object) -> bytes:
        return (self.prefix + "/".join(str(p) for p in parts)).encode()

    def _rel(self, key: bytes) -> list[str]:
        return key.decode()[len(self.prefix) :].split("/")

    # ------------------------------------------------------------ start-up

    @classmethod
    async def open(
        cls,
        url: str,
        broker: BrokerInfo,
        *,
        cluster_id: str | None,
        data_dir: Path,
        session_timeout_ms: int = 9000,
        timeout: float = 10.0,
    ) -> EtcdMetadata:
        """Connect, agree on the cluster id, load the image, register this broker."""
        client = await EtcdClient.connect(url, timeout=timeout)
        if not cluster_id:
            cluster_id = await cls._shared_cluster_id(client)
        _check_meta_properties(data_dir, cluster_id, broker.node_id)
        md = cls(client, cluster_id, broker, session_timeout_ms=session_timeout_ms)
        await md._load()
        md._watch_task = asyncio.get_running_loop().create_task(md._watch())
        await md.register()
        return md

    @staticmethod
    async def _shared_cluster_id(client: EtcdClient) -> str:
        key = f"{ROOT}/default-cluster-id".encode()
        candidate = random_cluster_id()
        res = await client.txn([Compare.create_revision(key, "=", 0)], [Op.put(key, candidate.encode())], [Op.get(key)])
        if res.succeeded:
            return candidate
        return res.responses[0][0].value.decode()

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        changes = Changes(revision)
        for kv in kvs:
            self._apply_put(kv, changes)
        self._rebuild(set(self._topic_raw) | set(self._parts), changes)
        self.revision = revision
        log.info(
            "cluster metadata loaded",
            cluster_id=self.cluster_id,
            revision=revision,
            brokers=sorted(self._brokers),
            topics=len(self._topics),
            controller=self._controller,
        )

    async def register(self) -> None:
        """Register under a lease; waits for a previous incarnation's lease to lapse."""
        ttl = max(2, (self.session_timeout_ms + 999) // 1000)
        key = self._key("brokers", self.broker.node_id)
        value = self._registration()
        self.lease = await Lease.grant(self.client, ttl, on_lost=self._lease_lost)
        deadline = asyncio.get_running_loop().time() + 3 * ttl
        try:
            while True:
                res = await self.client.txn(
                    [Compare.create_revision(key, "=", 0)], [Op.put(key, value, lease=self.lease.id)], [Op.get(key)]
                )
                if res.succeeded:
                    await self.wait_revision(res.revision)
                    log.info("broker registered", broker_id=self.broker.node_id, lease_ttl_s=ttl)
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise MetadataError(
                        -1,
                        f"broker id {self.broker.node_id} is registered by another live broker (etcd key {key.decode()})",
                    )
                log.info(
                    "broker id still registered by a previous process; waiting for its lease",
                    broker_id=self.broker.node_id,
                )
                await asyncio.sleep(1.0)
        except BaseException:
            await self._drop_lease()  # no keepalives for a lease nothing uses
            raise

    async def _drop_lease(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await lease.revoke()
            except (EtcdError, OSError):
                pass

    def _registration(self, *, shutting_down: bool = False) -> bytes:
        d: dict[str, Any] = {"host": self.broker.host, "port": self.broker.port, "rack": self.broker.rack}
        if self.broker.endpoints:
            # host/port stay the inter-broker endpoint, which is all an older kafkapy reads
            d["endpoints"] = [
                {"listener": name, "host": e.host, "port": e.port, "security_protocol": e.security_protocol}
                for name, e in self.broker.endpoints.items()
            ]
        if shutting_down:
            d["shutting_down"] = True
        return json.dumps(d, separators=(",", ":")).encode()

    async def announce_shutdown(self) -> None:
        """Controlled shutdown: the controller moves our leaderships away."""
        if self.lease is None:
            return
        key = self._key("brokers", self.broker.node_id)
        res = await self.client.txn(
            [Compare.lease(key, "=", self.lease.id)],
            [Op.put(key, self._registration(shutting_down=True), lease=self.lease.id)],
        )
        if res.succeeded:
            await self.wait_revision(res.revision)

    @property
    def registered(self) -> bool:
        """True while our registration lease is alive; without it we neither act as controller nor change ISRs."""
        return self.lease is not None and self.lease.alive and not self._closed

    def _lease_lost(self) -> None:
        log.error("etcd session lost: this broker is no longer registered", broker_id=self.broker.node_id)
        if self.on_session_lost is not None:
            self.on_session_lost()
        if not self._closed and (self._reregister_task is None or self._reregister_task.done()):
            self._reregister_task = asyncio.get_running_loop().create_task(self._reregister())

    async def _reregister(self) -> None:
        """Get a live lease back: keep the old one if etcd still has it (e.g. etcd restarted), else register anew."""
        old = self.lease
        while not self._closed:
            try:
                if old is not None and await self.client.lease_keepalive_once(old.id, timeout=2.0) > 0:
                    self.lease = _resume_lease(old, self._lease_lost)
                    log.info("etcd session resumed with the same lease", broker_id=self.broker.node_id, lease=old.id)
                else:
                    old = None
                    await self.register()
                    log.info("broker re-registered after losing its etcd session", broker_id=self.broker.node_id)
                if self.on_session_restored is not None:
                    self.on_session_restored()
                return
            except asyncio.CancelledError:
                raise
            except (EtcdError, MetadataError, OSError, TimeoutError) as e:
                log.warning("re-registration failed; retrying", broker_id=self.broker.node_id, error=str(e))
                await asyncio.sleep(1.0)

    async def close(self, *, deregister: bool = True) -> None:
        self._closed = True
        for task in (self._watch_task, self._reregister_task, *self._creating.values()):
            if task is not None:
                task.cancel()
        if deregister and self.lease is not None:
            try:
                await asyncio.wait_for(self.lease.revoke(), 3.0)
            except (EtcdError, TimeoutError, OSError):
                pass
        await self.client.close()

    # ------------------------------------------------------------ watch

    async def _watch(self) -> None:
        while not self._closed:
            try:
                async for events in self.client.watch_prefix(self.prefix.encode(), self.revision + 1):
                    self._apply_events(events)
            except asyncio.CancelledError:
                raise
            except EtcdError as e:
                log.warning("metadata watch failed; reloading", error=str(e))
                await asyncio.sleep(0.5)
                try:
                    await self._reload()
                except EtcdError as e2:
                    log.warning("metadata reload failed", error=str(e2))
                    await asyncio.sleep(1.0)

    async def _reload(self) -> None:
        """After a failed watch: a fresh snapshot, reported as a diff."""
        # Read first: with etcd down the image must stay as it was, not become empty.
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        old_topics = dict(self._topics)
        old_brokers = dict(self._brokers)
        self._brokers, self._topic_raw, self._parts, self._part_rev = {}, {}, {}, {}
        self.shutting_down = set()
        self._topics, self._by_id = {}, {}
        self._broker_configs = {}
        self._controller = -1  # unless the snapshot has the key
        changes = Changes(revision)
        for kv in kvs:
            self._apply_put(kv, Changes(revision))
        self._rebuild(set(self._topic_raw) | set(self._parts), Changes(revision))
        for name, t in self._topics.items():
            if name not in old_topics:
                changes.topics_created.append(t)
            changes.partitions.extend((name, p) for p in t.partitions)
        changes.topics_deleted.extend(t for n, t in old_topics.items() if n not in self._topics)
        changes.brokers_added.extend(b for i, b in self._brokers.items() if i not in old_brokers)
        changes.brokers_removed.extend(b for i, b in old_brokers.items() if i not in self._brokers)
        changes.controller_changed = True
        self.revision = revision
        self._notify(changes)

    def _apply_events(self, events: list[WatchEvent]) -> None:
        if not events:
            return
        revision = max(e.kv.mod_revision for e in events)
        changes = Changes(revision)
        touched: set[str] = set()
        for ev in events:
            rel = self._rel(ev.kv.key)
            name = self._apply_put(ev.kv, changes) if ev.type == "PUT" else self._apply_delete(rel, changes)
            if name is not None:
                touched.add(name)
        self._rebuild(touched, changes)
        self.revision = max(self.revision, revision)
        self._notify(changes)

    def _notify(self, changes: Changes) -> None:
        if self.listener is not None:
            try:
                self.listener(changes)
            except Exception:
                log.exception("metadata listener failed", revision=changes.revision)
        still = []
        for rev, fut in self._revision_waiters:
            if rev <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((rev, fut))
        self._revision_waiters = still

    def _apply_put(self, kv: KeyValue, changes: Changes) -> str | None:
        rel = self._rel(kv.key)
        kind = rel[0]
        if kind == "brokers" and len(rel) == 2:
            d = json.loads(kv.value)
            b = _broker_from_registration(int(rel[1]), d)
            stopping = bool(d.get("shutting_down"))
            if self._brokers.get(b.node_id) != b or stopping != (b.node_id in self.shutting_down):
                changes.brokers_added.append(b)
            self._brokers[b.node_id] = b
            (self.shutting_down.add if stopping else self.shutting_down.discard)(b.node_id)
        elif kind == "controller" and len(rel) == 1:
            d = json.loads(kv.value)
            self._controller = int(d["broker_id"])
            self.controller_epoch = int(d.get("epoch", 0))
            self._controller_rev = kv.mod_revision
            changes.controller_changed = True
        elif kind == "topics" and len(rel) == 2:
            self._topic_raw[rel[1]] = json.loads(kv.value)
            return rel[1]
        elif kind == "config" and len(rel) == 3 and rel[1] == "brokers":
            self._broker_configs[rel[2]] = ({str(k): str(v) for k, v in json.loads(kv.value).items()}, kv.mod_revision)
        elif kind == "partitions" and len(rel) == 3:
            name, index = rel[1], int(rel[2])
            self._parts.setdefault(name, {})[index] = partition_from_json(index, kv.value)
            self._part_rev[(name, index)] = kv.mod_revision
            return name
        return None

    def _apply_delete(self, rel: list[str], changes: Changes) -> str | None:
        kind = rel[0]
        if kind == "brokers" and len(rel) == 2:
            b = self._brokers.pop(int(rel[1]), None)
            self.shutting_down.discard(int(rel[1]))
            if b is not None:
                changes.brokers_removed.append(b)
        elif kind == "controller" and len(rel) == 1:
            self._controller = -1
            changes.controller_changed = True
        elif kind == "config" and len(rel) == 3 and rel[1] == "brokers":
            self._broker_configs.pop(rel[2], None)
        elif kind == "topics" and len(rel) == 2:
            self._topic_raw.pop(rel[1], None)
            return rel[1]
        elif kind == "partitions" and len(rel) == 3:
            parts = self._parts.get(rel[1])
            if parts is not None:
                parts.pop(int(rel[2]), None)
                if not parts:
                    del self._parts[rel[1]]
            self._part_rev.pop((rel[1], int(rel[2])), None)
            return rel[1]
        return None

    def _rebuild(self, names: Iterable[str], changes: Changes) -> None:
        """Recompute TopicInfo for touched topics; a topic exists once its key and all its partitions do."""
        for name in names:
            raw = self._topic_raw.get(name)
            parts = self._parts.get(name, {})
            old = self._topics.get(name)
            complete = raw is not None and all(i in parts for i in range(int(raw["partitions"])))
            if not complete:
                if old is not None and raw is None:
                    del self._topics[name]
                    self._by_id.pop(old.topic_id, None)
                    changes.topics_deleted.append(old)
                continue
            assert raw is not None
            count = int(raw["partitions"])
            info = TopicInfo(
                name=name,
                topic_id=uuid.UUID(raw["topic_id"]),
                partitions=[parts[i] for i in range(count)],
                configs=dict(raw.get("configs", {})),
            )
            self._topics[name] = info
            self._by_id[info.topic_id] = info
            if old is None or old.topic_id != info.topic_id:
                if old is not None:
                    self._by_id.pop(old.topic_id, None)
                    changes.topics_deleted.append(old)
                changes.topics_created.append(info)
                changes.partitions.extend((name, p) for p in info.partitions)
                continue
            if old.configs != info.configs:
                changes.topics_reconfigured.append(info)
            for p in info.partitions:
                prev = old.partitions[p.index] if p.index < len(old.partitions) else None
                if prev != p:
                    changes.partitions.append((name, p))

    async def wait_revision(self, revision: int, timeout: float = 10.0) -> None:
        if self.revision >= revision:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._revision_waiters.append((revision, fut))
        await asyncio.wait_for(fut, timeout)

    # ------------------------------------------------------------ reads (ClusterView)

    @property
    def controller_id(self) -> int:
        return self._controller

    def brokers(self) -> list[BrokerInfo]:
        return [self._brokers[i] for i in sorted(self._brokers)]

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return self._brokers.get(node_id)

    def live_ids(self) -> set[int]:
        return set(self._brokers)

    def topics(self) -> Iterable[TopicInfo]:
        return self._topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._by_id.get(topic_id)

    def partition_revision(self, topic: str, index: int) -> int:
        return self._part_rev.get((topic, index), 0)

    # ------------------------------------------------------------ topic changes

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        check_new_topic(
            name, partitions, replication_factor, self._topics.keys() | self._topic_raw.keys(), len(self._brokers)
        )

    def _assign(
        self, count: int, rf: int, *, start: int = 0, existing: dict[int, list[int]] | None = None
    ) -> dict[int, list[int]]:
        from kafkapy.cluster.assignment import AssignmentError, assign_replicas

        try:
            return assign_replicas(count, rf, self.brokers(), start_partition=start, existing=existing)
        except AssignmentError as e:
            raise MetadataError(e.code, e.message) from None

    def _initial_state(self, index: int, replicas: list[int]) -> PartitionInfo:
        live = [r for r in replicas if r in self._brokers]
        return PartitionInfo(index, live[0] if live else -1, list(replicas), live or list(replicas[:1]), 0, 0)

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        assignment: dict[int, list[int]] | None = None,
    ) -> TopicInfo:
        if assignment is None:
            self.check_new_topic(name, partitions, replication_factor)
            assignment = self._assign(partitions, replication_factor)
        else:
            self.check_new_topic(name, len(assignment), max(len(r) for r in assignment.values()))
        topic_id = random_uuid()
        topic_key = self._key("topics", name)
        ops = [
            Op.put(
                topic_key,
                json.dumps(
                    {"topic_id": str(topic_id), "partitions": len(assignment), "configs": configs or {}}
                ).encode(),
            )
        ]
        for i in sorted(assignment):
            ops.append(
                Op.put(self._key("partitions", name, i), partition_to_json(self._initial_state(i, assignment[i])))
            )
        res = await self.client.txn([Compare.create_revision(topic_key, "=", 0)], ops)
        if not res.succeeded:
            raise MetadataError(36, f"Topic '{name}' already exists.")
        await self.wait_revision(res.revision)
        info = self._topics.get(name)
        if info is None:  # deleted again meanwhile
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        log.info("topic created", topic=name, partitions=len(assignment), topic_id=str(topic_id))
        return info

    async def delete_topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        topic_key = self._key("topics", name)
        res = await self.client.txn(
            [Compare.create_revision(topic_key, "!=", 0)],
            [Op.delete(topic_key), Op.delete(self._key("partitions", name) + b"/", prefix=True)],
        )
        if not res.succeeded:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        await self.wait_revision(res.revision)
        log.info("topic deleted", topic=name)
        return info

    async def add_partitions(self, name: str, total: int, assignment: list[list[int]] | None = None) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        current = len(info.partitions)
        if total < current:
            raise MetadataError(
                37, f"Topic currently has {current} partitions, which is higher than the requested {total}."
            )
        if total == current:
            raise MetadataError(37, f"Topic already has {current} partitions.")
        rf = len(info.partitions[0].replicas)
        if assignment is not None:
            new = {current + i: list(r) for i, r in enumerate(assignment)}
        else:
            existing = {p.index: list(p.replicas) for p in info.partitions}
            new = self._assign(total - current, rf, start=current, existing=existing)
        topic_key = self._key("topics", name)
        raw = dict(self._topic_raw[name])
        raw["partitions"] = total
        ops = [Op.put(topic_key, json.dumps(raw).encode())]
        for i in sorted(new):
            ops.append(Op.put(self._key("partitions", name, i), partition_to_json(self._initial_state(i, new[i]))))
        res = await self.client.txn([Compare.value(topic_key, "=", json.dumps(self._topic_raw[name]).encode())], ops)
        if not res.succeeded:
            raise MetadataError(37, f"Topic '{name}' changed meanwhile; try again.")
        await self.wait_revision(res.revision)
        return self._topics[name]

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        if name not in self._topics:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        topic_key = self._key("topics", name)
        for _ in range(5):
            before = json.dumps(self._topic_raw[name]).encode()
            raw = dict(self._topic_raw[name])
            raw["configs"] = dict(configs)
            res = await self.client.txn(
                [Compare.value(topic_key, "=", before)], [Op.put(topic_key, json.dumps(raw).encode())]
            )
            if res.succeeded:
                await self.wait_revision(res.revision)
                return
            await asyncio.sleep(0.05)
        raise MetadataError(-1, f"topic '{name}' kept changing; configs not set")

    # ------------------------------------------------------------ internal topics

    def ensure_internal_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None:
        """Create an internal topic in the background once enough brokers are live (idempotent)."""
        if name in self._creating or self.topic(name) is not None:
            return

        async def create() -> None:
            try:
                while self.topic(name) is None:
                    if len(self.live_ids()) >= replication_factor:
                        try:
                            await self.create_topic(name, partitions, replication_factor, configs)
                        except MetadataError as e:
                            if e.code != 36:  # TOPIC_ALREADY_EXISTS: another broker won
                                log.warning("internal topic not created yet", topic=name, error=e.message)
                    else:
                        log.info(
                            "waiting for brokers before creating an internal topic",
                            topic=name,
                            replication_factor=replication_factor,
                            live=len(self.live_ids()),
                        )
                    if self.topic(name) is None:
                        await asyncio.sleep(1.0)
            finally:
                self._creating.pop(name, None)

        self._creating[name] = asyncio.get_running_loop().create_task(create())

    def internal_replication_factor(self, configured: int, explicit: bool) -> int:
        """Kafka's default (3) unless set explicitly, capped by the live brokers."""
        if explicit:
            return configured
        return min(3, max(1, len(self.live_ids())))

    # ------------------------------------------------------------ dynamic broker configs

    supports_dynamic_broker_configs = True  # the replication throttle rates

    async def elect_leader(self, topic: str, index: int, election_type: int) -> Outcome:
        from kafkapy.cluster.reassignment import elect

        return await elect(self, topic, index, election_type)

    async def alter_reassignment(self, topic: str, index: int, target: list[int] | None) -> Outcome:
        from kafkapy.cluster.reassignment import alter_reassignment

        return await alter_reassignment(self, topic, index, target)

    def broker_configs(self, entity: str) -> dict[str, str]:
        """Dynamic configs of broker `entity` (its id, or "default" for every broker)."""
        return dict(self._broker_configs.get(entity, ({}, 0))[0])

    async def set_broker_configs(self, entity: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace broker `entity`'s dynamic configs if they are still `expected` (CAS)."""
        key = self._key("config", "brokers", entity)
        known = self._broker_configs.get(entity)
        if (known[0] if known else {}) != expected:
            return False
        cmp = Compare.mod_revision(key, "=", known[1]) if known else Compare.create_revision(key, "=", 0)
        op = Op.put(key, json.dumps(configs, sort_keys=True).encode()) if configs else Op.delete(key)
        res = await self.client.txn([cmp], [op])
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    # ------------------------------------------------------------ partition state

    async def update_partition(self, topic: str, new: PartitionInfo, expected_revision: int) -> bool:
        """Compare-and-swap one partition's state (leader, ISR, epochs, replicas)."""
        key = self._key("partitions", topic, new.index)
        res = await self.client.txn(
            [Compare.mod_revision(key, "=", expected_revision)], [Op.put(key, partition_to_json(new))]
        )
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        info = self._topics.get(topic)
        if info is None or index >= len(info.partitions):
            return None
        cur = info.partitions[index]
        if cur.partition_epoch != partition_epoch or cur.leader != self.broker.node_id:
            return None
        if not self.registered:  # the controller may already have moved our leadership
            log.warning("isr change refused: not registered in etcd", topic=topic, partition=index)
            return None
        new = PartitionInfo(
            index,
            cur.leader,
            list(cur.replicas),
            list(isr),
            cur.leader_epoch,
            cur.partition_epoch + 1,
            list(cur.adding_replicas),
            list(cur.removing_replicas),
        )
        ok = await self.update_partition(topic, new, self.partition_revision(topic, index))
        if ok:
            log.info("isr changed", topic=topic, partition=index, isr=isr, partition_epoch=new.partition_epoch)
            return self._topics[topic].partitions[index] if topic in self._topics else new
        return None

    # ------------------------------------------------------------ controller election

    async def campaign(self) -> bool:
        """Try to become the controller (the key is tied to our lease)."""
        if not self.registered or self.lease is None or self._controller >= 0:
            return self.registered and self._controller == self.broker.node_id
        key = self._key("controller")
        epoch_key = self._key("controller_epoch")
        epoch_kv = await self.client.get(epoch_key)
        epoch = int(epoch_kv.value) + 1 if epoch_kv else 1
        cmp = [Compare.create_revision(key, "=", 0)]
        cmp.append(
            Compare.mod_revision(epoch_key, "=", epoch_kv.mod_revision)
            if epoch_kv
            else Compare.create_revision(epoch_key, "=", 0)
        )
        res = await self.client.txn(
            cmp,
            [
                Op.put(
                    key, json.dumps({"broker_id": self.broker.node_id, "epoch": epoch}).encode(), lease=self.lease.id
                ),
                Op.put(epoch_key, str(epoch).encode()),
            ],
        )
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    async def still_controller(self) -> list[Compare]:
        """Comparisons that make a write conditional on this broker still being the controller."""
        return [Compare.mod_revision(self._key("controller"), "=", self._controller_rev)]

    async def update_partitions_as_controller(self, updates: list[tuple[str, PartitionInfo, int]]) -> bool:
        """Several partition CASes in one transaction, valid only while we hold the controller key."""
        if not updates:
            return True
        cmp = await self.still_controller()
        ops = []
        for topic, new, rev in updates:
            key = self._key("partitions", topic, new.index)
            cmp.append(Compare.mod_revision(key, "=", rev))
            ops.append(Op.put(key, partition_to_json(new)))
        res = await self.client.txn(cmp, ops)
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    # ------------------------------------------------------------ producer ids

    async def reserve_producer_ids(self, count: int = PRODUCER_ID_BLOCK) -> int:
        """First id of a fresh block of `count` producer ids, unique cluster-wide."""
        key = self._key("producer_ids")
        while True:
            kv = await self.client.get(key)
            start = int(kv.value) if kv else 0
            cmp = Compare.mod_revision(key, "=", kv.mod_revision) if kv else Compare.create_revision(key, "=", 0)
            res = await self.client.txn([cmp], [Op.put(key, str(start + count).encode())])
            if res.succeeded:
                return start


def _resume_lease(old: Lease, on_lost: Callable[[], None]) -> Lease:
    """A Lease object for a lease etcd still holds, with keepalives running again."""
    lease = Lease(old.client, old.id, old.ttl, on_lost)
    lease._task = asyncio.get_running_loop().create_task(lease._keepalive(), name=f"etcd-lease-{old.id}")
    old.client._leases.add(lease._task)
    lease._task.add_done_callback(old.client._leases.discard)
    return lease


def _check_meta_properties(data_dir: Path, cluster_id: str, node_id: int) -> None:
    """The data dir remembers its cluster and broker id; refuse to mix them up."""
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = data_dir / "meta.properties"
    props: dict[str, str] = {}
    if meta.exists():
        for line in meta.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
    if props.get("cluster.id") and props["cluster.id"] != cluster_id:
        raise MetadataError(104, f"data dir {data_dir} belongs to cluster {props['cluster.id']}, not {cluster_id}")
    if props.get("node.id") and int(props["node.id"]) != node_id:
        raise MetadataError(-1, f"data dir {data_dir} belongs to broker {props['node.id']}, not {node_id}")
    if not props:
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(f"#kafkapy\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
        tmp.replace(meta)


def _broker_from_registration(node_id: int, d: dict[str, Any]) -> BrokerInfo:
    """A broker's registration value; one written without `endpoints` (an older kafkapy) has host/port only."""
    endpoints = {
        str(e["listener"]): Endpoint(str(e["host"]), int(e["port"]), str(e.get("security_protocol", "PLAINTEXT")))
        for e in d.get("endpoints") or ()
    }
    return BrokerInfo(node_id, str(d["host"]), int(d["port"]), d.get("rack"), endpoints)
