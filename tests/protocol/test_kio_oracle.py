"""kio (an independent Kafka codec, decoding in Rust) as an oracle for ours.

For every (message, version) that both codecs know with the same fields:
random instances (the schema-driven strategies of test_roundtrip, narrowed
where kio's types are narrower) are encoded by us, decoded by kio, re-encoded
by kio: the bytes must be ours, and kio's object, mapped back to our types,
must equal the original. A second test goes the other way, from instances
kio's own hypothesis hooks draw.

Not covered, because kio lacks them: versions that Kafka 4 removed (kio follows
Kafka 4) and APIs kio has no schema for (LeaderAndIsr, StopReplica,
UpdateMetadata, ControlledShutdown, ...). Also excluded: schemas that changed
between the Kafka release our spec comes from and kio's (see SCHEMA_DIFFERS).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import typing
from functools import cache
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkapy.protocol.primitives import ZERO_UUID, Message

from .test_roundtrip import (
    EXAMPLES,
    FieldInfo,
    is_flexible,
    module_of,
    schema_of,
    struct_strategy,
    top_level_classes,
)

kio_serial = pytest.importorskip("kio.serial")
from kio.schema.errors import ErrorCode
from kio.static.primitive import Records

# kio registers hooks for its other types, not for Records (a phantom of bytes).
st.register_type_strategy(Records, st.binary(max_size=24))

# Unstable APIs whose schema changed after the release our spec comes from.
SCHEMA_DIFFERS = {("ReadShareGroupStateSummaryResponse", 0)}
# Fields kio names differently (same wire layout).
RENAMES = {
    "candidate_epoch": "replica_epoch",
    "candidate_id": "replica_id",
    "candidate_directory_id": "replica_directory_id",
}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MAX_DATETIME_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_TIMEDELTA_MS = 2**43  # kio converts via float seconds: exact below 2**53 microseconds


def kio_name(ours: str) -> str:
    ours = RENAMES.get(ours, ours)
    ours = ours.removesuffix("_ms")  # kio types milliseconds as timedelta/datetime and drops the suffix
    return ours


def kio_class(cls: type[Message], version: int) -> type | None:
    mod = cls.__module__.rsplit(".", 1)[1]
    if mod.endswith("_request"):
        base, kind = mod[: -len("_request")], "request"
    elif mod.endswith("_response"):
        base, kind = mod[: -len("_response")], "response"
    elif mod.endswith("_header"):
        base, kind = mod, "header"
    else:
        base, kind = mod, "data"
    try:
        module = importlib.import_module(f"kio.schema.{base}.v{version}.{kind}")
    except ModuleNotFoundError:
        return None
    return getattr(module, cls.NAME, None)


def _inner(tp: Any) -> Any:
    """The struct type inside `X | None` or `tuple[X, ...]`."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return args[0]
    if args:
        return _inner(args[0])
    return tp


@dataclasses.dataclass
class Pairing:
    """Our struct and kio's, field by field, for one version."""

    kio: type
    fields: dict[str, dataclasses.Field[Any]]  # our field name -> kio field
    hints: dict[str, Any]  # kio field name -> type


def pair(module: ModuleType, struct: str, kcls: type, version: int, out: dict[str, Pairing]) -> bool:
    """Fill `out` with struct name -> Pairing; False if the field lists differ."""
    ours = [f for f in schema_of(module, struct) if f.present(version)]
    theirs = {f.name.rstrip("_"): f for f in dataclasses.fields(kcls)}
    if [kio_name(f.name) for f in ours] != list(theirs):
        return False
    hints = typing.get_type_hints(kcls)
    out[struct] = Pairing(kcls, {f.name: theirs[kio_name(f.name)] for f in ours}, hints)
    for f in ours:
        if f.elem in module.SCHEMA:
            k = theirs[kio_name(f.name)]
            if not pair(module, f.elem, _inner(hints[k.name]), version, out):
                return False
    return True


@cache
def pairing(cls: type[Message], version: int) -> dict[str, Pairing] | None:
    if (cls.NAME, version) in SCHEMA_DIFFERS:
        return None
    kcls = kio_class(cls, version)
    if kcls is None:
        return None
    out: dict[str, Pairing] = {}
    return out if pair(module_of(cls), cls.NAME, kcls, version, out) else None


def covered() -> list[tuple[type[Message], int]]:
    return [
        (c, v)
        for c in top_level_classes()
        for v in range(c.MIN_VERSION, c.MAX_VERSION + 1)
        if pairing(c, v) is not None
    ]


# ------------------------------------------------------------- strategies

ERROR_CODES = sorted(int(e) for e in ErrorCode)


def _allows_none(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def kio_override(pairs: dict[str, Pairing]) -> Any:
    """Narrow our strategies where kio's types are narrower than the wire."""

    def override(cls: type, f: FieldInfo, version: int) -> st.SearchStrategy[Any] | None:
        p = pairs[cls.__name__]
        kf = p.fields[f.name]
        ktype = kf.metadata.get("kafka_type")
        tp = p.hints[kf.name]
        if ktype == "error_code":
            base: st.SearchStrategy[Any] = st.sampled_from(ERROR_CODES)
        elif ktype == "datetime_i64":
            base = st.integers(0, MAX_DATETIME_MS)
            if _allows_none(tp):
                base = st.one_of(st.just(-1), base)
        elif f.elem == "records":
            base = st.binary(max_size=24)  # kio reads null records only where the schema allows it
        elif ktype == "timedelta_i64":
            base = st.integers(-MAX_TIMEDELTA_MS, MAX_TIMEDELTA_MS)
        else:
            return None
        if f.is_array:
            base = st.lists(base, max_size=3)
        if f.nullable_in(version) and ktype != "datetime_i64":
            base = st.one_of(st.none(), base)
        return base

    return override


@cache
def oracle_strategy(cls: type[Message], version: int) -> st.SearchStrategy[Message]:
    pairs = pairing(cls, version)
    assert pairs is not None
    # kio drops tagged fields it does not know, so draw none.
    return struct_strategy(
        module_of(cls), cls.NAME, version, is_flexible(cls, version), unknown_tags=False, override=kio_override(pairs)
    )


# ------------------------------------------------------------- kio -> ours


def to_ours(value: Any, module: ModuleType, struct: str, pairs: dict[str, Pairing]) -> Any:
    """Map a kio instance to our dataclass (timedeltas, datetimes, enums, tuples)."""
    p = pairs[struct]
    kwargs = {}
    for f in schema_of(module, struct):
        if f.name not in p.fields:
            continue
        v = getattr(value, p.fields[f.name].name)
        if f.elem in module.SCHEMA:
            if v is None:
                kwargs[f.name] = None
            elif f.is_array:
                kwargs[f.name] = [to_ours(x, module, f.elem, pairs) for x in v]
            else:
                kwargs[f.name] = to_ours(v, module, f.elem, pairs)
        elif f.is_array and v is not None:
            kwargs[f.name] = [scalar(x, f) for x in v]
        else:
            kwargs[f.name] = scalar(v, f)
    return getattr(module, struct)(**kwargs)


def scalar(v: Any, f: FieldInfo) -> Any:
    if isinstance(v, datetime.timedelta):
        return v // datetime.timedelta(milliseconds=1)
    if isinstance(v, datetime.datetime):
        return round((v - EPOCH) / datetime.timedelta(milliseconds=1))
    if v is None and f.elem == "uuid":
        return ZERO_UUID
    if v is None and f.type == "int64":  # a null datetime
        return -1
    if isinstance(v, UUID):
        return UUID(int=v.int)
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, str):
        return str(v)
    return v


def kio_encode(kcls: type, obj: Any) -> bytes:
    buf = io.BytesIO()
    kio_serial.entity_writer(kcls)(buf, obj)
    return buf.getvalue()


# ------------------------------------------------------------------ tests

COVERED = covered()
SETTINGS = settings(
    max_examples=max(4, EXAMPLES * 2 // 3),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
IDS = [f"{c.NAME}-v{v}" for c, v in COVERED]


def test_kio_covers_most_versions() -> None:
    # 550 of 674 (message, version) pairs when written; a drop means the pairing broke.
    assert len(COVERED) >= 540
    names = {c.NAME for c, _ in COVERED}
    for must in ("ProduceRequest", "FetchResponse", "MetadataResponse", "JoinGroupRequest", "RequestHeader"):
        assert must in names


@pytest.mark.parametrize(("cls", "version"), COVERED, ids=IDS)
def test_ours_to_kio(cls: type[Message], version: int) -> None:
    pairs = pairing(cls, version)
    assert pairs is not None
    kcls = pairs[cls.NAME].kio
    reader = kio_serial.entity_reader(kcls)
    module = module_of(cls)

    @SETTINGS
    @given(oracle_strategy(cls, version))
    def check(obj: Message) -> None:
        ours = obj.encode(version)
        theirs, size = reader(ours, 0)
        assert size == len(ours)
        assert kio_encode(kcls, theirs) == ours
        assert to_ours(theirs, module, cls.NAME, pairs) == obj

    check()


@pytest.mark.parametrize(("cls", "version"), COVERED, ids=IDS)
def test_kio_to_ours(cls: type[Message], version: int) -> None:
    """Instances drawn by kio's own type hooks: our decoder reads kio's bytes, our encoder writes them back."""
    pairs = pairing(cls, version)
    assert pairs is not None
    kcls = pairs[cls.NAME].kio
    module = module_of(cls)

    @settings(SETTINGS, max_examples=max(2, EXAMPLES // 6))
    @given(st.from_type(kcls))
    def check(kobj: Any) -> None:
        data = kio_encode(kcls, kobj)
        ours = cls.decode(data, version)
        assert ours.encode(version) == data
        assert ours == to_ours(kobj, module, cls.NAME, pairs)

    check()
