"""aiokafka against a kafkapy broker: every scenario in interop/scenarios.py."""

from __future__ import annotations

from interop.adapters.aiokafka_client import AiokafkaClient
from interop.scenarios import Scenarios


class TestAiokafka(Scenarios):
    adapter = AiokafkaClient()
