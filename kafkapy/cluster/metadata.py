"""Cluster metadata: brokers, topics, partition assignments, topic configs.

`EmbeddedMetadata` is the single-broker store: the whole image lives in
memory and is written atomically to `<data dir>/cluster-metadata.json` on
every change. A clustered store (etcd) will implement the same methods.
Not safe for concurrent use from several threads; the broker calls it from
its event loop only.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.uuids import random_cluster_id, random_uuid

log = structlog.get_logger(__name__)

MAX_TOPIC_NAME = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
PRODUCER_ID_FILE = "producer-id-block.checkpoint"  # end of the producer ids reserved so far
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


class MetadataError(Exception):
    """A metadata change that cannot be made; `code` is a Kafka error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True, frozen=True)
class Endpoint:
    """One advertised endpoint of a broker: where clients of one listener reach it."""

    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(slots=True)
class BrokerInfo:
    """A registered broker. `host`/`port` is its inter-broker endpoint (what other brokers
    connect to); `endpoints` maps each advertised listener name to its endpoint, in the
    broker's advertised.listeners order."""

    node_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def endpoint(self, listener: str | None) -> Endpoint | None:
        """Where a client of `listener` reaches this broker; None when it has no such listener.

        A broker registered without endpoints (an older kafkapy) answers on every listener
        at host/port, as before; `listener` None means the first advertised listener.
        """
        if not self.endpoints:
            return Endpoint(self.host, self.port)
        if listener is None:
            return next(iter(self.endpoints.values()))
        return self.endpoints.get(listener)


@dataclass(slots=True)
class PartitionInfo:
    index: int
    leader: int
    replicas: list[int]
    isr: list[int]
    leader_epoch: int = 0
    partition_epoch: int = 0
    adding_replicas: list[int] = field(default_factory=list)  # KIP-455 reassignment in progress
    removing_replicas: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionInfo]
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


@dataclass(slots=True)
class Changes:
    """What one batch of watch events changed in the image."""

    revision: int
    topics_created: list[TopicInfo] = field(default_factory=list)
    topics_deleted: list[TopicInfo] = field(default_factory=list)
    topics_reconfigured: list[TopicInfo] = field(default_factory=list)
    partitions: list[tuple[str, PartitionInfo]] = field(default_factory=list)  # new or changed state
    brokers_added: list[BrokerInfo] = field(default_factory=list)
    brokers_removed: list[BrokerInfo] = field(default_factory=list)
    controller_changed: bool = False


MetadataListener = Callable[[Changes], None]


PREFERRED, UNCLEAN = 0, 1  # ElectLeaders election types


@dataclass(slots=True)
class Outcome:
    """A per-partition answer: Kafka error code and message."""

    code: int = ErrorCode.NONE
    message: str | None = None


def check_target(target: list[int], registered: set[int]) -> str | None:
    """Why `target` is not a valid replica list, or None (Kafka's messages: the brokers in id order, the
    first unregistered or repeated one named)."""
    if not target:
        return "The manual partition assignment includes an empty replica list."
    previous = None
    for broker in sorted(target):
        if broker not in registered:
            return f"The manual partition assignment includes broker {broker}, but no such broker is registered."
        if broker == previous:
            return f"The manual partition assignment includes the broker {broker} more than once."
        previous = broker
    return None


def validate_topic_name(name: str) -> str | None:
    """Kafka's rules for topic names; the error message, or None when legal."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return 'Topic name cannot be "." or ".."'
    if len(name) > MAX_TOPIC_NAME:
        return f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME} characters, topic name: {name}"
    if not _LEGAL.match(name):
        return (
            f'Topic name "{name}" is illegal, it contains a character other than '
            "ASCII alphanumerics, '.', '_' and '-'"
        )
    return None


def _collision_key(name: str) -> str:
    return name.replace(".", "_")


def check_new_topic(
    name: str, partitions: int, replication_factor: int, existing: Iterable[str], live_brokers: int
) -> None:
    """Raise MetadataError with Kafka's code if the topic cannot be created."""
    problem = validate_topic_name(name)
    if problem:
        raise MetadataError(17, problem)  # INVALID_TOPIC_EXCEPTION
    names = set(existing)
    if name in names:
        raise MetadataError(36, f"Topic '{name}' already exists.")
    key = _collision_key(name)
    for other in names:
        if _collision_key(other) == key:
            raise MetadataError(17, f"Topic '{name}' collides with existing topic: {other}")
    if partitions <= 0:
        raise MetadataError(37, "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise MetadataError(38, "Replication factor must be larger than 0.")
    if replication_factor > live_brokers:
        raise MetadataError(
            38,
            f"Unable to replicate the partition {replication_factor} time(s): "
            f"The target replication factor of {replication_factor} cannot be reached "
            f"because only {live_brokers} broker(s) are registered.",
        )


class EmbeddedMetadata:
    """Metadata of a single-broker cluster, persisted in the data directory."""

    FILE = "cluster-metadata.json"

    def __init__(self, data_dir: Path, broker: BrokerInfo, cluster_id: str | None = None) -> None:
        self.data_dir = data_dir
        self.broker = broker
        self._topics: dict[str, TopicInfo] = {}
        self._by_id: dict[uuid.UUID, TopicInfo] = {}
        self.cluster_id = cluster_id or ""
        self.revision = 0
        self.listener: MetadataListener | None = None
        self._client_metrics: dict[str, dict[str, str]] = {}  # KIP-714 subscriptions by name
        self._group_configs: dict[str, dict[str, str]] = {}  # dynamic group configs by group id
        self._load()

    # ------------------------------------------------------------ persistence

    def _load(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        meta = self.data_dir / "meta.properties"
        props: dict[str, str] = {}
        if meta.exists():
            for line in meta.read_text().splitlines():
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    props[k.strip()] = v.strip()
        stored_id = props.get("cluster.id")
        if stored_id and self.cluster_id and stored_id != self.cluster_id:
            raise MetadataError(104, f"data dir belongs to cluster {stored_id}, not {self.cluster_id}")
        if not self.cluster_id:
            self.cluster_id = stored_id or random_cluster_id()
        if not stored_id:
            _atomic_write(
                meta,
                f"#kafkapy\nversion=1\ncluster.id={self.cluster_id}\nnode.id={self.broker.node_id}\n",
            )
        path = self.data_dir / self.FILE
        if path.exists():
            image = json.loads(path.read_text())
            for t in image.get("topics", []):
                info = TopicInfo(
                    name=t["name"],
                    topic_id=uuid.UUID(t["topic_id"]),
                    partitions=[PartitionInfo(**p) for p in t["partitions"]],
                    configs=dict(t.get("configs", {})),
                )
                self._topics[info.name] = info
                self._by_id[info.topic_id] = info
            for name, configs in image.get("client_metrics", {}).items():
                self._client_metrics[str(name)] = {str(k): str(v) for k, v in configs.items()}
            for name, configs in image.get("group_configs", {}).items():
                self._group_configs[str(name)] = {str(k): str(v) for k, v in configs.items()}

    def _save(self) -> None:
        image = {
            "version": 1,
            "cluster_id": self.cluster_id,
            "topics": [
                {
                    "name": t.name,
                    "topic_id": str(t.topic_id),
                    "partitions": [
                        {
                            "index": p.index,
                            "leader": p.leader,
                            "replicas": p.replicas,
                            "isr": p.isr,
                            "leader_epoch": p.leader_epoch,
                            "partition_epoch": p.partition_epoch,
                        }
                        for p in t.partitions
                    ],
                    "configs": t.configs,
                }
                for t in self._topics.values()
            ],
            "client_metrics": self._client_metrics,
            "group_configs": self._group_configs,
        }
        try:
            _atomic_write(self.data_dir / self.FILE, json.dumps(image, indent=1))
        except OSError as exc:
            # a full or failing disk: the change is refused (the caller puts its memory back)
            log.error("metadata file not written", path=str(self.data_dir / self.FILE), error=exc.strerror or str(exc))
            raise MetadataError(
                ErrorCode.KAFKA_STORAGE_ERROR, f"the metadata file cannot be written: {exc.strerror or exc}"
            ) from exc

    # ------------------------------------------------------------------ reads

    @property
    def controller_id(self) -> int:
        return self.broker.node_id

    def brokers(self) -> list[BrokerInfo]:
        return [self.broker]

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return self.broker if node_id == self.broker.node_id else None

    def live_ids(self) -> set[int]:
        return {self.broker.node_id}

    supports_dynamic_broker_configs = False  # a single broker has no replication throttles to set

    def broker_configs(self, entity: str) -> dict[str, str]:
        """No dynamic broker configs on a single broker (they live in its config file)."""
        return {}

    async def set_broker_configs(self, entity: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        return False

    def group_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic group configs: group id -> the keys set."""
        return {name: dict(c) for name, c in self._group_configs.items()}

    async def set_group_configs(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace group `name`'s configs (none: delete them) if they are still `expected`."""
        if self._group_configs.get(name, {}) != expected:
            return False
        before = self._group_configs.get(name)
        if configs:
            self._group_configs[name] = dict(configs)
        else:
            self._group_configs.pop(name, None)
        try:
            self._save()
        except MetadataError:
            if before is None:
                self._group_configs.pop(name, None)
            else:
                self._group_configs[name] = before
            raise
        return True

    def client_metrics(self) -> dict[str, dict[str, str]]:
        """The client-metrics (KIP-714) config resources: name -> the keys set."""
        return {name: dict(c) for name, c in self._client_metrics.items()}

    async def set_client_metrics(self, name: str, configs: dict[str, str], expected: dict[str, str]) -> bool:
        """Replace resource `name`'s configs (none: delete it) if they are still `expected`."""
        if self._client_metrics.get(name, {}) != expected:
            return False
        before = self._client_metrics.get(name)
        if configs:
            self._client_metrics[name] = dict(configs)
        else:
            self._client_metrics.pop(name, None)
        try:
            self._save()
        except MetadataError:
            if before is None:
                self._client_metrics.pop(name, None)
            else:
                self._client_metrics[name] = before
            raise
        return True

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        info = self._topics.get(topic)
        if info is None or index >= len(info.partitions) or info.partitions[index].partition_epoch != partition_epoch:
            return None
        part = info.partitions[index]
        before = part.isr, part.partition_epoch
        part.isr, part.partition_epoch = list(isr), partition_epoch + 1
        try:
            self._save()
        except MetadataError:
            part.isr, part.partition_epoch = before
            raise
        return part

    def topics(self) -> Iterable[TopicInfo]:
        return self._topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._by_id.get(topic_id)

    # ---------------------------------------------------------------- changes
    # Each change is saved, then told to the listener before the call returns,
    # so the local logs exist when a create answers (as with etcd's watch).

    def _notify(self, changes: Changes) -> None:
        self.revision += 1
        changes.revision = self.revision
        if self.listener is not None:
            self.listener(changes)

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        check_new_topic(name, partitions, replication_factor, self._topics, len(self.brokers()))

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        assignment: dict[int, list[int]] | None = None,
    ) -> TopicInfo:
        return self.create_topic_now(name, partitions, replication_factor, configs)

    def create_topic_now(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str] | None = None
    ) -> TopicInfo:
        """Create a topic synchronously (a single broker's store has nobody to wait for)."""
        self.check_new_topic(name, partitions, replication_factor)
        node = self.broker.node_id
        info = TopicInfo(
            name=name,
            topic_id=random_uuid(),
            partitions=[PartitionInfo(i, node, [node], [node]) for i in range(partitions)],
            configs=dict(configs or {}),
        )
        self._topics[name] = info
        self._by_id[info.topic_id] = info
        try:
            self._save()
        except MetadataError:
            del self._topics[name], self._by_id[info.topic_id]
            raise
        log.info("topic created", topic=name, partitions=partitions, topic_id=str(info.topic_id))
        self._notify(Changes(0, topics_created=[info], partitions=[(name, p) for p in info.partitions]))
        return info

    async def delete_topic(self, name: str) -> TopicInfo:
        info = self._topics.pop(name, None)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        self._by_id.pop(info.topic_id, None)
        try:
            self._save()
        except MetadataError:
            self._topics[name], self._by_id[info.topic_id] = info, info
            raise
        log.info("topic deleted", topic=name)
        self._notify(Changes(0, topics_deleted=[info]))
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
        node = self.broker.node_id
        added = [PartitionInfo(i, node, [node], [node]) for i in range(current, total)]
        info.partitions.extend(added)
        try:
            self._save()
        except MetadataError:
            del info.partitions[current:]
            raise
        self._notify(Changes(0, partitions=[(name, p) for p in added]))
        return info

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        info = self._topics.get(name)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        before = info.configs
        info.configs = dict(configs)
        try:
            self._save()
        except MetadataError:
            info.configs = before
            raise
        self._notify(Changes(0, topics_reconfigured=[info]))

    async def elect_leader(self, topic: str, index: int, election_type: int) -> Outcome:
        """One broker leads everything already."""
        info = self._topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return Outcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return Outcome(ErrorCode.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")

    async def alter_reassignment(self, topic: str, index: int, target: list[int] | None) -> Outcome:
        """A single broker can only "move" a partition onto itself."""
        info = self._topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return Outcome(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        if target is None:
            return Outcome(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS)  # no message, as Kafka
        problem = check_target(target, {self.broker.node_id})
        if problem is not None:
            return Outcome(ErrorCode.INVALID_REPLICA_ASSIGNMENT, problem)
        return Outcome()  # already on this broker

    async def alter_reassignments(self, requests: list[tuple[str, int, list[int] | None]]) -> list[Outcome]:
        return [await self.alter_reassignment(t, i, target) for t, i, target in requests]

    def ensure_internal_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None:
        """Create an internal topic now if it does not exist (one broker: replication factor 1)."""
        if name not in self._topics:
            self.create_topic_now(name, partitions, 1, configs)

    def internal_replication_factor(self, configured: int, explicit: bool) -> int:
        return 1

    async def reserve_producer_ids(self, count: int) -> int:
        """First id of a fresh block of `count` producer ids, persisted before it is used."""
        from kafkapy.storage.checkpoint import read_checkpoint, write_checkpoint

        path = self.data_dir / PRODUCER_ID_FILE
        entries = read_checkpoint(path)  # CorruptLogError if damaged: never guess and reuse ids
        start = int(entries[0]) if entries else 0
        write_checkpoint(path, [str(start + count)], sync=True)
        return start

    async def close(self) -> None:
        return None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
