"""ProducerIdManager: ids from durably reserved blocks, never handed out twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kafkapy.cluster.metadata import PRODUCER_ID_FILE, BrokerInfo, EmbeddedMetadata
from kafkapy.coordinator.producer_ids import ProducerIdManager, ProducerIdsUnavailableError
from tests.coordinator.test_coordinator import run_async


class Blocks:
    """A store handing out consecutive blocks, counting reservations."""

    def __init__(self) -> None:
        self.end = 0
        self.calls = 0

    async def reserve_producer_ids(self, count: int) -> int:
        await asyncio.sleep(0)
        self.calls += 1
        start, self.end = self.end, self.end + count
        return start


@run_async
async def test_generate_waits_for_nothing_once_a_block_is_ready() -> None:
    store = Blocks()
    mgr = ProducerIdManager(store, block_size=10)
    with pytest.raises(ProducerIdsUnavailableError):
        mgr.generate()  # nothing reserved yet: the reservation starts
    await mgr.ready()
    ids = [mgr.generate() for _ in range(6)]
    assert ids == [0, 1, 2, 3, 4, 5]
    await asyncio.sleep(0.01)  # past half the block: the next one was reserved ahead
    assert store.calls == 2
    ids += [mgr.generate() for _ in range(10)]
    assert ids == list(range(16))
    assert await mgr.next_id() == 16
    mgr.close()


@run_async
async def test_ids_are_not_reused_across_restarts(tmp_path: Path) -> None:
    me = BrokerInfo(0, "127.0.0.1", 9092)
    first = ProducerIdManager(EmbeddedMetadata(tmp_path, me, "c"))
    used = {await first.next_id() for _ in range(3)}
    first.close()
    second = ProducerIdManager(EmbeddedMetadata(tmp_path, me, "c"))
    again = await second.next_id()
    second.close()
    assert again not in used and again >= 1000  # the first block's rest is skipped, as in Kafka
    assert (tmp_path / PRODUCER_ID_FILE).exists()
