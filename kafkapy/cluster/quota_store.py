"""Client quotas in the metadata store, applied by every broker.

- `FileQuotaStore` (a single broker): `<data dir>/client-quotas.json`, rewritten atomically
  (temporary file, fsync, rename) on each change.
- `EtcdQuotaStore` (a cluster): one key per entity, `<prefix>quotas/<type>=<name>[&<type>=<name>]`
  (names percent-encoded, `<default>` for a type's default), its value the entity's quotas as JSON;
  loaded at start and followed through a watch, so a quota altered through any broker is enforced by all.

Both keep the quotas in memory and call `listener` with the whole image after every change (the
broker's `QuotaManager.update`).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kafkapy.cluster.etcd import EtcdClient, KeyValue, Op, WatchEvent
from kafkapy.cluster.etcd_watch import follow_prefix, stop_task
from kafkapy.logging import get_logger

log = get_logger(__name__)

# a quota entity: its (type, name) pairs sorted by type; name None is the type's <default>
Entity = tuple[tuple[str, str | None], ...]

Image = dict[Entity, dict[str, float]]
DEFAULT = "<default>"
_TXN_OPS = 100  # below etcd's 128 operations per transaction


def encode_entity(entity: Entity) -> str:
    return "&".join(
        f"{urllib.parse.quote(k, safe='')}={DEFAULT if v is None else urllib.parse.quote(v, safe='')}"
        for k, v in entity
    )


def decode_entity(text: str) -> Entity:
    pairs: list[tuple[str, str | None]] = []
    for part in text.split("&"):
        k, sep, v = part.partition("=")
        if not sep:
            raise ValueError(f"bad quota entity {text!r}")
        pairs.append((urllib.parse.unquote(k), None if v == DEFAULT else urllib.parse.unquote(v)))
    return tuple(sorted(pairs))


class QuotaStore(Protocol):
    listener: Callable[[Image], None] | None

    def quotas(self) -> Image: ...

    async def alter(self, changes: Image) -> None:
        """Set each entity's quotas to the map given (an empty map removes the entity)."""
        ...

    async def close(self) -> None: ...


class _Memory:
    def __init__(self) -> None:
        self.image: Image = {}
        self.listener: Callable[[Image], None] | None = None

    def quotas(self) -> Image:
        return self.image

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener(self.image)


def _merged(image: Image, changes: Image) -> Image:
    result = dict(image)
    for entity, values in changes.items():
        if values:
            result[entity] = dict(values)
        else:
            result.pop(entity, None)
    return result


class FileQuotaStore(_Memory):
    FILE = "client-quotas.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = data_dir / self.FILE
        if self.path.exists():
            for item in json.loads(self.path.read_text()).get("quotas", []):
                self.image[decode_entity(item["entity"])] = {k: float(v) for k, v in item["values"].items()}
        if self.image:
            log.info("client quotas loaded", count=len(self.image), path=str(self.path))

    async def alter(self, changes: Image) -> None:
        image = _merged(self.image, changes)
        items = [{"entity": encode_entity(e), "values": v} for e, v in sorted(image.items(), key=lambda ev: str(ev[0]))]
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"version": 1, "quotas": items}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # raises OSError before anything changes in memory
        self.image = image
        self._changed()

    async def close(self) -> None:
        return None


class EtcdQuotaStore(_Memory):
    def __init__(self, client: EtcdClient, cluster_prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = f"{cluster_prefix}quotas/"
        self.revision = 0
        self._task: asyncio.Task[None] | None = None

    def key(self, entity: Entity) -> bytes:
        return f"{self.prefix}{encode_entity(entity)}".encode()

    @classmethod
    async def open(cls, client: EtcdClient, cluster_prefix: str) -> EtcdQuotaStore:
        store = cls(client, cluster_prefix)
        await store._load()
        store._task = asyncio.get_running_loop().create_task(store._watch())
        log.info("client quotas loaded", count=len(store.image), revision=store.revision)
        return store

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        image: Image = {}
        for kv in kvs:
            decoded = self._decode(kv)
            if decoded is not None:
                image[decoded[0]] = decoded[1]
        self.image, self.revision = image, revision
        self._changed()

    def _decode(self, kv: KeyValue) -> tuple[Entity, dict[str, float]] | None:
        try:
            entity = decode_entity(kv.key.decode()[len(self.prefix) :])
            values = {str(k): float(v) for k, v in json.loads(kv.value).items()}
            return entity, values
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable client quota key ignored", key=kv.key.decode(errors="replace"))
            return None

    async def _watch(self) -> None:
        await follow_prefix(self.client, self.prefix, lambda: self.revision, self._apply, self._load, "client quota")

    def _apply(self, events: list[WatchEvent]) -> None:
        image = dict(self.image)
        for ev in events:
            if ev.type == "PUT":
                decoded = self._decode(ev.kv)
                if decoded is not None:
                    image[decoded[0]] = decoded[1]
            else:
                try:
                    image.pop(decode_entity(ev.kv.key.decode()[len(self.prefix) :]), None)
                except ValueError:
                    pass
            self.revision = max(self.revision, ev.kv.mod_revision)
        self.image = image
        self._changed()

    async def alter(self, changes: Image) -> None:
        """One etcd transaction per 100 entities (AlterClientQuotas' entries are independent in Kafka
        too: each has its own result)."""
        ops = [Op.put(self.key(e), json.dumps(v).encode()) if v else Op.delete(self.key(e)) for e, v in changes.items()]
        for i in range(0, len(ops), _TXN_OPS):
            await self.client.txn([], ops[i : i + _TXN_OPS])
        self.image = _merged(self.image, changes)  # our own write at once; the watch brings it again
        self._changed()

    async def close(self) -> None:
        await stop_task(self._task)
