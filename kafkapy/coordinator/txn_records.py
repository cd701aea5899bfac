"""Records of `__transaction_state`: Kafka's TransactionLogKey/Value layouts, plain struct.

Key: version int16 (0), transactional id (string). Value: version int16
(0), producer id int64, producer epoch int16, transaction timeout ms int32,
status int8, partitions (nullable array of topic string + int32 array),
last update timestamp int64, start timestamp int64. We write and read value
version 0, the non-flexible layout every Kafka tool reads. A null value is
the tombstone of an expired transactional id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct
from struct import error as StructError

from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.primitives import read_string, write_string

KEY_VERSION = 0
VALUE_VERSION = 0

_H = Struct(">h")
_I = Struct(">i")
_VALUE_HEAD = Struct(">hqhib")  # version, producer id, epoch, timeout, status
_QQ = Struct(">qq")
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
    out = [_VALUE_HEAD.pack(VALUE_VERSION, v.producer_id, v.producer_epoch, v.timeout_ms, v.status)]
    out.append(_I.pack(len(by_topic)))
    for t, parts in by_topic.items():
        out.append(write_string(t))
        out.append(_I.pack(len(parts)))
        out.extend(_I.pack(p) for p in parts)
    out.append(_QQ.pack(v.last_update_ms, v.start_ms))
    return b"".join(out)


def decode_value(data: bytes) -> TxnValue:
    buf = memoryview(data)
    try:
        version, pid, epoch, timeout, status = _VALUE_HEAD.unpack_from(buf, 0)
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
