"""Waiting operations keyed by partition (the idea of Kafka's purgatory, for fetches).

A long-polling fetch registers one future under each partition it reads;
an event on a partition (an append, a high watermark or log start move, a
leadership change) completes the futures registered under that partition
only. A fetch over idle partitions therefore costs nothing while other
partitions are written to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

PartitionKey = tuple[str, int]


class PartitionWatchers:
    """Futures waiting on partitions; `wake(key)` completes those waiting on `key`."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # per partition, the waiting futures as dict keys (ordered, O(1) removal)
        self._waiting: dict[PartitionKey, dict[asyncio.Future[None], None]] = {}

    def watch(self, keys: Iterable[PartitionKey], future: asyncio.Future[None]) -> None:
        """Register `future` under every key; it completes at the first event on any of them."""
        waiting = self._waiting
        for key in keys:
            found = waiting.get(key)
            if found is None:
                waiting[key] = {future: None}
            else:
                found[future] = None

    def unwatch(self, keys: Iterable[PartitionKey], future: asyncio.Future[None]) -> None:
        """Remove `future` from the keys it still waits under (after it completed or timed out)."""
        waiting = self._waiting
        for key in keys:
            found = waiting.get(key)
            if found is not None and found.pop(future, 0) is None and not found:
                del waiting[key]

    def wake(self, key: PartitionKey) -> None:
        found = self._waiting.pop(key, None)
        if found is None:
            return
        for future in found:
            if not future.done():
                future.set_result(None)

    def __len__(self) -> int:
        """Registrations (a future waiting on n partitions counts n times)."""
        return sum(len(f) for f in self._waiting.values())
