"""Real kafkapy brokers in subprocesses, for tests, benches and scripts (no pytest needed).

`BrokerProcess` runs `python -m kafkapy broker --listen 127.0.0.1:PORT --data-dir DIR`
on a free loopback port, its output appended to a log file whose tail it can
show; `BrokerFactory` starts several under one directory and stops them all.
Brokers are always stopped by PID. The pytest fixtures built on these are in
`kafkapy.pytest_plugin`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import kafkapy

READY_MARKER = "broker_ready"
_PACKAGE_ROOT = str(Path(kafkapy.__file__).resolve().parent.parent)


class BrokerStartError(RuntimeError):
    """The broker process exited or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class BrokerProcess:
    """A broker subprocess: start, stop (SIGTERM), kill (SIGKILL), restart."""

    data_dir: Path
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("broker is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "kafkapy", "broker", "--listen", self.bootstrap, "--data-dir", str(self.data_dir)]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd + list(self.extra_args)

    def start(self) -> BrokerProcess:
        """Start the process and wait until it accepts TCP and logged its ready line."""
        if self.running:
            raise RuntimeError("broker is already running")
        if self.port == 0:
            self.port = free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log_file.write(f"--- start: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        offset = self._log_file.tell()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C in pytest reaches us, not the broker
        )
        self._wait_ready(offset)
        return self

    def _wait_ready(self, offset: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        logged = accepting = False
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                self._reap()
                raise BrokerStartError(f"broker exited with status {code} during start-up\n{self.log_tail()}")
            if not logged:
                with open(self.log_path, "rb") as log:
                    log.seek(offset)
                    logged = READY_MARKER.encode() in log.read()
            if logged and not accepting:
                try:
                    with socket.create_connection((self.host, self.port), timeout=1):
                        accepting = True
                except OSError:
                    pass
            if logged and accepting:
                return
            time.sleep(0.02)
        self.kill()
        raise BrokerStartError(f"broker not ready after {self.startup_timeout}s\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        code = self.process.returncode
        self._reap()
        return code

    def kill(self) -> None:
        """SIGKILL at once (a crash, for recovery tests)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._reap()

    def restart(self, kill: bool = False) -> BrokerProcess:
        """Stop (or kill) and start again on the same port and data dir."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def _reap(self) -> None:
        self.process = None if self.process is None or self.process.poll() is not None else self.process
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class BrokerFactory:
    """Starts brokers under one tmp dir and stops them all at teardown."""

    root: Path
    brokers: list[BrokerProcess] = field(default_factory=list)

    def __call__(
        self,
        settings: Mapping[str, Any] | None = None,
        extra_args: list[str] | None = None,
        start: bool = True,
        port: int = 0,
    ) -> BrokerProcess:
        index = len(self.brokers)
        broker = BrokerProcess(
            data_dir=self.root / f"broker-{index}" / "data",
            log_path=self.root / f"broker-{index}" / "broker.log",
            port=port,
            settings={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (settings or {}).items()},
            extra_args=list(extra_args or []),
        )
        broker.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.brokers.append(broker)
        return broker.start() if start else broker

    def stop_all(self) -> None:
        for broker in self.brokers:
            try:
                broker.stop()
            except Exception:
                broker.kill()
