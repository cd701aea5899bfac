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
    leadership (controlled shutdown) but stays in the ISR.

Every change bumps the partition epoch. Preferred-leader rebalancing
(`auto.leader.rebalance.enable`) moves leadership back to replicas[0] when it
is live and in the ISR. A partition being reassigned (KIP-455) is switched
to its target once every adding replica is in the ISR
(`kafkapy.cluster.reassignment.completion_state`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafkapy.cluster.metadata import PartitionInfo
from kafkapy.cluster.reassignment import completion_state
from kafkapy.logging import get_logger

if TYPE_CHECKING:
    from kafkapy.cluster.etcd_metadata import EtcdMetadata
    from kafkapy.config import BrokerConfig

log = get_logger(__name__)

_TXN_OPS = 100  # etcd's default limit is 128 operations per transaction


def _flag(configs: dict[str, str], key: str, default: bool) -> bool:
    value = configs.get(key)
    return default if value is None else value.strip().lower() == "true"


def next_state(
    p: PartitionInfo, live: set[int], leadable: set[int], *, unclean: bool, preferred: bool = False
) -> PartitionInfo | None:
    """The partition's next state given the live brokers, or None if it is fine as it is.

    `leadable` are live brokers that may lead (not shutting down).
    """
    live_isr = [r for r in p.isr if r in live]
    leader = p.leader
    if leader not in leadable:
        candidates = [r for r in p.replicas if r in leadable and r in live_isr]
        if not candidates and unclean:
            candidates = [r for r in p.replicas if r in leadable]
        leader = candidates[0] if candidates else -1
    elif (
        preferred and p.replicas and p.replicas[0] != leader and p.replicas[0] in leadable and p.replicas[0] in live_isr
    ):
        leader = p.replicas[0]
    if leader < 0:
        isr = live_isr or list(p.isr)  # offline: the ISR keeps its last members, as in Kafka
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
        live = self.md.live_ids()
        leadable = live - self.md.shutting_down
        unclean_default = bool(self.config.unclean_leader_election_enable)
        updates: list[tuple[str, PartitionInfo, int]] = []
        for topic in list(self.md.topics()):
            unclean = _flag(topic.configs, "unclean.leader.election.enable", unclean_default)
            for p in topic.partitions:
                done_moving = completion_state(p, leadable)
                new = next_state(done_moving or p, live, leadable, unclean=unclean, preferred=preferred) or done_moving
                if new is not None:
                    updates.append((topic.name, new, self.md.partition_revision(topic.name, p.index)))
        done = 0
        for i in range(0, len(updates), _TXN_OPS):
            chunk = updates[i : i + _TXN_OPS]
            if await self.md.update_partitions_as_controller(chunk):
                done += len(chunk)
            else:
                self._kick.set()  # something changed under us: look again
        if updates:
            log.info("controller moved partitions", changed=done, wanted=len(updates), live=sorted(live))
        return done

    async def _preferred_loop(self) -> None:
        interval = max(1, int(self.config.leader_imbalance_check_interval_seconds))
        while not self._stopped:
            await asyncio.sleep(interval)
            if self.active:
                try:
                    await self.reconcile(preferred=True)
                except Exception as e:
                    log.warning("preferred leader election failed", error=str(e))
