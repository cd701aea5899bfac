"""TxnOffsetCommit v6 (KIP-1319) against a kafkapy broker process: the answers of
interop/diff_txn_offset_commit_v6.py's scenario are Apache Kafka 4.4.0's (golden file)."""

from __future__ import annotations

import json

import pytest

from interop import diff_txn_offset_commit_v6 as scenario
from kafkapy.testing import BrokerProcess


@pytest.fixture
def answers(kafka_broker: BrokerProcess) -> dict[str, object]:
    return scenario.run(kafka_broker.bootstrap)


def test_answers_as_kafka_4_4_0(answers: dict[str, object]) -> None:
    golden = scenario.load()
    assert answers == golden, json.dumps({"kafkapy": answers, "kafka": golden}, indent=1)
