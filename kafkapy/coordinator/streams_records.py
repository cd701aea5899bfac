"""`__consumer_offsets` records of Streams groups (KIP-1071), in Kafka's layouts.

A key is an int16 record type followed by plain strings (the group id, and the
member id for member records); a value is an int16 version (0) followed by a
flexible struct. The record types, as Kafka numbers them, and the
`streams_group.RecordKind` each stands for:

  17  StreamsGroupMetadata               GROUP         group epoch, metadata hash
  18  StreamsGroupPartitionMetadata      (none)        read and ignored (older Kafka)
  19  StreamsGroupMemberMetadata         MEMBER        process, endpoint, tags, timeouts
  20  StreamsGroupTargetAssignmentMetadata TARGET_EPOCH the assignment epoch
  21  StreamsGroupTargetAssignmentMember TARGET        the member's target tasks
  22  StreamsGroupCurrentMemberAssignment CURRENT      member epoch, state, tasks, revoking
  23  StreamsGroupTopology               TOPOLOGY      the group's topology

A null value is a tombstone. Unknown tagged fields are skipped on reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from struct import Struct
from struct import error as StructError

from kafkapy.coordinator.streams_group import (
    CopartitionGroup,
    CurrentAssignment,
    GroupMetadataValue,
    MemberMetadata,
    MemberState,
    RecordKey,
    RecordKind,
    RecordValue,
    Subtopology,
    TargetEpochValue,
    Tasks,
    TaskSet,
    TopicConfig,
    Topology,
)
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.primitives import (
    read_compact_array_count,
    read_compact_nullable_string,
    read_compact_string,
    read_string,
    read_tag_count,
    read_tag_header,
    write_compact_nullable_string,
    write_compact_string,
    write_string,
    write_uvarint,
)

KIND_TO_TYPE = {
    RecordKind.GROUP: 17,
    RecordKind.MEMBER: 19,
    RecordKind.TARGET_EPOCH: 20,
    RecordKind.TARGET: 21,
    RecordKind.CURRENT: 22,
    RecordKind.TOPOLOGY: 23,
}
TYPE_TO_KIND = {t: k for k, t in KIND_TO_TYPE.items()}
PARTITION_METADATA = 18
RECORD_TYPES = frozenset(TYPE_TO_KIND) | {PARTITION_METADATA}
_MEMBER_TYPES = frozenset({19, 21, 22})

_h = Struct(">h")
_i = Struct(">i")
_q = Struct(">q")
_b = Struct(">b")
_H = Struct(">H")
_FAULTS = (StructError, IndexError, ValueError, UnicodeDecodeError, OverflowError, KeyError)


def is_streams_group_key(data: bytes) -> bool:
    return len(data) >= 2 and _h.unpack_from(data, 0)[0] in RECORD_TYPES


def encode_key(key: RecordKey) -> bytes:
    rtype = KIND_TO_TYPE[key.kind]
    out = _h.pack(rtype) + write_string(key.group)
    if rtype in _MEMBER_TYPES:
        out += write_string(key.member or "")
    return out


def decode_key(data: bytes) -> RecordKey | None:
    """The key; None for a record type read and ignored (PartitionMetadata)."""
    buf = memoryview(data)
    try:
        (rtype,) = _h.unpack_from(buf, 0)
        if rtype not in RECORD_TYPES:
            raise DecodeError(f"not a streams group record type: {rtype}")
        group, pos = read_string(buf, 2)
        if rtype == PARTITION_METADATA:
            return None
        member = None
        if rtype in _MEMBER_TYPES:
            member, pos = read_string(buf, pos)
        return RecordKey(TYPE_TO_KIND[rtype], group, member)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad streams group key: {e}") from None


# ---------------------------------------------------------------- writing


def _array(out: list[bytes], n: int) -> None:
    out.append(write_uvarint(n + 1))


def _strings(out: list[bytes], items: tuple[str, ...] | list[str]) -> None:
    _array(out, len(items))
    out.extend(write_compact_string(s) for s in items)


def _kvs(out: list[bytes], items: tuple[tuple[str, str], ...]) -> None:
    _array(out, len(items))
    for k, v in items:
        out += [write_compact_string(k), write_compact_string(v), b"\x00"]


def _tasks(out: list[bytes], tasks: Mapping[str, frozenset[int]]) -> None:
    items = [(s, sorted(p)) for s, p in sorted(tasks.items()) if p]
    _array(out, len(items))
    for s, parts in items:
        out.append(write_compact_string(s))
        _array(out, len(parts))
        out += [_i.pack(p) for p in parts]
        out.append(b"\x00")


def _topic_infos(out: list[bytes], topics: tuple[TopicConfig, ...]) -> None:
    _array(out, len(topics))
    for t in topics:
        out += [write_compact_string(t.name), _i.pack(t.partitions), _h.pack(t.replication_factor)]
        _kvs(out, t.configs)
        out.append(b"\x00")


def _int16s(out: list[bytes], items: tuple[int, ...]) -> None:
    _array(out, len(items))
    out += [_h.pack(i) for i in items]


def encode_value(value: RecordValue) -> bytes:
    out: list[bytes] = [_h.pack(0)]
    if isinstance(value, GroupMetadataValue):
        out += [_i.pack(value.epoch), _q.pack(value.topics_hash), b"\x00"]
    elif isinstance(value, Topology):
        out.append(_i.pack(value.epoch))
        _array(out, len(value.subtopologies))
        for s in value.subtopologies:
            out.append(write_compact_string(s.subtopology_id))
            _strings(out, s.source_topics)
            _strings(out, s.source_topic_regex)
            _topic_infos(out, s.state_changelog_topics)
            _strings(out, s.repartition_sink_topics)
            _topic_infos(out, s.repartition_source_topics)
            _array(out, len(s.copartition_groups))
            for g in s.copartition_groups:
                _int16s(out, g.source_topics)
                _int16s(out, g.source_topic_regex)
                _int16s(out, g.repartition_source_topics)
                out.append(b"\x00")
            out.append(b"\x00")
        out.append(b"\x00")
    elif isinstance(value, MemberMetadata):
        out += [
            write_compact_nullable_string(value.instance_id),
            write_compact_nullable_string(value.rack_id),
            write_compact_string(value.client_id),
            write_compact_string(value.client_host),
            _i.pack(value.rebalance_timeout_ms),
            _i.pack(value.topology_epoch),
            write_compact_string(value.process_id),
        ]
        if value.user_endpoint is None:
            out.append(_b.pack(-1))
        else:
            host, port = value.user_endpoint
            out += [_b.pack(1), write_compact_string(host), _H.pack(port), b"\x00"]
        _kvs(out, value.client_tags)
        out.append(b"\x00")
    elif isinstance(value, TargetEpochValue):
        out += [_i.pack(value.epoch), b"\x00"]
    elif isinstance(value, TaskSet):
        _tasks(out, value.active)
        _tasks(out, value.standby)
        _tasks(out, value.warmup)
        out.append(b"\x00")
    elif isinstance(value, CurrentAssignment):
        out += [_i.pack(value.member_epoch), _i.pack(value.previous_member_epoch), _b.pack(int(value.state))]
        _tasks(out, value.tasks.active)
        _tasks(out, value.tasks.standby)
        _tasks(out, value.tasks.warmup)
        _tasks(out, value.revoking_active)
        _tasks(out, {})  # standby and warm-up tasks are never pending revocation here
        _tasks(out, {})
        out.append(b"\x00")
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")
    return b"".join(out)


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.buf = memoryview(data)
        self.pos = 0

    def i16(self) -> int:
        (v,) = _h.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def i32(self) -> int:
        (v,) = _i.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def i64(self) -> int:
        (v,) = _q.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def i8(self) -> int:
        (v,) = _b.unpack_from(self.buf, self.pos)
        self.pos += 1
        return int(v)

    def u16(self) -> int:
        (v,) = _H.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def string(self) -> str:
        s, self.pos = read_compact_string(self.buf, self.pos)
        return s

    def nullable_string(self) -> str | None:
        s, self.pos = read_compact_nullable_string(self.buf, self.pos)
        return s

    def count(self) -> int:
        n, self.pos = read_compact_array_count(self.buf, self.pos)
        return max(n, 0)

    def skip_tags(self) -> None:
        n, self.pos = read_tag_count(self.buf, self.pos)
        for _ in range(n):
            _, _, end = read_tag_header(self.buf, self.pos)
            self.pos = end

    def strings(self) -> tuple[str, ...]:
        return tuple(self.string() for _ in range(self.count()))

    def kvs(self) -> tuple[tuple[str, str], ...]:
        out = []
        for _ in range(self.count()):
            k, v = self.string(), self.string()
            self.skip_tags()
            out.append((k, v))
        return tuple(out)

    def tasks(self) -> Tasks:
        out: dict[str, frozenset[int]] = {}
        for _ in range(self.count()):
            s = self.string()
            parts = frozenset(self.i32() for _ in range(self.count()))
            self.skip_tags()  # AssignmentEpochs (tag 0) and others
            if parts:
                out[s] = parts
        return out

    def topic_infos(self) -> tuple[TopicConfig, ...]:
        out = []
        for _ in range(self.count()):
            name, partitions, rf = self.string(), self.i32(), self.i16()
            configs = self.kvs()
            self.skip_tags()
            out.append(TopicConfig(name, partitions, rf, configs))
        return tuple(out)

    def int16s(self) -> tuple[int, ...]:
        return tuple(self.i16() for _ in range(self.count()))


def decode_value(key: RecordKey, data: bytes) -> RecordValue:
    r = _Reader(data)
    try:
        version = r.i16()
        if version != 0:
            raise DecodeError(f"unknown value version {version} for streams group record {key.kind.name}")
        kind = key.kind
        if kind is RecordKind.GROUP:
            epoch, mhash = r.i32(), r.i64()
            return GroupMetadataValue(epoch, mhash)
        if kind is RecordKind.TOPOLOGY:
            epoch = r.i32()
            subs = []
            for _ in range(r.count()):
                sid = r.string()
                sources, regex = r.strings(), r.strings()
                changelogs = r.topic_infos()
                sinks = r.strings()
                repartition = r.topic_infos()
                groups = []
                for _ in range(r.count()):
                    groups.append(CopartitionGroup(r.int16s(), r.int16s(), r.int16s()))
                    r.skip_tags()
                r.skip_tags()
                subs.append(Subtopology(sid, sources, regex, changelogs, sinks, repartition, tuple(groups)))
            return Topology(epoch, tuple(subs))
        if kind is RecordKind.MEMBER:
            instance, rack = r.nullable_string(), r.nullable_string()
            client_id, host = r.string(), r.string()
            rebalance, topology_epoch = r.i32(), r.i32()
            process = r.string()
            endpoint = None
            if r.i8() >= 0:
                endpoint = (r.string(), r.u16())
                r.skip_tags()
            tags = r.kvs()
            return MemberMetadata(instance, rack, client_id, host, process, endpoint, tags, topology_epoch, rebalance)
        if kind is RecordKind.TARGET_EPOCH:
            return TargetEpochValue(r.i32())
        if kind is RecordKind.TARGET:
            return TaskSet(r.tasks(), r.tasks(), r.tasks())
        epoch, prev, state = r.i32(), r.i32(), r.i8()
        active, standby, warmup, revoking = r.tasks(), r.tasks(), r.tasks(), r.tasks()
        try:
            member_state = MemberState(state)
        except ValueError:
            member_state = MemberState.UNKNOWN
        return CurrentAssignment(epoch, prev, member_state, TaskSet(active, standby, warmup), revoking)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad streams group value ({key.kind.name}): {e}") from None
