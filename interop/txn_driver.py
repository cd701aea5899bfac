"""confluent-kafka transactional programs run as subprocesses by interop/test_transactions.py.

python -m interop.txn_driver ctp BOOTSTRAP IN OUT GROUP TXN_ID [--pause S] [--idle S] [--until-end]
    consume-transform-produce: read IN (read_committed, group GROUP), write
    "<value>:t" to OUT inside a transaction per poll batch, with the
    consumed offsets sent via send_offsets_to_transaction; `--pause`
    sleeps inside every transaction (so a SIGKILL lands mid-transaction);
    exits after `--idle` seconds without input (after the first input,
    which it waits up to 60 s for), or with `--until-end` as soon as a
    commit has taken it to the end of every partition of IN (which must
    not grow meanwhile). Prints "COMMITTED <n>" after each commit (n:
    records so far).

python -m interop.txn_driver produce BOOTSTRAP TOPIC TXN_ID COUNT SIZE [--pause S]
    COUNT transactions of SIZE records "<txn>-<i>"; prints "BEGIN <txn>"
    once a transaction's records are sent and "COMMITTED <txn>" or
    "ABORTED <txn>" when it ends (retriable errors are retried, abortable
    ones abort; a fatal error ends the program with "FATAL").
"""

from __future__ import annotations

import argparse
import sys
import time

import confluent_kafka as ck


def say(line: str) -> None:
    print(line, flush=True)


def ctp(args: argparse.Namespace) -> int:
    consumer = ck.Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })  # fmt: skip
    producer = ck.Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.txn_id,
        "transaction.timeout.ms": 10000,
        "linger.ms": 5,
    })  # fmt: skip
    producer.init_transactions(30)
    partitions = len(consumer.list_topics(args.input, timeout=10).topics[args.input].partitions)
    consumer.subscribe([args.input])
    done = 0
    last_input = time.monotonic() + 60  # the first input may wait for a rebalance (a dead member's session)
    while time.monotonic() - last_input < args.idle:
        msgs = consumer.consume(200, 0.5)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        last_input = time.monotonic()
        producer.begin_transaction()
        for m in msgs:
            producer.produce(args.output, m.value() + b":t", key=m.key(), partition=m.partition())
        if args.pause:
            producer.flush(10)
            time.sleep(args.pause)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
        done += len(msgs)
        say(f"COMMITTED {done}")
        if args.until_end and _at_end(consumer, args.input, partitions):
            break
    consumer.close()
    return 0


def _at_end(consumer: ck.Consumer, topic: str, partitions: int) -> bool:
    """The consumer owns all `partitions` of `topic` and its positions are at their high watermarks
    (as its last fetches reported them: no request here)."""
    mine = [tp for tp in consumer.assignment() if tp.topic == topic]
    if len(mine) != partitions:
        return False
    for tp in consumer.position(mine):
        high = consumer.get_watermark_offsets(tp, cached=True)[1]
        if high < 0 or tp.offset < high:
            return False
    return True


def produce(args: argparse.Namespace) -> int:
    producer = ck.Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.txn_id,
        "transaction.timeout.ms": 15000,
        "message.timeout.ms": 15000,
    })  # fmt: skip
    producer.init_transactions(30)
    for t in range(args.count):
        producer.begin_transaction()
        for i in range(args.size):
            producer.produce(args.topic, f"{t}-{i}".encode(), partition=i % 2)
        producer.flush(10)
        say(f"BEGIN {t}")
        if args.pause:
            time.sleep(args.pause)
        while True:
            try:
                producer.commit_transaction(30)
                say(f"COMMITTED {t}")
                break
            except ck.KafkaException as e:
                err = e.args[0]
                if err.retriable():
                    continue
                if err.txn_requires_abort():
                    producer.abort_transaction(30)
                    say(f"ABORTED {t}")
                    break
                say(f"FATAL {err}")
                return 1
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("ctp")
    c.add_argument("bootstrap")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("group")
    c.add_argument("txn_id")
    c.add_argument("--pause", type=float, default=0.0)
    c.add_argument("--idle", type=float, default=5.0)
    c.add_argument("--until-end", action="store_true")
    p = sub.add_parser("produce")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("txn_id")
    p.add_argument("count", type=int)
    p.add_argument("size", type=int)
    p.add_argument("--pause", type=float, default=0.0)
    args = ap.parse_args(argv)
    return ctp(args) if args.mode == "ctp" else produce(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
