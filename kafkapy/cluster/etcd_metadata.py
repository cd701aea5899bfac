"""Cluster metadata kept in etcd (docs/cluster.md has the key layout).

Every broker holds the whole image in memory: it reads the cluster's prefix
once, then applies etcd's watch events in revision order, and tells its
listener what changed after each batch. Reads never touch etcd.

Layout 2 (the one this module writes), as Kafka's ZooKeeper layout did: a
topic's record `topics/<name>` holds the replica assignment of all its
partitions (and ongoing reassignments), so creating a topic, adding
partitions or reassigning any number of a topic's partitions is one put of
one key, seen by every reader at once. A partition's leader, ISR and epochs
live in `partition-state/<topic id>/<i>`, written only once they change
(before that the record's initial state holds), so an ISR change stays a
compare-and-swap on one small key.

Every write is one etcd transaction guarded by comparisons, so a write based
on a stale image fails instead of overwriting a newer decision:
  - creating a topic: the topic key must be absent;
  - a topic record (partitions added, reassignments, configs): its mod
    revision must be the one the writer read;
  - a partition's state: its key's mod revision and its topic record's mod
    revision must be the ones the writer read;
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
from urllib.parse import quote, unquote

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
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.uuids import random_cluster_id, random_uuid, uuid_text

log = get_logger(__name__)

ROOT = "/kafkapy"
PRODUCER_ID_BLOCK = 1000


LAYOUT = 2  # the `layout` key; docs/cluster.md ("Key layout in etcd")
TXN_OPS = 120  # etcd's default --max-txn-ops is 128 (compares and puts are counted apart)
MAX_RECORD_BYTES = 1_400_000  # etcd's default --max-request-bytes is 1.5 MiB
STATE = "partition-state"


class LayoutError(MetadataError):
    """etcd holds this cluster's metadata in a layout this kafkapy does not read."""

    def __init__(self, message: str) -> None:
        super().__init__(-1, message)


def state_to_json(p: PartitionInfo, assignment_epoch: int) -> bytes:
    """A partition's state key: leader, ISR and epochs (the partition epoch less the record's share)."""
    return json.dumps(
        {
            "leader": p.leader,
            "leader_epoch": p.leader_epoch,
            "isr": p.isr,
            "partition_epoch": p.partition_epoch - assignment_epoch,
        },
        separators=(",", ":"),
    ).encode()


def effective_partition(rec: dict[str, Any], states: dict[int, dict[str, Any]], index: int) -> PartitionInfo:
    """Partition `index` as readers see it: the record's assignment with the state key's leader and ISR
    (the record's initial state before any). An ISR member or a leader outside the replicas (left by a
    reassignment cancelled or replaced) is not one: the ISR keeps the replicas' members and the
    partition has no leader until the controller elects one."""
    replicas: list[int] = rec["replicas"][index]
    key = str(index)
    st = states.get(index)
    if st is None:
        init = rec.get("initial", {}).get(key)
        leader = int(init["leader"]) if init else replicas[0]
        isr: list[int] = init["isr"] if init else replicas
        leader_epoch = partition_epoch = 0
    else:
        leader, isr = int(st["leader"]), st["isr"]
        leader_epoch, partition_epoch = int(st["leader_epoch"]), int(st["partition_epoch"])
    # an ISR written empty stays empty (its last member came back with a new data dir: controller.py)
    in_sync = [r for r in isr if r in replicas] or (replicas[:1] if isr else [])
    return PartitionInfo(
        index,
        leader if leader in replicas else -1,
        replicas,
        in_sync,
        leader_epoch,
        partition_epoch + int(rec.get("epochs", {}).get(key, 0)),
        list(rec.get("adding", {}).get(key, ())),
        list(rec.get("removing", {}).get(key, ())),
    )


def partition_states(keys: dict[str, str], topic: str) -> dict[int, PartitionInfo]:
    """A topic's partitions from a dump of the cluster's keys (relative key -> value), as brokers see them."""
    raw = keys.get(f"topics/{topic}")
    if raw is None:
        return {}
    rec = json.loads(raw)
    prefix = f"{STATE}/{rec['topic_id']}/"
    states = {int(k[len(prefix) :]): json.loads(v) for k, v in keys.items() if k.startswith(prefix)}
    return {i: effective_partition(rec, states, i) for i in range(len(rec["replicas"]))}


def _assignment(rec: dict[str, Any], index: int) -> tuple[list[int], list[int], list[int]]:
    key = str(index)
    return (
        list(rec["replicas"][index]),
        list(rec.get("adding", {}).get(key, ())),
        list(rec.get("removing", {}).get(key, ())),
    )


def _reassigned(rec: dict[str, Any], p: PartitionInfo) -> int:
    """Put `p`'s replicas, adding and removing into `rec` (a copy the caller owns); its new assignment epoch."""
    key = str(p.index)
    rec["replicas"][p.index] = list(p.replicas)
    for field_name, value in (("adding", p.adding_replicas), ("removing", p.removing_replicas)):
        if value:
            rec[field_name][key] = list(value)
        else:
            rec[field_name].pop(key, None)
    epochs = rec["epochs"]
    epochs[key] = int(epochs.get(key, 0)) + 1
    return int(epochs[key])


def _copy_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A record to change: its containers copied (not the replica lists, which are replaced, never changed)."""
    out = dict(rec)
    out["replicas"] = list(rec["replicas"])
    for sparse in ("adding", "removing", "epochs", "initial"):
        out[sparse] = dict(rec.get(sparse, {}))
    return out


def _record_bytes(name: str, rec: dict[str, Any]) -> bytes:
    data = json.dumps(rec, separators=(",", ":")).encode()
    if len(data) > MAX_RECORD_BYTES:
        raise MetadataError(
            37,  # INVALID_PARTITIONS
            f"Topic '{name}' would need a {len(data)}-byte metadata record, above the {MAX_RECORD_BYTES} bytes "
            "one etcd request carries (--max-request-bytes); use fewer partitions per topic.",
        )
    return data


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
        self.log_dir_offline: set[int] = set()  # live brokers whose log dir refuses writes (full or failing)
        self.own_log_dir_offline = False  # ours, kept in every registration we write
        # our data dir's `directory.id` (meta.properties; several log dirs: theirs joined by ","), in every
        # registration we write
        self.directory_id = ""
        self.directory_ids: dict[int, str] = {}  # live broker -> the directory id its registration carries
        # broker -> (the directory id the cluster last accepted for it, that key's mod revision):
        # `broker-dirs/<id>`, written by the broker's first registration ever, then only by the controller
        self._known_dirs: dict[int, tuple[str, int]] = {}
        self._own_shutting_down = False
        self._records: dict[str, dict[str, Any]] = {}  # topic name -> its record (assignment, configs)
        self._record_rev: dict[str, int] = {}  # topic name -> the record's mod revision
        self._id_name: dict[str, str] = {}  # topic id (as in the keys) -> name
        self._states: dict[str, dict[int, dict[str, Any]]] = {}  # topic id -> index -> state key's value
        self._state_rev: dict[tuple[str, int], int] = {}  # (topic id, index) -> the state key's mod revision
        self._topics: dict[str, TopicInfo] = {}
        self._by_id: dict[uuid.UUID, TopicInfo] = {}
        self._controller: int = -1
        self._controller_rev: int = 0
        self._broker_configs: dict[str, tuple[dict[str, str], int]] = {}  # "default" or id -> (configs, mod revision)
        self._client_metrics: dict[str, tuple[dict[str, str], int]] = {}  # KIP-714 name -> (configs, mod revision)
        self._group_configs: dict[str, tuple[dict[str, str], int]] = {}  # group id -> (configs, mod revision)
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
        register: bool = True,
        data_dirs: list[Path] | None = None,
    ) -> EtcdMetadata:
        """Connect, agree on the cluster id, load the image, register this broker (unless `register` is
        False: the caller registers once it is ready to keep its lease alive). `data_dirs`: every log dir
        (JBOD), `data_dir` first; each has its own meta.properties and directory id."""
        client = await EtcdClient.connect(url, timeout=timeout)
        if not cluster_id:
            cluster_id = await cls._shared_cluster_id(client)
        directory_id = _directory_ids(data_dirs or [data_dir], cluster_id, broker.node_id)
        md = cls(client, cluster_id, broker, session_timeout_ms=session_timeout_ms)
        md.directory_id = directory_id
        await md._load()
        md._watch_task = asyncio.get_running_loop().create_task(md._watch())
        if register:
            await md.register()
        return md

    @classmethod
    async def observe(cls, url: str, cluster_id: str, *, timeout: float = 10.0) -> EtcdMetadata:
        """A read-only image of a cluster's metadata, kept up to date by the watch, without registering
        (tools, benchmarks, tests); `listener` gets every batch of changes. close() it."""
        client = await EtcdClient.connect(url, timeout=timeout)
        md = cls(client, cluster_id, BrokerInfo(-1, "", 0))
        try:
            await md._load()
        except BaseException:
            await client.close()
            raise
        md._watch_task = asyncio.get_running_loop().create_task(md._watch())
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
        self._check_layout(kvs)
        changes = Changes(revision)
        for kv in kvs:
            self._apply_put(kv, changes)
        self._rebuild(set(self._records), {}, changes)
        self.revision = revision
        if not any(kv.key == self._key("layout") for kv in kvs):
            key = self._key("layout")
            res = await self.client.txn(
                [Compare.create_revision(key, "=", 0)], [Op.put(key, str(LAYOUT).encode())], [Op.get(key)]
            )
            if not res.succeeded and res.responses[0] and res.responses[0][0].value != str(LAYOUT).encode():
                raise LayoutError(f"etcd key {key.decode()} says layout {res.responses[0][0].value.decode()}")
        log.info(
            "cluster metadata loaded",
            cluster_id=self.cluster_id,
            revision=revision,
            brokers=sorted(self._brokers),
            topics=len(self._topics),
            controller=self._controller,
        )

    def _check_layout(self, kvs: list[KeyValue]) -> None:
        """Refuse a prefix written in another layout rather than misread it (docs/cluster.md)."""
        for kv in kvs:
            rel = self._rel(kv.key)
            if rel == ["layout"] and kv.value != str(LAYOUT).encode():
                raise LayoutError(
                    f"etcd prefix {self.prefix} holds kafkapy metadata layout {kv.value.decode()}; "
                    f"this broker reads layout {LAYOUT} only"
                )
            if rel[0] == "partitions" or (rel[0] == "topics" and b'"replicas"' not in kv.value):
                raise LayoutError(
                    f"etcd prefix {self.prefix} holds kafkapy metadata layout 1 (per-partition keys "
                    f"{self.prefix}partitions/<topic>/<i>); this broker reads layout {LAYOUT} only "
                    "(docs/cluster.md): start it on a new cluster id or an empty etcd"
                )

    async def register(self) -> None:
        """Register under a lease; waits for a previous incarnation's lease to lapse."""
        ttl = max(2, (self.session_timeout_ms + 999) // 1000)
        key = self._key("brokers", self.broker.node_id)
        value = self._registration()
        if self.directory_id:
            # our first registration ever records our data dir; a later one with another id is a
            # broker that lost its data: the controller takes it out of every ISR, then records it
            dirs = self._key("broker-dirs", self.broker.node_id)
            await self.client.txn(
                [Compare.create_revision(dirs, "=", 0)],
                [Op.put(dirs, json.dumps({"directory_id": self.directory_id}).encode())],
            )
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
        shutting_down = shutting_down or self._own_shutting_down
        d: dict[str, Any] = {"host": self.broker.host, "port": self.broker.port, "rack": self.broker.rack}
        if self.broker.endpoints:
            # host/port stay the inter-broker endpoint, which is all an older kafkapy reads
            d["endpoints"] = [
                {"listener": name, "host": e.host, "port": e.port, "security_protocol": e.security_protocol}
                for name, e in self.broker.endpoints.items()
            ]
        if shutting_down:
            d["shutting_down"] = True
        if self.own_log_dir_offline:
            d["log_dir_offline"] = True
        if self.directory_id:
            d["directory_id"] = self.directory_id
        return json.dumps(d, separators=(",", ":")).encode()

    async def announce_shutdown(self) -> None:
        """Controlled shutdown: the controller moves our leaderships away."""
        self._own_shutting_down = True
        await self._put_registration()

    async def announce_log_dir(self, offline: bool) -> None:
        """Our log dir refuses writes (full or failing), or takes them again: the controller moves our
        leaderships to other in-sync replicas, or lets preferred-leader elections bring them back."""
        self.own_log_dir_offline = offline
        await self._put_registration()

    async def _put_registration(self) -> None:
        if self.lease is None:
            return
        key = self._key("brokers", self.broker.node_id)
        res = await self.client.txn(
            [Compare.lease(key, "=", self.lease.id)],
            [Op.put(key, self._registration(), lease=self.lease.id)],
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
        self._brokers, self._records, self._record_rev, self._id_name = {}, {}, {}, {}
        self._states, self._state_rev = {}, {}
        self.shutting_down = set()
        self.log_dir_offline = set()
        self.directory_ids, self._known_dirs = {}, {}
        self._topics, self._by_id = {}, {}
        self._broker_configs = {}
        self._client_metrics = {}
        self._group_configs = {}
        self._controller = -1  # unless the snapshot has the key
        changes = Changes(revision)
        for kv in kvs:
            self._apply_put(kv, Changes(revision))
        self._rebuild(set(self._records), {}, Changes(revision))
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
        states: dict[str, set[int]] = {}  # topic id -> indexes whose state key changed
        for ev in events:
            rel = self._rel(ev.kv.key)
            if rel[0] == STATE and len(rel) == 3:
                self._apply_state(rel[1], int(rel[2]), ev.kv if ev.type == "PUT" else None)
                states.setdefault(rel[1], set()).add(int(rel[2]))
                continue
            name = self._apply_put(ev.kv, changes) if ev.type == "PUT" else self._apply_delete(rel, changes)
            if name is not None:
                touched.add(name)
        self._rebuild(touched, states, changes)
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
            offline = bool(d.get("log_dir_offline"))
            directory = str(d.get("directory_id") or "")
            if (
                self._brokers.get(b.node_id) != b
                or stopping != (b.node_id in self.shutting_down)
                or offline != (b.node_id in self.log_dir_offline)
                or directory != self.directory_ids.get(b.node_id, "")
            ):
                changes.brokers_added.append(b)
            self._brokers[b.node_id] = b
            (self.shutting_down.add if stopping else self.shutting_down.discard)(b.node_id)
            (self.log_dir_offline.add if offline else self.log_dir_offline.discard)(b.node_id)
            if directory:
                self.directory_ids[b.node_id] = directory
            else:
                self.directory_ids.pop(b.node_id, None)
        elif kind == "broker-dirs" and len(rel) == 2:
            self._known_dirs[int(rel[1])] = (str(json.loads(kv.value)["directory_id"]), kv.mod_revision)
        elif kind == "controller" and len(rel) == 1:
            d = json.loads(kv.value)
            self._controller = int(d["broker_id"])
            self.controller_epoch = int(d.get("epoch", 0))
            self._controller_rev = kv.mod_revision
            changes.controller_changed = True
        elif kind == "topics" and len(rel) == 2:
            rec = json.loads(kv.value)
            if "replicas" not in rec:  # written by a kafkapy of layout 1 meanwhile: not readable
                log.error("topic record in an older layout ignored", topic=rel[1], layout=LAYOUT)
                return None
            old = self._records.get(rel[1])
            if old is not None and old["topic_id"] != rec["topic_id"]:
                self._id_name.pop(old["topic_id"], None)
            self._records[rel[1]] = rec
            self._record_rev[rel[1]] = kv.mod_revision
            self._id_name[rec["topic_id"]] = rel[1]
            return rel[1]
        elif kind == STATE and len(rel) == 3:
            self._apply_state(rel[1], int(rel[2]), kv)
        elif kind == "config" and len(rel) == 3 and rel[1] == "brokers":
            self._broker_configs[rel[2]] = ({str(k): str(v) for k, v in json.loads(kv.value).items()}, kv.mod_revision)
        elif kind == "config" and len(rel) == 3 and rel[1] == "client-metrics":
            self._client_metrics[unquote(rel[2])] = (
                {str(k): str(v) for k, v in json.loads(kv.value).items()},
                kv.mod_revision,
            )
        elif kind == "config" and len(rel) == 3 and rel[1] == "groups":
            self._group_configs[unquote(rel[2])] = (
                {str(k): str(v) for k, v in json.loads(kv.value).items()},
                kv.mod_revision,
            )
        return None

    def _apply_state(self, topic_id: str, index: int, kv: KeyValue | None) -> None:
        if kv is not None:
            self._states.setdefault(topic_id, {})[index] = json.loads(kv.value)
            self._state_rev[(topic_id, index)] = kv.mod_revision
            return
        states = self._states.get(topic_id)
        if states is not None:
            states.pop(index, None)
            if not states:
                del self._states[topic_id]
        self._state_rev.pop((topic_id, index), None)

    def _apply_delete(self, rel: list[str], changes: Changes) -> str | None:
        kind = rel[0]
        if kind == "brokers" and len(rel) == 2:
            b = self._brokers.pop(int(rel[1]), None)
            self.shutting_down.discard(int(rel[1]))
            self.log_dir_offline.discard(int(rel[1]))
            self.directory_ids.pop(int(rel[1]), None)
            if b is not None:
                changes.brokers_removed.append(b)
        elif kind == "broker-dirs" and len(rel) == 2:
            self._known_dirs.pop(int(rel[1]), None)
        elif kind == "controller" and len(rel) == 1:
            self._controller = -1
            changes.controller_changed = True
        elif kind == "config" and len(rel) == 3 and rel[1] == "brokers":
            self._broker_configs.pop(rel[2], None)
        elif kind == "config" and len(rel) == 3 and rel[1] == "client-metrics":
            self._client_metrics.pop(unquote(rel[2]), None)
        elif kind == "config" and len(rel) == 3 and rel[1] == "groups":
            self._group_configs.pop(unquote(rel[2]), None)
        elif kind == "topics" and len(rel) == 2:
            rec = self._records.pop(rel[1], None)
            self._record_rev.pop(rel[1], None)
            if rec is not None:
                self._id_name.pop(rec["topic_id"], None)
            return rel[1]
        return None

    def _rebuild(self, names: Iterable[str], states: dict[str, set[int]], changes: Changes) -> None:
        """Recompute TopicInfo for topics whose record changed (`names`), and the partitions whose state key
        changed (`states`) in the others."""
        names = set(names)
        for name in names:
            rec = self._records.get(name)
            old = self._topics.get(name)
            if rec is None:
                if old is not None:
                    del self._topics[name]
                    self._by_id.pop(old.topic_id, None)
                    changes.topics_deleted.append(old)
                continue
            tid = rec["topic_id"]
            held = self._states.get(tid, {})
            info = TopicInfo(
                name=name,
                topic_id=uuid.UUID(tid),
                partitions=[effective_partition(rec, held, i) for i in range(len(rec["replicas"]))],
                configs=dict(rec.get("configs", {})),
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
        for tid, indexes in states.items():
            owner = self._id_name.get(tid)
            if owner is None or owner in names:
                continue
            name = owner
            old = self._topics.get(name)
            if old is None:
                continue
            rec = self._records[name]
            held = self._states.get(tid, {})
            parts: list[PartitionInfo] | None = None
            for i in sorted(indexes):
                if i >= len(old.partitions):
                    continue
                p = effective_partition(rec, held, i)
                if p != old.partitions[i]:
                    if parts is None:
                        parts = list(old.partitions)
                    parts[i] = p
                    changes.partitions.append((name, p))
            if parts is not None:
                info = TopicInfo(name=name, topic_id=old.topic_id, partitions=parts, configs=old.configs)
                self._topics[name] = info
                self._by_id[info.topic_id] = info

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

    @property
    def dir_changed(self) -> set[int]:
        """Live brokers registered with a data dir other than the one the cluster last accepted for them
        (KIP-858's directory id): their replicas lost their data, so they may not lead (not even unclean)
        nor stay in an ISR until the controller has removed them from every ISR and accepted the new id."""
        out = set()
        for node_id, directory in self.directory_ids.items():
            known = self._known_dirs.get(node_id)
            if known is not None and known[0] != directory and node_id in self._brokers:
                out.add(node_id)
        return out

    def known_directory(self, node_id: int) -> str:
        """The directory id the cluster last accepted for `node_id` ("" if none)."""
        known = self._known_dirs.get(node_id)
        return known[0] if known else ""

    async def accept_directory(self, node_id: int) -> bool:
        """As the controller: record the data dir `node_id` registered with as its accepted one (once it is
        in no ISR). False if anything changed meanwhile (the caller looks again)."""
        directory = self.directory_ids.get(node_id)
        known = self._known_dirs.get(node_id)
        if not directory or known is None:
            return False
        key = self._key("broker-dirs", node_id)
        res = await self.client.txn(
            [*await self.still_controller(), Compare.mod_revision(key, "=", known[1])],
            [Op.put(key, json.dumps({"directory_id": directory}).encode())],
        )
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    def stopped_ids(self) -> set[int]:
        """Brokers the cluster still knows (their accepted data dir) that are not live: Kafka's fenced ones."""
        return set(self._known_dirs) - set(self._brokers)

    async def forget_broker(self, node_id: int) -> bool:
        """Admin.unregisterBroker for a stopped broker: delete its stored registration (`broker-dirs/<id>`),
        so if it ever comes back it is a new broker. False if it is live, unknown, or changed meanwhile."""
        known = self._known_dirs.get(node_id)
        if known is None or node_id in self._brokers:
            return False
        key = self._key("broker-dirs", node_id)
        res = await self.client.txn(
            [Compare.mod_revision(key, "=", known[1]), Compare.create_revision(self._key("brokers", node_id), "=", 0)],
            [Op.delete(key)],
        )
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    def topics(self) -> Iterable[TopicInfo]:
        return self._topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._by_id.get(topic_id)

    def partition_revision(self, topic: str, index: int) -> int:
        """The mod revision of the partition's state key (0 while it has none: the record's initial state)."""
        rec = self._records.get(topic)
        return 0 if rec is None else self._state_rev.get((rec["topic_id"], index), 0)

    # ------------------------------------------------------------ topic changes

    async def _decide(self, compare: list[Compare], success: list[Op]) -> bool:
        """One transaction of a client's request; applied here once it succeeded. etcd unreachable or slow
        is REQUEST_TIMED_OUT for the client (the outcome is unknown, as with Kafka's controller)."""
        try:
            res = await self.client.txn(compare, success)
            if res.succeeded:
                await self.wait_revision(res.revision)
        except (EtcdError, OSError, TimeoutError) as e:
            raise MetadataError(ErrorCode.REQUEST_TIMED_OUT, f"The metadata store did not answer in time: {e}") from e
        return res.succeeded

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        check_new_topic(
            name, partitions, replication_factor, self._topics.keys() | self._records.keys(), len(self._brokers)
        )

    def _assign(
        self, count: int, rf: int, *, start: int = 0, existing: dict[int, list[int]] | None = None
    ) -> dict[int, list[int]]:
        from kafkapy.cluster.assignment import AssignmentError, assign_replicas

        try:
            return assign_replicas(count, rf, self.brokers(), start_partition=start, existing=existing)
        except AssignmentError as e:
            raise MetadataError(e.code, e.message) from None

    def _add_assignment(self, rec: dict[str, Any], assignment: dict[int, list[int]]) -> None:
        """Append new partitions to `rec`: replicas, and an initial state where a replica is not live
        (the default is the first replica leading, every replica in the ISR)."""
        initial = dict(rec.get("initial", {}))
        for i in sorted(assignment):
            if i != len(rec["replicas"]):
                raise MetadataError(39, f"Partition {i} of the assignment does not follow partition {i - 1}.")
            replicas = list(assignment[i])
            rec["replicas"].append(replicas)
            live = [r for r in replicas if r in self._brokers]
            if live != replicas:
                initial[str(i)] = {"leader": live[0] if live else -1, "isr": live or replicas[:1]}
        if initial:
            rec["initial"] = initial
        rec["partitions"] = len(rec["replicas"])  # what a layout-1 reader checks: it waits for keys never made

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
        rec: dict[str, Any] = {"topic_id": str(topic_id), "configs": configs or {}, "replicas": []}
        self._add_assignment(rec, assignment)
        if not await self._decide(
            [Compare.create_revision(topic_key, "=", 0)], [Op.put(topic_key, _record_bytes(name, rec))]
        ):
            raise MetadataError(36, f"Topic '{name}' already exists.")
        info = self._topics.get(name)
        if info is None:  # deleted again meanwhile
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        log.info("topic created", topic=name, partitions=len(assignment), topic_id=str(topic_id))
        return info

    async def delete_topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        rec = self._records.get(name)
        if info is None or rec is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        topic_key = self._key("topics", name)
        if not await self._decide(
            [Compare.create_revision(topic_key, "!=", 0)],
            [Op.delete(topic_key), Op.delete(self._key(STATE, rec["topic_id"]) + b"/", prefix=True)],
        ):
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        log.info("topic deleted", topic=name)
        return info

    async def add_partitions(self, name: str, total: int, assignment: list[list[int]] | None = None) -> TopicInfo:
        info = self._topics.get(name)
        rec = self._records.get(name)
        if info is None or rec is None:
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
        grown = _copy_record(rec)
        self._add_assignment(grown, new)
        if not await self._decide(
            [Compare.mod_revision(topic_key, "=", self._record_rev[name])],
            [Op.put(topic_key, _record_bytes(name, grown))],
        ):
            raise MetadataError(37, f"Topic '{name}' changed meanwhile; try again.")
        log.info("partitions added", topic=name, partitions=total)
        return self._topics[name]

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        if name not in self._topics:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        topic_key = self._key("topics", name)
        for _ in range(5):
            rec = self._records.get(name)
            if rec is None:
                raise MetadataError(3, f"Topic '{name}' does not exist.")
            changed = dict(rec)
            changed["configs"] = dict(configs)
            if await self._decide(
                [Compare.mod_revision(topic_key, "=", self._record_rev[name])],
                [Op.put(topic_key, _record_bytes(name, changed))],
            ):
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
        return (await self.alter_reassignments([(topic, index, target)]))[0]

    async def alter_reassignments(self, requests: list[tuple[str, int, list[int] | None]]) -> list[Outcome]:
        """Start (a target) or cancel (None) many partitions' reassignments as one decision: each topic's
        record is put once, all records in one transaction (up to TXN_OPS topics; more are split by topic),
        so no reader sees some of a topic's partitions moving and others not yet."""
        from kafkapy.cluster.reassignment import CAS_ATTEMPTS, reassignment_change

        outcomes: list[Outcome] = [Outcome()] * len(requests)
        for _ in range(CAS_ATTEMPTS):
            live = self.live_ids()
            changed: dict[str, dict[str, Any]] = {}
            normalize: list[tuple[str, PartitionInfo, int]] = []
            for n, (topic, index, target) in enumerate(requests):
                info, rec = self._topics.get(topic), self._records.get(topic)
                p = (
                    info.partitions[index]
                    if info is not None and rec is not None and 0 <= index < len(info.partitions)
                    else None
                )
                outcome, new = reassignment_change(p, target, live)
                outcomes[n] = outcome
                if new is None or p is None or rec is None:
                    continue
                if topic not in changed:
                    changed[topic] = _copy_record(rec)
                _reassigned(changed[topic], new)
                stored = self._states.get(rec["topic_id"], {}).get(index)
                if stored is None:  # still in its initial state, which followed the replicas: pin it
                    changed[topic]["initial"][str(index)] = {"leader": p.leader, "isr": list(p.isr)}
                elif stored["leader"] != p.leader or stored["isr"] != p.isr:
                    # the state key still names a replica a reassignment dropped: store what readers see
                    # now, so that replica cannot come back into the ISR with the new assignment
                    normalize.append((topic, p, self.partition_revision(topic, index)))
            if not changed:
                return outcomes
            if normalize and not await self._write_partitions(normalize, []):
                await asyncio.sleep(0.02)
                continue
            names = list(changed)
            ok = True
            for i in range(0, len(names), TXN_OPS):
                chunk = names[i : i + TXN_OPS]
                if not await self._decide(
                    [Compare.mod_revision(self._key("topics", t), "=", self._record_rev[t]) for t in chunk],
                    [Op.put(self._key("topics", t), _record_bytes(t, changed[t])) for t in chunk],
                ):
                    ok = False
                    break
            if ok:
                log.info("reassignments changed", partitions=len(requests), topics=len(names))
                return outcomes
            await asyncio.sleep(0.02)  # a record changed under us: look again
        return [
            o if o.code else Outcome(ErrorCode.REQUEST_TIMED_OUT, "The topic kept changing; try again.")
            for o in outcomes
        ]

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

    def group_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic group configs of the cluster: group id -> the keys set."""
        return {name: dict(c) for name, (c, _) in self._group_configs.items()}

    async def set_group_configs(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace group `name`'s configs (empty: delete them) if still `expected` (CAS)."""
        key = self._key("config", "groups", quote(name, safe=""))
        known = self._group_configs.get(name)
        if (known[0] if known else {}) != expected:
            return False
        cmp = Compare.mod_revision(key, "=", known[1]) if known else Compare.create_revision(key, "=", 0)
        op = Op.put(key, json.dumps(configs, sort_keys=True).encode()) if configs else Op.delete(key)
        res = await self.client.txn([cmp], [op])
        if res.succeeded:
            await self.wait_revision(res.revision)
        return res.succeeded

    def client_metrics(self) -> dict[str, dict[str, str]]:
        """The client-metrics (KIP-714) config resources of the cluster: name -> the keys set."""
        return {name: dict(c) for name, (c, _) in self._client_metrics.items()}

    async def set_client_metrics(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace client-metrics resource `name`'s configs (empty: delete it) if still `expected` (CAS)."""
        key = self._key("config", "client-metrics", quote(name, safe=""))  # any name, "/" included
        known = self._client_metrics.get(name)
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
        return await self._write_partitions([(topic, new, expected_revision)], [])

    def _partition_writes(
        self, topic: str, updates: list[tuple[PartitionInfo, int]]
    ) -> tuple[list[Compare], list[Op]] | None:
        """One topic's share of a write: its record's compare (and put, when an assignment changes) and each
        partition's state compare and put. None when the topic is gone."""
        rec = self._records.get(topic)
        if rec is None:
            return None
        tid = rec["topic_id"]
        topic_key = self._key("topics", topic)
        cmps = [Compare.mod_revision(topic_key, "=", self._record_rev[topic])]
        ops: list[Op] = []
        changed: dict[str, Any] | None = None
        for new, rev in updates:
            if new.index >= len(rec["replicas"]):
                return None
            if (list(new.replicas), list(new.adding_replicas), list(new.removing_replicas)) == _assignment(
                rec, new.index
            ):
                epoch = int(rec.get("epochs", {}).get(str(new.index), 0))
            else:
                if changed is None:
                    changed = _copy_record(rec)
                epoch = _reassigned(changed, new)
            key = self._key(STATE, tid, new.index)
            cmps.append(Compare.mod_revision(key, "=", rev))
            ops.append(Op.put(key, state_to_json(new, epoch)))
        if changed is not None:
            ops.append(Op.put(topic_key, _record_bytes(topic, changed)))
        return cmps, ops

    async def _write_partitions(self, updates: list[tuple[str, PartitionInfo, int]], guard: list[Compare]) -> bool:
        """Partition states (and the records of topics whose assignment changes) by compare-and-swap, in as few
        transactions as etcd's limits allow; True when all succeeded. A topic's share is never split."""
        by_topic: dict[str, list[tuple[PartitionInfo, int]]] = {}
        for topic, new, rev in updates:
            by_topic.setdefault(topic, []).append((new, rev))
        txns: list[tuple[list[Compare], list[Op]]] = []
        cmps, ops = list(guard), list[Op]()
        for topic, items in by_topic.items():
            share = self._partition_writes(topic, items)
            if share is None:
                return False
            if len(cmps) + len(share[0]) > TXN_OPS or len(ops) + len(share[1]) > TXN_OPS:
                if ops:
                    txns.append((cmps, ops))
                cmps, ops = list(guard), list[Op]()
            cmps.extend(share[0])
            ops.extend(share[1])
        if ops:
            txns.append((cmps, ops))
        ok = True
        for c, o in txns:
            res = await self.client.txn(c, o)
            if res.succeeded:
                await self.wait_revision(res.revision)
            else:
                ok = False
        return ok

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
        return await self._write_partitions(updates, await self.still_controller())

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


def _directory_ids(data_dirs: list[Path], cluster_id: str, node_id: int) -> str:
    """The broker's data dirs as one directory id: the one dir's id, or with several log dirs (JBOD)
    their ids in log.dirs order joined by ",". Losing any dir changes it (the broker is then treated as
    one that lost its data, KIP-858); so does adding or removing a dir in log.dirs. Two dirs with one
    id (a copied dir) refuse to start, as Kafka."""
    ids = [_check_meta_properties(d, cluster_id, node_id) for d in data_dirs]
    if len(set(ids)) != len(ids):
        raise MetadataError(-1, f"log dirs {[str(d) for d in data_dirs]} share a directory.id: {ids}")
    return ",".join(ids)


def _check_meta_properties(data_dir: Path, cluster_id: str, node_id: int) -> str:
    """The data dir remembers its cluster and broker id; refuse to mix them up. Returns the data dir's
    `directory.id` (KIP-858), made once, when the file is written or first lacks one: a data dir that
    was emptied (meta.properties gone) gets a new one."""
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
    directory_id = props.get("directory.id", "")
    if not directory_id:
        directory_id = uuid_text(random_uuid())
        lines = ["#kafkapy", "version=1", f"cluster.id={cluster_id}", f"node.id={node_id}"]
        lines += [f"{k}={v}" for k, v in props.items() if k not in ("version", "cluster.id", "node.id")]
        lines.append(f"directory.id={directory_id}")
        tmp = meta.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(meta)
        log.info("data dir has a new directory id", data_dir=str(data_dir), directory_id=directory_id)
    return directory_id


def _broker_from_registration(node_id: int, d: dict[str, Any]) -> BrokerInfo:
    """A broker's registration value; one written without `endpoints` (an older kafkapy) has host/port only."""
    endpoints = {
        str(e["listener"]): Endpoint(str(e["host"]), int(e["port"]), str(e.get("security_protocol", "PLAINTEXT")))
        for e in d.get("endpoints") or ()
    }
    return BrokerInfo(node_id, str(d["host"]), int(d["port"]), d.get("rack"), endpoints)
