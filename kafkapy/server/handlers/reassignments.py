"""ListPartitionReassignments (46): kafkapy never reassigns partitions, so none is ongoing.

Kafka answers a filter naming unknown topics or partitions the same way
(an empty list, no error).
"""

from __future__ import annotations

from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
)
from kafkapy.protocol.messages.list_partition_reassignments_response import (
    ListPartitionReassignmentsResponse,
)
from kafkapy.server.handler import RequestContext


async def list_partition_reassignments(
    ctx: RequestContext, req: ListPartitionReassignmentsRequest
) -> ListPartitionReassignmentsResponse:
    return ListPartitionReassignmentsResponse(error_code=ErrorCode.NONE, error_message=None, topics=[])
