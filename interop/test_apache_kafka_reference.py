"""The Java driver's scenarios against a real Apache Kafka broker (the jars
interop/java pins, KRaft combined mode, interop/apache_kafka.py): proves the
scenarios and the driver are right, so a failure in interop/test_java.py is
kafkapy's. Recorded in docs/compatibility.md as the reference column.

One Apache Kafka process serves the whole module (message.max.bytes raised
for the 1 MiB scenario, which is also what `large_broker` asks of kafkapy): the
session's shared one (interop/conftest.py) when no other module has used it yet,
as in a full run where this module comes first, else one of its own, so the
golden comparison always sees a broker nothing else has touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from interop.adapters.java import JavaClient, available
from interop.apache_kafka import SHARED_APACHE_KAFKA_SETTINGS, KafkaProcess, SharedApacheKafka, start_kafka
from interop.test_java import JavaScenarios

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_apache_kafka_reference.py: {_missing} (scripts/test installs and builds it)")


@pytest.fixture(scope="module")
def apache_kafka(
    tmp_path_factory: pytest.TempPathFactory, shared_apache_kafka: SharedApacheKafka
) -> Iterator[KafkaProcess]:
    if shared_apache_kafka.fresh_for(__name__):
        yield shared_apache_kafka.use(__name__)
        return
    kafka = start_kafka(tmp_path_factory.mktemp("apache-kafka"), SHARED_APACHE_KAFKA_SETTINGS)
    try:
        yield kafka
    finally:
        code = kafka.stop()
        if code not in (0, 143, None):
            print(f"\nApache Kafka exited with {code}; log tail:\n{kafka.log_tail()}")


@pytest.fixture(scope="module")
def broker(apache_kafka: KafkaProcess) -> Any:
    return apache_kafka


def test_golden_fixtures_are_what_kafka_answers(apache_kafka: KafkaProcess) -> None:
    """Runs first in this module, on the fresh broker (other tests leave groups behind).
    interop/golden_kafka/ still matches the pinned Kafka (so the JVM-free
    comparison in interop/test_differential.py compares with Kafka's answers).
    This broker raises message.max.bytes, which shows in the created topics'
    max.message.bytes: that one difference is expected."""
    from interop.differential import api_ranges, compare, load_golden, run_script

    golden = load_golden()["responses"]
    live = run_script(apache_kafka.bootstrap)
    assert api_ranges(live["api_versions_v3"]) == api_ranges(golden["api_versions_v3"])
    unexpected = {
        step: [d for d in diffs if ".configs.max.message.bytes." not in d[0]]
        for step, diffs in compare(golden, live).items()
    }
    assert not {k: v for k, v in unexpected.items() if v}, "regenerate: python -m interop.differential regenerate"


@pytest.fixture(scope="module")
def large_broker(apache_kafka: KafkaProcess) -> Any:
    return apache_kafka


class ReferenceJavaClient(JavaClient):
    name = "java-ref"


class TestJavaAgainstApacheKafka(JavaScenarios):
    adapter = ReferenceJavaClient()
