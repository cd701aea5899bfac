"""Following an etcd key prefix: the watch loop the metadata stores (SCRAM credentials, ACLs,
delegation tokens) share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kafkapy.cluster.etcd import EtcdClient, EtcdError, WatchEvent
from kafkapy.logging import get_logger

log = get_logger(__name__)


async def follow_prefix(
    client: EtcdClient,
    prefix: str,
    revision: Callable[[], int],
    apply: Callable[[list[WatchEvent]], None],
    reload: Callable[[], Awaitable[None]],
    what: str,
) -> None:
    """Apply `prefix`'s changes after `revision()` as they come, forever; after a failed watch, reload
    the whole prefix (`reload`) and watch on from its revision."""
    while True:
        try:
            async for events in client.watch_prefix(prefix.encode(), revision() + 1):
                apply(events)
        except asyncio.CancelledError:
            raise
        except EtcdError as e:
            log.warning(f"{what} watch failed; reloading", error=str(e))
            await asyncio.sleep(0.5)
            try:
                await reload()
            except EtcdError as e2:
                log.warning(f"{what} reload failed", error=str(e2))
                await asyncio.sleep(1.0)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a follower task and wait for it to end."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, EtcdError):
        pass
