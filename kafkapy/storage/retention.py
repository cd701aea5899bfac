"""Retention and cleaning on a LocalLog's segment list.

Which closed segments go: the oldest ones while a predicate holds (by time,
by total size, below a new log start offset); which are eligible for
compaction; and the atomic swap of cleaned segments (built by cleaner.py)
in for live ones. PartitionLog (log.py) moves its log start offset and
cleaner offset from what these return.

Concurrency: `swap_cleaned_segments` runs in a compaction thread; every
change of the segment list holds the LocalLog's lock.
"""

from __future__ import annotations

from collections.abc import Callable

from kafkapy.storage.local_log import DELETED_SUFFIX, LocalLog
from kafkapy.storage.segment import LogSegment

# (segment, base offset of the segment after it) -> delete it?
SegmentPredicate = Callable[[LogSegment, int], bool]


def older_than(horizon_ms: int) -> SegmentPredicate:
    """retention.ms: the segment's newest record is older than `horizon_ms`."""
    return lambda seg, nxt: seg.largest_timestamp < horizon_ms


def below_offset(offset: int) -> SegmentPredicate:
    """Log start offset: every offset of the segment is below `offset`."""
    return lambda seg, nxt: nxt <= offset


def exceeding_size(excess: int) -> SegmentPredicate:
    """retention.bytes: the oldest segments whose sizes fit in `excess` bytes (stateful, use once)."""
    left = excess

    def over(seg: LogSegment, nxt: int) -> bool:
        nonlocal left
        if left - seg.size >= 0:
            left -= seg.size
            return True
        return False

    return over


def copied(copied_up_to: int, then: SegmentPredicate) -> SegmentPredicate:
    """Tiered storage: the segment's last offset is at or below `copied_up_to` (it is in the
    object store), and `then` holds (checked second: exceeding_size counts what it accepts)."""
    return lambda seg, nxt: nxt - 1 <= copied_up_to and then(seg, nxt)


def delete_oldest_segments(local: LocalLog, predicate: SegmentPredicate) -> tuple[int, int]:
    """Delete the oldest closed segments while predicate(segment, next_base) holds.

    Returns (segments deleted, base offset of the first segment left).
    """
    with local.lock:
        view = local.view
        doomed: list[LogSegment] = []
        for i, seg in enumerate(view.segments[:-1]):
            if not predicate(seg, view.bases[i + 1]):
                break
            doomed.append(seg)
        if not doomed:
            return 0, view.bases[0]
        segs = view.segments[len(doomed) :]
        local.replace_view(segs)
        for seg in doomed:
            local.schedule_delete(seg)
    return len(doomed), segs[0].base_offset


def cleanable_segments(local: LocalLog, high_watermark: int, lag_horizon_ms: int) -> list[LogSegment]:
    """Closed segments below the high watermark whose records are all older than `lag_horizon_ms`, oldest first."""
    view = local.view
    out: list[LogSegment] = []
    for i, seg in enumerate(view.segments[:-1]):
        if view.bases[i + 1] > high_watermark or seg.largest_timestamp > lag_horizon_ms:
            break
        out.append(seg)
    return out


def swap_cleaned_segments(local: LocalLog, pairs: list[tuple[LogSegment, LogSegment]]) -> int:
    """Swap cleaned segments (named `.swap`) in for live ones; returns how many.

    Pairs whose old segment is no longer live (deleted or truncated
    meanwhile) are discarded.
    """
    done = 0
    with local.lock:
        segs = list(local.view.segments)
        for old, new in pairs:
            try:
                i = next(k for k, s in enumerate(segs) if s is old)
            except StopIteration:
                new.delete_files()
                continue
            if i == len(segs) - 1:
                new.delete_files()
                continue
            old.rename_suffix(DELETED_SUFFIX)
            new.rename_suffix("")
            new.index.close()
            new.time_index.close()
            segs[i] = new
            local.defer_delete(old)
            done += 1
        local.replace_view(tuple(segs))
    return done
