"""Property tests: every message, header and data struct round-trips in every version.

Strategies are built from the codec itself: each generated module carries a
`SCHEMA` table (field, type, versions, nullable versions, tagged versions, tag),
so a strategy for (class, version) sets exactly the fields that exist in that
version, draws None only where the version allows it, keeps integers inside
their wire width, strings valid UTF-8, and adds unknown tagged fields to
flexible versions. The other protocol test modules import the builders here.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkapy.protocol.messages import MODULES
from kafkapy.protocol.primitives import ZERO_UUID, Message

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class FieldInfo:
    """One row of a generated module's SCHEMA table."""

    name: str
    type: str
    versions: tuple[int, int] | None
    nullable: tuple[int, int] | None
    tagged: tuple[int, int] | None
    tag: int | None
    flexible_override: tuple[int, int] | None

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        return self.type[2:] if self.is_array else self.type

    def present(self, version: int) -> bool:
        return _within(self.versions, version)

    def nullable_in(self, version: int) -> bool:
        return _within(self.nullable, version)

    def tagged_in(self, version: int, flexible: bool) -> bool:
        return flexible and _within(self.tagged, version)


def _within(rng: tuple[int, int] | None, version: int) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


def top_level_classes() -> list[type[Message]]:
    """Every generated class with its own codec table: requests, responses, headers, data."""
    out = []
    for name in MODULES:
        mod = importlib.import_module(f"kafkapy.protocol.messages.{name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and "_DECODERS" in vars(obj):
                out.append(obj)
    return out


def message_versions() -> list[tuple[type[Message], int]]:
    return [(c, v) for c in top_level_classes() for v in range(c.MIN_VERSION, c.MAX_VERSION + 1)]


def module_of(cls: type) -> ModuleType:
    return sys.modules[cls.__module__]


@cache
def schema_of(module: ModuleType, struct: str) -> tuple[FieldInfo, ...]:
    return tuple(FieldInfo(*row) for row in module.SCHEMA[struct])


def is_flexible(cls: type[Message], version: int) -> bool:
    return cls.FLEXIBLE_MIN is not None and version >= cls.FLEXIBLE_MIN


# A hook may replace the strategy of one field: (struct class, field, version) -> strategy or None.
Override = Callable[[type, FieldInfo, int], "st.SearchStrategy[Any] | None"]


def primitive(type_name: str, *, max_size: int = 12) -> st.SearchStrategy[Any]:
    if type_name in INT_RANGES:
        lo, hi = INT_RANGES[type_name]
        return st.integers(lo, hi)
    if type_name == "bool":
        return st.booleans()
    if type_name == "float64":
        return st.floats(allow_nan=False)
    if type_name == "string":
        # hypothesis text excludes surrogates, so every value encodes as UTF-8.
        return st.text(max_size=max_size)
    if type_name in ("bytes", "records"):
        return st.binary(max_size=max_size * 2)
    if type_name == "uuid":
        return st.one_of(st.just(ZERO_UUID), st.uuids().map(lambda u: UUID(int=u.int)))
    raise AssertionError(f"unknown primitive {type_name}")


def struct_strategy(
    module: ModuleType,
    struct: str,
    version: int,
    flexible: bool,
    *,
    unknown_tags: bool = True,
    override: Override | None = None,
    max_list: int = 3,
    depth: int = 0,
) -> st.SearchStrategy[Any]:
    """Instances of `struct` with only the fields that `version` carries."""
    cls = getattr(module, struct)
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    known_tags: set[int] = set()
    for f in schema_of(module, struct):
        if not f.present(version):
            continue
        if f.tagged_in(version, flexible) and f.tag is not None:
            known_tags.add(f.tag)
        strat = override(cls, f, version) if override else None
        if strat is None:
            strat = field_strategy(module, f, version, flexible, unknown_tags, override, max_list, depth)
        kwargs[f.name] = strat
    if flexible and unknown_tags:
        # Encoders write tags sorted and decoders keep wire order: draw them sorted, unique,
        # distinct from known tags; an empty list would come back as None.
        tags = st.lists(
            st.integers(0, 2**31 - 1).filter(lambda t: t not in known_tags), min_size=1, max_size=2, unique=True
        ).map(sorted)
        kwargs["unknown_tagged_fields"] = st.one_of(
            st.none(),
            tags.flatmap(lambda ts: st.tuples(*(st.tuples(st.just(t), st.binary(max_size=6)) for t in ts)).map(list)),
        )
    return st.builds(cls, **kwargs)


def field_strategy(
    module: ModuleType,
    f: FieldInfo,
    version: int,
    flexible: bool,
    unknown_tags: bool,
    override: Override | None,
    max_list: int,
    depth: int,
) -> st.SearchStrategy[Any]:
    elem = f.elem
    is_struct = hasattr(module, elem) and elem in module.SCHEMA
    if is_struct:
        base = struct_strategy(
            module,
            elem,
            version,
            flexible,
            unknown_tags=unknown_tags,
            override=override,
            max_list=max(1, max_list - 1),
            depth=depth + 1,
        )
    else:
        base = primitive(elem)
    if f.is_array:
        base = st.lists(base, max_size=max_list if depth < 3 else 1)
    # Records are nullable on the wire whatever the schema says.
    if f.nullable_in(version) or (elem == "records" and not f.is_array):
        base = st.one_of(st.none(), base)
    return base


@cache
def message_strategy(cls: type[Message], version: int) -> st.SearchStrategy[Message]:
    return struct_strategy(module_of(cls), cls.NAME, version, is_flexible(cls, version))


PAIRS = message_versions()
# Examples per (message, version); raise it for a deeper run (the default keeps the file under ~30 s).
EXAMPLES = int(os.environ.get("KAFKAPY_PROPERTY_EXAMPLES", "12"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize(("cls", "version"), PAIRS, ids=[f"{c.NAME}-v{v}" for c, v in PAIRS])
def test_round_trip(cls: type[Message], version: int) -> None:
    @SETTINGS
    @given(message_strategy(cls, version))
    def check(obj: Message) -> None:
        data = obj.encode(version)
        back = cls.decode(data, version)
        assert back == obj
        assert back.encode(version) == data

    check()


def test_schema_matches_class_fields() -> None:
    """The SCHEMA table names every field of the generated classes (the builders rely on it)."""
    for cls in top_level_classes():
        module = module_of(cls)
        for struct in module.SCHEMA:
            names = list(getattr(module, struct).__slots__)
            assert names == [f.name for f in schema_of(module, struct)] + ["unknown_tagged_fields"], struct


def test_strategy_sets_only_fields_of_the_version() -> None:
    """A field absent from a version keeps its default (or the round trip would be vacuous)."""
    from kafkapy.protocol.messages.metadata_response import MetadataResponse

    @settings(max_examples=30, database=None)
    @given(message_strategy(MetadataResponse, 0))
    def check(obj: MetadataResponse) -> None:
        assert obj.cluster_id is None and obj.controller_id == -1 and obj.unknown_tagged_fields is None
        for t in obj.topics:
            assert t.topic_id == ZERO_UUID and t.name is not None

    check()
