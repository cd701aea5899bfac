"""Replication: the leader's bookkeeping (ReplicaManager) on real logs, and the
follower's fetcher against a real kafkapy broker subprocess acting as leader."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from kafkapy.client import BrokerConnection, KafkaClient
from kafkapy.cluster.metadata import BrokerInfo, PartitionInfo, TopicInfo
from kafkapy.cluster.replication import ReplicaManager
from kafkapy.config import BrokerConfig
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.delete_records_request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kafkapy.server.fetch_sessions import FetchSessionCache
from kafkapy.server.services import BrokerServices
from kafkapy.storage.log_manager import LogManager
from kafkapy.testing import BrokerProcess
from tests.storage.helpers import make_batch

TOPIC = "t"
ME = 1


class DictView:
    """A ClusterView over dicts; alter_isr is a compare-and-swap on the partition epoch."""

    def __init__(self, me: int, brokers: dict[int, tuple[str, int]] | None = None) -> None:
        self.cluster_id = "test-cluster"
        self._brokers = {n: BrokerInfo(n, h, p) for n, (h, p) in (brokers or {me: ("127.0.0.1", 1)}).items()}
        self.broker = self._brokers.get(me) or BrokerInfo(me, "127.0.0.1", 1)
        self._topics: dict[str, TopicInfo] = {}
        self.alter_calls: list[tuple[str, int, list[int], int]] = []

    @property
    def controller_id(self) -> int:
        return self.broker.node_id

    def brokers(self) -> list[BrokerInfo]:
        return sorted(self._brokers.values(), key=lambda b: b.node_id)

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return self._brokers.get(node_id)

    def topics(self) -> Iterable[TopicInfo]:
        return self._topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self._topics.values() if t.topic_id == topic_id), None)

    def add_topic(
        self,
        name: str,
        parts: list[PartitionInfo],
        topic_id: uuid.UUID | None = None,
        configs: dict[str, str] | None = None,
    ) -> TopicInfo:
        info = TopicInfo(name, topic_id or uuid.uuid4(), parts, dict(configs or {}))
        self._topics[name] = info
        return info

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        self.alter_calls.append((topic, index, list(isr), partition_epoch))
        part = self._topics[topic].partitions[index]
        if part.partition_epoch != partition_epoch:
            return None
        part.isr, part.partition_epoch = list(isr), partition_epoch + 1
        return PartitionInfo(
            part.index, part.leader, list(part.replicas), list(part.isr), part.leader_epoch, part.partition_epoch
        )


def services_over(config: BrokerConfig, view: Any, logs: LogManager, data_dir: Path) -> BrokerServices:
    """Broker services over a test ClusterView (handlers here only read the metadata)."""
    return BrokerServices(
        config=config,
        metadata=view,
        logs=logs,
        replicas=ReplicaManager(config, view, logs),
        data_dir=data_dir,
        advertised=view.broker,
        fetch_sessions=FetchSessionCache(max_sessions=1000),
    )


def make_state(tmp: Path, view: DictView, **settings: Any) -> BrokerServices:
    config = BrokerConfig.from_pairs([(k.replace("_", "."), str(v)) for k, v in settings.items()])
    logs = LogManager(tmp / "data", auto_high_watermark=False, sync=False)
    return services_over(config, view, logs, tmp / "data")


def leader_setup(
    tmp: Path, replicas: list[int], isr: list[int] | None = None, epoch: int = 1, **settings: Any
) -> tuple[BrokerServices, DictView, ReplicaManager, PartitionInfo]:
    view = DictView(ME)
    part = PartitionInfo(0, ME, list(replicas), list(isr if isr is not None else replicas), epoch, 0)
    view.add_topic(TOPIC, [part])
    state = make_state(tmp, view, **settings)
    state.logs.create(TOPIC, 0)
    rm = state.replicas
    rm.apply(TOPIC, part)
    return state, view, rm, part


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


def append(state: BrokerServices, n: int, epoch: int = 1) -> int:
    plog = state.replicas.partition_log(TOPIC, 0)
    assert plog is not None
    return plog.append(make_batch(n), leader_epoch=epoch).last_offset + 1


# ----------------------------------------------------------------- leader side


def test_become_leader_records_epoch_start_and_keeps_hw(tmp_path: Path) -> None:
    async def body() -> None:
        state, _view, rm, _part = leader_setup(tmp_path, [1, 2], epoch=0)
        plog = state.replicas.partition_log(TOPIC, 0)
        assert plog is not None
        append(state, 4, epoch=0)
        assert plog.high_watermark == 0  # follower 2 has not fetched
        rm.on_follower_fetch(TOPIC, 0, 2, 4, 0)
        assert plog.high_watermark == 4
        append(state, 3, epoch=0)
        # a new epoch: the epoch cache starts it at the log end, HW stays, follower offsets are forgotten
        rm.apply(TOPIC, PartitionInfo(0, ME, [1, 2], [1, 2], 5, 1))
        assert plog.latest_epoch == 5
        assert plog.epoch_cache.entries[-1].start_offset == 7
        assert plog.high_watermark == 4
        assert rm.replica(TOPIC, 0).followers[2].log_end_offset == -1  # type: ignore[union-attr]
        assert rm.leader_check(TOPIC, 0, 5) == ErrorCode.NONE

    run(body)


def test_hw_is_min_leo_over_isr_and_never_moves_back(tmp_path: Path) -> None:
    async def body() -> None:
        state, _, rm, _ = leader_setup(tmp_path, [1, 2, 3])
        plog = state.replicas.partition_log(TOPIC, 0)
        assert plog is not None
        assert append(state, 10) == 10
        assert plog.high_watermark == 0
        woken = asyncio.get_running_loop().create_future()
        rm.consumer_waits.watch([(TOPIC, 0)], woken)
        assert rm.on_follower_fetch(TOPIC, 0, 2, 10, 1) == ErrorCode.NONE
        assert plog.high_watermark == 0  # follower 3 is in the ISR and unknown
        assert not woken.done()
        assert rm.on_follower_fetch(TOPIC, 0, 3, 4, 1) == ErrorCode.NONE
        assert plog.high_watermark == 4
        assert woken.done()  # long-polling fetches are woken by the HW move
        rm.on_follower_fetch(TOPIC, 0, 3, 10, 1)
        assert plog.high_watermark == 10
        append(state, 5)
        rm.on_follower_fetch(TOPIC, 0, 2, 15, 1)
        rm.on_follower_fetch(TOPIC, 0, 3, 12, 1)
        assert plog.high_watermark == 12
        # a follower coming back lower (e.g. after a restart) does not move the HW back
        rm.on_follower_fetch(TOPIC, 0, 3, 3, 1)
        assert plog.high_watermark == 12
        # a fetch past the leader's end is not recorded
        rm.on_follower_fetch(TOPIC, 0, 3, 99, 1)
        assert rm.replica(TOPIC, 0).followers[3].log_end_offset == 3  # type: ignore[union-attr]

    run(body)


def test_leader_alone_in_isr_moves_hw_on_append(tmp_path: Path) -> None:
    async def body() -> None:
        state, _, rm, _ = leader_setup(tmp_path, [1, 2], isr=[1])
        plog = state.replicas.partition_log(TOPIC, 0)
        assert plog is not None
        append(state, 3)
        assert plog.high_watermark == 3
        assert await rm.wait_replicated(TOPIC, 0, 3, 1000, 1) == ErrorCode.NONE
        # below min.insync.replicas the write stays but the answer says so
        assert await rm.wait_replicated(TOPIC, 0, 3, 1000, 2) == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND

    run(body)


def test_acks_all_waiter_completes_when_followers_fetch(tmp_path: Path) -> None:
    async def body() -> None:
        state, _, rm, _ = leader_setup(tmp_path, [1, 2, 3])
        end = append(state, 2)
        waiter = asyncio.ensure_future(rm.wait_replicated(TOPIC, 0, end, 5000, 2))
        await asyncio.sleep(0.01)
        rm.on_follower_fetch(TOPIC, 0, 2, end, 1)
        await asyncio.sleep(0.01)
        assert not waiter.done()  # follower 3 is still in the ISR
        rm.on_follower_fetch(TOPIC, 0, 3, end, 1)
        assert await asyncio.wait_for(waiter, 1) == ErrorCode.NONE

    run(body)


def test_acks_all_waiter_times_out(tmp_path: Path) -> None:
    async def body() -> None:
        state, _, rm, _ = leader_setup(tmp_path, [1, 2])
        end = append(state, 2)
        t0 = time.monotonic()
        assert await rm.wait_replicated(TOPIC, 0, end, 100, 1) == ErrorCode.REQUEST_TIMED_OUT
        assert 0.09 <= time.monotonic() - t0 < 1
        assert rm.replica(TOPIC, 0).waiters == []  # type: ignore[union-attr]

    run(body)


def test_acks_all_waiter_loses_leadership(tmp_path: Path) -> None:
    async def body() -> None:
        state, _, rm, _ = leader_setup(tmp_path, [1, 2])
        end = append(state, 2)
        waiter = asyncio.ensure_future(rm.wait_replicated(TOPIC, 0, end, 5000, 1))
        await asyncio.sleep(0.01)
        rm.apply(TOPIC, PartitionInfo(0, 2, [1, 2], [2], 2, 1))  # broker 2 took over
        assert await asyncio.wait_for(waiter, 1) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert await rm.wait_replicated(TOPIC, 0, end, 100, 1) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        await rm.close()

    run(body)


def test_isr_shrinks_after_lag_time_and_waiter_gets_not_enough_replicas(tmp_path: Path) -> None:
    async def body() -> None:
        # the lag clock starts when the broker becomes leader (in leader_setup): a slow set-up on a busy
        # machine only shortens the loop below, never lets the shrink come before the lag time
        t0 = time.monotonic()
        state, view, rm, _ = leader_setup(tmp_path, [1, 2, 3], replica_lag_time_max_ms=150)
        await rm.start()
        try:
            end = append(state, 1)
            waiter = asyncio.ensure_future(rm.wait_replicated(TOPIC, 0, end + 4, 5000, 3))
            # follower 2 keeps up, follower 3 never fetches
            while time.monotonic() - t0 < 3.0 and rm.isr(TOPIC, 0) == [1, 2, 3]:
                end = append(state, 1)
                rm.on_follower_fetch(TOPIC, 0, 2, end, 1)
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - t0
            assert rm.isr(TOPIC, 0) == [1, 2]
            assert 0.15 <= elapsed < 3.0
            assert view.topic(TOPIC).partitions[0].isr == [1, 2]  # type: ignore[union-attr]
            assert view.alter_calls[-1] == (TOPIC, 0, [1, 2], 0)
            rm.on_follower_fetch(TOPIC, 0, 2, end, 1)
            # the HW passed the waiter's offset with only two replicas in sync (min.insync.replicas 3)
            assert await asyncio.wait_for(waiter, 1) == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
            assert state.replicas.partition_log(TOPIC, 0).high_watermark == end  # type: ignore[union-attr]
        finally:
            await rm.close()

    run(body)


def test_isr_expands_when_follower_catches_up(tmp_path: Path) -> None:
    async def body() -> None:
        state, view, rm, _ = leader_setup(tmp_path, [1, 2], isr=[1])
        end = append(state, 5)
        rm.on_follower_fetch(TOPIC, 0, 2, 0, 1)
        await asyncio.sleep(0.01)
        assert rm.isr(TOPIC, 0) == [1] and view.alter_calls == []
        rm.on_follower_fetch(TOPIC, 0, 2, end, 1)
        await asyncio.sleep(0.01)
        assert rm.isr(TOPIC, 0) == [1, 2]
        assert view.alter_calls == [(TOPIC, 0, [1, 2], 0)]
        # now follower 2 holds the HW back
        end2 = append(state, 3)
        assert state.replicas.partition_log(TOPIC, 0).high_watermark == end  # type: ignore[union-attr]
        rm.on_follower_fetch(TOPIC, 0, 2, end2, 1)
        assert state.replicas.partition_log(TOPIC, 0).high_watermark == end2  # type: ignore[union-attr]

    run(body)


def test_lost_isr_change_waits_for_the_newer_state(tmp_path: Path) -> None:
    async def body() -> None:
        state, view, rm, _ = leader_setup(tmp_path, [1, 2], isr=[1])
        view.topic(TOPIC).partitions[0].partition_epoch = 7  # type: ignore[union-attr]  # someone else changed it
        end = append(state, 2)
        rm.on_follower_fetch(TOPIC, 0, 2, end, 1)
        await asyncio.sleep(0.01)
        assert view.alter_calls == [(TOPIC, 0, [1, 2], 0)]
        assert rm.isr(TOPIC, 0) == [1]
        rm.apply(TOPIC, PartitionInfo(0, ME, [1, 2], [1, 2], 1, 7))  # the winner arrives through the metadata
        assert rm.isr(TOPIC, 0) == [1, 2]
        rm.apply(TOPIC, PartitionInfo(0, ME, [1, 2], [1], 1, 6))  # older: ignored
        assert rm.isr(TOPIC, 0) == [1, 2]

    run(body)


def test_leader_check_codes(tmp_path: Path) -> None:
    async def body() -> None:
        _state, view, rm, _ = leader_setup(tmp_path, [1, 2], epoch=3)
        assert rm.leader_check(TOPIC, 0) == ErrorCode.NONE
        assert rm.leader_check(TOPIC, 0, 3) == ErrorCode.NONE
        assert rm.leader_check(TOPIC, 0, 2) == ErrorCode.FENCED_LEADER_EPOCH
        assert rm.leader_check(TOPIC, 0, 4) == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert rm.leader_check("nope", 0) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert rm.leader_check(TOPIC, 9) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        # follower fetches: unknown replica, stale and future epochs
        assert rm.on_follower_fetch(TOPIC, 0, 7, 0, 3) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert rm.on_follower_fetch(TOPIC, 0, 2, 0, 2) == ErrorCode.FENCED_LEADER_EPOCH
        assert rm.on_follower_fetch(TOPIC, 0, 2, 0, 4) == ErrorCode.UNKNOWN_LEADER_EPOCH
        # a topic in the metadata whose replica is elsewhere
        view.add_topic("other", [PartitionInfo(0, 2, [2], [2], 0, 0)])
        rm.apply("other", view.topic("other").partitions[0])  # type: ignore[union-attr]
        assert rm.leader_check("other", 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        # this broker becomes a follower
        rm.apply(TOPIC, PartitionInfo(0, 2, [1, 2], [1, 2], 4, 1))
        assert rm.leader_check(TOPIC, 0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert rm.leader_check(TOPIC, 0, 4) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert rm.leader_check(TOPIC, 0, 3) == ErrorCode.FENCED_LEADER_EPOCH
        await rm.close()

    run(body)


# ----------------------------------------------------------------- follower side


async def _remote_setup(broker: BrokerProcess, topic: str) -> tuple[KafkaClient, int, uuid.UUID]:
    client = KafkaClient(broker.bootstrap)
    await client.__aenter__()
    await client.create_topic(topic, 1, 1)
    info = await client.wait_for_topic(topic)
    meta = await client.refresh_metadata([topic])
    leader = next(iter(meta.brokers))
    return client, leader, info.topic_id


async def _produce(client: KafkaClient, topic: str, n: int, tag: str) -> None:
    for i in range(n):
        await client.produce(topic, 0, [(f"k{i}".encode(), f"{tag}-{i}".encode() * 5, [], None)], acks=1)


async def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _bump_leader_epoch(broker: BrokerProcess, topic: str, epoch: int) -> None:
    """Restart the single broker with a new leader epoch for the topic (as after a failover)."""
    broker.stop()
    path = broker.data_dir / "cluster-metadata.json"
    image = json.loads(path.read_text())
    for t in image["topics"]:
        if t["name"] == topic:
            for p in t["partitions"]:
                p["leader_epoch"], p["partition_epoch"] = epoch, p["partition_epoch"] + 1
    path.write_text(json.dumps(image))
    broker.start()


def _segment_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))


def test_fetcher_replicates_follows_hw_and_truncates_divergent_tail(
    kafka_broker: BrokerProcess, tmp_path: Path
) -> None:
    topic = "repl"

    async def body() -> None:
        client, leader, topic_id = await _remote_setup(kafka_broker, topic)
        try:
            me = leader + 100
            view = DictView(me, {leader: (kafka_broker.host, kafka_broker.port), me: ("127.0.0.1", 1)})
            part = PartitionInfo(0, leader, [leader, me], [leader, me], 0, 0)
            view.add_topic(topic, [part], topic_id)
            state = make_state(tmp_path, view, replica_fetch_wait_max_ms=100, replica_fetch_backoff_ms=50)
            plog = state.logs.create(topic, 0)
            rm = state.replicas
            await rm.start()
            remote_dir = kafka_broker.data_dir / f"{topic}-0"

            # 1. replicate what the leader has, byte for byte, and follow its high watermark
            await _produce(client, topic, 5, "a")
            rm.apply(topic, part)
            await _wait_for(lambda: plog.log_end_offset == 5 and plog.high_watermark == 5)
            assert _segment_bytes(plog.directory) == _segment_bytes(remote_dir)
            await _produce(client, topic, 3, "b")
            await _wait_for(lambda: plog.high_watermark == 8)
            assert plog.log_end_offset == 8
            assert _segment_bytes(plog.directory) == _segment_bytes(remote_dir)
            assert plog.latest_epoch == 0

            # 2. stop following and write a tail as the old leader of epoch 0 would have (never replicated);
            #    meanwhile the leader moves to epoch 1 and writes other records at the same offsets
            rm.forget(topic, 0)
            plog.append(make_batch([(b"x", b"diverged")] * 2), leader_epoch=0)
            plog.append(make_batch([(b"y", b"diverged")] * 3), leader_epoch=0)
            assert plog.log_end_offset == 13
            await client.close()
            _bump_leader_epoch(kafka_broker, topic, 1)
            client = KafkaClient(kafka_broker.bootstrap)
            await _produce(client, topic, 2, "c")  # offsets 8, 9 in epoch 1

            # 3. follow at epoch 1: OffsetForLeaderEpoch(0) -> epoch 0 ends at 8 on the leader; truncate, fetch
            part = PartitionInfo(0, leader, [leader, me], [leader, me], 1, 1)
            view.add_topic(topic, [part], topic_id)
            rm.apply(topic, part)
            await _wait_for(lambda: plog.log_end_offset == 10 and plog.high_watermark == 10)
            assert _segment_bytes(plog.directory) == _segment_bytes(remote_dir)
            assert [(e.epoch, e.start_offset) for e in plog.epoch_cache.entries] == [(0, 0), (1, 8)]
            await _produce(client, topic, 4, "d")
            await _wait_for(lambda: plog.log_end_offset == 14 and plog.high_watermark == 14)
            assert _segment_bytes(plog.directory) == _segment_bytes(remote_dir)

            # 4. a tail in a newer epoch the leader never had: truncated to the high watermark
            rm.forget(topic, 0)
            plog.append(make_batch(3), leader_epoch=7)
            assert plog.log_end_offset == 17 and plog.latest_epoch == 7
            rm.apply(topic, part)
            await _produce(client, topic, 1, "e")
            await _wait_for(lambda: plog.log_end_offset == 15 and plog.high_watermark == 15)
            assert plog.latest_epoch == 1
            assert _segment_bytes(plog.directory) == _segment_bytes(remote_dir)
            await rm.close()
        finally:
            await client.close()

    run(body)


def test_fetcher_restarts_log_at_leaders_log_start(kafka_broker: BrokerProcess, tmp_path: Path) -> None:
    topic = "repl-start"

    async def body() -> None:
        client, leader, topic_id = await _remote_setup(kafka_broker, topic)
        try:
            await _produce(client, topic, 6, "a")
            resp = await _one_request(
                kafka_broker.host,
                kafka_broker.port,
                DeleteRecordsRequest(
                    topics=[
                        DeleteRecordsTopic(name=topic, partitions=[DeleteRecordsPartition(partition_index=0, offset=4)])
                    ],
                    timeout_ms=5000,
                ),
                1,
            )
            assert resp.topics[0].partitions[0].low_watermark == 4
            me = leader + 100
            view = DictView(me, {leader: (kafka_broker.host, kafka_broker.port)})
            part = PartitionInfo(0, leader, [leader, me], [leader, me], 0, 0)
            view.add_topic(topic, [part], topic_id)
            state = make_state(tmp_path, view, replica_fetch_wait_max_ms=100, replica_fetch_backoff_ms=50)
            plog = state.logs.create(topic, 0)
            rm = state.replicas
            await rm.start()
            rm.apply(topic, part)
            # fetch at 0 is out of range; the leader's log start (4) is past our end (0): restart there
            await _wait_for(lambda: plog.log_end_offset == 6 and plog.high_watermark == 6)
            assert plog.log_start_offset == 4
            assert plog.read_bytes(4, 1 << 20) != b""
            # a follower ahead of the leader in the same epoch (an unclean election) truncates to the leader's end
            rm.forget(topic, 0)
            plog.append(make_batch(3), leader_epoch=0)
            assert plog.log_end_offset == 9
            rm.apply(topic, part)
            await _produce(client, topic, 1, "b")  # the leader's end: 7
            await _wait_for(lambda: plog.log_end_offset == 7 and plog.high_watermark == 7)
            local = plog.read_bytes(4, 1 << 20)
            assert local and _segment_bytes(kafka_broker.data_dir / f"{topic}-0").endswith(local)
            await rm.close()
        finally:
            await client.close()

    run(body)


def test_complete_batches_leaves_partial_tail() -> None:
    from kafkapy.cluster.fetcher import complete_batches

    a = make_batch(2, base_offset=0)
    b = make_batch(3, base_offset=2)
    buf = bytes(a + b)
    assert complete_batches(memoryview(buf), 0) == (0, len(buf))
    assert complete_batches(memoryview(buf[:-5]), 0) == (0, len(a))
    assert complete_batches(memoryview(buf), 2) == (len(a), len(buf))
    assert complete_batches(memoryview(buf), 5) == (len(buf), len(buf))


# ----------------------------------------------------------------- handlers in cluster mode


def _ctx(state: BrokerServices, api_key: int, version: int) -> Any:
    from kafkapy.protocol.messages.request_header import RequestHeader
    from kafkapy.server.handler import RequestContext

    return RequestContext(RequestHeader(api_key, version, 1, "test"), version, state, None)


def _produce_request(acks: int, n: int, timeout_ms: int = 5000) -> Any:
    from kafkapy.protocol.messages.produce_request import (
        PartitionProduceData,
        ProduceRequest,
        TopicProduceData,
    )

    data = memoryview(make_batch(n))
    return ProduceRequest(
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=0, records=data)])],
    )


def _fetch_request(offset: int, replica_id: int = -1, epoch: int = 1, max_wait_ms: int = 0) -> Any:
    from kafkapy.protocol.messages.fetch_request import (
        FetchPartition,
        FetchRequest,
        FetchTopic,
    )

    return FetchRequest(
        replica_id=replica_id,
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic=TOPIC,
                partitions=[
                    FetchPartition(
                        partition=0, current_leader_epoch=epoch, fetch_offset=offset, partition_max_bytes=1 << 20
                    )
                ],
            )
        ],
    )


async def _produce_h(state: BrokerServices, acks: int, n: int, timeout_ms: int = 5000) -> Any:
    from kafkapy.server.handlers import produce

    resp = await produce.handle(_ctx(state, 0, 9), _produce_request(acks, n, timeout_ms))
    assert resp is not None
    return resp.responses[0].partition_responses[0]


async def _fetch_h(
    state: BrokerServices, offset: int, replica_id: int = -1, epoch: int = 1, max_wait_ms: int = 0
) -> Any:
    from kafkapy.server.handlers import fetch

    resp = await fetch.handle(_ctx(state, 1, 12), _fetch_request(offset, replica_id, epoch, max_wait_ms))
    return resp.responses[0].partitions[0]


def _size(pd: Any) -> int:
    return len(pd.records) if pd.records is not None else 0


def test_produce_acks_all_waits_for_follower_fetches(tmp_path: Path) -> None:
    async def body() -> None:
        state, _view, _rm, _ = leader_setup(tmp_path, [1, 2], min_insync_replicas=2)
        produce = asyncio.ensure_future(_produce_h(state, -1, 3))
        await asyncio.sleep(0.02)
        assert not produce.done()
        # a consumer sees nothing above the high watermark; the follower reads up to the log end
        consumer = await _fetch_h(state, 0)
        assert consumer.error_code == 0 and consumer.high_watermark == 0 and _size(consumer) == 0
        follower = await _fetch_h(state, 0, replica_id=2)
        assert follower.error_code == 0 and _size(follower) > 0
        assert not produce.done()
        follower = await _fetch_h(state, 3, replica_id=2)  # the follower has 0..2: HW moves to 3
        assert follower.high_watermark == 3
        r = await asyncio.wait_for(produce, 1)
        assert r.error_code == 0 and r.base_offset == 0
        consumer = await _fetch_h(state, 0)
        assert consumer.high_watermark == 3 and _size(consumer) > 0
        # acks=1 answers after the local append
        r = await asyncio.wait_for(_produce_h(state, 1, 2), 1)
        assert r.error_code == 0 and r.base_offset == 3

    run(body)


def test_produce_refused_below_min_isr_and_on_followers(tmp_path: Path) -> None:
    async def body() -> None:
        state, _view, rm, _ = leader_setup(tmp_path, [1, 2], isr=[1], min_insync_replicas=2)
        plog = state.replicas.partition_log(TOPIC, 0)
        assert plog is not None
        r = await _produce_h(state, -1, 3)
        assert r.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
        assert plog.log_end_offset == 0  # refused before the append
        r = await _produce_h(state, 1, 3)  # acks=1 does not care about the ISR
        assert r.error_code == 0 and plog.high_watermark == 3
        r = await _produce_h(state, -1, 1, timeout_ms=100)  # the ISR is [1]: refused again
        assert r.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
        rm.apply(TOPIC, PartitionInfo(0, 2, [1, 2], [1, 2], 2, 1))  # broker 2 leads now
        r = await _produce_h(state, 1, 1)
        assert r.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (await _fetch_h(state, 0, epoch=2)).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (await _fetch_h(state, 0, epoch=1)).error_code == ErrorCode.FENCED_LEADER_EPOCH
        await rm.close()

    run(body)


def test_produce_acks_all_times_out(tmp_path: Path) -> None:
    async def body() -> None:
        state, _view, _rm, _ = leader_setup(tmp_path, [1, 2], min_insync_replicas=1)
        r = await _produce_h(state, -1, 1, timeout_ms=100)
        assert r.error_code == ErrorCode.REQUEST_TIMED_OUT

    run(body)


def test_waiting_follower_fetch_answers_when_hw_moves(tmp_path: Path) -> None:
    async def body() -> None:
        state, _view, _rm, _ = leader_setup(tmp_path, [1, 2, 3])
        await _produce_h(state, 1, 4)
        assert (await _fetch_h(state, 4, replica_id=2)).high_watermark == 0  # follower 3 is unknown yet
        t0 = time.monotonic()
        waiting = asyncio.ensure_future(_fetch_h(state, 4, replica_id=2, max_wait_ms=3000))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pd3 = await _fetch_h(state, 4, replica_id=3)  # follower 3 caught up: HW 4
        assert pd3.high_watermark == 4
        pd2 = await asyncio.wait_for(waiting, 1)
        assert pd2.high_watermark == 4 and _size(pd2) == 0
        assert time.monotonic() - t0 < 1
        # unknown replicas and stale epochs are refused
        assert (await _fetch_h(state, 4, replica_id=9)).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (await _fetch_h(state, 4, replica_id=2, epoch=0)).error_code == ErrorCode.FENCED_LEADER_EPOCH
        assert (await _fetch_h(state, 4, replica_id=2, epoch=5)).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH

    run(body)


# ----------------------------------------------------------------- two brokers in one process


class SharedCluster:
    """The metadata of a small in-process cluster: one image, CAS ISR changes, changes applied in order."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicInfo] = {}
        self.brokers: dict[int, BrokerInfo] = {}
        self.managers: dict[int, ReplicaManager] = {}

    def set_partition(self, topic: str, info: PartitionInfo) -> None:
        self.topics[topic].partitions[info.index] = info
        self._broadcast(topic, info)

    def _broadcast(self, topic: str, info: PartitionInfo) -> None:
        for rm in list(self.managers.values()):
            rm.apply(topic, dataclasses.replace(info, replicas=list(info.replicas), isr=list(info.isr)))

    async def alter_isr(self, me: int, topic: str, index: int, isr: list[int], epoch: int) -> PartitionInfo | None:
        part = self.topics[topic].partitions[index]
        if part.partition_epoch != epoch or part.leader != me:
            return None
        new = dataclasses.replace(part, isr=list(isr), partition_epoch=epoch + 1)
        self.topics[topic].partitions[index] = new
        asyncio.get_running_loop().call_soon(self._broadcast, topic, new)  # as a watch would deliver it
        return dataclasses.replace(new, replicas=list(new.replicas), isr=list(new.isr))


class NodeView:
    """One broker's ClusterView of a SharedCluster."""

    def __init__(self, cluster: SharedCluster, broker: BrokerInfo) -> None:
        self.cluster = cluster
        self.cluster_id = "in-process"
        self.broker = broker

    @property
    def controller_id(self) -> int:
        return min(self.cluster.brokers)

    def brokers(self) -> list[BrokerInfo]:
        return [self.cluster.brokers[n] for n in sorted(self.cluster.brokers)]

    def broker_info(self, node_id: int) -> BrokerInfo | None:
        return self.cluster.brokers.get(node_id)

    def topics(self) -> Iterable[TopicInfo]:
        return self.cluster.topics.values()

    def topic(self, name: str) -> TopicInfo | None:
        return self.cluster.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self.cluster.topics.values() if t.topic_id == topic_id), None)

    async def alter_isr(self, topic: str, index: int, isr: list[int], partition_epoch: int) -> PartitionInfo | None:
        return await self.cluster.alter_isr(self.broker.node_id, topic, index, isr, partition_epoch)


class Node:
    """A real kafkapy Broker (network, dispatcher, handlers) over a SharedCluster."""

    def __init__(self, cluster: SharedCluster, node_id: int, root: Path, port: int = 0) -> None:
        self.cluster, self.node_id, self.dir, self.port = cluster, node_id, root / f"node-{node_id}", port
        self.broker: Any = None
        self.state: BrokerServices | None = None

    async def start(self) -> Node:
        from kafkapy.server.broker import Broker
        from kafkapy.server.dispatch import Dispatcher

        config = BrokerConfig.from_pairs(
            [
                ("node.id", str(self.node_id)),
                ("listeners", f"PLAINTEXT://127.0.0.1:{self.port}"),
                ("log.dirs", str(self.dir)),
                ("replica.lag.time.max.ms", "600"),
                ("replica.fetch.wait.max.ms", "200"),
                ("replica.fetch.backoff.ms", "50"),
                ("min.insync.replicas", "2"),
            ]
        )

        async def factory(broker: Any) -> Any:
            adv = broker.advertised[0]
            self.port = adv.port
            me = BrokerInfo(self.node_id, adv.host, adv.port)
            self.cluster.brokers[self.node_id] = me
            logs = LogManager(self.dir, auto_high_watermark=False, sync=False)
            state = services_over(config, NodeView(self.cluster, me), logs, self.dir)
            for t in self.cluster.topics.values():
                for p in t.partitions:
                    if self.node_id in p.replicas and logs.get(t.name, p.index) is None:
                        logs.create(t.name, p.index, topic_id=t.topic_id)
            rm = state.replicas
            await rm.start()
            self.cluster.managers[self.node_id] = rm
            for t in self.cluster.topics.values():
                for p in t.partitions:
                    rm.apply(t.name, p)
            self.state = state
            return Dispatcher(state)

        self.broker = Broker(config, factory)
        await self.broker.start()
        return self

    def plog(self, topic: str) -> Any:
        assert self.state is not None
        return self.state.replicas.partition_log(topic, 0)

    async def stop(self) -> None:
        self.cluster.managers.pop(self.node_id, None)
        self.cluster.brokers.pop(self.node_id, None)
        await self.broker.shutdown()
        assert self.state is not None
        await self.state.replicas.close()
        self.state.logs.close()


async def _one_request(host: str, port: int, request: Any, version: int | None = None) -> Any:
    """One request on a fresh connection (at `version`, else the negotiated one); returns the response."""
    conn = BrokerConnection(host, port, "test", 10)
    await conn.connect(10)
    try:
        return await conn.request(request, version)
    finally:
        await conn.close()


async def _send_produce(
    node: Node, topic: str, acks: int, n: int, timeout_ms: int = 5000, batch: bytes | None = None
) -> Any:
    from kafkapy.protocol.messages.produce_request import (
        PartitionProduceData,
        ProduceRequest,
        TopicProduceData,
    )
    from kafkapy.protocol.records import build_batch

    batch = batch or build_batch([(b"k", f"v{i}".encode() * 10, [], None) for i in range(n)])
    resp = await _one_request(
        "127.0.0.1",
        node.port,
        ProduceRequest(
            acks=acks,
            timeout_ms=timeout_ms,
            topic_data=[TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=batch)])],
        ),
    )
    return resp.responses[0].partition_responses[0]


def test_two_brokers_replicate_shrink_expand_and_fail_over(tmp_path: Path) -> None:
    topic = "e2e"

    async def body() -> None:
        cluster = SharedCluster()
        cluster.topics[topic] = TopicInfo(topic, uuid.uuid4(), [PartitionInfo(0, 1, [1, 2], [1, 2], 0, 0)])
        n1 = await Node(cluster, 1, tmp_path).start()
        n2 = await Node(cluster, 2, tmp_path).start()
        try:
            # acks=all through the network: answered once broker 2 has the records
            for _ in range(5):
                r = await _send_produce(n1, topic, -1, 3)
                assert r.error_code == 0
            assert n1.plog(topic).high_watermark == 15
            assert n2.plog(topic).log_end_offset >= 15
            await _wait_for(lambda: n2.plog(topic).high_watermark == 15)
            assert _segment_bytes(n2.plog(topic).directory) == _segment_bytes(n1.plog(topic).directory)

            # broker 2 goes away: the ISR shrinks within replica.lag.time.max.ms; min.insync.replicas=2 refuses
            await n2.stop()
            t0 = time.monotonic()
            r = await _send_produce(n1, topic, -1, 1, timeout_ms=5000)
            assert r.error_code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
            assert 0.5 < time.monotonic() - t0 < 2.5
            assert cluster.topics[topic].partitions[0].isr == [1]
            assert (await _send_produce(n1, topic, -1, 1)).error_code == ErrorCode.NOT_ENOUGH_REPLICAS
            assert (await _send_produce(n1, topic, 1, 2)).error_code == 0  # acks=1 goes on: LEO 18
            assert n1.plog(topic).high_watermark == 18

            # broker 2 comes back: catches up, rejoins the ISR, acks=all works again
            n2 = await Node(cluster, 2, tmp_path, n2.port).start()
            await _wait_for(lambda: cluster.topics[topic].partitions[0].isr == [1, 2])
            assert (await _send_produce(n1, topic, -1, 2)).error_code == 0
            assert n2.plog(topic).log_end_offset == 20

            # broker 2 is cut off again; broker 1 takes acks=1 writes it never gets (an idle follower
            # that has everything stays in sync, as in Kafka: the writes make it lag)
            await n2.stop()
            assert (await _send_produce(n1, topic, 1, 4)).error_code == 0
            assert n1.plog(topic).log_end_offset == 24
            await _wait_for(lambda: cluster.topics[topic].partitions[0].isr == [1])
            # unclean election: broker 2 leads at epoch 1 with its 20 records; broker 1 must truncate
            part = cluster.topics[topic].partitions[0]
            cluster.set_partition(topic, PartitionInfo(0, 2, [1, 2], [2], 1, part.partition_epoch + 1))
            assert (await _send_produce(n1, topic, 1, 1)).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
            n2 = await Node(cluster, 2, tmp_path, n2.port).start()
            assert n2.plog(topic).log_end_offset == 20 and n2.plog(topic).latest_epoch == 1
            await _wait_for(lambda: n1.plog(topic).log_end_offset == 20)
            await _wait_for(lambda: cluster.topics[topic].partitions[0].isr == [2, 1])
            r = await _send_produce(n2, topic, -1, 3)
            assert r.error_code == 0 and r.base_offset == 20
            await _wait_for(lambda: n1.plog(topic).high_watermark == 23)
            assert _segment_bytes(n1.plog(topic).directory) == _segment_bytes(n2.plog(topic).directory)
            assert [(e.epoch, e.start_offset) for e in n1.plog(topic).epoch_cache.entries] == [(0, 0), (1, 20)]
        finally:
            for n in (n1, n2):
                if n.broker is not None and n.node_id in cluster.managers:
                    await n.stop()

    run(body)


def test_clean_failover_keeps_acknowledged_records_and_idempotence(tmp_path: Path) -> None:
    from kafkapy.protocol.records import build_batch

    topic = "fo"

    def idem(seq: int, n: int) -> bytes:
        return build_batch(
            [(b"k", b"v%d" % (seq + i), [], None) for i in range(n)],
            producer_id=4242,
            producer_epoch=0,
            base_sequence=seq,
        )

    async def body() -> None:
        cluster = SharedCluster()
        cluster.topics[topic] = TopicInfo(topic, uuid.uuid4(), [PartitionInfo(0, 1, [1, 2], [1, 2], 0, 0)])
        n1 = await Node(cluster, 1, tmp_path).start()
        n2 = await Node(cluster, 2, tmp_path).start()
        try:
            assert (await _send_produce(n1, topic, -1, 0, batch=idem(0, 3))).base_offset == 0
            assert (await _send_produce(n1, topic, -1, 0, batch=idem(3, 2))).base_offset == 3
            # a produce is in flight, waiting for broker 2, when leadership moves: it is told to retry elsewhere
            n2_fetchers = n2.state.replicas.fetchers  # type: ignore[union-attr]
            for f in list(n2_fetchers.fetchers.values()):
                f.remove(topic, 0)  # broker 2 stops fetching for a moment
            waiting = asyncio.ensure_future(_send_produce(n1, topic, -1, 0, batch=idem(5, 1)))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            part = cluster.topics[topic].partitions[0]
            cluster.set_partition(topic, PartitionInfo(0, 2, [1, 2], [1, 2], 1, part.partition_epoch + 1))
            r = await asyncio.wait_for(waiting, 2)
            assert r.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
            # the producer retries on the new leader: the acknowledged batches are there, the
            # unacknowledged one (only on broker 1) is truncated away there and written again here
            assert (await _send_produce(n2, topic, -1, 0, batch=idem(3, 2))).base_offset == 3  # a duplicate
            r = await _send_produce(n2, topic, -1, 0, batch=idem(5, 1))
            assert r.error_code == 0 and r.base_offset == 5
            assert n2.plog(topic).log_end_offset == 6
            await _wait_for(lambda: n1.plog(topic).high_watermark == 6)
            assert _segment_bytes(n1.plog(topic).directory) == _segment_bytes(n2.plog(topic).directory)
            assert [(e.epoch, e.start_offset) for e in n1.plog(topic).epoch_cache.entries] == [(0, 0), (1, 5)]
        finally:
            for n in (n1, n2):
                if n.node_id in cluster.managers:
                    await n.stop()

    run(body)


async def _send_delete_records(node: Node, topic: str, offset: int, timeout_ms: int = 5000) -> Any:
    resp = await _one_request(
        "127.0.0.1",
        node.port,
        DeleteRecordsRequest(
            topics=[
                DeleteRecordsTopic(name=topic, partitions=[DeleteRecordsPartition(partition_index=0, offset=offset)])
            ],
            timeout_ms=timeout_ms,
        ),
        1,
    )
    return resp.topics[0].partitions[0]


def test_delete_records_waits_for_followers_log_start(tmp_path: Path) -> None:
    topic = "dr"

    async def body() -> None:
        cluster = SharedCluster()
        cluster.topics[topic] = TopicInfo(topic, uuid.uuid4(), [PartitionInfo(0, 1, [1, 2], [1, 2], 0, 0)])
        n1 = await Node(cluster, 1, tmp_path).start()
        n2 = await Node(cluster, 2, tmp_path).start()
        try:
            for _ in range(3):
                assert (await _send_produce(n1, topic, -1, 2)).error_code == 0
            t0 = time.monotonic()
            r = await _send_delete_records(n1, topic, 4)
            assert r.error_code == 0 and r.low_watermark == 4
            assert n2.plog(topic).log_start_offset == 4  # the answer came after the follower moved
            assert time.monotonic() - t0 < 1
            # a follower that stops fetching holds the answer back until the timeout
            for f in list(n2.state.replicas.fetchers.fetchers.values()):  # type: ignore[union-attr]
                f.remove(topic, 0)
            r = await _send_delete_records(n1, topic, 5, timeout_ms=300)
            assert r.error_code == ErrorCode.REQUEST_TIMED_OUT
            assert n1.plog(topic).log_start_offset == 5 and n2.plog(topic).log_start_offset == 4
            # a broker that is gone does not count
            await n2.stop()
            r = await _send_delete_records(n1, topic, 6, timeout_ms=2000)
            assert r.error_code == 0 and r.low_watermark == 6
        finally:
            for n in (n1, n2):
                if n.node_id in cluster.managers:
                    await n.stop()

    run(body)


def test_fetch_v18_follower_behind_the_high_watermark_is_answered_at_once(tmp_path: Path) -> None:
    """KIP-1166: follower 2 fetched offset 4 before follower 3 moved the high watermark to 4. Its next
    fetch (nothing new to read) waits for data at v17; at v18 it says it knows high watermark 0 and
    is answered at once with 4."""
    from kafkapy.server.handlers import fetch

    state, _, rm, _ = leader_setup(tmp_path, [ME, 2, 3])
    end = append(state, 4)

    async def body() -> None:
        assert rm.on_follower_fetch(TOPIC, 0, 2, end, 1, 0) == ErrorCode.NONE
        assert rm.on_follower_fetch(TOPIC, 0, 3, end, 1, 0) == ErrorCode.NONE
        assert state.replicas.partition_log(TOPIC, 0).high_watermark == end  # type: ignore[union-attr]
        waited = {}
        for version, known_hw in ((17, None), (18, 2**63 - 1), (18, 0), (18, end)):
            req = _fetch_request(end, replica_id=2, max_wait_ms=800)
            req.replica_state.replica_id, req.replica_id = 2, -1
            req.topics[0].topic_id = state.metadata.topic(TOPIC).topic_id  # type: ignore[union-attr]
            if known_hw is not None:
                req.topics[0].partitions[0].high_watermark = known_hw
            began = time.monotonic()
            resp = await fetch.handle(_ctx(state, 1, version), req)
            waited[(version, known_hw)] = time.monotonic() - began
            assert resp.responses[0].partitions[0].high_watermark == end
        assert waited[(18, 0)] < 0.4, waited  # behind: at once
        for kept_waiting in ((17, None), (18, 2**63 - 1), (18, end)):  # not sent, or already known
            assert waited[kept_waiting] >= 0.7, waited

    run(body)
