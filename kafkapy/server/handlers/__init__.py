"""The single list of what the broker serves: dispatch and ApiVersions use it.

Each entry names its API, the versions really implemented, and the handler
as "module:function" in this package. Modules are imported on first use, so
the broker starts without loading codecs it has not needed yet.
"""

from __future__ import annotations

from kafkapy.protocol.api import ApiKey
from kafkapy.server.handler import Handler

HANDLERS: tuple[Handler, ...] = (
    Handler(ApiKey.PRODUCE, 0, 11, "produce:handle"),
    Handler(ApiKey.FETCH, 4, 17, "fetch:handle"),
    Handler(ApiKey.LIST_OFFSETS, 0, 9, "list_offsets:handle"),
    Handler(ApiKey.METADATA, 0, 12, "metadata:handle"),
    Handler(ApiKey.API_VERSIONS, 0, 4, "api_versions:handle"),
    Handler(ApiKey.CREATE_TOPICS, 0, 7, "topics:create_topics"),
    Handler(ApiKey.DELETE_TOPICS, 0, 6, "topics:delete_topics"),
    Handler(ApiKey.CREATE_PARTITIONS, 0, 3, "topics:create_partitions"),
    Handler(ApiKey.DESCRIBE_CLUSTER, 0, 1, "describe_cluster:handle"),
    Handler(ApiKey.DESCRIBE_ACLS, 1, 3, "acls:describe_acls"),
    Handler(ApiKey.CREATE_ACLS, 1, 3, "acls:create_acls"),
    Handler(ApiKey.DELETE_ACLS, 1, 3, "acls:delete_acls"),
    Handler(ApiKey.DESCRIBE_CONFIGS, 0, 4, "configs:describe_configs"),
    Handler(ApiKey.ALTER_CONFIGS, 0, 2, "configs:alter_configs"),
    Handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1, "configs:incremental_alter_configs"),
    Handler(ApiKey.DELETE_RECORDS, 0, 2, "delete_records:handle"),
    Handler(ApiKey.OFFSET_FOR_LEADER_EPOCH, 0, 4, "offset_for_leader_epoch:handle"),
    Handler(ApiKey.DESCRIBE_LOG_DIRS, 0, 4, "log_dirs:handle"),
    Handler(ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, 0, "describe_topic_partitions:handle"),
    Handler(ApiKey.ELECT_LEADERS, 0, 2, "elect_leaders:handle"),
    Handler(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, 0, "reassignments:alter_partition_reassignments"),
    Handler(ApiKey.FIND_COORDINATOR, 0, 5, "groups:find_coordinator"),
    Handler(ApiKey.JOIN_GROUP, 0, 9, "groups:join_group"),
    Handler(ApiKey.HEARTBEAT, 0, 4, "groups:heartbeat"),
    Handler(ApiKey.LEAVE_GROUP, 0, 5, "groups:leave_group"),
    Handler(ApiKey.SYNC_GROUP, 0, 5, "groups:sync_group"),
    Handler(ApiKey.DESCRIBE_GROUPS, 0, 5, "groups:describe_groups"),
    Handler(ApiKey.LIST_GROUPS, 0, 5, "groups:list_groups"),
    Handler(ApiKey.DELETE_GROUPS, 0, 2, "groups:delete_groups"),
    Handler(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, 1, "consumer_group:consumer_group_heartbeat"),
    Handler(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, 0, "consumer_group:consumer_group_describe"),
    Handler(ApiKey.OFFSET_COMMIT, 0, 9, "offsets:offset_commit"),
    Handler(ApiKey.OFFSET_FETCH, 0, 9, "offsets:offset_fetch"),
    Handler(ApiKey.OFFSET_DELETE, 0, 0, "offsets:offset_delete"),
    Handler(ApiKey.INIT_PRODUCER_ID, 0, 5, "producer_id:handle"),
    Handler(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 5, "transactions:add_partitions_to_txn"),
    Handler(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4, "transactions:add_offsets_to_txn"),
    Handler(ApiKey.END_TXN, 0, 4, "transactions:end_txn"),
    Handler(ApiKey.WRITE_TXN_MARKERS, 0, 1, "transactions:write_txn_markers"),
    Handler(ApiKey.TXN_OFFSET_COMMIT, 0, 4, "transactions:txn_offset_commit"),
    Handler(ApiKey.DESCRIBE_PRODUCERS, 0, 0, "transactions:describe_producers"),
    Handler(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0, "transactions:describe_transactions"),
    Handler(ApiKey.LIST_TRANSACTIONS, 0, 1, "transactions:list_transactions"),
    # Kafka's answers without the feature: PLAINTEXT only, no quotas, SCRAM, tokens or client metrics
    Handler(ApiKey.SASL_HANDSHAKE, 0, 1, "sasl:sasl_handshake"),
    Handler(ApiKey.SASL_AUTHENTICATE, 0, 2, "sasl:sasl_authenticate"),
    Handler(ApiKey.CREATE_DELEGATION_TOKEN, 1, 3, "delegation_tokens:create_delegation_token"),
    Handler(ApiKey.RENEW_DELEGATION_TOKEN, 1, 2, "delegation_tokens:renew_delegation_token"),
    Handler(ApiKey.EXPIRE_DELEGATION_TOKEN, 1, 2, "delegation_tokens:expire_delegation_token"),
    Handler(ApiKey.DESCRIBE_DELEGATION_TOKEN, 1, 3, "delegation_tokens:describe_delegation_token"),
    Handler(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, 0, "reassignments:list_partition_reassignments"),
    Handler(ApiKey.DESCRIBE_CLIENT_QUOTAS, 0, 1, "quotas:describe_client_quotas"),
    Handler(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0, "scram:describe_user_scram_credentials"),
    Handler(ApiKey.LIST_CLIENT_METRICS_RESOURCES, 0, 0, "client_metrics:list_client_metrics_resources"),
)
