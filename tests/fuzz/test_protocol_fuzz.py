"""The structure-aware protocol fuzzer against a real broker process, for a bounded time (~30 s).

Every API and version the codecs know (those the broker advertises, and a third of the others),
valid requests from hypothesis strategies derived from the generated schemas, half of them mutated
byte-wise. Fixed hypothesis seeds and no example database: the same cases in the same order, how
many of them fit in the budget depends on the machine. `scripts/fuzz.py --minutes N` runs it longer;
docs/reliability.md ("Fuzzing") describes the checks and what they found.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kafkapy.testing import BrokerFactory, BrokerProcess
from tests.fuzz.engine import Driver, fuzz_pairs, run

BUDGET_S = 30.0
# The suite runs two pytest processes on two cores: a canary round may wait behind the other's
# work, so the bound here is looser than scripts/fuzz.py's 2 s.
CANARY_BOUND_S = 5.0
RSS_GROWTH_BOUND_KIB = 64 * 1024


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    factory = BrokerFactory(tmp_path_factory.mktemp("fuzz"))
    try:
        yield factory(settings={"group.initial.rebalance.delay.ms": 0})
    finally:
        factory.stop_all()


def test_protocol_fuzz(broker: BrokerProcess) -> None:
    driver = Driver(host=broker.host, port=broker.port, pid=broker.pid, log_path=broker.log_path)
    driver.canary_bound = CANARY_BOUND_S
    driver.setup()
    pairs = fuzz_pairs(driver.advertised())
    run(driver, pairs, BUDGET_S, first_seed=0, chunk=50)  # small chunks: the budget's end is not overrun much
    stats = driver.stats
    print(stats.summary())
    report = "\n".join(f"[{f.kind}] {f.detail}\n    case: {f.case}" for f in driver.findings)
    assert not driver.findings, f"{stats.summary()}\n{report}"
    assert driver.alive()
    assert stats.cases >= 150, stats.summary()  # ~1,500 on an idle machine, a few hundred on a busy one
    assert stats.answered > 0 and stats.closed > 0, stats.summary()
    assert stats.canary_rounds >= 10 and stats.canary_records == stats.canary_rounds, stats.summary()
    assert stats.rss_end_kib - stats.rss_start_kib <= RSS_GROWTH_BOUND_KIB, stats.summary()
