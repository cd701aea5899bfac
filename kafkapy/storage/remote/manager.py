"""RemoteLogManager: copies closed segments of tiered logs to the object store, expires them, reads
them back (KIP-405).

Per tiered partition the broker calls, from its event loop:
- `copy_once(log, topic_id)`: every closed segment wholly below the last stable offset (and so the
  high watermark) and above the highest copied offset is uploaded (log, offset index, time index,
  txn index, producer snapshot, leader epochs) between a COPY_STARTED and a COPY_FINISHED metadata
  entry; the log is then told how far it is copied (`PartitionLog.remote_copied_up_to`), which lets
  its local retention delete the copies' local segments.
- `expire_once(log, topic_id)`: total retention (retention.ms, retention.bytes over remote + local)
  and the log start offset (DeleteRecords) delete the oldest remote segments and move the log start.
- `read(...)` answers a fetch of an offset below the local log start from the object store: whole
  batches, found through the segment's offset index (cached) and read in bounded chunks (cached),
  walking batch headers only.
- `list_offset(...)`: ListOffsets including -4/-5/-6 and timestamps held in remote segments only.

A failed copy leaves its COPY_STARTED entry; the next copy_once or expire_once deletes its objects
and the entry before going on. Copy and expiry of one partition never run at the same time (a
lock per partition); reads run beside them (a segment expired under a read answers an error).
Blocking file reads run in worker threads; the PartitionLog itself is only touched from the event
loop (its rule), e.g. advance_log_start_offset is called there, never in a thread.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from kafkapy.storage._batch import LOG_OVERHEAD, PREFIX, PREFIX_SIZE
from kafkapy.storage.checkpoint import write_atomic
from kafkapy.storage.errors import CorruptLogError
from kafkapy.storage.local_log import OffsetAndTimestamp
from kafkapy.storage.log import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_PENDING_UPLOAD_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    PartitionLog,
)
from kafkapy.storage.remote.metadata import (
    COPY_FINISHED,
    COPY_STARTED,
    DELETE_STARTED,
    EPOCH_EXT,
    INDEX_EXT,
    LOG_EXT,
    SNAPSHOT_EXT,
    TIMEINDEX_EXT,
    TXNINDEX_EXT,
    RemoteLogMetadataConflict,
    RemoteLogMetadataStore,
    RemoteSegment,
    new_segment_id,
)
from kafkapy.storage.remote.object_store import ObjectStore
from kafkapy.storage.segment import LogSegment, now_ms
from kafkapy.storage.txn_index import AbortedTxn, txn_index_path

log = structlog.get_logger(__name__)

LONG_MAX = (1 << 63) - 1
_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_TXN_ENTRY = struct.Struct(">hqqqq")

TopicPartition = tuple[str, int]  # (topic id, partition)


@dataclass(slots=True, frozen=True)
class RemoteState:
    """The remote part of a partition a follower rebuilds from (`follower_state`)."""

    epochs: tuple[tuple[int, int], ...]  # (leader epoch, start offset), ascending
    snapshot: bytes | None  # the producer snapshot at `snapshot_offset`, None: none stored
    snapshot_offset: int


@dataclass(slots=True, frozen=True)
class RemoteLogSettings:
    """Object key prefix, throttles and cache bounds (Kafka's remote.log.manager.* names)."""

    prefix: str = ""
    copy_max_bytes_per_second: int = LONG_MAX  # remote.log.manager.copy.max.bytes.per.second
    fetch_max_bytes_per_second: int = LONG_MAX  # remote.log.manager.fetch.max.bytes.per.second
    index_cache_bytes: int = 1 << 30  # remote.log.index.file.cache.total.size.bytes
    chunk_bytes: int = 1 << 20  # a remote read gets whole chunks of this size
    chunk_cache_bytes: int = 64 << 20
    # chunks fetched ahead of a remote read, in the background (a consumer catching up reads on);
    # off by default: no gain measured against a local SeaweedFS, and a GET more per read otherwise
    prefetch_chunks: int = 0


K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Entries with a size; the least recently used go when the total passes `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return hit[0]

    def peek(self, key: K) -> V | None:
        """The value without counting a hit or a miss or refreshing its age."""
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def put(self, key: K, value: V, size: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        if size > self.capacity:
            return
        self._entries[key] = (value, size)
        self.size += size
        while self.size > self.capacity:
            _, (_, s) = self._entries.popitem(last=False)
            self.size -= s

    def discard_where(self, pred: Callable[[K], bool]) -> None:
        for key in [k for k in self._entries if pred(k)]:
            _, s = self._entries.pop(key)
            self.size -= s

    def __len__(self) -> int:
        return len(self._entries)


class Throttle:
    """Bytes per second over time: `acquire(n)` sleeps so the average stays under `rate`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._next_free = 0.0

    async def acquire(self, n: int) -> None:
        if self.rate >= LONG_MAX or self.rate <= 0 or n <= 0:
            return
        now = time.monotonic()
        start = max(now, self._next_free)
        self._next_free = start + n / self.rate
        if start > now:
            await asyncio.sleep(start - now)


@dataclass(slots=True)
class _OffsetIndex:
    """A remote segment's offset index: absolute offsets (the last of a batch) and positions."""

    offsets: array[int]
    positions: array[int]

    def lookup(self, offset: int) -> int:
        i = bisect_right(self.offsets, offset)
        return self.positions[i - 1] if i else 0


@dataclass(slots=True)
class _TimeIndex:
    timestamps: array[int]
    offsets: array[int]

    def lookup(self, timestamp: int, base: int) -> int:
        i = bisect_right(self.timestamps, timestamp)
        return self.offsets[i - 1] if i else base


class _Cursor:
    """Batch headers of a remote segment read through the chunk cache, slicing the cached chunk
    instead of an await and a copy per header."""

    def __init__(self, manager: RemoteLogManager, seg: RemoteSegment) -> None:
        self._manager = manager
        self._seg = seg
        self._buf = memoryview(b"")
        self._start = 0

    async def header(self, pos: int) -> tuple[int, int, int]:
        """(base offset, last offset, size) of the batch at `pos`."""
        rel = pos - self._start
        if rel < 0 or rel + PREFIX_SIZE > len(self._buf):
            chunk = self._manager.settings.chunk_bytes
            n = pos // chunk
            data = await self._manager._chunk(self._seg, n)
            self._buf, self._start = memoryview(data), n * chunk
            rel = pos - self._start
            if rel + PREFIX_SIZE > len(self._buf):  # a header across two chunks
                self._buf, self._start, rel = (
                    memoryview(await self._manager._read_range(self._seg, pos, PREFIX_SIZE)),
                    pos,
                    0,
                )
        base, length, _, magic, _, _, delta, _, _ = PREFIX.unpack_from(self._buf, rel)
        if magic != 2 or length <= 0:
            raise CorruptLogError(f"remote segment {self._seg.segment_id}: bad batch at {pos}")
        return base, base + delta, length + LOG_OVERHEAD


def _offset_index_bytes(seg: LogSegment) -> bytes:
    base = seg.base_offset
    return b"".join(_OFFSET_ENTRY.pack(off - base, pos) for off, pos in seg.index.entries())


def _time_index_bytes(seg: LogSegment) -> bytes:
    base = seg.base_offset
    return b"".join(_TIME_ENTRY.pack(ts, off - base) for ts, off in seg.time_index.entries())


def _in_lineage(seg: RemoteSegment, plog: PartitionLog) -> bool:
    """Whether the segment's leader epochs agree with the log's epoch history (Kafka's
    isRemoteSegmentWithinLeaderEpochs, simplified): each of its epochs is in the log's cache, the
    later ones starting at the same offset, and its last epoch reaches its end offset. Epochs the
    log no longer knows (below its first entry) are taken as agreeing; no epochs at all: kept."""
    entries = plog.epoch_cache.entries
    if not seg.leader_epochs or not entries:
        return True
    starts = {e.epoch: e.start_offset for e in entries}
    first = entries[0].epoch
    for i, (epoch, start) in enumerate(seg.leader_epochs):
        if epoch < first:
            continue
        cached = starts.get(epoch)
        if cached is None:
            return False
        if (i > 0 and cached != start) or (i == 0 and cached > start and epoch != first):
            return False
    last = seg.leader_epochs[-1][0]
    later = [e.start_offset for e in entries if e.epoch > last]
    end = later[0] if later else plog.log_end_offset
    return seg.end_offset < end


def _partial_index_bytes(seg: LogSegment, start: int, pos: int) -> tuple[bytes, bytes]:
    """The offset and time index of `seg`'s bytes from position `pos` (offset `start`) on."""
    index = b"".join(_OFFSET_ENTRY.pack(off - start, p - pos) for off, p in seg.index.entries() if p >= pos)
    times = b"".join(_TIME_ENTRY.pack(ts, off - start) for ts, off in seg.time_index.entries() if off >= start)
    return index, times


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class RemoteLogManager:
    """See the module docstring."""

    def __init__(
        self,
        object_store: ObjectStore,
        metadata_store: RemoteLogMetadataStore,
        broker_id: int,
        settings: RemoteLogSettings | None = None,
    ) -> None:
        self.store = object_store
        self.metadata = metadata_store
        self.broker_id = broker_id
        self.settings = settings or RemoteLogSettings()
        # per partition: its segments as last read from or written to the metadata store
        self._segments: dict[TopicPartition, list[RemoteSegment]] = {}
        # per partition: the COPY_FINISHED ones and their start offsets (derived from _segments)
        self._done: dict[TopicPartition, tuple[list[RemoteSegment], list[int]]] = {}
        self._locks: dict[TopicPartition, asyncio.Lock] = {}
        # per partition: ids of copied segments whose leader epochs are not in the leader's lineage
        # (an old leader's data an unclean election discarded); never read nor counted as copied
        self._outside: dict[TopicPartition, set[str]] = {}
        self.index_cache: LruCache[tuple[str, str], _OffsetIndex | _TimeIndex | list[AbortedTxn]] = LruCache(
            self.settings.index_cache_bytes
        )
        self.chunk_cache: LruCache[tuple[str, int], bytes] = LruCache(self.settings.chunk_cache_bytes)
        # chunk fetches under way (shared by concurrent reads of one chunk, and by prefetches)
        self._inflight: dict[tuple[str, int], asyncio.Task[bytes]] = {}
        self._copy_throttle = Throttle(self.settings.copy_max_bytes_per_second)
        self._fetch_throttle = Throttle(self.settings.fetch_max_bytes_per_second)
        # figures for metrics
        self.copied_bytes = 0
        self._copied_bytes: dict[TopicPartition, int] = {}  # per partition (exact under concurrent copies)
        self.fetched_bytes = 0

    # -- metadata view -------------------------------------------------------------

    async def _load(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        tp = (topic_id, partition)
        segs = self._segments.get(tp)
        if segs is None:
            segs = sorted(await self.metadata.segments(topic_id, partition), key=lambda s: s.start_offset)
            self._set(tp, segs)
        return segs

    async def _refresh(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        self._segments.pop((topic_id, partition), None)
        self._done.pop((topic_id, partition), None)
        return await self._load(topic_id, partition)

    def _lock(self, tp: TopicPartition) -> asyncio.Lock:
        lock = self._locks.get(tp)
        if lock is None:
            lock = self._locks[tp] = asyncio.Lock()
        return lock

    def _set(self, tp: TopicPartition, segs: list[RemoteSegment]) -> None:
        self._segments[tp] = segs
        self._done.pop(tp, None)

    def _update(self, tp: TopicPartition, change: Callable[[list[RemoteSegment]], list[RemoteSegment]]) -> None:
        """Apply a change made in the metadata store to the cached view, if loaded (a partition
        forgotten meanwhile is read from the store again on its next use)."""
        segs = self._segments.get(tp)
        if segs is not None:
            self._set(tp, change(segs))

    def _finished_view(self, topic_id: str, partition: int) -> tuple[list[RemoteSegment], list[int]]:
        tp = (topic_id, partition)
        view = self._done.get(tp)
        if view is None:
            outside = self._outside.get(tp, ())
            done = [s for s in self._segments.get(tp, ()) if s.state == COPY_FINISHED and s.segment_id not in outside]
            view = (done, [s.start_offset for s in done])
            if tp in self._segments:
                self._done[tp] = view
        return view

    def _finished(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        return self._finished_view(topic_id, partition)[0]

    def highest_copied_offset(self, topic_id: str, partition: int) -> int:
        """The last offset of the newest copied segment, -1 when none (or not loaded yet)."""
        done = self._finished(topic_id, partition)
        return max((s.end_offset for s in done), default=-1)

    def partition_copied_bytes(self, topic_id: str, partition: int) -> int:
        """Bytes this manager copied of one partition since it last forgot it."""
        return self._copied_bytes.get((topic_id, partition), 0)

    def remote_size(self, topic_id: str, partition: int) -> int:
        return sum(s.size_bytes for s in self._finished(topic_id, partition))

    def remote_segment_count(self, topic_id: str, partition: int) -> int:
        return len(self._finished(topic_id, partition))

    async def sync_log(self, plog: PartitionLog, topic_id: str) -> None:
        """Tell the log how far it is copied (after a restart: from the metadata store) and, when its
        log start offset lies below everything held remotely and locally, move it up there."""
        segs = await self._load(topic_id, plog.partition)
        tp = (topic_id, plog.partition)
        outside = {s.segment_id for s in segs if s.state == COPY_FINISHED and not _in_lineage(s, plog)}
        if outside != self._outside.get(tp, set()):
            if outside:
                log.warning(
                    "remote.segments_outside_lineage", topic=plog.topic, partition=plog.partition, count=len(outside)
                )
            self._outside[tp] = outside
            self._done.pop(tp, None)
        copied = self.highest_copied_offset(topic_id, plog.partition)
        plog.remote_copied_up_to = max(plog.remote_copied_up_to, copied)
        done = self._finished(topic_id, plog.partition)
        earliest = min(done[0].start_offset, plog.local_log_start_offset) if done else plog.local_log_start_offset
        if plog.log_start_offset < earliest:
            plog.advance_log_start_offset(earliest)

    async def copied_up_to(self, plog: PartitionLog, topic_id: str) -> int:
        """The last offset copied of the segments in the log's epoch lineage, as the metadata store
        says now (a follower's view: read again, not cached)."""
        segs = await self.metadata.segments(topic_id, plog.partition)
        return max((s.end_offset for s in segs if s.state == COPY_FINISHED and _in_lineage(s, plog)), default=-1)

    async def follower_state(self, topic_id: str, partition: int, local_start: int) -> RemoteState:
        """What a follower restarting its log at the leader's `local_start` needs of the remote
        segments below it (KIP-405's follower path): their leader epochs and the producer snapshot
        of the remote segment ending nearest below it. Raises what the stores raise.

        The segments are chained back from the one holding `local_start - 1`: each step takes the
        segment holding the offset before the chain's first (preferring one ending right there),
        of the highest last epoch not above the chain's first epoch, so an old leader's divergent
        copies (overlapping the chain, or of an epoch the leader's history replaced) are left out."""
        done = [
            s
            for s in await self.metadata.segments(topic_id, partition)
            if s.state == COPY_FINISHED and s.start_offset < local_start
        ]

        def last_epoch(s: RemoteSegment) -> int:
            return s.leader_epochs[-1][0] if s.leader_epochs else -1

        chain: list[RemoteSegment] = []
        offset, ceiling = local_start - 1, LONG_MAX
        while offset >= 0:
            holding = [s for s in done if s.start_offset <= offset <= s.end_offset and last_epoch(s) <= ceiling]
            if not holding:
                break
            # one ending right before the chain first (an overlapping one is another leader's), then the newest
            seg = max(holding, key=lambda s: (s.end_offset == offset, last_epoch(s), s.end_offset))
            chain.append(seg)
            if seg.leader_epochs:
                ceiling = seg.leader_epochs[0][0]
            offset = seg.start_offset - 1
        chain.reverse()
        epochs: list[tuple[int, int]] = []
        for seg in chain:
            for epoch, start in seg.leader_epochs:
                if start < local_start and (not epochs or epoch > epochs[-1][0]):
                    epochs.append((epoch, start))
        below = [s for s in chain if s.end_offset < local_start and SNAPSHOT_EXT in s.objects]
        snapshot: bytes | None = None
        snapshot_offset = -1
        if below:
            last = max(below, key=lambda s: s.end_offset)
            snapshot = await self.store.get_range(last.key(self.settings.prefix, SNAPSHOT_EXT), 0)
            snapshot_offset = last.end_offset + 1
        return RemoteState(tuple(epochs), snapshot, snapshot_offset)

    @staticmethod
    def restart_follower(plog: PartitionLog, local_start: int, log_start: int, state: RemoteState) -> None:
        """Drop the follower's log and start it at `local_start` with the log start offset
        `log_start` (below: remote), the leader epochs and producer state of `state`."""
        plog.truncate_fully_and_start_at(local_start, log_start_offset=log_start)
        for epoch, start in state.epochs:
            plog.epoch_cache.assign(epoch, max(start, log_start))
        if state.snapshot is not None:
            producers = plog.producer_state
            write_atomic(producers.snapshot_path(state.snapshot_offset), state.snapshot)
            producers.load_snapshot(local_start)

    # -- copy ------------------------------------------------------------------------

    async def copy_once(self, plog: PartitionLog, topic_id: str) -> int:
        """Copy every closed segment not copied yet and wholly below the last stable offset;
        returns how many. Raises what the object/metadata store raised (the caller backs off);
        the segments copied before the failure stay copied."""
        if not plog.tiered or plog.config.remote_log_copy_disable:
            return 0
        tp = (topic_id, plog.partition)
        async with self._lock(tp):
            await self.sync_log(plog, topic_id)
            await self._cleanup_unfinished(topic_id, plog.partition)
            copied = max(self.highest_copied_offset(*tp), plog.remote_copied_up_to)
            upper = plog.last_stable_offset  # <= the high watermark
            segs = plog.segments
            count = 0
            for i, seg in enumerate(segs[:-1]):
                nxt = segs[i + 1].base_offset
                if nxt - 1 <= copied or seg.size == 0:
                    continue
                if nxt > upper:
                    break
                # a segment holding offsets another leader already copied (its segments ended
                # elsewhere): only the part after them is copied
                await self._copy_segment(plog, topic_id, seg, nxt, copied + 1 if seg.base_offset <= copied else -1)
                copied = nxt - 1
                plog.remote_copied_up_to = max(plog.remote_copied_up_to, copied)
                count += 1
            return count

    async def _copy_segment(
        self, plog: PartitionLog, topic_id: str, seg: LogSegment, nxt: int, from_offset: int = -1
    ) -> None:
        """Copy `seg` (ending before `nxt`); from its batch holding `from_offset` on when that is >= 0."""
        prefix = self.settings.prefix
        end = nxt - 1
        size = seg.size
        seg.ensure_indexes()  # in the loop, as every use of the segment; the encoding in a thread
        part: bytes | None = None  # the log bytes of a partial copy
        start = seg.base_offset
        if from_offset > start:
            loc = seg.translate_offset(from_offset)
            if loc is None:
                return
            if loc.base_offset != from_offset:
                log.warning("remote.copy_overlaps", topic=plog.topic, partition=plog.partition, offset=from_offset)
            start, pos = loc.base_offset, loc.position
            part = await asyncio.to_thread(seg.read_bytes, pos, size - pos)
            size = len(part)
            index_bytes, time_bytes = await asyncio.to_thread(lambda: _partial_index_bytes(seg, start, pos))
        else:
            index_bytes, time_bytes = await asyncio.to_thread(
                lambda: (_offset_index_bytes(seg), _time_index_bytes(seg))
            )
        txn = await asyncio.to_thread(_read_optional, txn_index_path(plog.directory, seg.base_offset))
        snapshot = await asyncio.to_thread(_read_optional, plog.producer_state.snapshot_path(nxt))
        epochs = self._segment_epochs(plog, start, end)
        epoch_text = f"0\n{len(epochs)}\n" + "".join(f"{e} {s}\n" for e, s in epochs)
        objects = [LOG_EXT, INDEX_EXT, TIMEINDEX_EXT]
        if txn:
            objects.append(TXNINDEX_EXT)
        if snapshot is not None:
            objects.append(SNAPSHOT_EXT)
        objects.append(EPOCH_EXT)
        meta = RemoteSegment(
            topic=plog.topic,
            topic_id=topic_id,
            partition=plog.partition,
            segment_id=new_segment_id(),
            start_offset=start,
            end_offset=end,
            max_timestamp_ms=seg.largest_timestamp,
            size_bytes=size,
            leader_epochs=tuple(epochs),
            broker_id=self.broker_id,
            state=COPY_STARTED,
            event_ms=now_ms(),
            objects=tuple(objects),
        )
        tp = (topic_id, plog.partition)
        await self.metadata.put(meta)
        self._update(tp, lambda segs: [*segs, meta])
        began = time.perf_counter()
        try:
            await self._copy_throttle.acquire(size)
            if part is None:
                await self.store.put_file(meta.key(prefix, LOG_EXT), seg.log_path, size)
            else:
                await self.store.put_bytes(meta.key(prefix, LOG_EXT), part)
            await self.store.put_bytes(meta.key(prefix, INDEX_EXT), index_bytes)
            await self.store.put_bytes(meta.key(prefix, TIMEINDEX_EXT), time_bytes)
            if txn:
                await self.store.put_bytes(meta.key(prefix, TXNINDEX_EXT), txn)
            if snapshot is not None:
                await self.store.put_bytes(meta.key(prefix, SNAPSHOT_EXT), snapshot)
            await self.store.put_bytes(meta.key(prefix, EPOCH_EXT), epoch_text.encode())
        except BaseException as exc:
            log.warning(
                "remote.copy_failed",
                topic=plog.topic,
                partition=plog.partition,
                base_offset=seg.base_offset,
                error=str(exc),
            )
            raise
        done = meta.with_state(COPY_FINISHED, now_ms())
        try:
            await self.metadata.put(done)
        except RemoteLogMetadataConflict:
            # another broker (a new leader) cleaned up this copy's entry meanwhile: its objects are ours to delete
            await self.store.delete(meta.keys(prefix))
            self._update(tp, lambda segs: [s for s in segs if s.segment_id != meta.segment_id])
            raise
        self._update(tp, lambda segs: [done if s.segment_id == meta.segment_id else s for s in segs])
        self.copied_bytes += size
        self._copied_bytes[tp] = self._copied_bytes.get(tp, 0) + size
        log.info(
            "remote.segment_copied",
            topic=plog.topic,
            partition=plog.partition,
            start_offset=start,
            end_offset=end,
            bytes=size,
            ms=round((time.perf_counter() - began) * 1000, 2),
        )

    @staticmethod
    def _segment_epochs(plog: PartitionLog, base: int, end: int) -> list[tuple[int, int]]:
        """The leader epochs of offsets [base, end]: (epoch, first offset of it in the segment)."""
        out: list[tuple[int, int]] = []
        for e in plog.epoch_cache.entries:
            if e.start_offset > end:
                break
            if e.start_offset <= base:
                out = [(e.epoch, base)]
            else:
                out.append((e.epoch, e.start_offset))
        return out

    async def _cleanup_unfinished(self, topic_id: str, partition: int) -> None:
        """Delete the objects and entries of failed copies (COPY_STARTED) and interrupted
        deletions (DELETE_STARTED). Called holding the partition's lock."""
        segs = await self._load(topic_id, partition)
        stale = [s for s in segs if s.state != COPY_FINISHED]
        for s in stale:
            await self._delete_segment(s)

    async def _delete_segment(self, seg: RemoteSegment) -> None:
        tp = (seg.topic_id, seg.partition)
        if seg.state != DELETE_STARTED:
            marked = seg.with_state(DELETE_STARTED, now_ms())
            await self.metadata.put(marked)
            self._update(tp, lambda segs: [marked if s.segment_id == seg.segment_id else s for s in segs])
        await self.store.delete(seg.keys(self.settings.prefix))
        await self.metadata.remove(seg)
        self._update(tp, lambda segs: [s for s in segs if s.segment_id != seg.segment_id])
        sid = seg.segment_id
        self.index_cache.discard_where(lambda k: k[0] == sid)
        self.chunk_cache.discard_where(lambda k: k[0] == sid)

    # -- expiry ----------------------------------------------------------------------

    async def expire_once(self, plog: PartitionLog, topic_id: str, now: int | None = None) -> int:
        """Delete the oldest remote segments that breach retention.ms / retention.bytes (over remote
        plus not yet copied local bytes) or lie wholly below the log start offset; the log start
        offset then moves past them. Returns how many were deleted."""
        if not plog.tiered:
            return 0
        now = now_ms() if now is None else now
        tp = (topic_id, plog.partition)
        async with self._lock(tp):
            await self.sync_log(plog, topic_id)
            await self._cleanup_unfinished(*tp)
            superseded = await self._delete_outside(plog, topic_id)
            done = self._finished(*tp)
            if not done:
                return superseded
            config = plog.config
            log_start = plog.log_start_offset
            copied = self.highest_copied_offset(*tp)
            excess = -1
            if config.retention_bytes >= 0:
                local_only = sum(s.size for s in plog.segments if s.base_offset > copied)
                excess = sum(s.size_bytes for s in done) + local_only - config.retention_bytes
            horizon = now - config.retention_ms if config.retention_ms >= 0 else None
            doomed: list[RemoteSegment] = []
            for s in done:
                below = s.end_offset < log_start or (horizon is not None and s.max_timestamp_ms < horizon)
                if not below and not (0 < s.size_bytes <= excess):
                    break
                excess -= s.size_bytes  # what goes for any reason counts against retention.bytes
                doomed.append(s)
            if not doomed:
                return superseded
            # the log start first: no fetch is sent to a segment about to go
            new_start = doomed[-1].end_offset + 1
            if new_start > log_start:
                plog.advance_log_start_offset(new_start)
            for s in doomed:
                await self._delete_segment(s)
            log.info(
                "remote.segments_expired",
                topic=plog.topic,
                partition=plog.partition,
                count=len(doomed),
                log_start_offset=plog.log_start_offset,
            )
            return len(doomed) + superseded

    async def _delete_outside(self, plog: PartitionLog, topic_id: str) -> int:
        """Delete the copied segments out of the leader's epoch lineage once the leader's own copies
        cover their offsets (or they lie below the log start). Called holding the partition's lock."""
        tp = (topic_id, plog.partition)
        outside = self._outside.get(tp)
        if not outside:
            return 0
        covered = max(self.highest_copied_offset(*tp), plog.log_start_offset - 1)
        gone = [s for s in self._segments.get(tp, ()) if s.segment_id in outside and s.end_offset <= covered]
        for s in gone:
            await self._delete_segment(s)
            outside.discard(s.segment_id)
        if gone:
            log.info(
                "remote.segments_outside_lineage_deleted", topic=plog.topic, partition=plog.partition, count=len(gone)
            )
        return len(gone)

    async def delete_all(self, topic_id: str, partition: int) -> int:
        """Delete every remote segment of a partition and its metadata (topic deletion,
        remote.log.delete.on.disable); returns how many segments went."""
        tp = (topic_id, partition)
        async with self._lock(tp):
            segs = list(await self._refresh(topic_id, partition))
            # all objects in one call, then the metadata: a crash in between redoes it all next time
            keys = [k for s in segs for k in s.keys(self.settings.prefix)]
            await self.store.delete(keys)
            await self.metadata.delete_partition(topic_id, partition)
            ids = {s.segment_id for s in segs}
            self.index_cache.discard_where(lambda k: k[0] in ids)
            self.chunk_cache.discard_where(lambda k: k[0] in ids)
            self._segments.pop(tp, None)
            self._done.pop(tp, None)
        self._locks.pop(tp, None)
        return len(segs)

    def forget(self, topic_id: str, partition: int) -> None:
        """Drop the cached view of a partition (no longer led here)."""
        self._segments.pop((topic_id, partition), None)
        self._done.pop((topic_id, partition), None)
        self._outside.pop((topic_id, partition), None)
        self._copied_bytes.pop((topic_id, partition), None)

    # -- read ------------------------------------------------------------------------

    def _segment_for(self, topic_id: str, partition: int, offset: int) -> RemoteSegment | None:
        done, starts = self._finished_view(topic_id, partition)
        i = bisect_right(starts, offset) - 1
        while 0 <= i < len(done):
            s = done[i]
            if s.start_offset <= offset <= s.end_offset:
                return s
            if s.start_offset > offset:
                return None
            i += 1
        # an offset in a gap (e.g. a compacted or empty range) reads from the next segment
        return None

    async def read(
        self,
        plog: PartitionLog,
        topic_id: str,
        offset: int,
        max_bytes: int,
        upper: int,
        min_one_message: bool = True,
    ) -> bytes | None:
        """Whole batches from the remote segment holding `offset`: starting at the batch holding it,
        up to `max_bytes` (at least one batch with `min_one_message`), none at or past `upper`.
        None when no remote segment holds `offset`. Raises ObjectStoreError."""
        await self._load(topic_id, plog.partition)
        seg = self._segment_for(topic_id, plog.partition, offset)
        if seg is None:
            seg = next(
                (s for s in self._finished(topic_id, plog.partition) if s.start_offset > offset),
                None,
            )
            if seg is None:
                return None
            offset = seg.start_offset
        if offset >= upper:
            return b""
        index = await self._offset_index(seg)
        size = seg.size_bytes
        cursor = _Cursor(self, seg)
        # the batch holding `offset`: from the index entry at or below it, skip batches before it
        pos = index.lookup(offset)
        first_size = 0
        while pos + PREFIX_SIZE <= size:
            base, last, batch_size = await cursor.header(pos)
            if base >= upper:
                return b""
            if last >= offset:
                first_size = batch_size
                break
            pos += batch_size
        if not first_size:
            return b""
        first = pos
        if first_size > max_bytes and not min_one_message:
            return b""
        end = first + first_size
        if first_size < max_bytes:
            # skip ahead through the index to the last indexed batch that still fits, then walk
            j = min(bisect_right(index.positions, first + max_bytes), bisect_right(index.offsets, upper - 1)) - 1
            if j >= 0 and index.positions[j] > end:
                end = index.positions[j]
            while end + PREFIX_SIZE <= size:
                base, _, batch_size = await cursor.header(end)
                if base >= upper or end + batch_size - first > max_bytes:
                    break
                end += batch_size
        out = await self._read_range(seg, first, end - first)
        if len(out) < end - first:
            raise CorruptLogError(f"remote segment {seg.segment_id}: torn batch before {end}")
        self.fetched_bytes += len(out)
        if end < size:
            self._prefetch(seg, end)  # where the consumer's next fetch starts
        return out

    async def aborted_transactions(
        self, plog: PartitionLog, topic_id: str, fetch_offset: int, upper: int
    ) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper) (a read_committed fetch), from the
        remote segments' transaction indexes and then the local ones."""
        await self._load(topic_id, plog.partition)
        out: list[AbortedTxn] = []
        done, starts = self._finished_view(topic_id, plog.partition)
        i = max(bisect_right(starts, fetch_offset) - 1, 0)
        local_start = plog.local_log_start_offset
        for seg in done[i:]:
            if seg.start_offset >= local_start:
                break
            # a transaction's entry is in the segment of its marker: later segments count too
            if seg.end_offset < fetch_offset or TXNINDEX_EXT not in seg.objects:
                continue
            for e in await self._txn_entries(seg):
                if e.last_offset < fetch_offset:
                    continue
                if e.first_offset < upper:
                    out.append(e)
                if e.last_stable_offset >= upper:
                    return out
        seen = set(out)
        out.extend(e for e in plog.aborted_transactions(fetch_offset, upper) if e not in seen)
        return out

    async def _txn_entries(self, seg: RemoteSegment) -> list[AbortedTxn]:
        key = (seg.segment_id, TXNINDEX_EXT)
        cached = self.index_cache.get(key)
        if isinstance(cached, list):
            return cached
        raw = await self.store.get_range(seg.key(self.settings.prefix, TXNINDEX_EXT), 0)
        entries = []
        for pos in range(0, len(raw) - len(raw) % _TXN_ENTRY.size, _TXN_ENTRY.size):
            _, pid, first, last, lso = _TXN_ENTRY.unpack_from(raw, pos)
            entries.append(AbortedTxn(pid, first, last, lso))
        self.index_cache.put(key, entries, 80 * len(entries) + 64)
        return entries

    async def _read_range(self, seg: RemoteSegment, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of the segment's .log through the chunk cache."""
        chunk = self.settings.chunk_bytes
        parts: list[bytes] = []
        pos = start
        end = min(start + length, seg.size_bytes)
        while pos < end:
            n = pos // chunk
            data = await self._chunk(seg, n)
            off = pos - n * chunk
            take = data[off : off + (end - pos)]
            if not take:
                raise CorruptLogError(f"remote segment {seg.segment_id} shorter than {seg.size_bytes} bytes")
            parts.append(take)
            pos += len(take)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _chunk(self, seg: RemoteSegment, n: int) -> bytes:
        data = self.chunk_cache.get((seg.segment_id, n))
        if data is not None:
            return data
        # shielded: a reader that gives up (remote.fetch.max.wait.ms) leaves the fetch to finish
        return await asyncio.shield(self._chunk_task(seg, n))

    def _chunk_task(self, seg: RemoteSegment, n: int) -> asyncio.Task[bytes]:
        key = (seg.segment_id, n)
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.get_running_loop().create_task(self._fetch_chunk(seg, n))
            task.add_done_callback(lambda t: self._chunk_done(key, t))
        return task

    def _chunk_done(self, key: tuple[str, int], task: asyncio.Task[bytes]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failed prefetch is only a miss for the next read

    async def _fetch_chunk(self, seg: RemoteSegment, n: int) -> bytes:
        chunk = self.settings.chunk_bytes
        lo = n * chunk
        hi = min(lo + chunk, seg.size_bytes)
        await self._fetch_throttle.acquire(hi - lo)
        data = await self.store.get_range(seg.key(self.settings.prefix, LOG_EXT), lo, hi)
        self.chunk_cache.put((seg.segment_id, n), data, len(data))
        return data

    def _prefetch(self, seg: RemoteSegment, position: int) -> None:
        """Start fetching the chunk holding `position` and the prefetch_chunks after it, those not
        cached or under way."""
        if self.settings.prefetch_chunks <= 0:
            return
        chunk = self.settings.chunk_bytes
        first = position // chunk
        for n in range(first, first + 1 + self.settings.prefetch_chunks):
            if n * chunk >= seg.size_bytes:
                break
            key = (seg.segment_id, n)
            if key not in self._inflight and self.chunk_cache.peek(key) is None:
                self._chunk_task(seg, n)

    async def _offset_index(self, seg: RemoteSegment) -> _OffsetIndex:
        key = (seg.segment_id, INDEX_EXT)
        cached = self.index_cache.get(key)
        if isinstance(cached, _OffsetIndex):
            return cached
        raw = await self.store.get_range(seg.key(self.settings.prefix, INDEX_EXT), 0)
        both = array("i")
        both.frombytes(raw[: len(raw) - len(raw) % 8])
        if sys.byteorder == "little":
            both.byteswap()
        offsets = array("q", (seg.start_offset + r for r in both[0::2]))
        idx = _OffsetIndex(offsets, both[1::2])
        self.index_cache.put(key, idx, 12 * len(offsets) + 64)
        return idx

    async def _time_index(self, seg: RemoteSegment) -> _TimeIndex:
        key = (seg.segment_id, TIMEINDEX_EXT)
        cached = self.index_cache.get(key)
        if isinstance(cached, _TimeIndex):
            return cached
        raw = await self.store.get_range(seg.key(self.settings.prefix, TIMEINDEX_EXT), 0)
        ts = array("q")
        offs = array("q")
        for i in range(0, len(raw) - len(raw) % 12, 12):
            t, rel = _TIME_ENTRY.unpack_from(raw, i)
            ts.append(t)
            offs.append(seg.start_offset + rel)
        idx = _TimeIndex(ts, offs)
        self.index_cache.put(key, idx, 16 * len(ts) + 64)
        return idx

    # -- ListOffsets -----------------------------------------------------------------

    async def list_offset(self, plog: PartitionLog, topic_id: str, timestamp: int) -> OffsetAndTimestamp | None:
        """ListOffsets over the remote and the local log: -2 earliest (log start), -4 earliest
        local, -5 latest tiered (offset -1: none), -6 earliest pending upload, -1 log end, -3 max
        timestamp, else the first record at or after `timestamp` (remote segments first)."""
        if not plog.tiered:
            return plog.list_offset(timestamp)
        await self.sync_log(plog, topic_id)
        part = plog.partition
        if timestamp == LATEST_TIERED_TIMESTAMP:
            # what was copied, even when retention has deleted it since
            copied = max(self.highest_copied_offset(topic_id, part), plog.remote_copied_up_to)
            if copied < 0:
                return OffsetAndTimestamp(-1, -1, -1)
            return OffsetAndTimestamp(copied, -1, self._epoch_at(topic_id, part, copied, plog))
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP, LATEST_TIMESTAMP):
            return plog.list_offset(timestamp)
        if timestamp == EARLIEST_PENDING_UPLOAD_TIMESTAMP:
            return plog.list_offset(timestamp)
        log_start = plog.log_start_offset
        done = [s for s in self._finished(topic_id, part) if s.end_offset >= log_start]
        if timestamp == MAX_TIMESTAMP:
            local = plog.list_offset(MAX_TIMESTAMP)
            best = max(done, key=lambda s: s.max_timestamp_ms, default=None)
            if best is not None and (local is None or best.max_timestamp_ms > local.timestamp):
                found = await self._remote_offset_for_timestamp(best, best.max_timestamp_ms, log_start)
                if found is not None:
                    return found
            return local
        if timestamp < 0:
            return plog.list_offset(timestamp)
        for s in done:
            if s.max_timestamp_ms < timestamp:
                continue
            found = await self._remote_offset_for_timestamp(s, timestamp, log_start)
            if found is not None:
                return found
        return plog.offset_for_timestamp(timestamp)

    def _epoch_at(self, topic_id: str, partition: int, offset: int, plog: PartitionLog) -> int:
        epoch = plog.epoch_cache.epoch_for_offset(offset)
        if epoch >= 0:
            return epoch
        for s in self._finished(topic_id, partition):
            if s.start_offset <= offset <= s.end_offset:
                found = [e for e, start in s.leader_epochs if start <= offset]
                return found[-1] if found else -1
        return -1

    async def _remote_offset_for_timestamp(
        self, seg: RemoteSegment, timestamp: int, log_start: int
    ) -> OffsetAndTimestamp | None:
        """The first record at or after `log_start` with a timestamp >= `timestamp` in `seg`."""
        from kafkapy.protocol.records import iter_records

        tindex = await self._time_index(seg)
        oindex = await self._offset_index(seg)
        pos = oindex.lookup(max(tindex.lookup(timestamp, seg.start_offset), log_start))
        while pos + PREFIX_SIZE <= seg.size_bytes:
            head = await self._read_range(seg, pos, PREFIX_SIZE)
            base, length, epoch, _, _, attrs, delta, _, bmax = PREFIX.unpack_from(head, 0)
            size = length + LOG_OVERHEAD
            if bmax >= timestamp and base + delta >= log_start:
                data = await self._read_range(seg, pos, size)
                if attrs & 0x08:  # LogAppendTime: every record carries the batch's max timestamp
                    return OffsetAndTimestamp(max(base, log_start), bmax, epoch)
                for rec in iter_records(data, check_crc=False):
                    if rec.timestamp >= timestamp and rec.offset >= log_start:
                        return OffsetAndTimestamp(rec.offset, rec.timestamp, epoch)
            pos += size
        return None
