#!/usr/bin/env python3
"""`scripts/bench_authz.py`: what the authorization check costs, with 10,000 ACLs loaded.

1. Micro: one check as the Produce handler makes it (`authz.denied_topics(ctx, Write,
   [topic])`, which ends in `Authorizer.authorize`) in µs, against 10,000 ACLs
   (LITERAL and PREFIXED, topics, groups and transactional ids, ALLOW and DENY, some
   host-bound, spread over --principals principals), for a principal granted by a
   literal ACL, by a prefixed ACL, and one denied; and the same call without an
   authorizer (one attribute test).
2. On broker processes: Produce requests (acks=1, one partition, one connection,
   sequential) to a broker without an authorizer, with an authorizer and only the
   producer's ACL, and with an authorizer and 10,000 ACLs (acls.json written before
   start); median and p99 latency and records/s, the configurations interleaved round
   by round so they share the machine's noise. The check's µs are then set against the
   median produce request.

    python scripts/bench_authz.py [--acls 10000] [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from interop import differential as d
from kafkapy.security.acl import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    Authorizer,
    PatternType,
    ResourceType,
)
from kafkapy.server import authz
from kafkapy.testing import BrokerProcess

TOPIC = "bench-authz"
PRODUCER = "User:ANONYMOUS"  # the PLAINTEXT listener's principal


def make_acls(n: int, principals: int) -> list[AclBinding]:
    """`n` ACLs: per principal `svc<p>`, literal topics `svc<p>.orders-<j>`, prefixes `svc<p>.` and
    `svc<p>.<env>.`, groups, transactional ids, a DENY now and then, some bound to one host."""
    out: list[AclBinding] = []
    op = AclOperation
    i = 0
    while len(out) < n:
        p = i % principals
        j = i // principals
        who = f"User:svc{p}"
        host = "*" if i % 7 else f"10.0.{p % 250}.{j % 250}"
        kind = i % 10
        if kind < 4:
            b = (ResourceType.TOPIC, f"svc{p}.orders-{j}", PatternType.LITERAL, op.WRITE, AclPermissionType.ALLOW)
        elif kind < 6:
            env = ("dev", "prod", "stage")[j % 3]
            b = (ResourceType.TOPIC, f"svc{p}.{env}.", PatternType.PREFIXED, op.READ, AclPermissionType.ALLOW)
        elif kind == 6:
            b = (ResourceType.TOPIC, f"svc{p}.", PatternType.PREFIXED, op.DESCRIBE, AclPermissionType.ALLOW)
        elif kind == 7:
            b = (ResourceType.GROUP, f"svc{p}-g{j}", PatternType.LITERAL, op.READ, AclPermissionType.ALLOW)
        elif kind == 8:
            b = (ResourceType.TRANSACTIONAL_ID, f"svc{p}-tx", PatternType.PREFIXED, op.WRITE, AclPermissionType.ALLOW)
        else:
            b = (ResourceType.TOPIC, f"svc{p}.orders-{j}", PatternType.LITERAL, op.DELETE, AclPermissionType.DENY)
        binding = AclBinding(b[0], b[1], b[2], who, host, b[3], b[4])
        if binding not in out:
            out.append(binding)
        i += 1
    return out


# ------------------------------------------------------------------ micro


@dataclass(slots=True)
class _Conn:
    principal: str
    peer_host: str


@dataclass(slots=True)
class _State:
    authorizer: Authorizer | None


@dataclass(slots=True)
class _Ctx:
    state: _State
    conn: _Conn


def per_call_us(fn: Callable[[], object], loops: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean µs of one call over `loops` calls."""
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        results.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(results)


def micro(acls: list[AclBinding], loops: int) -> dict[str, float]:
    full = Authorizer()
    full.replace_all(acls)
    cases = {
        "literal grant": ("User:svc17", "svc17.orders-3"),
        "prefixed grant": ("User:svc17", "svc17.prod.payments"),
        "denied (no ACL)": ("User:nobody", "svc17.orders-3"),
    }
    out: dict[str, float] = {}
    for label, (principal, topic) in cases.items():
        op = AclOperation.READ if "prefixed" in label else AclOperation.WRITE
        ctx: Any = _Ctx(_State(full), _Conn(principal, "10.1.2.3"))
        out[f"authorize, {label}, decided (no cache)"] = per_call_us(
            lambda p=principal, o=op, t=topic: full._decide(p, "10.1.2.3", o, ResourceType.TOPIC, t), loops
        )
        out[f"authorize, {label}, remembered"] = per_call_us(
            lambda p=principal, o=op, t=topic: full.authorize(p, "10.1.2.3", o, ResourceType.TOPIC, t), loops
        )
        out[f"produce check (authz.denied_topics), {label}"] = per_call_us(
            lambda c=ctx, o=op, t=topic: authz.denied_topics(c, o, [t]), loops
        )
    none_ctx: Any = _Ctx(_State(None), _Conn("User:svc17", "10.1.2.3"))
    out["produce check, no authorizer"] = per_call_us(
        lambda: authz.denied_topics(none_ctx, AclOperation.WRITE, ["svc17.orders-3"]), loops
    )
    return out


# ------------------------------------------------------------------ brokers


def start(root: Path, name: str, acls: list[AclBinding] | None) -> BrokerProcess:
    data = root / name / "data"
    data.mkdir(parents=True)
    settings = {"group.initial.rebalance.delay.ms": "0"}
    if acls is not None:
        settings["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        settings["super.users"] = "User:admin"
        image = {"version": 1, "acls": [b.to_json() for b in acls]}
        (data / "acls.json").write_text(json.dumps(image))
    b = BrokerProcess(data, root / name / "broker.log", settings=settings).start()
    conn = d.Conn(b.bootstrap)
    try:
        resp: Any = conn.call(d.create(d.topic(TOPIC, 1)), 7)
        code = resp.topics[0].error_code
        assert code == 0, f"{name}: CreateTopics answered {code}"
    finally:
        conn.close()
    return b


def produce_round(bootstrap: str, records: int, requests: int) -> list[float]:
    """Latencies (µs) of `requests` sequential Produce requests of `records` records each."""
    batch = d._batch(records)
    request = d.produce(TOPIC, 0, batch, acks=1)
    conn = d.Conn(bootstrap)
    try:
        for _ in range(50):  # warm-up
            conn.call(request, 9)
        out: list[float] = []
        for _ in range(requests):
            t0 = time.perf_counter()
            resp: Any = conn.call(request, 9)
            out.append((time.perf_counter() - t0) * 1e6)
            assert resp.responses[0].partition_responses[0].error_code == 0
        return out
    finally:
        conn.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acls", type=int, default=10_000)
    ap.add_argument("--principals", type=int, default=1_000)
    ap.add_argument("--loops", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1_000, help="produce requests per configuration per round")
    ap.add_argument("--records", type=int, default=10, help="records per produce request")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-brokers", action="store_true", help="the micro benchmark only")
    args = ap.parse_args(argv)

    print(f"# bench_authz: {platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    acls = make_acls(args.acls, args.principals)
    kinds = {(b.resource_type.name, b.pattern_type.name) for b in acls}
    print(f"{len(acls)} ACLs, {len({b.principal for b in acls})} principals, kinds {sorted(kinds)}")
    checks = micro(acls, args.loops)
    for label, us in checks.items():
        print(f"  {label:58s} {us:7.3f} µs")
    if args.no_brokers:
        return 0

    grant = AclBinding(
        ResourceType.TOPIC, TOPIC, PatternType.LITERAL, PRODUCER, "*", AclOperation.ALL, AclPermissionType.ALLOW
    )
    configs = {"no authorizer": None, "authorizer, 1 ACL": [grant], f"authorizer, {len(acls) + 1} ACLs": [*acls, grant]}
    root = Path(tempfile.mkdtemp(prefix="bench-authz-"))
    brokers: dict[str, BrokerProcess] = {}
    lat: dict[str, list[float]] = {k: [] for k in configs}
    try:
        for name, config in configs.items():
            brokers[name] = start(root, name.replace(" ", "_").replace(",", ""), config)
        for r in range(args.rounds):
            for name, b in brokers.items():
                lat[name] += produce_round(b.bootstrap, args.records, args.requests)
            print(f"  round {r + 1}/{args.rounds} done")
    finally:
        for b in brokers.values():
            b.stop()
    print(f"Produce, acks=1, {args.records} records/request, sequential, {args.rounds}x{args.requests} requests:")
    base = statistics.median(lat["no authorizer"])
    for name, values in lat.items():
        med = statistics.median(values)
        rate = args.records * 1e6 / statistics.mean(values)
        print(
            f"  {name:28s} median {med:7.1f} µs  p99 {pct(values, 0.99):7.1f} µs  "
            f"{rate:9.0f} records/s  ({med / base:.3f}x no authorizer)"
        )
    check = checks["produce check (authz.denied_topics), literal grant"]
    print(
        f"check with {len(acls)} ACLs: {check:.2f} µs = {100 * check / base:.2f}% of a median produce request "
        f"({base:.0f} µs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
