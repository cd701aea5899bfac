"""RemoteLogManager when leadership moves (one shared metadata store, as a cluster's etcd): a new
leader whose segments end elsewhere copies only the offsets after the old leader's copies, remote
segments out of the leader's epoch lineage are not read, and a follower restarts its log at the
leader's local start with the leader epochs and producer state of the remote segments."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from kafkapy.protocol.records import build_batch
from kafkapy.storage.log import PartitionLog
from kafkapy.storage.remote.dir_store import DirObjectStore
from kafkapy.storage.remote.manager import RemoteLogManager, RemoteLogSettings, _in_lineage
from kafkapy.storage.remote.metadata import FileRemoteLogMetadataStore, RemoteLogMetadataConflict, RemoteSegment
from tests.storage.helpers import make_batch
from tests.storage.test_tiered_manager import TID, read_everything, tiered_config


def managers(tmp_path: Path) -> tuple[RemoteLogManager, RemoteLogManager]:
    """Brokers 1 and 2 over one object store and one metadata store."""
    store = DirObjectStore(tmp_path / "remote")
    meta = FileRemoteLogMetadataStore(tmp_path / "shared-metadata")
    return tuple(  # type: ignore[return-value]
        RemoteLogManager(store, meta, b, RemoteLogSettings(prefix="kp/")) for b in (1, 2)
    )


def test_new_leader_copies_only_offsets_not_copied(tmp_path: Path) -> None:
    old = PartitionLog(tmp_path / "b1" / "t-0", tiered_config(segment_bytes=2048))
    new = PartitionLog(tmp_path / "b2" / "t-0", tiered_config(segment_bytes=3100))
    for i in range(60):  # the same batches, segments ending elsewhere
        old.append(make_batch(5, pad=20, timestamp=1000 + 10 * i), leader_epoch=0)
        new.append(make_batch(5, pad=20, timestamp=1000 + 10 * i), leader_epoch=0)
    m1, m2 = managers(tmp_path)

    async def body() -> None:
        await m1.copy_once(old, TID)
        copied = m1.highest_copied_offset(TID, 0)
        assert copied > 0
        straddling = [s for s in new.segments[:-1] if s.base_offset <= copied < s.next_offset - 1]
        assert straddling, "the test needs a segment of the new leader across the old one's last copy"
        for i in range(60, 80):  # broker 2 leads at epoch 1
            new.append(make_batch(5, pad=20, timestamp=1000 + 10 * i), leader_epoch=1)
        assert await m2.copy_once(new, TID) > 0
        segs = [s for s in await m2.metadata.segments(TID, 0) if s.state == "COPY_FINISHED"]
        ranges = [(s.start_offset, s.end_offset, s.broker_id) for s in segs]
        for a, b in itertools.pairwise(ranges):
            assert a[1] + 1 == b[0], ranges  # contiguous, no offset twice
        assert min(s.start_offset for s in segs if s.broker_id == 2) == copied + 1
        stored = b"".join(new.read_bytes(seg.base_offset, 1 << 30) for seg in new.segments)
        assert new.apply_retention() > 0 and new.local_log_start_offset > copied + 1
        assert b"".join(await read_everything(new, m2, 0)) == stored
        # the partial segment's epochs start at its own first offset
        partial = next(s for s in segs if s.start_offset == copied + 1)
        assert partial.leader_epochs[0] == (0, copied + 1)

    asyncio.run(body())


def test_segments_outside_the_lineage_are_not_read(tmp_path: Path) -> None:
    plog = PartitionLog(tmp_path / "t-0", tiered_config(retention_ms=-1, retention_bytes=-1))
    for i in range(10):
        plog.append(make_batch(5, pad=20, timestamp=1000 + i), leader_epoch=0 if i < 6 else 2)
    # epoch 0: offsets 0..29, epoch 2 from 30

    def seg(epochs: tuple[tuple[int, int], ...], start: int, end: int) -> RemoteSegment:
        return RemoteSegment("t", TID, 0, f"s{start}-{end}", start, end, 0, 1, epochs, state="COPY_FINISHED")

    assert _in_lineage(seg(((0, 0),), 0, 29), plog)
    assert _in_lineage(seg(((0, 10), (2, 30)), 10, 40), plog)
    assert not _in_lineage(seg(((0, 0),), 0, 34), plog)  # epoch 0 went on past 29 on a discarded leader
    assert not _in_lineage(seg(((0, 0), (1, 25)), 0, 34), plog)  # epoch 1 never reached this log
    assert not _in_lineage(seg(((0, 10), (2, 32)), 10, 40), plog)  # epoch 2 started elsewhere

    m1, _ = managers(tmp_path)

    async def body() -> None:
        for s in (seg(((0, 0),), 0, 34),):
            await m1.metadata.put(s)
        await m1.sync_log(plog, TID)
        assert m1.highest_copied_offset(TID, 0) == -1  # not counted as copied
        assert await m1.copied_up_to(plog, TID) == -1  # nor by a follower with this history
        assert await m1.read(plog, TID, 0, 1000, plog.high_watermark) is None  # nor read
        # once the leader's own copies cover its offsets, expiry deletes it
        for i in range(10, 40):
            plog.append(make_batch(5, pad=20, timestamp=1000 + i), leader_epoch=2)
        assert await m1.copy_once(plog, TID) > 0
        assert m1.highest_copied_offset(TID, 0) >= 34
        assert await m1.expire_once(plog, TID) == 1
        assert "s0-34" not in {s.segment_id for s in await m1.metadata.segments(TID, 0)}
        assert plog.log_start_offset == 0

    asyncio.run(body())


def test_follower_restarts_from_remote_state(tmp_path: Path) -> None:
    leader = PartitionLog(tmp_path / "b1" / "t-0", tiered_config())
    for i in range(30):
        epoch = 0 if i < 10 else 3
        recs: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]] = [
            (None, b"v" * 40, [], None) for _ in range(5)
        ]
        leader.append(
            bytearray(build_batch(recs, producer_id=7, producer_epoch=0, base_sequence=5 * i)), leader_epoch=epoch
        )
    m1, m2 = managers(tmp_path)
    follower = PartitionLog(tmp_path / "b2" / "t-0", tiered_config())

    async def body() -> None:
        await m1.copy_once(leader, TID)
        leader.apply_retention()
        local_start = leader.local_log_start_offset
        assert local_start > 50
        # an old leader's divergent copy (epoch 2, which the leader's history does not have) is left out
        for sid, start, end, epochs in (("old", 45, 60, ((0, 45), (2, 50))), ("older", 20, 35, ((0, 20), (2, 30)))):
            await m1.metadata.put(
                RemoteSegment("t", TID, 0, sid, start, end, 0, 1, epochs, broker_id=9, state="COPY_FINISHED")
            )
        state = await m2.follower_state(TID, 0, local_start)
        assert state.epochs == ((0, 0), (3, 50))
        assert state.snapshot is not None and state.snapshot_offset == local_start
        m2.restart_follower(follower, local_start, 0, state)
        assert (follower.log_start_offset, follower.local_log_start_offset) == (0, local_start)
        assert follower.log_end_offset == local_start
        assert [(e.epoch, e.start_offset) for e in follower.epoch_cache.entries] == [(0, 0), (3, 50)]
        entry = follower.producer_state.producers[7]
        assert entry.last_seq == local_start - 1  # the producer's last sequence below the local start

    asyncio.run(body())


def test_a_copy_whose_entry_another_broker_removed_deletes_its_objects(tmp_path: Path) -> None:
    class Racing(FileRemoteLogMetadataStore):
        async def put(self, segment: RemoteSegment) -> None:
            if segment.state == "COPY_FINISHED":  # a new leader cleaned up the COPY_STARTED entry
                await self.remove(segment)
                raise RemoteLogMetadataConflict("gone")
            await super().put(segment)

    plog = PartitionLog(tmp_path / "t-0", tiered_config())
    for i in range(30):
        plog.append(make_batch(5, pad=20, timestamp=1000 + i), leader_epoch=0)
    store = DirObjectStore(tmp_path / "remote")
    mgr = RemoteLogManager(store, Racing(tmp_path / "meta"), 1, RemoteLogSettings(prefix="kp/"))

    async def body() -> None:
        with pytest.raises(RemoteLogMetadataConflict):
            await mgr.copy_once(plog, TID)
        assert await store.list("") == []
        assert await mgr.metadata.segments(TID, 0) == []
        assert plog.remote_copied_up_to == -1

    asyncio.run(body())
