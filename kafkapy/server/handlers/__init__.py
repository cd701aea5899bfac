"""One module per API family; HANDLERS is the single list dispatch and ApiVersions use."""

from __future__ import annotations

from kafkapy.server.handler import Handler
from kafkapy.server.handlers import api_versions, describe_cluster, fetch, list_offsets, metadata, produce, topics
from kafkapy.server.handlers import configs, delete_records, describe_topic_partitions, log_dirs, offset_for_leader_epoch
from kafkapy.server.handlers import groups, offsets, producer_id, transactions

HANDLERS: tuple[Handler, ...] = (
    produce.HANDLER,
    fetch.HANDLER,
    list_offsets.HANDLER,
    metadata.HANDLER,
    api_versions.HANDLER,
    *topics.HANDLERS,
    describe_cluster.HANDLER,
    *configs.HANDLERS,
    delete_records.HANDLER,
    offset_for_leader_epoch.HANDLER,
    log_dirs.HANDLER,
    describe_topic_partitions.HANDLER,
    *groups.HANDLERS,
    *offsets.HANDLERS,
    producer_id.HANDLER,
    *transactions.HANDLERS,
)
