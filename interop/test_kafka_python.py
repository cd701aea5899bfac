"""kafka-python against a kafkapy broker: every scenario in interop/scenarios.py."""

from __future__ import annotations

from interop.adapters.kafka_python import KafkaPythonClient
from interop.scenarios import Scenarios


class TestKafkaPython(Scenarios):
    adapter = KafkaPythonClient()
