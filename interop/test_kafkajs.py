"""kafkajs against a kafkapy broker: every scenario in interop/scenarios.py,
through interop/node/kjs.js (node subprocess, JSON over stdin/stdout)."""

from __future__ import annotations

from interop.adapters.kafkajs import KafkajsClient, available
from interop.scenarios import Scenarios

_missing = available()
if _missing is not None:
    raise RuntimeError(f"interop/test_kafkajs.py: {_missing}")


class TestKafkajs(Scenarios):
    adapter = KafkajsClient()
