"""The nemesis's client, run in the client's namespace: `python -m tests.nemesis.workload MODE ...`.

- `create`: the topics (3 partitions, replication factor 3, min.insync.replicas 2).
- `run`: for `--seconds`, three clients side by side, each writing its history as JSON lines:
  an idempotent acks=all producer (one value per send, its partition chosen round robin;
  `ack` with the offset, or `fail` with the error), a transactional producer (transactions of
  three records over the partitions of the second topic, every third aborted on purpose:
  `txn` with `committed`, `aborted` or `unknown`), and a read_committed consumer assigned every
  partition from the start (`read`). Then the producers flush (bounded).
- `read`: after the faults, a read_committed consumer reads every partition from the start to its
  end offset (`final`).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import IO, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

PARTITIONS = 3
COMMON = {"socket.timeout.ms": 5000, "request.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 1000}


class History:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def write(self, **event: Any) -> None:
        event["t"] = round(time.time(), 3)
        with self.lock:
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")


def create(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **COMMON})
    new = [NewTopic(t, PARTITIONS, 3, config={"min.insync.replicas": "2"}) for t in topics]
    for topic, fut in admin.create_topics(new, request_timeout=20).items():
        try:
            fut.result(30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        print("created", topic, flush=True)


def produce(bootstrap: str, topic: str, deadline: float, rate: float, h: History) -> None:
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 20000,
            **COMMON,
        }
    )

    def done(err: KafkaError | None, msg: Any) -> None:
        value = int(msg.value())
        if err is None:
            h.write(k="ack", p=msg.partition(), o=msg.offset(), v=value)
        else:
            h.write(k="fail", p=msg.partition(), v=value, err=err.name())

    i = 0
    start = time.monotonic()
    while time.monotonic() < deadline:
        part = i % PARTITIONS
        try:
            p.produce(topic, str(i).encode(), partition=part, on_delivery=done)
            h.write(k="send", p=part, v=i)
            i += 1
        except BufferError:
            pass
        p.poll(0)
        ahead = i / rate - (time.monotonic() - start)
        p.poll(max(0.0, min(ahead, 0.1)))
    left = p.flush(30)
    h.write(k="flushed", unflushed=left)


def transact(bootstrap: str, topic: str, deadline: float, h: History) -> None:
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": "nemesis-txn",
        "transaction.timeout.ms": 15000,
        "message.timeout.ms": 15000,
        **COMMON,
    }
    p: Producer | None = None
    n = 0
    while time.monotonic() < deadline:
        if p is None:
            try:
                p = Producer(conf)
                p.init_transactions(10)
            except KafkaException as e:
                h.write(k="txn_init_failed", err=str(e.args[0]))
                p = None
                time.sleep(0.5)
                continue
        n += 1
        values = [f"{n}-{j}" for j in range(3)]
        outcome = "unknown"
        try:
            p.begin_transaction()
            for j, v in enumerate(values):
                p.produce(topic, v.encode(), partition=(n + j) % PARTITIONS)
            if n % 3 == 0:
                p.abort_transaction(10)
                outcome = "aborted"
            else:
                for _ in range(5):
                    try:
                        p.commit_transaction(10)
                        outcome = "committed"
                        break
                    except KafkaException as e:
                        if not e.args[0].retriable():
                            raise
        except KafkaException as e:
            err = e.args[0]
            h.write(k="txn_error", n=n, err=str(err))
            if err.txn_requires_abort():
                try:
                    p.abort_transaction(10)
                    outcome = "aborted"
                except KafkaException:
                    p = None
            else:
                p = None  # fatal, or a timeout we cannot resolve: outcome unknown
        h.write(k="txn", n=n, values=values, outcome=outcome)
        time.sleep(0.05)


def consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **COMMON,
        }
    )


def read(bootstrap: str, topics: list[str], deadline: float, h: History, kind: str) -> None:
    c = consumer(bootstrap, f"nemesis-{kind}")
    c.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
    ends: dict[tuple[str, int], int] = {}
    positions: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None:
            topic, part, offset = str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
            h.write(k=kind, topic=topic, p=part, o=offset, v=(msg.value() or b"").decode())
            positions[(topic, part)] = offset + 1
        if kind == "final" and msg is None:
            for t in topics:
                for part in range(PARTITIONS):
                    if (t, part) not in ends:
                        try:
                            ends[(t, part)] = c.get_watermark_offsets(TopicPartition(t, part), timeout=5)[1]
                        except KafkaException:
                            continue
            done = len(ends) == len(topics) * PARTITIONS
            for tp, end in ends.items():
                pos = c.position([TopicPartition(tp[0], tp[1])])[0].offset
                if max(pos, positions.get(tp, 0)) < end:
                    done = False
            if done:
                h.write(k="final_done", ends={f"{t}/{p}": e for (t, p), e in ends.items()})
                break
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["create", "run", "read"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="nem")
    ap.add_argument("--txn-topic", default="nemtx")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--out")
    args = ap.parse_args()
    topics = [args.topic, args.txn_topic]
    if args.mode == "create":
        create(args.bootstrap, [*topics, "nemj"])  # nemj: Kafka's VerifiableProducer (verifiable.py)
        return
    with open(args.out, "a") as out:
        h = History(out)
        deadline = time.monotonic() + args.seconds
        if args.mode == "read":
            read(args.bootstrap, topics, deadline, h, "final")
            return
        threads = [
            threading.Thread(target=produce, args=(args.bootstrap, args.topic, deadline, args.rate, h)),
            threading.Thread(target=transact, args=(args.bootstrap, args.txn_topic, deadline, h)),
            threading.Thread(target=read, args=(args.bootstrap, topics, deadline + 5, h, "read")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.write(k="workload_done")


if __name__ == "__main__":
    main()
