"""SCRAM credentials in the metadata store: salted, never the password.

- `FileScramStore` (a single broker): `<data dir>/scram-credentials.json`,
  rewritten atomically (temporary file, fsync, rename) on each change.
- `EtcdScramStore` (a cluster): one key per user and mechanism,
  `<prefix>scram/<mechanism>/<quoted user>`, loaded at start and followed
  through a watch, so a credential altered through any broker is used by all.

Both keep the credentials in memory for `get`, which authentication calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kafkapy.cluster.etcd import EtcdClient, KeyValue, Op, WatchEvent
from kafkapy.cluster.etcd_watch import follow_prefix, stop_task
from kafkapy.logging import get_logger
from kafkapy.security.scram import MECHANISMS, ScramCredential

log = get_logger(__name__)


@dataclass(slots=True, frozen=True)
class Upsert:
    user: str
    mechanism: str
    credential: ScramCredential


def credential_to_json(c: ScramCredential) -> dict[str, Any]:
    enc = base64.b64encode
    return {
        "salt": enc(c.salt).decode(),
        "stored_key": enc(c.stored_key).decode(),
        "server_key": enc(c.server_key).decode(),
        "iterations": c.iterations,
    }


def credential_from_json(d: dict[str, Any]) -> ScramCredential:
    dec = base64.b64decode
    return ScramCredential(dec(d["salt"]), dec(d["stored_key"]), dec(d["server_key"]), int(d["iterations"]))


class ScramStore(Protocol):
    def get(self, mechanism: str, user: str) -> ScramCredential | None: ...

    def users(self) -> dict[str, dict[str, int]]:
        """user -> {mechanism: iterations}"""
        ...

    async def alter(self, upserts: list[Upsert], deletions: list[tuple[str, str]]) -> None:
        """Apply all changes at once: upserts and (user, mechanism) deletions."""
        ...

    async def close(self) -> None: ...


class _Memory:
    def __init__(self) -> None:
        self.creds: dict[tuple[str, str], ScramCredential] = {}  # (user, mechanism) -> credential

    def get(self, mechanism: str, user: str) -> ScramCredential | None:
        return self.creds.get((user, mechanism))

    def users(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for (user, mechanism), cred in sorted(self.creds.items()):
            result.setdefault(user, {})[mechanism] = cred.iterations
        return result


class FileScramStore(_Memory):
    FILE = "scram-credentials.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = data_dir / self.FILE
        if self.path.exists():
            image = json.loads(self.path.read_text())
            for item in image.get("credentials", []):
                self.creds[(item["user"], item["mechanism"])] = credential_from_json(item)
        log.info("scram credentials loaded", count=len(self.creds), path=str(self.path))

    def _save(self, creds: dict[tuple[str, str], ScramCredential]) -> None:
        items = [
            {"user": user, "mechanism": mech, **credential_to_json(c)} for (user, mech), c in sorted(creds.items())
        ]
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"version": 1, "credentials": items}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def alter(self, upserts: list[Upsert], deletions: list[tuple[str, str]]) -> None:
        creds = dict(self.creds)
        for user, mechanism in deletions:
            creds.pop((user, mechanism), None)
        for u in upserts:
            creds[(u.user, u.mechanism)] = u.credential
        self._save(creds)  # raises OSError before anything changes in memory
        self.creds = creds

    async def close(self) -> None:
        return None


class EtcdScramStore(_Memory):
    def __init__(self, client: EtcdClient, cluster_prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = f"{cluster_prefix}scram/"
        self.revision = 0
        self._task: asyncio.Task[None] | None = None

    def key(self, user: str, mechanism: str) -> bytes:
        return f"{self.prefix}{mechanism}/{urllib.parse.quote(user, safe='')}".encode()

    def _parse_key(self, key: bytes) -> tuple[str, str] | None:
        rest = key.decode(errors="replace")[len(self.prefix) :]
        mechanism, sep, quoted = rest.partition("/")
        if not sep or mechanism not in MECHANISMS:
            return None
        return urllib.parse.unquote(quoted), mechanism

    @classmethod
    async def open(cls, client: EtcdClient, cluster_prefix: str) -> EtcdScramStore:
        store = cls(client, cluster_prefix)
        await store._load()
        store._task = asyncio.get_running_loop().create_task(store._watch())
        log.info("scram credentials loaded", count=len(store.creds), revision=store.revision)
        return store

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        creds: dict[tuple[str, str], ScramCredential] = {}
        for kv in kvs:
            decoded = self._decode(kv)
            if decoded is not None:
                creds[decoded[0]] = decoded[1]
        self.creds, self.revision = creds, revision

    def _decode(self, kv: KeyValue) -> tuple[tuple[str, str], ScramCredential] | None:
        where = self._parse_key(kv.key)
        try:
            if where is None:
                raise ValueError("bad key")
            return where, credential_from_json(json.loads(kv.value))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable scram credential key ignored", key=kv.key.decode(errors="replace"))
            return None

    async def _watch(self) -> None:
        await follow_prefix(
            self.client, self.prefix, lambda: self.revision, self._apply, self._load, "scram credential"
        )

    def _apply(self, events: list[WatchEvent]) -> None:
        for ev in events:
            if ev.type == "PUT":
                decoded = self._decode(ev.kv)
                if decoded is not None:
                    self.creds[decoded[0]] = decoded[1]
            else:
                where = self._parse_key(ev.kv.key)
                if where is not None:
                    self.creds.pop(where, None)
            self.revision = max(self.revision, ev.kv.mod_revision)

    async def alter(self, upserts: list[Upsert], deletions: list[tuple[str, str]]) -> None:
        ops = [Op.delete(self.key(user, mech)) for user, mech in deletions]
        ops += [
            Op.put(self.key(u.user, u.mechanism), json.dumps(credential_to_json(u.credential)).encode())
            for u in upserts
        ]
        if not ops:
            return
        await self.client.txn([], ops)
        for user, mech in deletions:  # our own write at once; the watch brings it again (a no-op)
            self.creds.pop((user, mech), None)
        for u in upserts:
            self.creds[(u.user, u.mechanism)] = u.credential

    async def close(self) -> None:
        await stop_task(self._task)
