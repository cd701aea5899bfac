"""pytest plugin: real kafkapy brokers in subprocesses.

Fixtures:
  kafka_broker          a broker for one test
  kafka_broker_session  one broker shared by the whole session
  kafka_broker_factory  start(**options) -> BrokerProcess, for restarts or several brokers
  kafka_cluster_factory start(size=3, settings=...) -> LocalCluster: etcd + brokers (kafkapy.local_cluster)

Each broker is `python -m kafkapy broker --listen 127.0.0.1:PORT --data-dir TMP`
on a free loopback port; its log goes to TMP/../broker-PORT.log and the tail is
attached to the report of a failing test. Brokers are always stopped by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

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


_FACTORIES = pytest.StashKey[list[BrokerFactory]]()


def _register(node: pytest.Item | pytest.Session, factory: BrokerFactory) -> None:
    node.stash.setdefault(_FACTORIES, []).append(factory)


@pytest.fixture
def kafka_broker_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerFactory]:
    factory = BrokerFactory(tmp_path_factory.mktemp("kafkapy"))
    _register(request.node, factory)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def kafka_broker(kafka_broker_factory: BrokerFactory) -> BrokerProcess:
    return kafka_broker_factory()


@pytest.fixture(scope="session")
def kafka_broker_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    factory = BrokerFactory(tmp_path_factory.mktemp("kafkapy-session"))
    request.config.stash.setdefault(_FACTORIES, []).append(factory)
    try:
        yield factory()
    finally:
        factory.stop_all()


@pytest.fixture
def kafka_cluster_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """start(size=3, settings=None) -> LocalCluster; every cluster is stopped at teardown."""
    from kafkapy.local_cluster import LocalCluster

    clusters: list[LocalCluster] = []

    def start(size: int = 3, settings: Mapping[str, Any] | None = None) -> LocalCluster:
        root = tmp_path_factory.mktemp("kafkapy-cluster")
        cluster = LocalCluster(
            root, size, {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (settings or {}).items()}
        )
        clusters.append(cluster)
        request.node.stash.setdefault(_CLUSTERS, []).append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()


_CLUSTERS = pytest.StashKey[list[Any]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    factories: list[BrokerFactory] = []
    stashes = [item.stash]
    if "kafka_broker_session" in getattr(item, "fixturenames", ()):
        stashes.append(item.config.stash)
    for stash in stashes:
        found: list[BrokerFactory] = stash.get(_FACTORIES, [])
        factories.extend(found)
    for factory in factories:
        for broker in factory.brokers:
            report.sections.append(
                (f"kafkapy broker {broker.bootstrap} log tail ({broker.log_path})", broker.log_tail())
            )
    for cluster in item.stash.get(_CLUSTERS, []):
        for node_id, broker in cluster.brokers.items():
            report.sections.append(
                (f"kafkapy cluster broker {node_id} log tail ({broker.log_path})", broker.log_tail())
            )
