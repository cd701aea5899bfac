"""Where the ACLs live: the metadata store, as Kafka keeps them in its metadata log.

- `FileAclStore` (a single broker): `acls.json` in the data dir, rewritten
  atomically (temporary file, fsync, rename) on every change.
- `EtcdAclStore` (a cluster): one etcd key per ACL under the cluster's
  prefix, `<prefix>acls/<digest of the binding>`; every broker loads them at
  start and follows its own watch of that prefix, so a change made through
  any broker applies on all of them as soon as their watch delivers it.

Both keep `authorizer` (kafkapy.security.acl.Authorizer) current: the
handlers' checks read it and never wait on the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from kafkapy.cluster.etcd import EtcdClient, KeyValue, Op, WatchEvent
from kafkapy.cluster.etcd_watch import follow_prefix, stop_task
from kafkapy.logging import get_logger
from kafkapy.security.acl import AclBinding, AclFilter, Authorizer

log = get_logger(__name__)


class AclStore(Protocol):
    authorizer: Authorizer

    async def create(self, bindings: list[AclBinding]) -> None:
        """Store the bindings (those already present stay as they are); raises on a store failure."""
        ...

    async def delete(self, filters: list[AclFilter]) -> list[list[AclBinding]]:
        """Delete every binding matching each filter; the bindings each filter deleted."""
        ...

    async def close(self) -> None: ...


def _matches(authorizer: Authorizer, filters: list[AclFilter]) -> list[list[AclBinding]]:
    everything = authorizer.bindings()
    return [[b for b in everything if f.matches(b)] for f in filters]


class FileAclStore:
    """The ACLs of a single broker, in `<data dir>/acls.json`."""

    FILE = "acls.json"

    def __init__(self, data_dir: Path, authorizer: Authorizer) -> None:
        self.path = data_dir / self.FILE
        self.authorizer = authorizer
        if self.path.exists():
            image = json.loads(self.path.read_text())
            authorizer.replace_all(AclBinding.from_json(d) for d in image.get("acls", []))
        log.info("acls loaded", count=len(authorizer), path=str(self.path))

    def _save(self) -> None:
        image = {"version": 1, "acls": [b.to_json() for b in self.authorizer.bindings()]}
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(image, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def create(self, bindings: list[AclBinding]) -> None:
        added = [b for b in bindings if self.authorizer.add(b)]
        if added:
            try:
                self._save()
            except OSError:
                for b in added:
                    self.authorizer.remove(b)
                raise

    async def delete(self, filters: list[AclFilter]) -> list[list[AclBinding]]:
        found = _matches(self.authorizer, filters)
        removed = [b for group in found for b in group if self.authorizer.remove(b)]
        if removed:
            try:
                self._save()
            except OSError:
                for b in removed:
                    self.authorizer.add(b)
                raise
        return found

    async def close(self) -> None:
        return None


def binding_key(prefix: str, b: AclBinding) -> bytes:
    """The etcd key of one ACL: a digest of its canonical JSON (one key per distinct binding)."""
    digest = hashlib.sha256(json.dumps(b.to_json(), sort_keys=True).encode()).hexdigest()[:32]
    return f"{prefix}{digest}".encode()


class EtcdAclStore:
    """The ACLs of a cluster, in etcd under `<cluster prefix>acls/`, followed through a watch."""

    def __init__(self, client: EtcdClient, cluster_prefix: str, authorizer: Authorizer) -> None:
        self.client = client
        self.prefix = f"{cluster_prefix}acls/"
        self.authorizer = authorizer
        self.revision = 0
        self._by_key: dict[bytes, AclBinding] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, client: EtcdClient, cluster_prefix: str, authorizer: Authorizer) -> EtcdAclStore:
        store = cls(client, cluster_prefix, authorizer)
        await store._load()
        store._task = asyncio.get_running_loop().create_task(store._watch())
        log.info("acls loaded", count=len(authorizer), revision=store.revision)
        return store

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        self._by_key = {}
        for kv in kvs:
            b = self._decode(kv)
            if b is not None:
                self._by_key[kv.key] = b
        self.authorizer.replace_all(self._by_key.values())
        self.revision = revision

    @staticmethod
    def _decode(kv: KeyValue) -> AclBinding | None:
        try:
            return AclBinding.from_json(json.loads(kv.value))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable acl key ignored", key=kv.key.decode(errors="replace"))
            return None

    async def _watch(self) -> None:
        await follow_prefix(self.client, self.prefix, lambda: self.revision, self._apply, self._load, "acl")

    def _apply(self, events: list[WatchEvent]) -> None:
        for ev in events:
            key = ev.kv.key
            if ev.type == "PUT":
                b = self._decode(ev.kv)
                if b is not None:
                    self._by_key[key] = b
                    self.authorizer.add(b)
            else:
                old = self._by_key.pop(key, None)
                if old is not None:
                    self.authorizer.remove(old)
            self.revision = max(self.revision, ev.kv.mod_revision)

    async def create(self, bindings: list[AclBinding]) -> None:
        fresh = {binding_key(self.prefix, b): b for b in bindings if b not in self.authorizer}
        if not fresh:
            return
        ops = [Op.put(k, json.dumps(b.to_json()).encode()) for k, b in fresh.items()]
        await self.client.txn([], ops)
        self._local(fresh.items(), add=True)

    async def delete(self, filters: list[AclFilter]) -> list[list[AclBinding]]:
        found = _matches(self.authorizer, filters)
        doomed = {binding_key(self.prefix, b): b for group in found for b in group}
        if doomed:
            await self.client.txn([], [Op.delete(k) for k in doomed])
            self._local(doomed.items(), add=False)
        return found

    def _local(self, items: Iterable[tuple[bytes, AclBinding]], *, add: bool) -> None:
        """Apply our own write at once (the watch brings the same change again, a no-op)."""
        for key, b in items:
            if add:
                self._by_key[key] = b
                self.authorizer.add(b)
            else:
                self._by_key.pop(key, None)
                self.authorizer.remove(b)

    async def close(self) -> None:
        await stop_task(self._task)
