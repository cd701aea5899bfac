"""The broker process: builds the request handler, listens, shuts down cleanly.

The request handler comes from `handler_factory(broker)`, called once the
listeners are bound (so advertised ports are known): the CLI passes
`kafkapy.server.dispatch.build_handler`, which builds the broker's services.

SIGTERM / SIGINT: stop accepting, let in-flight requests finish (bounded by
kafkapy.shutdown.timeout.ms), run the shutdown hooks newest first, exit 0. A
second signal exits at once with status 1.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kafkapy import __version__
from kafkapy.cluster.catch_up import out_of_sync
from kafkapy.config import BrokerConfig, Listener, parse_listeners
from kafkapy.logging import get_logger
from kafkapy.protocol import record_scan
from kafkapy.server.network import (
    CloseConnection,
    ConnectionContext,
    Outgoing,
    RequestHandler,
    Server,
    listener_tls,
)
from kafkapy.server.stats import LOOP_SAMPLE_S, BrokerStats, RequestTimer

if TYPE_CHECKING:
    from kafkapy.server.http_endpoint import HttpEndpoint
    from kafkapy.server.services import BrokerServices

HandlerFactory = Callable[["Broker"], "RequestHandler | Awaitable[RequestHandler]"]
ShutdownHook = Callable[[], "Awaitable[None] | None"]

READY_EVENT = "broker_ready"  # the one line logged once the broker accepts connections


SERVED_PROTOCOLS = frozenset(
    {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
)  # a listener of any other protocol stops start-up


class StartupError(Exception):
    """The broker cannot start for a reason worth one clear log line (no traceback)."""


class Broker:
    """One broker: its config, its network server and its shutdown hooks."""

    def __init__(self, config: BrokerConfig, handler_factory: HandlerFactory) -> None:
        self.config = config
        self.log = get_logger("kafkapy.broker")
        self.server: Server | None = None
        self.advertised: list[Listener] = []  # what Metadata should report, ports resolved
        self.cluster_id = config.cluster_id or ""  # the handler factory may fill it in
        self._handler_factory = handler_factory
        self._hooks: list[ShutdownHook] = []
        self._pre_hooks: list[ShutdownHook] = []
        self._stop: asyncio.Event | None = None
        self.ready = asyncio.Event()  # set once the broker accepts connections
        self._caught_up = False  # /readyz's caught_up check, latched
        self.services: BrokerServices | None = None  # set by the handler factory
        # request and topic counters, kept only when the metrics endpoint is on
        self.stats: BrokerStats | None = BrokerStats() if config.metrics_listen else None
        self.http: HttpEndpoint | None = None

    @property
    def node_id(self) -> int:
        return self.config.effective_node_id

    def add_shutdown_hook(self, hook: ShutdownHook) -> None:
        """Run `hook` (sync or async) at shutdown, after the network has stopped; newest first."""
        self._hooks.append(hook)

    def add_pre_shutdown_hook(self, hook: ShutdownHook) -> None:
        """Run `hook` at shutdown while the network still serves (controlled shutdown)."""
        self._pre_hooks.append(hook)

    def stop(self) -> None:
        """Ask the broker to shut down (safe from signal handlers and tasks)."""
        if self._stop is not None:
            self._stop.set()

    async def start(self) -> None:
        """Build the handler and bind the listeners; raises OSError on bind failure."""
        started = time.monotonic()
        self._stop = asyncio.Event()
        for directory in self.config.data_dirs:
            Path(directory).mkdir(parents=True, exist_ok=True)
        for listener in self.config.listener_list:
            protocol = self.config.listener_security_protocol(listener.name)
            if protocol not in SERVED_PROTOCOLS:
                raise StartupError(
                    f"listener {listener.name} uses security protocol {protocol}, which this broker does not serve"
                )
        self._log_config_keys()
        if self.config.metrics_listen:
            await self._start_http()
        try:
            tls = listener_tls(self.config)  # reads keystores: a bad one refuses start-up
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        # Bind first so the handler factory sees advertised ports even for port 0; nothing is
        # accepted before start_serving, when the real handler is in place.
        try:
            self.server = Server.from_config(self.config, _closing_handler, tls)
        except ValueError as exc:  # a connection limit Kafka refuses too (max.connections.per.ip=0 alone)
            raise StartupError(str(exc)) from None
        self.server.stats = self.stats
        await self.server.start(serve=False)
        self.advertised = _resolve_advertised(self.config, self.server)
        handler = self._handler_factory(self)
        if inspect.isawaitable(handler):
            handler = await handler
        self.server.handler = handler
        # IP connection-creation quotas (KIP-612) come from the client quotas, once services exist
        self.server.connection_quotas.ip_quota = lambda ip: (
            self.services.quotas.connection_rate(ip) if self.services is not None else None
        )
        await self.server.start_serving()
        self.log.info(
            READY_EVENT,
            listen=",".join(f"{b.listener.name}://{b.host}:{b.port}" for b in self.server.bound),
            advertised=",".join(str(a) for a in self.advertised),
            data_dir=",".join(self.config.data_dirs),
            broker_id=self.node_id,
            cluster_id=self.cluster_id,
            version=__version__,
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
            record_scan="compiled" if record_scan.COMPILED else "python",
            pid=os.getpid(),
            start_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.ready.set()

    async def _start_http(self) -> None:
        """The /metrics, /healthz, /readyz endpoint, up before log recovery so /readyz can say it runs."""
        from kafkapy.server.http_endpoint import HttpEndpoint, parse_host_port
        from kafkapy.server.metrics import BrokerMetrics

        assert self.stats is not None
        host, port = parse_host_port(self.config.metrics_listen)
        metrics = BrokerMetrics(self.stats, lambda: self.services, lambda: self.server)
        endpoint = HttpEndpoint(metrics.snapshot, self.readiness, host, port)
        try:
            await endpoint.start()
        except OSError as exc:
            raise StartupError(f"kafkapy.metrics.listen {self.config.metrics_listen}: {exc}") from None
        self.http = endpoint
        self.add_shutdown_hook(endpoint.close)  # the first hook runs last
        self.add_shutdown_hook(metrics.close)
        sampler = asyncio.get_running_loop().create_task(self._sample_loop(self.stats))

        def stop_sampler() -> None:
            sampler.cancel()

        self.add_shutdown_hook(stop_sampler)

    @staticmethod
    async def _sample_loop(stats: BrokerStats) -> None:
        """The event loop thread's CPU time once a second (its idle share: NetworkProcessorAvgIdlePercent)."""
        while True:
            stats.sample_loop()
            await asyncio.sleep(LOOP_SAMPLE_S)

    def readiness(self) -> dict[str, str | None]:
        """/readyz: each check's failure reason, None where it passes."""
        services = self.services
        stopping = self._stop is not None and self._stop.is_set()
        checks: dict[str, str | None] = {
            "log_recovery": None if services is not None else "logs are being loaded and recovered",
            "metadata": None if services is not None else "metadata not loaded yet",
        }
        if self.config.metadata_connect:
            registered = services is not None and self.node_id in services.metadata.live_ids()
            checks["registered"] = None if registered else "not registered with the cluster (etcd)"
            checks["caught_up"] = self._caught_up_check(services if registered else None)
        checks["listeners"] = None if self.ready.is_set() else "listeners not serving yet"
        checks["running"] = "shutting down" if stopping else None
        return checks

    def _caught_up_check(self, services: BrokerServices | None) -> str | None:
        """Passes once every partition this broker follows (live leader) has it in the ISR; it then
        stays passed, so a later ISR shrink under load does not take the broker out of service."""
        if self._caught_up:
            return None
        if services is None:
            return "not registered yet"
        count, names = out_of_sync(services.metadata, self.node_id)
        if count == 0:
            self._caught_up = True
            return None
        return f"{count} followed partitions not in the ISR yet (e.g. {', '.join(names)})"

    def _log_config_keys(self) -> None:
        """Kafka's own KRaft keys are ignored, unknown keys listed: one line each, as Kafka does."""
        ignored = self.config.kafka_only_keys()
        if ignored:
            self.log.info("config_kafka_only_ignored", keys=",".join(ignored))
        skipped = [
            x.name for x in parse_listeners(self.config.listeners) if x.name in self.config.controller_listener_names
        ]
        if skipped:
            self.log.info(
                "controller_listener_not_bound",
                listeners=",".join(skipped),
                message="named in controller.listener.names; kafkapy has no KRaft controller and does not bind them",
            )
        unused = self.config.unused_keys()
        if unused:
            self.log.warning(
                "config_unused",
                keys=",".join(unused),
                message=f"These configurations '[{', '.join(unused)}]' were supplied but are not used yet.",
            )

    async def serve(self) -> None:
        """Start, run until stop(), then shut down."""
        await self.start()
        assert self._stop is not None
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        self.log.info("broker_stopping")
        await self._run_hooks(self._pre_hooks)
        if self.server is not None:
            await self.server.shutdown(self.config.shutdown_timeout_ms / 1000)
        await self._run_hooks(self._hooks)
        self.log.info("broker_stopped")

    async def _run_hooks(self, hooks: list[ShutdownHook]) -> None:
        """Newest first; a failing hook is logged and the rest still run."""
        for hook in reversed(hooks):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.log.exception("shutdown_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))


def _resolve_advertised(config: BrokerConfig, server: Server) -> list[Listener]:
    """Advertised listeners with port 0 replaced by the port actually bound."""
    bound = {b.listener.name: b.port for b in server.bound}
    return [
        Listener(a.name, a.host, bound.get(a.name, a.port) if a.port == 0 else a.port)
        for a in config.advertised_listener_list
    ]


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """kind: auto (uvloop when installed), uvloop, or asyncio."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def keep_heap_mapped() -> None:
    """Ask glibc to keep freed heap pages instead of returning them to the OS.

    Every large request gets a fresh buffer; with glibc's defaults each one is
    mmapped, zero-filled and unmapped again. Measured under a 200k x 1 KiB
    produce load: broker CPU 0.32 s -> 0.22 s. A no-op off glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


async def _closing_handler(
    frame: bytes | bytearray | memoryview, conn: ConnectionContext, timer: RequestTimer | None = None
) -> Outgoing | None:
    raise CloseConnection()


def run_broker(config: BrokerConfig, handler_factory: HandlerFactory) -> int:
    """Run a broker in this process until SIGTERM/SIGINT; returns the exit status."""
    keep_heap_mapped()
    broker = Broker(config, handler_factory)
    log = broker.log
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("broker_forced_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("broker_signal", signal=signal.Signals(signum).name)
        broker.stop()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await broker.start()
        except StartupError as exc:
            log.error("broker_start_failed", error=str(exc))
            await broker.shutdown()
            return 1
        except OSError as exc:
            log.error("broker_bind_failed", error=str(exc), listeners=",".join(config.listeners))
            await broker.shutdown()
            return 1
        except Exception:
            log.exception("broker_start_failed")
            await broker.shutdown()
            return 1
        assert broker._stop is not None
        await broker._stop.wait()
        await broker.shutdown()
        return 0

    with asyncio.Runner(loop_factory=lambda: new_event_loop(config.event_loop)) as runner:
        return runner.run(main())
