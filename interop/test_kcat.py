"""kcat against a kafkapy broker: the scenarios of interop/scenarios.py that a
command-line client can do (no config API; topics auto-created or made by
confluent-kafka's admin client)."""

from __future__ import annotations

from interop.adapters.kcat import KcatClient
from interop.scenarios import Scenarios


class TestKcat(Scenarios):
    adapter = KcatClient()
    test_describe_and_alter_topic_configs = None  # type: ignore[assignment]  # n/a: see adapter.not_applicable
