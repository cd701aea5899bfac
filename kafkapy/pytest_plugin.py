"""pytest plugin (the package's pytest11 entry point): real kafkapy brokers in subprocesses.

Fixtures:
  kafka_broker          a broker for one test
  kafka_broker_session  one broker shared by the whole session
  kafka_broker_factory  start(**options) -> BrokerProcess, for restarts or several brokers
  kafka_cluster_factory start(size=3, settings=...) -> LocalCluster: etcd + brokers (kafkapy.local_cluster)

The processes are `kafkapy.testing.BrokerProcess` (each broker's log goes to a
file under the test's tmp dir); the log tails of a failing test's brokers are
attached to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest

from kafkapy.local_cluster import LocalCluster
from kafkapy.testing import BrokerFactory, BrokerProcess

_FACTORIES = pytest.StashKey[list[BrokerFactory]]()
_CLUSTERS = pytest.StashKey[list[LocalCluster]]()


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
