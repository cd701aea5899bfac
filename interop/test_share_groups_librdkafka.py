"""Share groups (KIP-932) with librdkafka's share consumer (confluent_kafka.ShareConsumer).

Every scenario runs against a kafkapy broker and against Apache Kafka 4.3.1 (the shared reference
broker), so a difference is kafkapy's: implicit acknowledgement reads everything produced; explicit
ACCEPT/RELEASE/REJECT (a released record comes back with delivery count 2, a rejected one never);
two librdkafka consumers of one group split a topic's records; a librdkafka and a Java
KafkaShareConsumer share one group; the ShareAcknowledge that closes the share session right after
the member left (librdkafka's close sends both at once) is answered without an error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from interop._common import BrokerProcess
from interop.adapters import java

ck = pytest.importorskip("confluent_kafka")
if not hasattr(ck, "ShareConsumer"):
    pytest.skip("this confluent-kafka has no ShareConsumer", allow_module_level=True)
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from kafkapy.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkapy.protocol.messages.share_acknowledge_request import ShareAcknowledgeRequest
from kafkapy.protocol.messages.share_fetch_request import (
    FetchPartition,
    FetchTopic,
    ShareFetchRequest,
)
from kafkapy.protocol.messages.share_group_heartbeat_request import ShareGroupHeartbeatRequest
from tests.server.rawclient import RawClient

Record = tuple[int, int, bytes]  # offset, delivery count, value


# kafkapy's runs feed docs/compatibility.md's "share-groups" row (interop/report.py), confluent's column
@pytest.fixture(
    scope="module",
    params=[pytest.param("kafkapy", marks=pytest.mark.compat("share-groups", client="confluent")), "kafka-4.3.1"],
)
def bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "kafkapy":
        b: BrokerProcess = request.getfixturevalue("broker")
        yield b.bootstrap
    else:
        yield request.getfixturevalue("shared_apache_kafka").use(__name__).bootstrap


def _setup(bootstrap: str, records: int = 0) -> tuple[str, str]:
    """A new one-partition topic with `records` records (v0, v1, ...) and a group reading it from the
    earliest offset (share.auto.offset.reset=earliest, IncrementalAlterConfigs on a GROUP resource)."""
    topic = f"lrk-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    group = f"g-{topic}"
    entry = ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    admin.incremental_alter_configs([res])[res].result(30)
    if records:
        _produce(bootstrap, topic, range(records))
    return topic, group


def _produce(bootstrap: str, topic: str, values: range) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in values:
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    assert p.flush(10) == 0


def _consumer(bootstrap: str, group: str, topic: str, mode: str) -> Any:
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "share.acknowledgement.mode": mode})
    c.subscribe([topic])
    return c


def _poll(c: Any, timeout: float) -> list[Any]:
    out = []
    for m in c.poll(timeout):
        assert m.error() is None, m.error()
        out.append(m)
    return out


def _rec(m: Any) -> Record:
    return (m.offset(), m.delivery_count(), m.value())


def test_implicit_mode_reads_everything(bootstrap: str) -> None:
    topic, group = _setup(bootstrap, 20)
    got: list[Record] = []
    c = _consumer(bootstrap, group, topic, "implicit")
    try:
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            got += [_rec(m) for m in _poll(c, 0.5)]
        c.commit_sync(10)  # accepts the last poll's records
    finally:
        c.close()
    assert got == [(i, 1, f"v{i}".encode()) for i in range(20)]


def test_explicit_accept_release_reject(bootstrap: str) -> None:
    """Offset 1 released at its first delivery comes back with delivery count 2; offset 2 rejected never
    comes back; the rest accepted once."""
    topic, group = _setup(bootstrap, 6)
    got: list[Record] = []
    c = _consumer(bootstrap, group, topic, "explicit")
    try:
        deadline = time.monotonic() + 30
        quiet_until = None  # after the redelivery: a little longer, to see nothing else comes
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            ms = _poll(c, 0.3)
            for m in ms:
                got.append(_rec(m))
                if m.delivery_count() == 1 and m.offset() in (1, 2):
                    c.acknowledge(m, AcknowledgeType.RELEASE if m.offset() == 1 else AcknowledgeType.REJECT)
                else:
                    c.acknowledge(m)
            if ms:
                results = c.commit_sync(10)
                assert all(e is None for e in results.values()), results
            if quiet_until is None and (1, 2, b"v1") in got:
                quiet_until = time.monotonic() + 1.5
    finally:
        c.close()
    assert got == [(i, 1, f"v{i}".encode()) for i in range(6)] + [(1, 2, b"v1")]


def test_two_consumers_split_the_records(bootstrap: str) -> None:
    """Two librdkafka share consumers of one group, each accepting what it gets: records produced while
    both poll go to one of them each (none to both), and both get some."""
    topic, group = _setup(bootstrap)
    a, b = (_consumer(bootstrap, group, topic, "explicit") for _ in range(2))
    got: dict[str, list[Record]] = {"a": [], "b": []}
    sent = 0
    try:

        def poll_both() -> None:
            for name, c in (("a", a), ("b", b)):
                ms = _poll(c, 0.1)
                for m in ms:
                    got[name].append(_rec(m))
                    c.acknowledge(m)
                if ms:
                    c.commit_sync(10)

        deadline = time.monotonic() + 40
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        # produce while both poll, until each has had records for a while
        while time.monotonic() < deadline and min(len(got["a"]), len(got["b"])) < 10:
            p.produce(topic, value=f"v{sent}".encode(), partition=0)
            p.flush(5)
            sent += 1
            poll_both()
        drain = time.monotonic() + 3
        while time.monotonic() < drain and len(got["a"]) + len(got["b"]) < sent:
            poll_both()
    finally:
        a.close()
        b.close()
    oa, ob = [o for o, _, _ in got["a"]], [o for o, _, _ in got["b"]]
    assert oa and ob, (len(oa), len(ob), sent)
    assert not set(oa) & set(ob)
    assert sorted(oa + ob) == list(range(sent))
    assert {d for _, d, _ in got["a"] + got["b"]} == {1}


@pytest.mark.skipif(java.available() is not None, reason=f"Java driver unavailable: {java.available()}")
def test_librdkafka_and_java_consumers_share_a_group(bootstrap: str) -> None:
    """A librdkafka share consumer and the Java KafkaShareConsumer (interop/java ShareConsume, 4.3.1) in
    one group: each record produced while both poll goes to one of them."""
    from interop.test_share_groups import Consumer as JavaShareConsumer

    topic, group = _setup(bootstrap)
    j = JavaShareConsumer(bootstrap, group, topic, 1_000_000, "accept", timeout_ms=60000)
    c = _consumer(bootstrap, group, topic, "implicit")
    mine: list[Record] = []
    sent = 0
    try:
        j.wait_for("subscribed")
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            theirs = sum(1 for x in j.lines if x.startswith("record "))
            if len(mine) >= 10 and theirs >= 10:
                break
            p.produce(topic, value=f"v{sent}".encode(), partition=0)
            p.flush(5)
            sent += 1
            mine += [_rec(m) for m in _poll(c, 0.1)]
        drain = time.monotonic() + 3
        while time.monotonic() < drain:
            mine += [_rec(m) for m in _poll(c, 0.1)]
            if len(mine) + sum(1 for x in j.lines if x.startswith("record ")) >= sent:
                break
        c.commit_sync(10)
    finally:
        c.close()
        j.kill()
    theirs_offsets = [int(x.split(" ")[2]) for x in j.lines if x.startswith("record ")]
    my_offsets = [o for o, _, _ in mine]
    assert my_offsets and theirs_offsets, (len(my_offsets), len(theirs_offsets), sent)
    assert not set(my_offsets) & set(theirs_offsets)
    assert sorted(my_offsets + theirs_offsets) == list(range(sent))


def test_session_closed_after_the_member_left(bootstrap: str) -> None:
    """Raw requests in librdkafka's close order: the member leaves (heartbeat epoch -1), then the
    ShareAcknowledge at epoch -1 closes its share session; Kafka answers it without an error."""
    topic, group = _setup(bootstrap, 1)
    with RawClient(bootstrap, timeout=30) as c:
        tid = c.request(MetadataRequest(topics=[MetadataRequestTopic(name=topic)]), 12).topics[0].topic_id
        member = uuid.uuid4().hex[:22]
        hb = c.request(
            ShareGroupHeartbeatRequest(
                group_id=group, member_id=member, member_epoch=0, subscribed_topic_names=[topic]
            ),
            1,
        )
        assert hb.error_code == 0, hb
        fetch = ShareFetchRequest(
            group_id=group,
            member_id=member,
            share_session_epoch=0,
            max_wait_ms=0,
            min_bytes=1,
            max_bytes=1 << 20,
            max_records=10,
            batch_size=10,
            topics=[FetchTopic(topic_id=tid, partitions=[FetchPartition(partition_index=0)])],
        )
        assert c.request(fetch, 1).error_code == 0
        leave = c.request(ShareGroupHeartbeatRequest(group_id=group, member_id=member, member_epoch=-1), 1)
        assert leave.error_code == 0, leave
        ack = c.request(ShareAcknowledgeRequest(group_id=group, member_id=member, share_session_epoch=-1), 1)
        assert (ack.error_code, ack.responses) == (0, []), ack
