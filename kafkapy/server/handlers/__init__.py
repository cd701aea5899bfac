"""One module per API family; HANDLERS is the single list dispatch and ApiVersions use."""

from __future__ import annotations

from kafkapy.server.handler import Handler
from kafkapy.server.handlers import api_versions, describe_cluster, fetch, list_offsets, metadata, produce, topics

HANDLERS: tuple[Handler, ...] = (
    produce.HANDLER,
    fetch.HANDLER,
    list_offsets.HANDLER,
    metadata.HANDLER,
    api_versions.HANDLER,
    *topics.HANDLERS,
    describe_cluster.HANDLER,
)
