"""Loading a partition directory into a LocalLog, with recovery.

`load_log` runs once when a PartitionLog opens: it finishes compaction swaps
a crash interrupted (see cleaner.py), drops temporary and orphan files,
opens the segments, and after an unclean shutdown re-reads every segment
past the recovery point (rebuilding its indexes, truncating a torn tail and
dropping the segments after it). It then settles the offsets, trims the
leader epoch cache, loads the aborted-transaction indexes, rebuilds the
producer state and rewrites the offsets checkpoint.

`rebuild_producer_state` is shared with truncation (log.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from kafkapy.storage.config import LogConfig
from kafkapy.storage.epoch_cache import LeaderEpochCache
from kafkapy.storage.local_log import DELETED_SUFFIX, LocalLog, open_segment
from kafkapy.storage.offset_checkpoint import OffsetCheckpoint
from kafkapy.storage.producer_state import CompletedTxn, ProducerStateManager
from kafkapy.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, BatchLocation, now_ms
from kafkapy.storage.txn_index import TXNINDEX_SUFFIX

log = structlog.get_logger(__name__)

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"


@dataclass(slots=True)
class LoadedLog:
    local: LocalLog
    log_start_offset: int
    high_watermark: int
    cleaner_offset: int
    segments_recovered: int


def complete_swaps_and_cleanup(directory: Path) -> set[int]:
    """Finish interrupted compaction swaps, drop temp and deleted files.

    Returns the base offsets of segments completed from .swap files.
    """
    for name in os.listdir(directory):
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, ".tmp")):
            (directory / name).unlink(missing_ok=True)
    names = os.listdir(directory)
    swapped: set[int] = set()
    complete = {n[: -len(LOG_SUFFIX + SWAP_SUFFIX)] for n in names if n.endswith(LOG_SUFFIX + SWAP_SUFFIX)}
    for name in sorted(names, key=lambda n: n.endswith(LOG_SUFFIX + SWAP_SUFFIX)):
        if not name.endswith(SWAP_SUFFIX):
            continue
        stem = name.split(".", 1)[0]
        if stem not in complete:
            # The .log was never renamed: the swap set is incomplete.
            (directory / name).unlink(missing_ok=True)
            continue
        target = directory / name[: -len(SWAP_SUFFIX)]
        os.replace(directory / name, target)
        if stem.isdigit():
            swapped.add(int(stem))
        log.info("log.swap_completed", file=str(target))
    # Index files without a log are orphans.
    for name in os.listdir(directory):
        for ext in (INDEX_SUFFIX, TIMEINDEX_SUFFIX, TXNINDEX_SUFFIX):
            if name.endswith(ext):
                stem = name[: -len(ext)]
                if not (directory / (stem + LOG_SUFFIX)).exists():
                    (directory / name).unlink(missing_ok=True)
    return swapped


def load_log(
    directory: Path,
    config: LogConfig,
    *,
    clean: bool,
    checkpoint: OffsetCheckpoint,
    epoch_cache: LeaderEpochCache,
    producer_state: ProducerStateManager,
    auto_high_watermark: bool,
    sync: bool,
    on_roll: Callable[[int], object],
) -> LoadedLog:
    """Open, recover and settle one partition directory (see the module docstring)."""
    t0 = time.perf_counter()
    state = checkpoint.read()
    swapped = complete_swaps_and_cleanup(directory)
    bases = sorted(
        int(n[: -len(LOG_SUFFIX)])
        for n in os.listdir(directory)
        if n.endswith(LOG_SUFFIX) and n[: -len(LOG_SUFFIX)].isdigit()
    )
    segments = [open_segment(directory, config, b) for b in bases]
    recovered = 0
    for seg in segments:
        if seg.base_offset in swapped:
            seg.recover()
            recovered += 1

    def recover_epoch(loc: BatchLocation) -> None:
        if loc.leader_epoch > epoch_cache.latest_epoch:
            epoch_cache.assign(loc.leader_epoch, loc.base_offset, strict=False)

    recovery_point = state.recovery_point
    if not clean:
        i = 0
        while i < len(segments):
            seg = segments[i]
            nxt_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
            if nxt_base is not None and nxt_base <= recovery_point:
                i += 1
                continue
            from_offset = recovery_point if seg.base_offset < recovery_point else None
            truncated = seg.recover(on_batch=recover_epoch, from_offset=from_offset)
            recovered += 1
            if truncated and i + 1 < len(segments):
                for later in segments[i + 1 :]:
                    log.warning("log.drop_after_corruption", segment=str(later.log_path))
                    later.delete_files()
                segments = segments[: i + 1]
            i += 1
    if not segments:
        segments = [open_segment(directory, config, state.log_start_offset, create=True)]
    active = segments[-1]
    first_ts = active.first_batch_timestamp()
    if first_ts is not None and first_ts > 0:
        active.created_ms = min(first_ts, now_ms())
    log_end_offset = active.next_offset
    if config.remote_storage_enable:
        # tiered: offsets below the first local segment may be in the object store
        log_start_offset = min(state.log_start_offset, log_end_offset)
    else:
        log_start_offset = min(max(state.log_start_offset, segments[0].base_offset), log_end_offset)
    cleaner_offset = max(state.cleaner_offset, log_start_offset)
    if not clean:
        for seg in segments:
            if seg.next_offset > recovery_point:
                seg.flush()
    if auto_high_watermark:
        high_watermark = log_end_offset
    else:
        high_watermark = min(max(state.high_watermark, log_start_offset), log_end_offset)
    local = LocalLog(directory, config, segments, recovery_point=log_end_offset, sync=sync, on_roll=on_roll)
    try:
        epoch_cache.truncate_from_end(log_end_offset)
        epoch_cache.truncate_from_start(log_start_offset)
    except OSError:
        pass  # a full disk: kept in memory (dirty), written by the next flush
    local.load_txn_indexes()
    rebuild_producer_state(local, producer_state, log_start_offset)
    try:
        checkpoint.write(log_start_offset, local.recovery_point, high_watermark, cleaner_offset)
    except OSError as exc:
        # a broker started on a full disk still serves what it has; housekeeping writes it later
        log.warning("log.checkpoint_not_written", dir=str(directory), error=exc.strerror or str(exc))
    log.info(
        "log.loaded",
        dir=str(directory),
        segments=len(segments),
        recovered=recovered,
        log_start_offset=log_start_offset,
        log_end_offset=log_end_offset,
        clean=clean,
        ms=round((time.perf_counter() - t0) * 1000, 2),
    )
    return LoadedLog(local, log_start_offset, high_watermark, cleaner_offset, recovered)


def rebuild_producer_state(local: LocalLog, producer_state: ProducerStateManager, log_start_offset: int) -> None:
    """Last snapshot at or below the log end, then the batch headers after it.

    Aborted-transaction index entries of markers at or after the
    snapshot are dropped and re-added from the markers replayed.
    """
    ps = producer_state
    log_end_offset = local.log_end_offset
    start = ps.load_snapshot(log_end_offset)
    start = log_start_offset if start is None else max(start, log_start_offset)
    scanned = 0
    view = local.view
    for idx in local.txn_indexes.values():
        idx.truncate_from(start)
    completed: list[CompletedTxn] = []
    for i, seg in enumerate(view.segments if start < log_end_offset else ()):
        nxt = view.bases[i + 1] if i + 1 < len(view.segments) else None
        if (nxt is not None and nxt <= start) or seg.size == 0:
            continue
        pos = 0
        if start > seg.base_offset:
            loc = seg.translate_offset(start)
            if loc is None:
                continue
            pos = loc.position
        scanned += ps.replay_file(seg.file.fileno(), pos, seg.size, start, completed)
        local.index_aborted(seg.base_offset, completed)
        completed.clear()
    if scanned:
        log.info("log.producer_state_rebuilt", dir=str(local.directory), from_offset=start, batches=scanned)
