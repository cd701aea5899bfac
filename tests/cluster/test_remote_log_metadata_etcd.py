"""EtcdRemoteLogMetadataStore on a real etcd: two brokers' stores on one cluster prefix see the same
segments, state changes are compare-and-swap (a finished copy whose entry another broker cleaned up
is refused, no state goes back), partitions are listed and deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kafkapy.cluster.etcd import EtcdClient
from kafkapy.cluster.etcd_server import EtcdServer, start_etcd
from kafkapy.cluster.remote_log_metadata import EtcdRemoteLogMetadataStore, RemoteLogMetadataConflict
from kafkapy.storage.remote.metadata import RemoteSegment

PREFIX = "/kafkapy/rlmm-test/"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path_factory.mktemp("etcd") / "data")
    yield server
    server.stop()


def segment(sid: str, start: int, end: int, partition: int = 0) -> RemoteSegment:
    return RemoteSegment("t", "tid", partition, sid, start, end, 1000, 100, ((0, start),), broker_id=1)


def test_shared_segments_and_compare_and_swap(etcd: EtcdServer) -> None:
    async def body() -> None:
        c1 = await EtcdClient.connect(etcd.url)
        c2 = await EtcdClient.connect(etcd.url)
        one = EtcdRemoteLogMetadataStore(c1, PREFIX)
        two = EtcdRemoteLogMetadataStore(c2, PREFIX)
        try:
            a, b = segment("a", 0, 9), segment("b", 10, 19)
            await one.put(b)
            await one.put(a)
            await one.put(a.with_state("COPY_FINISHED", 5))
            assert [(s.segment_id, s.state) for s in await two.segments("tid", 0)] == [
                ("a", "COPY_FINISHED"),
                ("b", "COPY_STARTED"),
            ]
            # broker 2 (a new leader) cleans up b, unfinished; broker 1's late COPY_FINISHED is refused
            await two.put(b.with_state("DELETE_STARTED", 6))
            with pytest.raises(RemoteLogMetadataConflict):
                await one.put(b.with_state("COPY_FINISHED", 7))
            await two.remove(b)
            with pytest.raises(RemoteLogMetadataConflict):
                await one.put(b.with_state("COPY_FINISHED", 8))
            with pytest.raises(RemoteLogMetadataConflict):  # no going back
                await one.put(a.with_state("COPY_STARTED", 9))
            # concurrent identical transitions: both succeed (idempotent), the entry is one
            c = segment("c", 20, 29)
            await one.put(c)
            await asyncio.gather(one.put(c.with_state("COPY_FINISHED", 10)), two.put(c.with_state("COPY_FINISHED", 10)))
            assert [s.segment_id for s in await one.segments("tid", 0)] == ["a", "c"]
            await one.put(segment("d", 0, 4, partition=3))
            assert await two.partitions() == [("tid", 0), ("tid", 3)]
            await two.delete_partition("tid", 0)
            assert await one.segments("tid", 0) == []
            assert await one.partitions() == [("tid", 3)]
        finally:
            await c1.close()
            await c2.close()

    asyncio.run(body())
