"""Remote log metadata of a cluster (tiered storage, KIP-405) in etcd.

Every broker of a cluster must see the same remote segments of a partition: a new leader continues
copying where the old one stopped and followers delete local segments once they are copied. Kafka
gets that from the replicated `__remote_log_metadata` topic; a kafkapy cluster's metadata store is
etcd, replicated and shared by every broker, so the records live there.

One key per remote segment, `<prefix>remote-log-metadata/<topic id>/<partition>/<start offset,
20 digits>-<segment id>`, its value the segment's JSON (`RemoteSegment.to_json`). State changes are
compare-and-swap: a new segment only if its key is absent, a transition (COPY_STARTED ->
COPY_FINISHED -> DELETE_STARTED, or COPY_STARTED -> DELETE_STARTED) only from the state read, at
that key's mod revision. So an old leader still finishing a copy whose entry the new leader has
already cleaned up gets `RemoteLogMetadataConflict` instead of reviving it.

No watch: the RemoteLogManager caches its view of the partitions it leads and reads the keys again
when it becomes a partition's leader (or after a failure); followers read them once per pass of the
remote log task.
"""

from __future__ import annotations

import json

from kafkapy.cluster.etcd import Compare, EtcdClient, KeyValue, Op
from kafkapy.logging import get_logger
from kafkapy.storage.remote.metadata import (
    COPY_FINISHED,
    COPY_STARTED,
    DELETE_STARTED,
    RemoteLogMetadataConflict,
    RemoteSegment,
)

log = get_logger(__name__)

__all__ = ["EtcdRemoteLogMetadataStore", "RemoteLogMetadataConflict"]

_NEXT_STATES: dict[str, frozenset[str]] = {
    COPY_STARTED: frozenset({COPY_STARTED, COPY_FINISHED, DELETE_STARTED}),
    COPY_FINISHED: frozenset({COPY_FINISHED, DELETE_STARTED}),
    DELETE_STARTED: frozenset({DELETE_STARTED}),
}
_CAS_ATTEMPTS = 5


class EtcdRemoteLogMetadataStore:
    """RemoteLogMetadataStore over etcd keys (see the module docstring)."""

    def __init__(self, client: EtcdClient, cluster_prefix: str) -> None:
        self.client = client
        self.prefix = f"{cluster_prefix}remote-log-metadata/"

    def _partition_prefix(self, topic_id: str, partition: int) -> str:
        return f"{self.prefix}{topic_id}/{partition}/"

    def key(self, segment: RemoteSegment) -> bytes:
        prefix = self._partition_prefix(segment.topic_id, segment.partition)
        return f"{prefix}{segment.start_offset:020d}-{segment.segment_id}".encode()

    @staticmethod
    def _decode(kv: KeyValue) -> RemoteSegment | None:
        try:
            return RemoteSegment.from_json(json.loads(kv.value))
        except (ValueError, TypeError, KeyError, AssertionError):
            log.warning("unreadable remote log metadata key ignored", key=kv.key.decode(errors="replace"))
            return None

    async def segments(self, topic_id: str, partition: int) -> list[RemoteSegment]:
        kvs, _ = await self.client.get_prefix(self._partition_prefix(topic_id, partition).encode())
        segs = [s for s in (self._decode(kv) for kv in kvs) if s is not None]
        return sorted(segs, key=lambda s: (s.start_offset, s.event_ms))

    async def put(self, segment: RemoteSegment) -> None:
        key = self.key(segment)
        value = json.dumps(segment.to_json(), separators=(",", ":")).encode()
        for _ in range(_CAS_ATTEMPTS):
            current = await self.client.get(key)
            if current is None:
                if segment.state != COPY_STARTED:
                    raise RemoteLogMetadataConflict(
                        f"remote segment {segment.segment_id} is gone; cannot mark it {segment.state}"
                    )
                cond = Compare.create_revision(key, "=", 0)
            else:
                old = self._decode(current)
                if old is not None and segment.state not in _NEXT_STATES[old.state]:
                    raise RemoteLogMetadataConflict(
                        f"remote segment {segment.segment_id} is {old.state}; cannot mark it {segment.state}"
                    )
                cond = Compare.mod_revision(key, "=", current.mod_revision)
            result = await self.client.txn([cond], [Op.put(key, value)])
            if result.succeeded:
                return
        raise RemoteLogMetadataConflict(f"remote segment {segment.segment_id}: too many concurrent changes")

    async def remove(self, segment: RemoteSegment) -> None:
        await self.client.delete(self.key(segment))

    async def partitions(self) -> list[tuple[str, int]]:
        kvs, _ = await self.client.get_prefix(self.prefix.encode())
        out: set[tuple[str, int]] = set()
        for kv in kvs:
            parts = kv.key.decode(errors="replace")[len(self.prefix) :].split("/")
            if len(parts) == 3 and parts[1].isdigit():
                out.add((parts[0], int(parts[1])))
        return sorted(out)

    async def delete_partition(self, topic_id: str, partition: int) -> None:
        await self.client.delete(self._partition_prefix(topic_id, partition).encode(), prefix=True)
