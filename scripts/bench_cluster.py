#!/usr/bin/env python3
"""`scripts/bench cluster`: a 3-broker kafkapy cluster on loopback (etcd + 3 `kafkapy broker` processes).

The cluster is kafkapy.local_cluster.LocalCluster, the topology of
`scripts/local-cluster` and of the cluster tests. All processes (etcd, three
Python brokers, this client) share the machine's cores.

Measured, with the load generator of `scripts/bench broker` (librdkafka via
confluent-kafka, 1 KiB records, 6 partitions, partition = i mod 6,
linger.ms=5, no compression, one fresh topic per run):
  * produce MB/s for RF=3 acks=all, RF=1 acks=1 and RF=1 acks=all, the three
    interleaved in each round; consume MB/s of the same topics (assign() from
    offset 0, no group); broker CPU seconds per MB (the 3 brokers summed);
  * sequential produce latency (acks=all, one in flight), RF=3 vs RF=1, p50/p99
    over interleaved blocks;
  * failover time: SIGKILL of a partition leader (not the controller) with an
    acks=all producer sending one record at a time, to the first record
    acknowledged after the kill (by the new leader), for each
    --session-timeouts value of broker.session.timeout.ms;
  * reassignment throughput (AlterPartitionReassignments) with and without a
    replication throttle, when the brokers serve that API; skipped otherwise.

Every process is started and stopped by its PID (Popen), also when the run
fails or is interrupted (SIGINT/SIGTERM). Results are printed and written into
docs/performance.md under "## Clusters" (--no-doc skips that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bench_broker as bb

from kafkapy.local_cluster import LocalCluster, wait_until

SECTION = "## Clusters"
ANALYSIS = "### Analysis"  # hand-written; a re-run keeps it
CONFIGS: tuple[tuple[str, int, str], ...] = (
    ("RF=3 acks=all", 3, "all"),
    ("RF=1 acks=1", 1, "1"),
    ("RF=1 acks=all", 1, "all"),
)
BASE_SETTINGS = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "1",
    "auto.leader.rebalance.enable": "false",  # leaders stay where the bench put them
}
# the Kafka cluster: interop.apache_kafka.DEFAULT_SETTINGS (internal topics RF=1, no initial rebalance delay) plus these
KAFKA_SETTINGS = {"auto.leader.rebalance.enable": "false"}
LATENCY_RF3_CONFIGS = {"min.insync.replicas": "2"}


# --------------------------------------------------------------------------- processes


@dataclass(slots=True)
class Procs:
    """Every Popen this bench started (brokers are restarted: each start is a new one)."""

    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def track(self, cluster: LocalCluster) -> None:
        if cluster.etcd is not None and cluster.etcd.proc not in self.popens:
            self.popens.append(cluster.etcd.proc)
        for b in cluster.brokers.values():
            if b.process is not None and b.process not in self.popens:
                self.popens.append(b.process)

    def kill_leftovers(self) -> list[int]:
        """SIGCONT + SIGKILL every tracked process still running (by PID; Popen guards against reuse)."""
        killed = []
        for p in self.popens:
            if p.poll() is None:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(p.pid, sig)
                    except ProcessLookupError:
                        pass
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                killed.append(p.pid)
        return killed


def start_cluster(root: Path, settings: dict[str, str], procs: Procs) -> LocalCluster:
    cluster = LocalCluster(root, 3, {**BASE_SETTINGS, **settings})
    try:
        cluster.start()
    except BaseException:
        stop_cluster(cluster, procs)  # whatever did start: etcd and the brokers before the failing one
        raise
    procs.track(cluster)
    return cluster


def stop_cluster(cluster: LocalCluster, procs: Procs) -> None:
    procs.track(cluster)
    try:
        cluster.stop()
    finally:
        left = procs.kill_leftovers()
        if left:
            print(f"[bench] killed leftover process(es) {left}", flush=True)


def _raise_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- Apache Kafka, 3 nodes


@dataclass(slots=True)
class KafkaCluster:
    """Three Apache Kafka nodes in KRaft combined mode (broker + controller each, a 3-voter quorum) on loopback.

    The jars are interop/java's (Maven Central), the JVM options those of
    kafka-server-start.sh (`scripts/bench broker`'s Kafka peer); each node's
    storage is formatted with the same cluster id before it starts.
    """

    root: Path
    heap: str
    ports: list[int] = field(default_factory=list)
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdirs: list[Path] = field(default_factory=list)
    version: str = "?"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{bb.HOST}:{p}" for p in self.ports)

    def _config(self, node: int, voters: str, controller_port: int) -> Path:
        from interop.apache_kafka import write_config

        return write_config(
            self.workdirs[node - 1],
            self.ports[node - 1],
            controller_port,
            KAFKA_SETTINGS,
            node_id=node,
            voters=voters,
            host=bb.HOST,
        )

    def start(self, procs: Procs, timeout: float = 180.0) -> float:
        """Format and start the three nodes; returns seconds until all three are in the cluster's metadata."""
        from interop.adapters.java import java_command, kafka_version
        from interop.apache_kafka import LOG4J2, STORAGE_TOOL
        from kafkapy.protocol.uuids import random_cluster_id

        self.version = kafka_version()
        self.ports = [bb.free_port() for _ in range(3)]
        controllers = [bb.free_port() for _ in range(3)]
        if len(set(self.ports + controllers)) != 6:
            raise RuntimeError("free_port gave the same port twice; run again")
        voters = ",".join(f"{i + 1}@{bb.HOST}:{c}" for i, c in enumerate(controllers))
        cluster_id = random_cluster_id()
        fmts = []
        for node in (1, 2, 3):
            workdir = self.root / f"kafka-{node}"
            workdir.mkdir(parents=True, exist_ok=True)
            self.workdirs.append(workdir)
            config = self._config(node, voters, controllers[node - 1])
            (workdir / "log4j2.properties").write_text(LOG4J2.format(log=workdir / "server.log"))
            fmt_jvm = ("-Xmx256m", f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}")
            fmts.append(
                subprocess.Popen(
                    java_command(STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(config), jvm_args=fmt_jvm),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        for f in fmts:
            fmt_out, _ = f.communicate(timeout=180)
            if f.returncode != 0:
                raise RuntimeError("kafka storage format failed:\n" + fmt_out.decode(errors="replace")[-3000:])
        t0 = time.perf_counter()
        for workdir in self.workdirs:
            jvm = (
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                *bb.KAFKA_JVM_OPTS,
                f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
            )
            with open(workdir / "stdout.log", "wb") as out:
                p = subprocess.Popen(
                    java_command("kafka.Kafka", str(workdir / "server.properties"), jvm_args=jvm),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                )
            self.popens.append(p)
            procs.popens.append(p)
        a = admin(self)
        wait_until(
            lambda: len(a.list_topics(timeout=5).brokers) == 3, timeout=timeout, interval=0.5, what="3 Kafka brokers"
        )
        return time.perf_counter() - t0

    def cpu_s(self) -> float:
        return sum(bb.proc_cpu_s(p.pid) for p in self.popens if p.poll() is None)

    def stop(self) -> None:
        """SIGTERM to every node's PID, SIGKILL after 30 s."""
        for p in self.popens:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.popens:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def log_tails(self, lines: int = 20) -> str:
        out = []
        for w in self.workdirs:
            for name in ("server.log", "stdout.log"):
                with contextlib.suppress(OSError):
                    out.append(
                        f"--- {w / name}\n" + "\n".join((w / name).read_text(errors="replace").splitlines()[-lines:])
                    )
        return "\n".join(out)


# --------------------------------------------------------------------------- topics and load


def admin(cluster: LocalCluster | KafkaCluster) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({**bb.common_conf(cluster.bootstrap), "socket.timeout.ms": 5000})


def create_topic(
    cluster: LocalCluster | KafkaCluster, topic: str, partitions: int, rf: int, configs: dict[str, str] | None = None
) -> None:
    """Create and wait until every partition has a leader and a full ISR."""
    from confluent_kafka.admin import NewTopic

    a = admin(cluster)
    a.create_topics([NewTopic(topic, partitions, rf, config=configs or {})], operation_timeout=15)[topic].result(30)

    def ready() -> bool:
        t = a.list_topics(topic, timeout=5).topics.get(topic)
        return bool(
            t
            and t.error is None
            and len(t.partitions) == partitions
            and all(p.leader >= 0 and len(p.isrs) == rf for p in t.partitions.values())
        )

    wait_until(ready, timeout=60, interval=0.05, what=f"{topic}: leaders and full ISR")


def produce_run(
    bootstrap: str, topic: str, n: int, size: int, partitions: int, time_box: float, acks: str
) -> dict[str, Any]:
    """bench_broker.produce_run (one warm-up record, then n records of `size` B, linger.ms=5,
    no compression, timed from the first produce() to the last report), with `acks`."""
    result: dict[str, Any] = bb.produce_run(bootstrap, topic, n, size, partitions, time_box, acks=acks)
    return result


def brokers_cpu(cluster: LocalCluster) -> float:
    return sum(bb.proc_cpu_s(b.pid) for b in cluster.brokers.values() if b.running)


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle, not iowait) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds of the brokers, etcd, this client (librdkafka threads included) and the rest of the machine."""

    cluster: LocalCluster
    start: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def sample(self) -> tuple[float, float, float, float, float]:
        t = os.times()
        etcd = bb.proc_cpu_s(self.cluster.etcd.pid) if self.cluster.etcd else 0.0
        return (time.perf_counter(), brokers_cpu(self.cluster), etcd, t.user + t.system, machine_busy_s())

    def begin(self) -> None:
        self.start = self.sample()

    def end(self, mb: float) -> dict[str, float]:
        now = self.sample()
        wall, brokers, etcd, client, busy = (b - a for a, b in zip(self.start, now))
        return {
            "broker_ms_per_mb": 1000 * brokers / max(mb, 1e-9),
            "client_ms_per_mb": 1000 * client / max(mb, 1e-9),
            "cores_ours": (brokers + etcd + client) / wall,
            "cores_other": max(0.0, busy - brokers - etcd - client) / wall,
        }


def throughput(cluster: LocalCluster, args: argparse.Namespace, res: dict[str, Any]) -> None:
    for rnd in range(args.repeats):
        for label, rf, acks in CONFIGS:
            topic = f"tp-{rnd}-rf{rf}-acks{acks}"
            create_topic(cluster, topic, args.partitions, rf)
            meter = CpuMeter(cluster)
            meter.begin()
            pr = produce_run(cluster.bootstrap, topic, args.messages, args.size, args.partitions, args.time_box, acks)
            pr.update(meter.end(pr["ok"] * args.size / 1e6))
            cr = bb.consume_run(cluster.bootstrap, topic, pr["ok"] + 1, args.size, args.partitions, args.time_box)
            res["produce"][label].append(pr)
            res["consume"][label].append(cr)
            print(
                f"[bench] round {rnd + 1}/{args.repeats} {label}: produce {pr['mb_s']:.1f} MB/s "
                f"({pr['ok']}/{args.messages} ok, errors {pr['errors'] or 0}; CPU ms/MB brokers {pr['broker_ms_per_mb']:.1f} "
                f"client {pr['client_ms_per_mb']:.1f}; cores busy ours {pr['cores_ours']:.2f} others {pr['cores_other']:.2f}), "
                f"consume {cr['mb_s']:.1f} MB/s ({cr['ok']} msgs)",
                flush=True,
            )


def profile(cluster: LocalCluster, args: argparse.Namespace, out_dir: Path) -> str:
    """One extra RF=3 acks=all produce run with py-spy on every broker; the summary of each."""
    exe = shutil.which("py-spy")
    if not exe:
        raise SystemExit("bench cluster: --profile needs py-spy (pip install py-spy)")
    out_dir.mkdir(parents=True, exist_ok=True)
    topic = "profile-rf3"
    create_topic(cluster, topic, args.partitions, 3)
    spies = {}
    try:
        for node_id, b in cluster.brokers.items():
            raw = out_dir / f"broker-{node_id}.pyspy.txt"
            cmd = [
                exe,
                "record",
                "--pid",
                str(b.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--native",
            ]
            spies[node_id] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw)
        time.sleep(0.5)
        pr = produce_run(cluster.bootstrap, topic, args.messages, args.size, args.partitions, args.time_box, "all")
        print(f"[bench] profiled RF=3 acks=all produce: {pr['mb_s']:.1f} MB/s", flush=True)
    finally:
        for spy, _ in spies.values():
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
        for spy, _ in spies.values():
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(10)
    text = "\n\n".join(f"broker {n}:\n" + bb.summarize_pyspy(raw, top=12) for n, (_, raw) in spies.items())
    (out_dir / "summary.txt").write_text(text)
    return text


def latency(cluster: LocalCluster, args: argparse.Namespace, res: dict[str, Any], kafka: KafkaCluster | None) -> None:
    """Sequential acks=all produce latency on RF=3 (min.insync.replicas=2) and RF=1 topics, kafkapy's cluster and,
    when given, the Kafka cluster: every producer warmed up, then the samples in interleaved blocks."""
    targets: list[tuple[str, LocalCluster | KafkaCluster]] = [("kafkapy", cluster)]
    if kafka is not None:
        targets.append(("Kafka", kafka))
    producers: dict[str, bb.LatencyProducer] = {}
    for who, c in targets:
        for rf in (3, 1):
            topic = f"lat-rf{rf}"
            create_topic(c, topic, args.partitions, rf, LATENCY_RF3_CONFIGS if rf == 3 else None)
            lp = bb.LatencyProducer(c.bootstrap, topic, args.size, args.partitions)
            for _ in range(args.latency_warmup):
                lp.one(record=False)
            producers[f"{who} RF={rf}"] = lp
    per_block = max(1, args.latency_count // args.latency_blocks)
    labels = list(producers)
    for block in range(args.latency_blocks):
        k = block % len(labels)
        for label in labels[k:] + labels[:k]:  # each block starts with a different producer
            lp = producers[label]
            for _ in range(per_block):
                lp.one()
    for label, lp in producers.items():
        lp.close()
        res["latency"][label] = {
            "p50": bb.pct(lp.samples, 50),
            "p99": bb.pct(lp.samples, 99),
            "n": len(lp.samples),
            "errors": dict(lp.errors),
        }
        r = res["latency"][label]
        print(
            f"[bench] latency {label}: p50 {r['p50'] * 1e3:.2f} ms, p99 {r['p99'] * 1e3:.2f} ms (n={r['n']})",
            flush=True,
        )


def latency_table(lat: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| sequential produce, acks=all | p50 ms | p99 ms | samples |", "|---|---:|---:|---:|"]
    for label, r in lat.items():
        lines.append(f"| {label} | {r['p50'] * 1e3:.2f} | {r['p99'] * 1e3:.2f} | {r['n']} |")
    ratios = []
    if "kafkapy RF=3" in lat and "Kafka RF=3" in lat:
        a, b = lat["kafkapy RF=3"], lat["Kafka RF=3"]
        ratios.append(f"kafkapy RF=3 / Kafka RF=3: p50 **{a['p50'] / b['p50']:.2f}x**, p99 {a['p99'] / b['p99']:.2f}x")
    if "kafkapy RF=3" in lat and "kafkapy RF=1" in lat:
        ratios.append(f"kafkapy RF=3 / RF=1 p50: {lat['kafkapy RF=3']['p50'] / lat['kafkapy RF=1']['p50']:.1f}x")
    if "Kafka RF=3" in lat and "Kafka RF=1" in lat:
        ratios.append(f"Kafka RF=3 / RF=1 p50: {lat['Kafka RF=3']['p50'] / lat['Kafka RF=1']['p50']:.1f}x")
    return lines + (["", "; ".join(ratios) + "."] if ratios else [])


# --------------------------------------------------------------------------- failover


def failover_trial(cluster: LocalCluster, procs: Procs, topic: str, partitions: int) -> dict[str, Any]:
    """SIGKILL the leader of a partition whose leader is not the controller, with an
    acks=all producer sending one record at a time to that partition; seconds from
    the kill to the first acknowledged record, then restart the broker and wait for a full ISR."""
    from confluent_kafka import Producer

    md = admin(cluster).list_topics(topic, timeout=10)
    controller = md.controller_id
    part, victim = next((i, p.leader) for i, p in sorted(md.topics[topic].partitions.items()) if p.leader != controller)
    conf = bb.common_conf(cluster.bootstrap)
    conf.update(
        {"acks": "all", "linger.ms": 0, "max.in.flight.requests.per.connection": 1, "message.timeout.ms": 120_000}
    )
    p = Producer(conf)
    done: list[Any] = []

    def send() -> Any:
        done.clear()
        p.produce(topic, b"x" * 100, partition=part, on_delivery=lambda err, msg: done.append(err))
        end = time.monotonic() + 125
        while not done and time.monotonic() < end:
            p.poll(0.001)
        return done[0] if done else "timeout"

    for _ in range(20):  # connections and metadata warm
        if send() is not None:
            raise RuntimeError("failover warm-up produce failed")
    broker = cluster.brokers[victim]
    key = f"partitions/{topic}/{part}"
    elected: list[float] = []
    stop_watch = threading.Event()

    def watch_etcd() -> None:  # when the controller's new leader is in etcd
        while not stop_watch.is_set():
            with contextlib.suppress(Exception):
                if json.loads(cluster.etcd_keys()[key])["leader"] not in (victim, -1):
                    elected.append(time.monotonic())
                    return
            time.sleep(0.02)

    os.kill(broker.pid, signal.SIGKILL)
    t_kill = time.monotonic()
    watcher = threading.Thread(target=watch_etcd, daemon=True)
    watcher.start()
    broker.kill()  # reap it
    err = send()
    t_ack = time.monotonic()
    stop_watch.set()
    watcher.join(5)
    elapsed = t_ack - t_kill
    new_leader = admin(cluster).list_topics(topic, timeout=10).topics[topic].partitions[part].leader
    p.flush(10)
    broker.start()
    procs.track(cluster)
    wait_until(
        lambda: all(
            len(x.isrs) == 3 for x in admin(cluster).list_topics(topic, timeout=5).topics[topic].partitions.values()
        ),
        timeout=90,
        interval=0.2,
        what=f"{topic}: broker {victim} back in every ISR",
    )
    return {
        "elected_s": elected[0] - t_kill if elected else float("nan"),
        "secs": elapsed,
        "error": None if err is None else str(err),
        "victim": victim,
        "new_leader": new_leader,
        "controller": controller,
    }


def failover(
    root: Path,
    args: argparse.Namespace,
    procs: Procs,
    res: dict[str, Any],
    cluster: LocalCluster | None,
    session_ms: int,
) -> None:
    own = cluster is None
    if own:
        cluster = start_cluster(root / f"failover-{session_ms}", {"broker.session.timeout.ms": str(session_ms)}, procs)
    assert cluster is not None
    try:
        topic = f"failover-{session_ms}"
        create_topic(cluster, topic, 3, 3, {"min.insync.replicas": "2"})
        trials = res["failover"].setdefault(session_ms, [])
        for t in range(args.failover_trials):
            r = failover_trial(cluster, procs, topic, 3)
            trials.append(r)
            print(
                f"[bench] failover session {session_ms} ms trial {t + 1}: {r['secs']:.2f} s (new leader in etcd after "
                f"{r['elected_s']:.2f} s) "
                f"(killed {r['victim']}, new leader {r['new_leader']}, error {r['error']})",
                flush=True,
            )
    finally:
        if own:
            stop_cluster(cluster, procs)


# --------------------------------------------------------------------------- reassignment


class ThrottleRefused(Exception):
    """The brokers refused the replication throttle configs."""


async def _reassign_supported(bootstrap: str) -> bool:
    from kafkapy.client import KafkaClient
    from kafkapy.protocol.api import ApiKey

    async with KafkaClient(bootstrap) as client:
        conn = await client.controller_connection()
        return (
            ApiKey.ALTER_PARTITION_REASSIGNMENTS in conn.versions
            and ApiKey.LIST_PARTITION_REASSIGNMENTS in conn.versions
        )


async def _reassign_once(
    bootstrap: str, topic: str, partitions: int, throttle: int | None, timeout: float
) -> tuple[float, dict[int, int]]:
    """Move every RF=1 partition to the next broker; seconds until none is ongoing, and the targets."""
    from kafkapy.cli_cluster import BROKER_THROTTLES, TOPIC_THROTTLES
    from kafkapy.client import RESOURCE_BROKER, KafkaClient, KafkaError

    async with KafkaClient(bootstrap) as client:
        meta = await client.refresh_metadata()
        parts = meta.topics[topic].partitions
        moves = {(topic, i): [parts[i].replicas[0] % 3 + 1] for i in range(partitions)}
        if throttle is not None:
            try:
                for b in (1, 2, 3):
                    await client.alter_configs(
                        str(b), {k: str(throttle) for k in BROKER_THROTTLES}, resource_type=RESOURCE_BROKER
                    )
                await client.alter_configs(topic, {k: "*" for k in TOPIC_THROTTLES})
            except KafkaError as e:
                raise ThrottleRefused(str(e)) from e
        try:
            t0 = time.monotonic()
            results = await client.alter_partition_reassignments(moves)
            bad = {k: r for k, r in results.items() if r.error_code}
            if bad:
                raise RuntimeError(f"reassignment refused: {bad}")
            while ongoing := await client.list_partition_reassignments([(topic, i) for i in range(partitions)]):
                if time.monotonic() - t0 > timeout:
                    with contextlib.suppress(Exception):  # best effort: cancel what is stuck
                        await client.alter_partition_reassignments({k: None for k in ongoing})
                    raise TimeoutError(
                        f"{len(ongoing)} of {partitions} partition moves still in progress after {timeout:g} s "
                        f"(e.g. {next(iter(ongoing.items()))}); cancelled"
                    )
                await asyncio.sleep(0.05)
            return time.monotonic() - t0, {i: moves[(topic, i)][0] for i in range(partitions)}
        finally:
            if throttle is not None:
                for b in (1, 2, 3):
                    await client.alter_configs(str(b), delete_configs=BROKER_THROTTLES, resource_type=RESOURCE_BROKER)
                await client.alter_configs(topic, delete_configs=TOPIC_THROTTLES)


def check_moved(cluster: LocalCluster, topic: str, targets: dict[int, int], payload: int) -> None:
    """After a reassignment: each partition's only replica and leader is its target, whose logs hold the payload."""
    parts = admin(cluster).list_topics(topic, timeout=10).topics[topic].partitions
    held = 0
    for i, p in parts.items():
        if p.replicas != [targets[i]] or p.leader != targets[i]:
            raise RuntimeError(
                f"{topic}-{i} after the reassignment: replicas {p.replicas}, leader {p.leader}, target {targets[i]}"
            )
        d = cluster.brokers[p.replicas[0]].data_dir / f"{topic}-{i}"
        held += sum(f.stat().st_size for f in d.glob("*.log"))
    if len(parts) != len(targets) or held < payload:
        raise RuntimeError(f"{topic}: the new replicas hold {held} B of log for {payload} B produced")


def reassignment(cluster: LocalCluster, args: argparse.Namespace, res: dict[str, Any]) -> None:
    if not asyncio.run(_reassign_supported(cluster.bootstrap)):
        res["reassign_note"] = (
            "skipped: the brokers do not serve AlterPartitionReassignments (not in their ApiVersions) at this commit"
        )
        print(f"[bench] reassignment {res['reassign_note']}", flush=True)
        return
    n = args.reassign_mb * 1_000_000 // args.size
    for throttle in (None, args.throttle):
        key = "unthrottled" if throttle is None else f"throttle {throttle / 1e6:g} MB/s"
        for rnd in range(args.repeats):
            topic = f"move-{rnd}-{'t' if throttle else 'u'}"
            create_topic(cluster, topic, args.partitions, 1)
            pr = produce_run(cluster.bootstrap, topic, n, args.size, args.partitions, args.time_box, "1")
            try:
                secs, targets = asyncio.run(
                    _reassign_once(cluster.bootstrap, topic, args.partitions, throttle, args.reassign_timeout)
                )
                check_moved(cluster, topic, targets, pr["ok"] * args.size)
            except ThrottleRefused as e:
                res["reassign_note"] = f"the throttled run was skipped: setting the throttle failed ({e})"
                print(f"[bench] reassignment: {res['reassign_note']}", flush=True)
                return
            except Exception as e:
                res["reassign_note"] = f"{key} run {rnd + 1} failed: {type(e).__name__}: {e}"
                print(f"[bench] reassignment: {res['reassign_note']}", flush=True)
                return
            mb_s = pr["ok"] * args.size / 1e6 / secs
            res["reassign"].setdefault(key, []).append(mb_s)
            print(
                f"[bench] reassignment {key} round {rnd + 1}: {pr['ok'] * args.size / 1e6:.0f} MB in {secs:.2f} s = {mb_s:.1f} MB/s",
                flush=True,
            )


# --------------------------------------------------------------------------- report


def report(args: argparse.Namespace, res: dict[str, Any], wall_s: float, command: str) -> tuple[list[str], list[str]]:
    med = bb.med
    lines = [
        "| | produce MB/s | consume MB/s | CPU ms per MB produced: 3 brokers | client | cores busy while producing: ours | others | produce runs MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    mb = {}
    for label, _, _ in CONFIGS:
        prs, crs = res["produce"][label], res["consume"][label]
        mb[label] = med([r["mb_s"] for r in prs])
        lines.append(
            f"| {label} | {mb[label]:.1f} | {med([r['mb_s'] for r in crs]):.1f} | {med([r['broker_ms_per_mb'] for r in prs]):.1f} | "
            f"{med([r['client_ms_per_mb'] for r in prs]):.1f} | {med([r['cores_ours'] for r in prs]):.2f} | "
            f"{med([r['cores_other'] for r in prs]):.2f} | " + ", ".join(f"{r['mb_s']:.1f}" for r in prs) + " |"
        )
    a, b1, ball = mb["RF=3 acks=all"], mb["RF=1 acks=1"], mb["RF=1 acks=all"]
    lines += [
        "",
        f"RF=3 acks=all / RF=1 acks=1: **{a / b1:.0%}**; RF=3 acks=all / RF=1 acks=all: **{a / ball:.0%}** (goal ≥ 60 %).",
    ]
    lat = res["latency"]
    if lat:
        lines += ["", *latency_table(lat)]
    targets = [f"- RF=3 acks=all ≥ 60 % of RF=1 acks=1: {'met' if a / b1 >= 0.6 else 'NOT met'} ({a / b1:.0%})"]
    if res["failover"]:
        lines += [
            "",
            "| broker.session.timeout.ms | failover, median s | trials s | of which: new leader written to etcd, s | goal (timeout + 1 s) |",
            "|---:|---:|---|---|---|",
        ]
        for ms, trials in res["failover"].items():
            secs = [t["secs"] for t in trials]
            m = med(secs)
            ok = m < ms / 1000 + 1
            lines.append(
                f"| {ms} | {m:.2f} | {', '.join(f'{s:.2f}' for s in secs)} | "
                + ", ".join(f"{t['elected_s']:.2f}" for t in trials)
                + f" | {'met' if ok else 'NOT met'} |"
            )
            targets.append(
                f"- failover ≤ session timeout + 1 s at {ms} ms: {'met' if ok else 'NOT met'} ({m:.2f} s median)"
            )
    if res["reassign"]:
        lines += ["", "| reassignment (6 RF=1 partitions to the next broker) | MB/s, median | runs |", "|---|---:|---|"]
        for key, vals in res["reassign"].items():
            lines.append(f"| {key} | {med(vals):.1f} | {', '.join(f'{v:.1f}' for v in vals)} |")
    if res.get("reassign_note"):
        lines += ["", f"Reassignment throughput: {res['reassign_note']}."]
    problems = []
    for label, _, _ in CONFIGS:
        for pr, cr in zip(res["produce"][label], res["consume"][label]):
            if pr["errors"] or pr["undelivered"] or pr["ok"] < args.messages or not cr["complete"]:
                problems.append(
                    f"- {label}: produced {pr['ok']}/{args.messages} (errors {pr['errors']}), consumed {cr['ok']}"
                )
    for label, r in lat.items():
        if r["errors"]:
            problems.append(f"- latency {label}: errors {r['errors']}")
    for ms, trials in res["failover"].items():
        for t in trials:
            if t["error"]:
                problems.append(f"- failover {ms} ms: first record after the kill failed: {t['error']}")
    return lines + ["", "Targets:", "", *targets], problems


def kept_analysis() -> str:
    """The hand-written "### Analysis" part of the current section, kept across re-runs."""
    if not bb.DOC.exists():
        return ""
    lines = bb.DOC.read_text().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    if start is None:
        return ""
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    sub = next((j for j in range(start + 1, end) if lines[j].rstrip() == ANALYSIS), None)
    return "" if sub is None else "\n".join(lines[sub:end]).strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="records per produce run (default 200000)")
    ap.add_argument("--size", type=int, default=1024, help="record size in bytes (default 1024)")
    ap.add_argument("--partitions", type=int, default=6, help="partitions per topic (default 6)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the three produce setups (default 3)")
    ap.add_argument("--time-box", type=float, default=60.0, help="max seconds per produce or consume run")
    ap.add_argument("--latency-count", type=int, default=1000, help="sequential produce samples per RF (default 1000)")
    ap.add_argument("--latency-blocks", type=int, default=4, help="interleaved blocks of the latency samples")
    ap.add_argument(
        "--latency-warmup", type=int, default=300, help="unrecorded produces per latency producer first (default 300)"
    )
    ap.add_argument(
        "--no-kafka", action="store_true", help="leave out the 3-node Apache Kafka cluster of the latency phase"
    )
    ap.add_argument("--kafka-heap", default="1g", help="each Kafka node's -Xmx and -Xms (default 1g)")
    ap.add_argument("--failover-trials", type=int, default=3, help="leader kills per session timeout (default 3)")
    ap.add_argument(
        "--session-timeouts",
        default="9000,3000",
        help="broker.session.timeout.ms values for failover (default 9000,3000)",
    )
    ap.add_argument("--reassign-mb", type=int, default=200, help="MB moved per reassignment run (default 200)")
    ap.add_argument(
        "--reassign-timeout", type=float, default=120.0, help="seconds a reassignment run may take (default 120)"
    )
    ap.add_argument(
        "--throttle", type=int, default=10_000_000, help="replication throttle in B/s for the throttled run"
    )
    ap.add_argument(
        "--skip", default="", help="comma list of phases to leave out: throughput,latency,failover,reassign"
    )
    ap.add_argument("--data-root", default=None, help="where etcd and broker data go (default: a new dir in $TMPDIR)")
    ap.add_argument("--keep-data", action="store_true", help="keep the data root (logs) afterwards")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/performance.md")
    ap.add_argument(
        "--profile", metavar="DIR", help="also run py-spy on every broker during one RF=3 produce run; output in DIR"
    )
    args = ap.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    sessions = [int(s) for s in args.session_timeouts.split(",") if s]
    command = "scripts/bench cluster " + " ".join(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    root = Path(tempfile.mkdtemp(prefix="kafkapy-bench-cluster-", dir=args.data_root))
    procs = Procs()
    res: dict[str, Any] = {
        "produce": {c[0]: [] for c in CONFIGS},
        "consume": {c[0]: [] for c in CONFIGS},
        "latency": {},
        "failover": {},
        "reassign": {},
    }
    t0 = time.perf_counter()
    cluster: LocalCluster | None = None
    try:
        # The first session timeout's cluster also carries the throughput, latency and reassignment phases.
        cluster = start_cluster(
            root / "main", {"broker.session.timeout.ms": str(sessions[0] if sessions else 9000)}, procs
        )
        print(f"[bench] cluster up: {cluster.bootstrap} (etcd {cluster.etcd.url if cluster.etcd else '?'})", flush=True)
        if "throughput" not in skip:
            throughput(cluster, args, res)
        if "latency" not in skip:
            kafka = None if args.no_kafka else KafkaCluster(root / "kafka", args.kafka_heap)
            try:
                if kafka is not None:
                    secs = kafka.start(procs)
                    print(f"[bench] Kafka {kafka.version} cluster up in {secs:.1f} s: {kafka.bootstrap}", flush=True)
                latency(cluster, args, res, kafka)
            except BaseException:
                if kafka is not None:
                    print("[bench] Kafka log tails:\n" + kafka.log_tails(), file=sys.stderr, flush=True)
                raise
            finally:
                if kafka is not None:
                    kafka.stop()
        if args.profile:
            print(profile(cluster, args, Path(args.profile)), flush=True)
        if "reassign" not in skip:
            reassignment(cluster, args, res)
        if "failover" not in skip and sessions:
            failover(root, args, procs, res, cluster, sessions[0])
        stop_cluster(cluster, procs)
        cluster = None
        if "failover" not in skip:
            for ms in sessions[1:]:
                failover(root, args, procs, res, None, ms)
    except BaseException:
        if cluster is not None:
            print("[bench] failed; broker log tails:\n" + cluster.log_tails(20), file=sys.stderr, flush=True)
        raise
    finally:
        if cluster is not None:
            stop_cluster(cluster, procs)
        left = procs.kill_leftovers()
        if left:
            print(f"[bench] killed leftover process(es) {left}", flush=True)
        if not args.keep_data:
            shutil.rmtree(root, ignore_errors=True)
    wall_s = time.perf_counter() - t0
    if "throughput" in skip:
        if res["latency"]:
            print("\n" + "\n".join(latency_table(res["latency"])))
        print(f"\n[bench] throughput skipped: no section written; wall time {wall_s:.0f} s")
        return 0
    table, problems = report(args, res, wall_s, command)
    print("\n" + "\n".join(table))
    if problems:
        print("\nproblems:\n" + "\n".join(problems))
    print(f"\n[bench] wall time {wall_s:.0f} s")
    if not args.no_doc:
        ver = bb.versions(None)
        when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        notes = [
            f"Measured {when} with `{command.strip()}` (`scripts/bench_cluster.py`; this run took {wall_s / 60:.1f} min).",
            "",
            (
                f"- machine: {bb.machine()}. etcd, the three Python brokers and the librdkafka client all run on these "
                "cores: the brokers of a cluster compete with each other for CPU here, which a real deployment "
                "(one broker per machine) does not"
            ),
            "- " + "; ".join(f"{k}: {v}" for k, v in ver.items()),
            "- cluster: kafkapy.local_cluster.LocalCluster (etcd + 3 `kafkapy broker` processes on 127.0.0.1, the "
            "`scripts/local-cluster` topology), settings "
            + ", ".join(f"{k}={v}" for k, v in BASE_SETTINGS.items())
            + "; every other setting at its default (min.insync.replicas=1, replica.lag.time.max.ms=30000)",
            (
                f"- load: `scripts/bench broker`'s producer: {args.messages:,} records of {args.size} B to a fresh "
                f"{args.partitions}-partition topic per run (partition = i mod {args.partitions}), linger.ms=5, no "
                "compression, timed from the first produce() to the last delivery report; then one consumer "
                f"assigning every partition from offset 0; the three setups interleaved, median of {args.repeats} rounds. "
                "Leaders of every topic are spread over the three brokers (2 partitions each)"
            ),
            (
                f"- latency: {args.latency_count} sequential produces of {args.size} B per RF, acks=all, one in flight, "
                f"after {args.latency_warmup} warm-up records, in {args.latency_blocks} interleaved blocks; RF=3 topics "
                "with min.insync.replicas=2"
                + (
                    ""
                    if args.no_kafka
                    else "; the same against a 3-node Apache Kafka cluster (KRaft, 3 combined broker+controller "
                    f"nodes, heap {args.kafka_heap} each, kafka-server-start.sh's JVM options) started for this phase"
                )
            ),
            (
                "- failover: a 3-partition RF=3 topic with min.insync.replicas=2; a producer (acks=all, one record in "
                "flight, message.timeout.ms=120000) sends to a partition whose leader is not the controller; the "
                "leader gets SIGKILL between two records; the figure is the time from the kill to the delivery "
                "report of the next record (acknowledged by the new leader). Then the broker restarts and rejoins "
                "every ISR before the next trial"
            ),
        ]
        body = [SECTION, "", *notes, "", *table]
        if problems:
            body += ["", "Problems seen in this run:", "", *problems]
        kept = kept_analysis()
        if kept:
            body += ["", kept]
        bb.SECTION = SECTION  # bench_broker.write_section replaces the section its module names
        bb.write_section("\n".join(body) + "\n")
        print(f"[bench] wrote the '{SECTION}' section of docs/performance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
