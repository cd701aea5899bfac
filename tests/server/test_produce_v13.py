"""Produce v13 (KIP-516, topics by id) against a kafkapy broker process: the answers of
interop/diff_produce_v13.py's scenario are Apache Kafka 4.3.1's (golden file)."""

from __future__ import annotations

import json

import pytest

from interop import diff_produce_v13
from kafkapy.testing import BrokerProcess


@pytest.fixture
def answers(kafka_broker: BrokerProcess) -> dict[str, object]:
    return diff_produce_v13.run(kafka_broker.bootstrap)


def test_answers_as_kafka(answers: dict[str, object]) -> None:
    golden = diff_produce_v13.load()
    assert answers == golden, json.dumps({"kafkapy": answers, "kafka": golden}, indent=1)
