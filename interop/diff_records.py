"""Differential steps for record validation (issue 14): hand-built batches, good and bad, produced
to Apache Kafka and to kafkapy, and what each stored (read back by Fetch and ListOffsets).

Each case gets its own partition of one of a few topics, so a rejected batch, or one that a broker
wrongly accepted, cannot change the answers of the next case. Registered in interop/differential.py
after its own script.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from interop.raw_batches import _now, raw_batch, rec, three
from kafkapy.protocol import legacy, records
from kafkapy.protocol.messages.fetch_response import FetchResponse
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

PLAIN = "diff-records"  # CreateTime, delete
APPEND_TIME = "diff-records-append-time"  # message.timestamp.type=LogAppendTime
COMPACT = "diff-records-compact"  # cleanup.policy=compact
WINDOW = "diff-records-window"  # message.timestamp.before/after.max.ms = 1 h
RECOMPRESS = "diff-records-zstd"  # compression.type=zstd
HOUR = 3_600_000
PARTITIONS = 48
NOT_LEADER = frozenset({6})


def stored(resp: Any) -> Any:
    """What a Fetch answer holds: per batch, its codec, timestamp type, count, whether maxTimestamp is
    the largest record timestamp, and the records' keys and offsets (times are not comparable)."""
    out = []
    assert isinstance(resp, FetchResponse)
    for t in resp.responses:
        for p in t.partitions:
            data = bytes(p.records or b"")
            for pos, h in records.iter_batches(data):
                rs = list(records.iter_records(data, pos=pos, check_crc=True))
                out.append(
                    {
                        "codec": h.compression,
                        "timestamp_type": h.timestamp_type,
                        "count": h.records_count,
                        "max_is_records_max": h.max_timestamp == max(r.timestamp for r in rs),
                        "max_timestamp_unset": h.max_timestamp == -1,
                        "offsets": [r.offset for r in rs],
                        "keys": [None if r.key is None else r.key.decode() for r in rs],
                    }
                )
    return out


def _found(data: Any) -> Any:
    """ListOffsets by time: whether a timestamp was found (its value is the run's clock)."""
    for t in data["topics"]:
        for p in t["partitions"]:
            p["timestamp"] = "set" if p["timestamp"] >= 0 else p["timestamp"]
    return data


def _with_magic(data: bytes, magic: int) -> bytes:
    b = bytearray(data)
    b[records.MAGIC_OFFSET] = magic
    struct.pack_into(">I", b, records.CRC_OFFSET, records.compute_crc(b, 0, len(b)))
    return bytes(b)


def _fetch_shape(data: Any) -> Any:
    """A Fetch answer without its session id (v7+ opens none here) and record sizes (codec-dependent)."""
    for t in data.get("responses", []):
        for p in t["partitions"]:
            p["records"] = "some" if p.get("records") and p["records"].get("bytes") else "none"
    return data


def produce_v(topic_name: str, partition: int, data: bytes, txn: str | None = None) -> ProduceRequest:
    from interop.differential import produce

    req = produce(topic_name, partition, data)
    if txn is not None:
        req = ProduceRequest(
            transactional_id=txn,
            acks=-1,
            timeout_ms=5000,
            topic_data=[
                TopicProduceData(name=topic_name, partition_data=[PartitionProduceData(index=partition, records=data)])
            ],
        )
    return req


class Cases:
    """Hands out one partition per case of a topic."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, name: str) -> int:
        n = self.next.get(name, 0)
        self.next[name] = n + 1
        return n


if TYPE_CHECKING:
    from interop.differential import Step


def _case(
    cases: Cases,
    name: str,
    topic_name: str,
    build: Any,
    version: int = 9,
    *,
    read_back: bool = True,
    txn: str | None = None,
) -> list[Step]:
    from interop.differential import Step, fetch

    p = cases.take(topic_name)
    steps = [Step(f"records_{name}", lambda: produce_v(topic_name, p, build(), txn), version, retriable=NOT_LEADER)]
    if read_back:
        steps.append(Step(f"records_{name}_stored", lambda: fetch(topic_name, p, 0), 12, inspect=stored))
    return steps


def steps() -> list[Step]:
    """The steps (interop.differential imports this module at its end and adds them to its SCRIPT)."""
    from interop.differential import Step, create, fetch, list_offsets, produce, topic

    c = Cases()
    now = _now
    steps: list[Step] = [
        Step(
            "create_records_topics",
            lambda: create(
                topic(PLAIN, PARTITIONS),
                topic(APPEND_TIME, 8, message_timestamp_type="LogAppendTime"),
                topic(COMPACT, 8, cleanup_policy="compact"),
                topic(
                    WINDOW,
                    8,
                    message_timestamp_before_max_ms=str(HOUR),
                    message_timestamp_after_max_ms=str(HOUR),
                ),
                topic(RECOMPRESS, 8, compression_type="zstd"),
            ),
            4,
        ),
    ]
    # the max timestamp: recomputed from the records (header says -1, or less than the records)
    p_max = c.take(PLAIN)
    steps += [
        Step("records_max_timestamp_unset", lambda: produce(PLAIN, p_max, three(max_ts=-1)), 9, retriable=NOT_LEADER),
        Step("records_max_timestamp_unset_stored", lambda: fetch(PLAIN, p_max, 0), 12, inspect=stored),
        Step("records_max_timestamp_unset_by_time", lambda: list_offsets(PLAIN, [p_max], now() - 60_000), 7, _found),
    ]
    steps += _case(c, "max_timestamp_low", PLAIN, lambda: three(max_ts=now() - 5000))
    steps += _case(c, "max_timestamp_high", PLAIN, lambda: three(max_ts=now() + 5000))
    # record bytes against the count
    steps += _case(c, "count_above_records", PLAIN, lambda: raw_batch(rec(0) + rec(1), 3))
    steps += _case(c, "count_below_records", PLAIN, lambda: raw_batch(rec(0) + rec(1) + rec(2), 2))
    steps += _case(c, "record_length_past_end", PLAIN, lambda: raw_batch(rec(0) + rec(1, length_fix=5), 2))
    steps += _case(c, "record_length_short", PLAIN, lambda: raw_batch(rec(0) + rec(1, length_fix=-2) + b"\x00\x00", 2))
    steps += _case(c, "record_length_zero", PLAIN, lambda: raw_batch(rec(0) + b"\x00", 2))
    steps += _case(c, "trailing_garbage", PLAIN, lambda: raw_batch(rec(0) + rec(1) + b"\x07\x07", 2))
    steps += _case(c, "negative_header_count", PLAIN, lambda: raw_batch(rec(0)[:-1] + b"\x03", 1))
    steps += _case(c, "overlong_varint", PLAIN, lambda: raw_batch(b"\xff\xff\xff\xff\xff\xff\x01" + rec(0)[1:], 1))
    # offset deltas
    steps += _case(c, "offset_deltas_repeat", PLAIN, lambda: raw_batch(rec(0) + rec(0) + rec(2), 3))
    steps += _case(c, "offset_deltas_swapped", PLAIN, lambda: raw_batch(rec(1) + rec(0), 2))
    steps += _case(c, "offset_deltas_gzip_repeat", PLAIN, lambda: raw_batch(rec(0) + rec(0) + rec(2), 3, codec=1))
    # codecs and payloads
    for codec in (5, 6, 7):
        steps += _case(c, f"codec_{codec}", PLAIN, lambda codec=codec: three(codec=codec))
    steps += _case(
        c, "gzip_garbage", PLAIN, lambda: raw_batch(b"\x1f\x8b\x08\x00garbage-not-deflate", 1, codec=1, compress=False)
    )
    steps += _case(c, "snappy_garbage", PLAIN, lambda: raw_batch(b"\xff\xfe\xfd\xfc" * 4, 1, codec=2, compress=False))
    steps += _case(c, "lz4_garbage", PLAIN, lambda: raw_batch(b"\x04\x22\x4d\x18garbage", 1, codec=3, compress=False))
    steps += _case(c, "zstd_garbage", PLAIN, lambda: raw_batch(b"\x28\xb5\x2f\xfdgarbage", 1, codec=4, compress=False))
    steps += _case(c, "gzip_count_above_records", PLAIN, lambda: raw_batch(rec(0) + rec(1), 3, codec=1))
    steps += _case(c, "gzip_count_below_records", PLAIN, lambda: raw_batch(rec(0) + rec(1) + rec(2), 2, codec=1))
    steps += _case(c, "gzip_good", PLAIN, lambda: three(codec=1))
    steps += _case(c, "lz4_good_max_unset", PLAIN, lambda: three(codec=3, max_ts=-1))
    # producer id, epoch and sequence against the flags
    steps += _case(c, "pid_without_sequence", PLAIN, lambda: three(pid=4243, epoch=0, seq=-1))
    steps += _case(c, "sequence_without_pid", PLAIN, lambda: three(pid=-1, epoch=-1, seq=0))
    steps += _case(c, "epoch_without_pid", PLAIN, lambda: three(pid=-1, epoch=3, seq=-1))
    steps += _case(c, "transactional_without_pid", PLAIN, lambda: three(attrs=0x10), txn="diff-records-txn")
    steps += _case(c, "base_offset_nonzero", PLAIN, lambda: three(base_offset=5))
    steps += _case(c, "delete_horizon_flag", PLAIN, lambda: three(attrs=0x40))
    # timestamp types
    steps += _case(c, "log_append_time_flag_unset", PLAIN, lambda: three(attrs=0x08, max_ts=-1))
    steps += _case(c, "log_append_time_flag_set", PLAIN, lambda: three(attrs=0x08))
    steps += _case(c, "append_time_topic", APPEND_TIME, lambda: three())
    steps += _case(c, "append_time_topic_gzip", APPEND_TIME, lambda: three(codec=1))
    steps += _case(c, "append_time_topic_flag", APPEND_TIME, lambda: three(attrs=0x08))
    # timestamp window (KIP-937)
    steps += _case(c, "window_inside", WINDOW, lambda: three(base_ts=now() - HOUR // 2))
    steps += _case(
        c,
        "window_too_old",
        WINDOW,
        lambda: raw_batch(rec(0, 0) + rec(1, 2 * HOUR) + rec(2, 2 * HOUR), 3, base_ts=now() - 2 * HOUR),
    )
    steps += _case(c, "window_too_new", WINDOW, lambda: raw_batch(rec(0, 0) + rec(1, 2 * HOUR), 2, base_ts=now()))
    steps += _case(c, "window_unset_timestamp", WINDOW, lambda: raw_batch(rec(0, 0), 1, base_ts=-1, max_ts=-1))
    steps += _case(c, "window_too_old_v7", WINDOW, lambda: three(base_ts=now() - 3 * HOUR), 7)
    steps += _case(c, "window_too_old_gzip", WINDOW, lambda: three(base_ts=now() - 3 * HOUR, codec=1))
    # compacted topics need keys
    steps += _case(c, "compact_keys", COMPACT, lambda: three())
    steps += _case(c, "compact_no_key", COMPACT, lambda: raw_batch(rec(0) + rec(1, key=None) + rec(2, key=None), 3))
    steps += _case(c, "compact_no_key_gzip", COMPACT, lambda: raw_batch(rec(0, key=None) + rec(1), 2, codec=1))
    steps += _case(c, "compact_no_key_v7", COMPACT, lambda: raw_batch(rec(0, key=None), 1), 7)
    steps += _case(
        c,
        "compact_no_key_and_old",
        COMPACT,
        lambda: raw_batch(rec(0, key=None) + rec(1, -400 * 24 * HOUR), 2),
    )
    # broker-side compression (compression.type)
    steps += _case(c, "recompress_none", RECOMPRESS, lambda: three())
    steps += _case(c, "recompress_gzip", RECOMPRESS, lambda: three(codec=1))
    steps += _case(c, "recompress_zstd_kept", RECOMPRESS, lambda: three(codec=4))
    steps += _case(c, "recompress_max_unset", RECOMPRESS, lambda: three(max_ts=-1))
    # a zstd topic cannot be read below Fetch v10 (KIP-110)
    p_zstd = c.take(RECOMPRESS)
    steps += [
        Step("records_zstd_topic_produce", lambda: produce_v(RECOMPRESS, p_zstd, three()), 9, retriable=NOT_LEADER),
        *(
            Step(f"records_zstd_topic_fetch_v{v}", lambda: fetch(RECOMPRESS, p_zstd, 0), v, _fetch_shape)
            for v in (4, 9, 10)
        ),
    ]
    # message formats other than v2 through Produce v3+
    for magic in (0, 1):
        steps += _case(
            c,
            f"magic_{magic}_v9",
            PLAIN,
            lambda magic=magic: legacy.build_message_set(
                magic, [(b"k", b"v")] if magic == 0 else [(b"k", b"v", now())]
            ),
            read_back=False,
        )
    steps += _case(c, "magic_3", PLAIN, lambda: _with_magic(three(), 3), read_back=False)
    return steps
