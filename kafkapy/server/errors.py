"""Errors in one place: internal exceptions to Kafka error codes, and the codes
an older request version cannot carry.

- `error_code(exc)`: the code for an exception raised below the server
  (storage, producer state, record validation, metadata, fetch sessions) or
  by a handler (`ApiError`). The most specific class in the table wins;
  anything not in it is UNKNOWN_SERVER_ERROR, as Kafka's `Errors.forException`.
- `for_version(api_key, version, code)`: Kafka answers a code that a request
  version predates with the code that version knew (KIP-588's
  PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, KIP-890's TRANSACTION_ABORTABLE
  as INVALID_TXN_STATE, ...). `FALLBACKS` lists them; the dispatcher applies
  them to every response (`Downgrader`), so handlers always use the newest code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple, TypeVar, get_args, get_origin, get_type_hints

from kafkapy.cluster.metadata import MetadataError
from kafkapy.cluster.partition import NotEnoughReplicasError
from kafkapy.config import ConfigError
from kafkapy.protocol.api import ApiKey
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.errors import CorruptRecordError, DecodeError, UnsupportedVersionError
from kafkapy.protocol.errors import RecordTooLargeError as RecordsTooLargeError
from kafkapy.protocol.primitives import Entity, Message
from kafkapy.server.fetch_sessions import SessionError
from kafkapy.storage.errors import (
    CorruptLogError,
    InvalidRecordsError,
    LogClosedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from kafkapy.storage.producer_state import (
    CoordinatorFencedError,
    CorruptSnapshotError,
    InvalidProducerEpochError,
    InvalidSequenceError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    ProducerStateError,
)

E = TypeVar("E", bound=Entity)
M = TypeVar("M", bound=Message)


class ApiError(Exception):
    """A handler's refusal with a Kafka error code and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Exceptions that carry their own Kafka code in `.code`.
_CODED: tuple[type[Exception], ...] = (ApiError, MetadataError, SessionError)

# The rest, by class; the most specific class of an exception that is listed wins.
ERROR_TABLE: Mapping[type[Exception], ErrorCode] = MappingProxyType(
    {
        # storage
        OffsetOutOfRangeError: ErrorCode.OFFSET_OUT_OF_RANGE,
        RecordTooLargeError: ErrorCode.MESSAGE_TOO_LARGE,
        InvalidRecordsError: ErrorCode.CORRUPT_MESSAGE,
        CorruptLogError: ErrorCode.KAFKA_STORAGE_ERROR,
        LogClosedError: ErrorCode.KAFKA_STORAGE_ERROR,
        StorageError: ErrorCode.KAFKA_STORAGE_ERROR,
        CorruptSnapshotError: ErrorCode.KAFKA_STORAGE_ERROR,
        # producer state (idempotence and transactions)
        OutOfOrderSequenceError: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        InvalidProducerEpochError: ErrorCode.INVALID_PRODUCER_EPOCH,
        InvalidSequenceError: ErrorCode.INVALID_RECORD,
        InvalidTxnStateError: ErrorCode.INVALID_TXN_STATE,
        CoordinatorFencedError: ErrorCode.TRANSACTION_COORDINATOR_FENCED,
        ProducerStateError: ErrorCode.UNKNOWN_SERVER_ERROR,
        # replication
        NotEnoughReplicasError: ErrorCode.NOT_ENOUGH_REPLICAS,
        # record validation (protocol)
        RecordsTooLargeError: ErrorCode.MESSAGE_TOO_LARGE,
        CorruptRecordError: ErrorCode.CORRUPT_MESSAGE,
        UnsupportedVersionError: ErrorCode.UNSUPPORTED_VERSION,
        DecodeError: ErrorCode.CORRUPT_MESSAGE,
        # configuration values
        ConfigError: ErrorCode.INVALID_CONFIG,
        # Kafka's TimeoutException
        TimeoutError: ErrorCode.REQUEST_TIMED_OUT,
    }
)


def _known(code: int) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.UNKNOWN_SERVER_ERROR


def error_code(exc: BaseException) -> ErrorCode:
    """The Kafka error code for `exc`; UNKNOWN_SERVER_ERROR for anything unexpected."""
    if isinstance(exc, _CODED):
        return _known(exc.code)  # type: ignore[attr-defined]  # every _CODED class has .code
    for cls in type(exc).__mro__:
        code = ERROR_TABLE.get(cls)
        if code is not None:
            return code
    return ErrorCode.UNKNOWN_SERVER_ERROR


# ---------------------------------------------------------------- version fallbacks


class Fallback(NamedTuple):  # a NamedTuple: a frozen dataclass costs ~1 ms of broker start-up
    """`code` exists in `api_key`'s responses from version `since`; older versions get `older`."""

    api_key: ApiKey
    code: ErrorCode
    since: int
    older: ErrorCode
    why: str


# From the "Version N adds ..." notes of Kafka's message specs and the Kafka changes named.
FALLBACKS: tuple[Fallback, ...] = (
    # KIP-588: fenced producers of older clients see the epoch error they know.
    Fallback(ApiKey.INIT_PRODUCER_ID, ErrorCode.PRODUCER_FENCED, 4, ErrorCode.INVALID_PRODUCER_EPOCH, "KIP-588"),
    Fallback(ApiKey.ADD_PARTITIONS_TO_TXN, ErrorCode.PRODUCER_FENCED, 2, ErrorCode.INVALID_PRODUCER_EPOCH, "KIP-588"),
    Fallback(ApiKey.ADD_OFFSETS_TO_TXN, ErrorCode.PRODUCER_FENCED, 2, ErrorCode.INVALID_PRODUCER_EPOCH, "KIP-588"),
    Fallback(ApiKey.END_TXN, ErrorCode.PRODUCER_FENCED, 2, ErrorCode.INVALID_PRODUCER_EPOCH, "KIP-588"),
    # KIP-890 (KAFKA-16314): older clients keep getting INVALID_TXN_STATE.
    Fallback(ApiKey.PRODUCE, ErrorCode.TRANSACTION_ABORTABLE, 11, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.TXN_OFFSET_COMMIT, ErrorCode.TRANSACTION_ABORTABLE, 4, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.ADD_PARTITIONS_TO_TXN, ErrorCode.TRANSACTION_ABORTABLE, 5, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.ADD_OFFSETS_TO_TXN, ErrorCode.TRANSACTION_ABORTABLE, 4, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.END_TXN, ErrorCode.TRANSACTION_ABORTABLE, 4, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.INIT_PRODUCER_ID, ErrorCode.TRANSACTION_ABORTABLE, 5, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    Fallback(ApiKey.FIND_COORDINATOR, ErrorCode.TRANSACTION_ABORTABLE, 5, ErrorCode.INVALID_TXN_STATE, "KIP-890"),
    # KIP-112: clients before these versions do not know KAFKA_STORAGE_ERROR; they retry NOT_LEADER_OR_FOLLOWER.
    Fallback(ApiKey.PRODUCE, ErrorCode.KAFKA_STORAGE_ERROR, 4, ErrorCode.NOT_LEADER_OR_FOLLOWER, "KIP-112"),
    Fallback(ApiKey.FETCH, ErrorCode.KAFKA_STORAGE_ERROR, 6, ErrorCode.NOT_LEADER_OR_FOLLOWER, "KIP-112"),
    # ListOffsets v5 adds OFFSET_NOT_AVAILABLE; older versions get LEADER_NOT_AVAILABLE (KIP-207).
    Fallback(ApiKey.LIST_OFFSETS, ErrorCode.OFFSET_NOT_AVAILABLE, 5, ErrorCode.LEADER_NOT_AVAILABLE, "KIP-207"),
    # DeleteTopics v3 adds TOPIC_DELETION_DISABLED; older versions get INVALID_REQUEST.
    Fallback(ApiKey.DELETE_TOPICS, ErrorCode.TOPIC_DELETION_DISABLED, 3, ErrorCode.INVALID_REQUEST, "KIP-322"),
    # KAFKA-9656: producers before TxnOffsetCommit v2 treat COORDINATOR_LOAD_IN_PROGRESS as fatal.
    Fallback(
        ApiKey.TXN_OFFSET_COMMIT,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        2,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        "KAFKA-9656",
    ),
)

_BY_API_CODE: Mapping[tuple[int, int], Fallback] = MappingProxyType({(f.api_key, f.code): f for f in FALLBACKS})


def for_version(api_key: int, version: int, code: int) -> int:
    """`code` as `api_key` at `version` may carry it (unchanged unless FALLBACKS says otherwise)."""
    f = _BY_API_CODE.get((api_key, code))
    return f.older if f is not None and version < f.since else code


def fallback_below(api_key: int) -> int:
    """The version from which `api_key`'s responses need no fallback (0: never any)."""
    return max((f.since for f in FALLBACKS if f.api_key == api_key), default=0)


class Downgrader:
    """Applies FALLBACKS to responses in place. Learns once per response type which fields hold
    error codes, or structs that do, so a response costs a few attribute reads per item."""

    __slots__ = ("_plans",)

    def __init__(self) -> None:
        self._plans: dict[type[Entity], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def _plan(self, cls: type[Entity]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        plan = self._plans.get(cls)
        if plan is None:
            codes = tuple(n for n in cls.__slots__ if n.endswith("error_code"))
            children = tuple(n for n, t in _field_types(cls).items() if any(self._plan(t)))
            plan = self._plans[cls] = (codes, children)
        return plan

    def __call__(self, message: Entity, api_key: int, version: int) -> None:
        """Rewrite every error code in `message` that `version` predates."""
        plans = self._plans
        todo = [message]
        while todo:
            m = todo.pop()
            codes, children = plans.get(type(m)) or self._plan(type(m))
            for name in codes:
                code = getattr(m, name)
                if code:
                    setattr(m, name, for_version(api_key, version, code))
            for name in children:
                value = getattr(m, name)
                if isinstance(value, list):
                    todo.extend(value)
                elif value is not None:
                    todo.append(value)


# ---------------------------------------------------------------- a failed request's response

UNKNOWN_SERVER_ERROR_MESSAGE = "The server experienced an unexpected error when processing the request."

# Where a response field answers a request field of another name, per API: response field ->
# candidate request fields, the first that is a non-empty list wins; (field, key) for a request
# list of plain values whose response items carry the value in `key`; "" copies nothing.
Source = str | tuple[str, str]
_RENAMES: Mapping[int, Mapping[str, tuple[Source, ...]]] = MappingProxyType(
    {
        ApiKey.PRODUCE: {"responses": ("topic_data",), "partition_responses": ("partition_data",)},
        ApiKey.FETCH: {"responses": ("topics",), "partition_index": ("partition",)},
        ApiKey.CREATE_TOPICS: {"configs": ("",)},
        ApiKey.DELETE_TOPICS: {"responses": ("topics", ("topic_names", "name"))},
        ApiKey.CREATE_PARTITIONS: {"results": ("topics",)},
        ApiKey.DESCRIBE_CONFIGS: {"results": ("resources",), "configs": ("",)},
        ApiKey.ALTER_CONFIGS: {"responses": ("resources",)},
        ApiKey.INCREMENTAL_ALTER_CONFIGS: {"responses": ("resources",)},
        ApiKey.CREATE_ACLS: {"results": ("creations",)},
        ApiKey.DELETE_ACLS: {"filter_results": ("filters",)},
        ApiKey.DESCRIBE_GROUPS: {"groups": (("groups", "group_id"),)},
        ApiKey.DELETE_GROUPS: {"results": (("groups_names", "group_id"),)},
        ApiKey.CONSUMER_GROUP_DESCRIBE: {"groups": (("group_ids", "group_id"),)},
        ApiKey.STREAMS_GROUP_DESCRIBE: {"groups": (("group_ids", "group_id"),)},
        ApiKey.SHARE_GROUP_DESCRIBE: {"groups": (("group_ids", "group_id"),)},
        ApiKey.INITIALIZE_SHARE_GROUP_STATE: {"results": ("topics",)},
        ApiKey.READ_SHARE_GROUP_STATE: {"results": ("topics",)},
        ApiKey.WRITE_SHARE_GROUP_STATE: {"results": ("topics",)},
        ApiKey.DELETE_SHARE_GROUP_STATE: {"results": ("topics",)},
        ApiKey.READ_SHARE_GROUP_STATE_SUMMARY: {"results": ("topics",)},
        ApiKey.DESCRIBE_TRANSACTIONS: {"transaction_states": (("transactional_ids", "transactional_id"),)},
        ApiKey.DESCRIBE_PRODUCERS: {"partitions": (("partition_indexes", "partition_index"),)},
        ApiKey.WRITE_TXN_MARKERS: {"partitions": (("partition_indexes", "partition_index"),)},
        ApiKey.ADD_PARTITIONS_TO_TXN: {
            "results_by_topic_v3_and_below": ("v3_and_below_topics",),
            "results_by_transaction": ("transactions",),
            "topic_results": ("topics",),
            "results_by_partition": (("partitions", "partition_index"),),
        },
        ApiKey.OFFSET_FETCH: {"partitions": (("partition_indexes", "partition_index"),)},
        ApiKey.ELECT_LEADERS: {
            "replica_election_results": ("topic_partitions",),
            "partition_result": (("partitions", "partition_id"),),
        },
        ApiKey.ALTER_PARTITION_REASSIGNMENTS: {"responses": ("topics",)},
        ApiKey.FIND_COORDINATOR: {"coordinators": (("coordinator_keys", "key"),)},
        ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: {"results": ("users",), "user": ("name",)},
    }
)


# Fields whose zero default means something in an error response: Kafka's "no node" and "no epoch".
_ERROR_VALUES: Mapping[int, Mapping[str, int]] = MappingProxyType(
    {
        ApiKey.FIND_COORDINATOR: {"node_id": -1, "port": -1},
        ApiKey.INIT_PRODUCER_ID: {"producer_id": -1, "producer_epoch": -1},
    }
)


def _field_types(cls: type[Entity]) -> dict[str, type[Entity]]:
    """The struct type of each field of `cls` that holds structs (or lists of them)."""
    hints = get_type_hints(cls.__init__)
    out: dict[str, type[Entity]] = {}
    for name, hint in hints.items():
        for arg in get_args(hint) or (hint,):
            item = get_args(arg)[0] if get_origin(arg) is list else arg
            if isinstance(item, type) and issubclass(item, Entity):
                out[name] = item
    return out


def _source(source: object, candidates: tuple[Source, ...]) -> tuple[object, str]:
    """The request value a response field answers, and the key for plain values."""
    value: object = None
    for candidate in candidates:
        name, key = candidate if isinstance(candidate, tuple) else (candidate, "")
        value = getattr(source, name, None) if name else None
        if value if isinstance(value, list) else value is not None:
            return value, key
    return value, ""


def _mirror(
    cls: type[E],
    source: object,
    code: int,
    message: str,
    renames: Mapping[str, tuple[Source, ...]],
    values: Mapping[str, int],
) -> E:
    """An instance of `cls` answering `source`: every error code `code`, names and keys copied."""
    out = cls()
    structs = _field_types(cls)
    for name in cls.__slots__:
        if name.endswith("error_code"):
            setattr(out, name, code)
            continue
        if name.endswith("error_message"):
            setattr(out, name, message)
            continue
        if name in values:
            setattr(out, name, values[name])
            continue
        if source is None:
            continue
        value, key = _source(source, renames.get(name, (name,)))
        if value is None:
            continue
        elem = structs.get(name)
        current = getattr(out, name, None)
        if elem is not None and isinstance(value, list) and isinstance(current, list):
            items: list[Entity] = []
            for v in value:
                if isinstance(v, Entity):
                    items.append(_mirror(elem, v, code, message, renames, values))
                elif key:
                    item = _mirror(elem, None, code, message, renames, values)
                    setattr(item, key, v)
                    items.append(item)
            setattr(out, name, items)
        elif elem is None and not isinstance(value, (list, Entity)) and type(value) is type(current):
            setattr(out, name, value)
    return out


def failed_response(api_key: int, request: Message, response_type: type[M], code: int, message: str) -> M:
    """`request`'s response with every error code set to `code`: per topic, partition or item where
    the request names them (the response mirrors them), and top-level where the response has it."""
    response = _mirror(response_type, request, code, message, _RENAMES.get(api_key, {}), _ERROR_VALUES.get(api_key, {}))
    if api_key == ApiKey.ALTER_USER_SCRAM_CREDENTIALS:
        # one result per user named by a deletion or an upsertion, sorted, as Kafka's error response
        users = [x.name for x in [*getattr(request, "deletions", []), *getattr(request, "upsertions", [])]]
        results = getattr(response, "results", None)
        if isinstance(results, list) and not results:
            elem = _field_types(response_type)["results"]
            for user in sorted(set(users)):
                item = _mirror(elem, None, code, message, {}, {})
                item.user = user  # type: ignore[attr-defined]
                results.append(item)
    if api_key == ApiKey.ALTER_REPLICA_LOG_DIRS:
        # the request names partitions per log dir, the response per topic
        parts: dict[str, list[int]] = {}
        for d in getattr(request, "dirs", None) or ():
            for t in d.topics:
                named = parts.setdefault(t.name, [])
                named.extend(p for p in dict.fromkeys(t.partitions) if p not in named)
        topic_type = _field_types(response_type)["results"]
        part_type = _field_types(topic_type)["partitions"]
        topics = []
        for name, indexes in parts.items():
            item = _mirror(topic_type, None, code, message, {}, {})
            item.topic_name = name  # type: ignore[attr-defined]
            item.partitions = []  # type: ignore[attr-defined]
            for index in indexes:
                part = _mirror(part_type, None, code, message, {}, {})
                part.partition_index = index  # type: ignore[attr-defined]
                item.partitions.append(part)  # type: ignore[attr-defined]
            topics.append(item)
        response.results = topics  # type: ignore[attr-defined]
    return response
