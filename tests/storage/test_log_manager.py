from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kafkapy.protocol.records import build_batch
from kafkapy.protocol.uuids import parse_uuid_text, uuid_text
from kafkapy.storage.config import LogConfig
from kafkapy.storage.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from kafkapy.storage.segment import now_ms
from tests.storage.helpers import make_batch


def test_topic_id_encoding() -> None:
    u = uuid.uuid4()
    text = uuid_text(u)
    assert len(text) == 22 and "=" not in text
    assert parse_uuid_text(text) == u


def test_create_load_clean_and_unclean(tmp_path: Path) -> None:
    cfg = LogConfig(segment_bytes=2048)
    lm = LogManager(tmp_path, cfg)
    tid = uuid.uuid4()
    a = lm.create("orders", 0, topic_id=tid)
    b = lm.create("orders.v2-x", 3)
    for _ in range(30):
        a.append(make_batch(2, pad=100), leader_epoch=1)
        b.append(make_batch(1), leader_epoch=1)
    assert lm.topic_id("orders", 0) == tid
    assert (tmp_path / "orders-0" / "partition.metadata").read_text().startswith("version: 0\ntopic_id: ")
    lm.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()

    lm = LogManager(tmp_path, cfg)
    assert lm.loaded_clean
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert lm.partitions() == [("orders", 0), ("orders.v2-x", 3)]
    a = lm.get("orders", 0)
    assert a is not None and a.log_end_offset == 60 and a.segments_recovered == 0
    a.append(make_batch(2), leader_epoch=1)
    # Crash: no close. The next start scans what follows the recovery point.
    lm2 = LogManager(tmp_path, cfg)
    assert not lm2.loaded_clean
    a2 = lm2.get("orders", 0)
    assert a2 is not None and a2.log_end_offset == 62 and a2.segments_recovered >= 1
    lm2.close()


def test_clean_marker_skips_scan(tmp_path: Path) -> None:
    cfg = LogConfig(segment_bytes=1024)
    lm = LogManager(tmp_path, cfg)
    plog = lm.create("t", 0)
    for _ in range(20):
        plog.append(make_batch(2, pad=100), leader_epoch=0)
    first = plog.segments[0].log_path
    lm.close()
    with open(first, "ab") as f:
        f.write(b"\xff" * 30)  # would be cut by a recovery scan
    size = first.stat().st_size
    lm = LogManager(tmp_path, cfg)
    assert lm.get("t", 0).segments_recovered == 0  # type: ignore[union-attr]
    assert first.stat().st_size == size
    lm.close()


def test_delete_partition(tmp_path: Path) -> None:
    lm = LogManager(tmp_path, LogConfig(file_delete_delay_ms=1000))
    plog = lm.create("t", 0)
    plog.append(make_batch(1), leader_epoch=0)
    sl = plog.read(0, 100).slices[0]
    assert lm.delete("t", 0)
    assert lm.get("t", 0) is None
    assert not (tmp_path / "t-0").exists()
    renamed = [p for p in tmp_path.iterdir() if p.name.endswith("-delete")]
    assert len(renamed) == 1 and renamed[0].name.startswith("t-0.")
    assert sl.read_bytes()  # in-flight reads still work until the delay passes
    assert lm.tick(now_ms() + 5000).dirs_deleted == 1
    assert not renamed[0].exists()
    lm.create("t", 0)  # can be re-created
    lm.close()


def test_tick_retention_and_threaded_compaction(tmp_path: Path) -> None:
    configs = {
        "old": LogConfig(segment_bytes=1024, retention_ms=1000, file_delete_delay_ms=0),
        "kv": LogConfig(segment_bytes=1024, cleanup_policy="compact", file_delete_delay_ms=0),
    }
    with ThreadPoolExecutor(1) as pool:
        lm = LogManager(tmp_path, config_for_topic=configs.get, compaction_executor=pool)
        old = lm.create("old", 0)
        kv = lm.create("kv", 0)
        for i in range(40):
            old.append(make_batch(1, timestamp=1000, pad=100), leader_epoch=0)
            kv.append(bytearray(build_batch([(b"k%d" % (i % 3), b"v" * 100, [], 1000 + i)])), leader_epoch=0)
        n_old, kv_size = len(old.segments), kv.size
        r = lm.tick(now_ms())
        assert r.segments_deleted == n_old - 1
        assert r.compactions_started == 1
        # Appends continue while the compaction thread works.
        for i in range(10):
            kv.append(bytearray(build_batch([(b"k%d" % (i % 3), b"w", [], 5000)])), leader_epoch=0)
        lm._compacting[("kv", 0)].result(timeout=30)
        r = lm.tick(now_ms())
        assert r.compaction_results and r.compaction_results[0].segments_cleaned > 0
        assert kv.size < kv_size
        assert kv.log_end_offset == 50
        lm.close()
    lm = LogManager(tmp_path, config_for_topic=configs.get)
    assert lm.get("kv", 0).log_end_offset == 50  # type: ignore[union-attr]
    lm.close()


def test_random_ids_never_read_as_options() -> None:
    from kafkapy.protocol.uuids import random_cluster_id, random_uuid

    ids = [random_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(random_uuid().int > 1 for _ in range(100))
