"""Delegation tokens in the metadata store (their HMACs are never stored).

- `FileTokenStore` (a single broker): `<data dir>/delegation-tokens.json`,
  rewritten atomically (temporary file, fsync, rename) on each change.
- `EtcdTokenStore` (a cluster): one key per token, `<prefix>delegation_token/<id>`,
  loaded at start and followed through a watch, so a token created, renewed or
  expired through any broker is seen by all.

Both keep the tokens in memory for `get`, which authentication calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from pathlib import Path
from typing import Protocol

from kafkapy.cluster.etcd import EtcdClient, KeyValue, Op, WatchEvent
from kafkapy.cluster.etcd_watch import follow_prefix, stop_task
from kafkapy.logging import get_logger
from kafkapy.security.delegation_token import TokenInfo

log = get_logger(__name__)


class TokenStore(Protocol):
    def get(self, token_id: str) -> TokenInfo | None: ...

    def tokens(self) -> list[TokenInfo]: ...

    async def put(self, token: TokenInfo) -> None:
        """Create or replace a token."""
        ...

    async def remove(self, token_ids: list[str]) -> None: ...

    async def close(self) -> None: ...


class _Memory:
    def __init__(self) -> None:
        self.by_id: dict[str, TokenInfo] = {}

    def get(self, token_id: str) -> TokenInfo | None:
        return self.by_id.get(token_id)

    def tokens(self) -> list[TokenInfo]:
        return sorted(self.by_id.values(), key=lambda t: (t.issue_ms, t.token_id))


class FileTokenStore(_Memory):
    FILE = "delegation-tokens.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = data_dir / self.FILE
        if self.path.exists():
            image = json.loads(self.path.read_text())
            for item in image.get("tokens", []):
                token = TokenInfo.from_json(item)
                self.by_id[token.token_id] = token
        log.info("delegation tokens loaded", count=len(self.by_id), path=str(self.path))

    def _save(self, by_id: dict[str, TokenInfo]) -> None:
        items = [t.to_json() for _, t in sorted(by_id.items())]
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"version": 1, "tokens": items}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def put(self, token: TokenInfo) -> None:
        by_id = {**self.by_id, token.token_id: token}
        self._save(by_id)  # raises OSError before anything changes in memory
        self.by_id = by_id

    async def remove(self, token_ids: list[str]) -> None:
        by_id = {k: v for k, v in self.by_id.items() if k not in token_ids}
        if len(by_id) != len(self.by_id):
            self._save(by_id)
            self.by_id = by_id

    async def close(self) -> None:
        return None


class EtcdTokenStore(_Memory):
    def __init__(self, client: EtcdClient, cluster_prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = f"{cluster_prefix}delegation_token/"
        self.revision = 0
        self._task: asyncio.Task[None] | None = None

    def key(self, token_id: str) -> bytes:
        return f"{self.prefix}{urllib.parse.quote(token_id, safe='')}".encode()

    @classmethod
    async def open(cls, client: EtcdClient, cluster_prefix: str) -> EtcdTokenStore:
        store = cls(client, cluster_prefix)
        await store._load()
        store._task = asyncio.get_running_loop().create_task(store._watch())
        log.info("delegation tokens loaded", count=len(store.by_id), revision=store.revision)
        return store

    async def _load(self) -> None:
        kvs, revision = await self.client.get_prefix(self.prefix.encode())
        by_id: dict[str, TokenInfo] = {}
        for kv in kvs:
            token = self._decode(kv)
            if token is not None:
                by_id[token.token_id] = token
        self.by_id, self.revision = by_id, revision

    def _decode(self, kv: KeyValue) -> TokenInfo | None:
        try:
            return TokenInfo.from_json(json.loads(kv.value))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable delegation token key ignored", key=kv.key.decode(errors="replace"))
            return None

    async def _watch(self) -> None:
        await follow_prefix(
            self.client, self.prefix, lambda: self.revision, self._apply, self._load, "delegation token"
        )

    def _apply(self, events: list[WatchEvent]) -> None:
        for ev in events:
            if ev.type == "PUT":
                token = self._decode(ev.kv)
                if token is not None:
                    self.by_id[token.token_id] = token
            else:
                quoted = ev.kv.key.decode(errors="replace")[len(self.prefix) :]
                self.by_id.pop(urllib.parse.unquote(quoted), None)
            self.revision = max(self.revision, ev.kv.mod_revision)

    async def put(self, token: TokenInfo) -> None:
        await self.client.put(self.key(token.token_id), json.dumps(token.to_json()).encode())
        self.by_id[token.token_id] = token  # our own write at once; the watch brings it again

    async def remove(self, token_ids: list[str]) -> None:
        if not token_ids:
            return
        await self.client.txn([], [Op.delete(self.key(t)) for t in token_ids])
        for t in token_ids:
            self.by_id.pop(t, None)

    async def close(self) -> None:
        await stop_task(self._task)
