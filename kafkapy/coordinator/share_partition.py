"""One topic partition as a share group consumes it (KIP-932), sans-IO.

The share-partition start offset (SPSO) is the first offset not yet done
with; offsets from there up to `next_offset` (exclusive) are in flight, each
in one state: AVAILABLE (to deliver, again after a release or a lock
timeout), ACQUIRED (by one member until its lock deadline), ACKNOWLEDGED or
ARCHIVED (done: accepted, rejected, a gap, or past the delivery count limit).
An offset below `next_offset` missing from `records` is not a record (a
compacted gap or a transaction marker) and counts as done.

Every state change is recorded in `dirty`; the coordinator writes a snapshot
(`snapshot()`) and a loaded snapshot (`restore`) rebuilds the partition.
Acquired records are snapshotted as AVAILABLE with their delivery count: after
a restart they are delivered again, their counts kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Record states as Kafka numbers them (RecordState).
AVAILABLE, ACQUIRED, ACKNOWLEDGED, ARCHIVED = 0, 1, 2, 4
# Acknowledge types (ShareFetch/ShareAcknowledge AcknowledgeTypes).
GAP, ACCEPT, RELEASE, REJECT, RENEW = 0, 1, 2, 3, 4

_DONE = (ACKNOWLEDGED, ARCHIVED)


@dataclass(slots=True)
class InFlight:
    state: int
    delivery_count: int
    member: str | None = None
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class StateBatch:
    """A run of offsets with one state and delivery count (the persisted form)."""

    first: int
    last: int
    state: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Acquired:
    first: int
    last: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class BatchSpan:
    """A record batch of the log, as far as acquisition needs it."""

    base_offset: int
    last_offset: int
    skip: bool  # a transaction marker, or an aborted batch under read_committed: never delivered


@dataclass(slots=True)
class SharePartition:
    start_offset: int = -1  # -1: not initialized (share.auto.offset.reset decides at the first fetch)
    next_offset: int = -1
    records: dict[int, InFlight] = field(default_factory=dict)
    dirty: bool = False

    @property
    def initialized(self) -> bool:
        return self.start_offset >= 0

    def initialize(self, offset: int) -> None:
        self.start_offset = self.next_offset = offset
        self.dirty = True

    # ------------------------------------------------------------ delivery

    def first_deliverable(self, high_watermark: int) -> int | None:
        """The lowest offset that a fetch could acquire now, or None."""
        for off in sorted(o for o, r in self.records.items() if r.state == AVAILABLE):
            return off
        if self.next_offset < high_watermark:
            return self.next_offset
        return None

    def acquire(
        self,
        member: str,
        batches: Iterable[BatchSpan],
        high_watermark: int,
        max_records: int,
        now: int,
        lock_ms: int,
    ) -> tuple[list[Acquired], list[int]]:
        """Acquire deliverable offsets of `batches` (in log order) for `member`, at most
        `max_records` (a batch is not split, as Kafka). Returns the acquired runs and the
        indexes of the batches holding them."""
        runs: list[Acquired] = []
        used: list[int] = []
        count = 0
        deadline = now + lock_ms
        for i, b in enumerate(batches):
            if count >= max_records:
                break
            took = False
            if b.skip:
                if b.last_offset >= self.next_offset:
                    self.next_offset = b.last_offset + 1
                    self.dirty = True
                continue
            for off in range(b.base_offset, min(b.last_offset + 1, high_watermark)):
                if off < self.start_offset:
                    continue
                rec = self.records.get(off)
                if rec is None:
                    if off < self.next_offset:
                        continue  # done (a gap or finished before)
                    rec = self.records[off] = InFlight(AVAILABLE, 0)
                    self.next_offset = off + 1
                if rec.state != AVAILABLE:
                    continue
                rec.state, rec.member, rec.deadline = ACQUIRED, member, deadline
                rec.delivery_count += 1
                count += 1
                took = True
                last = runs[-1] if runs else None
                if last is not None and last.last == off - 1 and last.delivery_count == rec.delivery_count:
                    runs[-1] = Acquired(last.first, off, last.delivery_count)
                else:
                    runs.append(Acquired(off, off, rec.delivery_count))
            if took:
                used.append(i)
                self.dirty = True
        return runs, used

    # ------------------------------------------------------------ acknowledgement

    def acknowledge(
        self, member: str, first: int, last: int, types: list[int], limit: int, now: int, lock_ms: int
    ) -> bool:
        """Apply one acknowledgement batch (one type for all offsets, or one per offset).
        False (Kafka's INVALID_RECORD_STATE) when an offset is not acquired by `member`;
        then nothing of the batch is applied."""
        if last < first or not types or (len(types) != 1 and len(types) != last - first + 1):
            return False
        todo: list[tuple[InFlight | None, int]] = []
        for i, off in enumerate(range(first, last + 1)):
            t = types[0] if len(types) == 1 else types[i]
            rec = self.records.get(off)
            if rec is None:
                if t == GAP and (off < self.next_offset or off < self.start_offset):
                    continue  # a gap already known as one
                return False
            if rec.state != ACQUIRED or rec.member != member or t not in (GAP, ACCEPT, RELEASE, REJECT, RENEW):
                return False
            todo.append((rec, t))
        for rec, t in todo:
            assert rec is not None
            if t == RENEW:
                rec.deadline = now + lock_ms
                continue
            if t == ACCEPT:
                rec.state = ACKNOWLEDGED
            elif t == RELEASE:
                rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
            else:  # REJECT or GAP
                rec.state = ARCHIVED
            rec.member = None
        self.dirty = True
        self.advance()
        return True

    def release_member(self, member: str, limit: int) -> int:
        """Records `member` holds become deliverable again (it left or closed its session)."""
        n = 0
        for rec in self.records.values():
            if rec.state == ACQUIRED and rec.member == member:
                rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
                rec.member = None
                n += 1
        if n:
            self.dirty = True
            self.advance()
        return n

    def expire(self, now: int, limit: int) -> int:
        """Locks past their deadline end; the records are delivered again (or archived at the limit)."""
        n = 0
        for rec in self.records.values():
            if rec.state == ACQUIRED and rec.deadline <= now:
                rec.state = ARCHIVED if rec.delivery_count >= limit else AVAILABLE
                rec.member = None
                n += 1
        if n:
            self.dirty = True
            self.advance()
        return n

    def next_deadline(self) -> int | None:
        return min((r.deadline for r in self.records.values() if r.state == ACQUIRED), default=None)

    def advance(self) -> None:
        """Move the start offset past finished offsets (and forget them)."""
        off = self.start_offset
        while off < self.next_offset:
            rec = self.records.get(off)
            if rec is not None and rec.state not in _DONE:
                break
            self.records.pop(off, None)
            off += 1
        if off != self.start_offset:
            self.start_offset = off
            self.dirty = True

    def truncate_to(self, log_start: int) -> None:
        """The log start moved past the start offset (retention, DeleteRecords): skip what is gone."""
        if not self.initialized or log_start <= self.start_offset:
            return
        for off in [o for o in self.records if o < log_start]:
            del self.records[off]
        self.start_offset = log_start
        self.next_offset = max(self.next_offset, log_start)
        self.dirty = True

    def in_flight(self) -> int:
        return sum(1 for r in self.records.values() if r.state in (AVAILABLE, ACQUIRED))

    def acquired_by(self, member: str) -> int:
        return sum(1 for r in self.records.values() if r.state == ACQUIRED and r.member == member)

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> tuple[int, list[StateBatch]]:
        """The start offset and the in-flight state as runs (acquired saved as available)."""
        out: list[StateBatch] = []
        for off in sorted(self.records):
            rec = self.records[off]
            state = AVAILABLE if rec.state == ACQUIRED else rec.state
            last = out[-1] if out else None
            if (
                last is not None
                and last.last == off - 1
                and (last.state, last.delivery_count)
                == (
                    state,
                    rec.delivery_count,
                )
            ):
                out[-1] = StateBatch(last.first, off, state, rec.delivery_count)
            else:
                out.append(StateBatch(off, off, state, rec.delivery_count))
        return self.start_offset, out

    @classmethod
    def restore(cls, start_offset: int, batches: Iterable[StateBatch]) -> SharePartition:
        sp = cls(start_offset=start_offset, next_offset=start_offset)
        for b in batches:
            for off in range(b.first, b.last + 1):
                if off >= start_offset:
                    sp.records[off] = InFlight(b.state, b.delivery_count)
            sp.next_offset = max(sp.next_offset, b.last + 1)
        return sp
