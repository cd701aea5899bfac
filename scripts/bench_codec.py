#!/usr/bin/env python3
"""`scripts/bench codec`: kafkapy's protocol codec against kio, in the same run.

Cases (each decoded and encoded by both codecs, from the same bytes):
  * ProduceRequest v9 carrying 1 MiB of records (one partition);
  * FetchResponse v12 over 50 partitions of ~20 KiB of records each;
  * MetadataResponse v12 with 1000 partitions (10 topics x 100, 3 replicas);
  * CRC-32C over 1 MiB with the `crc32c` package, as a reference speed.

kio (PyPI) decodes in Rust and encodes in Python. Ours decodes to memoryview
slices for records (no copy) and encodes to a list of parts; "encode" here
includes joining the parts into one bytes object, as kio's BytesIO does.
Each figure is the median over --repeats batches of the time per call; MB/s
is the encoded message size over that time.

Results are printed and written into docs/performance.md under
"## Protocol codec" (only that section is replaced; --no-doc skips it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafkapy.protocol.messages import fetch_response as fr
from kafkapy.protocol.messages import metadata_response as md
from kafkapy.protocol.messages import produce_request as pq
from kafkapy.protocol.primitives import Message

DOC = REPO / "docs" / "performance.md"
SECTION = "## Protocol codec"


@dataclass
class Case:
    name: str
    cls: type[Message]
    version: int
    data: bytes
    kio_cls: Any


def produce_case() -> Case:
    body = pq.ProduceRequest(
        acks=-1,
        timeout_ms=30000,
        topic_data=[
            pq.TopicProduceData(
                name="bench", partition_data=[pq.PartitionProduceData(index=0, records=bytes(range(256)) * 4096)]
            )
        ],
    )
    from kio.schema.produce.v9.request import ProduceRequest

    return Case("ProduceRequest v9, 1 MiB records", pq.ProduceRequest, 9, body.encode(9), ProduceRequest)


def fetch_case() -> Case:
    chunk = bytes(range(256)) * 80  # 20 KiB
    body = fr.FetchResponse(
        session_id=1,
        responses=[
            fr.FetchableTopicResponse(
                topic=f"topic-{t}",
                partitions=[
                    fr.PartitionData(
                        partition_index=p,
                        high_watermark=1_000_000 + p,
                        last_stable_offset=1_000_000 + p,
                        log_start_offset=0,
                        aborted_transactions=[],
                        records=chunk,
                    )
                    for p in range(10)
                ],
            )
            for t in range(5)
        ],
    )
    from kio.schema.fetch.v12.response import FetchResponse

    return Case("FetchResponse v12, 50 x 20 KiB", fr.FetchResponse, 12, body.encode(12), FetchResponse)


def metadata_case() -> Case:
    body = md.MetadataResponse(
        brokers=[
            md.MetadataResponseBroker(node_id=i, host=f"broker-{i}.example", port=9092, rack=f"r{i}") for i in range(3)
        ],
        cluster_id="bench-cluster",
        controller_id=0,
        topics=[
            md.MetadataResponseTopic(
                name=f"topic-{t}",
                topic_id=UUID(int=t + 1),
                partitions=[
                    md.MetadataResponsePartition(
                        partition_index=p,
                        leader_id=p % 3,
                        leader_epoch=5,
                        replica_nodes=[p % 3, (p + 1) % 3, (p + 2) % 3],
                        isr_nodes=[p % 3, (p + 1) % 3, (p + 2) % 3],
                    )
                    for p in range(100)
                ],
            )
            for t in range(10)
        ],
    )
    from kio.schema.metadata.v12.response import MetadataResponse

    return Case("MetadataResponse v12, 1000 partitions", md.MetadataResponse, 12, body.encode(12), MetadataResponse)


def timeit(fn: Callable[[], Any], repeats: int, budget: float) -> float:
    """Median seconds per call over `repeats` batches sized to ~budget/repeats each."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    per_batch = max(1, int(budget / repeats / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter() - t0) / per_batch)
    return statistics.median(samples)


def bench_case(case: Case, repeats: int, budget: float) -> list[tuple[str, float, float, float]]:
    """Rows (operation, ours s, kio s, size) for decode and encode."""
    from kio.serial import entity_reader, entity_writer

    reader = entity_reader(case.kio_cls)
    writer = entity_writer(case.kio_cls)
    data = case.data
    ours_obj = case.cls.decode(data, case.version)
    kio_obj, size = reader(data, 0)
    assert size == len(data)

    def kio_encode() -> bytes:
        buf = io.BytesIO()
        writer(buf, kio_obj)
        return buf.getvalue()

    # Both codecs must agree on the bytes before their speed means anything.
    assert ours_obj.encode(case.version) == data == kio_encode(), case.name
    view = memoryview(data)
    dec_ours = timeit(lambda: case.cls.decode(view, case.version), repeats, budget)
    dec_kio = timeit(lambda: reader(data, 0), repeats, budget)
    enc_ours = timeit(lambda: ours_obj.encode(case.version), repeats, budget)
    enc_kio = timeit(kio_encode, repeats, budget)
    return [("decode", dec_ours, dec_kio, len(data)), ("encode", enc_ours, enc_kio, len(data))]


def bench_crc(repeats: int, budget: float) -> tuple[float, int]:
    import crc32c

    data = bytes(range(256)) * 4096
    return timeit(lambda: crc32c.crc32c(data), repeats, budget), len(data)


def fmt_us(s: float) -> str:
    us = s * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:,.1f}"


def mbps(size: int, s: float) -> str:
    return f"{size / s / 1e6:,.0f}"


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "kafkapy/protocol"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return rev.stdout.strip() + (" (+ uncommitted changes under kafkapy/protocol)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(body: str) -> None:
    """Replace (or append) SECTION in docs/performance.md, keeping every other section."""
    text = DOC.read_text() if DOC.is_file() else "# Performance\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    new = [SECTION, "", *body.rstrip("\n").splitlines(), ""]
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *new]
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        lines[start:end] = new
    DOC.write_text("\n".join(lines).rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/bench codec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=15, help="batches per figure (median taken); default 15")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds spent per figure; default 1.5")
    ap.add_argument("--no-doc", action="store_true", help="print only; do not touch docs/performance.md")
    args = ap.parse_args(argv)

    import crc32c
    import kio

    rows: list[tuple[str, str, float, float, int]] = []
    for make in (produce_case, fetch_case, metadata_case):
        case = make()
        for op, ours, theirs, size in bench_case(case, args.repeats, args.budget):
            rows.append((case.name, op, ours, theirs, size))
            print(
                f"{case.name:40s} {op:6s} ours {fmt_us(ours):>8s} us  kio {fmt_us(theirs):>8s} us  ours/kio {ours / theirs:5.2f}x",
                flush=True,
            )
    crc_s, crc_size = bench_crc(args.repeats, args.budget)
    print(f"{'CRC-32C (crc32c package), 1 MiB':40s}        {fmt_us(crc_s):>8s} us  {mbps(crc_size, crc_s)} MB/s")

    cmd = "scripts/bench codec" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    body = [
        f"Measured {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC with `{cmd}` (`scripts/bench_codec.py`; "
        "`scripts/bench codec --help` lists the options).",
        "",
        f"- python {platform.python_version()}, kio {getattr(kio, '__version__', '?')}, crc32c {getattr(crc32c, '__version__', '?')}; "
        f"kafkapy {git_rev()}; {platform.machine()}, other work may be running on the machine, so read the ratio column",
        "- each figure: median over the batches of the time per call, both codecs on the same bytes in the same run; "
        "MB/s = encoded message size / time",
        "- kio decodes in Rust and encodes in pure Python; ours is generated Python. Our decode returns `records` as "
        "memoryview slices of the input (kio copies them into bytes); our encode includes joining the parts into one "
        "bytes object (`encode_into` alone, as the server uses it, skips that copy)",
        "",
        "| message | op | size | kafkapy µs | kafkapy MB/s | kio µs | kio MB/s | kafkapy / kio (time) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, op, ours, theirs, size in rows:
        body.append(
            f"| {name} | {op} | {size / 1024:,.0f} KiB | {fmt_us(ours)} | {mbps(size, ours)} | {fmt_us(theirs)} | "
            f"{mbps(size, theirs)} | {ours / theirs:.2f}x |"
        )
    body += [
        "",
        f"Reference: CRC-32C (`crc32c` package) over 1 MiB: {fmt_us(crc_s)} µs, {mbps(crc_size, crc_s)} MB/s.",
    ]
    print()
    print("\n".join(body))
    if not args.no_doc:
        write_section("\n".join(body) + "\n")
        print(f"\n[bench] wrote the '{SECTION}' section of {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
