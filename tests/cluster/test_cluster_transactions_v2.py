"""Transactions v2 (KIP-890 part 2) in a real cluster (etcd + three `kafkapy broker` processes), with
raw requests, so that the transactional id's coordinator, the partition's leader and the group's
coordinator are different brokers: the leader asks the coordinator over the inter-broker listener
(AddPartitionsToTxn v5, verify-only for Produce v11, an add for Produce v12 and TxnOffsetCommit v5) and
the coordinator writes the markers under the bumped epoch on the leader (WriteTxnMarkers v2)."""

from __future__ import annotations

import time
from typing import Any

from kafkapy.coordinator.coordinator import partition_for
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.protocol.messages.end_txn_request import EndTxnRequest
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopic
from kafkapy.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkapy.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from tests.cluster.test_cluster import partitions
from tests.cluster.test_cluster_transactions import TXN_PARTITIONS, cluster, spread_topic  # noqa: F401
from tests.server.rawclient import RawClient
from tests.server.test_idempotence import init_pid
from tests.server.test_transactions import txn_batch

TOPIC = "tv2c"


def _produce(c: RawClient, index: int, data: bytes, txn_id: str, version: int) -> int:
    req = ProduceRequest(
        transactional_id=txn_id, acks=-1, timeout_ms=10000,
        topic_data=[TopicProduceData(name=TOPIC, partition_data=[PartitionProduceData(index=index, records=data)])],
    )  # fmt: skip
    return int(c.request(req, version).responses[0].partition_responses[0].error_code)


def _produce_retrying(c: RawClient, index: int, data: bytes, txn_id: str, version: int) -> int:
    """NOT_ENOUGH_REPLICAS: the coordinator could not answer yet (markers of the last end in flight)."""
    deadline = time.monotonic() + 20
    while True:
        code = _produce(c, index, data, txn_id, version)
        if code != E.NOT_ENOUGH_REPLICAS or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def _end(c: RawClient, txn_id: str, pid: int, epoch: int, commit: bool) -> tuple[int, int, int]:
    r = c.request(EndTxnRequest(transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=commit), 5)
    return int(r.error_code), r.producer_id, r.producer_epoch


def _stable(c: RawClient, index: int) -> bool:
    req = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=1, topics=[
        FetchTopic(topic=TOPIC, partitions=[FetchPartition(partition=index, fetch_offset=0, partition_max_bytes=1 << 20)])
    ])  # fmt: skip
    p = c.request(req, 12).responses[0].partitions[0]
    return p.error_code == E.NONE and p.last_stable_offset == p.high_watermark > 0


def _group_coordinator(c: RawClient, group: str) -> int:
    return int(c.request(FindCoordinatorRequest(key=group, key_type=0), 3).node_id)


def _txn_offset_commit(c: RawClient, group: str, txn_id: str, pid: int, epoch: int, offset: int) -> int:
    req = TxnOffsetCommitRequest(
        transactional_id=txn_id, group_id=group, producer_id=pid, producer_epoch=epoch,
        topics=[TxnOffsetCommitRequestTopic(name=TOPIC, partitions=[
            TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=offset, committed_metadata="")
        ])],
    )  # fmt: skip
    return int(c.request(req, 5).topics[0].partitions[0].error_code)


def _committed(c: RawClient, group: str) -> int:
    req = OffsetFetchRequest(group_id=group, topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0])])
    return int(c.request(req, 7).topics[0].partitions[0].committed_offset)


def test_leader_asks_the_coordinator_on_another_broker(cluster: LocalCluster) -> None:  # noqa: F811
    spread_topic(cluster, TOPIC)
    bs: dict[int, Any] = {i: b.bootstrap for i, b in cluster.brokers.items()}
    with RawClient(bs[1]) as c:  # the first transactional request creates __transaction_state
        assert c.request(FindCoordinatorRequest(key="tv2-0", key_type=1), 3).error_code in (E.NONE, 15)

    def txn_leaders() -> dict[int, int]:
        return {p: int(x.leader) for p, x in partitions(cluster, "__transaction_state").items()}

    wait_until(lambda: len(txn_leaders()) == TXN_PARTITIONS and min(txn_leaders().values()) > 0, what="txn topic")
    txn_id = "tv2-0"
    coord_id = txn_leaders()[partition_for(txn_id, TXN_PARTITIONS)]
    leaders = {int(x.leader): p for p, x in partitions(cluster, TOPIC).items()}
    leader_id, other_id = [i for i in (1, 2, 3) if i != coord_id]
    index = leaders[leader_id]  # a partition led by another broker than the transaction's coordinator
    with RawClient(bs[coord_id]) as coord, RawClient(bs[leader_id]) as leader, RawClient(bs[other_id]) as other:
        err, pid, epoch = init_pid(coord, 4, transactional_id=txn_id)
        assert err == E.NONE and epoch == 0
        # Produce v11: verify-only across brokers (not in the transaction: refused)
        assert _produce(leader, index, txn_batch(pid, 0, 0), txn_id, 11) == E.TRANSACTION_ABORTABLE
        # Produce v12: the leader adds the partition at the coordinator
        assert _produce(leader, index, txn_batch(pid, 0, 0), txn_id, 12) == E.NONE
        assert _produce(leader, index, txn_batch(pid, 0, 2), txn_id, 11) == E.NONE
        # TxnOffsetCommit v5 at a group coordinator that is not the transaction's
        group = next(g for g in (f"g-tv2-{i}" for i in range(200)) if _group_coordinator(other, g) == other_id)
        assert _txn_offset_commit(other, group, txn_id, pid, 0, 11) == E.NONE
        assert _end(coord, txn_id, pid, 0, commit=True) == (E.NONE, pid, 1)
        wait_until(lambda: _stable(leader, index), what="the commit marker on the leader")
        wait_until(lambda: _committed(other, group) == 11, what="the transactional offset committed")
        # the marker carried epoch 1: the old epoch is fenced on the leader, the new one goes on
        assert _produce(leader, index, txn_batch(pid, 0, 4), txn_id, 12) == E.INVALID_PRODUCER_EPOCH
        assert _produce_retrying(leader, index, txn_batch(pid, 1, 0), txn_id, 12) == E.NONE
        assert _end(coord, txn_id, pid, 1, commit=False) == (E.NONE, pid, 2)
        wait_until(lambda: _stable(leader, index), what="the abort marker on the leader")
        # a fenced epoch is refused by the remote coordinator too
        assert _produce(leader, index, txn_batch(pid, 1, 2), txn_id, 12) == E.INVALID_PRODUCER_EPOCH


def test_java_producer_transactions_v2_across_brokers(cluster: LocalCluster) -> None:  # noqa: F811
    """The Java 4.3.1 producer (transactions v2: Produce v12+, EndTxn v5, TxnOffsetCommit v5) writes to
    partitions led by three brokers and commits the offsets of a consume-transform-produce: every leader
    adds its partition at the coordinator, the markers carry the bumped epochs, read_committed sees
    exactly the committed transactions."""
    from interop._common import Out
    from interop.adapters.java import JavaClient, b64, to_in

    a, b = JavaClient(), cluster.bootstrap
    source, sink = "tv2c-src", "tv2c-sink"
    spread_topic(cluster, source)
    spread_topic(cluster, sink)
    a.produce(b, source, [Out(f"k{i}".encode(), f"v{i}".encode(), partition=i % 3) for i in range(30)])
    handle = "tv2c-java"
    a.call("txn_init", b, handle=handle, transactional_id=handle)
    try:
        for i in range(4):
            recs = [{"key": None, "value": b64(f"m{i}-{j}".encode()), "partition": j % 3} for j in range(9)]
            a.call("txn_send", b, handle=handle, topic=sink, records=recs)
            a.call("txn_end", b, handle=handle, commit=i % 2 == 0)
    finally:
        a.call("txn_close", b, handle=handle)
    res = a.call(
        "eos_transform", b, input=source, output=sink, group="tv2c-group", transactional_id="tv2c-eos",
        count=30, suffix="-done", commit=True, timeout_s=120,
    )  # fmt: skip
    assert {k: int(v) for k, v in res["offsets"].items()} == {f"{source}:{p}": 10 for p in range(3)}
    wait_until(
        lambda: a.call("group_offsets", b, group="tv2c-group")["offsets"] == {f"{source}:{p}": 10 for p in range(3)},
        what="the transactional offsets committed",
    )
    got = a.call("read_to_end", b, topic=sink, config={"isolation.level": "read_committed"})
    values = sorted(to_in(m).value or b"" for m in got["records"])
    expected = [f"m{i}-{j}".encode() for i in (0, 2) for j in range(9)] + [f"v{i}-done".encode() for i in range(30)]
    assert values == sorted(expected)
