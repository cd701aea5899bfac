"""`kafkapy consume TOPIC`: print records, by default from the end onwards.

--format takes kcat-style placeholders: %t topic, %p partition, %o offset,
%k key, %v (or %s) value, %T timestamp, %h headers (k=v,k=v), %K / %S key /
value length (-1 for null), %% a percent sign; \\n \\t \\r \\\\ are escapes.
A newline follows each record unless the format already ends with one.
Exit status: 0 ok (also when --timeout-ms passes without a record), 1 a
broker or connection error, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO, Final

from kafkapy.cli_topics import EXIT_ERROR, EXIT_USAGE, add_common_arguments
from kafkapy.client import EARLIEST, LATEST, FetchedRecord, KafkaClient, KafkaError
from kafkapy.protocol.error_codes import ErrorCode

DEFAULT_FORMAT = "%v"
_ESCAPES: Final[Mapping[str, str]] = MappingProxyType({"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="start at the log start offset")
    start.add_argument("--offset", type=int, metavar="N", help="start at offset N (negative: N before the end)")
    start.add_argument("--timestamp", type=int, metavar="MS", help="start at the first record at or after MS")
    parser.add_argument(
        "--partition", type=int, action="append", metavar="N", help="read only partition N (repeatable)"
    )
    parser.add_argument("-n", "--count", type=int, metavar="N", help="exit after N records")
    parser.add_argument("--timeout-ms", type=int, metavar="MS", help="exit when no record arrives for MS")
    parser.add_argument("-e", "--exit-at-end", action="store_true", help="exit once every partition is read to its end")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--format", "-f", default=DEFAULT_FORMAT, metavar="FMT", help="output format (default %%v)")
    out.add_argument("--json", action="store_true", help="one JSON object per record")
    parser.add_argument("--max-wait-ms", type=int, default=500, metavar="MS", help="fetch long-poll time (default 500)")
    add_common_arguments(parser)


Renderer = Callable[[FetchedRecord], bytes]


def compile_format(fmt: str) -> Renderer:
    """A function rendering one record per the kcat-style `fmt` (newline included)."""
    parts: list[str | Callable[[FetchedRecord], bytes]] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        nxt = fmt[i + 1] if i + 1 < len(fmt) else ""
        if c == "\\" and nxt in _ESCAPES:
            literal.append(_ESCAPES[nxt])
            i += 2
            continue
        if c == "%" and nxt:
            getter = _FIELDS.get(nxt)
            if nxt == "%":
                literal.append("%")
            elif getter is None:
                raise ValueError(f"unknown format placeholder %{nxt} in {fmt!r}")
            else:
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(getter)
            i += 2
            continue
        literal.append(c)
        i += 1
    if literal:
        parts.append("".join(literal))
    if not (parts and isinstance(parts[-1], str) and parts[-1].endswith("\n")):
        parts.append("\n")
    pieces: list[bytes | Callable[[FetchedRecord], bytes]] = [p.encode() if isinstance(p, str) else p for p in parts]

    def render(rec: FetchedRecord) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(rec) for p in pieces)

    return render


def _headers(rec: FetchedRecord) -> bytes:
    return b",".join(k.encode() + b"=" + (v if v is not None else b"") for k, v in rec.headers)


_FIELDS: Final[Mapping[str, Callable[[FetchedRecord], bytes]]] = MappingProxyType(
    {
        "t": lambda r: r.topic.encode(),
        "p": lambda r: str(r.partition).encode(),
        "o": lambda r: str(r.offset).encode(),
        "k": lambda r: r.key or b"",
        "v": lambda r: r.value or b"",
        "s": lambda r: r.value or b"",
        "K": lambda r: str(-1 if r.key is None else len(r.key)).encode(),
        "S": lambda r: str(-1 if r.value is None else len(r.value)).encode(),
        "T": lambda r: str(r.timestamp).encode(),
        "h": _headers,
    }
)


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "backslashreplace")


def render_json(rec: FetchedRecord) -> bytes:
    obj = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp": rec.timestamp,
        "key": _text(rec.key),
        "value": _text(rec.value),
        "headers": [[k, _text(v)] for k, v in rec.headers],
    }
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def run(args: argparse.Namespace) -> int:
    try:
        render = render_json if args.json else compile_format(args.format)
        if args.count is not None and args.count < 0:
            raise ValueError("--count must not be negative")
        return asyncio.run(_run(args, render, sys.stdout.buffer))
    except KafkaError as exc:
        print(f"kafkapy consume: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"kafkapy consume: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


@dataclass(slots=True)
class _Progress:
    printed: int = 0
    last_record: float = 0.0


async def _start_offsets(client: KafkaClient, args: argparse.Namespace, partitions: list[int]) -> dict[int, int]:
    if args.from_beginning:
        return await client.list_offsets(args.topic, {p: EARLIEST for p in partitions})
    if args.timestamp is not None:
        found = await client.list_offsets(args.topic, {p: args.timestamp for p in partitions})
        missing = [p for p, o in found.items() if o < 0]
        if missing:  # nothing at or after the timestamp: start at the end
            found.update(await client.list_offsets(args.topic, {p: LATEST for p in missing}))
        return found
    if args.offset is not None and args.offset >= 0:
        return {p: args.offset for p in partitions}
    ends = await client.list_offsets(args.topic, {p: LATEST for p in partitions})
    if args.offset is not None:
        starts = await client.list_offsets(args.topic, {p: EARLIEST for p in partitions})
        return {p: max(starts[p], ends[p] + args.offset) for p in partitions}
    return ends


async def _run(args: argparse.Namespace, render: Renderer, out: BinaryIO) -> int:
    async with KafkaClient(args.bootstrap_server, request_timeout_ms=args.request_timeout_ms) as client:
        info = await client.wait_for_topic(args.topic)
        partitions = sorted(info.partitions) if not args.partition else sorted(set(args.partition))
        for p in partitions:
            if p not in info.partitions:
                raise KafkaError(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    f"topic {args.topic!r} has no partition {p} (it has {len(info.partitions)})",
                )
        positions = await _start_offsets(client, args, partitions)
        progress = _Progress(last_record=time.monotonic())
        at_end: set[int] = set()
        while args.count is None or progress.printed < args.count:
            wait = args.max_wait_ms
            if args.timeout_ms is not None:
                left = args.timeout_ms - (time.monotonic() - progress.last_record) * 1000
                if left <= 0:
                    break
                wait = max(0, min(wait, int(left)))
            if args.exit_at_end:
                wait = 0  # no long poll: reaching the end is the point
            try:
                results = await client.fetch(args.topic, positions, max_wait_ms=wait)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                await _recover(client, args.topic)
                continue
            for p in sorted(results):
                pf = results[p]
                if pf.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    positions[p] = await _reset(client, args.topic, p, positions[p])
                    continue
                if pf.error_code:
                    err = KafkaError(pf.error_code, f"fetch from {args.topic}-{p}")
                    if not err.retriable:
                        raise err
                    await _recover(client, args.topic)
                    continue
                for rec in pf.records:
                    out.write(render(rec))
                    progress.printed += 1
                    progress.last_record = time.monotonic()
                    if args.count is not None and progress.printed >= args.count:
                        break
                else:
                    positions[p] = pf.next_offset
                if positions[p] >= pf.high_watermark:
                    at_end.add(p)
                else:
                    at_end.discard(p)
                if args.count is not None and progress.printed >= args.count:
                    break
            out.flush()
            if args.exit_at_end and at_end.issuperset(partitions):
                break
    return 0


async def _recover(client: KafkaClient, topic: str) -> None:
    await asyncio.sleep(0.1)
    try:
        await client.topic(topic, refresh=True)
    except KafkaError as exc:
        if not exc.retriable:
            raise


async def _reset(client: KafkaClient, topic: str, partition: int, position: int) -> int:
    """Clamp an out-of-range position into [log start, high watermark]."""
    marks = await client.watermarks(topic, [partition])
    low, high = marks[partition]
    new = low if position < low else high
    print(f"kafkapy consume: offset {position} of {topic}-{partition} is out of range; using {new}", file=sys.stderr)
    return new
