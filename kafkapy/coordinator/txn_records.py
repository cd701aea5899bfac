"""Records of `__transaction_state`: Kafka's TransactionLogKey/Value layouts, plain struct.

Key: version int16 (0), transactional id (string). Value: version int16
(0), producer id int64, producer epoch int16, transaction timeout ms int32,
status int8, partitions (nullable array of topic string + int32 array),
last update timestamp int64, start timestamp int64. Version 0 is written
for transactions v1; a transaction under transactions v2 (KIP-890 part 2)
is written as version 1, Kafka's flexible layout, whose tagged fields hold
the previous and next producer ids (tags 0, 1) and the client's transaction
version (tag 2). Both are read. A null value is the tombstone of an expired
transactional id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct
from struct import error as StructError

from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.primitives import (
    read_compact_array_count,
    read_compact_nullable_array_count,
    read_compact_string,
    read_string,
    read_tag_count,
    read_tag_header,
    write_compact_string,
    write_string,
    write_tagged,
    write_uvarint,
)

KEY_VERSION = 0
VALUE_VERSION = 0
FLEXIBLE_VALUE_VERSION = 1  # written when a transaction runs under transactions v2

_H = Struct(">h")
_I = Struct(">i")
_VALUE_HEAD = Struct(">hqhib")  # version, producer id, epoch, timeout, status
_QQ = Struct(">qq")
_Q = Struct(">q")
_FAULTS = (StructError, IndexError, ValueError, UnicodeDecodeError)

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class TxnValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    status: int  # TxnState code (txn_state.STATUS_CODES)
    partitions: frozenset[TopicPartition] = field(default_factory=frozenset)
    last_update_ms: int = -1
    start_ms: int = -1
    previous_producer_id: int = -1  # transactions v2: the id the last epoch overflow replaced
    next_producer_id: int = -1  # transactions v2: the id taken when this transaction ends (epoch overflow)
    client_tv: int = 0  # the client's transaction version (2: an epoch bump at every end)


def encode_key(transactional_id: str) -> bytes:
    return _H.pack(KEY_VERSION) + write_string(transactional_id)


def decode_key(data: bytes) -> str:
    buf = memoryview(data)
    try:
        (version,) = _H.unpack_from(buf, 0)
        if version != KEY_VERSION:
            raise DecodeError(f"unknown __transaction_state key version {version}")
        txn_id, _ = read_string(buf, 2)
        return txn_id
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad __transaction_state key: {e}") from None


def encode_value(v: TxnValue) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for t, p in sorted(v.partitions):
        by_topic.setdefault(t, []).append(p)
    if v.client_tv >= 2 or v.previous_producer_id >= 0 or v.next_producer_id >= 0:
        return _encode_flexible(v, by_topic)
    out = [_VALUE_HEAD.pack(VALUE_VERSION, v.producer_id, v.producer_epoch, v.timeout_ms, v.status)]
    out.append(_I.pack(len(by_topic)))
    for t, parts in by_topic.items():
        out.append(write_string(t))
        out.append(_I.pack(len(parts)))
        out.extend(_I.pack(p) for p in parts)
    out.append(_QQ.pack(v.last_update_ms, v.start_ms))
    return b"".join(out)


def _encode_flexible(v: TxnValue, by_topic: dict[str, list[int]]) -> bytes:
    """Value version 1: compact arrays and strings, tagged fields at each struct's end."""
    out: list[bytes] = [
        _VALUE_HEAD.pack(FLEXIBLE_VALUE_VERSION, v.producer_id, v.producer_epoch, v.timeout_ms, v.status)
    ]
    out.append(write_uvarint(len(by_topic) + 1))
    for t, parts in by_topic.items():
        out.append(write_compact_string(t))
        out.append(write_uvarint(len(parts) + 1))
        out.extend(_I.pack(p) for p in parts)
        out.append(write_uvarint(0))  # the partition entry's tagged fields
    out.append(_QQ.pack(v.last_update_ms, v.start_ms))
    tags: list[tuple[int, bytes]] = []
    if v.previous_producer_id != -1:
        tags.append((0, _Q.pack(v.previous_producer_id)))
    if v.next_producer_id != -1:
        tags.append((1, _Q.pack(v.next_producer_id)))
    if v.client_tv != 0:
        tags.append((2, _H.pack(v.client_tv)))
    write_tagged(out, tags)
    return b"".join(out)


def decode_value(data: bytes) -> TxnValue:
    buf = memoryview(data)
    try:
        version, pid, epoch, timeout, status = _VALUE_HEAD.unpack_from(buf, 0)
        if version == FLEXIBLE_VALUE_VERSION:
            return _decode_flexible(buf, pid, epoch, timeout, status)
        if version != VALUE_VERSION:
            raise DecodeError(f"unknown __transaction_state value version {version}")
        pos = _VALUE_HEAD.size
        (count,) = _I.unpack_from(buf, pos)
        pos += 4
        parts: set[TopicPartition] = set()
        if count > len(buf):
            raise DecodeError(f"bad partition count {count}")
        for _ in range(max(count, 0)):
            topic, pos = read_string(buf, pos)
            (n,) = _I.unpack_from(buf, pos)
            pos += 4
            if n < 0 or n > len(buf):
                raise DecodeError(f"bad partition count {n}")
            for _ in range(n):
                parts.add((topic, _I.unpack_from(buf, pos)[0]))
                pos += 4
        last_update, start = _QQ.unpack_from(buf, pos)
        return TxnValue(pid, epoch, timeout, status, frozenset(parts), last_update, start)
    except DecodeError:
        raise
    except _FAULTS as e:
        raise DecodeError(f"bad __transaction_state value: {e}") from None


def _skip_tags(buf: memoryview, pos: int) -> int:
    count, pos = read_tag_count(buf, pos)
    for _ in range(count):
        _, _, pos = read_tag_header(buf, pos)
    return pos


def _decode_flexible(buf: memoryview, pid: int, epoch: int, timeout: int, status: int) -> TxnValue:
    pos = _VALUE_HEAD.size
    count, pos = read_compact_nullable_array_count(buf, pos)
    parts: set[TopicPartition] = set()
    for _ in range(max(count, 0)):
        topic, pos = read_compact_string(buf, pos)
        n, pos = read_compact_array_count(buf, pos)
        for _ in range(n):
            parts.add((topic, _I.unpack_from(buf, pos)[0]))
            pos += 4
        pos = _skip_tags(buf, pos)
    last_update, start = _QQ.unpack_from(buf, pos)
    pos += _QQ.size
    v = TxnValue(pid, epoch, timeout, status, frozenset(parts), last_update, start)
    tags, pos = read_tag_count(buf, pos)
    for _ in range(tags):
        tag, start, pos = read_tag_header(buf, pos)
        if tag == 0:
            (v.previous_producer_id,) = _Q.unpack_from(buf, start)
        elif tag == 1:
            (v.next_producer_id,) = _Q.unpack_from(buf, start)
        elif tag == 2:
            (v.client_tv,) = _H.unpack_from(buf, start)
    return v
