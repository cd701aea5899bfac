"""The single list of what the broker serves: dispatch and ApiVersions use it.

Each entry names its API, the versions really implemented, and the handler
function (`lambda: produce.handle`: follow it in an editor). At run time the
handler modules are `LazyModule` stand-ins, each imported when its first
request arrives, so the broker starts without loading codecs it has not
needed yet (all of them would add about a third to start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkapy.protocol.api import ApiKey
from kafkapy.server.handler import Handler, LazyModule

if TYPE_CHECKING:
    from kafkapy.server.handlers import (
        acls,
        api_versions,
        client_metrics,
        configs,
        consumer_group,
        delegation_tokens,
        delete_records,
        describe_cluster,
        describe_topic_partitions,
        elect_leaders,
        features,
        fetch,
        groups,
        kraft,
        list_offsets,
        log_dirs,
        metadata,
        offset_for_leader_epoch,
        offsets,
        produce,
        producer_id,
        quorum,
        quotas,
        reassignments,
        sasl,
        scram,
        share_group,
        streams_group,
        topics,
        transactions,
    )
else:
    acls = LazyModule(f"{__name__}.acls")
    api_versions = LazyModule(f"{__name__}.api_versions")
    client_metrics = LazyModule(f"{__name__}.client_metrics")
    configs = LazyModule(f"{__name__}.configs")
    consumer_group = LazyModule(f"{__name__}.consumer_group")
    delegation_tokens = LazyModule(f"{__name__}.delegation_tokens")
    delete_records = LazyModule(f"{__name__}.delete_records")
    describe_cluster = LazyModule(f"{__name__}.describe_cluster")
    describe_topic_partitions = LazyModule(f"{__name__}.describe_topic_partitions")
    elect_leaders = LazyModule(f"{__name__}.elect_leaders")
    features = LazyModule(f"{__name__}.features")
    fetch = LazyModule(f"{__name__}.fetch")
    groups = LazyModule(f"{__name__}.groups")
    kraft = LazyModule(f"{__name__}.kraft")
    list_offsets = LazyModule(f"{__name__}.list_offsets")
    log_dirs = LazyModule(f"{__name__}.log_dirs")
    metadata = LazyModule(f"{__name__}.metadata")
    offset_for_leader_epoch = LazyModule(f"{__name__}.offset_for_leader_epoch")
    offsets = LazyModule(f"{__name__}.offsets")
    produce = LazyModule(f"{__name__}.produce")
    producer_id = LazyModule(f"{__name__}.producer_id")
    quorum = LazyModule(f"{__name__}.quorum")
    quotas = LazyModule(f"{__name__}.quotas")
    reassignments = LazyModule(f"{__name__}.reassignments")
    sasl = LazyModule(f"{__name__}.sasl")
    scram = LazyModule(f"{__name__}.scram")
    streams_group = LazyModule(f"{__name__}.streams_group")
    share_group = LazyModule(f"{__name__}.share_group")
    topics = LazyModule(f"{__name__}.topics")
    transactions = LazyModule(f"{__name__}.transactions")

HANDLERS: tuple[Handler, ...] = (
    Handler(ApiKey.PRODUCE, 0, 13, lambda: produce.handle),
    Handler(ApiKey.FETCH, 0, 18, lambda: fetch.handle),
    Handler(ApiKey.LIST_OFFSETS, 0, 11, lambda: list_offsets.handle),
    Handler(ApiKey.METADATA, 0, 13, lambda: metadata.handle),
    Handler(ApiKey.API_VERSIONS, 0, 5, lambda: api_versions.handle),
    Handler(ApiKey.CREATE_TOPICS, 0, 7, lambda: topics.create_topics),
    Handler(ApiKey.DELETE_TOPICS, 0, 6, lambda: topics.delete_topics),
    Handler(ApiKey.CREATE_PARTITIONS, 0, 3, lambda: topics.create_partitions),
    Handler(ApiKey.DESCRIBE_CLUSTER, 0, 2, lambda: describe_cluster.handle),
    Handler(ApiKey.DESCRIBE_ACLS, 0, 3, lambda: acls.describe_acls),
    Handler(ApiKey.CREATE_ACLS, 0, 3, lambda: acls.create_acls),
    Handler(ApiKey.DELETE_ACLS, 0, 3, lambda: acls.delete_acls),
    Handler(ApiKey.DESCRIBE_CONFIGS, 0, 4, lambda: configs.describe_configs),
    Handler(ApiKey.ALTER_CONFIGS, 0, 2, lambda: configs.alter_configs),
    Handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1, lambda: configs.incremental_alter_configs),
    Handler(ApiKey.DELETE_RECORDS, 0, 2, lambda: delete_records.handle),
    Handler(ApiKey.OFFSET_FOR_LEADER_EPOCH, 0, 4, lambda: offset_for_leader_epoch.handle),
    Handler(ApiKey.DESCRIBE_LOG_DIRS, 0, 5, lambda: log_dirs.handle),
    Handler(ApiKey.ALTER_REPLICA_LOG_DIRS, 0, 2, lambda: log_dirs.alter_replica_log_dirs),
    Handler(ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, 0, lambda: describe_topic_partitions.handle),
    Handler(ApiKey.ELECT_LEADERS, 0, 2, lambda: elect_leaders.handle),
    Handler(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, 1, lambda: reassignments.alter_partition_reassignments),
    Handler(ApiKey.FIND_COORDINATOR, 0, 6, lambda: groups.find_coordinator),
    Handler(ApiKey.JOIN_GROUP, 0, 9, lambda: groups.join_group),
    Handler(ApiKey.HEARTBEAT, 0, 4, lambda: groups.heartbeat),
    Handler(ApiKey.LEAVE_GROUP, 0, 5, lambda: groups.leave_group),
    Handler(ApiKey.SYNC_GROUP, 0, 5, lambda: groups.sync_group),
    Handler(ApiKey.DESCRIBE_GROUPS, 0, 6, lambda: groups.describe_groups),
    Handler(ApiKey.LIST_GROUPS, 0, 5, lambda: groups.list_groups),
    Handler(ApiKey.DELETE_GROUPS, 0, 3, lambda: groups.delete_groups),
    Handler(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, 1, lambda: consumer_group.consumer_group_heartbeat),
    Handler(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, 1, lambda: consumer_group.consumer_group_describe),
    Handler(ApiKey.STREAMS_GROUP_HEARTBEAT, 0, 1, lambda: streams_group.streams_group_heartbeat),
    Handler(ApiKey.STREAMS_GROUP_DESCRIBE, 0, 1, lambda: streams_group.streams_group_describe),
    Handler(
        ApiKey.STREAMS_GROUP_TOPOLOGY_DESCRIPTION_UPDATE,
        0,
        0,
        lambda: streams_group.streams_group_topology_description_update,
    ),
    Handler(ApiKey.SHARE_GROUP_HEARTBEAT, 1, 1, lambda: share_group.share_group_heartbeat),
    Handler(ApiKey.SHARE_GROUP_DESCRIBE, 1, 1, lambda: share_group.share_group_describe),
    Handler(ApiKey.SHARE_FETCH, 1, 2, lambda: share_group.share_fetch),
    Handler(ApiKey.SHARE_ACKNOWLEDGE, 1, 2, lambda: share_group.share_acknowledge),
    Handler(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 0, 1, lambda: share_group.describe_share_group_offsets),
    Handler(ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, 0, lambda: share_group.alter_share_group_offsets),
    Handler(ApiKey.DELETE_SHARE_GROUP_OFFSETS, 0, 0, lambda: share_group.delete_share_group_offsets),
    Handler(ApiKey.INITIALIZE_SHARE_GROUP_STATE, 0, 0, lambda: share_group.initialize_share_group_state),
    Handler(ApiKey.READ_SHARE_GROUP_STATE, 0, 0, lambda: share_group.read_share_group_state),
    Handler(ApiKey.WRITE_SHARE_GROUP_STATE, 0, 1, lambda: share_group.write_share_group_state),
    Handler(ApiKey.DELETE_SHARE_GROUP_STATE, 0, 0, lambda: share_group.delete_share_group_state),
    Handler(ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 0, 1, lambda: share_group.read_share_group_state_summary),
    Handler(ApiKey.OFFSET_COMMIT, 0, 10, lambda: offsets.offset_commit),
    Handler(ApiKey.OFFSET_FETCH, 0, 10, lambda: offsets.offset_fetch),
    Handler(ApiKey.OFFSET_DELETE, 0, 0, lambda: offsets.offset_delete),
    Handler(ApiKey.INIT_PRODUCER_ID, 0, 5, lambda: producer_id.handle),
    Handler(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 5, lambda: transactions.add_partitions_to_txn),
    Handler(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4, lambda: transactions.add_offsets_to_txn),
    Handler(ApiKey.END_TXN, 0, 5, lambda: transactions.end_txn),
    Handler(ApiKey.WRITE_TXN_MARKERS, 0, 2, lambda: transactions.write_txn_markers),
    Handler(ApiKey.TXN_OFFSET_COMMIT, 0, 6, lambda: transactions.txn_offset_commit),
    Handler(ApiKey.DESCRIBE_PRODUCERS, 0, 0, lambda: transactions.describe_producers),
    Handler(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0, lambda: transactions.describe_transactions),
    Handler(ApiKey.LIST_TRANSACTIONS, 0, 2, lambda: transactions.list_transactions),
    # Kafka's answers without the feature: PLAINTEXT only, no SCRAM or tokens
    Handler(ApiKey.SASL_HANDSHAKE, 0, 1, lambda: sasl.sasl_handshake),
    Handler(ApiKey.SASL_AUTHENTICATE, 0, 2, lambda: sasl.sasl_authenticate),
    Handler(ApiKey.CREATE_DELEGATION_TOKEN, 0, 3, lambda: delegation_tokens.create_delegation_token),
    Handler(ApiKey.RENEW_DELEGATION_TOKEN, 0, 2, lambda: delegation_tokens.renew_delegation_token),
    Handler(ApiKey.EXPIRE_DELEGATION_TOKEN, 0, 2, lambda: delegation_tokens.expire_delegation_token),
    Handler(ApiKey.DESCRIBE_DELEGATION_TOKEN, 0, 3, lambda: delegation_tokens.describe_delegation_token),
    Handler(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, 0, lambda: reassignments.list_partition_reassignments),
    Handler(ApiKey.DESCRIBE_CLIENT_QUOTAS, 0, 1, lambda: quotas.describe_client_quotas),
    Handler(ApiKey.ALTER_CLIENT_QUOTAS, 0, 1, lambda: quotas.alter_client_quotas),
    Handler(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0, lambda: scram.describe_user_scram_credentials),
    Handler(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, 0, lambda: scram.alter_user_scram_credentials),
    Handler(ApiKey.LIST_CLIENT_METRICS_RESOURCES, 0, 1, lambda: client_metrics.list_client_metrics_resources),
    Handler(ApiKey.GET_TELEMETRY_SUBSCRIPTIONS, 0, 0, lambda: client_metrics.get_telemetry_subscriptions),
    Handler(ApiKey.PUSH_TELEMETRY, 0, 0, lambda: client_metrics.push_telemetry),
    Handler(ApiKey.UPDATE_FEATURES, 0, 2, lambda: features.update_features),
    Handler(ApiKey.DESCRIBE_QUORUM, 0, 2, lambda: quorum.describe_quorum),
    # a static KRaft quorum's answers: kafkapy has no Raft log (docs/compatibility.md)
    Handler(ApiKey.UNREGISTER_BROKER, 0, 0, lambda: kraft.unregister_broker),
    Handler(ApiKey.ADD_RAFT_VOTER, 0, 1, lambda: kraft.add_raft_voter),
    Handler(ApiKey.REMOVE_RAFT_VOTER, 0, 0, lambda: kraft.remove_raft_voter),
    Handler(ApiKey.UNREGISTER_CONTROLLER, 0, 0, lambda: kraft.unregister_controller),
)
