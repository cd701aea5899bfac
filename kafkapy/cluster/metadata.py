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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from kafkapy.protocol.uuids import random_cluster_id, random_uuid

log = structlog.get_logger(__name__)

MAX_TOPIC_NAME = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


class MetadataError(Exception):
    """A metadata change that cannot be made; `code` is a Kafka error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


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
        }
        _atomic_write(self.data_dir / self.FILE, json.dumps(image, indent=1))

    # ------------------------------------------------------------------ reads

    @property
    def controller_id(self) -> int:
        return self.broker.node_id

    def brokers(self) -> list[BrokerInfo]:
        return [self.broker]

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return self.broker if node_id == self.broker.node_id else None

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        info = self._topics.get(topic)
        if info is None or index >= len(info.partitions) or info.partitions[index].partition_epoch != partition_epoch:
            return None
        part = info.partitions[index]
        part.isr, part.partition_epoch = list(isr), partition_epoch + 1
        self._save()
        return part

    def topics(self) -> Iterable[TopicInfo]:
        return self._topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._by_id.get(topic_id)

    # ---------------------------------------------------------------- changes

    def check_new_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        check_new_topic(name, partitions, replication_factor, self._topics, len(self.brokers()))

    def create_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str] | None = None
    ) -> TopicInfo:
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
        self._save()
        log.info("topic created", topic=name, partitions=partitions, topic_id=str(info.topic_id))
        return info

    def delete_topic(self, name: str) -> TopicInfo:
        info = self._topics.pop(name, None)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        self._by_id.pop(info.topic_id, None)
        self._save()
        log.info("topic deleted", topic=name)
        return info

    def add_partitions(self, name: str, total: int) -> TopicInfo:
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
        info.partitions.extend(PartitionInfo(i, node, [node], [node]) for i in range(current, total))
        self._save()
        return info

    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        info = self._topics.get(name)
        if info is None:
            raise MetadataError(3, f"Topic '{name}' does not exist.")
        info.configs = dict(configs)
        self._save()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
