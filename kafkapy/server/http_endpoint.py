"""The broker's HTTP endpoint (`kafkapy.metrics.listen`): /metrics, /healthz, /readyz.

A small asyncio server on the broker's own event loop: no thread, no web
framework. Each connection reads one request (GET or HEAD, headers up to
`_MAX_HEAD` bytes), gets one answer and is closed.

- `/metrics`: a registry taken on the loop (`metrics()`, a snapshot of the
  broker's figures) and formatted on the loop or, when `metrics()` says it
  is large, in a worker thread; Prometheus text format, or OpenMetrics when
  the Accept header asks for it (prometheus_client's `choose_encoder`).
- `/healthz`: 200 `{"status": "ok"}` as long as the process answers.
- `/readyz`: 200 when every readiness check passes, else 503; the JSON body
  names each check and, for a failing one, why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from kafkapy.logging import get_logger

log = get_logger(__name__)

_MAX_HEAD = 16 * 1024
_READ_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

# name -> None when the check passes, else why not
ReadinessChecks = Callable[[], dict[str, str | None]]


def parse_host_port(value: str) -> tuple[str, int]:
    """HOST:PORT (HOST may be empty for all interfaces, or a [bracketed] IPv6 address); ValueError."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


@dataclass(slots=True)
class HttpEndpoint:
    metrics: Callable[[], tuple[CollectorRegistry, bool]]  # on the loop: (registry, format it in a thread)
    readiness: ReadinessChecks
    host: str
    port: int
    _server: asyncio.Server | None = field(default=None, repr=False)

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=_MAX_HEAD)
        log.info("metrics_listening", listen=f"{self.host}:{self.bound_port}")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            status, content_type, body, method = await self._answer(head)
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("metrics_request_failed")
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes, str]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return 400, "text/plain", b"bad request\n", "GET"
        method, target, _ = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n", method
        path = target.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(headers.get("accept", ""))
            registry, large = self.metrics()
            text = await asyncio.to_thread(encoder, registry) if large else encoder(registry)
            return 200, content_type, text, method
        if path == "/healthz":
            return 200, "application/json", b'{"status": "ok"}\n', method
        if path == "/readyz":
            checks = self.readiness()
            ready = all(why is None for why in checks.values())
            body = {
                "status": "ready" if ready else "not ready",
                "checks": {
                    name: ({"ok": True} if why is None else {"ok": False, "reason": why})
                    for name, why in checks.items()
                },
            }
            return (200 if ready else 503), "application/json", (json.dumps(body) + "\n").encode(), method
        return 404, "text/plain", b"not found: try /metrics, /healthz or /readyz\n", method
