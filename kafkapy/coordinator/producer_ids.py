"""Producer ids for idempotent and transactional producers.

Ids are handed out in memory from blocks the metadata store reserves
durably (`reserve_producer_ids`): the embedded store writes the block's end
to `<data dir>/producer-id-block.checkpoint` (fsynced) before it returns,
etcd reserves it with a compare-and-swap, so an id is never handed out
twice, across restarts or brokers (a restart skips the unused rest of a
block, as Kafka does). The next block is reserved in the background once
half of the current one is used, so a request rarely waits for one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from kafkapy.logging import get_logger

log = get_logger(__name__)

BLOCK_SIZE = 1000


class ProducerIdSource(Protocol):
    """The metadata store's side (`kafkapy.cluster.view.MetadataStore` is one)."""

    async def reserve_producer_ids(self, count: int) -> int:
        """First id of a fresh, durably reserved block of `count` ids."""
        ...


class ProducerIdsUnavailableError(Exception):
    """No reserved producer id is left yet (a block is being reserved): retriable."""


@dataclass(slots=True)
class ProducerIdManager:
    """Hands out producer ids from durably reserved blocks."""

    metadata: ProducerIdSource
    block_size: int = BLOCK_SIZE
    _next: int = 0
    _end: int = 0  # exclusive end of the block in use
    _ahead: tuple[int, int] | None = None  # the next block, reserved already
    _reserving: asyncio.Task[None] | None = None

    def generate(self) -> int:
        """The next id; ProducerIdsUnavailableError when none is reserved yet (one is being reserved)."""
        if self._next >= self._end:
            if self._ahead is None:
                self._reserve_ahead()
                raise ProducerIdsUnavailableError("no producer id block reserved yet")
            (self._next, self._end), self._ahead = self._ahead, None
        pid = self._next
        self._next += 1
        if self._ahead is None and self._end - self._next < self.block_size // 2:
            self._reserve_ahead()
        return pid

    async def ready(self) -> None:
        """Wait until `generate` has an id to give (errors of the store propagate)."""
        while self._next >= self._end and self._ahead is None:
            self._reserve_ahead()
            assert self._reserving is not None
            await asyncio.shield(self._reserving)

    async def next_id(self) -> int:
        await self.ready()
        return self.generate()

    def close(self) -> None:
        if self._reserving is not None:
            self._reserving.cancel()

    def _reserve_ahead(self) -> None:
        if self._reserving is None or self._reserving.done():
            self._reserving = asyncio.get_running_loop().create_task(self._reserve())
            self._reserving.add_done_callback(_log_failure)

    async def _reserve(self) -> None:
        start = await self.metadata.reserve_producer_ids(self.block_size)
        self._ahead = (start, start + self.block_size)
        log.info("producer id block reserved", first=start, end=start + self.block_size)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.warning("producer id block not reserved; retried on the next request", error=str(e))
