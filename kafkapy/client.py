"""A small asyncio Kafka client, used by the CLI and by tests.

It speaks to any Kafka-compatible broker through `kafkapy.protocol` only:
ApiVersions negotiation per connection, Metadata with leader routing (one
connection per broker), pipelined requests matched by correlation id, and the
admin, produce, list-offsets and fetch operations the CLI needs. Broker-side
errors surface as `KafkaError(code, message)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, Self
from uuid import UUID

from kafkapy import __version__
from kafkapy.protocol import legacy
from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import ProtocolError
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.alter_configs_request import (
    AlterableConfig as FullAlterableConfig,
)
from kafkapy.protocol.messages.alter_configs_request import (
    AlterConfigsRequest,
)
from kafkapy.protocol.messages.alter_configs_request import (
    AlterConfigsResource as FullAlterConfigsResource,
)
from kafkapy.protocol.messages.alter_partition_reassignments_request import (
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkapy.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkapy.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkapy.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkapy.protocol.messages.elect_leaders_request import (
    ElectLeadersRequest,
    TopicPartitions,
)
from kafkapy.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
)
from kafkapy.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkapy.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkapy.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsTopics,
)
from kafkapy.protocol.messages.metadata_request import (
    MetadataRequest,
    MetadataRequestTopic,
)
from kafkapy.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkapy.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkapy.protocol.primitives import ZERO_UUID, Message
from kafkapy.protocol.records import (
    Header,
    Record,
    build_batch,
    iter_batches,
    iter_records,
)

EARLIEST: Final = -2  # ListOffsets timestamp meaning "log start offset"
LATEST: Final = -1  # ListOffsets timestamp meaning "high watermark"

RESOURCE_TOPIC: Final = 2
RESOURCE_BROKER: Final = 4
OP_SET: Final = 0
OP_DELETE: Final = 1

CONFIG_SOURCES: Final[Mapping[int, str]] = MappingProxyType(
    {
        0: "UNKNOWN",
        1: "DYNAMIC_TOPIC_CONFIG",
        2: "DYNAMIC_BROKER_CONFIG",
        3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4: "STATIC_BROKER_CONFIG",
        5: "DEFAULT_CONFIG",
        6: "DYNAMIC_BROKER_LOGGER_CONFIG",
        7: "CLIENT_METRICS_CONFIG",
        8: "GROUP_CONFIG",
    }
)

# Versions this client knows how to fill in and read: (min, max) per API.
# Fetch >= 4 and Produce >= 3 mean record batches v2 both ways.
CLIENT_VERSIONS: Final[Mapping[int, tuple[int, int]]] = MappingProxyType(
    {
        ApiKey.PRODUCE: (3, 11),
        ApiKey.FETCH: (4, 17),
        ApiKey.LIST_OFFSETS: (1, 10),
        ApiKey.METADATA: (1, 12),
        ApiKey.API_VERSIONS: (0, 4),
        ApiKey.CREATE_TOPICS: (0, 7),
        ApiKey.DELETE_TOPICS: (0, 6),
        ApiKey.DESCRIBE_CONFIGS: (0, 4),
        ApiKey.ALTER_CONFIGS: (0, 2),
        ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1),
        ApiKey.DESCRIBE_CLUSTER: (0, 1),
        ApiKey.ELECT_LEADERS: (0, 2),
        ApiKey.ALTER_PARTITION_REASSIGNMENTS: (0, 0),
        ApiKey.LIST_PARTITION_REASSIGNMENTS: (0, 0),
        ApiKey.SASL_HANDSHAKE: (1, 1),
        ApiKey.SASL_AUTHENTICATE: (0, 2),
        # v1+: pattern types (Kafka 4 serves v1-3)
        ApiKey.DESCRIBE_ACLS: (1, 3),
        ApiKey.CREATE_ACLS: (1, 3),
        ApiKey.DELETE_ACLS: (1, 3),
        ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: (0, 0),
        ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (0, 0),
        ApiKey.DESCRIBE_CLIENT_QUOTAS: (0, 1),
        ApiKey.ALTER_CLIENT_QUOTAS: (0, 1),
    }
)

ELECTION_PREFERRED: Final = 0
ELECTION_UNCLEAN: Final = 1

# Errors after which a metadata refresh and a retry may succeed.
RETRIABLE: Final = frozenset(
    {
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.OFFSET_NOT_AVAILABLE,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.NOT_CONTROLLER,
    }
)

# A failed login: not retried on another broker, and reported as such (never as a network error).
AUTHENTICATION_ERRORS: Final = frozenset(
    {ErrorCode.SASL_AUTHENTICATION_FAILED, ErrorCode.UNSUPPORTED_SASL_MECHANISM, ErrorCode.ILLEGAL_SASL_STATE}
)

_CORRELATION: Final = struct.Struct(">i")
_SIZE: Final = struct.Struct(">i")
_MAX_FRAME: Final = 512 * 1024 * 1024


class KafkaError(Exception):
    """An error code from a broker (or a client-side failure mapped onto one)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = int(code)
        self.message = message or ""
        super().__init__(str(self))

    @property
    def name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"ERROR_{self.code}"

    @property
    def retriable(self) -> bool:
        return self.code in RETRIABLE

    @property
    def authentication(self) -> bool:
        """The broker refused the login (wrong credentials, mechanism not enabled, ...)."""
        return self.code in AUTHENTICATION_ERRORS

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


def check(code: int, message: str | None = None) -> None:
    """Raise KafkaError unless `code` is NONE."""
    if code != ErrorCode.NONE:
        raise KafkaError(code, message)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (seed 0x9747b28c) as a signed 32-bit int."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The Java client's default partition for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    """'host:port[,host:port]' -> [(host, port)]; IPv6 hosts may be bracketed."""
    out: list[tuple[str, int]] = []
    for raw in servers.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bootstrap server {item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("no bootstrap server given")
    return out


# --- metadata -------------------------------------------------------------------


@dataclass(slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(slots=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]
    error_code: int = 0


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: UUID
    is_internal: bool
    partitions: dict[int, PartitionInfo]
    error_code: int = 0


@dataclass(slots=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: dict[int, BrokerInfo]
    topics: dict[str, TopicInfo]


# --- results ----------------------------------------------------------------------


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: str
    read_only: bool = False
    is_default: bool = False
    is_sensitive: bool = False


@dataclass(slots=True)
class ClusterDescription:
    """DescribeCluster: the live brokers and the controller."""

    cluster_id: str
    controller_id: int
    brokers: dict[int, BrokerInfo]


@dataclass(slots=True)
class OngoingReassignment:
    """A partition being reassigned (KIP-455): its full replica set while moving."""

    replicas: list[int]
    adding: list[int]
    removing: list[int]


@dataclass(slots=True)
class PartitionResult:
    """Per-partition outcome of an admin request (reassignment, election)."""

    error_code: int
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.NONE

    @property
    def error_name(self) -> str:
        try:
            return ErrorCode(self.error_code).name
        except ValueError:
            return f"ERROR_{self.error_code}"


@dataclass(slots=True)
class ProduceResult:
    topic: str
    partition: int
    base_offset: int
    log_append_time: int = -1


@dataclass(slots=True)
class FetchedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)


@dataclass(slots=True)
class PartitionFetch:
    """One partition's part of a fetch: its records and watermarks."""

    topic: str
    partition: int
    records: list[FetchedRecord]
    high_watermark: int
    log_start_offset: int
    next_offset: int
    error_code: int = 0


# --- connection ---------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    api_key: int
    version: int
    future: asyncio.Future[Message]


Authenticator = Callable[["BrokerConnection"], Awaitable[None]]


@dataclass(slots=True, frozen=True)
class ConnectionSecurity:
    """How a connection is secured; the default is PLAINTEXT.

    `ssl_context` wraps the socket in TLS (SSL, SASL_SSL); `server_hostname` overrides the
    name the certificate is checked against (None: the broker's host). `authenticate` runs
    once ApiVersions is negotiated (SASL_*: SaslHandshake and SaslAuthenticate, see
    `sasl_authenticator`); it raises KafkaError when the broker refuses.
    """

    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    authenticate: Authenticator | None = None


PLAINTEXT_SECURITY: Final = ConnectionSecurity()


class SaslClientMechanism(Protocol):
    """The client side of one SASL mechanism, sans-IO (kafkapy.security provides them).

    `respond(None)` gives the initial response; `respond(challenge)` the answer to each
    server message. Once the exchange is over (the last server message verified),
    `complete` is true and nothing more is sent.
    """

    @property
    def name(self) -> str: ...

    @property
    def complete(self) -> bool: ...

    def respond(self, challenge: bytes | None) -> bytes: ...


REAUTH_FRACTION: Final = 0.85  # of the session lifetime, as Kafka's clients (85-95 %)


def sasl_authenticator(mechanism: Callable[[], SaslClientMechanism]) -> Authenticator:
    """SaslHandshake v1 then SaslAuthenticate rounds (KIP-152), with a fresh mechanism per connection."""

    async def authenticate(conn: BrokerConnection) -> None:
        mech = mechanism()
        hs: Any = await conn.request(SaslHandshakeRequest(mechanism=mech.name))
        enabled = "[" + ", ".join(hs.mechanisms) + "]"
        if hs.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:  # Kafka's clients' wording
            message = f"Client SASL mechanism '{mech.name}' not enabled in the server, enabled mechanisms are {enabled}"
        else:
            message = (
                f"Unexpected handshake request with client mechanism {mech.name}, enabled mechanisms are {enabled}"
            )
        check(hs.error_code, message)
        token = mech.respond(None)
        started = time.monotonic()
        while True:
            resp: Any = await conn.request(SaslAuthenticateRequest(auth_bytes=token))
            check(resp.error_code, resp.error_message or f"SASL {mech.name} authentication to {conn.address} failed")
            token = mech.respond(resp.auth_bytes)
            if mech.complete:
                lifetime_ms = getattr(resp, "session_lifetime_ms", 0)  # v1+; 0: the session never expires
                if lifetime_ms > 0:
                    conn.renew_at = started + REAUTH_FRACTION * lifetime_ms / 1000
                return

    return authenticate


@dataclass(slots=True)
class BrokerConnection:
    """One TCP connection; requests may be pipelined, responses match by correlation id."""

    host: str
    port: int
    client_id: str
    request_timeout: float
    security: ConnectionSecurity = PLAINTEXT_SECURITY
    versions: dict[int, int] = field(default_factory=dict)
    renew_at: float | None = None  # monotonic time to replace it: its SASL session is about to expire
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _next_id: int = 0
    _read_task: asyncio.Task[None] | None = None
    _closed_error: KafkaError | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def connect(self, timeout: float) -> None:
        sec = self.security
        tls: dict[str, Any] = {}
        if sec.ssl_context is not None:
            tls = {"ssl": sec.ssl_context, "server_hostname": sec.server_hostname or self.host}
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, **tls), timeout
            )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            raise KafkaError(
                ErrorCode.NETWORK_EXCEPTION, f"cannot connect to {self.address}: {exc or 'timed out'}"
            ) from None
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        await self._negotiate()
        if sec.authenticate is not None:
            await sec.authenticate(self)

    async def _negotiate(self) -> None:
        """ApiVersions: pick min(ours, theirs) per API; retry at v0 if our version is too new."""
        ours_max = CLIENT_VERSIONS[ApiKey.API_VERSIONS][1]
        request = ApiVersionsRequest(client_software_name="kafkapy", client_software_version=__version__)
        resp: Any = await self._send(request, ours_max)
        if resp.error_code == ErrorCode.UNSUPPORTED_VERSION:
            theirs = {k.api_key: k.max_version for k in resp.api_keys}
            version = min(ours_max, theirs.get(ApiKey.API_VERSIONS, 0))
            resp = await self._send(request, version)
        check(resp.error_code, f"ApiVersions refused by {self.address}")
        for key in resp.api_keys:
            ours = CLIENT_VERSIONS.get(key.api_key)
            if ours is None:
                continue
            low, high = max(ours[0], key.min_version), min(ours[1], key.max_version)
            if low <= high:
                self.versions[key.api_key] = high

    def version_for(self, api_key: int) -> int:
        version = self.versions.get(api_key)
        if version is None:
            raise KafkaError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"broker {self.address} supports no version of {api_spec(api_key).name} this client speaks",
            )
        return version

    async def request(self, body: Message, version: int | None = None) -> Any:
        """Send `body` at the negotiated version and await its response."""
        return await self._send(body, self.version_for(body.API_KEY) if version is None else version)

    def send_no_response(self, body: Message, version: int | None = None) -> None:
        """Fire-and-forget (Produce with acks=0, which the broker never answers)."""
        self._write(body, self.version_for(body.API_KEY) if version is None else version)

    def _write(self, body: Message, version: int) -> int:
        if self._closed_error is not None:
            raise self._closed_error
        assert self._writer is not None
        cid = self._next_id
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        self._writer.write(encode_request(body, version, cid, self.client_id))
        return cid

    async def _send(self, body: Message, version: int) -> Any:
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        cid = self._write(body, version)
        self._pending[cid] = _Pending(body.API_KEY, version, fut)
        assert self._writer is not None
        try:
            await self._writer.drain()
        except OSError as exc:
            self._fail(KafkaError(ErrorCode.NETWORK_EXCEPTION, f"{self.address}: {exc}"))
        try:
            return await asyncio.wait_for(fut, self.request_timeout)
        except TimeoutError:
            self._pending.pop(cid, None)
            raise KafkaError(
                ErrorCode.REQUEST_TIMED_OUT,
                f"no answer from {self.address} to {api_spec(body.API_KEY).name} in {self.request_timeout:g}s",
            ) from None

    async def _read_loop(self) -> None:
        assert self._reader is not None
        error = KafkaError(ErrorCode.NETWORK_EXCEPTION, f"connection to {self.address} closed")
        try:
            while True:
                (size,) = _SIZE.unpack(await self._reader.readexactly(4))
                if not 4 <= size <= _MAX_FRAME:
                    raise ProtocolError(f"response frame size {size}")
                frame = await self._reader.readexactly(size)
                (cid,) = _CORRELATION.unpack_from(frame, 0)
                pending = self._pending.pop(cid, None)
                if pending is None or pending.future.done():
                    continue  # a request that timed out
                try:
                    body = _decode(pending, frame)
                except ProtocolError as exc:
                    pending.future.set_exception(
                        KafkaError(ErrorCode.CORRUPT_MESSAGE, f"bad response from {self.address}: {exc}")
                    )
                    continue
                pending.future.set_result(body)
        except (asyncio.IncompleteReadError, OSError):
            pass
        except ProtocolError as exc:
            error = KafkaError(ErrorCode.CORRUPT_MESSAGE, f"{self.address}: {exc}")
        self._fail(error)

    def _fail(self, error: KafkaError) -> None:
        self._closed_error = error
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(error)

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def expiring(self) -> bool:
        """Its SASL session (connections.max.reauth.ms, KIP-368) nears its end: open a new connection,
        which logs in again, rather than send more on this one."""
        return self.renew_at is not None and time.monotonic() >= self.renew_at

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._fail(KafkaError(ErrorCode.NETWORK_EXCEPTION, f"connection to {self.address} closed"))


def _config_entry(c: Any, version: int) -> ConfigEntry:
    """A DescribeConfigs result entry; v0 has is_default where v1+ has a source."""
    if version >= 1:
        source = CONFIG_SOURCES.get(c.config_source, str(c.config_source))
        is_default = c.config_source == 5
    else:
        is_default = c.is_default
        source = "DEFAULT_CONFIG" if is_default else "DYNAMIC_TOPIC_CONFIG"
    return ConfigEntry(c.name, c.value, source, c.read_only, is_default, c.is_sensitive)


def _decode(pending: _Pending, frame: bytes) -> Message:
    try:
        return decode_response(pending.api_key, pending.version, frame)[1]
    except ProtocolError:
        # A broker refusing our ApiVersions version answers at v0.
        if pending.api_key != ApiKey.API_VERSIONS or pending.version == 0:
            raise
        return decode_response(pending.api_key, 0, frame)[1]


# --- client -----------------------------------------------------------------------------


@dataclass(slots=True)
class KafkaClient:
    """Bootstrap, metadata, routing and the operations. Use as `async with`."""

    bootstrap_servers: str
    client_id: str = "kafkapy-cli"
    request_timeout_ms: int = 30000
    retries: int = 8
    retry_backoff_ms: int = 100
    security: ConnectionSecurity = PLAINTEXT_SECURITY  # TLS / SASL of every connection
    metadata: ClusterMetadata | None = None
    _connections: dict[tuple[str, int], BrokerConnection] = field(default_factory=dict)
    _connecting: dict[tuple[str, int], asyncio.Task[BrokerConnection]] = field(default_factory=dict)

    async def __aenter__(self) -> Self:
        await self.bootstrap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._connecting.values():
            task.cancel()
        conns, self._connections = list(self._connections.values()), {}
        for conn in conns:
            await conn.close()

    # connections

    async def _connection(self, host: str, port: int) -> BrokerConnection:
        key = (host, port)
        conn = self._connections.get(key)
        if conn is not None and not conn.closed:
            return conn
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(host, port))
            self._connecting[key] = task
        try:
            conn = await asyncio.shield(task)
        finally:
            if task.done():
                self._connecting.pop(key, None)
        self._connections[key] = conn
        return conn

    async def _open(self, host: str, port: int) -> BrokerConnection:
        conn = BrokerConnection(host, port, self.client_id, self.request_timeout_ms / 1000, self.security)
        try:
            await conn.connect(self.request_timeout_ms / 1000)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def bootstrap(self) -> None:
        """Connect to the first reachable bootstrap server and load metadata."""
        errors: list[str] = []
        for host, port in parse_bootstrap(self.bootstrap_servers):
            try:
                await self._connection(host, port)
            except KafkaError as exc:
                if exc.authentication:
                    raise
                errors.append(exc.message)
                continue
            await self.refresh_metadata()
            return
        raise KafkaError(ErrorCode.NETWORK_EXCEPTION, "; ".join(errors))

    async def any_connection(self) -> BrokerConnection:
        for conn in self._connections.values():
            if not conn.closed:
                return conn
        addresses = [(b.host, b.port) for b in self.metadata.brokers.values()] if self.metadata is not None else []
        addresses += parse_bootstrap(self.bootstrap_servers)
        errors: list[str] = []
        for host, port in addresses:
            try:
                return await self._connection(host, port)
            except KafkaError as exc:
                if exc.authentication:  # a refused login is the answer, not an unreachable broker
                    raise
                errors.append(exc.message)
        detail = f": {'; '.join(dict.fromkeys(errors))}" if errors else ""
        raise KafkaError(ErrorCode.NETWORK_EXCEPTION, f"no broker reachable from {self.bootstrap_servers}{detail}")

    async def broker_connection(self, node_id: int) -> BrokerConnection:
        meta = self.metadata
        if meta is None or node_id not in meta.brokers:
            meta = await self.refresh_metadata()
        broker = meta.brokers.get(node_id)
        if broker is None:
            raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"broker {node_id} is not in the cluster metadata")
        return await self._connection(broker.host, broker.port)

    async def controller_connection(self) -> BrokerConnection:
        """The controller if the metadata names one we can reach, else any broker."""
        meta = self.metadata
        if meta is not None and meta.controller_id in meta.brokers:
            with contextlib.suppress(KafkaError):
                return await self.broker_connection(meta.controller_id)
        return await self.any_connection()

    # metadata

    async def refresh_metadata(self, topics: Sequence[str] | None = None) -> ClusterMetadata:
        """Load metadata for `topics` (None: every topic); merges into the cached view."""
        conn = await self.any_connection()
        version = conn.version_for(ApiKey.METADATA)
        request = MetadataRequest(
            topics=None if topics is None else [MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
        )
        if topics is None and version == 0:
            request.topics = []
        resp: Any = await conn.request(request, version)
        brokers = {b.node_id: BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in resp.brokers}
        found: dict[str, TopicInfo] = {}
        for t in resp.topics:
            parts = {
                p.partition_index: PartitionInfo(
                    p.partition_index,
                    p.leader_id,
                    p.leader_epoch,
                    list(p.replica_nodes),
                    list(p.isr_nodes),
                    list(p.offline_replicas),
                    p.error_code,
                )
                for p in t.partitions
            }
            found[t.name or ""] = TopicInfo(t.name or "", t.topic_id, t.is_internal, parts, t.error_code)
        if topics is None or self.metadata is None:
            all_topics = found
        else:
            all_topics = dict(self.metadata.topics)
            all_topics.update(found)
        self.metadata = ClusterMetadata(resp.cluster_id, resp.controller_id, brokers, all_topics)
        return self.metadata

    async def topic(self, name: str, *, refresh: bool = False) -> TopicInfo:
        """Metadata of one topic; KafkaError if the broker reports an error for it."""
        meta = self.metadata
        if refresh or meta is None or name not in meta.topics or meta.topics[name].error_code:
            meta = await self.refresh_metadata([name])
        info = meta.topics.get(name)
        if info is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} not in metadata")
        if info.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise KafkaError(info.error_code, f"topic {name!r} does not exist")
        check(info.error_code, f"topic {name!r}")
        return info

    async def list_topics(self, *, include_internal: bool = False) -> list[TopicInfo]:
        meta = await self.refresh_metadata()
        return sorted((t for t in meta.topics.values() if include_internal or not t.is_internal), key=lambda t: t.name)

    async def _retrying(self, what: str, attempt_fn: Any) -> Any:
        """Run attempt_fn(); on a retriable KafkaError refresh metadata, back off, retry."""
        delay = self.retry_backoff_ms / 1000
        for attempt in range(self.retries + 1):
            try:
                return await attempt_fn()
            except KafkaError as exc:
                if not exc.retriable or attempt == self.retries:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            with contextlib.suppress(KafkaError):
                await self.refresh_metadata()
        raise AssertionError(what)  # unreachable

    async def leader_connection(self, topic: str, partition: int) -> BrokerConnection:
        info = await self.topic(topic)
        part = info.partitions.get(partition)
        if part is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"topic {topic!r} has no partition {partition} (it has {len(info.partitions)})",
            )
        if part.leader < 0:
            raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"{topic}-{partition} has no leader")
        return await self.broker_connection(part.leader)

    # admin

    async def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        timeout_ms: int = 30000,
        validate_only: bool = False,
    ) -> None:
        conn = await self.controller_connection()
        version = conn.version_for(ApiKey.CREATE_TOPICS)
        default = -1 if version >= 4 else 1  # "broker default" exists from v4
        topic = CreatableTopic(
            name=name,
            num_partitions=default if partitions is None else partitions,
            replication_factor=default if replication_factor is None else replication_factor,
            configs=[CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()],
        )
        resp: Any = await conn.request(
            CreateTopicsRequest(topics=[topic], timeout_ms=timeout_ms, validate_only=validate_only), version
        )
        for result in resp.topics:
            check(result.error_code, result.error_message or f"cannot create topic {result.name!r}")

    async def wait_for_topic(self, name: str, timeout_ms: int = 10000, missing_ms: int = 1000) -> TopicInfo:
        """Poll metadata until every partition of `name` has a leader.

        A topic absent from metadata is waited for only `missing_ms` (it may
        have just been created); leaderless partitions up to `timeout_ms`.
        """
        start = time.monotonic()
        deadline = start + timeout_ms / 1000
        while True:
            try:
                info = await self.topic(name, refresh=True)
                if info.partitions and all(p.leader >= 0 for p in info.partitions.values()):
                    return info
            except KafkaError as exc:
                missing = exc.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                if (
                    not exc.retriable
                    or time.monotonic() > deadline
                    or (missing and time.monotonic() - start > missing_ms / 1000)
                ):
                    raise
            if time.monotonic() > deadline:
                raise KafkaError(ErrorCode.LEADER_NOT_AVAILABLE, f"topic {name!r} has partitions without a leader")
            await asyncio.sleep(0.05)

    async def delete_topics(self, names: Sequence[str], *, timeout_ms: int = 30000) -> None:
        conn = await self.controller_connection()
        version = conn.version_for(ApiKey.DELETE_TOPICS)
        request = DeleteTopicsRequest(timeout_ms=timeout_ms)
        if version >= 6:
            request.topics = [DeleteTopicState(name=n) for n in names]
        else:
            request.topic_names = list(names)
        resp: Any = await conn.request(request, version)
        errors = [r for r in resp.responses if r.error_code]
        if errors:
            first = errors[0]
            message = first.error_message or f"cannot delete topic {first.name!r}"
            if first.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and not first.error_message:
                message = f"topic {first.name!r} does not exist"
            raise KafkaError(first.error_code, message)
        if self.metadata is not None:
            for n in names:
                self.metadata.topics.pop(n, None)

    async def describe_configs(
        self, resource_name: str, resource_type: int = RESOURCE_TOPIC, keys: Sequence[str] | None = None
    ) -> list[ConfigEntry]:
        conn = await self.controller_connection()
        if resource_type == RESOURCE_BROKER:
            conn = await self.broker_connection(int(resource_name))
        version = conn.version_for(ApiKey.DESCRIBE_CONFIGS)
        resp: Any = await conn.request(
            DescribeConfigsRequest(
                resources=[
                    DescribeConfigsResource(
                        resource_type=resource_type,
                        resource_name=resource_name,
                        configuration_keys=None if keys is None else list(keys),
                    )
                ]
            ),
            version,
        )
        out: list[ConfigEntry] = []
        for result in resp.results:
            check(result.error_code, result.error_message or f"cannot describe {resource_name!r}")
            out.extend(_config_entry(c, version) for c in result.configs)
        return sorted(out, key=lambda e: e.name)

    async def alter_configs(
        self,
        resource_name: str,
        set_configs: Mapping[str, str] | None = None,
        delete_configs: Iterable[str] = (),
        resource_type: int = RESOURCE_TOPIC,
        *,
        validate_only: bool = False,
    ) -> None:
        """Set and delete config keys of a resource, keeping the others.

        Uses IncrementalAlterConfigs; with brokers that lack it, falls back to
        describe + AlterConfigs of the merged dynamic set.
        """
        set_configs = dict(set_configs or {})
        deletes = list(delete_configs)
        conn = await self.controller_connection()
        if resource_type == RESOURCE_BROKER:
            conn = await self.broker_connection(int(resource_name))
        if ApiKey.INCREMENTAL_ALTER_CONFIGS in conn.versions:
            ops = [AlterableConfig(name=k, config_operation=OP_SET, value=v) for k, v in set_configs.items()]
            ops += [AlterableConfig(name=k, config_operation=OP_DELETE, value=None) for k in deletes]
            resp: Any = await conn.request(
                IncrementalAlterConfigsRequest(
                    resources=[
                        AlterConfigsResource(resource_type=resource_type, resource_name=resource_name, configs=ops)
                    ],
                    validate_only=validate_only,
                )
            )
        else:
            current = await self.describe_configs(resource_name, resource_type)
            merged = {
                e.name: e.value
                for e in current
                if e.source in ("DYNAMIC_TOPIC_CONFIG", "DYNAMIC_BROKER_CONFIG") and not e.is_default
            }
            merged.update(set_configs)
            for k in deletes:
                merged.pop(k, None)
            resp = await conn.request(
                AlterConfigsRequest(
                    resources=[
                        FullAlterConfigsResource(
                            resource_type=resource_type,
                            resource_name=resource_name,
                            configs=[FullAlterableConfig(name=k, value=v) for k, v in merged.items()],
                        )
                    ],
                    validate_only=validate_only,
                )
            )
        for r in resp.responses:
            check(r.error_code, r.error_message or f"cannot alter configs of {resource_name!r}")

    async def describe_configs_many(
        self, resources: Sequence[tuple[int, str]], keys: Sequence[str] | None = None
    ) -> dict[tuple[int, str], list[ConfigEntry] | KafkaError]:
        """DescribeConfigs of several resources in one request (to the controller).

        Each resource maps to its entries or to the KafkaError the broker gave for it.
        """
        out: dict[tuple[int, str], list[ConfigEntry] | KafkaError] = {}
        if not resources:
            return out
        conn = await self.controller_connection()
        version = conn.version_for(ApiKey.DESCRIBE_CONFIGS)
        resp: Any = await conn.request(
            DescribeConfigsRequest(
                resources=[
                    DescribeConfigsResource(
                        resource_type=t, resource_name=n, configuration_keys=None if keys is None else list(keys)
                    )
                    for t, n in resources
                ]
            ),
            version,
        )
        for result in resp.results:
            key = (result.resource_type, result.resource_name)
            if result.error_code:
                out[key] = KafkaError(
                    result.error_code, result.error_message or f"cannot describe {result.resource_name!r}"
                )
                continue
            out[key] = sorted((_config_entry(c, version) for c in result.configs), key=lambda e: e.name)
        return out

    async def describe_cluster(self) -> ClusterDescription:
        """DescribeCluster (KIP-700); falls back to Metadata with brokers that lack it."""
        conn = await self.any_connection()
        if ApiKey.DESCRIBE_CLUSTER not in conn.versions:
            meta = await self.refresh_metadata()
            return ClusterDescription(meta.cluster_id or "", meta.controller_id, dict(meta.brokers))
        resp: Any = await conn.request(DescribeClusterRequest())
        check(resp.error_code, resp.error_message or "DescribeCluster refused")
        brokers = {b.broker_id: BrokerInfo(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers}
        return ClusterDescription(resp.cluster_id, resp.controller_id, brokers)

    async def _admin_connection(self, api_key: int) -> BrokerConnection:
        """The controller's connection, or UNSUPPORTED_VERSION naming the API if it lacks it."""
        conn = await self.controller_connection()
        if api_key not in conn.versions:
            raise KafkaError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"broker {conn.address} does not support {api_spec(api_key).name} (not in its ApiVersions)",
            )
        return conn

    async def alter_partition_reassignments(
        self, moves: Mapping[tuple[str, int], Sequence[int] | None], *, timeout_ms: int = 60000
    ) -> dict[tuple[str, int], PartitionResult]:
        """AlterPartitionReassignments: target replicas per partition (None cancels a reassignment).

        A top-level error raises KafkaError; per-partition outcomes are returned.
        """
        conn = await self._admin_connection(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
        by_topic: dict[str, list[ReassignablePartition]] = {}
        for (name, partition), replicas in moves.items():
            by_topic.setdefault(name, []).append(
                ReassignablePartition(partition_index=partition, replicas=None if replicas is None else list(replicas))
            )
        resp: Any = await conn.request(
            AlterPartitionReassignmentsRequest(
                timeout_ms=timeout_ms,
                topics=[ReassignableTopic(name=n, partitions=ps) for n, ps in by_topic.items()],
            )
        )
        check(resp.error_code, resp.error_message or "AlterPartitionReassignments refused")
        out: dict[tuple[str, int], PartitionResult] = {}
        for t in resp.responses:
            for p in t.partitions:
                out[(t.name, p.partition_index)] = PartitionResult(p.error_code, p.error_message)
        return out

    async def list_partition_reassignments(
        self, partitions: Iterable[tuple[str, int]] | None = None, *, timeout_ms: int = 60000
    ) -> dict[tuple[str, int], OngoingReassignment]:
        """ListPartitionReassignments: the ongoing ones (of `partitions`, or all)."""
        conn = await self._admin_connection(ApiKey.LIST_PARTITION_REASSIGNMENTS)
        topics: list[ListPartitionReassignmentsTopics] | None = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for name, partition in partitions:
                by_topic.setdefault(name, []).append(partition)
            topics = [ListPartitionReassignmentsTopics(name=n, partition_indexes=ps) for n, ps in by_topic.items()]
        resp: Any = await conn.request(ListPartitionReassignmentsRequest(timeout_ms=timeout_ms, topics=topics))
        check(resp.error_code, resp.error_message or "ListPartitionReassignments refused")
        out: dict[tuple[str, int], OngoingReassignment] = {}
        for t in resp.topics:
            for p in t.partitions:
                out[(t.name, p.partition_index)] = OngoingReassignment(
                    list(p.replicas), list(p.adding_replicas), list(p.removing_replicas)
                )
        return out

    async def elect_leaders(
        self,
        partitions: Iterable[tuple[str, int]] | None = None,
        *,
        election_type: int = ELECTION_PREFERRED,
        timeout_ms: int = 60000,
    ) -> dict[tuple[str, int], PartitionResult]:
        """ElectLeaders (KIP-460) for `partitions` (None: every partition); per-partition outcomes."""
        conn = await self._admin_connection(ApiKey.ELECT_LEADERS)
        version = conn.version_for(ApiKey.ELECT_LEADERS)
        if version == 0 and election_type != ELECTION_PREFERRED:
            raise KafkaError(
                ErrorCode.UNSUPPORTED_VERSION, f"broker {conn.address} supports only preferred leader elections"
            )
        topic_partitions: list[TopicPartitions] | None = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for name, partition in partitions:
                by_topic.setdefault(name, []).append(partition)
            topic_partitions = [TopicPartitions(topic=n, partitions=ps) for n, ps in by_topic.items()]
        resp: Any = await conn.request(
            ElectLeadersRequest(election_type=election_type, topic_partitions=topic_partitions, timeout_ms=timeout_ms),
            version,
        )
        check(resp.error_code, "ElectLeaders refused")
        out: dict[tuple[str, int], PartitionResult] = {}
        for r in resp.replica_election_results:
            for p in r.partition_result:
                out[(r.topic, p.partition_id)] = PartitionResult(p.error_code, p.error_message)
        return out

    # produce

    async def produce(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes | None, bytes | None, Sequence[Header], int | None]],
        *,
        acks: int = -1,
        compression: int = 0,
        timeout_ms: int = 30000,
    ) -> ProduceResult:
        """Send one batch to the partition leader; with acks=0 the offset is -1."""
        batch = build_batch(records, compression=compression)

        async def attempt() -> ProduceResult:
            conn = await self.leader_connection(topic, partition)
            request = ProduceRequest(
                acks=acks,
                timeout_ms=timeout_ms,
                topic_data=[
                    TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=batch)])
                ],
            )
            if acks == 0:
                conn.send_no_response(request)
                return ProduceResult(topic, partition, -1)
            resp: Any = await conn.request(request)
            for t in resp.responses:
                for p in t.partition_responses:
                    if p.error_code:
                        detail = p.error_message or "; ".join(
                            e.batch_index_error_message or "" for e in p.record_errors
                        )
                        raise KafkaError(p.error_code, detail or f"produce to {topic}-{partition} failed")
                    return ProduceResult(topic, partition, p.base_offset, p.log_append_time_ms)
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"no produce result for {topic}-{partition}")

        result: ProduceResult = await self._retrying("produce", attempt)
        return result

    # offsets

    async def list_offsets(self, topic: str, timestamps: Mapping[int, int]) -> dict[int, int]:
        """{partition: offset} for {partition: timestamp} (EARLIEST, LATEST or ms).

        An offset of -1 means no record has a timestamp at or after the one asked.
        """

        async def attempt() -> dict[int, int]:
            info = await self.topic(topic)
            by_leader: dict[int, list[int]] = {}
            for p in timestamps:
                part = info.partitions.get(p)
                if part is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic!r} has no partition {p}")
                by_leader.setdefault(part.leader, []).append(p)
            out: dict[int, int] = {}
            for leader, parts in by_leader.items():
                conn = await self.broker_connection(leader)
                resp: Any = await conn.request(
                    ListOffsetsRequest(
                        replica_id=-1,
                        topics=[
                            ListOffsetsTopic(
                                name=topic,
                                partitions=[
                                    ListOffsetsPartition(partition_index=p, timestamp=timestamps[p]) for p in parts
                                ],
                            )
                        ],
                        timeout_ms=self.request_timeout_ms,
                    )
                )
                for t in resp.topics:
                    for r in t.partitions:
                        check(r.error_code, f"list offsets of {topic}-{r.partition_index}")
                        out[r.partition_index] = r.offset
            return out

        result: dict[int, int] = await self._retrying("list_offsets", attempt)
        return result

    async def watermarks(self, topic: str, partitions: Sequence[int] | None = None) -> dict[int, tuple[int, int]]:
        """{partition: (low, high)} watermarks."""
        if partitions is None:
            partitions = sorted((await self.topic(topic)).partitions)
        low = await self.list_offsets(topic, {p: EARLIEST for p in partitions})
        high = await self.list_offsets(topic, {p: LATEST for p in partitions})
        return {p: (low[p], high[p]) for p in partitions}

    # fetch

    async def fetch(
        self,
        topic: str,
        offsets: Mapping[int, int],
        *,
        max_wait_ms: int = 500,
        min_bytes: int = 1,
        max_bytes: int = 50 * 1024 * 1024,
        partition_max_bytes: int = 1024 * 1024,
    ) -> dict[int, PartitionFetch]:
        """Long-poll fetch of {partition: offset}, one request per leader in parallel.

        Partitions answered with an error carry it in `error_code` (records empty).
        """
        info = await self.topic(topic)
        by_leader: dict[int, list[int]] = {}
        for p in offsets:
            part = info.partitions.get(p)
            if part is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic!r} has no partition {p}")
            by_leader.setdefault(part.leader, []).append(p)

        async def one(leader: int, parts: list[int]) -> dict[int, PartitionFetch]:
            if leader < 0:
                return {
                    p: PartitionFetch(topic, p, [], -1, -1, offsets[p], ErrorCode.LEADER_NOT_AVAILABLE) for p in parts
                }
            conn = await self.broker_connection(leader)
            version = conn.version_for(ApiKey.FETCH)
            request = FetchRequest(
                replica_id=-1,
                max_wait_ms=max_wait_ms,
                min_bytes=min_bytes,
                max_bytes=max_bytes,
                topics=[
                    FetchTopic(
                        topic=topic,
                        topic_id=info.topic_id,
                        partitions=[
                            FetchPartition(
                                partition=p, fetch_offset=offsets[p], partition_max_bytes=partition_max_bytes
                            )
                            for p in parts
                        ],
                    )
                ],
            )
            if version >= 13 and info.topic_id == ZERO_UUID:
                version = 12  # topic ids unknown: fall back to names
            resp: Any = await conn.request(request, version)
            check(resp.error_code, f"fetch from broker {leader}")
            out: dict[int, PartitionFetch] = {}
            for t in resp.responses:
                for pd in t.partitions:
                    start = offsets.get(pd.partition_index, 0)
                    pf = PartitionFetch(
                        topic, pd.partition_index, [], pd.high_watermark, pd.log_start_offset, start, pd.error_code
                    )
                    if not pd.error_code and pd.records:
                        _decode_into(pf, pd.records, start)
                    out[pd.partition_index] = pf
            return out

        results = await asyncio.gather(*(one(leader, parts) for leader, parts in by_leader.items()))
        merged: dict[int, PartitionFetch] = {}
        for r in results:
            merged.update(r)
        return merged


def _decode_into(pf: PartitionFetch, records: Any, start: int) -> None:
    """Append the records at or after `start`; advance next_offset past whole batches."""
    buf = bytes(records)
    if legacy.is_legacy(buf):
        for msg in legacy.iter_message_set(buf, allow_partial=True):
            if msg.offset >= start:
                pf.records.append(FetchedRecord(pf.topic, pf.partition, msg.offset, msg.timestamp, msg.key, msg.value))
            pf.next_offset = max(pf.next_offset, msg.offset + 1)
        return
    for pos, header in iter_batches(buf):
        if not header.is_control:
            for rec in iter_records(buf, pos=pos):
                if rec.offset >= start:
                    pf.records.append(_fetched(pf, rec))
        pf.next_offset = max(pf.next_offset, header.next_offset)


def _fetched(pf: PartitionFetch, rec: Record) -> FetchedRecord:
    return FetchedRecord(pf.topic, pf.partition, rec.offset, rec.timestamp, rec.key, rec.value, rec.headers)


def random_partition(num_partitions: int) -> int:
    return random.randrange(num_partitions)
