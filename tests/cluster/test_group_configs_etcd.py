"""Dynamic group configs (GROUP config resources) in etcd: one broker's store writes them with a
compare-and-swap, another broker's store sees them through its watch, deleting every key deletes
the etcd key; the single broker's metadata file keeps them over a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kafkapy.cluster.etcd_metadata import EtcdMetadata
from kafkapy.cluster.etcd_server import start_etcd
from kafkapy.cluster.metadata import BrokerInfo, EmbeddedMetadata
from kafkapy.local_cluster import wait_until


def test_group_configs_in_etcd(tmp_path: Path) -> None:
    server = start_etcd(tmp_path / "etcd")

    async def body() -> None:
        a = await EtcdMetadata.open(server.url, BrokerInfo(1, "127.0.0.1", 1), cluster_id="gc", data_dir=tmp_path / "a")
        b = await EtcdMetadata.open(server.url, BrokerInfo(2, "127.0.0.1", 2), cluster_id="gc", data_dir=tmp_path / "b")
        try:
            cfg = {"share.auto.offset.reset": "earliest"}
            assert await a.set_group_configs("g/1", cfg, {})
            assert not await a.set_group_configs("g/1", {}, {})  # not what is there any more: refused
            assert a.group_configs() == {"g/1": cfg}
            await asyncio.to_thread(
                wait_until, lambda: b.group_configs() == {"g/1": cfg}, 10, 0.05, "b sees the configs"
            )
            assert await b.set_group_configs("g/1", {}, cfg)  # every key gone: the group's key deleted
            await asyncio.to_thread(wait_until, lambda: a.group_configs() == {}, 10, 0.05, "a sees the delete")
            assert await a.client.get(a._key("config", "groups", "g%2F1")) is None
        finally:
            await a.close(deregister=False)
            await b.close(deregister=False)

    try:
        asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        server.stop()


def test_group_configs_in_the_single_broker_file(tmp_path: Path) -> None:
    md = EmbeddedMetadata(tmp_path, BrokerInfo(0, "127.0.0.1", 9092))
    assert asyncio.run(md.set_group_configs("g", {"share.record.lock.duration.ms": "15000"}, {}))
    again = EmbeddedMetadata(tmp_path, BrokerInfo(0, "127.0.0.1", 9092))
    assert again.group_configs() == {"g": {"share.record.lock.duration.ms": "15000"}}
