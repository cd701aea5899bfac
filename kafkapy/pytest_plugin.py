"""pytest plugin (the package's pytest11 entry point): real kafkapy brokers in subprocesses.

Fixtures:
  kafka_broker          a broker for one test
  kafka_broker_session  one broker shared by the whole session
  kafka_broker_factory  start(**options) -> BrokerProcess, for restarts or several brokers
  kafka_cluster_factory start(size=3, settings=...) -> LocalCluster: etcd + brokers (kafkapy.local_cluster)
  s3_server             one SeaweedFS S3 server (kafkapy.testing.SeaweedS3Server) shared by the session:
                        endpoint, bucket, keys, object_store_config(prefix); give each test its own prefix
                        and don't stop it (use s3_server_factory for that)
  s3_server_factory     start() -> SeaweedS3Server, a server of the test's own, stopped at teardown

The processes are `kafkapy.testing.BrokerProcess` (each broker's log goes to a
file under the test's tmp dir); the log tails of a failing test's brokers are
attached to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest

from kafkapy.local_cluster import LocalCluster
from kafkapy.testing import BrokerFactory, BrokerProcess, SeaweedS3Server

_FACTORIES = pytest.StashKey[list[BrokerFactory]]()
_CLUSTERS = pytest.StashKey[list[LocalCluster]]()
_S3_SERVERS = pytest.StashKey[list[SeaweedS3Server]]()


@pytest.fixture
def kafka_broker_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerFactory]:
    factory = BrokerFactory(tmp_path_factory.mktemp("kafkapy"))
    request.node.stash.setdefault(_FACTORIES, []).append(factory)
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
def kafka_cluster_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LocalCluster]]:
    """start(size=3, settings=None, per_broker=None) -> LocalCluster (per_broker: LocalCluster's);
    every cluster is stopped at teardown."""
    clusters: list[LocalCluster] = []

    def start(
        size: int = 3,
        settings: Mapping[str, Any] | None = None,
        per_broker: Callable[[int], tuple[int, dict[str, str]]] | None = None,
    ) -> LocalCluster:
        root = tmp_path_factory.mktemp("kafkapy-cluster")
        cluster = LocalCluster(
            root,
            size,
            {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (settings or {}).items()},
            per_broker=per_broker,
        )
        clusters.append(cluster)
        request.node.stash.setdefault(_CLUSTERS, []).append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    server = SeaweedS3Server(tmp_path_factory.mktemp("seaweedfs-session"))
    request.config.stash.setdefault(_S3_SERVERS, []).append(server)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_server_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SeaweedS3Server]]:
    """start(**SeaweedS3Server fields) -> a started server; all stopped at teardown."""
    servers: list[SeaweedS3Server] = []

    def start(**fields: Any) -> SeaweedS3Server:
        server = SeaweedS3Server(tmp_path_factory.mktemp("seaweedfs"), **fields)
        servers.append(server)
        request.node.stash.setdefault(_S3_SERVERS, []).append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


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
    own: list[SeaweedS3Server] = item.stash.get(_S3_SERVERS, [])
    shared: list[SeaweedS3Server] = (
        item.config.stash.get(_S3_SERVERS, []) if "s3_server" in getattr(item, "fixturenames", ()) else []
    )
    s3_servers = own + shared
    for server in s3_servers:
        report.sections.append((f"SeaweedFS {server.endpoint} log tail ({server.log_path})", server.log_tail(30)))
    for cluster in item.stash.get(_CLUSTERS, []):
        for node_id, broker in cluster.brokers.items():
            report.sections.append(
                (f"kafkapy cluster broker {node_id} log tail ({broker.log_path})", broker.log_tail())
            )
