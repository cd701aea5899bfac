"""etcd and three brokers, each in its own network namespace (tests/nemesis/net.py).

The same `kafkapy broker` command LocalCluster runs, prefixed with `ip netns exec`, listening on
the namespace's address. Every process is started, killed, paused and resumed by its PID (`ip netns
exec` execs the command, so the PID is the broker's or etcd's own). Nothing here connects from the
host's namespace: checks that need a socket run in the client's namespace (`in_netns`).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kafkapy.cluster.etcd_metadata import partition_states
from kafkapy.cluster.etcd_server import etcd_binary
from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.protocol.uuids import random_cluster_id
from kafkapy.testing import READY_MARKER
from tests.nemesis.net import Net, in_netns

BROKER_PORT = 9092
ETCD_PORT = 2379
ROOT_DIR = str(Path(__file__).resolve().parents[2])

# Timings as tests/cluster/test_cluster.py's FAST: a broker whose lease lapses for 3 s is dead.
SETTINGS = {
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "3",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.num.partitions": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
    "min.insync.replicas": "2",
    "default.replication.factor": "3",
}


@dataclass(slots=True)
class Proc:
    """One process in a namespace."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    _log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> int:
        """Start; returns the log offset the start wrote from."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log.write(f"--- start: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        offset = self._log.tell()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT_DIR, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.paused = False
        return offset

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGSTOP:
            self.paused = True
        elif sig == signal.SIGCONT:
            self.paused = False

    def kill(self) -> None:
        if self.process is not None:
            self.signal(signal.SIGKILL)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._reap()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def _reap(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.process = None
        self.paused = False
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass(slots=True)
class NsCluster:
    root: Path
    net: Net
    size: int = 3
    settings: dict[str, str] = field(default_factory=lambda: dict(SETTINGS))
    cluster_id: str = field(default_factory=random_cluster_id)
    etcd: Proc | None = None
    brokers: dict[int, Proc] = field(default_factory=dict)

    @staticmethod
    def nodes(size: int = 3) -> dict[str, int]:
        """The namespaces a cluster of `size` needs: b1..bN, etcd, client (name -> address byte)."""
        return {**{f"b{i}": i for i in range(1, size + 1)}, "etcd": 10, "client": 100}

    @property
    def etcd_endpoint(self) -> str:
        return f"{self.net.addr('etcd')}:{ETCD_PORT}"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.net.addr(f'b{i}')}:{BROKER_PORT}" for i in range(1, self.size + 1))

    def start(self) -> NsCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        url = f"http://{self.etcd_endpoint}"
        peer = f"http://{self.net.addr('etcd')}:2380"
        self.etcd = Proc(
            "etcd",
            self.net.exec_prefix("etcd")
            + [
                etcd_binary(),
                "--name",
                "nemesis",
                "--data-dir",
                str(self.root / "etcd"),
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"nemesis={peer}",
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "20",
                "--election-timeout",
                "200",
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
            ],
            self.root / "etcd.log",
        )
        self.start_etcd()
        for i in range(1, self.size + 1):
            addr = f"{self.net.addr(f'b{i}')}:{BROKER_PORT}"
            argv = [sys.executable, "-m", "kafkapy", "broker", "--listen", addr]
            argv += ["--data-dir", str(self.root / f"broker-{i}" / "data")]
            for k, v in self.settings.items():
                argv += ["--set", f"{k}={v}"]
            argv += ["--broker-id", str(i), "--metadata", f"etcd://{self.etcd_endpoint}"]
            argv += ["--cluster-id", self.cluster_id]
            self.brokers[i] = Proc(f"b{i}", self.net.exec_prefix(f"b{i}") + argv, self.root / f"broker-{i}.log")
        for i in self.brokers:
            self.start_broker(i)
        return self

    def start_etcd(self, timeout: float = 20.0) -> None:
        assert self.etcd is not None
        self.etcd.start()
        self._wait(lambda: self.etcd_healthy(), timeout, "etcd healthy", self.etcd)

    def etcd_healthy(self) -> bool:
        def probe() -> bool:
            try:
                with urllib.request.urlopen(f"http://{self.etcd_endpoint}/health", timeout=1.0) as r:
                    return bool(json.loads(r.read()).get("health") == "true")
            except (OSError, ValueError):
                return False

        return in_netns(self.net.ns("client"), probe)

    def start_broker(self, i: int, timeout: float = 40.0) -> None:
        proc = self.brokers[i]
        offset = proc.start()
        host = self.net.addr(f"b{i}")
        self._wait(
            lambda: (
                READY_MARKER in proc.log_since(offset)
                and in_netns(self.net.ns("client"), lambda: _can_connect(host, BROKER_PORT))
            ),
            timeout,
            f"broker {i} ready",
            proc,
        )

    @staticmethod
    def _wait(pred: Any, timeout: float, what: str, proc: Proc) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.running:
                raise RuntimeError(f"{what}: {proc.name} exited; log {proc.log_path}")
            if pred():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} not reached in {timeout}s; log {proc.log_path}")

    def stop(self) -> None:
        for b in self.brokers.values():
            b.stop()
        if self.etcd is not None:
            self.etcd.stop()

    # ---------------------------------------------------------------- what etcd says

    def etcd_keys(self) -> dict[str, str]:
        prefix = f"/kafkapy/{self.cluster_id}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps({"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()})

        def fetch() -> dict[str, Any]:
            req = urllib.request.Request(f"http://{self.etcd_endpoint}/v3/kv/range", data=body.encode(), method="POST")
            with urllib.request.urlopen(req, timeout=3) as resp:
                data: dict[str, Any] = json.loads(resp.read())
                return data

        data = in_netns(self.net.ns("client"), fetch)
        return {
            base64.b64decode(kv["key"]).decode()[len(prefix) :]: base64.b64decode(kv.get("value", "")).decode()
            for kv in data.get("kvs", [])
        }

    def partitions(self, topic: str) -> dict[int, PartitionInfo]:
        return partition_states(self.etcd_keys(), topic)

    def controller(self) -> int:
        raw = self.etcd_keys().get("controller")
        return int(json.loads(raw)["broker_id"]) if raw else -1

    def registered(self) -> set[int]:
        return {int(k.split("/")[1]) for k in self.etcd_keys() if k.startswith("brokers/")}
