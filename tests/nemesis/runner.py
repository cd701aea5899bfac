"""A Jepsen-style run: a cluster in namespaces, the workload, and a nemesis cutting and healing.

`run()` starts etcd and three brokers (tests/nemesis/cluster.py), creates the topics, starts the
workload in the client's namespace (and, with `java=True`, Kafka's VerifiableProducer beside it),
then, until `seconds` have passed, applies one fault at a time for `hold` seconds (2-5 s by
default, drawn at random), heals, waits `calm` seconds (2-3 s):

  leader-followers  the leader of partition 0 cut from the other brokers (it still sees etcd and the client)
  leader-alone      that leader cut from the other brokers and etcd; only the client still reaches it
  follower-leader   one follower of partition 0 cut from its leader
  broker-etcd       a broker cut from etcd (its lease lapses; it still sees everyone else)
  controller        the controller cut from every other node
  client-leader     the client cut from the leader of partition 0
  zombie-leader     the leader of partition 0 SIGSTOPped and one of its followers cut from etcd; after
                    `hold` the leader resumes (a zombie that has missed its replacement) and the
                    follower stays cut from etcd 3 s more, so it may still fetch from the zombie
  kill              SIGKILL of a broker, restarted when the fault ends
  wipe              SIGKILL of a broker and its data dir removed, restarted empty when the fault ends
                    (a lost disk; not in FAULTS, the default set: ask for it with faults=)
  wipe-last-isr     the leader of partition 0 cut from its followers until the ISR is the leader
                    alone (up to 10 s), then wiped as above (not in FAULTS either)
  pause             SIGSTOP of a broker, SIGCONT when the fault ends
  etcd-restart      SIGKILL of etcd, restarted when the fault ends

Faults are chosen by a seeded random generator, so a seed replays the same schedule (not the same
timings). At the end everything heals, the run waits (bounded) for full ISRs, reads everything
back and checks the history (tests/nemesis/checker.py).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.nemesis import checker, verifiable
from tests.nemesis.cluster import ROOT_DIR, NsCluster
from tests.nemesis.net import Net

FAULTS = (
    "leader-followers",
    "leader-alone",
    "follower-leader",
    "broker-etcd",
    "controller",
    "client-leader",
    "zombie-leader",
    "kill",
    "pause",
    "etcd-restart",
)
EXTRA_FAULTS = ("wipe", "wipe-last-isr")
TOPIC, TXN_TOPIC = "nem", "nemtx"


@dataclass(slots=True)
class Report:
    result: checker.Result
    faults: list[dict[str, Any]] = field(default_factory=list)
    java: verifiable.JavaResult | None = None
    recovered_s: float = 0.0  # from the last heal to full ISRs

    @property
    def ok(self) -> bool:
        return self.result.ok and (self.java is None or self.java.ok)

    def summary(self) -> dict[str, Any]:
        return {
            "python": self.result.summary(),
            "java": None if self.java is None else self.java.summary(),
            "faults": fault_counts(self.faults),
            "recovered_s": self.recovered_s,
            "ok": self.ok,
        }


def fault_counts(faults: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faults:
        out[f["fault"]] = out.get(f["fault"], 0) + 1
    return out


def _client(net: Net, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    cmd = net.exec_prefix("client") + [sys.executable, "-m", "tests.nemesis.workload", *args]
    return subprocess.Popen(cmd, cwd=ROOT_DIR, start_new_session=True, **kw)


def _full_isr(c: NsCluster) -> bool:
    ok = True
    for t in (TOPIC, TXN_TOPIC):
        parts = c.partitions(t)
        ok = ok and len(parts) == 3 and all(p.leader > 0 and len(p.isr) == 3 for p in parts.values())
    return ok


def run(
    root: Path,
    seconds: float = 40.0,
    seed: int = 0,
    *,
    java: bool = False,
    faults: tuple[str, ...] = FAULTS,
    rate: float = 100.0,
    hold: tuple[float, float] = (2.0, 5.0),
    calm: tuple[float, float] = (2.0, 3.0),
    log: Callable[[str], None] = print,
) -> Report:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    net = Net(NsCluster.nodes()).create()
    c = NsCluster(root, net)
    procs: list[subprocess.Popen[bytes]] = []
    history = root / "history.jsonl"
    events: list[dict[str, Any]] = []
    report: Report | None = None
    try:
        c.start()
        made = subprocess.run(
            net.exec_prefix("client")
            + [sys.executable, "-m", "tests.nemesis.workload", "create", "--bootstrap", c.bootstrap],
            cwd=ROOT_DIR,
            timeout=60,
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"creating the topics failed: {made.stdout}{made.stderr}")
        workload_log = open(root / "workload.log", "ab")  # noqa: SIM115 - closed below
        procs.append(
            _client(
                net,
                [
                    "run",
                    "--bootstrap",
                    c.bootstrap,
                    "--seconds",
                    str(seconds),
                    "--rate",
                    str(rate),
                    "--out",
                    str(history),
                ],
                stdout=workload_log,
                stderr=subprocess.STDOUT,
            )
        )
        vp = verifiable.start_producer(net, c.bootstrap, root, seconds) if java else None
        if vp is not None:
            procs.append(vp.process)
        start = time.monotonic()
        time.sleep(min(3.0, seconds / 10))
        while time.monotonic() - start < seconds - 4:
            fault = rng.choice(faults)
            held = rng.uniform(*hold)
            ev: dict[str, Any] = {"fault": fault, "t": round(time.time(), 3), "hold": round(held, 1)}
            try:
                ev.update(_apply(c, net, fault, rng))
            except Exception as e:  # a fault that could not be set up (no leader known): skip it
                ev["skipped"] = repr(e)
            log(f"nemesis: {json.dumps(ev)}")
            time.sleep(held)
            _heal(c, net, ev)
            ev["healed"] = round(time.time(), 3)
            events.append(ev)
            time.sleep(rng.uniform(*calm))
        _heal_all(c, net)
        healed = time.monotonic()
        deadline = healed + 60
        while time.monotonic() < deadline and not _safe(lambda: _full_isr(c)):
            time.sleep(0.5)
        recovered = round(time.monotonic() - healed, 1)
        log(f"nemesis: healed; full ISRs after {recovered} s")
        for p in procs:
            try:
                p.wait(max(5.0, start + seconds + 60 - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        workload_log.close()
        reader = _client(net, ["read", "--bootstrap", c.bootstrap, "--seconds", "45", "--out", str(history)])
        procs.append(reader)
        reader.wait(60)
        result = checker.check(checker.load(history))
        jres = verifiable.check(net, c.bootstrap, root, vp) if vp is not None else None
        for ev in events:  # the longest acknowledgement gap (any partition) that began while the fault was on
            end = ev.get("healed", ev["t"]) + 1
            ev["gap_s"] = max((g for s, g, _ in result.gaps if ev["t"] - 0.5 <= s <= end), default=0.0)
        report = Report(result, events, jres, recovered)
        (root / "report.json").write_text(json.dumps({**report.summary(), "events": events}, indent=1))
        return report
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
        c.stop()
        net.destroy()


def _safe(pred: Callable[[], bool]) -> bool:
    try:
        return pred()
    except Exception:
        return False


def _leader(c: NsCluster, topic: str = TOPIC, partition: int = 0) -> int:
    leader = c.partitions(topic)[partition].leader
    if leader <= 0:
        raise RuntimeError(f"{topic}/{partition} has no leader")
    return leader


def _apply(c: NsCluster, net: Net, fault: str, rng: random.Random) -> dict[str, Any]:
    brokers = [f"b{i}" for i in c.brokers]
    if fault == "leader-followers":
        leader = _leader(c)
        net.isolate(f"b{leader}", [b for b in brokers if b != f"b{leader}"])
        return {"node": leader}
    if fault == "leader-alone":
        leader = _leader(c)
        net.isolate(f"b{leader}", [b for b in brokers if b != f"b{leader}"] + ["etcd"])
        return {"node": leader}
    if fault == "follower-leader":
        p0 = c.partitions(TOPIC)[0]
        follower = rng.choice([r for r in p0.replicas if r != p0.leader])
        net.cut(f"b{follower}", f"b{_leader(c)}")
        return {"node": follower}
    if fault == "broker-etcd":
        node = rng.choice(list(c.brokers))
        net.cut(f"b{node}", "etcd")
        return {"node": node}
    if fault == "controller":
        node = c.controller()
        if node <= 0:
            raise RuntimeError("no controller")
        net.isolate(f"b{node}", [n for n in net.nodes if n != f"b{node}"])
        return {"node": node}
    if fault == "client-leader":
        leader = _leader(c)
        net.cut("client", f"b{leader}")
        return {"node": leader}
    if fault == "zombie-leader":
        p0 = c.partitions(TOPIC)[0]
        if p0.leader <= 0:
            raise RuntimeError("no leader")
        follower = rng.choice([r for r in p0.isr if r != p0.leader] or [r for r in p0.replicas if r != p0.leader])
        net.cut(f"b{follower}", "etcd")
        c.brokers[p0.leader].signal(signal.SIGSTOP)
        return {"node": p0.leader, "follower": follower}
    if fault == "wipe-last-isr":
        leader = _leader(c)
        net.isolate(f"b{leader}", [b for b in brokers if b != f"b{leader}"])
        deadline = time.monotonic() + 10
        while c.partitions(TOPIC)[0].isr != [leader] and time.monotonic() < deadline:
            time.sleep(0.2)
        c.brokers[leader].kill()
        shutil.rmtree(c.root / f"broker-{leader}" / "data")
        return {"node": leader, "isr": c.partitions(TOPIC)[0].isr}
    if fault == "wipe":
        node = rng.choice(list(c.brokers))
        c.brokers[node].kill()
        shutil.rmtree(c.root / f"broker-{node}" / "data")
        return {"node": node}
    if fault in ("kill", "pause"):
        node = rng.choice(list(c.brokers))
        if fault == "kill":
            c.brokers[node].kill()
        else:
            c.brokers[node].signal(signal.SIGSTOP)
        return {"node": node}
    if fault == "etcd-restart":
        assert c.etcd is not None
        c.etcd.kill()
        return {}
    raise ValueError(fault)


def _heal(c: NsCluster, net: Net, ev: dict[str, Any]) -> None:
    node = ev.get("node")
    if ev["fault"] == "zombie-leader" and node is not None:
        c.brokers[node].signal(signal.SIGCONT)
        time.sleep(3.0)
    net.heal()
    if ev["fault"] in ("kill", "wipe", "wipe-last-isr") and node is not None:
        c.start_broker(node)
    elif ev["fault"] == "pause" and node is not None:
        c.brokers[node].signal(signal.SIGCONT)
    elif ev["fault"] == "etcd-restart" and c.etcd is not None and not c.etcd.running:
        c.start_etcd()


def _heal_all(c: NsCluster, net: Net) -> None:
    net.heal()
    if c.etcd is not None and not c.etcd.running:
        c.start_etcd()
    for i, b in c.brokers.items():
        if b.paused:
            b.signal(signal.SIGCONT)
        if not b.running:
            c.start_broker(i)
