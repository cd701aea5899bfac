"""An asyncio client for etcd v3, over etcd's HTTP/JSON gateway.

etcd (3.4+) serves its gRPC API as JSON at `/v3/...` on the client port.
Keys and values travel base64-encoded, int64 fields come back as strings,
and fields equal to zero/false/empty are omitted. Unary calls share a small
pool of HTTP/1.1 keep-alive connections; each watch holds its own streaming
connection (a chunked response carrying one JSON object per line). Several
endpoints may be given: a call moves on to the next one when a connection
fails. Every call is bounded by the client's timeout.

Retry rule: a request that may already have reached etcd is sent again only
if it is idempotent (reads, lease calls); a put, delete or transaction whose
connection broke after it was sent raises `EtcdUnavailable` (outcome unknown).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from kafkapy.logging import get_logger

log = get_logger(__name__)

_CMP_RESULTS = {"=": "EQUAL", "!=": "NOT_EQUAL", ">": "GREATER", "<": "LESS"}
_MAX_POOL = 8  # keep-alive connections per client for unary calls
_WATCH_RETRY_S = 30.0  # a watch gives up after failing to reconnect this long


class EtcdError(Exception):
    """etcd refused a request or answered something this client cannot use."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code  # gRPC status code from the gateway, 0 if none


class EtcdUnavailable(EtcdError):
    """No endpoint answered (refused, reset, or timed out)."""


class EtcdCompacted(EtcdError):
    """A watch asked for a revision that etcd has compacted away."""

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


# ---------------------------------------------------------------- data


@dataclass(slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(d.get("key")),
            value=_unb64(d.get("value")),
            create_revision=int(d.get("create_revision", 0)),
            mod_revision=int(d.get("mod_revision", 0)),
            version=int(d.get("version", 0)),
            lease=int(d.get("lease", 0)),
        )


@dataclass(slots=True)
class WatchEvent:
    type: Literal["PUT", "DELETE"]
    kv: KeyValue  # for DELETE: value is b"" and mod_revision is the delete revision


@dataclass(slots=True)
class Compare:
    """One condition of a transaction; build it with the classmethods."""

    key: bytes
    target: Literal["VALUE", "MOD", "CREATE", "VERSION", "LEASE"]
    op: str
    operand: bytes | int

    @classmethod
    def value(cls, key: bytes, op: str, value: bytes) -> Compare:
        return cls._make(key, "VALUE", op, value)

    @classmethod
    def mod_revision(cls, key: bytes, op: str, revision: int) -> Compare:
        return cls._make(key, "MOD", op, revision)

    @classmethod
    def create_revision(cls, key: bytes, op: str, revision: int) -> Compare:
        """create_revision(key, "=", 0) holds when the key is absent."""
        return cls._make(key, "CREATE", op, revision)

    @classmethod
    def version(cls, key: bytes, op: str, version: int) -> Compare:
        return cls._make(key, "VERSION", op, version)

    @classmethod
    def lease(cls, key: bytes, op: str, lease: int) -> Compare:
        return cls._make(key, "LEASE", op, lease)

    @classmethod
    def _make(cls, key: bytes, target: Any, op: str, operand: bytes | int) -> Compare:
        if op not in _CMP_RESULTS:
            raise ValueError(f"compare op must be one of {', '.join(_CMP_RESULTS)}, not {op!r}")
        return cls(key, target, op, operand)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": _b64(self.key), "target": self.target, "result": _CMP_RESULTS[self.op]}
        if self.target == "VALUE":
            assert isinstance(self.operand, bytes)
            d["value"] = _b64(self.operand)
        else:
            name = {"MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version", "LEASE": "lease"}
            d[name[self.target]] = str(int(self.operand))
        return d


@dataclass(slots=True)
class Op:
    """One operation of a transaction; build it with the classmethods."""

    kind: Literal["put", "delete", "get"]
    key: bytes
    value: bytes = b""
    lease: int = 0
    prefix: bool = False

    @classmethod
    def put(cls, key: bytes, value: bytes, lease: int = 0) -> Op:
        return cls("put", key, value, lease)

    @classmethod
    def delete(cls, key: bytes, prefix: bool = False) -> Op:
        return cls("delete", key, prefix=prefix)

    @classmethod
    def get(cls, key: bytes, prefix: bool = False) -> Op:
        return cls("get", key, prefix=prefix)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "put":
            put: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
            if self.lease:
                put["lease"] = str(self.lease)
            return {"request_put": put}
        r = _range(self.key, self.prefix)
        return {"request_delete_range" if self.kind == "delete" else "request_range": r}


@dataclass(slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: list[list[KeyValue]]  # per op of the branch taken: a get's kvs, [] for put/delete


# ---------------------------------------------------------------- helpers


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix": the prefix with its
    last byte incremented (trailing 0xff bytes dropped); b"\\0" means no end."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


def _range(key: bytes, prefix: bool) -> dict[str, Any]:
    r: dict[str, Any] = {"key": _b64(key if key or not prefix else b"\0")}
    if prefix:
        r["range_end"] = _b64(prefix_range_end(key))
    return r


def parse_endpoints(endpoints: str | list[str]) -> list[tuple[str, int]]:
    """ "etcd://h1:2379,h2:2379", "h:p" or a list of either, as (host, port) pairs."""
    items = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    out: list[tuple[str, int]] = []
    for item in items:
        bare = item.removeprefix("etcd://").removeprefix("http://")
        for raw in bare.split(","):
            part = raw.strip().rstrip("/")
            if not part:
                continue
            host, sep, port = part.rpartition(":")
            if not sep or "]" in port:  # no port given
                host, port = part, "2379"
            host = host.strip("[]")
            try:
                out.append((host, int(port)))
            except ValueError:
                raise ValueError(f"bad etcd endpoint {part!r} (expected host:port)") from None
    if not out:
        raise ValueError(f"no etcd endpoint in {endpoints!r}")
    return out


class _Broken(Exception):
    """The connection failed; `sent` tells whether the request may have reached etcd."""

    def __init__(self, cause: BaseException, sent: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.sent = sent


@dataclass(slots=True, eq=False)  # hashed by identity
class _Conn:
    endpoint: tuple[str, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        self.writer.close()

    def stale(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()


@dataclass(slots=True)
class _Response:
    status: int
    headers: dict[str, str]
    keep_alive: bool


async def _open(endpoint: tuple[str, int]) -> _Conn:
    reader, writer = await asyncio.open_connection(endpoint[0], endpoint[1])
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, val in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
    return _Conn(endpoint, reader, writer)


def _request_bytes(endpoint: tuple[str, int], method: str, path: str, body: bytes) -> bytes:
    host = f"[{endpoint[0]}]" if ":" in endpoint[0] else endpoint[0]
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{endpoint[1]}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_head(reader: asyncio.StreamReader) -> _Response:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("connection closed before a response")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise EtcdError(f"not an HTTP response from etcd: {line[:100]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        h = await reader.readline()
        if not h:
            raise asyncio.IncompleteReadError(h, None)
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return _Response(status, headers, keep)


async def _body_pieces(reader: asyncio.StreamReader, resp: _Response) -> AsyncIterator[bytes]:
    """The response body as it arrives (de-chunked)."""
    if "chunked" in resp.headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)  # CRLF after the chunk
            yield data
    elif "content-length" in resp.headers:
        n = int(resp.headers["content-length"])
        if n:
            yield await reader.readexactly(n)
    else:  # body runs until the server closes
        resp.keep_alive = False
        while data := await reader.read(65536):
            yield data


class _JsonSplitter:
    """JSON objects out of a byte stream: newline-delimited, or back to back."""

    __slots__ = ("buf", "decoder")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[Any]:
        self.buf += data
        out: list[Any] = []
        while (nl := self.buf.find(b"\n")) >= 0:
            line = bytes(self.buf[:nl])
            del self.buf[: nl + 1]
            objs = self._decode_all(line)
            if objs is None:
                raise EtcdError(f"malformed JSON from etcd: {line[:200]!r}")
            out += objs
        # a complete object whose newline has not arrived yet
        objs = self._decode_all(bytes(self.buf)) if self.buf.rstrip().endswith(b"}") else None
        if objs:
            out += objs
            self.buf.clear()
        return out

    def finish(self) -> list[Any]:
        rest = bytes(self.buf)
        self.buf.clear()
        objs = self._decode_all(rest)
        if objs is None:
            raise EtcdError(f"truncated JSON from etcd: {rest[:200]!r}")
        return objs

    def _decode_all(self, raw: bytes) -> list[Any] | None:
        """Every object in raw, or None if raw is not a sequence of whole objects."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        out: list[Any] = []
        i, n = 0, len(text)
        while True:
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i == n:
                return out
            try:
                obj, i = self.decoder.raw_decode(text, i)
            except ValueError:
                return None
            out.append(obj)


def _gateway_error(obj: Any, status: int = 0) -> EtcdError:
    """An EtcdError from the gateway's error object ({"error", "message", "code"})."""
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):  # streaming form
        obj = obj["error"]
    if isinstance(obj, dict):
        msg = obj.get("message") or obj.get("error") or json.dumps(obj)
        code = int(obj.get("code", obj.get("grpc_code", 0)) or 0)
    else:
        msg, code = str(obj), 0
    cls = EtcdUnavailable if code == 14 else EtcdError  # gRPC UNAVAILABLE
    return cls(f"etcd: {msg}" + (f" (HTTP {status})" if status else ""), code)


# ---------------------------------------------------------------- client


class EtcdClient:
    """etcd v3 over the JSON gateway. Safe for any number of concurrent callers."""

    def __init__(
        self, endpoints: list[tuple[str, int]], *, timeout: float = 5.0, max_connections: int = _MAX_POOL
    ) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self._current = 0  # index of the endpoint that answered last
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._streams: set[_Conn] = set()  # open watch connections
        self._leases: set[asyncio.Task[None]] = set()  # keepalive tasks of Lease objects
        self._closed = False

    @classmethod
    async def connect(cls, endpoints: str | list[str], *, timeout: float = 5.0) -> EtcdClient:
        """A client for these endpoints, once one of them answers (else EtcdUnavailable)."""
        client = cls(parse_endpoints(endpoints), timeout=timeout)
        try:
            await client._call("/v3/maintenance/status", {}, idempotent=True)
        except BaseException:
            await client.close()
            raise
        return client

    # ------------------------------------------------------------ KV

    async def get(self, key: bytes) -> KeyValue | None:
        res = await self._call("/v3/kv/range", {"key": _b64(key)}, idempotent=True)
        kvs = res.get("kvs") or []
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under prefix, sorted by key, and the revision of that snapshot."""
        res = await self._call("/v3/kv/range", _range(prefix, True), idempotent=True)
        kvs = [KeyValue.from_json(d) for d in res.get("kvs") or []]
        kvs.sort(key=lambda kv: kv.key)
        return kvs, _revision(res)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Store value under key; returns the new revision."""
        return _revision(await self._call("/v3/kv/put", Op.put(key, value, lease).to_json()["request_put"]))

    async def delete(self, key: bytes, prefix: bool = False) -> int:
        """Delete key (or every key under it); returns how many were deleted."""
        res = await self._call("/v3/kv/deleterange", _range(key, prefix))
        return int(res.get("deleted", 0))

    async def txn(self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None) -> TxnResult:
        body = {
            "compare": [c.to_json() for c in compare],
            "success": [o.to_json() for o in success],
            "failure": [o.to_json() for o in failure or []],
        }
        res = await self._call("/v3/kv/txn", body)
        responses: list[list[KeyValue]] = []
        for r in res.get("responses") or []:
            rng = r.get("response_range")
            responses.append([KeyValue.from_json(d) for d in rng.get("kvs") or []] if rng is not None else [])
        return TxnResult(bool(res.get("succeeded", False)), _revision(res), responses)

    # ------------------------------------------------------------ leases

    async def lease_grant(self, ttl_seconds: int) -> int:
        return (await self._lease_grant(ttl_seconds))[0]

    async def _lease_grant(self, ttl_seconds: int) -> tuple[int, int]:
        """(lease id, TTL granted); etcd may raise a short TTL to its minimum."""
        res = await self._call("/v3/lease/grant", {"TTL": str(int(ttl_seconds))}, idempotent=True)
        if res.get("error"):
            raise EtcdError(f"etcd: lease grant failed: {res['error']}")
        return int(res.get("ID", 0)), int(res.get("TTL", ttl_seconds))

    async def lease_keepalive_once(self, lease_id: int, *, timeout: float | None = None) -> int:
        """Renew the lease once; returns the remaining TTL (<= 0: the lease is gone)."""
        res = await self._call("/v3/lease/keepalive", {"ID": str(lease_id)}, idempotent=True, timeout=timeout)
        return int(res.get("TTL", 0))

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke the lease, deleting its keys. A lease already gone is not an error."""
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease_id)}, idempotent=True)
        except EtcdError as e:
            if "lease not found" not in str(e):
                raise

    # ------------------------------------------------------------ watch

    async def watch_prefix(self, prefix: bytes, start_revision: int) -> AsyncGenerator[list[WatchEvent], None]:
        """Event batches under prefix from start_revision (inclusive), in revision order.

        start_revision <= 0 means from the next change on (etcd's convention).

        A dropped stream is reopened from the revision after the last one seen;
        EtcdCompacted if that revision is compacted, EtcdUnavailable if no
        endpoint accepts the watch for _WATCH_RETRY_S seconds.
        """
        next_rev = start_revision  # <= 0: from etcd's current revision on
        failing_since: float | None = None
        backoff = 0.05
        while True:
            if self._closed:
                raise EtcdError("etcd client is closed")
            try:
                stream = await self._open_watch(prefix, next_rev)
            except EtcdUnavailable as e:
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > _WATCH_RETRY_S:
                    raise
                log.info(
                    "etcd watch reconnecting", prefix=prefix.decode(errors="replace"), revision=next_rev, error=str(e)
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if failing_since is not None:
                log.info("etcd watch resumed", prefix=prefix.decode(errors="replace"), revision=next_rev)
            failing_since, backoff = None, 0.05
            try:
                if next_rev <= 0:
                    next_rev = stream.created_revision + 1
                async for batch in self._watch_batches(stream):
                    yield batch
                    next_rev = batch[-1].kv.mod_revision + 1
            except (OSError, asyncio.IncompleteReadError, EOFError, EtcdUnavailable) as e:
                # EtcdUnavailable: the gateway's in-stream error when etcd shuts down ("transport is closing")
                if not self._closed:
                    log.info("etcd watch stream dropped", revision=next_rev, error=str(e) or type(e).__name__)
            finally:
                self._streams.discard(stream.conn)
                stream.conn.close()
            if self._closed:
                raise EtcdError("etcd client is closed")
            failing_since = time.monotonic()  # the stream ended: reconnect (bounded like a failure)

    async def _open_watch(self, prefix: bytes, start: int) -> _WatchStream:
        """A watch stream that etcd has confirmed (created)."""
        body = json.dumps({"create_request": {**_range(prefix, True), "start_revision": str(start)}}).encode()
        errors: list[str] = []
        n = len(self.endpoints)
        for i in range(n):
            endpoint = self.endpoints[(self._current + i) % n]
            conn: _Conn | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    conn = await _open(endpoint)
                    conn.writer.write(_request_bytes(endpoint, "POST", "/v3/watch", body))
                    await conn.writer.drain()
                    resp = await _read_head(conn.reader)
                    if resp.status != 200:
                        raw = b"".join([p async for p in _body_pieces(conn.reader, resp)])
                        raise _gateway_error(_first_object(raw), resp.status)
                    stream = _WatchStream(conn, _body_pieces(conn.reader, resp), _JsonSplitter(), [])
                    first = _watch_result(await stream.next_object())
                    stream.created_revision = _revision(first)
                    if first.get("canceled"):
                        _raise_canceled(first, start)
                    if not first.get("created"):
                        raise EtcdError(f"etcd watch: unexpected first response {first!r}")
                    self._current = (self._current + i) % n
                    self._streams.add(conn)
                    return stream
            except (OSError, asyncio.IncompleteReadError, EOFError, TimeoutError, EtcdUnavailable) as e:
                if conn is not None:
                    conn.close()
                errors.append(f"{endpoint[0]}:{endpoint[1]}: {str(e) or type(e).__name__}")
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        raise EtcdUnavailable("no etcd endpoint accepted the watch: " + "; ".join(errors))

    @staticmethod
    async def _watch_batches(stream: _WatchStream) -> AsyncIterator[list[WatchEvent]]:
        while True:
            result = _watch_result(await stream.next_object())
            if result.get("canceled"):
                _raise_canceled(result, 0)
            events = [
                WatchEvent("DELETE" if e.get("type") == "DELETE" else "PUT", KeyValue.from_json(e.get("kv") or {}))
                for e in result.get("events") or []
            ]
            if events:  # progress notifications carry none
                yield events

    # ------------------------------------------------------------ plumbing

    async def _call(
        self, path: str, body: dict[str, Any], *, idempotent: bool = False, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST one unary request; tries the endpoints in turn on connection failure."""
        if self._closed:
            raise EtcdError("etcd client is closed")
        limit = self.timeout if timeout is None else timeout
        raw = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(limit):
                async with self._slots:
                    return await self._call_endpoints(path, raw, idempotent)
        except TimeoutError:
            raise EtcdUnavailable(f"etcd {path} timed out after {limit}s") from None

    async def _call_endpoints(self, path: str, raw: bytes, idempotent: bool) -> dict[str, Any]:
        errors: list[str] = []
        n = len(self.endpoints)
        i = 0
        while i < n:
            endpoint = self.endpoints[(self._current + i) % n]
            try:
                conn = self._take_idle(endpoint)
                if conn is None:
                    try:
                        conn = await _open(endpoint)
                    except OSError as e:
                        raise _Broken(e, sent=False) from None
                status, obj = await self._exchange(conn, endpoint, path, raw)
            except _Broken as e:
                errors.append(f"{endpoint[0]}:{endpoint[1]}: {e}")
                if e.sent and not idempotent:
                    raise EtcdUnavailable(
                        f"etcd {path}: connection to {endpoint[0]}:{endpoint[1]} broke after the request was sent (outcome unknown): {e}"
                    ) from None
                i += 1
                continue
            if status == 200:
                self._current = (self._current + i) % n
                if isinstance(obj, dict) and "result" in obj and path == "/v3/lease/keepalive":
                    obj = obj["result"]  # streaming endpoint: one {"result": ...} per message
                if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
                    raise _gateway_error(obj)
                if not isinstance(obj, dict):
                    raise EtcdError(f"etcd {path}: unexpected response {str(obj)[:200]!r}")
                return obj
            err = _gateway_error(obj, status)
            if isinstance(err, EtcdUnavailable) and idempotent:  # e.g. no leader on this member
                errors.append(f"{endpoint[0]}:{endpoint[1]}: {err}")
                i += 1
                continue
            raise err
        raise EtcdUnavailable(f"etcd {path}: no endpoint answered: " + "; ".join(errors))

    def _take_idle(self, endpoint: tuple[str, int]) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.endpoint == endpoint and not conn.stale():
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _exchange(self, conn: _Conn, endpoint: tuple[str, int], path: str, raw: bytes) -> tuple[int, Any]:
        """One request/response on conn; returns it to the pool when reusable."""
        got_bytes = False
        ok = False
        try:
            try:
                conn.writer.write(_request_bytes(endpoint, "POST", path, raw))
                await conn.writer.drain()
                resp = await _read_head(conn.reader)
                got_bytes = True
                body = b"".join([p async for p in _body_pieces(conn.reader, resp)])
            except (OSError, asyncio.IncompleteReadError) as e:
                if conn.reused and not got_bytes:
                    # etcd closed an idle keep-alive connection: treat like a fresh attempt
                    conn.reused = False
                    try:
                        fresh = await _open(endpoint)
                    except OSError as e2:
                        raise _Broken(e2, sent=False) from None
                    return await self._exchange(fresh, endpoint, path, raw)
                raise _Broken(e, sent=True) from None
            ok = resp.keep_alive
            obj = _first_object(body) if body.strip() else {}
            return resp.status, obj
        finally:
            if ok and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()

    async def close(self) -> None:
        """Close every connection, end watches and stop Lease keepalives (without revoking)."""
        self._closed = True
        for task in list(self._leases):
            task.cancel()
        for conn in self._idle + list(self._streams):
            conn.close()
        self._idle.clear()
        self._streams.clear()


@dataclass(slots=True)
class _WatchStream:
    conn: _Conn
    pieces: AsyncIterator[bytes]
    splitter: _JsonSplitter
    pending: list[Any]
    created_revision: int = 0  # etcd's revision when the watch was created

    async def next_object(self) -> Any:
        """The next JSON object of the stream; EOFError when it ends."""
        while not self.pending:
            piece = await anext(self.pieces, None)
            if piece is None:
                self.pending = self.splitter.finish()
                if not self.pending:
                    raise EOFError("watch stream ended")
            else:
                self.pending = self.splitter.feed(piece)
        return self.pending.pop(0)


def _first_object(raw: bytes) -> Any:
    """The first JSON object of a response body, else the body as text."""
    try:
        objs = _JsonSplitter().feed(raw + b"\n") if raw.strip() else []
    except EtcdError:
        objs = []
    return objs[0] if objs else raw.decode("utf-8", "replace")


def _revision(res: dict[str, Any]) -> int:
    return int((res.get("header") or {}).get("revision", 0))


def _watch_result(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict) and "error" in obj:
        # An error inside a watch stream is the gateway losing etcd ("transport is closing",
        # "the client connection is closing"): the stream is gone, so reconnect and resume.
        err = _gateway_error(obj)
        raise EtcdUnavailable(str(err), err.code)
    if not isinstance(obj, dict) or not isinstance(obj.get("result"), dict):
        raise EtcdError(f"etcd watch: unexpected message {obj!r}")
    result: dict[str, Any] = obj["result"]
    return result


def _raise_canceled(result: dict[str, Any], start: int) -> None:
    compact = int(result.get("compact_revision", 0))
    if compact:
        raise EtcdCompacted(f"etcd watch from revision {start or '?'}: compacted up to revision {compact}", compact)
    raise EtcdError(f"etcd canceled the watch: {result.get('cancel_reason') or 'no reason given'}")


# ---------------------------------------------------------------- lease


class Lease:
    """A granted lease kept alive by a background task (keepalive every ttl/3)."""

    __slots__ = ("_alive", "_on_lost", "_task", "client", "id", "ttl")

    def __init__(self, client: EtcdClient, lease_id: int, ttl: int, on_lost: Callable[[], None] | None) -> None:
        self.client = client
        self.id = lease_id
        self.ttl = ttl  # as granted by etcd
        self._on_lost = on_lost
        self._alive = True
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def grant(cls, client: EtcdClient, ttl_seconds: int, on_lost: Callable[[], None] | None = None) -> Lease:
        """Grant a lease and start keeping it alive. on_lost is called once, when a
        keepalive answers TTL <= 0 or keepalives have failed for longer than the TTL."""
        lease_id, ttl = await client._lease_grant(ttl_seconds)
        lease = cls(client, lease_id, ttl, on_lost)
        lease._task = asyncio.get_running_loop().create_task(lease._keepalive(), name=f"etcd-lease-{lease_id}")
        client._leases.add(lease._task)
        lease._task.add_done_callback(client._leases.discard)
        return lease

    @property
    def alive(self) -> bool:
        return self._alive

    async def revoke(self) -> None:
        """Stop the keepalives and revoke the lease (its keys are deleted)."""
        self._alive = False
        if self._task is not None:
            self._task.cancel()
        await self.client.lease_revoke(self.id)

    async def _keepalive(self) -> None:
        interval = max(self.ttl / 3, 0.1)
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                remaining = await self.client.lease_keepalive_once(self.id, timeout=interval)
            except EtcdError as e:
                elapsed = time.monotonic() - last_ok
                log.warning("etcd lease keepalive failed", lease=self.id, error=str(e), since_s=round(elapsed, 2))
                if elapsed > self.ttl:
                    self._lost(f"no successful keepalive for {elapsed:.1f}s (ttl {self.ttl}s)")
                    return
                continue
            if remaining <= 0:
                self._lost("etcd says the lease is gone")
                return
            last_ok = time.monotonic()

    def _lost(self, why: str) -> None:
        self._alive = False
        log.warning("etcd lease lost", lease=self.id, reason=why)
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:
                log.exception("etcd lease on_lost callback failed", lease=self.id)


__all__ = [
    "Compare",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "Lease",
    "Op",
    "TxnResult",
    "WatchEvent",
]
