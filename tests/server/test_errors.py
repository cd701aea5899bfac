"""Errors in one place (kafkapy/server/errors.py): the exception table, the version
fallbacks checked against Kafka's message specs, and a handler that raises, for
every served API: a well-formed error response, one log line, the connection open."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from structlog.testing import capture_logs

from kafkapy.cluster.features import MemoryFeatureStore
from kafkapy.cluster.metadata import MetadataError
from kafkapy.cluster.partition import NotEnoughReplicasError
from kafkapy.config import ConfigError, Listener
from kafkapy.protocol import errors as protocol_errors
from kafkapy.protocol.api import ApiKey, api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkapy.protocol.messages.delete_topics_request import DeleteTopicsRequest
from kafkapy.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkapy.protocol.messages.find_coordinator_response import FindCoordinatorResponse
from kafkapy.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkapy.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkapy.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkapy.protocol.primitives import Entity, Message
from kafkapy.server import errors
from kafkapy.server.dispatch import Dispatcher
from kafkapy.server.fetch_sessions import SessionError
from kafkapy.server.handler import Handler, HandlerFn, RequestContext
from kafkapy.server.handlers import HANDLERS
from kafkapy.server.handlers import api_versions as api_versions_handler
from kafkapy.server.network import Server
from kafkapy.server.quotas import QuotaManager
from kafkapy.server.sasl_setup import SaslSetup
from kafkapy.storage import errors as storage_errors
from kafkapy.storage import producer_state
from tests.server.rawclient import RawClient

SPEC = Path(__file__).resolve().parents[3] / "shared" / "kafka-message-spec"

# ---------------------------------------------------------------- the exception table


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (storage_errors.OffsetOutOfRangeError(5, 0, 3), ErrorCode.OFFSET_OUT_OF_RANGE),
        (storage_errors.RecordTooLargeError("big"), ErrorCode.MESSAGE_TOO_LARGE),  # before its base class
        (storage_errors.InvalidRecordsError("bad"), ErrorCode.CORRUPT_MESSAGE),
        (storage_errors.CorruptLogError("crc"), ErrorCode.KAFKA_STORAGE_ERROR),
        (storage_errors.LogClosedError("closed"), ErrorCode.KAFKA_STORAGE_ERROR),
        (storage_errors.StorageError("disk"), ErrorCode.KAFKA_STORAGE_ERROR),
        (producer_state.OutOfOrderSequenceError(1, "gap"), ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
        (producer_state.InvalidProducerEpochError(1, "old"), ErrorCode.INVALID_PRODUCER_EPOCH),
        (producer_state.InvalidSequenceError(1, "seq"), ErrorCode.INVALID_RECORD),
        (producer_state.InvalidTxnStateError(1, "txn"), ErrorCode.INVALID_TXN_STATE),
        (producer_state.CoordinatorFencedError(1, "fenced"), ErrorCode.TRANSACTION_COORDINATOR_FENCED),
        (NotEnoughReplicasError("t", 0, [1], 2), ErrorCode.NOT_ENOUGH_REPLICAS),
        (protocol_errors.RecordTooLargeError("big"), ErrorCode.MESSAGE_TOO_LARGE),
        (protocol_errors.CorruptRecordError("crc"), ErrorCode.CORRUPT_MESSAGE),
        (protocol_errors.UnsupportedCompressionError("codec 7"), ErrorCode.CORRUPT_MESSAGE),
        (protocol_errors.UnsupportedVersionError("v99"), ErrorCode.UNSUPPORTED_VERSION),
        (ConfigError("retention.ms", "not a number"), ErrorCode.INVALID_CONFIG),
        (TimeoutError(), ErrorCode.REQUEST_TIMED_OUT),
        # exceptions that carry their own code
        (MetadataError(ErrorCode.TOPIC_ALREADY_EXISTS, "exists"), ErrorCode.TOPIC_ALREADY_EXISTS),
        (SessionError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND), ErrorCode.FETCH_SESSION_ID_NOT_FOUND),
        (errors.ApiError(ErrorCode.INVALID_REQUEST, "no"), ErrorCode.INVALID_REQUEST),
        (errors.ApiError(12345, "a code Kafka does not have"), ErrorCode.UNKNOWN_SERVER_ERROR),
        # anything else is a fault of the server
        (RuntimeError("bug"), ErrorCode.UNKNOWN_SERVER_ERROR),
        (KeyError("x"), ErrorCode.UNKNOWN_SERVER_ERROR),
        (producer_state.ProducerStateError(1, "other"), ErrorCode.UNKNOWN_SERVER_ERROR),
        (protocol_errors.EncodeError("too long"), ErrorCode.UNKNOWN_SERVER_ERROR),
    ],
)
def test_error_code(exc: Exception, code: ErrorCode) -> None:
    assert errors.error_code(exc) == code


def test_a_subclass_not_in_the_table_takes_its_nearest_base() -> None:
    class Unlucky(storage_errors.OffsetOutOfRangeError):
        pass

    assert errors.error_code(Unlucky(1, 2, 3)) == ErrorCode.OFFSET_OUT_OF_RANGE


# ---------------------------------------------------------------- version fallbacks


@pytest.mark.parametrize("f", errors.FALLBACKS, ids=lambda f: f"{f.api_key.name}-{f.code.name}")
def test_fallback_applies_below_its_version_only(f: errors.Fallback) -> None:
    spec = api_spec(f.api_key)
    assert spec.min_version < f.since <= spec.max_version
    assert errors.for_version(f.api_key, f.since - 1, f.code) == f.older
    assert errors.for_version(f.api_key, f.since, f.code) == f.code
    assert errors.for_version(f.api_key, spec.max_version, f.code) == f.code
    assert errors.fallback_below(f.api_key) >= f.since


def test_codes_without_a_fallback_pass_unchanged() -> None:
    assert errors.for_version(ApiKey.END_TXN, 0, ErrorCode.INVALID_TXN_STATE) == ErrorCode.INVALID_TXN_STATE
    assert errors.for_version(ApiKey.METADATA, 0, ErrorCode.PRODUCER_FENCED) == ErrorCode.PRODUCER_FENCED
    assert errors.fallback_below(ApiKey.METADATA) == 0


def _spec_notes(name: str) -> str:
    return "\n".join((SPEC / f"{name}{kind}.json").read_text() for kind in ("Request", "Response"))


# The codes whose adding version Kafka's message specs name in their notes. COORDINATOR_LOAD_IN_PROGRESS
# for TxnOffsetCommit < 2 (KAFKA-9656) is named by no spec: the table tests above cover it.
_SPEC_WORDS = {
    ErrorCode.TRANSACTION_ABORTABLE: "TRANSACTION_ABORTABLE",
    ErrorCode.PRODUCER_FENCED: "PRODUCER_FENCED",
    ErrorCode.KAFKA_STORAGE_ERROR: "KAFKA_STORAGE_ERROR",
    ErrorCode.OFFSET_NOT_AVAILABLE: "OFFSET_NOT_AVAILABLE",
    ErrorCode.TOPIC_DELETION_DISABLED: "TOPIC_DELETION_DISABLED",
}


@pytest.mark.skipif(not SPEC.is_dir(), reason="Kafka's message definitions are not beside the repository")
@pytest.mark.parametrize(
    "f",
    [f for f in errors.FALLBACKS if f.code in _SPEC_WORDS],
    ids=lambda f: f"{f.api_key.name}-{f.code.name}",
)
def test_fallback_version_is_the_one_kafkas_spec_names(f: errors.Fallback) -> None:
    """Where Kafka's message spec says which version adds the code, `since` is that version."""
    name = api_spec(f.api_key).name
    notes = _spec_notes(name)
    word = _SPEC_WORDS[f.code]
    versions = {int(v) for v in re.findall(rf"[Vv]er(?:s|is)ion (\d+)[^\n]*{word}", notes)}
    versions |= {int(v) for v in re.findall(rf"in version (\d+)[^\n]*{word}", notes)}
    assert f.since in versions, f"{name}: spec names {sorted(versions)} for {word}"


def test_downgrader_rewrites_nested_codes_of_old_versions_only() -> None:
    def response() -> ProduceResponse:
        parts = [
            PartitionProduceResponse(index=0, error_code=ErrorCode.TRANSACTION_ABORTABLE),
            PartitionProduceResponse(index=1, error_code=ErrorCode.KAFKA_STORAGE_ERROR),
            PartitionProduceResponse(index=2, error_code=ErrorCode.NONE),
        ]
        return ProduceResponse(responses=[TopicProduceResponse(name="t", partition_responses=parts)])

    down = errors.Downgrader()
    old = response()
    down(old, ApiKey.PRODUCE, 3)
    assert [p.error_code for p in old.responses[0].partition_responses] == [
        ErrorCode.INVALID_TXN_STATE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.NONE,
    ]
    new = response()
    down(new, ApiKey.PRODUCE, 11)
    assert new == response()


# ---------------------------------------------------------------- a request's error response, every API


def sample(cls: type[Entity]) -> Any:
    """An instance of `cls` with one item in every list and a value in every string."""
    obj = cls()
    for name, hint in get_type_hints(cls.__init__).items():
        if name == "unknown_tagged_fields":
            continue
        for arg in (hint,) if get_origin(hint) is list else get_args(hint) or (hint,):
            item = get_args(arg)[0] if get_origin(arg) is list else None
            if isinstance(item, type) and issubclass(item, Entity):
                setattr(obj, name, [sample(item)])
            elif item in (str, int, uuid.UUID):
                setattr(obj, name, [{str: "t", int: 1, uuid.UUID: uuid.uuid4()}[item]])
            elif arg is str:
                setattr(obj, name, "t")
            elif isinstance(arg, type) and issubclass(arg, Entity):
                setattr(obj, name, sample(arg))
            else:
                continue
            break
    if cls.__name__ == "ProduceRequest":
        setattr(obj, "acks", -1)  # noqa: B010  # acks=0 reads no response
    return obj


def codes(entity: Entity) -> list[int]:
    """Every error code in `entity`, at any depth."""
    out: list[int] = []
    for name in type(entity).__slots__:
        value = getattr(entity, name, None)
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, Entity):
                out += codes(child)
        if name.endswith("error_code") and isinstance(value, int):
            out.append(value)
    return out


# Versions whose response has no error field at all: Kafka answers them with an empty response too.
NO_ERROR_FIELD = {(ApiKey.DESCRIBE_LOG_DIRS, v) for v in range(3)}


def served_versions() -> Iterator[tuple[int, int]]:
    for h in HANDLERS:
        for v in range(h.min_version, h.max_version + 1):
            yield h.api_key, v


@pytest.mark.parametrize(("api_key", "version"), list(served_versions()))
def test_failed_response_mirrors_the_request_and_carries_the_code(api_key: int, version: int) -> None:
    spec = api_spec(api_key)
    request = sample(spec.request_type())
    response = errors.failed_response(api_key, request, spec.response_type(), ErrorCode.UNKNOWN_SERVER_ERROR, "x")
    back, _ = spec.response_type().decode_from(memoryview(response.encode(version)), 0, version)
    carried = [c for c in codes(back) if c == ErrorCode.UNKNOWN_SERVER_ERROR]
    if (api_key, version) in NO_ERROR_FIELD:
        assert not carried
        return
    assert carried, f"{spec.name} v{version}: no error code in {back!r}"


def test_failed_response_says_no_node_and_no_epoch_as_kafka() -> None:
    find = errors.failed_response(
        ApiKey.FIND_COORDINATOR, sample(FindCoordinatorRequest), FindCoordinatorResponse, -1, "x"
    )
    assert (find.node_id, find.port) == (-1, -1)
    assert [(c.key, c.node_id, c.port) for c in find.coordinators] == [("t", -1, -1)]
    init = errors.failed_response(
        ApiKey.INIT_PRODUCER_ID, sample(InitProducerIdRequest), InitProducerIdResponse, -1, "x"
    )
    assert (init.producer_id, init.producer_epoch) == (-1, -1)


# ---------------------------------------------------------------- over TCP: a raising handler, every API

GOOD = "good-client"


def raising_table() -> tuple[Handler, ...]:
    """Every served API raises, except ApiVersions from client GOOD (the follow-up request)."""

    async def boom(ctx: RequestContext, req: Any) -> Message | None:
        if ctx.header.request_api_key == ApiKey.API_VERSIONS and ctx.client_id == GOOD:
            return await api_versions_handler.handle(ctx, req)
        raise RuntimeError(f"injected failure in {api_spec(ctx.header.request_api_key).name}")

    def target() -> HandlerFn:
        return boom

    return tuple(Handler(h.api_key, h.min_version, h.max_version, target) for h in HANDLERS)


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.correlation_id = 0

    def request(self, body: Message, version: int, client_id: str) -> Any:
        self.correlation_id += 1
        self.sock.sendall(encode_request(body, version, self.correlation_id, client_id=client_id))
        size = struct.unpack(">i", self._read(4))[0]
        cid, resp = decode_response(body.API_KEY, version, self._read(size))
        assert cid == self.correlation_id
        return resp

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return out


def bare_state() -> Any:
    """Services for a dispatcher whose handlers need none: no SASL listeners, no metrics, no quotas."""
    sasl = SaslSetup(listeners={}, max_receive_size=524288, failed_delay_ms=100, max_reauth_ms=0)
    return SimpleNamespace(sasl=sasl, stats=None, quotas=QuotaManager(), features=MemoryFeatureStore())


def with_server(fn: Callable[[int], None]) -> None:
    async def body() -> None:
        dispatcher = Dispatcher(bare_state(), raising_table())
        server = Server(dispatcher, [Listener("PLAINTEXT", "127.0.0.1", 0)])
        await server.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, fn, server.bound[0].port)
        finally:
            await server.shutdown()

    asyncio.run(body())


def test_every_api_answers_unknown_server_error_and_keeps_the_connection() -> None:
    def run(port: int) -> None:
        conn = Conn(port)
        for h in HANDLERS:
            spec = api_spec(h.api_key)
            for version in sorted({h.min_version, h.max_version}):
                with capture_logs() as logs:
                    resp = conn.request(sample(spec.request_type()), version, client_id="bad-client")
                failed = [e for e in logs if e["event"] == "request failed"]
                assert len(failed) == 1, (spec.name, version, logs)
                line = failed[0]
                assert (line["api"], line["version"], line["client_id"]) == (spec.name, version, "bad-client")
                assert line["log_level"] == "error" and line["answered"] == "UNKNOWN_SERVER_ERROR"
                assert isinstance(line["exc_info"], RuntimeError)
                if (h.api_key, version) not in NO_ERROR_FIELD:
                    assert ErrorCode.UNKNOWN_SERVER_ERROR in codes(resp), (spec.name, version, resp)
                ok = conn.request(ApiVersionsRequest(), 3, client_id=GOOD)
                assert ok.error_code == ErrorCode.NONE and ok.api_keys

    with_server(run)


def test_a_known_exception_answers_its_own_code_with_a_warning() -> None:
    async def refuse(ctx: RequestContext, req: Any) -> Message | None:
        raise errors.ApiError(ErrorCode.POLICY_VIOLATION, "not today")

    def target() -> HandlerFn:
        return refuse

    table = tuple(
        Handler(h.api_key, h.min_version, h.max_version, target if h.api_key == ApiKey.CREATE_TOPICS else h.target)
        for h in HANDLERS
    )

    async def body() -> None:
        dispatcher = Dispatcher(bare_state(), table)
        server = Server(dispatcher, [Listener("PLAINTEXT", "127.0.0.1", 0)])
        await server.start()

        def run(port: int) -> None:
            conn = Conn(port)
            spec = api_spec(ApiKey.CREATE_TOPICS)
            with capture_logs() as logs:
                resp = conn.request(sample(spec.request_type()), 7, client_id="c")
            assert [(t.name, t.error_code, t.error_message) for t in resp.topics] == [
                ("t", ErrorCode.POLICY_VIOLATION, "not today")
            ]
            assert [(e["event"], e["log_level"]) for e in logs] == [("request failed", "warning")]

        try:
            await asyncio.get_running_loop().run_in_executor(None, run, server.bound[0].port)
        finally:
            await server.shutdown()

    asyncio.run(body())


def test_acks_0_produce_that_fails_closes_the_connection_as_kafka() -> None:
    def run(port: int) -> None:
        conn = Conn(port)
        request = sample(api_spec(ApiKey.PRODUCE).request_type())
        request.acks = 0
        conn.sock.sendall(encode_request(request, 9, 1, client_id="fire-and-forget"))
        conn.sock.settimeout(5)
        assert conn.sock.recv(1) == b""

    with_server(run)


# ---------------------------------------------------------------- a real broker, answers checked against Apache Kafka's


def test_topic_deletion_disabled_before_delete_topics_v3_is_invalid_request(kafka_broker_factory) -> None:  # type: ignore[no-untyped-def]
    """Apache Kafka 4 with delete.topic.enable=false answers DeleteTopics v2 INVALID_REQUEST and v3
    TOPIC_DELETION_DISABLED (seen against interop/apache_kafka.py's broker); kafkapy's handler sets the
    newest code and the dispatcher's fallback answers v2."""
    broker = kafka_broker_factory({"delete.topic.enable": False})
    with RawClient(broker.bootstrap) as c:
        created = c.request(
            CreateTopicsRequest(topics=[CreatableTopic(name="t", num_partitions=1, replication_factor=1)]), 5
        )
        assert created.topics[0].error_code == ErrorCode.NONE
        answers = {
            v: c.request(DeleteTopicsRequest(topic_names=["t"], timeout_ms=5000), v).responses[0].error_code
            for v in (2, 3)
        }
    assert answers == {2: ErrorCode.INVALID_REQUEST, 3: ErrorCode.TOPIC_DELETION_DISABLED}
