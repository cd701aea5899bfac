"""Feature levels (KIP-584): what this broker supports and what the cluster has finalized.

`FEATURES` is the one table, one line per feature: the levels kafkapy supports and the level a
cluster finalizes until UpdateFeatures changes it. A feature's levels mean what they mean in Kafka
(KIP-584, KIP-778, KIP-848, KIP-890, KIP-932, KIP-966, KIP-1071, KIP-853); a level is listed as
supported only once kafkapy really behaves as that level asks.

- `metadata.version`: in Kafka, the format of the KRaft metadata log and the inter-broker protocol.
  kafkapy has neither (its metadata lives in etcd or a JSON file), so no level changes anything in it;
  the one level it claims is the one of the release whose protocol it follows (Kafka 4.3's, 30, as
  Kafka 4.3.1 finalizes), min = max: kafkapy cannot behave as an older release would.
- `kraft.version`: 0, a static quorum (1 is KIP-853's dynamic voters, AddRaftVoter/RemoveRaftVoter,
  which kafkapy does not serve); kafkapy has no Raft quorum at all (DescribeQuorum: docs/compatibility.md).

Finalized levels live in the metadata store, like quotas and credentials:
- `FileFeatureStore` (a single broker): `<data dir>/features.json`, rewritten atomically;
- `EtcdFeatureStore` (a cluster): one key `<prefix>features/finalized`, followed through a watch so
  every broker sees an update at once; written by compare-and-swap on its mod revision.
Only levels set by UpdateFeatures are stored; any other feature is at its `FEATURES` default. The epoch
(ApiVersions' FinalizedFeaturesEpoch) only grows: the file's write count, or the etcd key's revision.

Handlers read a level as `ctx.state.features.level("transaction.version")`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kafkapy.cluster.etcd import Compare, EtcdClient, KeyValue, Op, WatchEvent
from kafkapy.cluster.etcd_watch import follow_prefix, stop_task
from kafkapy.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    min_version: int  # supported levels, inclusive
    max_version: int
    default: int  # finalized on a cluster where UpdateFeatures never set it


# fmt: off
FEATURES: tuple[Feature, ...] = (
    Feature("metadata.version", 30, 30, 30),  # no KRaft log: the level of the protocol followed (above)
    Feature("kraft.version", 0, 0, 0),  # no Raft quorum, no dynamic voters
    Feature("transaction.version", 0, 2, 2),  # 2: KIP-890 part 2 (transactions v2, an epoch bump per end)
    Feature("group.version", 0, 1, 1),  # 1: KIP-848 consumer groups
    Feature("share.version", 0, 1, 1),  # 1: share groups (KIP-932)
    Feature("streams.version", 0, 1, 1),  # 1: Streams groups (KIP-1071)
    Feature("eligible.leader.replicas.version", 0, 0, 0),  # no ELR (KIP-966)
)
# fmt: on

METADATA_VERSION = "metadata.version"
KRAFT_VERSION = "kraft.version"


def feature(name: str) -> Feature | None:
    for f in FEATURES:
        if f.name == name:
            return f
    return None


def defaults() -> dict[str, int]:
    return {f.name: f.default for f in FEATURES}


class FeatureStore(Protocol):
    listener: Callable[[], None] | None  # called after the finalized levels changed

    def level(self, name: str) -> int:
        """The finalized level of `name` (0 for a feature kafkapy does not know)."""
        ...

    def finalized(self) -> dict[str, int]:
        """Every feature's finalized level, 0s included."""
        ...

    @property
    def epoch(self) -> int: ...

    async def update(self, levels: dict[str, int], expected_epoch: int) -> bool:
        """Set these features' levels at once if the epoch is still `expected_epoch`; False if another
        update came first (read again, check again, retry)."""
        ...

    async def close(self) -> None: ...


class _Memory:
    def __init__(self) -> None:
        self.overrides: dict[str, int] = {}  # levels UpdateFeatures set
        self._epoch = 0
        self.listener: Callable[[], None] | None = None

    def level(self, name: str) -> int:
        level = self.overrides.get(name)
        if level is not None:
            return level
        f = feature(name)
        return f.default if f is not None else 0

    def finalized(self) -> dict[str, int]:
        return {f.name: self.level(f.name) for f in FEATURES}

    @property
    def epoch(self) -> int:
        return self._epoch

    def _set(self, overrides: dict[str, int], epoch: int) -> None:
        self.overrides = _usable(overrides)
        self._epoch = epoch
        if self.listener is not None:
            self.listener()


def _usable(levels: dict[str, int]) -> dict[str, int]:
    """Stored levels this broker supports; another is logged and its default used (a store written by a
    kafkapy that supported more)."""
    result: dict[str, int] = {}
    for name, level in levels.items():
        f = feature(name)
        if f is not None and f.min_version <= level <= f.max_version:
            result[name] = level
        else:
            log.warning("finalized feature level not supported here; default used", feature=name, level=level)
    return result


def _parse(raw: bytes) -> dict[str, int]:
    data = json.loads(raw)
    return {str(k): int(v) for k, v in data.get("levels", {}).items()}


class MemoryFeatureStore(_Memory):
    """Defaults only, nothing persisted: a broker's services before `start` opens the real store."""

    async def update(self, levels: dict[str, int], expected_epoch: int) -> bool:
        if expected_epoch != self._epoch:
            return False
        self._set({**self.overrides, **levels}, self._epoch + 1)
        return True

    async def close(self) -> None:
        return None


class FileFeatureStore(_Memory):
    FILE = "features.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = data_dir / self.FILE
        if self.path.exists():
            raw = self.path.read_bytes()
            self._set(_parse(raw), int(json.loads(raw).get("epoch", 0)))
            log.info("finalized features loaded", levels=self.overrides, epoch=self._epoch, path=str(self.path))

    async def update(self, levels: dict[str, int], expected_epoch: int) -> bool:
        if expected_epoch != self._epoch:
            return False
        merged = {**self.overrides, **levels}
        epoch = self._epoch + 1
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"version": 1, "epoch": epoch, "levels": dict(sorted(merged.items()))}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # raises OSError before anything changes in memory
        self._set(merged, epoch)
        return True

    async def close(self) -> None:
        return None


class EtcdFeatureStore(_Memory):
    def __init__(self, client: EtcdClient, cluster_prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = f"{cluster_prefix}features/"
        self.key = f"{self.prefix}finalized".encode()
        self.revision = 0  # the watch's progress (the epoch is the key's own mod revision)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, client: EtcdClient, cluster_prefix: str) -> EtcdFeatureStore:
        store = cls(client, cluster_prefix)
        await store._load()
        store._task = asyncio.get_running_loop().create_task(store._watch())
        log.info("finalized features loaded", levels=store.overrides, epoch=store.epoch)
        return store

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        self.revision = revision
        found = [kv for kv in kvs if kv.key == self.key]
        if found:
            self._take(found[0])
        elif self._epoch:
            self._set({}, 0)

    def _take(self, kv: KeyValue) -> None:
        if kv.mod_revision <= self._epoch:
            return
        try:
            levels = _parse(kv.value)
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable finalized features key ignored", key=kv.key.decode(errors="replace"))
            return
        self._set(levels, kv.mod_revision)

    async def _watch(self) -> None:
        await follow_prefix(self.client, self.prefix, lambda: self.revision, self._apply, self._load, "features")

    def _apply(self, events: list[WatchEvent]) -> None:
        for ev in events:
            if ev.kv.key == self.key and ev.type == "PUT":
                self._take(ev.kv)
            self.revision = max(self.revision, ev.kv.mod_revision)

    async def update(self, levels: dict[str, int], expected_epoch: int) -> bool:
        if expected_epoch != self._epoch:
            return False
        merged = {**self.overrides, **levels}
        value = json.dumps({"version": 1, "levels": dict(sorted(merged.items()))}).encode()
        res = await self.client.txn([Compare.mod_revision(self.key, "=", expected_epoch)], [Op.put(self.key, value)])
        if not res.succeeded:
            return False
        if res.revision > self._epoch:  # our own write at once; the watch brings it again (a no-op)
            self._set(merged, res.revision)
        return True

    async def close(self) -> None:
        await stop_task(self._task)
