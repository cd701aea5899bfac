"""DirObjectStore and FileRemoteLogMetadataStore (tiered storage building blocks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kafkapy.storage.remote.dir_store import DirObjectStore
from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore, RemoteSegment, SegmentState
from kafkapy.storage.remote.object_store import ObjectNotFoundError, ObjectStoreError


def test_dir_store_put_get_list_delete(tmp_path: Path) -> None:
    store = DirObjectStore(tmp_path / "store")
    src = tmp_path / "src.bin"
    src.write_bytes(b"0123456789" + b"\0" * 100)  # a preallocated-looking tail

    async def body() -> None:
        await store.put_file("p/t-x/0/a.log", src, 10)
        await store.put_bytes("p/t-x/0/a.index", b"idx")
        await store.put_bytes("p/t-x/1/b.log", b"other")
        assert await store.get_range("p/t-x/0/a.log", 0) == b"0123456789"
        assert await store.get_range("p/t-x/0/a.log", 2, 5) == b"234"
        assert await store.get_range("p/t-x/0/a.log", 8, 100) == b"89"
        assert await store.list("p/t-x/0/") == [("p/t-x/0/a.index", 3), ("p/t-x/0/a.log", 10)]
        assert [k for k, _ in await store.list("p/t-x/")] == ["p/t-x/0/a.index", "p/t-x/0/a.log", "p/t-x/1/b.log"]
        assert [k for k, _ in await store.list("p/t-x/0/a.l")] == ["p/t-x/0/a.log"]
        assert await store.list("nothing/") == []
        await store.delete(["p/t-x/0/a.log", "p/t-x/0/missing"])
        with pytest.raises(ObjectNotFoundError):
            await store.get_range("p/t-x/0/a.log", 0)
        with pytest.raises(ObjectStoreError):
            await store.put_bytes("../escape", b"x")
        with pytest.raises(ObjectStoreError):
            await store.put_file("p/short", src, 1000)
        assert [k for k, _ in await store.list("")] == ["p/t-x/0/a.index", "p/t-x/1/b.log"]
        await store.close()

    asyncio.run(body())


def _seg(seg_id: str, start: int, end: int, state: SegmentState = "COPY_FINISHED") -> RemoteSegment:
    return RemoteSegment(
        "t",
        "tid",
        0,
        seg_id,
        start,
        end,
        1000 + start,
        100,
        ((0, start),),
        1,
        state,
        5,
    )


def test_metadata_store_round_trip(tmp_path: Path) -> None:
    d = tmp_path / "remote-log-metadata"

    async def body() -> None:
        ms = FileRemoteLogMetadataStore(d)
        assert await ms.segments("tid", 0) == []
        a, b = _seg("a", 0, 9), _seg("b", 10, 19, "COPY_STARTED")
        await ms.put(b)
        await ms.put(a)
        assert await ms.segments("tid", 0) == [a, b]
        b2 = b.with_state("COPY_FINISHED", 6)
        await ms.put(b2)
        again = FileRemoteLogMetadataStore(d)
        assert await again.segments("tid", 0) == [a, b2]
        assert await again.partitions() == [("tid", 0)]
        await again.remove(a)
        assert await FileRemoteLogMetadataStore(d).segments("tid", 0) == [b2]
        await again.delete_partition("tid", 0)
        assert await FileRemoteLogMetadataStore(d).segments("tid", 0) == []

    asyncio.run(body())


def test_segment_keys() -> None:
    s = _seg("abc", 42, 50)
    assert s.key("pre/", "log") == "pre/t-tid/0/00000000000000000042-abc.log"
    assert len(s.keys("")) == 6
