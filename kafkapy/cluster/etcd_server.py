"""Start and stop a local single-member etcd process (tests, scripts, benchmarks).

The member listens on loopback only, on free ports unless a client port is
given, and logs to a file. Raft timings are shortened (20 ms heartbeat, 200 ms
election timeout): a lone member then elects itself in about 0.1 s instead
of 1 s. Restarting on the same data dir keeps the data; the peer port may
change, which a single member does not mind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kafkapy.logging import get_logger

log = get_logger(__name__)

_DEFAULT_BINARY = "/usr/bin/etcd"


@dataclass(slots=True)
class EtcdServer:
    endpoint: str  # "127.0.0.1:PORT"
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"etcd://{self.endpoint}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL."""
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("etcd ignored SIGTERM; killing it", pid=self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        log.info("etcd stopped", pid=self.proc.pid, endpoint=self.endpoint)


def etcd_binary() -> str:
    """Path of the etcd server binary."""
    if os.access(_DEFAULT_BINARY, os.X_OK):
        return _DEFAULT_BINARY
    found = shutil.which("etcd")
    if found:
        return found
    raise FileNotFoundError(
        f"etcd not found ({_DEFAULT_BINARY} nor `etcd` on PATH); install it with `apt-get install etcd-server`"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=1.0) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def start_etcd(
    data_dir: Path,
    *,
    port: int | None = None,
    name: str = "kafkapy-etcd",
    log_path: Path | None = None,
    ready_timeout: float = 15.0,
) -> EtcdServer:
    """Start etcd on 127.0.0.1 and return once /health says it is serving.

    log_path defaults to `etcd.log` next to data_dir.
    """
    binary = etcd_binary()
    data_dir = Path(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    client_port = port if port is not None else _free_port()
    peer_port = _free_port()
    while peer_port == client_port:
        peer_port = _free_port()
    endpoint = f"127.0.0.1:{client_port}"
    client_url = f"http://{endpoint}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    log_file = Path(log_path) if log_path is not None else data_dir.parent / f"{data_dir.name}.etcd.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"{name}={peer_url}",
        "--initial-cluster-state", "new",
        "--heartbeat-interval", "20",
        "--election-timeout", "200",
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]  # fmt: skip
    started = time.monotonic()
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    server = EtcdServer(endpoint, data_dir, proc)
    deadline = started + ready_timeout
    while not _healthy(endpoint):
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with status {proc.returncode} during start-up:\n{_tail(log_file)}")
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"etcd not healthy after {ready_timeout}s at {endpoint}:\n{_tail(log_file)}")
        time.sleep(0.01)
    log.info(
        "etcd started",
        endpoint=endpoint,
        pid=proc.pid,
        data_dir=str(data_dir),
        log=str(log_file),
        startup_ms=round((time.monotonic() - started) * 1000),
    )
    return server


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
