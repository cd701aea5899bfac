"""Records of `__share_group_state`, the share groups' log (kafkapy's own layout).

Kafka keeps share partition state in `__share_group_state` (ShareSnapshot and
ShareUpdate records) and share group metadata in `__consumer_offsets`; kafkapy
keeps both in `__share_group_state`, a compacted topic, keyed so that the
latest record of a key is its whole state:

  key   int16 0, string group                         -> value int16 0, int32 group epoch
  key   int16 1, string group, uuid topic, int32 part -> value int16 0, int64 start offset,
        int32 n, n x (int64 first, int64 last, int8 state, int16 delivery count)

  key   int16 2, string group, uuid topic, int32 part -> value int16 0, int32 state epoch,
        int32 leader epoch, int64 start offset, int32 n, n x batch (as above)

Type 2 is the share coordinator's (share_state.py: what WriteShareGroupState &
co. store, in the partition of the key "group:topic:partition"); type 1 is
the older per-group layout, read but no longer written.

A null value is a tombstone (the group or the partition's state deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from struct import error as StructError
from uuid import UUID

from kafkapy.coordinator.share_partition import StateBatch
from kafkapy.protocol.errors import DecodeError

GROUP, PARTITION, SHARE_STATE = 0, 1, 2
_H = Struct(">h")
_HI = Struct(">hi")
_HQI = Struct(">hqi")
_I = Struct(">i")
_BATCH = Struct(">qqbh")


@dataclass(frozen=True, slots=True)
class GroupStateKey:
    group: str


@dataclass(frozen=True, slots=True)
class PartitionStateKey:
    group: str
    topic_id: UUID
    partition: int


@dataclass(frozen=True, slots=True)
class ShareStateKey:
    group: str
    topic_id: UUID
    partition: int


ShareKey = GroupStateKey | PartitionStateKey | ShareStateKey


@dataclass(frozen=True, slots=True)
class ShareStateValue:
    state_epoch: int
    leader_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...]


@dataclass(frozen=True, slots=True)
class PartitionStateValue:
    start_offset: int
    batches: tuple[StateBatch, ...]


def _string(s: str) -> bytes:
    b = s.encode()
    return _H.pack(len(b)) + b


def encode_key(key: ShareKey) -> bytes:
    if isinstance(key, GroupStateKey):
        return _H.pack(GROUP) + _string(key.group)
    kind = PARTITION if isinstance(key, PartitionStateKey) else SHARE_STATE
    return _H.pack(kind) + _string(key.group) + key.topic_id.bytes + _I.pack(key.partition)


def decode_key(data: bytes) -> ShareKey:
    try:
        (kind,) = _H.unpack_from(data, 0)
        (n,) = _H.unpack_from(data, 2)
        group = data[4 : 4 + n].decode()
        if len(group.encode()) != n:
            raise DecodeError("short group id")
        if kind == GROUP:
            return GroupStateKey(group)
        if kind in (PARTITION, SHARE_STATE):
            pos = 4 + n
            topic = UUID(bytes=bytes(data[pos : pos + 16]))
            (part,) = _I.unpack_from(data, pos + 16)
            if kind == PARTITION:
                return PartitionStateKey(group, topic, part)
            return ShareStateKey(group, topic, part)
    except (StructError, ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"bad __share_group_state key: {e}") from e
    raise DecodeError(f"unknown __share_group_state record type {kind}")


def encode_group_value(epoch: int) -> bytes:
    return _HI.pack(0, epoch)


def decode_group_value(data: bytes) -> int:
    try:
        _, epoch = _HI.unpack_from(data, 0)
    except StructError as e:
        raise DecodeError(f"bad share group record: {e}") from e
    return int(epoch)


def encode_partition_value(value: PartitionStateValue) -> bytes:
    out = [_HQI.pack(0, value.start_offset, len(value.batches))]
    out += [_BATCH.pack(b.first, b.last, b.state, b.delivery_count) for b in value.batches]
    return b"".join(out)


def decode_partition_value(data: bytes) -> PartitionStateValue:
    try:
        _, start, n = _HQI.unpack_from(data, 0)
        if n < 0 or len(data) < _HQI.size + n * _BATCH.size:
            raise DecodeError("short share partition record")
        batches = tuple(StateBatch(*_BATCH.unpack_from(data, _HQI.size + i * _BATCH.size)) for i in range(n))
    except StructError as e:
        raise DecodeError(f"bad share partition record: {e}") from e
    return PartitionStateValue(start, batches)


_HIIQI = Struct(">hiiqi")


def encode_state_value(value: ShareStateValue) -> bytes:
    out = [_HIIQI.pack(0, value.state_epoch, value.leader_epoch, value.start_offset, len(value.batches))]
    out += [_BATCH.pack(b.first, b.last, b.state, b.delivery_count) for b in value.batches]
    return b"".join(out)


def decode_state_value(data: bytes) -> ShareStateValue:
    try:
        _, state_epoch, leader_epoch, start, n = _HIIQI.unpack_from(data, 0)
        if n < 0 or len(data) < _HIIQI.size + n * _BATCH.size:
            raise DecodeError("short share state record")
        batches = tuple(StateBatch(*_BATCH.unpack_from(data, _HIIQI.size + i * _BATCH.size)) for i in range(n))
    except StructError as e:
        raise DecodeError(f"bad share state record: {e}") from e
    return ShareStateValue(state_epoch, leader_epoch, start, batches)
