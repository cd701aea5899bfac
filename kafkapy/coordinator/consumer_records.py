"""`__consumer_offsets` records of consumer-protocol (KIP-848) groups, in Kafka's layouts.

A key is an int16 record type followed by plain (non-flexible) strings; a
value is an int16 version (always 0) followed by a flexible struct (compact
strings and arrays, tagged fields). The record types, as Kafka numbers them:

  3  ConsumerGroupMetadata               (group)          group epoch, metadata hash
  4  ConsumerGroupPartitionMetadata      (group)          read and ignored (Kafka < 4.1)
  5  ConsumerGroupMemberMetadata         (group, member)  subscription, client, timeouts
  6  ConsumerGroupTargetAssignmentMetadata (group)        assignment epoch
  7  ConsumerGroupTargetAssignmentMember (group, member)  the member's target partitions
  8  ConsumerGroupCurrentMemberAssignment (group, member) member epoch, state, owned/revoking

A null value is a tombstone. Unknown tagged fields are skipped on reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from struct import Struct
from struct import error as StructError
from uuid import UUID

from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.primitives import (
    read_compact_array_count,
    read_compact_nullable_string,
    read_compact_string,
    read_string,
    read_tag_count,
    read_tag_header,
    read_uuid,
    write_compact_nullable_string,
    write_compact_string,
    write_string,
    write_tagged,
    write_uvarint,
)

GROUP_METADATA = 3
PARTITION_METADATA = 4
MEMBER_METADATA = 5
TARGET_METADATA = 6
TARGET_MEMBER = 7
CURRENT_MEMBER = 8
RECORD_TYPES = frozenset(
    {GROUP_METADATA, PARTITION_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_MEMBER}
)
_MEMBER_KEYS = frozenset({MEMBER_METADATA, TARGET_MEMBER, CURRENT_MEMBER})
VALUE_VERSION = 0

_H = Struct(">h")
_I = Struct(">i")
_II = Struct(">ii")
_Q = Struct(">q")
_B = Struct(">b")
_FAULTS = (StructError, IndexError, ValueError, UnicodeDecodeError, OverflowError)

# Partitions of one member, by topic id.
Partitions = Mapping[UUID, frozenset[int]]


@dataclass(frozen=True, slots=True)
class CgKey:
    record_type: int
    group: str
    member: str | None = None


@dataclass(slots=True)
class GroupMetadataValue:
    epoch: int
    metadata_hash: int = 0
    creation_time_ms: int = -1


@dataclass(slots=True)
class MemberMetadataValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@dataclass(slots=True)
class TargetMetadataValue:
    assignment_epoch: int
    assignment_timestamp_ms: int = 0


@dataclass(slots=True)
class TargetMemberValue:
    partitions: dict[UUID, frozenset[int]] = field(default_factory=dict)


@dataclass(slots=True)
class CurrentMemberValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: dict[UUID, frozenset[int]] = field(default_factory=dict)
    pending_revocation: dict[UUID, frozenset[int]] = field(default_factory=dict)


@dataclass(slots=True)
class IgnoredValue:
    """A record type we read but do not use (ConsumerGroupPartitionMetadata)."""


CgValue = (
    GroupMetadataValue
    | MemberMetadataValue
    | TargetMetadataValue
    | TargetMemberValue
    | CurrentMemberValue
    | IgnoredValue
)


# ---------------------------------------------------------------- keys


def is_consumer_group_key(data: bytes) -> bool:
    return len(data) >= 2 and _H.unpack_from(data, 0)[0] in RECORD_TYPES


def encode_key(key: CgKey) -> bytes:
    out = _H.pack(key.record_type) + write_string(key.group)
    if key.record_type in _MEMBER_KEYS:
        out += write_string(key.member or "")
    return out


def decode_key(data: bytes) -> CgKey:
    buf = memoryview(data)
    try:
        (rtype,) = _H.unpack_from(buf, 0)
        if rtype not in RECORD_TYPES:
            raise DecodeError(f"not a consumer group record type: {rtype}")
        group, pos = read_string(buf, 2)
        member = None
        if rtype in _MEMBER_KEYS:
            member, pos = read_string(buf, pos)
        return CgKey(rtype, group, member)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad consumer group key: {e}") from None


# ---------------------------------------------------------------- values: writing


def _no_tags(out: list[bytes]) -> None:
    out.append(b"\x00")


def _write_topic_partitions(out: list[bytes], parts: Mapping[UUID, Iterable[int]]) -> None:
    items = [(t, sorted(p)) for t, p in sorted(parts.items(), key=lambda kv: str(kv[0])) if p]
    out.append(write_uvarint(len(items) + 1))
    for topic_id, partitions in items:
        out.append(topic_id.bytes)
        out.append(write_uvarint(len(partitions) + 1))
        out.append(Struct(f">{len(partitions)}i").pack(*partitions))
        _no_tags(out)


def encode_value(value: CgValue) -> bytes:
    out: list[bytes] = [_H.pack(VALUE_VERSION)]
    if isinstance(value, GroupMetadataValue):
        out.append(_I.pack(value.epoch))
        tags = [(0, _Q.pack(value.metadata_hash))]
        if value.creation_time_ms >= 0:
            tags.append((1, _Q.pack(value.creation_time_ms)))
        write_tagged(out, tags)
    elif isinstance(value, MemberMetadataValue):
        out.append(write_compact_nullable_string(value.instance_id))
        out.append(write_compact_nullable_string(value.rack_id))
        out.append(write_compact_string(value.client_id))
        out.append(write_compact_string(value.client_host))
        out.append(write_uvarint(len(value.subscribed_topic_names) + 1))
        out.extend(write_compact_string(t) for t in value.subscribed_topic_names)
        out.append(write_compact_nullable_string(value.subscribed_topic_regex))
        out.append(_I.pack(value.rebalance_timeout_ms))
        out.append(write_compact_nullable_string(value.server_assignor))
        _no_tags(out)
    elif isinstance(value, TargetMetadataValue):
        out.append(_I.pack(value.assignment_epoch))
        if value.assignment_timestamp_ms:
            write_tagged(out, [(0, _Q.pack(value.assignment_timestamp_ms))])
        else:
            _no_tags(out)
    elif isinstance(value, TargetMemberValue):
        _write_topic_partitions(out, value.partitions)
        _no_tags(out)
    elif isinstance(value, CurrentMemberValue):
        out.append(_II.pack(value.member_epoch, value.previous_member_epoch))
        out.append(_B.pack(value.state))
        _write_topic_partitions(out, value.assigned)
        _write_topic_partitions(out, value.pending_revocation)
        _no_tags(out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")
    return b"".join(out)


# ---------------------------------------------------------------- values: reading


def _skip_tags(buf: memoryview, pos: int) -> tuple[dict[int, memoryview], int]:
    n, pos = read_tag_count(buf, pos)
    tags: dict[int, memoryview] = {}
    for _ in range(n):
        tag, start, end = read_tag_header(buf, pos)
        tags[tag] = buf[start:end]
        pos = end
    return tags, pos


def _read_topic_partitions(buf: memoryview, pos: int) -> tuple[dict[UUID, frozenset[int]], int]:
    n, pos = read_compact_array_count(buf, pos)
    out: dict[UUID, frozenset[int]] = {}
    for _ in range(n):
        topic_id, pos = read_uuid(buf, pos)
        count, pos = read_compact_array_count(buf, pos)
        parts = Struct(f">{count}i").unpack_from(buf, pos)
        pos += 4 * count
        _, pos = _skip_tags(buf, pos)
        out[topic_id] = frozenset(parts)
    return out, pos


def decode_value(key: CgKey, data: bytes) -> CgValue:
    buf = memoryview(data)
    try:
        (version,) = _H.unpack_from(buf, 0)
        if version != VALUE_VERSION:
            raise DecodeError(f"unknown value version {version} for consumer group record type {key.record_type}")
        pos = 2
        rtype = key.record_type
        if rtype == GROUP_METADATA:
            (epoch,) = _I.unpack_from(buf, pos)
            tags, pos = _skip_tags(buf, pos + 4)
            mhash = _Q.unpack(tags[0])[0] if 0 in tags else 0
            created = _Q.unpack(tags[1])[0] if 1 in tags else -1
            return GroupMetadataValue(epoch, mhash, created)
        if rtype == MEMBER_METADATA:
            instance, pos = read_compact_nullable_string(buf, pos)
            rack, pos = read_compact_nullable_string(buf, pos)
            client_id, pos = read_compact_string(buf, pos)
            host, pos = read_compact_string(buf, pos)
            n, pos = read_compact_array_count(buf, pos)
            names = []
            for _ in range(n):
                name, pos = read_compact_string(buf, pos)
                names.append(name)
            regex, pos = read_compact_nullable_string(buf, pos)
            (rebalance,) = _I.unpack_from(buf, pos)
            assignor, pos = read_compact_nullable_string(buf, pos + 4)
            return MemberMetadataValue(instance, rack, client_id, host, names, regex, rebalance, assignor)
        if rtype == TARGET_METADATA:
            (epoch,) = _I.unpack_from(buf, pos)
            tags, pos = _skip_tags(buf, pos + 4)
            return TargetMetadataValue(epoch, _Q.unpack(tags[0])[0] if 0 in tags else 0)
        if rtype == TARGET_MEMBER:
            parts, pos = _read_topic_partitions(buf, pos)
            return TargetMemberValue(parts)
        if rtype == CURRENT_MEMBER:
            epoch, prev = _II.unpack_from(buf, pos)
            (state,) = _B.unpack_from(buf, pos + 8)
            assigned, pos = _read_topic_partitions(buf, pos + 9)
            revoking, pos = _read_topic_partitions(buf, pos)
            return CurrentMemberValue(epoch, prev, state, assigned, revoking)
        return IgnoredValue()
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad consumer group value (type {key.record_type}): {e}") from None
