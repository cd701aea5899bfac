from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkapy.storage.index import OffsetIndex, TimeIndex
from kafkapy.storage.segment import LogSegment
from tests.storage.helpers import make_batch


def test_offset_index_persist_and_truncate(tmp_path: Path) -> None:
    idx = OffsetIndex(tmp_path / "0.index", 100, 1024)
    for i in range(10):
        idx.append(100 + i * 10, i * 500)
    assert idx.lookup(99) == 0
    assert idx.lookup(100) == 0
    assert idx.lookup(125) == 1000
    assert idx.lookup(10_000) == 4500
    idx.close()
    again = OffsetIndex(tmp_path / "0.index", 100, 1024)
    assert again.load(5000)
    assert again.entries() == idx.entries()
    again.truncate_to_position(2000)
    assert again.last_entry == (130, 1500)
    third = OffsetIndex(tmp_path / "0.index", 100, 1024)
    assert third.load(5000) and len(third) == 4
    # An entry beyond the log size is implausible.
    assert not OffsetIndex(tmp_path / "0.index", 100, 1024).load(1000)


def test_time_index(tmp_path: Path) -> None:
    ti = TimeIndex(tmp_path / "0.timeindex", 0, 1200)
    ti.maybe_append(10, 5)
    ti.maybe_append(10, 7)  # not increasing: ignored
    ti.maybe_append(20, 9)
    assert ti.entries() == [(10, 5), (20, 9)]
    assert ti.lookup(5) == 0
    assert ti.lookup(15) == 5
    assert ti.lookup(25) == 9
    ti.close()
    again = TimeIndex(tmp_path / "0.timeindex", 0, 1200)
    assert again.load() and again.entries() == [(10, 5), (20, 9)]
    again.truncate_to_offset(9)
    assert again.entries() == [(10, 5)]
    assert again.max_entries == 100


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 300), st.integers(0, 3)), min_size=1, max_size=80),
    interval=st.sampled_from([1, 64, 512, 4096]),
    probes=st.lists(st.integers(0, 500), max_size=30),
)
def test_segment_lookup_matches_linear_scan(
    batches: list[tuple[int, int, int]], interval: int, probes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        seg = LogSegment(Path(d), 50, index_interval_bytes=interval, create=True)
        layout = []  # (base, last, position, size)
        nxt = 50
        for count, pad, gap in batches:
            nxt += gap  # offset gaps, as after compaction
            b = make_batch(count, pad=pad, base_offset=nxt, timestamp=nxt)
            layout.append((nxt, nxt + count - 1, seg.size, len(b)))
            seg.append(b, nxt + count - 1, nxt, nxt + count - 1)
            nxt += count
        for p in probes + [50, nxt - 1, nxt]:
            off = 50 + p % (nxt - 50 + 1)
            expect = next((x for x in layout if x[1] >= off), None)
            loc = seg.translate_offset(off)
            if expect is None:
                assert loc is None
            else:
                assert loc is not None and (loc.base_offset, loc.last_offset, loc.position, loc.size) == expect
            sl = seg.read(off, 1)
            assert (sl is None) == (expect is None)
            if sl is not None and expect is not None:
                assert (sl.position, sl.size) == (expect[2], expect[3])
            # Timestamps equal the base offset here: first batch with max ts >= off.
            tloc = seg.find_batch_by_timestamp(off, 0)
            texp = next((x for x in layout if x[0] >= off), None)
            assert (tloc.position if tloc else None) == (texp[2] if texp else None)
        # The on-disk index agrees after a rebuild from the log.
        entries = seg.index.entries()
        seg.rebuild_indexes()
        assert seg.index.entries() == entries
        seg.close()


def test_segment_truncate_and_reload(tmp_path: Path) -> None:
    seg = LogSegment(tmp_path, 0, index_interval_bytes=100, create=True)
    off = 0
    for i in range(30):
        b = make_batch(2, pad=50, base_offset=off, timestamp=1000 + i)
        seg.append(b, off + 1, 1000 + i, off + 1)
        off += 2
    assert seg.next_offset == 60 and seg.max_timestamp == 1029
    removed = seg.truncate_to(31)  # batch 30..31 goes whole
    assert removed > 0
    assert seg.next_offset == 30
    assert seg.max_timestamp == 1014
    seg.close()
    again = LogSegment(tmp_path, 0, index_interval_bytes=100)
    assert again.next_offset == 30
    assert again.recover() == 0
    assert again.next_offset == 30
    again.close()
