"""Fetch v0-3 (down-converted to magic 0/1) and ListOffsets v0 against a real broker process."""

from __future__ import annotations

import time

import pytest

from kafkapy.config import TOPIC_CONFIGS
from kafkapy.protocol import compression as C
from kafkapy.protocol import legacy as L
from kafkapy.protocol import records as R
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.list_offsets_request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.server.handlers.fetch import DOWNCONVERSION_CONFIG
from kafkapy.server.handlers.list_offsets import cap_at_high_watermark, offsets_before
from tests.server.rawclient import RawClient

TS = 1_700_000_000_000


def _create_code(c: RawClient, name: str, **configs: str) -> int:
    topic = CreatableTopic(
        name=name,
        num_partitions=1,
        replication_factor=1,
        configs=[CreatableTopicConfig(name=k.replace("_", "."), value=v) for k, v in configs.items()],
    )
    return int(c.request(CreateTopicsRequest(topics=[topic], timeout_ms=5000), 5).topics[0].error_code)


def _create(c: RawClient, name: str, **configs: str) -> None:
    assert _create_code(c, name, **configs) == ErrorCode.NONE


def _produce(c: RawClient, topic: str, batch: bytes) -> int:
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=batch)])],
    )
    part = c.request(req, 8).responses[0].partition_responses[0]
    assert part.error_code == ErrorCode.NONE, part
    return int(part.base_offset)


def _batch(first: int, n: int, codec: int = 0) -> bytes:
    recs = [(f"k{first + i}".encode(), f"v{first + i}".encode(), [("h", b"x")], TS + first + i) for i in range(n)]
    return R.build_batch(recs, compression=codec)


def _fetch(
    c: RawClient, topic: str, offset: int, version: int, partition_max: int = 1 << 20, max_bytes: int = 1 << 20
) -> tuple[int, int, bytes]:
    req = FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=partition_max)],
            )
        ],
    )
    pd = c.request(req, version).responses[0].partitions[0]
    return pd.error_code, pd.high_watermark, bytes(pd.records or b"")


def _msgs(buf: bytes) -> list[tuple[int, int, int, bytes | None, bytes | None]]:
    return [(m.offset, m.magic, m.timestamp, m.key, m.value) for m in L.iter_message_set(buf, allow_partial=True)]


def test_api_versions_advertise_fetch_from_v0(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        keys = {k.api_key: (k.min_version, k.max_version) for k in c.request(ApiVersionsRequest(), 0).api_keys}
    assert keys[1][0] == 0 and keys[2][0] == 0


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_fetch_v0_3_down_converts(kafka_broker, version: int) -> None:
    magic = 0 if version <= 1 else 1
    topic = f"old-fetch-{version}"
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, topic)
        _produce(c, topic, _batch(0, 3))
        _produce(c, topic, _batch(3, 3, C.GZIP))
        _produce(c, topic, _batch(6, 2, C.SNAPPY))
        _produce(c, topic, _batch(8, 2, C.LZ4))
        err, hw, data = _fetch(c, topic, 0, version)
        assert err == ErrorCode.NONE and hw == 10
        got = _msgs(data)
        assert [(o, m, k, v) for o, m, _t, k, v in got] == [
            (i, magic, f"k{i}".encode(), f"v{i}".encode()) for i in range(10)
        ]
        assert [t for *_, t, _k, _v in got] == ([TS + i for i in range(10)] if magic else [-1] * 10)
        codecs = []
        pos = 0
        while pos < len(data):
            m, pos = L.read_message(data, pos)
            codecs.append(m.compression)
        assert codecs == [0, 0, 0, C.GZIP, C.SNAPPY, C.LZ4]
        # from the middle of a compressed batch: the whole wrapper (old consumers skip what they passed)
        _, _, mid = _fetch(c, topic, 4, version)
        assert [o for o, *_ in _msgs(mid)][:3] == [3, 4, 5]
        # from the middle of an uncompressed batch: only what follows
        _, _, mid = _fetch(c, topic, 1, version)
        assert [o for o, *_ in _msgs(mid)][:2] == [1, 2]
        # at the log end: nothing
        assert _fetch(c, topic, 10, version)[2] == b""
        assert _fetch(c, topic, 11, version)[0] == ErrorCode.OFFSET_OUT_OF_RANGE


def test_fetch_v0_limits_whole_messages(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "old-limits")
        for i in range(5):
            _produce(c, "old-limits", _batch(i * 4, 4))
        # a tiny partition limit: the first batch is read whole (min one message) and converted whole
        _, _, data = _fetch(c, "old-limits", 0, 0, partition_max=10)
        offsets = [o for o, *_ in _msgs(data)]
        assert offsets == [0, 1, 2, 3]  # the first batch whole, as Kafka 3.9 sends it for v3
        _, _, full = _fetch(c, "old-limits", 0, 3)
        assert len(_msgs(full)) == 20
        ends = []
        pos = 0
        while pos < len(full):
            pos = L.read_message(full, pos)[1]
            ends.append(pos)
        # v3's response max_bytes bounds the converted bytes too
        _, _, capped = _fetch(c, "old-limits", 0, 3, max_bytes=ends[6] + 3)
        assert len(capped) == ends[6]
        assert [o for o, *_ in _msgs(capped)] == list(range(7))


def test_downconversion_disabled_and_zstd(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        if DOWNCONVERSION_CONFIG in TOPIC_CONFIGS:  # Kafka 3.x's topic config, absent from Kafka 4's
            _create(c, "old-off", message_downconversion_enable="false")
            _produce(c, "old-off", _batch(0, 2))
            for v in (0, 1, 2, 3):
                assert _fetch(c, "old-off", 0, v)[:2] == (ErrorCode.UNSUPPORTED_VERSION, -1)
            assert _fetch(c, "old-off", 0, 4)[0] == ErrorCode.NONE
        else:
            assert _create_code(c, "old-off", message_downconversion_enable="false") == ErrorCode.INVALID_CONFIG

        _create(c, "old-zstd-topic", compression_type="zstd")
        _produce(c, "old-zstd-topic", _batch(0, 2))
        assert _fetch(c, "old-zstd-topic", 0, 2)[:2] == (ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, -1)

        _create(c, "old-zstd-batch")
        _produce(c, "old-zstd-batch", _batch(0, 2))
        _produce(c, "old-zstd-batch", _batch(2, 2, C.ZSTD))
        err, _, data = _fetch(c, "old-zstd-batch", 0, 3)
        assert err == ErrorCode.NONE and [o for o, *_ in _msgs(data)] == [0, 1]
        assert _fetch(c, "old-zstd-batch", 2, 3)[0] == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
        assert _fetch(c, "old-zstd-batch", 2, 10)[0] == ErrorCode.NONE


def _list_v0(c: RawClient, topic: str, ts: int, n: int, replica_id: int = -1) -> tuple[int, list[int]]:
    req = ListOffsetsRequest(
        replica_id=replica_id,
        topics=[
            ListOffsetsTopic(
                name=topic, partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts, max_num_offsets=n)]
            )
        ],
    )
    p = c.request(req, 0).topics[0].partitions[0]
    return p.error_code, list(p.old_style_offsets)


def test_list_offsets_v0_offsets_before(kafka_broker) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "old-offsets", segment_ms="1")
        for i in range(4):
            time.sleep(0.003)  # segment.ms=1 counts from the segment's creation: on tmpfs two appends fit in 1 ms
            _produce(c, "old-offsets", _batch(i * 2, 2))  # each append rolls: bases 0, 2, 4, 6
        before_last = int(time.time() * 1000)
        assert _list_v0(c, "old-offsets", -1, 1) == (ErrorCode.NONE, [8])
        # the log end, then every segment's base offset, newest first
        offsets = [8, 6, 4, 2, 0]
        assert _list_v0(c, "old-offsets", -1, 10) == (ErrorCode.NONE, offsets)
        assert _list_v0(c, "old-offsets", -1, 3) == (ErrorCode.NONE, offsets[:3])
        assert _list_v0(c, "old-offsets", -2, 5) == (ErrorCode.NONE, [0])
        assert _list_v0(c, "old-offsets", -1, 0) == (ErrorCode.NONE, [])
        # no segment was last modified before 1970
        assert _list_v0(c, "old-offsets", 0, 5) == (ErrorCode.NONE, [])
        # a time after every write: the log end and the newest segments
        future = before_last + 3_600_000
        assert _list_v0(c, "old-offsets", future, 2) == (ErrorCode.NONE, offsets[:2])
        assert _list_v0(c, "missing-topic", -1, 1)[0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_special_timestamps_need_their_versions(kafka_broker) -> None:
    """-3 (max timestamp) came with ListOffsets v7, -4 (earliest local) with v8, -5 (latest tiered)
    with v9: below those Kafka 3.9 and 4.3.1 answer UNSUPPORTED_VERSION, unknown topic or not."""
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "old-special")
        _produce(c, "old-special", _batch(0, 2))
        for topic in ("old-special", "missing-topic"):
            assert _list_v0(c, topic, -3, 1) == (ErrorCode.UNSUPPORTED_VERSION, [])
        for ts, since in ((-3, 7), (-4, 8), (-5, 9)):
            for version in (1, since - 1, since):
                req = ListOffsetsRequest(
                    replica_id=-1,
                    topics=[
                        ListOffsetsTopic(
                            name="old-special",
                            partitions=[ListOffsetsPartition(partition_index=0, timestamp=ts, max_num_offsets=1)],
                        )
                    ],
                )
                p = c.request(req, version).topics[0].partitions[0]
                want = ErrorCode.NONE if version >= since else ErrorCode.UNSUPPORTED_VERSION
                assert (p.error_code, version, ts) == (want, version, ts)


def test_offsets_before_pure() -> None:
    # (base, last modified, size): three segments, the active one not empty
    segs = [(0, 1000, 50), (10, 2000, 50), (20, 3000, 50)]
    assert offsets_before(segs, 0, 25, 9999, -1, 10) == [25, 20, 10, 0]
    assert offsets_before(segs, 0, 25, 9999, -2, 10) == [0]
    assert offsets_before(segs, 0, 25, 9999, 2500, 10) == [10, 0]
    assert offsets_before(segs, 0, 25, 9999, 2000, 1) == [10]  # modified at t counts as before t
    assert offsets_before(segs, 0, 25, 9999, 999, 10) == []
    assert offsets_before(segs, 5, 25, 9999, -1, 10) == [25, 20, 10, 5]  # the log start clamps the first base
    # an empty active segment: no log-end entry
    assert offsets_before([(0, 1000, 50), (10, 2000, 0)], 0, 10, 9999, -1, 5) == [10, 0]
    assert offsets_before(segs, 0, 25, 9999, -3, 5) == []


def test_cap_at_high_watermark() -> None:
    assert cap_at_high_watermark([25, 20, 10, 0], 22) == [22, 20, 10, 0]
    assert cap_at_high_watermark([25, 20, 10, 0], 15) == [15, 10, 0]
    assert cap_at_high_watermark([25, 20], 25) == [25, 20]


def _committed_txn(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-txn", "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(n):
        p.produce(topic, key=b"t", value=f"t{i}".encode(), partition=0)
    p.commit_transaction(30)


def _fetch_wait(c: RawClient, topic: str, offset: int, version: int, max_wait_ms: int, partition_max: int) -> bytes:
    req = FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=1 << 20,
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=partition_max)],
            )
        ],
    )
    pd = c.request(req, version).responses[0].partitions[0]
    assert pd.error_code == ErrorCode.NONE
    return bytes(pd.records or b"")


def test_markers_are_read_past_and_waited_past(kafka_broker) -> None:
    """A commit marker converts to nothing: a read from it goes on to the data after it, and at the
    log end the fetch waits its max_wait_ms instead of answering an empty response at once."""
    with RawClient(kafka_broker.bootstrap) as c:
        _create(c, "old-markers")
        _committed_txn(kafka_broker.bootstrap, "old-markers", 3)  # offsets 0-2, marker at 3
        # at the marker, the log ending there: an empty answer after the wait, not at once
        started = time.monotonic()
        assert _fetch_wait(c, "old-markers", 3, 1, 400, 1 << 20) == b""
        assert time.monotonic() - started >= 0.35
        _produce(c, "old-markers", _batch(4, 2))
        # a 1-byte limit reads the marker alone (one batch at least), then reads on
        data = _fetch_wait(c, "old-markers", 3, 1, 0, 1)
        assert [o for o, *_ in _msgs(data)][:1] == [4]
        data = _fetch_wait(c, "old-markers", 0, 2, 0, 1 << 20)
        assert [(o, v) for o, _m, _t, _k, v in _msgs(data)] == [
            (0, b"t0"),
            (1, b"t1"),
            (2, b"t2"),
            (4, b"v4"),
            (5, b"v5"),
        ]
