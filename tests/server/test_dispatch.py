"""The handler table: every entry loads, fits the codec, and feeds ApiVersions; what a
real broker answers (or why it closes the connection) for what it does not serve."""

from __future__ import annotations

import inspect
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkapy.protocol.api import api_spec
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.frames import encode_request
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkapy.server.dispatch import build_table
from kafkapy.server.handlers import HANDLERS
from kafkapy.server.handlers.api_versions import supported_versions
from tests.server.rawclient import RawClient


def test_every_handler_loads_and_fits_the_codec() -> None:
    build_table(HANDLERS)  # raises on duplicates or ranges the codec does not know
    for h in HANDLERS:
        fn = h.load()
        assert inspect.iscoroutinefunction(fn), h.target
        spec = api_spec(h.api_key)
        assert spec.min_version <= h.min_version <= h.max_version <= spec.max_version


def test_api_versions_lists_exactly_the_table() -> None:
    assert {(v.api_key, v.min_version, v.max_version) for v in supported_versions(HANDLERS)} == {
        (h.api_key, h.min_version, h.max_version) for h in HANDLERS
    }


def test_dispatcher_import_loads_no_handler_module() -> None:
    code = (
        "import sys, kafkapy.server.dispatch;"
        "print(sorted(m for m in sys.modules if m.startswith('kafkapy.server.handlers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kafkapy.server.handlers.api_versions']"


# ---------------------------------------------------------------- what kafkapy does not serve, over TCP
# A real broker process (kafkapy.testing); answers compared with Apache Kafka 4.3.1's
# in interop/test_differential.py, the log lines read from the broker's log file.


class LogWatch:
    """The broker log written since the watch began."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def lines(self, needle: str, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                found = [line for line in f.read().decode(errors="replace").splitlines() if needle in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture
def watch(kafka_broker_session: Any) -> LogWatch:
    return LogWatch(kafka_broker_session.log_path)


@pytest.fixture
def client(kafka_broker_session: Any) -> Iterator[RawClient]:
    with RawClient(kafka_broker_session.bootstrap) as c:
        yield c


def still_open(c: RawClient) -> bool:
    return c.request(ApiVersionsRequest(), 0).error_code == 0


def send_default(c: RawClient, api_key: int, version: int) -> None:
    c.correlation_id += 1
    c.send_raw(encode_request(api_spec(api_key).request_type()(), version, c.correlation_id, client_id="rawclient"))


def test_sasl_on_a_plaintext_listener_is_illegal_sasl_state_and_keeps_the_connection(client: RawClient) -> None:
    from kafkapy.protocol.messages.sasl_authenticate_request import (
        SaslAuthenticateRequest,
    )
    from kafkapy.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    for v in (0, 1):
        resp = client.request(SaslHandshakeRequest(mechanism="PLAIN"), v)
        assert (resp.error_code, resp.mechanisms) == (ErrorCode.ILLEGAL_SASL_STATE, [])
    for v in (0, 1, 2):
        resp = client.request(SaslAuthenticateRequest(auth_bytes=b"\x00u\x00p"), v)
        assert (
            resp.error_code == ErrorCode.ILLEGAL_SASL_STATE and "after successful authentication" in resp.error_message
        )
    assert still_open(client)


def test_describe_client_quotas_finds_none_and_validates_the_filter(client: RawClient) -> None:
    from kafkapy.protocol.messages.describe_client_quotas_request import (
        ComponentData,
        DescribeClientQuotasRequest,
    )

    def ask(*components: tuple[str, int, str | None]) -> tuple[int, Any]:
        req = DescribeClientQuotasRequest(
            components=[ComponentData(entity_type=t, match_type=m, match=x) for t, m, x in components]
        )
        resp = client.request(req, 1)
        return resp.error_code, resp.entries

    assert ask() == (0, [])
    assert ask(("user", 0, "alice"), ("client-id", 1, None)) == (0, [])
    assert ask(("ip", 2, None)) == (0, [])
    assert ask(("user", 0, None)) == (ErrorCode.INVALID_REQUEST, None)
    assert ask(("user", 1, "x")) == (ErrorCode.INVALID_REQUEST, None)
    assert ask(("user", 7, None)) == (ErrorCode.INVALID_REQUEST, None)
    assert ask(("user", 2, None), ("user", 2, None)) == (ErrorCode.INVALID_REQUEST, None)
    assert ask(("ip", 2, None), ("user", 2, None)) == (ErrorCode.INVALID_REQUEST, None)
    assert ask(("nope", 2, None)) == (ErrorCode.UNSUPPORTED_VERSION, None)


def test_scram_tokens_reassignments_client_metrics(client: RawClient) -> None:
    from kafkapy.protocol.messages.describe_delegation_token_request import (
        DescribeDelegationTokenRequest,
    )
    from kafkapy.protocol.messages.describe_user_scram_credentials_request import (
        DescribeUserScramCredentialsRequest,
        UserName,
    )
    from kafkapy.protocol.messages.list_client_metrics_resources_request import (
        ListClientMetricsResourcesRequest,
    )
    from kafkapy.protocol.messages.list_partition_reassignments_request import (
        ListPartitionReassignmentsRequest,
    )

    everyone = client.request(DescribeUserScramCredentialsRequest(users=None), 0)
    assert (everyone.error_code, everyone.results) == (0, [])
    named = client.request(
        DescribeUserScramCredentialsRequest(users=[UserName(name="alice")] * 2 + [UserName(name="bob")]), 0
    )
    assert [(r.user, r.error_code) for r in named.results] == [
        ("alice", ErrorCode.DUPLICATE_RESOURCE),
        ("bob", ErrorCode.RESOURCE_NOT_FOUND),
    ]
    tokens = client.request(DescribeDelegationTokenRequest(owners=None), 3)
    assert tokens.error_code == ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
    moves = client.request(ListPartitionReassignmentsRequest(timeout_ms=1000, topics=None), 0)
    assert (moves.error_code, moves.topics) == (0, [])
    metrics = client.request(ListClientMetricsResourcesRequest(), 0)
    assert (metrics.error_code, metrics.client_metrics_resources) == (0, [])


def test_unserved_api_with_an_error_code_is_answered_unsupported_version() -> None:
    """A broker not serving UnregisterBroker (a handler table without it; kafkapy serves every broker
    API now): its response has a top-level error code, so it answers UNSUPPORTED_VERSION, keeps the
    connection and logs the request."""
    import asyncio

    from structlog.testing import capture_logs

    from kafkapy.config import Listener
    from kafkapy.protocol.api import ApiKey
    from kafkapy.protocol.messages.unregister_broker_request import UnregisterBrokerRequest
    from kafkapy.server.dispatch import Dispatcher
    from kafkapy.server.network import Server
    from tests.server.test_errors import bare_state

    table = tuple(h for h in HANDLERS if h.api_key != ApiKey.UNREGISTER_BROKER)

    def run(port: int) -> None:
        with RawClient(f"127.0.0.1:{port}") as c:
            resp = c.request(UnregisterBrokerRequest(broker_id=7), 0)
            assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
            assert resp.error_message == "UnregisterBroker v0 is not served by kafkapy"
            assert still_open(c)

    async def body() -> None:
        server = Server(Dispatcher(bare_state(), table), [Listener("PLAINTEXT", "127.0.0.1", 0)])
        await server.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, run, server.bound[0].port)
        finally:
            await server.shutdown()

    with capture_logs() as logs:
        asyncio.run(body())
    [line] = [e for e in logs if e["event"] == "unsupported api: answered UNSUPPORTED_VERSION"]
    assert line["api"] == "UnregisterBroker" and line["version"] == 0


@pytest.mark.parametrize(
    ("api_key", "version", "logged"),
    [
        (63, 1, "not exposed on a broker listener"),  # BrokerHeartbeat: controller-only (Kafka closes too)
        (4, 7, "not exposed on a broker listener"),  # LeaderAndIsr: ZooKeeper-era
        (1, 19, "unsupported version"),  # Fetch beyond the codec (Kafka 4.4.0 stops at v18)
        (3, 14, "unsupported version"),  # Metadata beyond the codec
        (76, 0, "unsupported version"),  # ShareGroupHeartbeat v0: unstable (Kafka starts at v1)
    ],
)
def test_what_kafka_closes_is_closed_with_a_log_line(
    client: RawClient, watch: LogWatch, api_key: int, version: int, logged: str
) -> None:
    spec = api_spec(api_key)
    if version <= spec.max_version:
        send_default(client, api_key, version)
    else:  # beyond the codec: a hand-built header (v2) and an empty body
        body = struct.pack(">hhih", api_key, version, 5, 3) + b"raw" + b"\x00"
        client.send_raw(struct.pack(">i", len(body)) + body)
    assert client.is_closed_by_peer()
    [line] = watch.lines(logged)
    assert f"api={spec.name}" in line and f"version={version}" in line


def test_unknown_api_key_and_malformed_body_are_closed_with_a_log_line(
    kafka_broker_session: Any, watch: LogWatch
) -> None:
    with RawClient(kafka_broker_session.bootstrap) as c:
        body = struct.pack(">hhih", 9999, 0, 1, 0)
        c.send_raw(struct.pack(">i", len(body)) + body)
        assert c.is_closed_by_peer()
    [line] = watch.lines("unknown api key")
    assert "api_key=9999" in line and "version=0" in line
    with RawClient(kafka_broker_session.bootstrap) as c:  # DescribeQuorum v0 with a truncated body
        body = struct.pack(">hhih", 55, 0, 1, 0) + b"\x00\x00"
        c.send_raw(struct.pack(">i", len(body)) + body)
        assert c.is_closed_by_peer()
    [line] = watch.lines("malformed request")
    assert "api=DescribeQuorum" in line and "version=0" in line


def test_list_partition_reassignments_reports_replica_sets_in_change() -> None:
    """Empty on a single broker (above, over TCP); in a cluster, every partition
    with replicas being added or removed (KIP-455), filtered like Kafka."""
    import asyncio
    import uuid

    from kafkapy.cluster.metadata import PartitionInfo, TopicInfo
    from kafkapy.protocol.messages.list_partition_reassignments_request import (
        ListPartitionReassignmentsRequest,
        ListPartitionReassignmentsTopics,
    )
    from kafkapy.protocol.messages.request_header import RequestHeader
    from kafkapy.server.handler import RequestContext
    from kafkapy.server.handlers.reassignments import list_partition_reassignments

    moving = TopicInfo(
        "moving",
        uuid.uuid4(),
        [
            PartitionInfo(0, 1, [1, 2], [1, 2]),
            PartitionInfo(1, 2, [2, 3, 1], [2, 3], adding_replicas=[1], removing_replicas=[3]),
        ],
    )
    still = TopicInfo("still", uuid.uuid4(), [PartitionInfo(0, 1, [1], [1])])

    class Image:  # the two reads the handler makes of the cluster metadata
        def topics(self) -> list[TopicInfo]:
            return [moving, still]

        def topic(self, name: str) -> TopicInfo | None:
            return {t.name: t for t in self.topics()}.get(name)

    class State:
        metadata = Image()
        authorizer = None

    ctx = RequestContext(header=RequestHeader(), version=0, state=State(), conn=None)  # type: ignore[arg-type]

    def ask(
        topics: list[ListPartitionReassignmentsTopics] | None,
    ) -> list[tuple[str, int, list[int], list[int], list[int]]]:
        resp = asyncio.run(list_partition_reassignments(ctx, ListPartitionReassignmentsRequest(topics=topics)))
        assert resp.error_code == 0
        return [
            (t.name, p.partition_index, p.replicas, p.adding_replicas, p.removing_replicas)
            for t in resp.topics
            for p in t.partitions
        ]

    assert ask(None) == [("moving", 1, [2, 3, 1], [1], [3])]
    assert ask([ListPartitionReassignmentsTopics(name="moving", partition_indexes=[0])]) == []
    assert ask(
        [
            ListPartitionReassignmentsTopics(name="moving", partition_indexes=[1, 7]),
            ListPartitionReassignmentsTopics(name="nope", partition_indexes=[0]),
        ]
    ) == [("moving", 1, [2, 3, 1], [1], [3])]


def test_an_unserved_api_without_a_top_level_error_code_is_closed() -> None:
    """A broker not serving AlterReplicaLogDirs (a handler table without it): its response has only
    per-partition error codes, so the connection is closed with a log line, as Kafka closes what it
    does not serve."""
    import asyncio

    from structlog.testing import capture_logs

    from kafkapy.config import Listener
    from kafkapy.protocol.api import ApiKey
    from kafkapy.server.dispatch import Dispatcher
    from kafkapy.server.network import Server
    from tests.server.test_errors import bare_state

    table = tuple(h for h in HANDLERS if h.api_key != ApiKey.ALTER_REPLICA_LOG_DIRS)

    def run(port: int) -> None:
        with RawClient(f"127.0.0.1:{port}") as c:
            send_default(c, ApiKey.ALTER_REPLICA_LOG_DIRS, 2)
            assert c.is_closed_by_peer()

    async def body() -> None:
        server = Server(Dispatcher(bare_state(), table), [Listener("PLAINTEXT", "127.0.0.1", 0)])
        await server.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, run, server.bound[0].port)
        finally:
            await server.shutdown()

    with capture_logs() as logs:
        asyncio.run(body())
    assert any(e["event"] == "closing connection: unsupported api without a top-level error code" for e in logs)
