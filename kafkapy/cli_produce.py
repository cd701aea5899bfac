"""`kafkapy produce TOPIC`: one record per stdin line.

Lines are split into key and value at the first --key-separator (when given);
keyed records go to the Java client's murmur2 partition, keyless ones to one
partition per batch. A batch is sent when it holds --batch-size records or
when stdin has nothing more ready, so interactive use sees each line at once.
Exit status: 0 ok, 1 a broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from kafkapy.cli_topics import EXIT_ERROR, EXIT_USAGE, add_common_arguments, parse_pairs
from kafkapy.client import KafkaClient, KafkaError, partition_for_key, random_partition
from kafkapy.protocol.compression import CODEC_NAMES
from kafkapy.protocol.records import Header

CODECS_BY_NAME: Final[Mapping[str, int]] = MappingProxyType({name: codec for codec, name in CODEC_NAMES.items()})
_EOF: Final = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    parser.add_argument("--key-separator", metavar="SEP", help="split each line into KEY SEP VALUE at the first SEP")
    parser.add_argument(
        "--header", action="append", default=[], metavar="KEY=VALUE", help="header for every record (repeatable)"
    )
    parser.add_argument("--partition", type=int, metavar="N", help="produce every record to partition N")
    parser.add_argument("--acks", choices=("0", "1", "-1", "all"), default="-1", help="required acks (default all)")
    parser.add_argument("--compression", choices=tuple(CODECS_BY_NAME), default="none", help="batch codec")
    parser.add_argument(
        "--batch-size", type=int, default=1000, metavar="N", help="max records per batch (default 1000)"
    )
    parser.add_argument("--timestamp", type=int, metavar="MS", help="record timestamp (default: now)")
    parser.add_argument("--null-value", metavar="TEXT", help="a value equal to TEXT is produced as null")
    parser.add_argument("--quiet", "-q", action="store_true", help="print no summary on stderr")
    add_common_arguments(parser)


@dataclass(slots=True)
class Producer:
    """Batches records per partition and sends each batch when full or idle."""

    client: KafkaClient
    topic: str
    num_partitions: int
    acks: int
    compression: int
    batch_size: int
    fixed_partition: int | None
    pending: dict[int, list[tuple[bytes | None, bytes | None, list[Header], int | None]]] = field(default_factory=dict)
    sticky: int = 0
    sent: int = 0

    def add(self, key: bytes | None, value: bytes | None, headers: list[Header], ts: int | None) -> int | None:
        """Queue a record; returns a partition whose batch is now full."""
        if self.fixed_partition is not None:
            p = self.fixed_partition
        elif key is not None:
            p = partition_for_key(key, self.num_partitions)
        else:
            p = self.sticky
        batch = self.pending.setdefault(p, [])
        batch.append((key, value, headers, ts))
        return p if len(batch) >= self.batch_size else None

    async def flush(self, partition: int | None = None) -> None:
        parts = [partition] if partition is not None else sorted(self.pending)
        for p in parts:
            batch = self.pending.pop(p, [])
            if batch:
                await self.client.produce(self.topic, p, batch, acks=self.acks, compression=self.compression)
                self.sent += len(batch)
        if partition is None or partition == self.sticky:
            self.sticky = random_partition(self.num_partitions)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KafkaError as exc:
        print(f"kafkapy produce: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy produce: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _run(args: argparse.Namespace) -> int:
    headers: list[Header] = [(k, v.encode()) for k, v in parse_pairs(args.header, "--header").items()]
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    sep = args.key_separator.encode() if args.key_separator else None
    null_value = args.null_value.encode() if args.null_value is not None else None
    acks = -1 if args.acks == "all" else int(args.acks)
    async with KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms) as client:
        info = await client.wait_for_topic(args.topic)
        n = len(info.partitions)
        if args.partition is not None and not 0 <= args.partition < n:
            raise KafkaError(3, f"topic {args.topic!r} has no partition {args.partition} (it has {n})")
        producer = Producer(
            client,
            args.topic,
            n,
            acks,
            CODECS_BY_NAME[args.compression],
            args.batch_size,
            args.partition,
            sticky=random_partition(n),
        )
        queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(maxsize=64)
        loop = asyncio.get_running_loop()
        threading.Thread(target=_read_lines, args=(sys.stdin.fileno(), loop, queue), daemon=True).start()
        done = False
        while not done:
            chunk = await queue.get()
            while True:
                if chunk is None:
                    done = True
                    break
                for line in chunk:
                    key: bytes | None = None
                    value: bytes | None = line
                    if sep is not None:
                        k, found, v = line.partition(sep)
                        if found:
                            key, value = k, v
                    if null_value is not None and value == null_value:
                        value = None
                    full = producer.add(key, value, headers, args.timestamp)
                    if full is not None:
                        await producer.flush(full)
                if queue.empty():
                    break
                chunk = queue.get_nowait()
            await producer.flush()  # nothing more ready: send what we have
    if not args.quiet:
        print(f"Produced {producer.sent} records to {args.topic}.", file=sys.stderr)
    return 0


def _read_lines(fd: int, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[list[bytes] | None]) -> None:
    """Feed stdin's complete lines (without newlines) into `queue` chunk by chunk, then None.

    os.read returns whatever is ready, so a chunk never waits for more input.
    """
    rest = b""
    try:
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            if lines:
                asyncio.run_coroutine_threadsafe(queue.put(lines), loop).result()
        if rest:
            asyncio.run_coroutine_threadsafe(queue.put([rest]), loop).result()
    except (RuntimeError, OSError):
        pass  # the loop is gone (producing failed) or stdin broke
    with contextlib.suppress(RuntimeError):
        asyncio.run_coroutine_threadsafe(queue.put(_EOF), loop).result()
