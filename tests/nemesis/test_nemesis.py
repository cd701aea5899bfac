"""The nemesis (docs/reliability.md, "Network partitions"): a bounded run in CI, its checker, its cuts.

`test_nemesis_run` runs 45 s of faults (NEMESIS_SECONDS, NEMESIS_SEED override it; longer runs:
scripts/nemesis.py) against etcd and three brokers in network namespaces, with the Python
workload and Kafka's VerifiableProducer/VerifiableConsumer, and fails on any violation.
Needs root, `ip netns` and nft (scripts/test installs nftables).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.nemesis.checker import check
from tests.nemesis.net import Net, in_netns, netns_available
from tests.nemesis.runner import FAULTS, run


@pytest.fixture(scope="module", autouse=True)
def _netns() -> None:
    why = netns_available()
    assert why is None, f"network namespaces, veth, bridge and nft are needed (root, iproute2, nftables): {why}"


def test_cut_drops_both_ways_and_heal_restores() -> None:
    net = Net({"a": 1, "b": 2}).create()
    server = subprocess.Popen(
        net.exec_prefix("b")
        + [sys.executable, "-c", "import socket,time\ns=socket.create_server(('10.201.0.2',7000))\ntime.sleep(30)"],
    )
    try:

        def connect(timeout: float) -> bool:
            try:
                with socket.create_connection((net.addr("b"), 7000), timeout=timeout):
                    return True
            except OSError:
                return False

        deadline = time.monotonic() + 10
        while not in_netns(net.ns("a"), lambda: connect(1.0)):
            assert time.monotonic() < deadline, "the server in b never accepted"
            time.sleep(0.1)
        net.cut("a", "b")
        started = time.monotonic()
        assert not in_netns(net.ns("a"), lambda: connect(1.0))
        assert time.monotonic() - started >= 0.9  # dropped (a timeout), not refused
        net.heal()
        assert in_netns(net.ns("a"), lambda: connect(2.0))
    finally:
        server.kill()
        server.wait(5)
        net.destroy()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert net.tag not in listed


def _h(**e: Any) -> dict[str, Any]:
    return {"t": 1.0, **e}


def _base() -> list[dict[str, Any]]:
    ev = [_h(k="send", p=0, v=v) for v in range(4)]
    ev += [_h(k="ack", p=0, o=v, v=v) for v in range(3)]
    ev += [_h(k="txn", n=1, values=["1-0", "1-1"], outcome="committed")]
    ev += [_h(k="txn", n=2, values=["2-0", "2-1"], outcome="aborted")]
    ev += [_h(k="final", topic="nem", p=0, o=v, v=str(v)) for v in range(3)]
    ev += [_h(k="final", topic="nemtx", p=0, o=0, v="1-0"), _h(k="final", topic="nemtx", p=1, o=0, v="1-1")]
    return [*ev, _h(k="final_done")]


def test_checker_accepts_a_clean_history() -> None:
    r = check(_base())
    assert r.ok, r.problems()
    assert (r.sent, r.acked, r.txns) == (4, 3, {"committed": 1, "aborted": 1})


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda ev: [e for e in ev if not (e["k"] == "final" and e.get("v") == "1")], "lost"),
        (lambda ev: [*ev, _h(k="final", topic="nem", p=0, o=9, v="2")], "duplicated"),
        (lambda ev: [*ev, _h(k="final", topic="nem", p=0, o=9, v="77")], "phantom"),
        (lambda ev: [*ev, _h(k="read", topic="nem", p=0, o=5, v="3")], "reads_diverged"),
        (lambda ev: [*ev, _h(k="final", topic="nemtx", p=2, o=0, v="2-0")], "txn_violations"),
        (lambda ev: [e for e in ev if e.get("v") != "1-1"], "txn_violations"),
        (lambda ev: [e for e in ev if e["k"] != "final_done"], "the final read"),
        (
            lambda ev: [{**e, "o": 1 - e["o"]} if e["k"] == "final" and e.get("v") in ("0", "1") else e for e in ev],
            "moved",
        ),
    ],
)
def test_checker_finds(change: Any, problem: str) -> None:
    r = check(change(_base()))
    assert not r.ok
    assert any(p.startswith(problem) for p in r.problems()), r.problems()


def test_nemesis_run(tmp_path: Path) -> None:
    seconds = float(os.environ.get("NEMESIS_SECONDS", "45"))
    seed = int(os.environ.get("NEMESIS_SEED", "0"))
    report = run(tmp_path / "run", seconds, seed, java=True, log=lambda line: None)
    summary = report.summary()
    print(summary)
    r = report.result
    assert r.ok, f"{r.problems()} (run directory {tmp_path / 'run'})"
    assert report.java is not None and report.java.ok, report.java
    assert len(report.faults) >= seconds // 10, report.faults
    assert {f["fault"] for f in report.faults} <= set(FAULTS)
    assert r.acked >= r.sent * 0.9, summary  # the idempotent producer got through the faults
    assert r.txns.get("committed", 0) > 0 and r.reads > 0, summary
