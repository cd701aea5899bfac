"""A broker that lost its data dir while it was the last ISR member (docs/cluster.md, "A broker back
with an empty data dir"; docs/reliability.md, "Network partitions"): it comes back with a new
directory id, the controller takes it out of every ISR instead of electing it from its empty log,
the partition stays offline, the other replicas keep their records, and ElectLeaders UNCLEAN then
elects one of them; the emptied broker rejoins the ISR by catching up."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from kafkapy.client import ELECTION_UNCLEAN
from kafkapy.cluster.controller import next_state
from kafkapy.cluster.etcd_metadata import partition_states
from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.local_cluster import LocalCluster, wait_until
from tests.cluster.test_cluster import FAST, admin, consume_all, full_isr
from tests.cluster.test_reassignment import call

TOPIC = "wiped"
WIPED = 1  # the broker that loses its data dir; replicas [2, 3, 1]: it is not the first replica


def _state(cluster: LocalCluster) -> dict[str, Any]:
    return dataclasses.asdict(partition_states(cluster.etcd_keys(), TOPIC)[0])


def _produce(cluster: LocalCluster, first: int, count: int) -> list[bytes]:
    """`count` acks=all records; every one acknowledged."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 20000})
    acked: list[bytes] = []
    errors: list[Any] = []

    def done(err: Any, msg: Any) -> None:
        (errors.append(err) if err else acked.append(msg.value()))

    for i in range(first, first + count):
        producer.produce(TOPIC, f"record-{i}".encode(), partition=0, on_delivery=done)
    producer.flush(30)
    assert not errors and len(acked) == count, errors
    return acked


def _log_since(cluster: LocalCluster, node_id: int, marker: str) -> str:
    text = cluster.brokers[node_id].log_path.read_text(errors="replace")
    return text[text.rindex(marker) :]


def test_a_broker_back_empty_is_not_elected_from_its_empty_log(kafka_cluster_factory: Any) -> None:
    cluster: LocalCluster = kafka_cluster_factory(3, FAST)
    admin(cluster).create_topics(
        [NewTopic(TOPIC, 1, replica_assignment=[[2, 3, WIPED]], config={"min.insync.replicas": "1"})]
    )[TOPIC].result(15)
    wait_until(lambda: full_isr(cluster, TOPIC, 3), what="full ISR")
    keys = cluster.etcd_keys()
    dirs = {
        int(k.split("/")[1]): json.loads(v)["directory_id"] for k, v in keys.items() if k.startswith("broker-dirs/")
    }
    assert sorted(dirs) == [1, 2, 3]
    assert json.loads(keys[f"brokers/{WIPED}"])["directory_id"] == dirs[WIPED]
    meta = (cluster.brokers[WIPED].data_dir / "meta.properties").read_text()
    assert f"directory.id={dirs[WIPED]}" in meta.splitlines()

    in_all = _produce(cluster, 0, 50)  # acknowledged by all three

    # the other two die: the ISR shrinks to the wiped-to-be broker, which leads and acknowledges alone
    cluster.brokers[2].kill()
    cluster.brokers[3].kill()
    wait_until(lambda: (s := _state(cluster))["leader"] == WIPED and s["isr"] == [WIPED], what="ISR [1]")
    only_wiped = _produce(cluster, 50, 50)

    # it loses its disk and comes back empty (alone: it is the controller)
    cluster.brokers[WIPED].kill()
    shutil.rmtree(cluster.brokers[WIPED].data_dir)
    cluster.brokers[WIPED].start()
    wait_until(lambda: _state(cluster)["leader"] == -1, what="the partition offline")
    s = _state(cluster)
    assert s["isr"] == [] and s["leader"] == -1, s
    new_dir = json.loads(cluster.etcd_keys()[f"brokers/{WIPED}"])["directory_id"]
    assert new_dir != dirs[WIPED]
    wait_until(
        lambda: json.loads(cluster.etcd_keys()[f"broker-dirs/{WIPED}"])["directory_id"] == new_dir,
        what="the new data dir accepted",
    )
    since = _log_since(cluster, WIPED, "--- start:")
    assert "became leader" not in since
    assert "removing it from every ISR" in since

    # the others come back: not in the ISR, no clean election; the partition stays offline
    cluster.brokers[2].start()
    cluster.brokers[3].start()
    wait_until(lambda: all(f"brokers/{i}" in cluster.etcd_keys() for i in (2, 3)), what="2 and 3 registered")
    assert _state(cluster) == s
    for i in (2, 3):  # nothing truncated their logs
        text = b"".join(p.read_bytes() for p in sorted((cluster.brokers[i].data_dir / f"{TOPIC}-0").glob("*.log")))
        assert all(v in text for v in in_all)

    # an operator's unclean election picks the first live replica (broker 2): what every replica
    # acknowledged is there; what only the emptied broker held is gone, as unclean elections go
    result = call(cluster, lambda c: c.elect_leaders([(TOPIC, 0)], election_type=ELECTION_UNCLEAN))
    assert result[(TOPIC, 0)].ok, result
    # the ISR starts as [2]; the followers may have caught up and rejoined it by the time we look
    after = _state(cluster)
    assert after["leader"] == 2 and after["leader_epoch"] > s["leader_epoch"] and after["isr"][0] == 2, after
    values = [m.value() for m in consume_all(cluster, TOPIC, len(in_all), timeout=20)]
    assert values[: len(in_all)] == in_all
    assert not set(values) & set(only_wiped)
    # the emptied broker catches up and rejoins the ISR like any follower
    wait_until(lambda: full_isr(cluster, TOPIC, 3), timeout=20, what="full ISR again")
    data = cluster.brokers[WIPED].data_dir / f"{TOPIC}-0"
    assert all(v in b"".join(p.read_bytes() for p in sorted(Path(data).glob("*.log"))) for v in in_all)


def test_next_state_for_a_broker_back_with_an_empty_data_dir() -> None:
    """The controller's rule (kafkapy/cluster/controller.py): broker 1 is back with a new data dir."""
    emptied = {1}
    live = {1, 2, 3}
    leadable = live - emptied

    def state(leader: int, isr: list[int]) -> PartitionInfo:
        return PartitionInfo(0, leader, [1, 2, 3], isr, 5, 7)

    # the last ISR member: not elected, out of the ISR, the partition offline with an empty ISR
    gone = next_state(state(1, [1]), live, leadable, unclean=False, emptied=emptied)
    assert gone is not None and (gone.leader, gone.isr, gone.leader_epoch) == (-1, [], 6)
    assert next_state(gone, live, leadable, unclean=False, emptied=emptied) is None
    # unclean: another live replica, never the emptied one
    other = next_state(state(1, [1]), live, leadable, unclean=True, emptied=emptied)
    assert other is not None and (other.leader, other.isr) == (2, [2])
    # a follower in the ISR leaves it; an in-sync replica takes its leadership
    assert (f := next_state(state(2, [2, 1, 3]), live, leadable, unclean=False, emptied=emptied)) is not None
    assert (f.leader, f.isr) == (2, [2, 3])
    assert (m := next_state(state(1, [1, 3]), live, leadable, unclean=False, emptied=emptied)) is not None
    assert (m.leader, m.isr) == (3, [3])
    # offline with dead ISR members besides it: they stay (as Kafka keeps the last ISR), it goes
    assert (o := next_state(state(-1, [1, 3]), {1, 2}, {2}, unclean=False, emptied=emptied)) is not None
    assert (o.leader, o.isr) == (-1, [3])
