"""A broker as a member of a cluster: etcd metadata, controller, replication.

`open_cluster_services(broker)` builds the services of a clustered broker:
it connects to etcd, registers the broker, opens the logs of the partitions
it hosts, starts replication and the controller candidate, and from then on
applies every metadata change (in etcd's order) to the local logs, the
replica manager and the coordinators.

A data dir that refuses writes (full or failing disk) is announced in the
broker's registration (`log_dir_offline`): the controller moves the broker's
leaderships to other in-sync replicas until it takes writes again.

Stopping (SIGTERM) is a controlled shutdown: the broker marks itself
`shutting_down`, the controller moves its leaderships to other in-sync
replicas, the broker waits for that (bounded), then stops serving and
revokes its lease.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kafkapy.cluster.controller import Controller
from kafkapy.cluster.etcd_metadata import EtcdMetadata
from kafkapy.cluster.metadata import MetadataError
from kafkapy.logging import get_logger
from kafkapy.server.broker import StartupError
from kafkapy.server.listeners import advertised_broker
from kafkapy.server.services import BrokerServices

if TYPE_CHECKING:
    from kafkapy.server.broker import Broker

log = get_logger(__name__)

_CONTROLLED_SHUTDOWN_WAIT_S = 15.0


class ClusterStartError(StartupError):
    """etcd unreachable, cluster id mismatch, broker id taken: the broker cannot join."""


@dataclass(slots=True)
class ClusterNode:
    """What a clustered broker has beyond its services: the etcd store, the controller candidate,
    controlled shutdown."""

    state: BrokerServices
    md: EtcdMetadata
    controller: Controller

    # ------------------------------------------------------------ a full or failing log dir

    def log_dir_changed(self, state: str) -> None:
        """The data dir refuses writes (full, failed) or takes them again (online): say so in our
        registration, so that the controller moves our leaderships away or lets them come back."""
        self.state.tasks.append(asyncio.get_running_loop().create_task(self._announce_log_dir(state != "online")))

    async def _announce_log_dir(self, offline: bool) -> None:
        try:
            await self.md.announce_log_dir(offline)
        except Exception as e:  # etcd unreachable: the registration says it at the next re-registration
            log.warning("log dir state not announced", offline=offline, error=str(e))
            return
        log.info("log dir state announced", offline=offline, broker_id=self.state.node_id)

    # ------------------------------------------------------------ shutdown

    async def controlled_shutdown(self) -> None:
        """Hand leaderships away before the network stops."""
        if not self.state.config.controlled_shutdown_enable:
            return
        me = self.state.node_id
        try:
            await self.md.announce_shutdown()
        except Exception as e:
            log.warning("controlled shutdown not announced", error=str(e))
            return
        deadline = asyncio.get_running_loop().time() + _CONTROLLED_SHUTDOWN_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            movable = [
                (t.name, p.index)
                for t in self.md.topics()
                for p in t.partitions
                if p.leader == me and any(r != me and r in self.md.live_ids() for r in p.isr)
            ]
            if not movable:
                log.info("controlled shutdown: no leaderships left to move")
                return
            await asyncio.sleep(0.1)
        log.warning("controlled shutdown timed out; stopping anyway", still_leading=len(movable))


async def open_cluster_services(broker: Broker) -> BrokerServices:
    """The services of a broker that keeps its metadata in etcd."""
    from kafkapy.cluster.etcd import EtcdError

    config = broker.config
    assert config.metadata_connect is not None  # the caller checked
    data_dir = Path(config.data_dirs[0])
    me = advertised_broker(broker)
    try:
        md = await EtcdMetadata.open(
            config.metadata_connect,
            me,
            cluster_id=config.cluster_id,
            data_dir=data_dir,
            session_timeout_ms=config.broker_session_timeout_ms,
            register=False,
            data_dirs=[Path(d) for d in config.data_dirs],
        )
    except (EtcdError, OSError) as e:
        raise ClusterStartError(f"cannot reach etcd at {config.metadata_connect}: {e}") from None
    except MetadataError as e:
        raise ClusterStartError(e.message) from None
    broker.cluster_id = md.cluster_id
    # Loading thousands of logs blocks for seconds: done before registering, so that the lease is
    # not left without keepalives (the controller would see the broker die and come back).
    services = BrokerServices.build(
        config, md, data_dir, me, auto_high_watermark=False, data_dirs=[Path(d) for d in config.data_dirs]
    )
    try:
        await md.register()
    except (EtcdError, OSError, MetadataError) as e:
        services.logs.close()
        await md.close(deregister=False)
        raise ClusterStartError(f"cannot register in etcd: {getattr(e, 'message', e)}") from None
    node = ClusterNode(services, md, Controller(md, config))
    services.on_log_dir = node.log_dir_changed
    services.controller_kick = node.controller.kick
    services.controller = node.controller
    md.on_session_lost = lambda: log.error("lost etcd session; no ISR changes nor controller work until it is back")
    md.on_session_restored = node.controller.kick  # changes seen while unregistered were not acted on
    await services.start(replicating=True)
    node.controller.start()

    async def close() -> None:
        await node.controller.stop()
        await services.close()
        await md.close()

    broker.add_shutdown_hook(close)
    broker.add_pre_shutdown_hook(node.controlled_shutdown)
    return services
