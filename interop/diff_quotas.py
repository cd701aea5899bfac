"""Client quotas (APIs 48, 49, and their enforcement): one scenario with raw requests, recorded against
Apache Kafka 4.3.1 (golden file) and compared with kafkapy by interop/test_quotas.py.

- AlterClientQuotas validation: negative, zero and fractional values, unknown keys, empty, duplicate
  and unknown entity types, `ip` mixed with users, empty names, validate_only.
- Quotas set on users, client-ids, (user, client-id) pairs and defaults, then DescribeClientQuotas with
  exact / default / any matches, strict and not; a removal.
- Enforcement, shaped so timing noise does not matter: a producer over its producer_byte_rate gets a
  throttle_time_ms > 0 within a few requests and never more than the quota window; a consumer over its
  consumer_byte_rate the same, with an empty response while throttled; CreateTopics v6+ past
  controller_mutation_rate answers THROTTLING_QUOTA_EXCEEDED (v5: created, throttle time set), and
  CreatePartitions v3 / DeleteTopics v5 the same (v2 / v4: served, throttled); a
  request_percentage far below any request's time throttles the first request.

Both brokers run with quota.window.num=2 and quota.window.size.seconds=1 so a burst is short.

    python -m interop.diff_quotas record   # against Apache Kafka 4.3.1 (golden file)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol.frames import decode_response, encode_request
from kafkapy.protocol.messages.alter_client_quotas_request import (
    AlterClientQuotasRequest,
    EntityData,
    EntryData,
    OpData,
)
from kafkapy.protocol.messages.create_topics_request import CreateTopicsRequest
from kafkapy.protocol.messages.describe_client_quotas_request import ComponentData, DescribeClientQuotasRequest
from kafkapy.protocol.primitives import Message
from tests.server.rawclient import RawClient

GOLDEN = Path(__file__).resolve().parent / "golden_kafka" / "quotas.json"
SETTINGS = {
    "quota.window.num": "2",
    "quota.window.size.seconds": "1",
    "controller.quota.window.num": "2",
    "controller.quota.window.size.seconds": "1",
}
# Kafka's quotas reach the broker through the metadata log a moment after the answer (kafkapy applies
# them before answering: its test waits less)
SETTLE_S = 1.0

Entity = list[tuple[str, str | None]]
Ops = list[tuple[str, float, bool]]


def request(c: RawClient, body: Message, version: int, client_id: str = "rawclient") -> Any:
    c.correlation_id += 1
    c.send_raw(encode_request(body, version, c.correlation_id, client_id=client_id))
    cid, resp = decode_response(body.API_KEY, version, c.read_frame())
    assert cid == c.correlation_id
    return resp


def alter(c: RawClient, *entries: tuple[Entity, Ops], validate_only: bool = False, version: int = 1) -> Any:
    req = AlterClientQuotasRequest(
        entries=[
            EntryData(
                entity=[EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[OpData(key=k, value=v, remove=r) for k, v, r in ops],
            )
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    resp = request(c, req, version)
    answers = [
        {
            "error": e.error_code,
            "message": e.error_message,
            "entity": sorted([x.entity_type, x.entity_name] for x in e.entity),  # type: ignore[type-var]
        }
        for e in resp.entries
    ]
    return sorted(answers, key=lambda a: json.dumps(a["entity"]))  # Kafka answers in its HashMap's order


def describe(c: RawClient, *components: tuple[str, int, str | None], strict: bool = False) -> Any:
    req = DescribeClientQuotasRequest(
        components=[ComponentData(entity_type=t, match_type=m, match=x) for t, m, x in components], strict=strict
    )
    resp = request(c, req, 1)
    if resp.error_code:
        return {"error": resp.error_code, "message": resp.error_message}
    entries = [
        [
            sorted(f"{x.entity_type}={x.entity_name}" for x in e.entity),
            sorted(f"{v.key}={v.value:g}" for v in e.values),
        ]
        for e in resp.entries or []
    ]
    return {"error": 0, "entries": sorted(entries)}


def _set(key: str, value: float) -> tuple[str, float, bool]:
    return (key, value, False)


def validation(c: RawClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    client = [("client-id", "v1")]
    cases: dict[str, tuple[Entity, Ops]] = {
        "negative": (client, [_set("producer_byte_rate", -1)]),
        "zero": (client, [_set("producer_byte_rate", 0)]),
        "fractional long": (client, [_set("producer_byte_rate", 1.5)]),
        "fractional double": (client, [_set("request_percentage", 12.5)]),
        "request_percentage over 100": (client, [_set("request_percentage", 250)]),
        "huge long": (client, [_set("consumer_byte_rate", 1e30)]),
        "unknown key": (client, [_set("foo", 1)]),
        "ip key on client": (client, [_set("connection_creation_rate", 5)]),
        "remove unset": (client, [("producer_byte_rate", 0, True)]),
        "set and remove same key": (client, [_set("producer_byte_rate", 5), ("producer_byte_rate", 0, True)]),
        "empty entity": ([], [_set("producer_byte_rate", 5)]),
        "no ops": (client, []),
        "duplicate type": ([("user", "a"), ("user", "b")], [_set("producer_byte_rate", 5)]),
        "unknown type": ([("group", "g")], [_set("producer_byte_rate", 5)]),
        "ip and user": ([("ip", "1.2.3.4"), ("user", "a")], [_set("connection_creation_rate", 5)]),
        "ip byte rate": ([("ip", "1.2.3.4")], [_set("producer_byte_rate", 5)]),
        "ip valid": ([("ip", "1.2.3.4")], [_set("connection_creation_rate", 5)]),
        "ip bad address": ([("ip", "not-an-ip")], [_set("connection_creation_rate", 5)]),
        "ip fractional": ([("ip", "1.2.3.4")], [_set("connection_creation_rate", 2.5)]),
        "empty user": ([("user", "")], [_set("producer_byte_rate", 5)]),
        "blank client": ([("client-id", " ")], [_set("producer_byte_rate", 5)]),
        "user and client valid": ([("user", "a"), ("client-id", "b")], [_set("controller_mutation_rate", 2.5)]),
    }
    for name, entry in cases.items():
        out[f"alter {name}"] = alter(c, entry, validate_only=True)
    out["alter two entries, one bad"] = alter(
        c,
        (client, [_set("producer_byte_rate", -5)]),
        ([("user", "x")], [_set("producer_byte_rate", 5)]),
        validate_only=True,
    )
    out["alter same entity twice"] = alter(
        c, (client, [_set("producer_byte_rate", 5)]), (client, [_set("consumer_byte_rate", 5)]), validate_only=True
    )
    out["alter v0 validate"] = alter(c, (client, [_set("producer_byte_rate", -1)]), validate_only=True, version=0)
    out["describe after validate_only"] = describe(c)
    return out


QUOTAS: list[tuple[Entity, Ops]] = [
    ([("user", "alice")], [_set("producer_byte_rate", 1024), _set("request_percentage", 50)]),
    ([("user", None)], [_set("consumer_byte_rate", 2048)]),
    ([("client-id", "c1")], [_set("request_percentage", 25.5)]),
    ([("client-id", None)], [_set("producer_byte_rate", 4096)]),
    ([("user", "alice"), ("client-id", "c1")], [_set("controller_mutation_rate", 10)]),
    ([("user", None), ("client-id", "c1")], [_set("producer_byte_rate", 111)]),
    ([("user", "alice"), ("client-id", None)], [_set("producer_byte_rate", 222)]),
    ([("user", None), ("client-id", None)], [_set("producer_byte_rate", 333)]),
    ([("user", "bob")], [_set("consumer_byte_rate", 3000)]),
    ([("ip", "127.0.0.2")], [_set("connection_creation_rate", 5)]),
    ([("ip", None)], [_set("connection_creation_rate", 100)]),
]

EXACT, DEFAULT, ANY = 0, 1, 2


def stored(c: RawClient, settle: float) -> dict[str, Any]:
    out: dict[str, Any] = {"alter set": alter(c, *QUOTAS)}
    time.sleep(settle)
    filters: dict[str, tuple[list[tuple[str, int, str | None]], bool]] = {
        "all": ([], False),
        "all strict": ([], True),
        "user alice": ([("user", EXACT, "alice")], False),
        "user alice strict": ([("user", EXACT, "alice")], True),
        "user default": ([("user", DEFAULT, None)], False),
        "user default strict": ([("user", DEFAULT, None)], True),
        "user any": ([("user", ANY, None)], False),
        "user any strict": ([("user", ANY, None)], True),
        "client c1": ([("client-id", EXACT, "c1")], False),
        "client c1 strict": ([("client-id", EXACT, "c1")], True),
        "client any strict": ([("client-id", ANY, None)], True),
        "user any client any strict": ([("user", ANY, None), ("client-id", ANY, None)], True),
        "user alice client default": ([("user", EXACT, "alice"), ("client-id", DEFAULT, None)], False),
        "user default client c1": ([("user", DEFAULT, None), ("client-id", EXACT, "c1")], True),
        "user nobody": ([("user", EXACT, "nobody")], False),
        "ip any": ([("ip", ANY, None)], False),
        "ip default strict": ([("ip", DEFAULT, None)], True),
    }
    for name, (components, strict) in filters.items():
        out[f"describe {name}"] = describe(c, *components, strict=strict)
    out["alter remove one key"] = alter(c, ([("user", "alice")], [("producer_byte_rate", 0, True)]))
    out["alter remove last key"] = alter(c, ([("user", "bob")], [("consumer_byte_rate", 0, True)]))
    out["alter update"] = alter(c, ([("client-id", "c1")], [_set("request_percentage", 75)]))
    time.sleep(settle)
    out["describe user any after removal"] = describe(c, ("user", ANY, None))
    out["describe client c1 after update"] = describe(c, ("client-id", EXACT, "c1"), strict=True)
    # leave nothing behind for the enforcement part
    cleanup: list[tuple[Entity, Ops]] = []
    for entity, ops in QUOTAS:
        cleanup.append((entity, [(k, 0, True) for k, _, _ in ops]))
    out["alter remove all"] = sorted(
        e["error"] for e in alter(c, *cleanup, ([("user", "alice")], [("request_percentage", 0, True)]))
    )
    time.sleep(settle)
    out["describe all after cleanup"] = describe(c)
    return out


def batch(size: int) -> bytes:
    from kafkapy.protocol import records

    return bytes(records.build_batch([(b"k", b"v" * size, [], int(time.time() * 1000))]))


def enforcement(c: RawClient, bootstrap: str, settle: float) -> dict[str, Any]:
    from interop.differential import create, fetch, metadata, produce, topic

    out: dict[str, Any] = {}
    request(c, create(topic("quota-t", 1, 1)), 5)
    alter(
        c,
        ([("client-id", "slow-producer")], [_set("producer_byte_rate", 20_000)]),
        ([("client-id", "slow-consumer")], [_set("consumer_byte_rate", 20_000)]),
        ([("client-id", "slow-admin")], [_set("controller_mutation_rate", 1)]),
        ([("client-id", "slow-requests")], [_set("request_percentage", 0.0001)]),
    )
    time.sleep(settle)
    with RawClient(bootstrap) as r:  # any request takes far more than 0.0001 % of a thread-second
        answer = request(r, metadata("quota-t"), 9, client_id="slow-requests")
        out["request_percentage: first request throttled"] = answer.throttle_time_ms > 0
    data = batch(10_000)
    with RawClient(bootstrap) as p:
        throttles, muted = [], []
        for _ in range(12):
            began = time.monotonic()
            r = request(p, produce("quota-t", 0, data), 9, client_id="slow-producer")
            if throttles and throttles[-1] > 0:  # KIP-219: the channel was muted after that response
                muted.append((time.monotonic() - began) * 1000 >= 0.8 * throttles[-1] - 50)
            throttles.append(r.throttle_time_ms)
            assert r.responses[0].partition_responses[0].error_code == 0, r
        first = next((i for i, t in enumerate(throttles) if t > 0), None)
        out["produce throttled within 6 requests"] = first is not None and first < 6
        out["produce muted for the throttle time"] = bool(muted) and all(muted)
        out["_debug produce throttles"] = throttles
    with RawClient(bootstrap) as f:
        throttles, empties = [], 0
        for _ in range(12):
            r = request(f, fetch("quota-t", 0, 0, 200_000), 12, client_id="slow-consumer")
            throttles.append(r.throttle_time_ms)
            if r.throttle_time_ms > 0 and not r.responses:
                empties += 1
        first = next((i for i, t in enumerate(throttles) if t > 0), None)
        out["fetch throttled within 6 requests"] = first is not None and first < 6
        out["_debug fetch throttles"] = throttles
        out["fetch throttled responses empty"] = empties == sum(1 for t in throttles if t > 0)
    with RawClient(bootstrap) as a:
        # the bucket holds quota x window.num x window.size = 2 partitions; 6 leave it 4 s below zero
        first = request(
            a, CreateTopicsRequest(topics=[topic("quota-m1", 6, 1)], timeout_ms=10_000), 7, client_id="slow-admin"
        )
        out["create 6 partitions, 2 tokens"] = {
            "error": first.topics[0].error_code,
            "throttled": first.throttle_time_ms > 0,
        }
        second = request(
            a, CreateTopicsRequest(topics=[topic("quota-m2", 1, 1)], timeout_ms=10_000), 7, client_id="slow-admin"
        )
        out["create while over, v7"] = {
            "error": second.topics[0].error_code,
            "message": second.topics[0].error_message,
            "throttled": second.throttle_time_ms > 0,
        }
        out["_debug mutation throttles"] = [first.throttle_time_ms, second.throttle_time_ms]
    with RawClient(bootstrap) as a:  # a new connection: the last answer muted the other one (KIP-219)
        third = request(
            a, CreateTopicsRequest(topics=[topic("quota-m3", 1, 1)], timeout_ms=10_000), 5, client_id="slow-admin"
        )
        out["create while over, v5"] = {
            "error": third.topics[0].error_code,
            "throttled": third.throttle_time_ms > 0,
        }
    out.update(partition_mutations(c, bootstrap, settle))
    alter(
        c,
        ([("client-id", "slow-producer")], [("producer_byte_rate", 0, True)]),
        ([("client-id", "slow-consumer")], [("consumer_byte_rate", 0, True)]),
        ([("client-id", "slow-admin")], [("controller_mutation_rate", 0, True)]),
        ([("client-id", "slow-requests")], [("request_percentage", 0, True)]),
    )
    time.sleep(settle + 1.0)
    with RawClient(bootstrap) as p:
        r = request(p, produce("quota-t", 0, data), 9, client_id="slow-producer")
        out["produce after removal"] = r.throttle_time_ms
    return out


def partition_mutations(c: RawClient, bootstrap: str, settle: float) -> dict[str, Any]:
    """CreatePartitions and DeleteTopics against controller_mutation_rate=1 (a bucket of 2): 6 new
    partitions empty it (4 below zero); then strict versions are refused, permissive ones throttled."""
    from interop.differential import create, create_partitions, delete_topics, topic

    out: dict[str, Any] = {}
    for name in ("quota-p1", "quota-p2"):
        request(c, create(topic(name, 1, 1)), 5)
    alter(c, ([("client-id", "slow-admin2")], [_set("controller_mutation_rate", 1)]))
    time.sleep(settle)

    def shape(r: Any, results: str) -> dict[str, Any]:
        first = getattr(r, results)[0]
        return {"error": first.error_code, "message": first.error_message, "throttled": r.throttle_time_ms > 0}

    with RawClient(bootstrap) as a:
        r = request(a, create_partitions("quota-p1", 7), 3, client_id="slow-admin2")
        out["create partitions +6, 2 tokens, v3"] = shape(r, "results")
    with RawClient(bootstrap) as a:
        r = request(a, create_partitions("quota-p1", 8), 3, client_id="slow-admin2")
        out["create partitions while over, v3"] = shape(r, "results")
    with RawClient(bootstrap) as a:
        r = request(a, create_partitions("quota-p1", 8), 2, client_id="slow-admin2")
        out["create partitions while over, v2"] = shape(r, "results")
    with RawClient(bootstrap) as a:
        r = request(a, delete_topics("quota-p2", 5), 5, client_id="slow-admin2")
        out["delete topic while over, v5"] = shape(r, "responses")
    with RawClient(bootstrap) as a:
        r = request(a, delete_topics("quota-p2", 4), 4, client_id="slow-admin2")
        out["delete topic while over, v4"] = {"error": r.responses[0].error_code, "throttled": r.throttle_time_ms > 0}
    alter(c, ([("client-id", "slow-admin2")], [("controller_mutation_rate", 0, True)]))
    return out


def run(bootstrap: str, settle: float = SETTLE_S) -> dict[str, Any]:
    with RawClient(bootstrap) as c:
        out = validation(c)
        out.update(stored(c, settle))
        out.update(enforcement(c, bootstrap, settle))
    return out


def record() -> Path:
    return record_golden(GOLDEN, "quotas-", run, SETTINGS)


def load() -> dict[str, Any]:
    return load_golden(GOLDEN, meta=False)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        print(record())
    else:
        print(__doc__)
