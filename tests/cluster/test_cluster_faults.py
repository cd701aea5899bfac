"""Faults on a real cluster (etcd + three `kafkapy broker` processes on loopback).

Controlled shutdown and a rolling restart, etcd down at start and while the
brokers run, a leader isolated by SIGSTOP until its etcd lease expires, and
replica fetches with bad ids or epochs. One cluster serves the module; every
test leaves it with three running brokers and full ISRs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from interop.certs import Pki
from interop.secure_cluster import SecureBrokers
from kafkapy.cluster.etcd import EtcdClient
from kafkapy.cluster.etcd_metadata import STATE, partition_states
from kafkapy.cluster.etcd_server import start_etcd
from kafkapy.local_cluster import LocalCluster, wait_until
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.pytest_plugin import _CLUSTERS
from kafkapy.testing import free_port
from tests.cluster.conftest import INTER_BROKER
from tests.cluster.test_cluster import (
    FAST,
    History,
    check_history,
    consume_all,
    create,
    full_isr,
    partitions,
    segment_bytes,
)
from tests.cluster.test_cluster import run_producer as shared_run_producer
from tests.server.rawclient import RawClient
from tests.storage.helpers import make_batch


@pytest.fixture(scope="module", params=INTER_BROKER)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, inter_broker_pki: Pki
) -> Iterator[LocalCluster]:
    """One cluster per inter-broker listener (conftest.py): PLAINTEXT, then SASL_SSL."""
    c = LocalCluster(
        tmp_path_factory.mktemp("faults"),
        3,
        {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in FAST.items()},
        per_broker=None if request.param == "plaintext" else SecureBrokers("plain", inter_broker_pki),
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(autouse=True)
def _log_tails_on_failure(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:  # kafkapy.pytest_plugin attaches their log tails to a failure
        request.node.stash.setdefault(_CLUSTERS, []).append(request.getfixturevalue("cluster"))


def registrations(cluster: LocalCluster) -> dict[int, dict[str, Any]]:
    return {int(k.split("/")[1]): json.loads(v) for k, v in cluster.etcd_keys().items() if k.startswith("brokers/")}


def states(cluster: LocalCluster, topic: str) -> dict[int, dict[str, Any]]:
    """Partition states as etcd holds them (leader, isr, leader_epoch, ...): the topic's record with its
    partitions' state keys, read as brokers read them."""
    return {i: dataclasses.asdict(p) for i, p in partition_states(cluster.etcd_keys(), topic).items()}


def etcd_revision(cluster: LocalCluster) -> int:
    async def run() -> int:
        client = await EtcdClient.connect(cluster.etcd.url if cluster.etcd else "")
        try:
            return (await client.get_prefix(f"/kafkapy/{cluster.cluster_id}/".encode()))[1]
        finally:
            await client.close()

    return asyncio.run(run())


def etcd_history(cluster: LocalCluster, since: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Every change to the cluster's keys after revision `since`, in order: (PUT|DELETE, key, value)."""
    prefix = f"/kafkapy/{cluster.cluster_id}/"

    async def run() -> list[tuple[str, str, dict[str, Any]]]:
        client = await EtcdClient.connect(cluster.etcd.url if cluster.etcd else "")
        out: list[tuple[str, str, dict[str, Any]]] = []
        try:
            _, now = await client.get_prefix(prefix.encode())
            if now <= since:
                return out
            async for batch in client.watch_prefix(prefix.encode(), since + 1):
                for ev in batch:
                    value = json.loads(ev.kv.value) if ev.kv.value.startswith(b"{") else {}
                    out.append((ev.type, ev.kv.key.decode()[len(prefix) :], value))
                if batch and max(ev.kv.mod_revision for ev in batch) >= now:
                    return out
        finally:
            await client.close()
        return out

    return asyncio.run(asyncio.wait_for(run(), 10))


def healthy(cluster: LocalCluster, *topics: str) -> None:
    """Every broker running and registered; every partition led with a full ISR."""
    for b in cluster.brokers.values():
        if not b.running:
            b.start()
    wait_until(
        lambda: sorted(registrations(cluster)) == [1, 2, 3],
        timeout=30,
        what="three registered brokers",
    )
    for t in topics:
        _wait_full_isr(cluster, t)


def fresh_topic(cluster: LocalCluster, name: str, partitions: int, **configs: str) -> None:
    """A new RF=3 topic on a healthy cluster (an earlier failed test may have left a broker down)."""
    healthy(cluster)
    create(cluster, name, partitions, 3, **configs)
    healthy(cluster, name)


def _wait_full_isr(cluster: LocalCluster, topic: str) -> None:
    wait_until(lambda: full_isr(cluster, topic, 3), timeout=60, what=f"full ISR of {topic}")


def run_producer(cluster: LocalCluster, topic: str, history: History, stop: threading.Event) -> None:
    # A paused broker keeps its connections open: requests to it time out after request.timeout.ms.
    shared_run_producer(cluster, topic, history, stop, **{"request.timeout.ms": 4000, "socket.timeout.ms": 5000})


class Running:
    """An idempotent acks=all librdkafka producer in a thread."""

    def __init__(self, cluster: LocalCluster, topic: str) -> None:
        self.history = History()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_producer,
            args=(cluster, topic, self.history, self.stop),
            daemon=True,
        )
        self.thread.start()

    def acked(self) -> int:
        return len(self.history.acked)

    def more(self, n: int, timeout: float = 60) -> None:
        before = self.acked()
        wait_until(
            lambda: self.acked() >= before + n,
            timeout=timeout,
            what=f"{n} more acknowledgements",
        )

    def finish(self) -> History:
        self.stop.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        return self.history


# ---------------------------------------------------------------- etcd at start


def test_etcd_unreachable_at_start_exits_with_one_clear_line(tmp_path: Any) -> None:
    port = free_port()  # nothing listens here
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "kafkapy", "broker", "--broker-id", "1", "--metadata", f"etcd://127.0.0.1:{port}",
         "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data")],
        capture_output=True, timeout=30, cwd=os.getcwd(), check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode != 0
    assert elapsed < 10
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if "level=error" in line]
    assert len(errors) == 1, out
    assert "cannot reach etcd" in errors[0] and str(port) in errors[0]


# ---------------------------------------------------------------- controlled shutdown


def test_sigterm_moves_leadership_first_and_a_rolling_restart_loses_nothing(
    cluster: LocalCluster,
) -> None:
    fresh_topic(cluster, "cs", 3, **{"min.insync.replicas": "2"})
    prod = Running(cluster, "cs")
    try:
        prod.more(300)
        victim = states(cluster, "cs")[0]["leader"]
        since = etcd_revision(cluster)
        keys = cluster.etcd_keys()  # every partition's leader, by its state key
        leaders = {
            f"{STATE}/{json.loads(keys[k])['topic_id']}/{i}": p.leader
            for k in keys
            if k.startswith("topics/")
            for i, p in partition_states(keys, k[len("topics/") :]).items()
        }
        assert victim in leaders.values()
        t0 = time.monotonic()
        status = cluster.brokers[victim].stop()
        stop_s = time.monotonic() - t0
        assert status == 0
        # etcd's history, in order: the broker announced shutting_down, the controller moved every
        # leadership off it, and only then did its registration go away.
        events = etcd_history(cluster, since)
        key = f"brokers/{victim}"
        announced = next(i for i, (t, k, v) in enumerate(events) if k == key and t == "PUT" and v.get("shutting_down"))
        gone = next(i for i, (t, k, _) in enumerate(events) if k == key and t == "DELETE")
        for t, k, v in events[:gone]:
            if k in leaders and t == "PUT":
                leaders[k] = v["leader"]
        assert announced < gone
        assert victim not in leaders.values()  # it led nothing any more when it deregistered
        assert stop_s < 15
        assert "controlled shutdown: no leaderships left to move" in cluster.brokers[victim].log_tail(400)
        prod.more(300)
        cluster.brokers[victim].start()
        wait_until(
            lambda: full_isr(cluster, "cs", 3),
            timeout=60,
            what="restarted broker back in the ISR",
        )
        # Rolling restart: each broker in turn, waiting for full ISRs in between.
        for node_id in (1, 2, 3):
            before = prod.acked()
            assert cluster.brokers[node_id].stop() == 0
            prod.more(200)
            cluster.brokers[node_id].start()
            wait_until(
                lambda: full_isr(cluster, "cs", 3),
                timeout=60,
                what=f"broker {node_id} back in the ISR",
            )
            assert prod.acked() > before
    finally:
        history = prod.finish()
    assert not history.errors, history.errors[:5]  # only retriable errors, retried by the client
    assert len(history.acked) == history.sent
    check_history(cluster, "cs", history)


# ---------------------------------------------------------------- etcd down during operation


def _produce(
    cluster: LocalCluster, topic: str, acks: str, values: list[bytes], timeout_ms: int
) -> tuple[int, list[str]]:
    """(acknowledged, errors) of producing values with a fresh producer."""
    ok: list[bytes] = []
    errors: list[str] = []

    def cb(err: Any, msg: Any) -> None:
        (errors.append(str(err)) if err is not None else ok.append(msg.value()))

    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": acks, "message.timeout.ms": timeout_ms,
                  "topic.metadata.refresh.interval.ms": 1000})  # fmt: skip
    for v in values:
        p.produce(topic, v, on_delivery=cb)
    p.flush(timeout_ms / 1000 + 10)
    return len(ok), errors


def test_etcd_outage_keeps_safe_service_and_recovers(cluster: LocalCluster) -> None:
    fresh_topic(cluster, "eo", 2, **{"min.insync.replicas": "2"})
    assert _produce(cluster, "eo", "all", [b"before-%d" % i for i in range(50)], 10000) == (50, [])
    assert cluster.etcd is not None
    etcd_dir, etcd_port = (
        cluster.etcd.data_dir,
        int(cluster.etcd.endpoint.rsplit(":", 1)[1]),
    )
    leaders_before = [p.leader for p in partitions(cluster, "eo").values()]
    cluster.etcd.stop()
    try:
        # Past the session timeout: the brokers lost their leases but keep serving what is safe.
        time.sleep(4.0)
        assert all(b.running for b in cluster.brokers.values())
        for b in cluster.brokers.values():  # each keeps its last metadata image
            md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics("eo", timeout=10)
            assert sorted(md.brokers) == [1, 2, 3]
            assert sorted(p.leader for p in md.topics["eo"].partitions.values()) == sorted(leaders_before)
        assert _produce(cluster, "eo", "1", [b"acks1-%d" % i for i in range(50)], 10000) == (50, [])
        # A full ISR needs no change: acks=all still completes.
        assert _produce(cluster, "eo", "all", [b"all-%d" % i for i in range(50)], 10000) == (50, [])
        assert len(consume_all(cluster, "eo", 150, timeout=30)) == 150
        # A dead follower needs an ISR shrink, which etcd must record first: nothing acknowledged.
        leader0 = partitions(cluster, "eo")[0].leader
        victim = next(n for n in (1, 2, 3) if n != leader0)
        cluster.brokers[victim].kill()
        acked, errors = _produce(cluster, "eo", "all", [b"stalled-%d" % i for i in range(5)], 6000)
        assert acked == 0 and errors
    finally:
        cluster.etcd = start_etcd(etcd_dir, port=etcd_port, log_path=cluster.root / "etcd.log")
    # etcd is back: the live brokers are registered again, a controller acts and shrinks the ISR.
    wait_until(
        lambda: sorted(registrations(cluster)) == sorted(cluster.running()),
        timeout=30,
        what="re-registration",
    )
    wait_until(lambda: "controller" in cluster.etcd_keys(), timeout=30, what="a controller")
    assert _produce(cluster, "eo", "all", [b"after-%d" % i for i in range(50)], 30000) == (50, [])
    healthy(cluster, "eo")
    assert _produce(cluster, "eo", "all", [b"healed-%d" % i for i in range(50)], 30000) == (50, [])


# ---------------------------------------------------------------- an isolated leader


def test_isolated_leader_is_replaced_stops_acknowledging_and_truncates(
    cluster: LocalCluster,
) -> None:
    fresh_topic(cluster, "iso", 1, **{"min.insync.replicas": "2"})
    prod = Running(cluster, "iso")
    try:
        prod.more(300)
        old = states(cluster, "iso")[0]
        leader = old["leader"]
        raw = RawClient(cluster.brokers[leader].bootstrap, timeout=30)
        os.kill(cluster.brokers[leader].pid, signal.SIGSTOP)
        try:
            # An acks=all write waits in the paused leader's socket until it runs again.
            raw.correlation_id += 1
            raw.send_raw(encode_request(_iso_produce(), 9, raw.correlation_id, client_id="rawclient"))
            # The lease expires (3 s): the controller elects another ISR member, with a higher epoch.
            new = wait_until(
                lambda: (s := states(cluster, "iso")[0])["leader"] not in (leader, -1) and s,
                timeout=20,
                what="new leader",
            )
            assert new["leader_epoch"] > old["leader_epoch"] and leader not in new["isr"]
            prod.more(300)
        finally:
            os.kill(cluster.brokers[leader].pid, signal.SIGCONT)
        # Whenever the old leader reads that write (before or after it learns it was replaced), it must not
        # acknowledge it: no follower fetches from it any more and its ISR can no longer shrink.
        resp: Any = decode_response(0, 9, raw.read_frame())[1]
        raw.close()
        code = resp.responses[0].partition_responses[0].error_code
        assert code != ErrorCode.NONE
        assert code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.FENCED_LEADER_EPOCH,
                        ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND), code  # fmt: skip
        # The old leader learns it was replaced, re-registers, truncates and rejoins as a follower.
        wait_until(
            lambda: leader in registrations(cluster),
            timeout=30,
            what="old leader registered again",
        )
        wait_until(
            lambda: leader in states(cluster, "iso")[0]["isr"],
            timeout=60,
            what="old leader back in the ISR",
        )
        assert (
            states(cluster, "iso")[0]["leader"] != leader
            or states(cluster, "iso")[0]["leader_epoch"] > new["leader_epoch"]
        )
        prod.more(200)
    finally:
        history = prod.finish()
    assert not history.errors, history.errors[:5]
    wait_until(
        lambda: len({segment_bytes(cluster, n, "iso", 0) for n in (1, 2, 3)}) == 1,
        timeout=30,
        what="identical replicas",
    )
    check_history(cluster, "iso", history)
    assert ISOLATED_VALUE not in segment_bytes(cluster, leader, "iso", 0)  # truncated away
    log_text = cluster.brokers[leader].log_tail(2000)
    assert "etcd session lost" in log_text and "broker re-registered after losing its etcd session" in log_text


ISOLATED_VALUE = b"written-to-the-isolated-leader"


def _iso_produce() -> Any:
    from kafkapy.protocol.messages.produce_request import (
        PartitionProduceData,
        ProduceRequest,
        TopicProduceData,
    )

    batch = make_batch([(None, ISOLATED_VALUE)])
    return ProduceRequest(acks=-1, timeout_ms=10000, topic_data=[
        TopicProduceData(name="iso", partition_data=[PartitionProduceData(index=0, records=memoryview(batch))])])  # fmt: skip


# ---------------------------------------------------------------- bad replica requests


def _replica_fetch(bootstrap: str, topic: str, replica_id: int, epoch: int) -> int:
    from kafkapy.protocol.messages.fetch_request import (
        FetchPartition,
        FetchRequest,
        FetchTopic,
    )

    req = FetchRequest(
        replica_id=replica_id, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, session_id=0, session_epoch=-1,
        topics=[FetchTopic(topic=topic, partitions=[
            FetchPartition(partition=0, current_leader_epoch=epoch, fetch_offset=0, partition_max_bytes=1 << 20)])],
    )  # fmt: skip
    with RawClient(bootstrap) as c:
        return int(c.request(req, 12).responses[0].partitions[0].error_code)


def _epoch_end(bootstrap: str, topic: str, replica_id: int, current: int) -> int:
    from kafkapy.protocol.messages.offset_for_leader_epoch_request import (
        OffsetForLeaderEpochRequest,
        OffsetForLeaderPartition,
        OffsetForLeaderTopic,
    )

    req = OffsetForLeaderEpochRequest(
        replica_id=replica_id,
        topics=[
            OffsetForLeaderTopic(
                topic=topic,
                partitions=[OffsetForLeaderPartition(0, current, max(current, 0))],
            )
        ],
    )
    with RawClient(bootstrap) as c:
        return int(c.request(req, 4).topics[0].partitions[0].error_code)


def test_replica_requests_with_unknown_ids_or_wrong_epochs_are_refused(
    cluster: LocalCluster,
) -> None:
    fresh_topic(cluster, "bad", 1)
    assert _produce(cluster, "bad", "all", [b"x%d" % i for i in range(10)], 10000) == (
        10,
        [],
    )
    first = states(cluster, "bad")[0]
    cluster.brokers[first["leader"]].stop()  # a controlled shutdown: a new leader, epoch + 1
    healthy(cluster, "bad")
    st = states(cluster, "bad")[0]
    leader, epoch = st["leader"], st["leader_epoch"]
    assert epoch > first["leader_epoch"]
    f1, f2 = (n for n in st["replicas"] if n != leader)
    at_leader = cluster.brokers[leader].bootstrap
    assert _replica_fetch(at_leader, "bad", f1, epoch) == ErrorCode.NONE
    assert _replica_fetch(at_leader, "bad", 99, epoch) == ErrorCode.NOT_LEADER_OR_FOLLOWER  # not a replica
    assert _replica_fetch(at_leader, "bad", f1, epoch - 1) == ErrorCode.FENCED_LEADER_EPOCH
    assert _replica_fetch(at_leader, "bad", f1, epoch + 1) == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert _epoch_end(at_leader, "bad", f1, epoch) == ErrorCode.NONE
    assert _epoch_end(at_leader, "bad", f1, epoch - 1) == ErrorCode.FENCED_LEADER_EPOCH
    assert _epoch_end(at_leader, "bad", f1, epoch + 1) == ErrorCode.UNKNOWN_LEADER_EPOCH
    # A follower is nobody's leader: replica fetches to it are refused, stale epochs fenced.
    at_follower = cluster.brokers[f1].bootstrap
    assert _replica_fetch(at_follower, "bad", f2, epoch) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert _replica_fetch(at_follower, "bad", f2, epoch - 1) == ErrorCode.FENCED_LEADER_EPOCH
    assert _epoch_end(at_follower, "bad", f2, epoch) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # Nothing of that changed the partition: same leader, epoch and ISR, and it still takes writes.
    after = states(cluster, "bad")[0]
    assert (after["leader"], after["leader_epoch"], sorted(after["isr"])) == (
        leader,
        epoch,
        [1, 2, 3],
    )
    assert _produce(cluster, "bad", "all", [b"y%d" % i for i in range(10)], 10000) == (
        10,
        [],
    )


# ---------------------------------------------------------------- lease loss, in process


def test_lost_lease_re_registers_and_a_restarted_etcd_resumes_it(tmp_path: Any) -> None:
    """EtcdMetadata alone: a lease revoked behind its back is replaced by a new registration;
    an etcd restart (leases survive it) resumes the same lease. Unregistered, it changes no ISR."""
    from kafkapy.cluster.etcd_metadata import EtcdMetadata
    from kafkapy.cluster.metadata import BrokerInfo

    server = start_etcd(tmp_path / "etcd")
    port = int(server.endpoint.rsplit(":", 1)[1])

    async def body() -> None:
        nonlocal server
        md = await EtcdMetadata.open(
            server.url,
            BrokerInfo(7, "127.0.0.1", 9),
            cluster_id="faults",
            data_dir=tmp_path / "d",
            session_timeout_ms=2000,
        )
        restored: list[str] = []
        md.on_session_restored = lambda: restored.append("restored")
        try:
            await md.create_topic("t", 1, 1)
            assert md.registered and md.lease is not None
            first = md.lease.id
            other = await EtcdClient.connect(server.url)
            await other.lease_revoke(first)  # as etcd does when a lease expires
            await other.close()
            await _until(lambda: len(restored) == 1)  # a new lease and registration
            assert md.registered and md.lease is not None and md.lease.id != first
            await _until(lambda: 7 in md.live_ids())
            # etcd down longer than the session: the lease is lost locally; etcd keeps it over a restart.
            second = md.lease.id
            server.stop()
            await _until(lambda: not md.registered, timeout=10)
            p = md.topic("t").partitions[0]  # type: ignore[union-attr]
            assert await md.alter_isr("t", 0, [7], p.partition_epoch) is None  # refused while unregistered
            assert not await md.campaign()
            server = await asyncio.to_thread(start_etcd, tmp_path / "etcd", port=port)
            await _until(lambda: md.registered, timeout=15)
            assert md.lease is not None and md.lease.id == second and restored == ["restored", "restored"]
            assert 7 in md.live_ids()
            p = md.topic("t").partitions[0]  # type: ignore[union-attr]
            assert await md.alter_isr("t", 0, [7], p.partition_epoch) is not None  # registered again: allowed
        finally:
            await md.close()

    try:
        asyncio.run(body())
    finally:
        server.stop()


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
