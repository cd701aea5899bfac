#!/usr/bin/env python3
"""`scripts/bench metadata`: cluster metadata at Kafka's scale (issue 17), etcd + 3 kafkapy brokers on loopback.

What is measured is the metadata layer, so the partitions' replicas are placed
on three *phantom* brokers (ids 101-103): this process registers them in etcd
as brokers do (a lease each) but runs no broker behind them. The three real
brokers then hold the whole image and answer Metadata without making thousands
of local logs (making one costs a few fsyncs: that cost is the storage layer's,
measured apart in docs/performance.md). Steps:

  1. one topic of --partitions (10,000) partitions, RF 3, created with librdkafka's AdminClient;
  2. CreatePartitions of that topic by --add (2,000) more;
  3. one AlterPartitionReassignments of --move (5,000) of its partitions (one phantom replaced by another);
  4. more topics of the same size until --total (100,000) partitions are in the cluster;
  5. one more reassignment of --move partitions at that scale.

For each step: the time until the request is answered, until an image fed by
etcd's watch as every broker's is (EtcdMetadata.observe, in a thread here) has
applied it, and until every broker answers Metadata with the change (polled on
each broker in turn, each answer decoded in Python: an upper bound). At 10,000
and at --total partitions: each broker's RSS and its growth since start (the
brokers host no replica here, so the growth is the metadata image and what
serving Metadata for it costs), the size of a Metadata response for all topics (v12, one broker), the etcd
keys' total size. Results are printed and, unless --no-doc, written into
docs/performance.md under "## Metadata at scale".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import gc
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from kafkapy.client import KafkaClient
from kafkapy.cluster.etcd_metadata import EtcdMetadata
from kafkapy.cluster.metadata import BrokerInfo, Changes
from kafkapy.local_cluster import LocalCluster
from kafkapy.protocol.frames import encode_request
from kafkapy.protocol.messages.metadata_request import MetadataRequest

SECTION = "## Metadata at scale"
PHANTOMS = (101, 102, 103)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metadata_bytes(host: str, port: int) -> int:
    """Size of one Metadata v12 response for all topics (the frame, size prefix excluded)."""
    with socket.create_connection((host, port), timeout=60) as s:
        s.sendall(encode_request(MetadataRequest(topics=None), 12, 1))
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        (size,) = struct.unpack(">i", head)
        left = size
        while left:
            chunk = s.recv(min(left, 1 << 20))
            if not chunk:
                raise OSError("connection closed mid-response")
            left -= len(chunk)
        return int(size)


async def counts_everywhere(clients: list[KafkaClient], topics: list[str], check: Any, timeout: float) -> float:
    """Seconds until every broker's Metadata for `topics` satisfies `check` (polled every 20 ms)."""
    began = time.perf_counter()
    pending = list(clients)
    while pending:
        if time.perf_counter() - began > timeout:
            raise TimeoutError("brokers did not see the change")
        still = []
        for c in pending:
            c.metadata = None  # answers for these topics only, nothing merged from before
            meta = await c.refresh_metadata(topics)
            if not check(meta):
                still.append(c)
        pending = still
        if pending:
            await asyncio.sleep(0.02)
    return time.perf_counter() - began


class ImageWatch:
    """The metadata image as every broker holds it (EtcdMetadata, watch-fed), in a thread of its own, with
    the time a condition on it first held: when a broker's store has applied a change."""

    def __init__(self, url: str, cluster_id: str) -> None:
        self.url, self.cluster_id = url, cluster_id
        self.md: EtcdMetadata | None = None
        self.want: Callable[[EtcdMetadata], bool] | None = None
        self.hit: float | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "image watch did not start"

    async def _run(self) -> None:
        md = self.md = await EtcdMetadata.observe(self.url, self.cluster_id)

        def listener(_: Changes) -> None:
            if self.want is not None and self.hit is None and self.want(md):
                self.hit = time.perf_counter()

        md.listener = listener
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await md.close(deregister=False)

    def expect(self, want: Callable[[EtcdMetadata], bool]) -> None:
        self.hit, self.want = None, want

    async def seen(self, since: float, timeout: float = 300) -> float:
        began = time.perf_counter()
        while self.hit is None:
            if time.perf_counter() - began > timeout:
                raise TimeoutError("the image did not see the change")
            await asyncio.sleep(0.01)
        return self.hit - since

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _size(md: EtcdMetadata, topic: str) -> int:
    t = md.topic(topic)
    return 0 if t is None else len(t.partitions)


def assignment(n: int, start: int = 0) -> list[list[int]]:
    return [[PHANTOMS[(i + k) % 3] for k in range(3)] for i in range(start, start + n)]


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    cluster = LocalCluster(root, 3, {"broker.session.timeout.ms": "10000", "auto.create.topics.enable": "false"})
    cluster.start()
    out: dict[str, Any] = {"steps": [], "scales": []}
    phantoms: list[EtcdMetadata] = []
    clients: list[KafkaClient] = []
    try:
        assert cluster.etcd is not None
        for node in PHANTOMS:
            phantoms.append(
                await EtcdMetadata.open(
                    cluster.etcd.url,
                    BrokerInfo(node, "127.0.0.1", 1),
                    cluster_id=cluster.cluster_id,
                    data_dir=root / f"phantom-{node}",
                    session_timeout_ms=60_000,  # this process's loop also decodes big Metadata answers
                )
            )
        clients = [KafkaClient(b.bootstrap) for b in cluster.brokers.values()]
        await counts_everywhere(clients, [], lambda m: len(m.brokers) == 6, 30)
        base_rss = {n: rss_kib(b.pid) for n, b in cluster.brokers.items()}
        watch = ImageWatch(cluster.etcd.url, cluster.cluster_id)
        assert watch.md is not None
        image = watch.md
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        n = args.partitions

        def step(name: str, answered: float, applied: float, seen: float) -> None:
            out["steps"].append((name, answered, applied, seen))
            print(
                f"{name}: answered in {answered:.3f} s, in a watching image after {applied:.3f} s, "
                f"in every broker's Metadata after {seen:.3f} s",
                flush=True,
            )

        async def scale(label: str) -> None:
            gc.collect()
            b = cluster.brokers[1]
            row = {
                "label": label,
                "partitions": sum(len(t.partitions) for t in image.topics()),
                "rss_mib": {k: rss_kib(v.pid) / 1024 for k, v in cluster.brokers.items()},
                "rss_growth_mib": {k: (rss_kib(v.pid) - base_rss[k]) / 1024 for k, v in cluster.brokers.items()},
                "metadata_bytes": metadata_bytes(b.host, b.port),
                "etcd_bytes": sum(len(k) + len(v) for k, v in cluster.etcd_keys().items()),
            }
            out["scales"].append(row)
            print(row, flush=True)

        watch.expect(lambda md: _size(md, "scale-0") == n)
        t0 = time.perf_counter()
        admin.create_topics([NewTopic("scale-0", n, replica_assignment=assignment(n))], request_timeout=120)[
            "scale-0"
        ].result(120)
        answered = time.perf_counter() - t0
        seen = await counts_everywhere(clients, ["scale-0"], lambda m: _count(m, "scale-0") == n, 120)
        step(f"CreateTopics: 1 topic of {n:,} partitions", answered, await watch.seen(t0), answered + seen)
        await scale(f"one topic of {n:,} partitions")

        total = n + args.add
        watch.expect(lambda md: _size(md, "scale-0") == total)
        t0 = time.perf_counter()
        admin.create_partitions([NewPartitions("scale-0", total, assignment(args.add, n))], request_timeout=120)[
            "scale-0"
        ].result(120)
        answered = time.perf_counter() - t0
        seen = await counts_everywhere(clients, ["scale-0"], lambda m: _count(m, "scale-0") == total, 120)
        step(f"CreatePartitions: {n:,} -> {total:,}", answered, await watch.seen(t0), answered + seen)

        async def move(topic: str, count: int) -> None:
            clients[0].metadata = None
            parts = (await clients[0].refresh_metadata([topic])).topics[topic].partitions
            # each partition's replicas rotated: a new preferred leader, nothing to copy (phantoms copy nothing)
            targets = {(topic, i): parts[i].replicas[1:] + parts[i].replicas[:1] for i in range(count)}
            watch.expect(
                lambda md: all(
                    md.topic(topic).partitions[i].replicas == targets[(topic, i)]  # type: ignore[union-attr]
                    for i in range(count)
                )
            )
            t0 = time.perf_counter()
            result = await clients[0].alter_partition_reassignments(targets)
            answered = time.perf_counter() - t0
            bad = {k: v.error_code for k, v in result.items() if v.error_code}
            assert not bad, list(bad.items())[:3]
            seen = await counts_everywhere(
                clients,
                [topic],
                lambda m: all(m.topics[topic].partitions[i].replicas == targets[(topic, i)] for i in range(count)),
                120,
            )
            step(f"AlterPartitionReassignments: {count:,} partitions", answered, await watch.seen(t0), answered + seen)

        await move("scale-0", args.move)

        made = total
        index = 1
        sizes: list[int] = []
        while total + sum(sizes) < args.total:
            sizes.append(min(n, args.total - total - sum(sizes)))
        goal = total + sum(sizes)
        scale_names = ["scale-0"] + [f"scale-{i + 1}" for i in range(len(sizes))]
        watch.expect(lambda md: sum(_size(md, t) for t in scale_names) == goal)
        t_all = time.perf_counter()
        while made < args.total:
            size = min(n, args.total - made)
            name = f"scale-{index}"
            admin.create_topics([NewTopic(name, size, replica_assignment=assignment(size))], request_timeout=120)[
                name
            ].result(120)
            made += size
            index += 1
        if index > 1:
            names = [f"scale-{i}" for i in range(index)]
            seen = await counts_everywhere(clients, names, lambda m: sum(_count(m, t) for t in names) == made, 300)
            step(
                f"CreateTopics: {index - 1} more topics, {made - total:,} partitions (one request each)",
                time.perf_counter() - t_all - seen,
                await watch.seen(t_all),
                time.perf_counter() - t_all,
            )
            watch.expect(lambda md: md.topic("one-more") is not None)
            t0 = time.perf_counter()
            admin.create_topics([NewTopic("one-more", 1, 1)], request_timeout=60)["one-more"].result(60)
            answered = time.perf_counter() - t0
            seen = await counts_everywhere(clients, ["one-more"], lambda m: _count(m, "one-more") == 1, 60)
            step(
                f"CreateTopics: 1 partition with {made:,} in the cluster",
                answered,
                await watch.seen(t0),
                answered + seen,
            )
            await move(f"scale-{index - 1}", args.move)
            await scale(f"{made + 1:,} partitions in {index + 1} topics")
        watch.stop()
    finally:
        for c in clients:
            await c.close()
        for p in phantoms:
            await p.close()
        cluster.stop()
    return out


def _count(meta: Any, topic: str) -> int:
    t = meta.topics.get(topic)
    return 0 if t is None or t.error_code else len(t.partitions)


def render(args: argparse.Namespace, res: dict[str, Any]) -> str:
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    lines = [
        SECTION,
        "",
        f"`scripts/bench metadata` ({when}; {os.cpu_count()} cores shared by etcd, 3 brokers and the client; "
        f"--partitions {args.partitions} --add {args.add} --move {args.move} --total {args.total}). "
        "Replicas on three phantom brokers (registered, no process behind them), so the figures are the "
        "metadata layer's alone, not log creation.",
        "",
        "| Step | Answered (s) | Applied by a watching image (s) | Every broker's Metadata shows it (s) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {a:.3f} | {w:.3f} | {s:.3f} |" for name, a, w, s in res["steps"]]
    lines += [
        "",
        "| Cluster | Broker RSS (MiB) | Broker RSS growth since start (MiB) | Metadata response, all topics | etcd keys+values |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in res["scales"]:
        rss = " / ".join(f"{v:.0f}" for v in row["rss_mib"].values())
        growth = " / ".join(f"{v:.0f}" for v in row["rss_growth_mib"].values())
        lines.append(
            f"| {row['label']} | {rss} | {growth} | "
            f"{row['metadata_bytes'] / 1e6:.2f} MB | {row['etcd_bytes'] / 1e6:.2f} MB |"
        )
    return "\n".join(lines) + "\n"


def write_doc(text: str) -> None:
    path = REPO / "docs" / "performance.md"
    doc = path.read_text()
    if SECTION in doc:
        start = doc.index(SECTION)
        nxt = doc.find("\n## ", start + len(SECTION))
        end = len(doc) if nxt < 0 else nxt + 1
        analysis = ""
        old = doc[start:end]
        if "### Analysis" in old:  # hand-written; a re-run keeps it
            analysis = "\n" + old[old.index("### Analysis") :].rstrip("\n") + "\n"
        doc = doc[:start] + text + analysis + ("\n" if nxt >= 0 else "") + doc[end:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench metadata", description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", type=int, default=10_000, help="partitions of one topic (default 10000)")
    ap.add_argument("--add", type=int, default=2_000, help="partitions CreatePartitions adds (default 2000)")
    ap.add_argument("--move", type=int, default=5_000, help="partitions reassigned at once (default 5000)")
    ap.add_argument("--total", type=int, default=100_000, help="partitions in the cluster at the end (default 100000)")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/performance.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kafkapy-bench-metadata-") as tmp:
        res = asyncio.run(run(args, Path(tmp)))
    text = render(args, res)
    print(text)
    if not args.no_doc:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
