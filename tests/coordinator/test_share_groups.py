"""Share groups (KIP-932), sans-IO: record states, membership, the persisted records."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest

from kafkapy.config import BrokerConfig
from kafkapy.coordinator.share_coordinator import ShareCoordinator
from kafkapy.coordinator.share_group import ShareGroup, ShareHeartbeat
from kafkapy.coordinator.share_partition import (
    ACCEPT,
    ACKNOWLEDGED,
    ARCHIVED,
    AVAILABLE,
    GAP,
    REJECT,
    RELEASE,
    RENEW,
    BatchSpan,
    SharePartition,
)
from kafkapy.coordinator.share_records import (
    GroupStateKey,
    PartitionStateKey,
    PartitionStateValue,
    decode_group_value,
    decode_key,
    decode_partition_value,
    encode_group_value,
    encode_key,
    encode_partition_value,
)
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError

LOCK, LIMIT = 30_000, 5
BATCHES = [BatchSpan(0, 4, False), BatchSpan(5, 5, True), BatchSpan(6, 9, False)]


def _sp() -> SharePartition:
    sp = SharePartition()
    sp.initialize(0)
    return sp


def test_acquire_skips_markers_and_respects_max_records() -> None:
    sp = _sp()
    runs, used = sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    assert [(r.first, r.last, r.delivery_count) for r in runs] == [(0, 4, 1), (6, 9, 1)]
    assert used == [0, 2]
    assert sp.next_offset == 10
    # nothing left for another member
    assert sp.acquire("b", BATCHES, 10, 100, 0, LOCK)[0] == []


def test_max_records_is_checked_between_batches() -> None:
    sp = _sp()
    runs, _ = sp.acquire("a", BATCHES, 10, 3, 0, LOCK)
    assert [(r.first, r.last) for r in runs] == [(0, 4)]  # the whole first batch, no more
    runs, _ = sp.acquire("b", BATCHES, 10, 100, 0, LOCK)
    assert [(r.first, r.last) for r in runs] == [(6, 9)]


def test_high_watermark_bounds_acquisition() -> None:
    sp = _sp()
    runs, _ = sp.acquire("a", BATCHES, 3, 100, 0, LOCK)
    assert [(r.first, r.last) for r in runs] == [(0, 2)]


def test_accept_release_reject_and_start_offset() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    assert sp.acknowledge("a", 0, 1, [ACCEPT], LIMIT, 0, LOCK)
    assert sp.start_offset == 2
    assert sp.acknowledge("a", 2, 4, [RELEASE, REJECT, GAP], LIMIT, 0, LOCK)
    assert sp.records[2].state == AVAILABLE and sp.records[3].state == ARCHIVED
    assert sp.start_offset == 2  # 2 is to be delivered again
    runs, _ = sp.acquire("b", BATCHES, 10, 100, 0, LOCK)
    assert [(r.first, r.last, r.delivery_count) for r in runs] == [(2, 2, 2)]
    assert sp.acknowledge("b", 2, 2, [ACCEPT], LIMIT, 0, LOCK)
    assert sp.acknowledge("a", 6, 9, [ACCEPT], LIMIT, 0, LOCK)
    assert sp.start_offset == 10 and not sp.records


def test_only_the_holder_may_acknowledge() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    assert not sp.acknowledge("b", 0, 0, [ACCEPT], LIMIT, 0, LOCK)
    assert not sp.acknowledge("a", 0, 1, [ACCEPT, ACCEPT, ACCEPT], LIMIT, 0, LOCK)  # wrong type count
    assert not sp.acknowledge("a", 20, 20, [ACCEPT], LIMIT, 0, LOCK)  # never delivered
    assert sp.records[0].state != ACKNOWLEDGED


def test_lock_timeout_redelivers_and_the_limit_archives() -> None:
    sp = _sp()
    one = [BatchSpan(0, 0, False)]
    now = 0
    for count in range(1, LIMIT + 1):
        runs, _ = sp.acquire("a", one, 1, 10, now, LOCK)
        assert [(r.first, r.delivery_count) for r in runs] == [(0, count)]
        assert sp.next_deadline() == now + LOCK
        assert sp.expire(now + LOCK - 1, LIMIT) == 0
        now += LOCK
        assert sp.expire(now, LIMIT) == 1
    assert sp.acquire("a", one, 1, 10, now, LOCK)[0] == []
    assert sp.start_offset == 1  # archived at the limit


def test_renew_extends_the_lock() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES[:1], 10, 100, 0, LOCK)
    assert sp.acknowledge("a", 0, 4, [RENEW], LIMIT, 20_000, LOCK)
    assert sp.expire(LOCK, LIMIT) == 0
    assert sp.expire(20_000 + LOCK, LIMIT) == 5


def test_member_release() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    assert sp.release_member("a", LIMIT) == 9
    assert all(r.state == AVAILABLE and r.delivery_count == 1 for r in sp.records.values())


def test_snapshot_restore_keeps_counts_and_done_records() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    sp.acknowledge("a", 1, 1, [ACCEPT], LIMIT, 0, LOCK)
    sp.acknowledge("a", 2, 2, [REJECT], LIMIT, 0, LOCK)
    start, batches = sp.snapshot()
    back = SharePartition.restore(start, batches)
    assert back.start_offset == 0 and back.next_offset == 10
    assert back.records[0].state == AVAILABLE and back.records[0].delivery_count == 1  # acquired: again
    assert back.records[1].state == ACKNOWLEDGED and back.records[2].state == ARCHIVED
    assert 5 not in back.records  # the marker stays a gap
    runs, _ = back.acquire("b", BATCHES, 10, 100, 0, LOCK)
    assert [(r.first, r.last, r.delivery_count) for r in runs] == [(0, 0, 2), (3, 4, 2), (6, 9, 2)]


def test_log_start_moving_past_the_start_offset() -> None:
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    sp.truncate_to(7)
    assert sp.start_offset == 7 and min(sp.records) == 7


# ------------------------------------------------------------------ membership

TOPICS = {"t": (uuid4(), 3), "u": (uuid4(), 1)}


def _hb(member: str, epoch: int, topics: list[str] | None = None) -> ShareHeartbeat:
    return ShareHeartbeat(member, epoch, None, topics)


def test_join_and_epochs_follow() -> None:
    g = ShareGroup("g")
    r = g.heartbeat(_hb("m1", 0, ["t"]), TOPICS, 0, 45_000, 200)
    assert r.error == ErrorCode.NONE and r.member_epoch == 1
    assert r.assignment == {TOPICS["t"][0]: frozenset({0, 1, 2})}  # alone: every partition
    r2 = g.heartbeat(_hb("m2", 0, ["t", "u"]), TOPICS, 0, 45_000, 200)
    assert r2.member_epoch == 2 and r2.assignment is not None and set(r2.assignment) == {TOPICS["t"][0], TOPICS["u"][0]}
    # m1 catches up to the group epoch with its share of t
    r = g.heartbeat(_hb("m1", 1), TOPICS, 10, 45_000, 200)
    assert r.member_epoch == 2 and r.assignment is not None
    t1, t2 = r.assignment[TOPICS["t"][0]], r2.assignment[TOPICS["t"][0]]
    assert t1 | t2 == {0, 1, 2} and not t1 & t2  # split, every partition assigned
    r = g.heartbeat(_hb("m1", 2), TOPICS, 20, 45_000, 200)
    assert r.member_epoch == 2 and r.assignment is None  # nothing changed: no assignment sent
    assert g.state == "Stable"


@pytest.mark.parametrize("members", [1, 2, 3, 5, 7, 12])
def test_spread_covers_every_partition_evenly(members: int) -> None:
    topics = {"t": (uuid4(), 5)}
    g = ShareGroup("g")
    for i in range(members):
        g.heartbeat(_hb(f"m{i}", 0, ["t"]), topics, 0, 45_000, 200)
    got = [g.target(f"m{i}", topics)[topics["t"][0]] for i in range(members)]
    assert set().union(*got) == set(range(5))  # every partition has a member
    per_member = [len(a) for a in got]
    per_partition = [sum(p in a for a in got) for p in range(5)]
    assert max(per_member) - min(per_member) <= 1 and max(per_partition) - min(per_partition) <= 1


def test_heartbeat_errors() -> None:
    g = ShareGroup("g")
    assert g.heartbeat(_hb("", 0, ["t"]), TOPICS, 0, 1000, 10).error == ErrorCode.INVALID_REQUEST
    assert g.heartbeat(_hb("x", 3), TOPICS, 0, 1000, 10).error == ErrorCode.UNKNOWN_MEMBER_ID
    g.heartbeat(_hb("m", 0, ["t"]), TOPICS, 0, 1000, 1)
    assert g.heartbeat(_hb("m", 7), TOPICS, 0, 1000, 1).error == ErrorCode.FENCED_MEMBER_EPOCH
    assert g.heartbeat(_hb("n", 0, ["t"]), TOPICS, 0, 1000, 1).error == ErrorCode.GROUP_MAX_SIZE_REACHED


def test_leave_and_session_expiry() -> None:
    g = ShareGroup("g")
    g.heartbeat(_hb("m1", 0, ["t"]), TOPICS, 0, 1000, 10)
    g.heartbeat(_hb("m2", 0, ["t"]), TOPICS, 500, 1000, 10)
    assert g.heartbeat(_hb("m1", -1), TOPICS, 600, 1000, 10).member_epoch == -1
    assert list(g.members) == ["m2"]
    assert g.expired(1499) == [] and g.expired(1500) == ["m2"]
    g.remove("m2")
    assert g.state == "Empty" and g.group_epoch == 4


def test_new_partitions_bump_the_epoch() -> None:
    g = ShareGroup("g")
    g.heartbeat(_hb("m", 0, ["t"]), TOPICS, 0, 1000, 10)
    more = {"t": (TOPICS["t"][0], 5)}
    r = g.heartbeat(_hb("m", 1), more, 10, 1000, 10)
    assert r.member_epoch == 2 and r.assignment == {TOPICS["t"][0]: frozenset(range(5))}


# ------------------------------------------------------------------ records


def test_records_round_trip() -> None:
    tid = uuid4()
    for key in (GroupStateKey("g"), PartitionStateKey("grüße", tid, 7)):
        assert decode_key(encode_key(key)) == key
    assert decode_group_value(encode_group_value(42)) == 42
    sp = _sp()
    sp.acquire("a", BATCHES, 10, 100, 0, LOCK)
    sp.acknowledge("a", 0, 0, [ACCEPT], LIMIT, 0, LOCK)
    start, batches = sp.snapshot()
    v = PartitionStateValue(start, tuple(batches))
    assert decode_partition_value(encode_partition_value(v)) == v


@pytest.mark.parametrize("data", [b"", b"\x00\x09\x00\x01g", b"\x00\x01\x00\x05ab", b"\x00\x00\x00\x05ab"])
def test_bad_keys_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_key(data)


def test_bad_partition_value_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_partition_value(b"\x00\x00" + b"\x00" * 8 + b"\x00\x00\x00\x05")


# ------------------------------------------------------------------ share sessions


class _NoLog(ShareCoordinator):
    """Sessions and releases need neither the log nor the metadata."""

    def _persist(self, group_id: str) -> int:
        return ErrorCode.NONE


class _NoGroupConfigs:
    def group_configs(self) -> dict[str, dict[str, str]]:
        return {}


def _coordinator() -> ShareCoordinator:
    return _NoLog(replicas=None, metadata=_NoGroupConfigs(), config=BrokerConfig())  # type: ignore[arg-type]


def test_share_session_epochs() -> None:
    coord = _coordinator()
    tp = (uuid4(), 0)
    assert coord.session("g", "m", 1, [], [])[0] == ErrorCode.SHARE_SESSION_NOT_FOUND
    err, sess = coord.session("g", "m", 0, [tp], [])
    assert err == ErrorCode.NONE and sess is not None and sess.partitions == [tp] and sess.epoch == 1
    assert coord.session("g", "m", 2, [], [])[0] == ErrorCode.INVALID_SHARE_SESSION_EPOCH
    assert coord.session("g", "m", 1, [], [])[0] == ErrorCode.NONE
    assert coord.session("g", "m", 1, [], [])[0] == ErrorCode.INVALID_SHARE_SESSION_EPOCH  # used already
    err, sess = coord.session("g", "m", 2, [], [tp])
    assert err == ErrorCode.NONE and sess is not None and sess.partitions == []
    assert coord.session("g", "other", 1, [], [])[0] == ErrorCode.SHARE_SESSION_NOT_FOUND  # per member


def test_closing_a_session_releases_what_it_holds() -> None:
    coord = _coordinator()
    tid = uuid4()
    sp = coord.partitions[("g", tid, 0)] = _sp()
    sp.acquire("m", BATCHES[:1], 10, 100, 0, LOCK)
    coord.session("g", "m", 0, [(tid, 0)], [])
    coord.close_session("g", "m")
    assert ("g", "m") not in coord.sessions
    assert all(r.state == AVAILABLE for r in sp.records.values())


# ------------------------------------------------------------------ group configs


def test_group_config_validation_and_defaults() -> None:
    from kafkapy.coordinator import group_configs as gc

    gc.validate("share.auto.offset.reset", "earliest")
    gc.validate("share.auto.offset.reset", "by_duration:PT1H")
    assert gc.duration_ms("P1DT2H3M4.5S") == ((24 + 2) * 3600 + 3 * 60 + 4.5) * 1000
    for name, value, words in [
        ("share.auto.offset.reset", "sometimes", "must be either 'earliest', 'latest'"),
        ("share.auto.offset.reset", "by_duration:1h", "by_duration:<PnDTnHnMn.nS>"),
        ("share.record.lock.duration.ms", "10", "Value must be at least 1000"),
        ("share.record.lock.duration.ms", "x", "Not a number of type INT"),
        ("share.isolation.level", "dirty", "String must be one of"),
        ("foo.bar", "1", "Unknown group config name: foo.bar"),
    ]:
        with pytest.raises(gc.GroupConfigError, match=re.escape(words)):
            gc.validate(name, value)
    config = BrokerConfig(group_share_record_lock_duration_ms=15000)
    assert gc.effective(config, {}, "share.record.lock.duration.ms") == "15000"  # the broker's
    assert gc.effective(config, {"share.record.lock.duration.ms": "2000"}, "share.record.lock.duration.ms") == "2000"
    assert gc.effective(config, {}, "share.assignment.interval.ms") == "1000"  # Kafka's default
