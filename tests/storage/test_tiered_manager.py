"""RemoteLogManager over a DirObjectStore: copy, local retention, remote reads, expiry, ListOffsets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kafkapy.protocol.records import ControlRecordType, build_batch, build_control_batch
from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import OffsetMovedToTieredStorageError
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.remote.dir_store import DirObjectStore
from kafkapy.storage.remote.manager import LruCache, RemoteLogManager, RemoteLogSettings, Throttle
from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore
from kafkapy.storage.remote.object_store import ObjectStoreError
from tests.storage.helpers import make_batch, parse_batches

TID = "topicid"


def txn_batch(pid: int, seq: int, n: int) -> bytearray:
    recs: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]] = [
        (None, b"%d-%d" % (pid, seq + i), [], None) for i in range(n)
    ]
    return bytearray(build_batch(recs, producer_id=pid, producer_epoch=0, base_sequence=seq, is_transactional=True))


def marker(pid: int, commit: bool) -> bytearray:
    ctype = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    return bytearray(build_control_batch(ctype, producer_id=pid, producer_epoch=0, coordinator_epoch=0, timestamp=1))


def tiered_config(**kw: object) -> LogConfig:
    base: dict[str, object] = dict(
        segment_bytes=2048,
        index_interval_bytes=256,
        remote_storage_enable=True,
        local_retention_bytes=0,
        retention_ms=-1,
    )
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def fill(log: PartitionLog, batches: int, per: int = 5, ts0: int = 1000) -> list[bytes]:
    """Append `batches` batches (timestamps ts0, ts0+10, ...); returns their bytes as stored."""
    start = log.log_end_offset
    for i in range(batches):
        log.append(make_batch(per, pad=20, timestamp=ts0 + 10 * i), leader_epoch=0)
    data = b"".join(log.read_bytes(s.base_offset, 1 << 30) for s in log.segments if s.next_offset > start)
    out = []
    pos = 0
    for _, _, size in parse_batches(data):
        out.append(data[pos : pos + size])
        pos += size
    return out


def manager(tmp_path: Path, store: object | None = None, **settings: object) -> RemoteLogManager:
    return RemoteLogManager(
        store or DirObjectStore(tmp_path / "remote"),  # type: ignore[arg-type]
        FileRemoteLogMetadataStore(tmp_path / "data" / "remote-log-metadata"),
        1,
        RemoteLogSettings(prefix="kp/", **settings),  # type: ignore[arg-type]
    )


async def read_everything(log: PartitionLog, mgr: RemoteLogManager, start: int, max_bytes: int = 700) -> list[bytes]:
    """Batches from `start` to the high watermark, remote first then local, as a consumer would."""
    out: list[bytes] = []
    off = start
    while off < log.high_watermark:
        try:
            data = log.read_bytes(off, max_bytes, max_offset=log.high_watermark)
        except OffsetMovedToTieredStorageError:
            got = await mgr.read(log, TID, off, max_bytes, log.high_watermark, True)
            assert got, off
            data = got
        pos = 0
        batches = parse_batches(data)
        assert batches, off
        for _, last, size in batches:
            out.append(data[pos : pos + size])
            pos += size
            off = last + 1
    return out


def test_copy_local_retention_and_read_across_remote_and_local(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    batches = fill(log, 60)
    mgr = manager(tmp_path)

    async def body() -> None:
        nsegs = len(log.segments)
        assert nsegs > 5
        log_sizes = [seg.size for seg in log.segments]
        assert await mgr.copy_once(log, TID) == nsegs - 1
        assert await mgr.copy_once(log, TID) == 0  # nothing new
        active_base = log.segments[-1].base_offset
        assert log.remote_copied_up_to == active_base - 1 == mgr.highest_copied_offset(TID, 0)
        assert mgr.remote_segment_count(TID, 0) == nsegs - 1
        assert mgr.remote_size(TID, 0) == sum(s.size for s in log.segments[:-1])
        # the remote .log is the local file's bytes
        first = log.segments[0]
        seg = (await mgr.metadata.segments(TID, 0))[0]
        assert seg.state == "COPY_FINISHED" and seg.start_offset == 0
        remote = await mgr.store.get_range(seg.key("kp/", "log"), 0)
        assert remote == first.read_bytes(0, first.size)
        assert (tmp_path / "remote" / "kp" / f"t-{TID}" / "0").is_dir()
        # local retention: only the active segment stays; the log start does not move
        assert log.apply_retention() == nsegs - 1
        assert log.log_start_offset == 0 and log.local_log_start_offset == active_base
        got = await read_everything(log, mgr, 0)
        assert got == batches
        # from inside a batch in the middle of a remote segment
        mid = await mgr.read(log, TID, 7, 1, log.high_watermark, True)
        assert mid is not None and parse_batches(mid)[0][0] == 5 and len(parse_batches(mid)) == 1
        assert await mgr.read(log, TID, 7, 1, log.high_watermark, False) == b""
        capped = await mgr.read(log, TID, 3, 1 << 20, 12, True)
        assert capped is not None and [b[0] for b in parse_batches(capped)] == [0, 5, 10]
        one_segment = await mgr.read(log, TID, 0, 1 << 20, log.high_watermark, True)
        assert one_segment is not None and len(one_segment) == log_sizes[0]  # a read stops at its segment's end
        assert await mgr.read(log, TID, 5, 2 * len(batches[1]) + 10, 10**9, True) == batches[1] + batches[2]
        # ListOffsets
        lo = mgr.list_offset
        assert (await lo(log, TID, -2)).offset == 0  # type: ignore[union-attr]
        assert (await lo(log, TID, -4)).offset == active_base  # type: ignore[union-attr]
        assert (await lo(log, TID, -5)).offset == active_base - 1  # type: ignore[union-attr]
        assert (await lo(log, TID, -6)).offset == active_base  # type: ignore[union-attr]
        assert (await lo(log, TID, -1)).offset == log.log_end_offset  # type: ignore[union-attr]
        # timestamps: batch i has timestamp 1000 + 10 i, offsets 5 i .. 5 i + 4
        for i in (0, 3, 17, 59):
            found = await lo(log, TID, 1000 + 10 * i)
            assert found is not None and found.offset == 5 * i and found.timestamp == 1000 + 10 * i
        found = await lo(log, TID, 1000 + 10 * 17 - 5)
        assert found is not None and found.offset == 5 * 17
        assert await lo(log, TID, 10**12) is None
        mx = await lo(log, TID, -3)
        assert mx is not None and mx.timestamp == 1000 + 590
        log.close()

    asyncio.run(body())

    # restart: log start stays below the first local segment; the copied offset comes from the metadata
    log2 = PartitionLog(tmp_path / "data" / "t-0", tiered_config(), clean_shutdown=True)
    assert log2.log_start_offset == 0 and log2.local_log_start_offset > 0
    mgr2 = manager(tmp_path)

    async def after() -> None:
        assert log2.remote_copied_up_to == -1
        await mgr2.sync_log(log2, TID)
        assert log2.remote_copied_up_to == log2.local_log_start_offset - 1
        assert await read_everything(log2, mgr2, 0, max_bytes=5000) == batches
        log2.close()

    asyncio.run(after())


def test_copy_waits_for_high_watermark_and_respects_copy_disable(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config(), auto_high_watermark=False)
    fill(log, 40)
    mgr = manager(tmp_path)

    async def body() -> None:
        assert await mgr.copy_once(log, TID) == 0  # high watermark 0
        log.high_watermark = log.segments[2].base_offset
        assert await mgr.copy_once(log, TID) == 2
        log.config = tiered_config(remote_log_copy_disable=True)
        log.high_watermark = log.log_end_offset
        assert await mgr.copy_once(log, TID) == 0
        log.config = tiered_config()
        assert await mgr.copy_once(log, TID) == len(log.segments) - 3
        log.close()

    asyncio.run(body())


class FlakyStore(DirObjectStore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.fail_after = 10**9
        self.puts = 0

    async def put_file(self, key: str, path: Path, length: int) -> None:
        self.puts += 1
        if self.puts > self.fail_after:
            await super().put_file(key, path, length // 2)  # a partial object is left behind
            raise ObjectStoreError("injected")
        await super().put_file(key, path, length)


def test_copy_failure_keeps_local_data_and_retries(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    batches = fill(log, 40)
    store = FlakyStore(tmp_path / "remote")
    store.fail_after = 1
    mgr = manager(tmp_path, store)

    async def body() -> None:
        nsegs = len(log.segments)
        with pytest.raises(ObjectStoreError):
            await mgr.copy_once(log, TID)
        states = [s.state for s in await mgr.metadata.segments(TID, 0)]
        assert states == ["COPY_FINISHED", "COPY_STARTED"]
        copied = log.segments[1].base_offset - 1
        assert log.remote_copied_up_to == copied == mgr.highest_copied_offset(TID, 0)
        assert log.apply_retention() == 1  # only the copied segment goes
        assert log.local_log_start_offset == copied + 1
        store.fail_after = 10**9
        assert await mgr.copy_once(log, TID) == nsegs - 2
        segs = await mgr.metadata.segments(TID, 0)
        assert all(s.state == "COPY_FINISHED" for s in segs) and len(segs) == nsegs - 1
        # the failed attempt's objects are gone: one .log per finished segment
        logs = [k for k, _ in await store.list("kp/") if k.endswith(".log")]
        assert sorted(logs) == sorted(s.key("kp/", "log") for s in segs)
        log.apply_retention()
        assert await read_everything(log, mgr, 0) == batches
        log.close()

    asyncio.run(body())


def test_expiry_by_size_time_and_delete_records(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    batches = fill(log, 60)
    mgr = manager(tmp_path)

    async def body() -> None:
        await mgr.copy_once(log, TID)
        log.apply_retention()
        remote = await mgr.metadata.segments(TID, 0)
        assert len(remote) > 5
        assert await mgr.expire_once(log, TID) == 0  # retention.ms -1, retention.bytes -1
        # DeleteRecords into the third remote segment
        target = remote[2].start_offset + 2
        assert log.delete_records_before(target) == target
        assert await mgr.expire_once(log, TID) == 2
        assert log.log_start_offset == target
        left = await mgr.metadata.segments(TID, 0)
        assert left[0].segment_id == remote[2].segment_id
        assert not [k for k, _ in await mgr.store.list("kp/") if remote[0].segment_id in k]
        got = await read_everything(log, mgr, target)
        assert b"".join(got) == b"".join(batches[target // 5 :])
        # retention.bytes over remote + local: keep about three segments' worth
        keep = sum(s.size_bytes for s in left[-2:]) + log.size
        log.config = tiered_config(retention_bytes=keep)
        n = await mgr.expire_once(log, TID)
        assert n == len(left) - 2
        assert log.log_start_offset == left[-3].end_offset + 1
        assert (await mgr.list_offset(log, TID, -2)).offset == log.log_start_offset  # type: ignore[union-attr]
        # retention.ms: every record is from 1970
        log.config = tiered_config(retention_ms=1000)
        assert await mgr.expire_once(log, TID) == 2
        assert mgr.remote_segment_count(TID, 0) == 0
        assert log.log_start_offset == log.local_log_start_offset == log.segments[0].base_offset
        assert (await mgr.list_offset(log, TID, -5)).offset == left[-1].end_offset  # type: ignore[union-attr]
        log.close()

    asyncio.run(body())


def test_delete_all(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    fill(log, 30)
    mgr = manager(tmp_path)

    async def body() -> None:
        n = await mgr.copy_once(log, TID)
        assert n > 0
        assert await mgr.delete_all(TID, 0) == n
        assert await mgr.store.list("kp/") == []
        assert await FileRemoteLogMetadataStore(tmp_path / "data" / "remote-log-metadata").segments(TID, 0) == []
        log.close()

    asyncio.run(body())


def test_cache_bounds(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    batches = fill(log, 60)
    mgr = manager(tmp_path, index_cache_bytes=300, chunk_bytes=512, chunk_cache_bytes=2048)

    async def body() -> None:
        await mgr.copy_once(log, TID)
        log.apply_retention()
        assert await read_everything(log, mgr, 0, max_bytes=300) == batches
        assert mgr.chunk_cache.size <= 2048 and len(mgr.chunk_cache) <= 4
        assert mgr.index_cache.size <= 300
        assert mgr.chunk_cache.hits > 0
        log.close()

    asyncio.run(body())


def test_transactions_lso_and_aborted_from_remote(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    mgr = manager(tmp_path)
    seq = 0
    for round_ in range(6):
        for _ in range(8):
            log.append(txn_batch(1000, seq, n=4), leader_epoch=0)
            seq += 4
        log.append(marker(1000, commit=round_ % 2 == 0), leader_epoch=0)
    expected = log.aborted_transactions(0, log.high_watermark)
    assert len(expected) == 3
    # an open transaction holds copying at its first offset (the last stable offset)
    open_at = log.log_end_offset
    for _ in range(20):
        log.append(txn_batch(1000, seq, n=4), leader_epoch=0)
        seq += 4
    assert log.last_stable_offset == open_at

    async def body() -> None:
        await mgr.copy_once(log, TID)
        assert mgr.highest_copied_offset(TID, 0) < open_at
        log.append(marker(1000, commit=False), leader_epoch=0)
        log.roll()
        await mgr.copy_once(log, TID)
        assert mgr.highest_copied_offset(TID, 0) == log.log_end_offset - 1
        everything = log.aborted_transactions(0, log.high_watermark)
        assert len(everything) == 4
        log.apply_retention()
        assert log.local_log_start_offset == log.log_end_offset
        assert await mgr.aborted_transactions(log, TID, 0, log.high_watermark) == everything
        mid = everything[1].first_offset + 1
        assert await mgr.aborted_transactions(log, TID, mid, mid + 3) == [everything[1]]
        log.close()

    asyncio.run(body())


def test_lru_cache_and_throttle() -> None:
    cache: LruCache[str, bytes] = LruCache(10)
    cache.put("a", b"aaaa", 4)
    cache.put("b", b"bbbb", 4)
    assert cache.get("a") == b"aaaa"  # now the most recent
    cache.put("c", b"cccc", 4)  # evicts b
    assert cache.get("b") is None and cache.get("a") == b"aaaa" and cache.size == 8
    cache.put("huge", b"x" * 11, 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and cache.size == 8
    cache.discard_where(lambda k: k == "a")
    assert len(cache) == 1 and cache.size == 4

    async def body() -> float:
        throttle = Throttle(100_000)
        began = time.monotonic()
        for _ in range(4):
            await throttle.acquire(10_000)
        return time.monotonic() - began

    assert 0.25 <= asyncio.run(body()) < 2.0  # 40 kB at 100 kB/s: the first goes at once, then 0.3 s


class CountingStore(DirObjectStore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory, sync=False)
        self.gets: list[tuple[str, int]] = []

    async def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        self.gets.append((key.rsplit(".", 1)[1], start))
        await asyncio.sleep(0.01)
        return await super().get_range(key, start, end)


def test_concurrent_reads_share_a_chunk_fetch_and_prefetch(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config(segment_bytes=64 * 1024))
    batches = fill(log, 400)
    store = CountingStore(tmp_path / "remote")
    mgr = manager(tmp_path, store, chunk_bytes=4096, prefetch_chunks=2)

    async def body() -> None:
        await mgr.copy_once(log, TID)
        log.apply_retention()
        hw = log.high_watermark
        first, second = await asyncio.gather(
            mgr.read(log, TID, 0, 1000, hw, True), mgr.read(log, TID, 0, 1000, hw, True)
        )
        assert first == second and first is not None and first.startswith(batches[0])
        await asyncio.sleep(0.1)  # the prefetches of the chunks after the read's end finish
        logs = [g for g in store.gets if g[0] == "log"]
        assert sorted(logs) == [("log", 0), ("log", 4096), ("log", 8192)]  # each chunk fetched once
        n = len(parse_batches(first))
        following = await mgr.read(log, TID, 5 * n, 6000, hw, True)
        assert following is not None and following.startswith(b"".join(batches[n : n + 3]))
        assert len([g for g in store.gets if g[0] == "log"]) == 3  # served from the prefetched chunks
        log.close()

    asyncio.run(body())


def test_forget_during_copy_reloads_from_the_metadata_store(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    fill(log, 40)
    holder: list[RemoteLogManager] = []

    class ForgettingStore(DirObjectStore):
        async def put_file(self, key: str, path: Path, length: int) -> None:
            holder[0].forget(TID, 0)  # leadership moved while the copy ran
            await super().put_file(key, path, length)

    mgr = manager(tmp_path, ForgettingStore(tmp_path / "remote", sync=False))
    holder.append(mgr)

    async def body() -> None:
        n = await mgr.copy_once(log, TID)
        assert n == len(log.segments) - 1
        await mgr.sync_log(log, TID)
        assert mgr.remote_segment_count(TID, 0) == n
        assert mgr.highest_copied_offset(TID, 0) == log.segments[-1].base_offset - 1
        log.close()

    asyncio.run(body())


def test_expiry_counts_segments_below_log_start_against_retention_bytes(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "data" / "t-0", tiered_config())
    fill(log, 60)
    mgr = manager(tmp_path)

    async def body() -> None:
        await mgr.copy_once(log, TID)
        log.apply_retention()
        remote = await mgr.metadata.segments(TID, 0)
        total = sum(s.size_bytes for s in remote) + log.size
        log.delete_records_before(remote[1].start_offset + 1)
        # one segment over retention.bytes, and the one below the log start is that segment
        log.config = tiered_config(retention_bytes=total - remote[0].size_bytes - 1)
        assert await mgr.expire_once(log, TID) == 1
        assert log.log_start_offset == remote[1].start_offset + 1
        log.close()

    asyncio.run(body())
