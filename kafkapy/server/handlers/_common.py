"""Small helpers shared by handlers."""

from __future__ import annotations

# ACL operation codes (Kafka's AclOperation) for the authorized-operations bitfields.
_TOPIC_OPS = (3, 4, 5, 6, 7, 8, 10, 11)  # READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
_CLUSTER_OPS = (
    5,
    7,
    8,
    9,
    10,
    11,
    12,
)  # CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
_GROUP_OPS = (3, 6, 8)  # READ DELETE DESCRIBE
NOT_REQUESTED = -2147483648  # Integer.MIN_VALUE: "authorized operations not requested"

TOPIC_AUTHORIZED_OPERATIONS = sum(1 << op for op in _TOPIC_OPS)
CLUSTER_AUTHORIZED_OPERATIONS = sum(1 << op for op in _CLUSTER_OPS)
GROUP_AUTHORIZED_OPERATIONS = sum(1 << op for op in _GROUP_OPS)
