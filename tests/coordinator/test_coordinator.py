"""The coordinator over a real broker state: records, restarts, expiry, placement."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkapy.cluster.metadata import BrokerInfo
from kafkapy.config import BrokerConfig
from kafkapy.coordinator.coordinator import (
    OFFSETS_TOPIC,
    GroupCoordinator,
    java_string_hashcode,
    partition_for,
)
from kafkapy.coordinator.group import GroupState, JoinRequest
from kafkapy.coordinator.records import (
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_value,
    encode_key,
    encode_offset_value,
)
from kafkapy.protocol.error_codes import ErrorCode as E
from kafkapy.server.services import BrokerServices, open_single


async def open_state(data: Path, **settings: str) -> BrokerServices:
    """A single broker's services over `data` (no network)."""
    pairs = [("log.dirs", str(data)), ("offsets.topic.num.partitions", "5"), ("group.initial.rebalance.delay.ms", "0")]
    pairs += [(k.replace("_", "."), v) for k, v in settings.items()]
    config = BrokerConfig.load(None, pairs)
    return await open_single(config, BrokerInfo(config.effective_node_id, "127.0.0.1", 9092), "test-cluster")


def run_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test on a fresh event loop (no pytest-asyncio here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_java_hashcode_and_partition() -> None:
    assert java_string_hashcode("") == 0
    assert java_string_hashcode("hello") == 99162322
    assert java_string_hashcode("polygenelubricants") == -(2**31)
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("Aa", 50) == partition_for("BB", 50)  # a classic Java collision
    assert java_string_hashcode("\U0001f600") == 0xD83D * 31 + 0xDE00 - 0  # surrogate pair units


def test_record_codecs_round_trip() -> None:
    k = OffsetKey("g", "t", 3)
    assert decode_key(encode_key(k)) == k
    v = OffsetValue(42, 7, "meta", 1234)
    assert decode_offset_value(encode_offset_value(v)) == v
    gv = GroupValue("consumer", 5, "range", "m1", 99, [MemberValue("m1", "i1", "c", "/h", 300, 10, b"s", b"a")])
    assert decode_group_value(encode_group_value(gv)) == gv
    # Kafka's layout: key v1 = int16 version, group, topic, int32 partition
    assert encode_key(k) == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"


async def _stable_single(coord: GroupCoordinator, group: str) -> str:
    res = await coord.join(
        group,
        JoinRequest(
            "",
            None,
            "cli",
            "/127.0.0.1",
            10_000,
            10_000,
            "consumer",
            [("range", b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff")],
            False,
        ),
    )
    assert res.error == E.NONE
    sync = await coord.sync(group, res.member_id, None, res.generation_id, None, None, {res.member_id: b"assign"})
    assert sync.error == E.NONE and sync.assignment == b"assign"
    return res.member_id


@run_async
async def test_offsets_and_groups_survive_restart(data_dir: Path) -> None:
    state = await open_state(data_dir)
    await state.metadata.create_topic("t", 3, 1)
    coord = state.groups
    assert state.metadata.topic(OFFSETS_TOPIC) is not None
    member = await _stable_single(coord, "g1")
    assert (
        coord.commit("g1", member, None, 1, [("t", 0, OffsetValue(10, 0, "m", 1)), ("t", 1, OffsetValue(20))]) == E.NONE
    )
    assert coord.commit("simple", "", None, -1, [("t", 2, OffsetValue(5))]) == E.NONE
    assert coord.commit("nogroup", "x", None, 3, [("t", 2, OffsetValue(5))]) == E.ILLEGAL_GENERATION
    assert coord.commit("g1", member, None, 9, [("t", 2, OffsetValue(5))]) == E.ILLEGAL_GENERATION
    await state.close()

    state2 = await open_state(data_dir)
    coord2 = state2.groups
    assert coord2.offsets.get("g1", "t", 0) == OffsetValue(10, 0, "m", 1)
    assert coord2.offsets.get("g1", "t", 1).offset == 20  # type: ignore[union-attr]
    assert coord2.offsets.get("simple", "t", 2).offset == 5  # type: ignore[union-attr]
    g = coord2.groups["g1"]
    assert g.state is GroupState.STABLE and g.generation == 1 and member in g.members
    assert coord2.heartbeat("g1", member, None, 1) == E.NONE  # the member carries on after the restart
    assert coord2.groups["simple"].state is GroupState.EMPTY
    await state2.close()


@run_async
async def test_leave_persists_empty_group_and_delete_tombstones(data_dir: Path) -> None:
    state = await open_state(data_dir)
    await state.metadata.create_topic("t", 1, 1)
    coord = state.groups
    member = await _stable_single(coord, "g")
    coord.commit("g", member, None, 1, [("t", 0, OffsetValue(3))])
    assert coord.delete_group("g") == E.NON_EMPTY_GROUP
    assert coord.delete_offsets("g", [("t", 0)]) == (E.NONE, {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC})
    out = coord.leave("g", [(member, None)])
    assert out == [(member, None, E.NONE)]
    assert coord.groups["g"].state is GroupState.EMPTY and coord.groups["g"].generation == 2
    assert coord.delete_group("g") == E.NONE
    assert "g" not in coord.groups and not coord.offsets.has_offsets("g")
    assert coord.delete_group("g") == E.GROUP_ID_NOT_FOUND
    await state.close()
    state2 = await open_state(data_dir)
    coord2 = state2.groups
    assert "g" not in coord2.groups and not coord2.offsets.has_offsets("g")
    await state2.close()


@run_async
async def test_offsets_expire_for_empty_groups(data_dir: Path) -> None:
    state = await open_state(data_dir, offsets_retention_minutes="1")
    await state.metadata.create_topic("t", 1, 1)
    coord = state.groups
    coord.commit("s", "", None, -1, [("t", 0, OffsetValue(1, -1, "", 1000))])
    now = coord.offsets.get("s", "t", 0).commit_timestamp  # type: ignore[union-attr]
    assert coord.expire(now + 30_000) == 0
    assert coord.expire(now + 60_000) == 1
    assert "s" not in coord.groups
    await state.close()


@run_async
async def test_parked_join_is_answered_when_the_rebalance_completes(data_dir: Path) -> None:
    state = await open_state(data_dir, group_initial_rebalance_delay_ms="50")
    coord = state.groups
    proto = [("range", b"x")]
    first = await coord.join("g", JoinRequest("", None, "a", "/h", 10_000, 10_000, "consumer", proto, True))
    assert first.error == E.MEMBER_ID_REQUIRED
    joins = [
        asyncio.create_task(
            coord.join("g", JoinRequest(first.member_id, None, "a", "/h", 10_000, 10_000, "consumer", proto, True))
        ),
        asyncio.create_task(
            coord.join("g", JoinRequest("", None, "b", "/h", 10_000, 10_000, "consumer", proto, False))
        ),
    ]
    a, b = await asyncio.wait_for(asyncio.gather(*joins), 5)
    assert a.generation_id == b.generation_id == 1 and a.leader == b.leader
    leader, follower = (a, b) if a.leader == a.member_id else (b, a)
    assert len(leader.members) == 2 and follower.members == []
    fsync = asyncio.create_task(coord.sync("g", follower.member_id, None, 1, None, None, {}))
    await asyncio.sleep(0.01)
    assert not fsync.done()
    lsync = await coord.sync(
        "g", leader.member_id, None, 1, None, None, {follower.member_id: b"F", leader.member_id: b"L"}
    )
    assert lsync.assignment == b"L" and (await fsync).assignment == b"F"
    await state.close()
