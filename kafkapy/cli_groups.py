"""`kafkapy groups list|describe|delete|reset-offsets` (what kafka-consumer-groups.sh does).

Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafkapy.cli_topics import add_common_arguments
from kafkapy.client import KafkaClient, KafkaError, check
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import DecodeError
from kafkapy.protocol.messages.consumer_protocol_assignment import (
    ConsumerProtocolAssignment,
)
from kafkapy.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkapy.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.list_groups_request import ListGroupsRequest
from kafkapy.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkapy.protocol.messages.offset_fetch_request import OffsetFetchRequest

EXIT_ERROR = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="list groups")
    lst.add_argument(
        "--state", action="append", default=[], metavar="STATE", help="only groups in this state (repeatable)"
    )
    describe = sub.add_parser("describe", help="offsets, log ends and lag per partition, or members")
    describe.add_argument("groups", nargs="+", metavar="GROUP")
    describe.add_argument("--members", action="store_true", help="list members and their assignments instead")
    delete = sub.add_parser("delete", help="delete empty groups and their offsets")
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    reset = sub.add_parser("reset-offsets", help="set a group's committed offsets (the group must be empty)")
    reset.add_argument("group")
    reset.add_argument(
        "--topic",
        action="append",
        required=True,
        metavar="TOPIC[:P,P]",
        help="topic, optionally partitions (repeatable)",
    )
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--to-timestamp", type=int, metavar="MS", help="first offset at or after this time (epoch ms)")
    to.add_argument("--to-datetime", metavar="ISO", help="like --to-timestamp, e.g. 2024-01-31T12:00:00+00:00")
    reset.add_argument("--dry-run", action="store_true", help="print the new offsets without committing them")
    for child in (lst, describe, delete, reset):
        add_common_arguments(child)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KafkaError as exc:
        print(f"kafkapy groups: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy groups: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _run(args: argparse.Namespace) -> int:
    async with KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms) as client:
        if args.action == "list":
            return await _list(client, args.state)
        if args.action == "describe":
            for group in args.groups:
                await (_describe_members(client, group) if args.members else _describe_offsets(client, group))
            return 0
        if args.action == "delete":
            return await _delete(client, args.groups)
        if args.action == "reset-offsets":
            return await _reset(client, args)
    raise ValueError(f"unknown action {args.action!r}")


# ---------------------------------------------------------------- protocol helpers


async def coordinator(client: KafkaClient, group: str) -> Any:
    """A connection to the group's coordinator (retrying while it is not available)."""
    for attempt in range(10):
        conn = await client.any_connection()
        resp = await conn.request(FindCoordinatorRequest(key=group, key_type=0), 3)
        if resp.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and attempt < 9:
            await asyncio.sleep(0.2)
            continue
        check(resp.error_code, resp.error_message)
        return await client.broker_connection(resp.node_id)
    raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, group)


@dataclass(slots=True)
class MemberView:
    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    assignment: dict[str, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class GroupView:
    group: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberView]


def decode_assignment(data: bytes) -> dict[str, list[int]]:
    """A "consumer" protocol assignment as {topic: partitions} ({} if it does not parse)."""
    if len(data) < 2:
        return {}
    version = min(int.from_bytes(data[:2], "big", signed=True), ConsumerProtocolAssignment.MAX_VERSION)
    if version < 0:
        return {}
    try:
        a = ConsumerProtocolAssignment.decode(memoryview(data)[2:], version)
    except DecodeError:
        return {}
    return {tp.topic: sorted(tp.partitions) for tp in a.assigned_partitions}


async def describe_group(client: KafkaClient, group: str) -> GroupView:
    conn = await coordinator(client, group)
    # v6 (KIP-1043): GROUP_ID_NOT_FOUND for anything but a classic group (before v6: Dead, no error)
    resp = await conn.request(DescribeGroupsRequest(groups=[group]), 6)
    d = resp.groups[0]
    if d.error_code == ErrorCode.GROUP_ID_NOT_FOUND:  # not a classic group: a KIP-848 consumer group?
        from kafkapy.protocol.messages.consumer_group_describe_request import (
            ConsumerGroupDescribeRequest,
        )

        cresp = await conn.request(ConsumerGroupDescribeRequest(group_ids=[group]), 0)
        c = cresp.groups[0]
        if c.error_code == ErrorCode.GROUP_ID_NOT_FOUND:  # no group at all: shown as Dead, as before v6
            return GroupView(group, "Dead", "", "", [])
        check(c.error_code, c.error_message)
        cmembers = [
            MemberView(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.client_host,
                {tp.topic_name: sorted(tp.partitions) for tp in m.assignment.topic_partitions},
            )
            for m in c.members
        ]
        return GroupView(group, c.group_state, "consumer", c.assignor_name, cmembers)
    check(d.error_code)
    members = [
        MemberView(
            m.member_id,
            m.group_instance_id,
            m.client_id,
            m.client_host,
            decode_assignment(m.member_assignment) if d.protocol_type == "consumer" else {},
        )
        for m in d.members
    ]
    return GroupView(group, d.group_state, d.protocol_type, d.protocol_data, members)


async def committed_offsets(client: KafkaClient, group: str) -> dict[tuple[str, int], int]:
    conn = await coordinator(client, group)
    resp = await conn.request(OffsetFetchRequest(group_id=group, topics=None), 7)
    check(resp.error_code)
    return {
        (t.name, p.partition_index): p.committed_offset
        for t in resp.topics
        for p in t.partitions
        if p.error_code == ErrorCode.NONE and p.committed_offset >= 0
    }


# ---------------------------------------------------------------- actions


async def _list(client: KafkaClient, states: list[str]) -> int:
    conn = await client.any_connection()
    resp = await conn.request(ListGroupsRequest(states_filter=states), 4)
    check(resp.error_code)
    for g in sorted(resp.groups, key=lambda g: g.group_id):
        print(f"{g.group_id}\t{g.group_state}\t{g.protocol_type or '-'}")
    return 0


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


async def _describe_offsets(client: KafkaClient, group: str) -> None:
    view = await describe_group(client, group)
    committed = await committed_offsets(client, group)
    owner: dict[tuple[str, int], MemberView] = {}
    for m in view.members:
        for topic, parts in m.assignment.items():
            for p in parts:
                owner[(topic, p)] = m
    keys = sorted(set(committed) | set(owner))
    ends: dict[str, dict[int, tuple[int, int]]] = {}
    for topic in sorted({t for t, _ in keys}):
        try:
            ends[topic] = await client.watermarks(topic, sorted(p for t, p in keys if t == topic))
        except KafkaError:
            ends[topic] = {}
    print(f"Group {group} is {view.state} ({len(view.members)} members, protocol {view.protocol or '-'})")
    if not keys:
        print("No committed offsets and no assigned partitions.")
        print()
        return
    rows = [
        ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    ]
    for topic, p in keys:
        cur = committed.get((topic, p))
        end = ends.get(topic, {}).get(p, (-1, -1))[1]
        lag = "-" if cur is None or end < 0 else str(max(end - cur, 0))
        holder = owner.get((topic, p))
        rows.append(
            [
                group,
                topic,
                str(p),
                "-" if cur is None else str(cur),
                "-" if end < 0 else str(end),
                lag,
                holder.member_id if holder else "-",
                holder.host if holder else "-",
                holder.client_id if holder else "-",
            ]
        )
    _table(rows)
    print()


async def _describe_members(client: KafkaClient, group: str) -> None:
    view = await describe_group(client, group)
    print(f"Group {group} is {view.state} ({len(view.members)} members, protocol {view.protocol or '-'})")
    if not view.members:
        print()
        return
    rows = [["GROUP", "CONSUMER-ID", "INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]]
    for m in view.members:
        assigned = ";".join(f"{t}({','.join(map(str, ps))})" for t, ps in sorted(m.assignment.items()))
        rows.append(
            [
                group,
                m.member_id,
                m.instance_id or "-",
                m.host,
                m.client_id,
                str(sum(len(ps) for ps in m.assignment.values())),
                assigned or "-",
            ]
        )
    _table(rows)
    print()


async def _delete(client: KafkaClient, groups: list[str]) -> int:
    status = 0
    for group in groups:
        conn = await coordinator(client, group)
        resp = await conn.request(DeleteGroupsRequest(groups_names=[group]), 2)
        err = resp.results[0].error_code
        if err == ErrorCode.NONE:
            print(f"Deleted group {group}.")
        else:
            print(f"Could not delete group {group}: {KafkaError(err)}", file=sys.stderr)
            status = EXIT_ERROR
    return status


def parse_topic_arg(text: str) -> tuple[str, list[int] | None]:
    topic, sep, parts = text.partition(":")
    if not topic:
        raise ValueError(f"--topic expects TOPIC[:P,P], got {text!r}")
    if not sep:
        return topic, None
    try:
        return topic, sorted({int(p) for p in parts.split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"--topic expects TOPIC[:P,P], got {text!r}") from None


async def _reset(client: KafkaClient, args: argparse.Namespace) -> int:
    group = args.group
    targets = [parse_topic_arg(t) for t in args.topic]
    ts: int | None = None
    if args.to_timestamp is not None:
        ts = args.to_timestamp
    elif args.to_datetime is not None:
        try:
            ts = int(datetime.fromisoformat(args.to_datetime).timestamp() * 1000)
        except ValueError:
            raise ValueError(f"--to-datetime: not an ISO date-time: {args.to_datetime!r}") from None
    plan: dict[str, dict[int, int]] = {}
    for topic, parts in targets:
        info = await client.topic(topic, refresh=True)
        chosen = parts if parts is not None else sorted(info.partitions)
        marks = await client.watermarks(topic, chosen)
        if args.to_earliest:
            new = {p: marks[p][0] for p in chosen}
        elif args.to_latest:
            new = {p: marks[p][1] for p in chosen}
        elif args.to_offset is not None:
            new = {p: min(max(args.to_offset, marks[p][0]), marks[p][1]) for p in chosen}
        else:
            assert ts is not None
            found = await client.list_offsets(topic, {p: ts for p in chosen})
            new = {p: found[p] if found[p] >= 0 else marks[p][1] for p in chosen}
        plan[topic] = new
    rows = [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]]
    rows += [[group, t, str(p), str(o)] for t, parts in plan.items() for p, o in sorted(parts.items())]
    _table(rows)
    if args.dry_run:
        print("(dry run: nothing committed)")
        return 0
    conn = await coordinator(client, group)
    req = OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            OffsetCommitRequestTopic(
                name=t,
                partitions=[
                    OffsetCommitRequestPartition(partition_index=p, committed_offset=o)
                    for p, o in sorted(parts.items())
                ],
            )
            for t, parts in plan.items()
        ],
    )
    resp = await conn.request(req, 8)
    for t in resp.topics:
        for p in t.partitions:
            if p.error_code != ErrorCode.NONE:
                active = p.error_code in (
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    ErrorCode.REBALANCE_IN_PROGRESS,
                    ErrorCode.ILLEGAL_GENERATION,
                )
                hint = " (the group has active members; stop them first)" if active else ""
                raise KafkaError(p.error_code, f"could not commit {t.name}-{p.partition_index}{hint}")
    print(f"Committed new offsets for group {group}.")
    return 0
