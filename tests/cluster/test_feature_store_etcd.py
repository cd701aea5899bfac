"""EtcdFeatureStore on a real etcd: two brokers' stores on one cluster prefix see each other's update
through the watch, the epoch is the key's revision and only grows, and of two updates from the same
epoch only one wins (compare-and-swap)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from kafkapy.cluster.etcd import EtcdClient
from kafkapy.cluster.etcd_server import EtcdServer, start_etcd
from kafkapy.cluster.features import EtcdFeatureStore


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path_factory.mktemp("etcd") / "data")
    yield server
    server.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "not seen in time"
        await asyncio.sleep(0.02)


def test_two_stores_one_prefix(etcd: EtcdServer) -> None:
    async def body() -> None:
        c1 = await EtcdClient.connect(etcd.url)
        c2 = await EtcdClient.connect(etcd.url)
        one = await EtcdFeatureStore.open(c1, "/kafkapy/features-test/")
        two = await EtcdFeatureStore.open(c2, "/kafkapy/features-test/")
        try:
            changed: list[int] = []
            two.listener = lambda: changed.append(two.level("group.version"))
            assert one.epoch == two.epoch == 0 and one.level("group.version") == 1
            assert await one.update({"group.version": 0}, 0)
            await _until(lambda: two.level("group.version") == 0)
            assert two.epoch == one.epoch > 0 and changed == [0]
            first = one.epoch
            # both from the same epoch: one wins, the other is told to read again
            results = await asyncio.gather(
                one.update({"group.version": 1}, first), two.update({"group.version": 1}, first)
            )
            assert sorted(results) == [False, True]
            await _until(lambda: one.epoch == two.epoch > first)
            assert one.level("group.version") == two.level("group.version") == 1
            again = await EtcdFeatureStore.open(c1, "/kafkapy/features-test/")  # a restarted broker
            assert (again.level("group.version"), again.epoch) == (1, one.epoch)
            await again.close()
        finally:
            await one.close()
            await two.close()
            await c1.close()
            await c2.close()

    asyncio.run(body())
