"""flush.messages / flush.ms (and the broker's log.flush.interval.messages / log.flush.interval.ms
defaults) honoured, and what each keeps after a crash.

What this can show, honestly: SIGKILL ends the process but not the kernel, whose page cache still
holds every write, so after SIGKILL every setting keeps everything acknowledged (checked). What an
fsync buys shows only when the machine loses power, which a test cannot do. So the test checks the
two things the settings control and a power cut depends on: the recovery point (the offset below
which the log was fsynced, `recovery_point` in each partition's `partition-offsets.checkpoint`,
Kafka's `recovery-point-offset-checkpoint`) moves exactly at the configured points; and a "power
cut" modelled as losing everything after the last fsync (each log cut at its recovery point, the
worst case: a real cut may keep more, or keep torn bytes that recovery's CRC check removes) loads
cleanly and keeps exactly what the setting promised. docs/reliability.md, "Disks"."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

from kafkapy.protocol import records
from kafkapy.storage.offset_checkpoint import STATE_FILE
from kafkapy.testing import BrokerFactory
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic, fetch_all, produce

# topic -> (its flush configs, records produced one per request)
TOPICS: dict[str, tuple[dict[str, str], int]] = {
    "every": ({"flush.messages": "1"}, 12),
    "ten": ({"flush.messages": "10"}, 25),
    "timed": ({"flush.ms": "300"}, 12),
    "default": ({}, 12),  # Kafka's defaults: no flush until a segment rolls or the broker stops
}


def _create(c: RawClient) -> None:
    for name, (configs, _) in TOPICS.items():
        assert create_topic(c, name, 1, **configs) == 0


def _produce_one(c: RawClient, topic: str, i: int) -> None:
    batch = bytes(records.build_batch([(b"%d" % i, b"v%d" % i, [], int(time.time() * 1000))]))
    assert produce(c, topic, batch, acks=1).error_code == 0


def _count(c: RawClient, topic: str) -> int:
    return len(fetch_all(c, topic))


def recovery_point(data_dir: Path, topic: str) -> int:
    for line in (data_dir / f"{topic}-0" / STATE_FILE).read_text().splitlines():
        if line.startswith("recovery_point "):
            return int(line.split()[1])
    raise AssertionError("no recovery point")


def cut_at_recovery_points(data_dir: Path) -> None:
    """The power-cut model: every log loses what lies above its recovery point."""
    for topic in TOPICS:
        part = data_dir / f"{topic}-0"
        point = recovery_point(data_dir, topic)
        for seg in sorted(part.glob("*.log")):
            data = seg.read_bytes()
            pos = 0
            while pos + 12 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if base >= point:
                    break
                pos += 12 + length
            with open(seg, "r+b") as f:
                f.truncate(pos)


def test_flush_settings_move_the_recovery_point_and_a_crash_keeps_what_they_promise(
    kafka_broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    # the flusher looks every 100 ms; log.flush.interval.ms set, or flush.ms would default to that 100 (as in Kafka)
    broker = kafka_broker_factory({"log.flush.scheduler.interval.ms": 100, "log.flush.interval.ms": 2**63 - 1})
    with RawClient(broker.bootstrap) as c:
        _create(c)
        for topic, (_, n) in TOPICS.items():
            for i in range(n):
                _produce_one(c, topic, i)
        deadline = time.monotonic() + 5
        while recovery_point(broker.data_dir, "timed") < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
    points = {topic: recovery_point(broker.data_dir, topic) for topic in TOPICS}
    # flush.messages=1: after every record; =10: at 10 and 20; flush.ms: all within the period;
    # the defaults: never while the segment is active
    assert points == {"every": 12, "ten": 20, "timed": 12, "default": 0}

    broker.kill()  # SIGKILL: the page cache keeps every write
    power_cut = tmp_path / "power-cut"
    shutil.copytree(broker.data_dir, power_cut)
    broker.start()
    with RawClient(broker.bootstrap) as c:
        assert {t: _count(c, t) for t in TOPICS} == {t: n for t, (_, n) in TOPICS.items()}
    log = broker.log_path.read_text()
    assert "segment.truncate_tail" not in log

    cut_at_recovery_points(power_cut)
    modelled = kafka_broker_factory(start=False)
    modelled.data_dir = power_cut
    modelled.start()
    with RawClient(modelled.bootstrap) as c:
        assert {t: _count(c, t) for t in TOPICS} == points


def test_broker_defaults_log_flush_interval_messages_and_ms(kafka_broker_factory: BrokerFactory) -> None:
    """log.flush.interval.messages / log.flush.interval.ms are the default flush.messages / flush.ms
    of every topic that sets none."""
    broker = kafka_broker_factory(
        {"log.flush.interval.messages": 5, "log.flush.interval.ms": 2**63 - 1, "log.flush.scheduler.interval.ms": 100}
    )
    with RawClient(broker.bootstrap) as c:
        _create(c)
        for i in range(7):
            _produce_one(c, "default", i)
        assert recovery_point(broker.data_dir, "default") == 5
    broker.stop()
    timed = kafka_broker_factory({"log.flush.interval.ms": 200, "log.flush.scheduler.interval.ms": 100})
    with RawClient(timed.bootstrap) as c:
        _create(c)
        for i in range(3):
            _produce_one(c, "default", i)
        deadline = time.monotonic() + 5
        while recovery_point(timed.data_dir, "default") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recovery_point(timed.data_dir, "default") == 3
