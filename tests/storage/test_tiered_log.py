"""PartitionLog with remote.storage.enable: local start vs log start, local retention, restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkapy.storage.config import LogConfig
from kafkapy.storage.errors import OffsetMovedToTieredStorageError, OffsetOutOfRangeError
from kafkapy.storage.log import PartitionLog
from tests.storage.helpers import make_batch, parse_batches


def tiered_config(**kw: object) -> LogConfig:
    base: dict[str, object] = dict(
        segment_bytes=2048, index_interval_bytes=256, remote_storage_enable=True, local_retention_bytes=0
    )
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def fill(log: PartitionLog, batches: int, per: int = 5) -> None:
    for i in range(batches):
        log.append(make_batch(per, pad=20, timestamp=1000 + i), leader_epoch=0)


def test_topic_config_names_and_defaults() -> None:
    c = LogConfig.from_topic_configs(
        {"remote.storage.enable": "true", "local.retention.ms": "1000", "remote.log.copy.disable": "false"}
    )
    assert c.remote_storage_enable and c.local_retention_ms == 1000 and not c.remote_log_copy_disable
    assert c.local_retention_bytes == -2 and c.effective_local_retention_bytes == c.retention_bytes
    assert c.effective_local_retention_ms == 1000
    assert LogConfig().to_topic_configs()["local.retention.ms"] == "-2"


def test_local_retention_deletes_only_copied_segments_and_keeps_log_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", tiered_config())
    fill(log, 40)
    segs = log.segments
    assert len(segs) > 4
    assert log.apply_retention() == 0  # nothing copied yet
    copied_end = segs[2].base_offset + 0  # segments 0 and 1 copied
    log.remote_copied_up_to = copied_end - 1
    assert log.apply_retention() == 2
    assert log.log_start_offset == 0
    assert log.local_log_start_offset == copied_end
    with pytest.raises(OffsetMovedToTieredStorageError) as info:
        log.read(0, 1000)
    assert info.value.local_log_start_offset == copied_end and info.value.log_start_offset == 0
    assert parse_batches(log.read_bytes(copied_end, 100))[0][0] == copied_end
    # list offsets
    assert log.list_offset(-2).offset == 0  # type: ignore[union-attr]
    assert log.list_offset(-4).offset == copied_end  # type: ignore[union-attr]
    assert log.list_offset(-5).offset == copied_end - 1  # type: ignore[union-attr]
    assert log.list_offset(-6).offset == copied_end  # type: ignore[union-attr]
    log.close()
    # restart: log start stays below the first local segment
    log2 = PartitionLog(tmp_path / "t-0", tiered_config(), clean_shutdown=True)
    assert log2.log_start_offset == 0 and log2.local_log_start_offset == copied_end
    log2.close()
    log3 = PartitionLog(tmp_path / "t-0", tiered_config(), clean_shutdown=False)
    assert log3.log_start_offset == 0 and log3.local_log_start_offset == copied_end
    # expiry of remote segments moves the log start (and drops local segments below it)
    assert log3.advance_log_start_offset(5) == 5
    with pytest.raises(OffsetOutOfRangeError):
        log3.read(0, 1000)
    assert log3.advance_log_start_offset(copied_end + 3) == copied_end + 3
    assert log3.local_log_start_offset == copied_end + 3
    log3.close()


def test_local_retention_ms(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", tiered_config(local_retention_bytes=-2, local_retention_ms=100))
    fill(log, 40)
    log.remote_copied_up_to = log.segments[3].base_offset - 1
    # records are stamped 1000+: all are older than now - 100
    assert log.apply_retention() == 3
    assert log.log_start_offset == 0
    log.close()


def test_untiered_unchanged(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=2048, retention_bytes=0))
    fill(log, 40)
    log.remote_copied_up_to = -1
    n = len(log.segments)
    assert log.apply_retention() == n - 1
    assert log.log_start_offset == log.local_log_start_offset == log.segments[0].base_offset
    assert log.list_offset(-5).offset == -1  # type: ignore[union-attr]
    assert log.list_offset(-6).offset == -1  # type: ignore[union-attr]
    log.close()


def test_delete_records_below_local_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", tiered_config())
    fill(log, 40)
    copied_end = log.segments[2].base_offset
    log.remote_copied_up_to = copied_end - 1
    log.apply_retention()
    assert log.delete_records_before(3) == 3
    assert log.local_log_start_offset == copied_end
    with pytest.raises(OffsetMovedToTieredStorageError):
        log.read(3, 100)
    log.close()


def test_copy_disabled_expires_by_total_retention(tmp_path: Path) -> None:
    log = PartitionLog(
        tmp_path / "t-0",
        tiered_config(remote_log_copy_disable=True, local_retention_bytes=0, retention_bytes=4096),
    )
    fill(log, 40)
    copied = log.segments[1].base_offset - 1  # the first segment only was copied before copying stopped
    log.remote_copied_up_to = copied
    size = log.size
    deleted = log.apply_retention()
    assert deleted > 1
    assert log.size <= 4096 < size
    # uncopied data went: the log starts where the local data does
    assert log.log_start_offset == log.local_log_start_offset == log.segments[0].base_offset
    log.close()


def test_copy_disabled_keeps_log_start_when_only_copied_segments_go(tmp_path: Path) -> None:
    off = dict(remote_log_copy_disable=True, retention_ms=-1)
    log = PartitionLog(tmp_path / "t-0", tiered_config(**off, retention_bytes=-1))
    fill(log, 40)
    log.remote_copied_up_to = log.segments[3].base_offset - 1
    two = log.segments[0].size + log.segments[1].size
    log.config = tiered_config(**off, retention_bytes=log.size - two)
    assert log.apply_retention() == 2
    assert log.log_start_offset == 0
    log.close()
