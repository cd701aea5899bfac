"""Interop suite plumbing: one broker process per module, per-client codec
parametrization, and the session hooks that record each scenario's outcome
per client and rewrite docs/compatibility.md (see interop/report.py).

Set KAFKAPY_COMPAT_REPORT=0 to leave the document alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from interop._common import BrokerProcess, start_broker
from interop.apache_kafka import SharedApacheKafka
from interop.report import Collector, write_report

_COLLECTOR = Collector()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compat(scenario): the docs/compatibility.md row a test feeds (client from its adapter)"
    )
    # kafka-python 3 loads its protocol schemas with deprecated importlib.resources calls
    config.addinivalue_line("filterwarnings", "ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning")


def _broker(tmp_path_factory: pytest.TempPathFactory, name: str, settings: dict[str, str]) -> Iterator[BrokerProcess]:
    broker = start_broker(tmp_path_factory.mktemp(name) / "data", settings)
    try:
        yield broker
    finally:
        code = broker.stop()
        if code not in (0, None):
            print(f"\nbroker exited with {code}; log tail:\n{broker.log_tail()}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A kafkapy broker with default settings, shared by one test module;
    only the first rebalance of a new group is not delayed (as in Kafka's own
    test setups), so the consumer-group scenario doesn't wait 3 s per join."""
    yield from _broker(tmp_path_factory, "broker", {"group.initial.rebalance.delay.ms": "0"})


@pytest.fixture(scope="module")
def large_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker accepting 1 MiB messages (message.max.bytes above the 1048588 default)."""
    yield from _broker(tmp_path_factory, "large", {"message.max.bytes": "2000000"})


@pytest.fixture(scope="session")
def shared_apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApacheKafka]:
    shared = SharedApacheKafka(tmp_path_factory.mktemp("apache-kafka-shared"))
    try:
        yield shared
    finally:
        if shared.kafka is not None:
            code = shared.kafka.stop()
            if code not in (0, 143, None):
                print(f"\nApache Kafka exited with {code}; log tail:\n{shared.kafka.log_tail()}")


def _adapter(item: Any) -> Any:
    cls = getattr(item, "cls", None)
    return getattr(cls, "adapter", None) if cls is not None else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "codec" in metafunc.fixturenames:
        adapter = getattr(metafunc.cls, "adapter", None) if metafunc.cls else None
        codecs = getattr(adapter, "codecs", ("none",))
        metafunc.parametrize("codec", list(codecs))


def _scenario_of(item: pytest.Item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("compat")
    if marker is None:
        return None
    scenario = str(marker.args[0])
    client = marker.kwargs.get("client") or getattr(_adapter(item), "name", None)
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        if "codec" in callspec.params and scenario == "codec":
            scenario = f"codec-{callspec.params['codec']}"
        if "consumer" in callspec.params and scenario == "cross":
            scenario = f"cross:{callspec.params['consumer']}"
        if "producer" in callspec.params and client is None:
            client = callspec.params["producer"]
    if client is None:
        return None
    return str(client), scenario


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _scenario_of(item) is None:
            continue
        _COLLECTOR.modules_collected.add(item.nodeid.split("::", 1)[0])
        adapter = _adapter(item)
        if adapter is not None:
            for scenario, reason in getattr(adapter, "not_applicable", {}).items():
                _COLLECTOR.not_applicable(adapter.name, scenario, reason)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _COLLECTOR.deselected.update(item.nodeid for item in items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    where = _scenario_of(item)
    if where is None:
        return rep
    if rep.when == "call" or (rep.when == "setup" and not rep.passed) or (rep.when == "teardown" and rep.failed):
        if rep.skipped:
            # pytest.skip("not yet supported by kafkapy: <why>") marks a broker gap in the table
            reason = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else ""
            marker = "not yet supported by kafkapy:"
            if marker in reason:
                _COLLECTOR.not_applicable(where[0], where[1], "kafkapy: " + reason.split(marker, 1)[1].strip())
            return rep
        detail = ""
        if rep.failed and call.excinfo is not None:
            message = str(call.excinfo.value).strip().splitlines()
            detail = f"{call.excinfo.typename}: {message[0] if message else ''}"[:300]
            if rep.when != "call":
                detail = f"({rep.when}) {detail}"
        _COLLECTOR.record(item.nodeid, where[0], where[1], rep.passed, detail)
    return rep


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for dist in ("confluent-kafka", "kafka-python", "aiokafka"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    try:
        from interop.adapters.java import DEPS_FILE, DEPS_FILE_44, kafka_version

        if DEPS_FILE.exists():
            versions["kafka-clients (Java)"] = kafka_version()
        if DEPS_FILE_44.exists():
            versions["kafka-clients (Java, second column)"] = kafka_version(DEPS_FILE_44)
    except ImportError:
        pass
    lock = Path(__file__).parent / "node" / "node_modules" / "kafkajs" / "package.json"
    if lock.exists():
        import json

        versions["kafkajs"] = json.loads(lock.read_text())["version"]
    return versions


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _COLLECTOR.report.results or os.environ.get("KAFKAPY_COMPAT_REPORT", "1") == "0":
        return
    _COLLECTOR.report.versions.update(_versions())
    try:
        from interop.adapters.kcat import kcat_version

        version = kcat_version()
        if version:
            _COLLECTOR.report.versions["kcat"] = version
    except Exception:
        pass
    write_report(_COLLECTOR)
