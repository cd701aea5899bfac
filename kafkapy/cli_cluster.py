"""`kafkapy cluster status|rebalance|elect-leaders`.

- status: brokers, controller, topic and partition counts, and the
  under-replicated (ISR smaller than the replicas), offline (no leader) and
  under-min-ISR (ISR smaller than the topic's min.insync.replicas) partitions.
- rebalance: a minimal-movement plan (`kafkapy.cluster.assignment.plan_rebalance`)
  over every registered broker minus --remove-broker (--add-broker must name
  a registered broker; one holding replicas while down must be removed),
  executed with AlterPartitionReassignments (KIP-455) under an optional
  replication throttle, followed with ListPartitionReassignments.
- elect-leaders: ElectLeaders (preferred or unclean).

Exit status: 0 ok, 1 a broker or connection error (or a failed partition),
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafkapy.cli_topics import add_common_arguments
from kafkapy.client import (
    ELECTION_PREFERRED,
    ELECTION_UNCLEAN,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    BrokerInfo,
    ClusterMetadata,
    KafkaClient,
    KafkaError,
    PartitionInfo,
)
from kafkapy.cluster import assignment as placement
from kafkapy.cluster.metadata import BrokerInfo as PlacementBroker
from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.error_codes import ErrorCode

EXIT_ERROR = 1
EXIT_USAGE = 2

Key = tuple[str, int]
BROKER_THROTTLES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
TOPIC_THROTTLES = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="brokers, controller, under-replicated / offline / under-min-ISR partitions")

    reb = sub.add_parser(
        "rebalance",
        help="move the fewest replicas so replicas and preferred leaders spread evenly",
        description=(
            "Plan over every registered broker minus --remove-broker; --add-broker checks that "
            "the new broker is registered. Without --dry-run the plan is executed."
        ),
    )
    reb.add_argument(
        "--add-broker",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="spread onto broker N (repeatable; it must be registered)",
    )
    reb.add_argument(
        "--remove-broker",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="move every replica off broker N (repeatable)",
    )
    reb.add_argument(
        "--topic", action="append", default=[], metavar="TOPIC", help="only these topics (repeatable; default: all)"
    )
    reb.add_argument("--no-racks", action="store_true", help="ignore broker.rack when planning")
    reb.add_argument("--dry-run", action="store_true", help="print the plan only")
    reb.add_argument(
        "--plan-json", metavar="FILE", help="write the target assignment as kafka-reassign-partitions JSON"
    )
    reb.add_argument(
        "--throttle",
        type=int,
        metavar="BYTES_PER_S",
        help="replication throttle while moving (both leader and follower side)",
    )
    reb.add_argument(
        "--wait",
        action="store_true",
        help="wait for the moves, printing progress; then remove the throttle and elect preferred leaders",
    )
    reb.add_argument(
        "--batch-size",
        type=int,
        default=100,
        metavar="N",
        help="partitions per request, and in flight with --wait (default 100)",
    )
    reb.add_argument(
        "--poll-interval-ms",
        type=int,
        default=1000,
        metavar="MS",
        help="progress poll interval with --wait (default 1000)",
    )
    reb.add_argument(
        "--settle-timeout-s",
        type=float,
        default=30.0,
        metavar="S",
        help="with --wait, fail a partition neither moving nor moved for this long (default 30)",
    )
    reb.add_argument(
        "--clear-throttle", action="store_true", help="only remove the replication throttle configs, then exit"
    )

    elect = sub.add_parser("elect-leaders", help="elect preferred (or unclean) leaders")
    elect.add_argument(
        "--type", choices=("preferred", "unclean"), default="preferred", help="election type (default preferred)"
    )
    elect.add_argument("--topic", metavar="TOPIC", help="only this topic (default: every partition)")
    elect.add_argument(
        "--partition",
        type=int,
        action="append",
        default=[],
        metavar="P",
        help="only this partition of --topic (repeatable)",
    )

    for child in (status, reb, elect):
        add_common_arguments(child)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KafkaError as exc:
        print(f"kafkapy cluster: error: {_explain(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except placement.AssignmentError as exc:
        print(f"kafkapy cluster: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy cluster: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _explain(exc: KafkaError) -> str:
    return str(exc)


async def _run(args: argparse.Namespace) -> int:
    if args.action == "elect-leaders" and args.partition and not args.topic:
        raise ValueError("--partition needs --topic")
    if args.action == "rebalance" and args.batch_size <= 0:
        raise ValueError("--batch-size must be positive")
    async with KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms) as client:
        if args.action == "status":
            return await status(client)
        if args.action == "rebalance":
            return await rebalance(client, args)
        if args.action == "elect-leaders":
            return await elect_leaders(client, args)
    raise ValueError(f"unknown action {args.action!r}")


# ------------------------------------------------------------------ status


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids) or "-"


def _partition_line(name: str, p: PartitionInfo, extra: str = "") -> str:
    line = (
        f"  Topic: {name}\tPartition: {p.partition}\tLeader: {p.leader}"
        f"\tReplicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}"
    )
    if p.offline:
        line += f"\tOffline: {_ids(p.offline)}"
    return line + extra


async def status(client: KafkaClient) -> int:
    cluster = await client.describe_cluster()
    meta = await client.refresh_metadata()
    names = sorted(meta.topics)
    configs = await client.describe_configs_many([(RESOURCE_TOPIC, n) for n in names], ["min.insync.replicas"])
    min_isr: dict[str, int] = {}
    for (_, name), entries in configs.items():
        if isinstance(entries, KafkaError):
            continue
        for e in entries:
            if e.name == "min.insync.replicas" and e.value and e.value.isdigit():
                min_isr[name] = int(e.value)

    print(f"Cluster: {cluster.cluster_id}")
    print(f"Controller: {cluster.controller_id}")
    print(f"Brokers: {len(cluster.brokers)}")
    for b in sorted(cluster.brokers.values(), key=lambda b: b.node_id):
        mark = "\t(controller)" if b.node_id == cluster.controller_id else ""
        print(f"  {b.node_id}\t{b.host}:{b.port}\track: {b.rack or '-'}{mark}")
    partitions = sum(len(t.partitions) for t in meta.topics.values())
    internal = sum(1 for t in meta.topics.values() if t.is_internal)
    print(f"Topics: {len(meta.topics)} ({internal} internal)\tPartitions: {partitions}")

    under: list[str] = []
    offline: list[str] = []
    below_min: list[str] = []
    for name in names:
        for p in sorted(meta.topics[name].partitions.values(), key=lambda p: p.partition):
            if p.leader < 0:
                offline.append(_partition_line(name, p))
            if len(p.isr) < len(p.replicas):
                under.append(_partition_line(name, p))
            need = min_isr.get(name, 1)
            if len(p.isr) < need:
                below_min.append(_partition_line(name, p, f"\tMinIsr: {need}"))
    for title, lines in (
        ("Under-replicated partitions", under),
        ("Offline partitions", offline),
        ("Under-min-ISR partitions", below_min),
    ):
        print(f"{title}: {len(lines)}")
        for line in lines:
            print(line)
    conn = await client.controller_connection()
    if ApiKey.LIST_PARTITION_REASSIGNMENTS in conn.versions:
        ongoing = await client.list_partition_reassignments()
        print(f"Reassignments in progress: {len(ongoing)}")
        for (name, index), r in sorted(ongoing.items()):
            print(
                f"  Topic: {name}\tPartition: {index}\tReplicas: {_ids(r.replicas)}"
                f"\tAdding: {_ids(r.adding)}\tRemoving: {_ids(r.removing)}"
            )
    return 0


# ------------------------------------------------------------------ rebalance


@dataclass(slots=True)
class Plan:
    before: dict[Key, list[int]]
    after: dict[Key, list[int]]
    brokers_before: list[int]
    brokers_after: list[int]

    @property
    def moves(self) -> dict[Key, list[int]]:
        """What a reassignment submits: every partition whose replica list changes."""
        return {k: v for k, v in self.after.items() if v != self.before[k]}


def current_assignment(meta: ClusterMetadata, topics: Sequence[str] = ()) -> dict[Key, list[int]]:
    wanted = set(topics)
    missing = wanted - set(meta.topics)
    if missing:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"no such topic(s): {', '.join(sorted(missing))}")
    return {
        (name, p.partition): list(p.replicas)
        for name, t in sorted(meta.topics.items())
        if not wanted or name in wanted
        for p in sorted(t.partitions.values(), key=lambda p: p.partition)
    }


def make_plan(
    before: dict[Key, list[int]],
    registered: Mapping[int, BrokerInfo],
    add: Sequence[int],
    remove: Sequence[int],
    *,
    racks: bool = True,
) -> Plan:
    """The target over every registered broker (and those holding replicas), plus add, minus remove.

    A broker to add must be registered; a broker holding replicas that is not
    registered (down) must be removed explicitly.
    """
    both = sorted(set(add) & set(remove))
    if both:
        raise ValueError(f"broker(s) {_ids(both)} both added and removed")
    unknown_add = sorted(set(add) - set(registered))
    if unknown_add:
        raise KafkaError(
            ErrorCode.BROKER_NOT_AVAILABLE,
            f"broker(s) {_ids(unknown_add)} not registered in the cluster (live brokers: {_ids(sorted(registered))}); "
            "start a broker before adding it",
        )
    holding = sorted({b for reps in before.values() for b in reps})
    target = sorted((set(holding) | set(registered)) - set(remove))
    down = [b for b in target if b not in registered]
    if down:
        raise KafkaError(
            ErrorCode.BROKER_NOT_AVAILABLE,
            f"broker(s) {_ids(down)} hold replicas but are not registered; start them, "
            "or pass --remove-broker to move their replicas away",
        )
    if not target:
        raise ValueError("no broker left to place replicas on")
    brokers = [PlacementBroker(b, registered[b].host, registered[b].port, registered[b].rack) for b in target]
    after = placement.plan_rebalance(before, brokers, racks=racks)
    return Plan(before, after, holding, target)


def print_plan(plan: Plan) -> None:
    s = placement.summarize_plan(plan.before, plan.after)
    added = sorted(set(plan.brokers_after) - set(plan.brokers_before))
    removed = sorted(set(plan.brokers_before) - set(plan.brokers_after))
    change = "".join([f" (adding {_ids(added)})" if added else "", f" (removing {_ids(removed)})" if removed else ""])
    print(f"Brokers: {_ids(plan.brokers_before)} -> {_ids(plan.brokers_after)}{change}")
    print(
        f"Partitions: {s.partitions}\tto move: {s.partitions_moved}\treplica moves: {s.replica_moves}"
        f"\tleadership moves: {s.leadership_moves}\treassignments: {s.reordered}"
    )
    old_r = Counter(b for r in plan.before.values() for b in r)
    new_r = Counter(b for r in plan.after.values() for b in r)
    old_l = Counter(r[0] for r in plan.before.values() if r)
    new_l = Counter(r[0] for r in plan.after.values() if r)
    print("Broker\treplicas before -> after\tpreferred leaders before -> after")
    for b in sorted(set(plan.brokers_before) | set(plan.brokers_after)):
        print(f"  {b}\t{old_r[b]} -> {new_r[b]}\t{old_l[b]} -> {new_l[b]}")


def reassignment_json(assignment: Mapping[Key, list[int]]) -> str:
    """kafka-reassign-partitions.sh's format."""
    parts = [{"topic": t, "partition": p, "replicas": r} for (t, p), r in sorted(assignment.items())]
    return json.dumps({"version": 1, "partitions": parts}, indent=1)


async def rebalance(client: KafkaClient, args: argparse.Namespace) -> int:
    cluster = await client.describe_cluster()
    if args.clear_throttle:
        await clear_throttle(client, sorted(cluster.brokers), None)
        print("Replication throttle removed.")
        return 0
    if not args.dry_run:
        conn = await client.controller_connection()
        for api in (ApiKey.ALTER_PARTITION_REASSIGNMENTS, ApiKey.LIST_PARTITION_REASSIGNMENTS):
            if api not in conn.versions:
                raise KafkaError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"broker {conn.address} does not serve {api_spec(api).name} "
                    "(not in its ApiVersions), so it cannot reassign partitions; --dry-run still plans",
                )
    meta = await client.refresh_metadata()
    before = current_assignment(meta, args.topic)
    plan = make_plan(before, cluster.brokers, args.add_broker, args.remove_broker, racks=not args.no_racks)
    print_plan(plan)
    if args.plan_json:
        Path(args.plan_json).write_text(reassignment_json(plan.after) + "\n")
        print(f"Target assignment written to {args.plan_json}.")
    moves = plan.moves
    if args.dry_run:
        print("Dry run: nothing submitted.")
        return 0
    if not moves:
        print("Nothing to move.")
        return 0
    involved = sorted(set(plan.brokers_before) | set(plan.brokers_after))
    if args.throttle is not None:
        await set_throttle(client, involved, plan, args.throttle)
        print(f"Replication throttle set to {args.throttle} B/s on broker(s) {_ids(involved)}.")
    failed = await execute(client, moves, args)
    if args.wait:
        if args.throttle is not None:
            await clear_throttle(client, involved, sorted({t for t, _ in moves}))
            print("Replication throttle removed.")
        await elect_preferred(client, plan)
    elif args.throttle is not None:
        print("The throttle stays until the moves finish: remove it with `kafkapy cluster rebalance --clear-throttle`.")
    return EXIT_ERROR if failed else 0


def _chunks(keys: list[Key], size: int) -> Iterable[list[Key]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


async def _submit(client: KafkaClient, moves: Mapping[Key, list[int]], keys: list[Key]) -> list[Key]:
    """Submit `keys`; print and return the ones refused."""
    results = await client.alter_partition_reassignments({k: moves[k] for k in keys})
    refused = []
    for k in keys:
        r = results.get(k)
        if r is None or not r.ok:
            refused.append(k)
            why = "no result" if r is None else f"{r.error_name}: {r.error_message or ''}".rstrip(": ")
            print(f"  {k[0]}-{k[1]}: refused ({why})", file=sys.stderr)
    return refused


async def execute(client: KafkaClient, moves: Mapping[Key, list[int]], args: argparse.Namespace) -> list[Key]:
    """Submit the moves in batches; with --wait keep --batch-size in flight until all are done."""
    keys = sorted(moves)
    failed: list[Key] = []
    if not args.wait:
        for chunk in _chunks(keys, args.batch_size):
            failed += await _submit(client, moves, chunk)
        print(f"Submitted {len(keys) - len(failed)} reassignment(s); follow them with `kafkapy cluster status`.")
        return failed
    pending = list(keys)
    in_flight: dict[Key, float] = {}  # partition -> when it was last seen moving
    done: list[Key] = []
    started = time.monotonic()
    last = ""
    while pending or in_flight:
        room = args.batch_size - len(in_flight)
        if room > 0 and pending:
            batch, pending = pending[:room], pending[room:]
            refused = await _submit(client, moves, batch)
            failed += refused
            now = time.monotonic()
            in_flight.update({k: now for k in batch if k not in refused})
        if in_flight:
            ongoing = await client.list_partition_reassignments(sorted(in_flight))
            meta = await client.refresh_metadata(sorted({t for t, _ in in_flight}))
            now = time.monotonic()
            for k in sorted(in_flight):
                if k in ongoing:
                    in_flight[k] = now
                    continue
                part = meta.topics.get(k[0])
                replicas = part.partitions[k[1]].replicas if part and k[1] in part.partitions else []
                if sorted(replicas) == sorted(moves[k]):
                    done.append(k)
                    del in_flight[k]
                elif now - in_flight[k] > args.settle_timeout_s:  # neither moving nor moved: cancelled?
                    print(
                        f"  {k[0]}-{k[1]}: not reassigning, replicas {_ids(replicas)}, wanted {_ids(moves[k])}",
                        file=sys.stderr,
                    )
                    failed.append(k)
                    del in_flight[k]
        line = f"Reassigned {len(done)}/{len(keys)} partition(s), {len(in_flight)} moving ({time.monotonic() - started:.0f}s)"
        if line != last:
            print(line, flush=True)
            last = line
        if in_flight:
            await asyncio.sleep(args.poll_interval_ms / 1000)
    print(f"Done: {len(done)} partition(s) moved, {len(failed)} failed.")
    return failed


def throttle_lists(plan: Plan) -> dict[str, tuple[str, str]]:
    """Per topic, Kafka's throttled-replica lists: leaders = current replicas, followers = new ones."""
    leaders: dict[str, list[str]] = {}
    followers: dict[str, list[str]] = {}
    for (name, p), new in sorted(plan.moves.items()):
        old = plan.before[(name, p)]
        leaders.setdefault(name, []).extend(f"{p}:{b}" for b in old)
        followers.setdefault(name, []).extend(f"{p}:{b}" for b in new if b not in old)
    return {name: (",".join(leaders[name]), ",".join(followers.get(name, []))) for name in leaders}


async def set_throttle(client: KafkaClient, brokers: Sequence[int], plan: Plan, rate: int) -> None:
    if rate <= 0:
        raise ValueError("--throttle must be positive")
    for b in brokers:
        await client.alter_configs(str(b), {k: str(rate) for k in BROKER_THROTTLES}, resource_type=RESOURCE_BROKER)
    for name, (leader, follower) in throttle_lists(plan).items():
        configs = {TOPIC_THROTTLES[0]: leader}
        if follower:
            configs[TOPIC_THROTTLES[1]] = follower
        await client.alter_configs(name, configs)


async def clear_throttle(client: KafkaClient, brokers: Sequence[int], topics: Sequence[str] | None) -> None:
    """Delete the throttle configs on `brokers` and `topics` (None: every topic)."""
    for b in brokers:
        await client.alter_configs(str(b), delete_configs=BROKER_THROTTLES, resource_type=RESOURCE_BROKER)
    if topics is None:
        topics = sorted((await client.refresh_metadata()).topics)
    for name in topics:
        await client.alter_configs(name, delete_configs=TOPIC_THROTTLES)


async def elect_preferred(client: KafkaClient, plan: Plan) -> None:
    """After the moves: put leadership on the new preferred replicas (best effort)."""
    changed = [k for k, v in plan.moves.items() if v[:1] != plan.before[k][:1]]
    if not changed:
        return
    try:
        results = await client.elect_leaders(changed, election_type=ELECTION_PREFERRED)
    except KafkaError as exc:
        print(f"Preferred leader election skipped: {_explain(exc)}", file=sys.stderr)
        return
    ok = sum(1 for r in results.values() if r.ok or r.error_code == ErrorCode.ELECTION_NOT_NEEDED)
    print(f"Preferred leaders elected: {ok}/{len(changed)} partition(s).")


# ------------------------------------------------------------------ elect-leaders


async def elect_leaders(client: KafkaClient, args: argparse.Namespace) -> int:
    partitions: list[Key] | None = None
    if args.topic:
        info = await client.topic(args.topic, refresh=True)
        wanted = args.partition or sorted(info.partitions)
        unknown = [p for p in wanted if p not in info.partitions]
        if unknown:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {args.topic!r} has no partition(s) {_ids(unknown)}"
            )
        partitions = [(args.topic, p) for p in wanted]
    kind = ELECTION_UNCLEAN if args.type == "unclean" else ELECTION_PREFERRED
    results = await client.elect_leaders(partitions, election_type=kind)
    bad = 0
    for (name, p), r in sorted(results.items()):
        if r.ok:
            print(f"{name}-{p}\telected")
        elif r.error_code == ErrorCode.ELECTION_NOT_NEEDED:
            print(f"{name}-{p}\tnot needed ({r.error_message or 'the leader is already the one to elect'})")
        else:
            bad += 1
            print(f"{name}-{p}\t{r.error_name}: {r.error_message or ''}".rstrip(": "))
    if not results:
        print(f"{args.type.capitalize()} election: no partition needed one.")
    else:
        print(f"{args.type.capitalize()} election: {len(results) - bad} of {len(results)} partition(s) ok.")
    return EXIT_ERROR if bad else 0
