"""MirrorMaker 2 between kafkapy and a real Apache Kafka broker, both ways:
one MM2 process with clusters `kp` (kafkapy) and `ak` (Apache Kafka 4.3.1,
interop/apache_kafka.py), kp->ak mirroring `to-apache` and ak->kp mirroring
`from-apache`, each with a consumer group whose offsets are translated.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interop.apache_kafka import KafkaProcess, start_kafka
from interop.mirror import MirrorMakerProcess, start_mirror_maker
from interop.test_mirrormaker import (
    BASE_TS,
    _record,
    committed,
    consume_group,
    create_topic,
    produce,
    read_all,
    start_kafkapy,
    topics,
    wait_for,
)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    kafkapy = start_kafkapy(tmp_path_factory.mktemp("kp"), "kp")
    apache: KafkaProcess | None = None
    try:
        apache = start_kafka(tmp_path_factory.mktemp("apache-kafka"))
        yield {"kp": kafkapy.bootstrap, "ak": apache.bootstrap}
    finally:
        kafkapy.stop()
        if apache is not None:
            apache.stop()


@pytest.fixture(scope="module")
def mm2(clusters: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorMakerProcess]:
    create_topic(clusters["kp"], "to-apache", 2)
    create_topic(clusters["ak"], "from-apache", 2)
    mm = start_mirror_maker(
        tmp_path_factory.mktemp("mm2"),
        clusters,
        [("kp", "ak"), ("ak", "kp")],
        groups="app.*",
        settings={"kp->ak.topics": "to-apache", "ak->kp.topics": "from-apache"},
    )
    try:
        yield mm
    finally:
        code = mm.stop()
        errors = mm.errors()
        if code not in (0, 143, None) or errors:
            print(f"\nMirrorMaker ({mm.log_path}) exited with {code}; errors:\n" + "\n".join(errors[-10:]))


def _mirror_one_way(source: str, target: str, alias: str, topic: str) -> None:
    sent = [_record(i, 2) for i in range(40)]
    produce(source, topic, sent)
    remote = f"{alias}.{topic}"
    wait_for(f"{remote} with 2 partitions", lambda: topics(target).get(remote) == 2)
    got = read_all(target, remote, 2, len(sent))
    assert len(got) == len(sent), f"{len(got)} of {len(sent)} records replicated"
    for partition in range(2):
        want = [(k, v, h, ts) for p, k, v, h, ts in sent if p == partition]
        have = [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in got if m.partition() == partition]
        assert have == want

    # a caught-up group's offsets follow it to the target
    group = f"app-{topic}"
    assert len(consume_group(source, group, topic, len(sent), commit=True)) == len(sent)
    total = sum(committed(source, group, topic, p) for p in range(2))
    assert total == len(sent)
    wait_for(
        f"{group}'s offsets translated on {remote}",
        lambda: sum(max(committed(target, group, remote, p), 0) for p in range(2)) == len(sent),
        timeout=40,
    )
    produce(source, topic, [(0, b"k", b"after-failover", [], BASE_TS + 99)])
    wait_for(  # a loaded suite run took over 40 s here once (passes in ~26 s alone, both tests)
        f"the new record on {remote}", lambda: len(read_all(target, remote, 2, 41, timeout=5)) == 41, timeout=90
    )
    assert consume_group(target, group, remote, 1, commit=False) == [b"after-failover"]


def test_kafkapy_to_apache_kafka(clusters: dict[str, str], mm2: MirrorMakerProcess) -> None:
    _mirror_one_way(clusters["kp"], clusters["ak"], "kp", "to-apache")
    assert "kp.checkpoints.internal" in topics(clusters["ak"])
    assert "heartbeats" in topics(clusters["ak"])


def test_apache_kafka_to_kafkapy(clusters: dict[str, str], mm2: MirrorMakerProcess) -> None:
    _mirror_one_way(clusters["ak"], clusters["kp"], "ak", "from-apache")
    assert "ak.checkpoints.internal" in topics(clusters["kp"])
    assert "heartbeats" in topics(clusters["kp"])
