"""Remote log metadata: which segments of a partition are in the object store, and in what state.

A RemoteSegment is one copied (or being copied / being deleted) segment. Its objects are named
`{prefix}{topic}-{topic_id}/{partition}/{start_offset:020d}-{segment_id}.{ext}`.

FileRemoteLogMetadataStore keeps one JSON file per partition under a directory (normally
`<log dir>/remote-log-metadata/`), rewritten atomically (temporary file, fsync, rename) on every
change, read lazily and cached. Kafka keeps this in the `__remote_log_metadata` topic; a file is
enough for one broker, and the Protocol lets a topic-backed store replace it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Final, Literal, Protocol

from kafkapy.storage.checkpoint import write_atomic

SegmentState = Literal["COPY_STARTED", "COPY_FINISHED", "DELETE_STARTED"]

COPY_STARTED: Final = "COPY_STARTED"
COPY_FINISHED: Final = "COPY_FINISHED"
DELETE_STARTED: Final = "DELETE_STARTED"

LOG_EXT = "log"
INDEX_EXT = "index"
TIMEINDEX_EXT = "timeindex"
TXNINDEX_EXT = "txnindex"
SNAPSHOT_EXT = "snapshot"
EPOCH_EXT = "leader-epoch-checkpoint"
ALL_EXTS = (LOG_EXT, INDEX_EXT, TIMEINDEX_EXT, TXNINDEX_EXT, SNAPSHOT_EXT, EPOCH_EXT)

_FORMAT_VERSION = 1


def new_segment_id() -> str:
    return uuid.uuid4().hex


def partition_prefix(prefix: str, topic: str, topic_id: str, partition: int) -> str:
    """The key prefix of every object of one partition."""
    return f"{prefix}{topic}-{topic_id}/{partition}/"


@dataclass(slots=True, frozen=True)
class RemoteSegment:
    """One segment in the object store. `end_offset` is inclusive; `leader_epochs` holds the
    (epoch, start offset) entries of the leader epoch cache that the segment's offsets fall in."""

    topic: str
    topic_id: str
    partition: int
    segment_id: str
    start_offset: int
    end_offset: int
    max_timestamp_ms: int
    size_bytes: int
    leader_epochs: tuple[tuple[int, int], ...] = ()
    broker_id: int = -1
    state: SegmentState = "COPY_STARTED"
    event_ms: int = 0
    # the object extensions actually stored (a segment has no .txnindex without aborts)
    objects: tuple[str, ...] = field(default=(LOG_EXT, INDEX_EXT, TIMEINDEX_EXT))

    def key(self, prefix: str, ext: str) -> str:
        return f"{partition_prefix(prefix, self.topic, self.topic_id, self.partition)}{self.start_offset:020d}-{self.segment_id}.{ext}"

    def keys(self, prefix: str, exts: Iterable[str] | None = None) -> list[str]:
        """Keys of the segment's objects (`exts` None: every kind it may have, for deletion)."""
        return [self.key(prefix, ext) for ext in (ALL_EXTS if exts is None else exts)]

    def with_state(self, state: SegmentState, event_ms: int) -> RemoteSegment:
        return replace(self, state=state, event_ms=event_ms)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["leader_epochs"] = [list(e) for e in self.leader_epochs]
        d["objects"] = list(self.objects)
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> RemoteSegment:
        epochs = d.get("leader_epochs") or []
        objects = d.get("objects") or [LOG_EXT, INDEX_EXT, TIMEINDEX_EXT]
        assert isinstance(epochs, list) and isinstance(objects, list)
        state = str(d["state"])
        if state not in (COPY_STARTED, COPY_FINISHED, DELETE_STARTED):
            raise ValueError(f"unknown remote segment state {state!r}")
        return cls(
            topic=str(d["topic"]),
            topic_id=str(d["topic_id"]),
            partition=_int(d["partition"]),
            segment_id=str(d["segment_id"]),
            start_offset=_int(d["start_offset"]),
            end_offset=_int(d["end_offset"]),
            max_timestamp_ms=_int(d["max_timestamp_ms"]),
            size_bytes=_int(d["size_bytes"]),
            leader_epochs=tuple((int(e[0]), int(e[1])) for e in epochs),
            broker_id=_int(d.get("broker_id", -1)),
            state=state,  # type: ignore[arg-type]
            event_ms=_int(d.get("event_ms", 0)),
            objects=tuple(str(o) for o in objects),
        )


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


class RemoteLogMetadataConflict(Exception):
    """A state change lost a race with another broker (or its entry is gone): a store shared by
    several brokers refuses it (kafkapy.cluster.remote_log_metadata)."""


class RemoteLogMetadataStore(Protocol):
    async def segments(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        """Every segment of the partition (any state), ordered by start offset."""
        ...

    async def put(self, segment: RemoteSegment) -> None:
        """Add the segment or replace the entry with its segment_id (a state change)."""
        ...

    async def remove(self, segment: RemoteSegment) -> None:
        """Forget the segment (its objects are deleted)."""
        ...

    async def partitions(self) -> list[tuple[str, int]]:
        """(topic_id, partition) of every partition with metadata."""
        ...

    async def delete_partition(self, topic_id: str, partition: int) -> None: ...


class FileRemoteLogMetadataStore:
    """One JSON file per partition under `directory` (see the module docstring)."""

    def __init__(self, directory: Path | str, *, sync: bool = True) -> None:
        self.directory = Path(directory)
        self._sync = sync
        self._cache: dict[tuple[str, int], dict[str, RemoteSegment]] = {}
        self._lock = asyncio.Lock()

    def _path(self, topic_id: str, partition: int) -> Path:
        return self.directory / f"{topic_id}-{partition}.json"

    def _load(self, topic_id: str, partition: int) -> dict[str, RemoteSegment]:
        key = (topic_id, partition)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        entries: dict[str, RemoteSegment] = {}
        try:
            raw = json.loads(self._path(topic_id, partition).read_text())
        except FileNotFoundError:
            raw = None
        if raw is not None:
            for d in raw.get("segments", []):
                seg = RemoteSegment.from_json(d)
                entries[seg.segment_id] = seg
        self._cache[key] = entries
        return entries

    def _write(self, topic_id: str, partition: int, entries: dict[str, RemoteSegment]) -> None:
        path = self._path(topic_id, partition)
        if not entries:
            path.unlink(missing_ok=True)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        body = {
            "version": _FORMAT_VERSION,
            "segments": [s.to_json() for s in sorted(entries.values(), key=lambda s: s.start_offset)],
        }
        write_atomic(path, json.dumps(body, separators=(",", ":")).encode(), sync=self._sync)

    def segments_now(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        """The cached view without I/O once loaded (loads on first use)."""
        return sorted(self._load(topic_id, partition).values(), key=lambda s: (s.start_offset, s.event_ms))

    async def segments(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        if (topic_id, partition) not in self._cache:
            async with self._lock:
                await asyncio.to_thread(self._load, topic_id, partition)
        return self.segments_now(topic_id, partition)

    async def put(self, segment: RemoteSegment) -> None:
        async with self._lock:
            tp = (segment.topic_id, segment.partition)
            entries = dict(await asyncio.to_thread(self._load, *tp))
            entries[segment.segment_id] = segment
            await asyncio.to_thread(self._write, *tp, entries)
            self._cache[tp] = entries

    async def remove(self, segment: RemoteSegment) -> None:
        async with self._lock:
            tp = (segment.topic_id, segment.partition)
            entries = dict(await asyncio.to_thread(self._load, *tp))
            if entries.pop(segment.segment_id, None) is None:
                return
            await asyncio.to_thread(self._write, *tp, entries)
            self._cache[tp] = entries

    async def partitions(self) -> list[tuple[str, int]]:
        def scan() -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            if not self.directory.is_dir():
                return out
            for p in self.directory.iterdir():
                stem, dash, part = p.name.removesuffix(".json").rpartition("-")
                if p.name.endswith(".json") and dash and part.isdigit():
                    out.append((stem, int(part)))
            return sorted(out)

        return await asyncio.to_thread(scan)

    async def delete_partition(self, topic_id: str, partition: int) -> None:
        async with self._lock:
            await asyncio.to_thread(self._write, topic_id, partition, {})
            self._cache[(topic_id, partition)] = {}
