"""confluent-kafka (librdkafka) against a kafkapy broker: every scenario in interop/scenarios.py."""

from __future__ import annotations

from interop.adapters.confluent import ConfluentClient
from interop.scenarios import Scenarios


class TestConfluent(Scenarios):
    adapter = ConfluentClient()
