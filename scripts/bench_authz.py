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
   by round (after an unrecorded warm-up round) so they share the machine's noise. The
   check's µs are then set against the median produce request.
3. Unless --no-kafka, in the same rounds: Apache Kafka 4.3.1 (interop/'s reference broker)
   without an authorizer, and with its StandardAuthorizer and the same ACLs (created through
   CreateAcls by a super user; its controller and inter-broker listener are PLAINTEXT, so
   User:ANONYMOUS is a super user there and the producer logs in as User:alice with SASL
   PLAIN, which costs nothing per request once authenticated).

    python scripts/bench_authz.py [--acls 10000] [--requests 1000] [--rounds 10] [--no-kafka]
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


class KafkaBroker:
    """An Apache Kafka reference broker, stopped by `stop()` (for the same loop as BrokerProcess).
    With an authorizer, `bootstrap` is its SASL listener, where the producer logs in as User:alice."""

    def __init__(self, process: Any, bootstrap: str) -> None:
        self.process, self.bootstrap = process, bootstrap

    def stop(self) -> None:
        self.process.stop()


def start_kafka(root: Path, name: str, acls: list[AclBinding] | None) -> KafkaBroker:
    from interop import apache_kafka, diff_acls
    from kafkapy.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest

    workdir = root / name
    if acls is None:
        k = apache_kafka.start_kafka(workdir)
        admin = d.Conn(k.bootstrap)
    else:
        plain, controller, sasl = (apache_kafka.free_port() for _ in range(3))
        picks = iter([plain, controller])
        original = apache_kafka.free_port
        apache_kafka.free_port = lambda host="127.0.0.1": next(picks)  # type: ignore[assignment]
        try:
            k = apache_kafka.start_kafka(
                workdir,
                {
                    "listeners": f"PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
                    f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
                    "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
                    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                    "SASL_PLAINTEXT:SASL_PLAINTEXT",
                    "sasl.enabled.mechanisms": "PLAIN",
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config": diff_acls.JAAS,
                    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    # the controller and inter-broker listeners are PLAINTEXT: ANONYMOUS must be a super user
                    "super.users": "User:admin;User:ANONYMOUS",
                },
            )
        finally:
            apache_kafka.free_port = original
        admin = diff_acls.login(f"127.0.0.1:{sasl}", "admin")
    try:
        resp: Any = admin.call(d.create(d.topic(TOPIC, 1)), 7)
        assert resp.topics[0].error_code == 0, f"{name}: CreateTopics answered {resp.topics[0].error_code}"
        for i in range(0, len(acls or []), 1000):
            chunk = (acls or [])[i : i + 1000]
            created: Any = admin.call(
                CreateAclsRequest(
                    creations=[
                        AclCreation(
                            resource_type=int(b.resource_type),
                            resource_name=b.name,
                            resource_pattern_type=int(b.pattern_type),
                            principal=b.principal,
                            host=b.host,
                            operation=int(b.operation),
                            permission_type=int(b.permission),
                        )
                        for b in chunk
                    ]
                ),
                3,
            )
            assert all(r.error_code == 0 for r in created.results), name
    finally:
        admin.close()
    broker = KafkaBroker(k, k.bootstrap if acls is None else f"127.0.0.1:{sasl}")
    deadline = time.monotonic() + 60
    while True:  # Kafka applies ACLs and the new topic through its metadata log
        try:
            produce_round(broker.bootstrap, 1, 1, warm_up=0, sasl=acls is not None)
            return broker
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def produce_round(bootstrap: str, records: int, requests: int, warm_up: int = 50, sasl: bool = False) -> list[float]:
    """Latencies (µs) of `requests` sequential Produce requests of `records` records each
    (`sasl`: logged in as User:alice with PLAIN first)."""
    from interop import diff_acls

    batch = d._batch(records)
    request = d.produce(TOPIC, 0, batch, acks=1)
    conn = diff_acls.login(bootstrap, "alice") if sasl else d.Conn(bootstrap)
    try:
        for _ in range(warm_up):
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
    ap.add_argument("--no-kafka", action="store_true", help="without Apache Kafka")
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
    brokers: dict[str, BrokerProcess | KafkaBroker] = {}
    alice = AclBinding(
        ResourceType.TOPIC, TOPIC, PatternType.LITERAL, "User:alice", "*", AclOperation.ALL, AclPermissionType.ALLOW
    )
    kafka_configs: dict[str, list[AclBinding] | None] = {}
    if not args.no_kafka:
        kafka_configs = {"Kafka, no authorizer": None, f"Kafka, {len(acls) + 1} ACLs": [*acls, alice]}
    lat: dict[str, list[float]] = {k: [] for k in [*configs, *kafka_configs]}
    try:
        for name, config in configs.items():
            brokers[name] = start(root, name.replace(" ", "_").replace(",", ""), config)
        for name, config in kafka_configs.items():
            brokers[name] = start_kafka(root, name.replace(" ", "_").replace(",", ""), config)
        for r in range(args.rounds + 1):  # round 0 warms up (the JVM's JIT, kafkapy's codecs), unrecorded
            for name, b in brokers.items():
                sasl = isinstance(b, KafkaBroker) and kafka_configs[name] is not None
                got = produce_round(b.bootstrap, args.records, args.requests, sasl=sasl)
                if r:
                    lat[name] += got
            print(f"  round {r}/{args.rounds} done" if r else "  warm-up round done")
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
            f"{rate:9.0f} records/s  ({med / base:.3f}x kafkapy without authorizer)"
        )
    if kafka_configs:
        names = list(kafka_configs)
        ratio = statistics.median(lat[names[1]]) / statistics.median(lat[names[0]])
        print(f"Kafka with / without ACLs: {ratio:.3f}x")
    check = checks["produce check (authz.denied_topics), literal grant"]
    print(
        f"check with {len(acls)} ACLs: {check:.2f} µs = {100 * check / base:.2f}% of a median produce request "
        f"({base:.0f} µs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
