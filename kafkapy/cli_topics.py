"""`kafkapy topics create|list|describe|delete|alter`.

Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from kafkapy.client import KafkaClient, KafkaError, TopicInfo

EXIT_ERROR = 1
EXIT_USAGE = 2
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--bootstrap-server and --request-timeout-ms, shared by the client subcommands."""
    parser.add_argument(
        "--bootstrap-server",
        "-b",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"brokers to bootstrap from (default {DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument(
        "--request-timeout-ms", type=int, default=30000, metavar="MS", help="per-request timeout (default 30000)"
    )


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    """['k=v', ...] -> {k: v}; ValueError names the flag on a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, metavar="N", help="partition count (default: broker's)")
    create.add_argument("--replication-factor", type=int, metavar="N", help="replication factor (default: broker's)")
    create.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="topic config (repeatable)")
    create.add_argument("--if-not-exists", action="store_true", help="succeed if the topic already exists")

    lst = sub.add_parser("list", help="list topics")
    lst.add_argument("--include-internal", action="store_true", help="also list internal topics")

    describe = sub.add_parser("describe", help="describe topics: partitions, leaders, replicas, configs")
    describe.add_argument("topics", nargs="*", metavar="TOPIC", help="topics (default: all)")
    describe.add_argument("--configs-only", action="store_true", help="print only the non-default configs")
    describe.add_argument("--all-configs", action="store_true", help="print default configs too")

    delete = sub.add_parser("delete", help="delete topics")
    delete.add_argument("topics", nargs="+", metavar="TOPIC")
    delete.add_argument("--if-exists", action="store_true", help="succeed if a topic does not exist")

    alter = sub.add_parser("alter", help="set or delete topic configs")
    alter.add_argument("topic")
    alter.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="set a config (repeatable)")
    alter.add_argument(
        "--delete-config", action="append", default=[], metavar="KEY", help="delete a config (repeatable)"
    )

    for child in (create, lst, describe, delete, alter):
        add_common_arguments(child)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KafkaError as exc:
        print(f"kafkapy topics: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy topics: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _run(args: argparse.Namespace) -> int:
    if args.action in ("create", "alter"):
        configs = parse_pairs(args.config, "--config")  # usage errors before connecting
    async with KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms) as client:
        if args.action == "create":
            try:
                await client.create_topic(args.topic, args.partitions, args.replication_factor, configs)
            except KafkaError as exc:
                if not (args.if_not_exists and exc.name == "TOPIC_ALREADY_EXISTS"):
                    raise
                return 0
            print(f"Created topic {args.topic}.")
            return 0
        if args.action == "list":
            for t in await client.list_topics(include_internal=args.include_internal):
                print(t.name)
            return 0
        if args.action == "describe":
            return await _describe(client, args)
        if args.action == "delete":
            for name in args.topics:
                try:
                    await client.delete_topics([name])
                except KafkaError as exc:
                    if not (args.if_exists and exc.name == "UNKNOWN_TOPIC_OR_PARTITION"):
                        raise
                    continue
                print(f"Deleted topic {name}.")
            return 0
        if args.action == "alter":
            if not configs and not args.delete_config:
                raise ValueError("alter needs --config or --delete-config")
            await client.topic(args.topic)  # a clear error for an unknown topic
            await client.alter_configs(args.topic, configs, args.delete_config)
            print(f"Altered configs of topic {args.topic}.")
            return 0
    raise ValueError(f"unknown action {args.action!r}")


async def _describe(client: KafkaClient, args: argparse.Namespace) -> int:
    if args.topics:
        topics = [await client.topic(name, refresh=True) for name in args.topics]
    else:
        topics = await client.list_topics()
    for info in topics:
        entries = await client.describe_configs(info.name)
        shown = [e for e in entries if args.all_configs or not e.is_default]
        configs = ",".join(f"{e.name}={'***' if e.is_sensitive else e.value}" for e in shown)
        if args.configs_only:
            for e in shown:
                print(f"{e.name}={'***' if e.is_sensitive else e.value}")
            continue
        print(_topic_line(info, configs))
        for p in sorted(info.partitions.values(), key=lambda p: p.partition):
            print(
                f"\tTopic: {info.name}\tPartition: {p.partition}\tLeader: {p.leader}"
                f"\tReplicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}"
                + (f"\tOffline: {_ids(p.offline)}" if p.offline else "")
            )
    return 0


def _topic_line(info: TopicInfo, configs: str) -> str:
    rf = max((len(p.replicas) for p in info.partitions.values()), default=0)
    return (
        f"Topic: {info.name}\tTopicId: {info.topic_id}\tPartitionCount: {len(info.partitions)}"
        f"\tReplicationFactor: {rf}\tConfigs: {configs}"
    )


def _ids(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)
