"""Group consumers of each Python client behind one small interface, one thread per member.

A `Member` runs its client's poll loop in its own thread (a member blocked in
a rebalance must not stop the others), records what it consumed and its
current assignment. `python -m interop.groups_driver CLIENT BOOTSTRAP GROUP
TOPIC ASSIGNOR [INSTANCE]` runs one member in a process of its own, printing
its assignment, so a test can SIGKILL it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

SESSION_MS = 3000
HEARTBEAT_MS = 300


@dataclass(frozen=True, slots=True)
class Got:
    member: str
    partition: int
    offset: int
    value: bytes | None


class ConsumerImpl(Protocol):
    assigns: int  # times the client reported an assignment (a rebalance it took part in)

    def open(self) -> None: ...
    def poll(self, timeout: float) -> list[tuple[int, int, bytes | None]]: ...
    def assignment(self) -> set[int]: ...
    def commit(self) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Spec:
    bootstrap: str
    group: str
    topic: str
    assignor: str
    instance_id: str | None = None
    auto_commit: bool = False


# ---------------------------------------------------------------- confluent-kafka


class Confluent:
    name = "confluent-kafka"
    assignors = ("range", "roundrobin", "cooperative-sticky")

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.c: Any = None
        self.parts: set[int] = set()
        self.assigns = 0

    def open(self) -> None:
        from confluent_kafka import Consumer

        conf = {
            "bootstrap.servers": self.spec.bootstrap,
            "group.id": self.spec.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": self.spec.auto_commit,
            "partition.assignment.strategy": self.spec.assignor,
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "topic.metadata.refresh.interval.ms": 1000,
        }
        if self.spec.instance_id:
            conf["group.instance.id"] = self.spec.instance_id
        self.c = Consumer(conf)
        self.c.subscribe([self.spec.topic], on_assign=self._assigned)

    def _assigned(self, _consumer: Any, _parts: Any) -> None:
        self.assigns += 1

    def poll(self, timeout: float) -> list[tuple[int, int, bytes | None]]:
        msgs = self.c.consume(500, timeout)
        self.parts = {tp.partition for tp in self.c.assignment()}
        return [(m.partition(), m.offset(), m.value()) for m in msgs if not m.error()]

    def assignment(self) -> set[int]:
        return self.parts

    def commit(self) -> None:
        try:
            self.c.commit(asynchronous=False)
        except Exception as e:
            if "NO_OFFSET" not in str(e):
                raise

    def close(self) -> None:
        self.c.close()


# ---------------------------------------------------------------- kafka-python


class KafkaPython:
    name = "kafka-python"
    assignors = ("range", "roundrobin", "sticky", "cooperative-sticky")
    # kafka-python 3.0.12 can stop heartbeating after a rebalance that outlasts a
    # short poll() timeout (a client-side zombie state); long polls avoid it.
    poll_s = 1.0

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.c: Any = None
        self.assigns = 0

    def _assignor(self) -> Any:
        from kafka.coordinator.assignors.cooperative_sticky import (
            CooperativeStickyAssignor,
        )
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        from kafka.coordinator.assignors.sticky.sticky_assignor import (
            StickyPartitionAssignor,
        )

        return {
            "range": RangePartitionAssignor,
            "roundrobin": RoundRobinPartitionAssignor,
            "sticky": StickyPartitionAssignor,
            "cooperative-sticky": CooperativeStickyAssignor,
        }[self.spec.assignor]

    def open(self) -> None:
        from kafka import KafkaConsumer

        kw: dict[str, Any] = {}
        if self.spec.instance_id:
            kw["group_instance_id"] = self.spec.instance_id
        self.c = KafkaConsumer(
            bootstrap_servers=self.spec.bootstrap,
            group_id=self.spec.group,
            auto_offset_reset="earliest",
            enable_auto_commit=self.spec.auto_commit,
            partition_assignment_strategy=[self._assignor()],
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000,
            **kw,
        )
        from kafka import ConsumerRebalanceListener

        outer = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer.assigns += 1

        self.c.subscribe([self.spec.topic], listener=Listener())

    def poll(self, timeout: float) -> list[tuple[int, int, bytes | None]]:
        batches = self.c.poll(timeout_ms=int(timeout * 1000))
        return [(r.partition, r.offset, r.value) for recs in batches.values() for r in recs]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self) -> None:
        self.c.commit()

    def close(self) -> None:
        self.c.close()


# ---------------------------------------------------------------- aiokafka


class AioKafka:
    name = "aiokafka"
    assignors = ("range", "roundrobin", "sticky")

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.c: Any = None
        self.assigns = 0
        self.loop = asyncio.new_event_loop()

    def _assignor(self) -> Any:
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor
        from aiokafka.coordinator.assignors.roundrobin import (
            RoundRobinPartitionAssignor,
        )
        from aiokafka.coordinator.assignors.sticky.sticky_assignor import (
            StickyPartitionAssignor,
        )

        return {
            "range": RangePartitionAssignor,
            "roundrobin": RoundRobinPartitionAssignor,
            "sticky": StickyPartitionAssignor,
        }[self.spec.assignor]

    def open(self) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

        outer = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer.assigns += 1

        async def start() -> Any:
            c = AIOKafkaConsumer(
                bootstrap_servers=self.spec.bootstrap,
                group_id=self.spec.group,
                group_instance_id=self.spec.instance_id,
                auto_offset_reset="earliest",
                enable_auto_commit=self.spec.auto_commit,
                partition_assignment_strategy=(self._assignor(),),
                session_timeout_ms=SESSION_MS,
                heartbeat_interval_ms=HEARTBEAT_MS,
                metadata_max_age_ms=1000,
            )
            c.subscribe([self.spec.topic], listener=Listener())
            await c.start()
            return c

        self.c = self.loop.run_until_complete(start())

    def poll(self, timeout: float) -> list[tuple[int, int, bytes | None]]:
        batches = self.loop.run_until_complete(self.c.getmany(timeout_ms=int(timeout * 1000)))
        return [(r.partition, r.offset, r.value) for recs in batches.values() for r in recs]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def commit(self) -> None:
        self.loop.run_until_complete(self.c.commit())

    def close(self) -> None:
        self.loop.run_until_complete(self.c.stop())
        self.loop.close()


CLIENTS: dict[str, type[Confluent | KafkaPython | AioKafka]] = {
    "confluent-kafka": Confluent,
    "kafka-python": KafkaPython,
    "aiokafka": AioKafka,
}


# ---------------------------------------------------------------- member threads


@dataclass(eq=False)
class Member:
    """One group member polling in its own thread."""

    name: str
    impl: ConsumerImpl
    got: list[Got] = field(default_factory=list)
    parts: set[int] = field(default_factory=set)
    first_record_at: float | None = None
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _commit: threading.Event = field(default_factory=threading.Event)
    _committed: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> Member:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.impl.open()
            while not self._stop.is_set():
                recs = self.impl.poll(getattr(self.impl, "poll_s", 0.1))
                now = time.monotonic()
                with self._lock:
                    if recs and self.first_record_at is None:
                        self.first_record_at = now
                    self.got += [Got(self.name, p, o, v) for p, o, v in recs]
                    self.parts = set(self.impl.assignment())
                if self._commit.is_set():
                    self._commit.clear()
                    self.impl.commit()
                    self._committed.set()
        except BaseException as e:
            self.error = e
        finally:
            try:
                self.impl.close()
            except Exception as e:
                self.error = self.error or e

    def assignment(self) -> set[int]:
        with self._lock:
            return set(self.parts)

    def records(self) -> list[Got]:
        with self._lock:
            return list(self.got)

    def commit(self, timeout: float = 10) -> None:
        self._committed.clear()
        self._commit.set()
        if not self._committed.wait(timeout):
            raise TimeoutError(f"{self.name}: commit did not finish")

    def stop(self, timeout: float = 15) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def main(argv: list[str]) -> int:
    client, bootstrap, group, topic, assignor, *rest = argv
    spec = Spec(bootstrap, group, topic, assignor, rest[0] if rest else None)
    m = Member("sub", CLIENTS[client](spec)).start()  # type: ignore[arg-type]
    last: set[int] | None = None
    while True:
        time.sleep(0.05)
        parts = m.assignment()
        if parts != last:
            print("assigned", ",".join(map(str, sorted(parts))), flush=True)
            last = parts
        if m.error is not None:
            print("error", m.error, flush=True)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
