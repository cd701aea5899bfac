"""Records of `__consumer_offsets`: Kafka's key and value layouts, plain struct.

Keys start with an int16 version: 0 and 1 are an offset commit (group,
topic, partition), 2 is group metadata (group). Values start with their own
int16 version. We write offset values v3 and group values v3 (the last
non-flexible versions, readable by every Kafka tool) and read v0-v3.
A record with a null value is a tombstone for its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct
from struct import error as StructError

from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.primitives import (
    read_bytes,
    read_nullable_string,
    read_string,
    write_bytes,
    write_nullable_string,
    write_string,
)

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3

_H = Struct(">h")
_I = Struct(">i")
_Q = Struct(">q")
_QI = Struct(">qi")
_II = Struct(">ii")
_FAULTS = (StructError, IndexError, ValueError, UnicodeDecodeError)


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1  # only in v1 values; kept for reading old logs


@dataclass(slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = -1
    members: list[MemberValue] = field(default_factory=list)


Key = OffsetKey | GroupKey


def encode_key(key: Key) -> bytes:
    if isinstance(key, OffsetKey):
        return b"".join(
            (_H.pack(OFFSET_KEY_VERSION), write_string(key.group), write_string(key.topic), _I.pack(key.partition))
        )
    return _H.pack(GROUP_KEY_VERSION) + write_string(key.group)


def decode_key(data: bytes) -> Key:
    buf = memoryview(data)
    try:
        (version,) = _H.unpack_from(buf, 0)
        group, pos = read_string(buf, 2)
        if version in (0, 1):
            topic, pos = read_string(buf, pos)
            (partition,) = _I.unpack_from(buf, pos)
            return OffsetKey(group, topic, partition)
        if version == 2:
            return GroupKey(group)
    except DecodeError:
        raise
    except _FAULTS as e:  # truncated or malformed input
        raise DecodeError(f"bad __consumer_offsets key: {e}") from None
    raise DecodeError(f"unknown __consumer_offsets key version {version}")


def encode_offset_value(v: OffsetValue) -> bytes:
    return b"".join(
        (
            _H.pack(OFFSET_VALUE_VERSION),
            _QI.pack(v.offset, v.leader_epoch),
            write_string(v.metadata),
            _Q.pack(v.commit_timestamp),
        )
    )


def decode_offset_value(data: bytes) -> OffsetValue:
    buf = memoryview(data)
    try:
        (version,) = _H.unpack_from(buf, 0)
        if not 0 <= version <= 3:
            raise DecodeError(f"unknown offset commit value version {version}")
        (offset,) = _Q.unpack_from(buf, 2)
        pos = 10
        epoch = -1
        if version >= 3:
            (epoch,) = _I.unpack_from(buf, pos)
            pos += 4
        metadata, pos = read_string(buf, pos)
        (commit_ts,) = _Q.unpack_from(buf, pos)
        pos += 8
        expire = -1
        if version == 1:
            (expire,) = _Q.unpack_from(buf, pos)
        return OffsetValue(offset, epoch, metadata, commit_ts, expire)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad offset commit value: {e}") from None


def encode_group_value(v: GroupValue) -> bytes:
    out = [
        _H.pack(GROUP_VALUE_VERSION),
        write_string(v.protocol_type),
        _I.pack(v.generation),
        write_nullable_string(v.protocol),
        write_nullable_string(v.leader),
        _Q.pack(v.current_state_timestamp),
        _I.pack(len(v.members)),
    ]
    for m in v.members:
        out += [
            write_string(m.member_id),
            write_nullable_string(m.group_instance_id),
            write_string(m.client_id),
            write_string(m.client_host),
            _II.pack(m.rebalance_timeout_ms, m.session_timeout_ms),
            write_bytes(m.subscription),
            write_bytes(m.assignment),
        ]
    return b"".join(out)


def decode_group_value(data: bytes) -> GroupValue:
    buf = memoryview(data)
    try:
        (version,) = _H.unpack_from(buf, 0)
        if not 0 <= version <= 3:
            raise DecodeError(f"unknown group metadata value version {version}")
        protocol_type, pos = read_string(buf, 2)
        (generation,) = _I.unpack_from(buf, pos)
        protocol, pos = read_nullable_string(buf, pos + 4)
        leader, pos = read_nullable_string(buf, pos)
        state_ts = -1
        if version >= 2:
            (state_ts,) = _Q.unpack_from(buf, pos)
            pos += 8
        (count,) = _I.unpack_from(buf, pos)
        pos += 4
        if count < 0 or count > len(buf):
            raise DecodeError(f"bad member count {count}")
        members = []
        for _ in range(count):
            member_id, pos = read_string(buf, pos)
            instance = None
            if version >= 3:
                instance, pos = read_nullable_string(buf, pos)
            client_id, pos = read_string(buf, pos)
            host, pos = read_string(buf, pos)
            (session,) = _I.unpack_from(buf, pos)
            pos += 4
            rebalance = session
            if version >= 1:
                rebalance, session = _II.unpack_from(buf, pos - 4)
                pos += 4
            sub, pos = read_bytes(buf, pos)
            assignment, pos = read_bytes(buf, pos)
            members.append(MemberValue(member_id, instance, client_id, host, rebalance, session, sub, assignment))
        return GroupValue(protocol_type, generation, protocol, leader, state_ts, members)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad group metadata value: {e}") from None
