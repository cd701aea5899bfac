"""The controller: one broker, chosen through etcd, that elects partition leaders.

Every broker runs a `Controller`; the one holding the `controller` key (tied
to its registration lease) acts. Whenever the set of live brokers changes it
walks every partition and, for each whose leader is gone or whose ISR names a
dead broker, writes the new state by compare-and-swap, conditional on still
holding the controller key:

  - leader dead: the first live replica in the ISR (assignment order) leads,
    with leader epoch + 1; with `unclean.leader.election.enable`, the first
    live replica when no ISR member is live; else the partition goes offline
    (leader -1) and keeps its last ISR, as Kafka does;
  - a dead follower leaves the ISR (never the last member);
  - a returning broker that is the only ISR member of an offline partition
    leads again;
  - a broker whose registration says `shutting_down` is treated as dead for
    leadership (controlled shutdown) but stays in the ISR;
  - so is a broker whose registration says `log_dir_offline` (its data dir is
    full or failing: docs/reliability.md, "Disks"), and it leaves the ISRs at
    once (acks=all produces need not wait replica.lag.time.max.ms for it),
    except that it keeps a leadership no other live in-sync replica can take
    (with its ISR: it still serves reads; Kafka would take the partition
    offline), and it is never the last ISR member removed;
  - a broker registered with a data dir other than the one the cluster last
    accepted for it (its `directory_id`, KIP-858: it lost its data dir and
    came back empty) leads nothing and leaves every ISR, even as the last
    member: a partition whose ISR is left empty has no leader until an
    unclean election (`unclean.leader.election.enable`, or ElectLeaders
    UNCLEAN) picks a live replica. Once it is in no ISR the controller
    records its new directory id (`broker-dirs/<id>`); from then on it is an
    ordinary empty follower that rejoins ISRs by catching up.

Every change bumps the partition epoch. Preferred-leader rebalancing
(`auto.leader.rebalance.enable`) moves leadership back to replicas[0] when it
is live and in the ISR. A partition being reassigned (KIP-455) is switched
to its target once every adding replica is in the ISR
(`kafkapy.cluster.reassignment.completion_state`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.cluster.reassignment import completion_state
from kafkapy.logging import get_logger

if TYPE_CHECKING:
    from kafkapy.cluster.etcd_metadata import EtcdMetadata
    from kafkapy.config import BrokerConfig

log = get_logger(__name__)

_TXN_OPS = 100
ELECTION_SAMPLES = 1024  # etcd's default limit is 128 operations per transaction


def _flag(configs: dict[str, str], key: str, default: bool) -> bool:
    value = configs.get(key)
    return default if value is None else value.strip().lower() == "true"


def next_state(
    p: PartitionInfo,
    live: set[int],
    leadable: set[int],
    *,
    unclean: bool,
    preferred: bool = False,
    keep: frozenset[int] | set[int] = frozenset(),
    emptied: frozenset[int] | set[int] = frozenset(),
) -> PartitionInfo | None:
    """The partition's next state given the live brokers, or None if it is fine as it is.

    `leadable` are live brokers that may lead (not shutting down, log dir online, data dir
    not replaced); a leader in `keep` (live, its log dir offline) keeps the partition when no
    leadable replica can take it. Brokers in `emptied` (back with a new, empty data dir) leave
    the ISR even as its last member (an offline partition may then have an empty ISR).
    """
    live_isr_all = [r for r in p.isr if r in live and r not in emptied]
    live_isr = [r for r in live_isr_all if r not in keep] or live_isr_all
    leader = p.leader
    if leader not in leadable:
        candidates = [r for r in p.replicas if r in leadable and r in live_isr]
        if not candidates and unclean:
            candidates = [r for r in p.replicas if r in leadable]
        if candidates:
            leader = candidates[0]
        elif leader in keep and leader in live_isr_all:
            live_isr = live_isr_all  # kept: it and its ISR as they are
        else:
            leader = -1
    elif (
        preferred and p.replicas and p.replicas[0] != leader and p.replicas[0] in leadable and p.replicas[0] in live_isr
    ):
        leader = p.replicas[0]
    if leader < 0:
        # offline: the ISR keeps its last members, as in Kafka, but never one whose data is gone
        isr = live_isr or [r for r in p.isr if r not in emptied]
    elif leader in live_isr:
        isr = live_isr
    else:
        isr = [leader]  # not in the ISR: an unclean election
    if leader == p.leader and isr == p.isr:
        return None
    return PartitionInfo(
        p.index,
        leader,
        list(p.replicas),
        isr,
        p.leader_epoch + (1 if leader != p.leader else 0),
        p.partition_epoch + 1,
        list(p.adding_replicas),
        list(p.removing_replicas),
    )


@dataclass(slots=True)
class Controller:
    md: EtcdMetadata
    config: BrokerConfig
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _rebalance_task: asyncio.Task[None] | None = None
    _stopped: bool = False
    # Kafka's ControllerStats: partitions given a leader from outside their ISR, and the passes over the
    # partitions that elected any leader, with their times (ms, the last ELECTION_SAMPLES)
    unclean_elections: int = 0
    election_passes: int = 0
    election_ms_sum: float = 0.0
    election_ms: deque[float] = field(default_factory=lambda: deque(maxlen=ELECTION_SAMPLES))

    @property
    def active(self) -> bool:
        return self.md.controller_id == self.md.broker.node_id and self.md.registered

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        if self.config.auto_leader_rebalance_enable:
            self._rebalance_task = loop.create_task(self._preferred_loop())
        self.kick()

    def kick(self) -> None:
        self._kick.set()

    async def stop(self) -> None:
        self._stopped = True
        for t in (self._task, self._rebalance_task):
            if t is not None:
                t.cancel()

    async def _run(self) -> None:
        while not self._stopped:
            await self._kick.wait()
            self._kick.clear()
            try:
                if self.md.controller_id < 0 and await self.md.campaign():
                    log.info("became controller", broker_id=self.md.broker.node_id, epoch=self.md.controller_epoch)
                if self.active:
                    await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("controller step failed; retrying", error=str(e))
                await asyncio.sleep(0.5)
                self._kick.set()

    async def reconcile(self, *, preferred: bool = False) -> int:
        """Write new states for partitions whose leader or ISR involves dead brokers, or whose reassignment can finish."""
        began = time.perf_counter()
        live = self.md.live_ids()
        emptied = self.md.dir_changed
        leadable = live - self.md.shutting_down - self.md.log_dir_offline - emptied
        keep = self.md.log_dir_offline - self.md.shutting_down - emptied
        for node_id in emptied:
            log.warning(
                "broker is back with a new data dir; removing it from every ISR",
                broker_id=node_id,
                directory_id=self.md.directory_ids.get(node_id),
                known_directory_id=self.md.known_directory(node_id),
            )
        unclean_default = bool(self.config.unclean_leader_election_enable)
        updates: list[tuple[str, PartitionInfo, int]] = []
        before: dict[tuple[str, int], PartitionInfo] = {}
        for topic in list(self.md.topics()):
            unclean = _flag(topic.configs, "unclean.leader.election.enable", unclean_default)
            for p in topic.partitions:
                done_moving = completion_state(p, leadable)
                new = (
                    next_state(
                        done_moving or p,
                        live,
                        leadable,
                        unclean=unclean,
                        preferred=preferred,
                        keep=keep,
                        emptied=emptied,
                    )
                    or done_moving
                )
                if new is not None:
                    updates.append((topic.name, new, self.md.partition_revision(topic.name, p.index)))
                    before[(topic.name, p.index)] = p
        done = elected = elected_unclean = 0
        for i in range(0, len(updates), _TXN_OPS):
            chunk = updates[i : i + _TXN_OPS]
            if await self.md.update_partitions_as_controller(chunk):
                done += len(chunk)
                for topic_name, new, _ in chunk:
                    old = before[(topic_name, new.index)]
                    if new.leader >= 0 and new.leader != old.leader:
                        elected += 1
                        if new.leader not in old.isr:
                            elected_unclean += 1
            else:
                self._kick.set()  # something changed under us: look again
        if elected:
            self.count_elections(elected_unclean, (time.perf_counter() - began) * 1000.0)
        if updates:
            log.info("controller moved partitions", changed=done, wanted=len(updates), live=sorted(live))
        if emptied and done == len(updates):
            await self._accept_directories(emptied)  # with the image our writes left
        return done

    async def _accept_directories(self, emptied: set[int]) -> None:
        """Record the new data dir of each broker in `emptied` that no partition has in its ISR any more."""
        held = {r for t in self.md.topics() for p in t.partitions for r in (*p.isr, p.leader)}
        for node_id in sorted(emptied - held):
            if await self.md.accept_directory(node_id):
                log.info(
                    "broker's new data dir accepted; it is in no ISR",
                    broker_id=node_id,
                    directory_id=self.md.directory_ids.get(node_id),
                )
            self._kick.set()  # accepted: it may now be elected uncleanly where allowed; else: look again

    def count_elections(self, unclean: int, ms: float) -> None:
        """ControllerStats: one pass (a reconcile, or an ElectLeaders request served by this broker) that
        elected leaders, `unclean` of them from outside their ISR, in `ms`."""
        self.unclean_elections += unclean
        self.election_passes += 1
        self.election_ms_sum += ms
        self.election_ms.append(ms)

    async def _preferred_loop(self) -> None:
        interval = max(1, int(self.config.leader_imbalance_check_interval_seconds))
        while not self._stopped:
            await asyncio.sleep(interval)
            if self.active:
                try:
                    await self.reconcile(preferred=True)
                except Exception as e:
                    log.warning("preferred leader election failed", error=str(e))
