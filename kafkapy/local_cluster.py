"""A kafkapy cluster as local processes on loopback: one etcd and N brokers.

What `scripts/local-cluster` runs and what the cluster tests use. Every
process is started and stopped by its PID; each broker is the same command a
user would type:

    kafkapy broker --broker-id N --metadata etcd://127.0.0.1:PORT --cluster-id ID \\
        --listen 127.0.0.1:PORT --data-dir DIR/broker-N/data
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkapy.cluster.etcd_server import EtcdServer, start_etcd
from kafkapy.protocol.uuids import random_cluster_id
from kafkapy.testing import BrokerProcess


@dataclass(slots=True)
class LocalCluster:
    root: Path
    size: int = 3
    settings: dict[str, str] = field(default_factory=dict)
    cluster_id: str = field(default_factory=random_cluster_id)
    etcd: EtcdServer | None = None
    brokers: dict[int, BrokerProcess] = field(default_factory=dict)
    # node id -> (the port clients use, that broker's own settings), for brokers with several
    # listeners (e.g. a secured inter-broker one); None: one listener on a free port
    per_broker: Callable[[int], tuple[int, dict[str, str]]] | None = None

    def start(self) -> LocalCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.etcd = start_etcd(self.root / "etcd", log_path=self.root / "etcd.log")
        for node_id in range(1, self.size + 1):
            if self.per_broker is None:
                self.add_broker(node_id)
            else:
                port, settings = self.per_broker(node_id)
                broker = self.add_broker(node_id, start=False, settings=settings)
                broker.port = port
                broker.start()
        return self

    def add_broker(
        self, node_id: int, *, start: bool = True, settings: Mapping[str, Any] | None = None
    ) -> BrokerProcess:
        assert self.etcd is not None, "start() the cluster first"
        merged = {
            **self.settings,
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (settings or {}).items()},
        }
        broker = BrokerProcess(
            data_dir=self.root / f"broker-{node_id}" / "data",
            log_path=self.root / f"broker-{node_id}" / "broker.log",
            settings=merged,
            extra_args=["--broker-id", str(node_id), "--metadata", self.etcd.url, "--cluster-id", self.cluster_id],
        )
        broker.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.brokers[node_id] = broker
        return broker.start() if start else broker

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.running)

    def running(self) -> list[int]:
        return [i for i, b in self.brokers.items() if b.running]

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the broker is alive but answers nothing (and renews no lease)."""
        os.kill(self.brokers[node_id].pid, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        os.kill(self.brokers[node_id].pid, signal.SIGCONT)

    def etcd_keys(self) -> dict[str, str]:
        """The cluster's etcd keys and values (for tests and `--dump`)."""
        import base64

        assert self.etcd is not None
        prefix = f"/kafkapy/{self.cluster_id}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps(
            {"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()}
        ).encode()
        req = urllib.request.Request(f"http://{self.etcd.endpoint}/v3/kv/range", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            data = json.loads(resp.read())
        return {
            base64.b64decode(kv["key"]).decode()[len(prefix) :]: base64.b64decode(kv.get("value", "")).decode()
            for kv in data.get("kvs", [])
        }

    def stop(self) -> None:
        for b in self.brokers.values():
            try:
                if b.running:
                    os.kill(b.pid, signal.SIGCONT)
                b.stop()
            except Exception:
                b.kill()
        if self.etcd is not None:
            self.etcd.stop()

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"--- broker {i}\n{b.log_tail(lines)}" for i, b in self.brokers.items())


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached after {timeout}s (last: {last!r})")
