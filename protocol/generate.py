"""Generate kafkapy's message codecs from Kafka's JSON message definitions.

    python -m protocol.generate [--spec DIR] [--out DIR] [--check]

Reads every `*.json` in the spec folder (default `../shared/kafka-message-spec`
next to the repository), then the whole messages that folder lacks from
`protocol/new_messages.py`, and writes one module per definition into
`kafkapy/protocol/messages/`, plus `kafkapy/protocol/api.py` (the index of
API keys). For each struct and version it writes one straight-line decode and
one encode function; versions whose wire layout is identical share them.
`--check` writes nothing and exits 1 if the committed modules differ.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.new_messages import NEW_MESSAGES
from protocol.newer_versions import amend

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO.parent / "shared" / "kafka-message-spec"
DEFAULT_OUT = REPO / "kafkapy" / "protocol"

FIXED: dict[str, tuple[str, int, str]] = {
    # type: (struct code, size, python type)
    "bool": ("?", 1, "bool"),
    "int8": ("b", 1, "int"),
    "int16": ("h", 2, "int"),
    "uint16": ("H", 2, "int"),
    "int32": ("i", 4, "int"),
    "uint32": ("I", 4, "int"),
    "int64": ("q", 8, "int"),
    "float64": ("d", 8, "float"),
}
VARIABLE = {"string", "bytes", "records", "uuid"}
MAX_VERSION = 32767


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Versions:
    lo: int
    hi: int  # inclusive; lo > hi means none

    @classmethod
    def parse(cls, text: str | None) -> Versions:
        if text is None or text == "none":
            return cls(1, 0)
        if text.endswith("+"):
            return cls(int(text[:-1]), MAX_VERSION)
        if "-" in text:
            lo, hi = text.split("-")
            return cls(int(lo), int(hi))
        return cls(int(text), int(text))

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi


@dataclass
class Field:
    name: str
    py: str
    type: str  # "int32", "string", "[]int32", "[]Topic", "Topic"
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default: str | None
    flexible_override: Versions | None
    about: str

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.elem not in FIXED and self.elem not in VARIABLE


@dataclass
class Struct:
    name: str
    fields: list[Field]


@dataclass
class Spec:
    name: str
    kind: str  # request / response / header / data
    api_key: int | None
    valid: Versions
    flexible: Versions
    top: Struct
    structs: dict[str, Struct]
    listeners: list[str]
    deprecated: Versions
    latest_unstable: bool
    source: str


def snake(name: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    return s + "_" if keyword.iskeyword(s) else s


def load_json(path: Path) -> dict[str, Any]:
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    spec: dict[str, Any] = json.loads(text)
    return spec


def parse_spec(path: Path) -> Spec:
    return parse_definition(load_json(path), f"Kafka's {path.name}")


def parse_definition(d: dict[str, Any], source: str) -> Spec:
    """One message definition (`source`: where it comes from, named in the module's docstring)."""
    amended = amend(d)  # versions the spec folder stops before (protocol/newer_versions.py)
    structs: dict[str, Struct] = {}

    def parse_fields(raw: list[dict[str, Any]]) -> list[Field]:
        out = []
        for f in raw:
            fld = Field(
                name=f["name"],
                py=snake(f["name"]),
                type=f["type"].strip(),
                versions=Versions.parse(f.get("versions")),
                nullable=Versions.parse(f.get("nullableVersions")),
                tagged=Versions.parse(f.get("taggedVersions")),
                tag=f.get("tag"),
                default=None if "default" not in f else str(f["default"]),
                flexible_override=Versions.parse(f["flexibleVersions"]) if "flexibleVersions" in f else None,
                about=f.get("about", ""),
            )
            if "fields" in f:
                if fld.elem in structs:
                    raise SystemExit(f"{source}: struct {fld.elem} defined twice")
                structs[fld.elem] = Struct(fld.elem, parse_fields(f["fields"]))
            out.append(fld)
        return out

    for cs in d.get("commonStructs", []):
        structs[cs["name"]] = Struct(cs["name"], parse_fields(cs["fields"]))
    top = Struct(d["name"], parse_fields(d["fields"]))
    kind = d["type"]
    if kind == "metadata":
        kind = "data"
    return Spec(
        name=d["name"],
        kind=kind,
        api_key=d.get("apiKey"),
        valid=Versions.parse(d["validVersions"]),
        flexible=Versions.parse(d["flexibleVersions"]),
        top=top,
        structs=structs,
        listeners=d.get("listeners", []),
        deprecated=Versions.parse(d.get("deprecatedVersions")),
        latest_unstable=bool(d.get("latestVersionUnstable", False)),
        source=source + (" and protocol/newer_versions.py" if amended else ""),
    )


# --------------------------------------------------------------- the emitter


@dataclass
class Module:
    spec: Spec
    imports: set[str] = field(default_factory=set)
    formats: dict[str, str] = field(default_factory=dict)  # fmt -> const name
    functions: list[str] = field(default_factory=list)
    memo: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (kind, struct, body) -> name
    by_version: dict[tuple[str, str, int], str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # short-array Struct tables used
    needs_encode_error: bool = False

    def plain_array_table(self, code: str) -> str:
        name = "_P_" + code.replace("?", "o").replace("H", "U").replace("I", "W")
        self.use("PLAIN_ARRAY_STRUCTS")
        self.tables[name] = f'PLAIN_ARRAY_STRUCTS["{code}"]'
        return name

    def array_table(self, code: str, flexible: bool) -> str:
        table = "COMPACT_ARRAY_STRUCTS" if flexible else "ARRAY_STRUCTS"
        name = ("_CA_" if flexible else "_A_") + code.replace("?", "o").replace("H", "U").replace("I", "W")
        self.use(table)
        self.tables[name] = f'{table}["{code}"]'
        return name

    def use(self, *names: str) -> None:
        self.imports.update(names)

    def fmt(self, codes: str) -> str:
        name = self.formats.get(codes)
        if name is None:
            name = "_S_" + codes.lstrip(">").replace("?", "o").replace("H", "U").replace("I", "W")
            self.formats[codes] = name
        return name

    # ---- helpers over fields

    def flexible(self, version: int) -> bool:
        return version in self.spec.flexible

    def struct_of(self, f: Field) -> Struct:
        if f.elem not in self.spec.structs:
            raise SystemExit(f"{self.spec.source}: unknown type {f.elem} of field {f.name}")
        return self.spec.structs[f.elem]

    @staticmethod
    def split(s: Struct, version: int, flexible: bool) -> tuple[list[Field], list[Field]]:
        present = [f for f in s.fields if version in f.versions]
        regular = [f for f in present if not (flexible and version in f.tagged)]
        tagged = sorted((f for f in present if flexible and version in f.tagged), key=lambda f: f.tag or 0)
        return regular, tagged

    def field_flexible(self, f: Field, flexible: bool, version: int) -> bool:
        if f.flexible_override is not None:
            return flexible and version in f.flexible_override
        return flexible

    # ---- defaults

    def default_expr(self, f: Field) -> str:
        d = f.default
        if f.is_array:
            return "None" if d == "null" else "[]"
        if f.is_struct:
            return "None" if d == "null" else f"{f.elem}()"
        t = f.type
        if t == "bool":
            return "True" if (d or "false").lower() == "true" else "False"
        if t in FIXED:
            if t == "float64":
                return repr(float(d)) if d else "0.0"
            return str(int(d, 0)) if d else "0"
        if t == "string":
            return "None" if d == "null" else repr(d or "")
        if t == "bytes":
            return "None" if d == "null" else 'b""'
        if t == "records":
            return "None"
        if t == "uuid":
            self.use("ZERO_UUID")
            return "ZERO_UUID"
        raise SystemExit(f"no default for {t}")

    @staticmethod
    def may_be_none(f: Field) -> bool:
        """Whether the field's Python type admits None (null in some version, or a null default)."""
        return f.nullable.lo <= f.nullable.hi or f.default == "null" or f.type == "records"

    def annotation(self, f: Field) -> str:
        """The Python type of a field, as the class declares it."""
        base = f"list[{self.py_type(f.elem)}]" if f.is_array else self.py_type(f.type)
        return base + (" | None" if self.may_be_none(f) else "")

    def field_param(self, f: Field) -> tuple[str, str]:
        """The __init__ parameter of a field, and the statement that stores it."""
        store = f"self.{f.py} = {f.py}"
        ann = self.annotation(f)
        if f.is_array:
            dflt = "None" if f.default == "null" else "DEFAULT"
            if dflt == "DEFAULT":
                store = f"self.{f.py} = [] if {f.py} is DEFAULT else {f.py}"
        elif f.is_struct:
            dflt = "None" if f.default == "null" else "DEFAULT"
            if dflt == "DEFAULT":
                store = f"self.{f.py} = {f.elem}() if {f.py} is DEFAULT else {f.py}"
        else:
            dflt = self.default_expr(f)
        if dflt == "DEFAULT":
            self.use("DEFAULT")
        return f"{f.py}: {ann} = {dflt}", store

    def py_type(self, t: str) -> str:
        if t in FIXED:
            return FIXED[t][2]
        return {"string": "str", "bytes": "bytes", "records": "Any", "uuid": "UUID"}.get(t, t)

    # ---- decoding

    def decode_fn(self, s: Struct, version: int) -> str:
        key = ("d", s.name, version)
        if key in self.by_version:
            return self.by_version[key]
        flexible = self.flexible(version)
        regular, tagged = self.split(s, version, flexible)
        # Declare each decoded local's type (no code at run time) so a type checker needs no inference.
        body: list[str] = [f"v_{f.py}: {self.annotation(f)}" for f in regular + tagged if f.type not in FIXED]
        group: list[Field] = []

        def flush() -> None:
            if not group:
                return
            codes = "".join(FIXED[g.type][0] for g in group)
            size = sum(FIXED[g.type][1] for g in group)
            names = ", ".join(f"v_{g.py}" for g in group)
            if len(group) == 1:
                names += ","
            body.append(f'f = "{group[0].py}"')
            body.append(f"({names}) = {self.fmt('>' + codes)}.unpack_from(buf, pos)")
            body.append(f"pos += {size}")
            group.clear()

        for f in regular:
            if f.type in FIXED:
                group.append(f)
                continue
            flush()
            body.append(f'f = "{f.py}"')
            body.extend(self.decode_value(f, version, self.field_flexible(f, flexible, version), f"v_{f.py}", "buf"))
        flush()
        present = {f.py for f in regular + tagged}
        if flexible:
            self.use("read_tag_count", "read_tag_header")
            for f in tagged:
                body.append(f"v_{f.py} = {self.default_expr(f)}")
            body.append("unknown = None")
            body.append('f = "_tagged_fields"')
            body.append("if buf[pos] == 0:  # no tagged fields, the common case")
            body.append("    pos += 1")
            body.append("else:")
            body.append("    ntag, pos = read_tag_count(buf, pos)")
            body.append("    for _ in range(ntag):")
            body.append("        tag, pos, end = read_tag_header(buf, pos)")
            kw = "if"
            for f in tagged:
                body.append(f"        {kw} tag == {f.tag}:")
                body.append(f'            f = "{f.py}"')
                body.append("            tb = buf[:end]")
                for line in self.decode_value(f, version, True, f"v_{f.py}", "tb"):
                    body.append("            " + line)
                kw = "elif"
            ind = "            " if tagged else "        "
            if tagged:
                body.append("        else:")
            body.append(f"{ind}if unknown is None:")
            body.append(f"{ind}    unknown = []")
            body.append(f"{ind}unknown.append((tag, bytes(buf[pos:end])))")
            body.append("        pos = end")
        # Build the object without __init__: set every slot directly.
        self.use("NEW")
        body.append(f"o = NEW({s.name})")
        for f in s.fields:
            value = f"v_{f.py}" if f.py in present else self.default_expr(f)
            body.append(f"o.{f.py} = {value}")
        body.append(f"o.unknown_tagged_fields = {'unknown' if flexible else 'None'}")
        body.append("return o, pos")
        text = "\n".join(body)
        name = self.memo.get(("d", s.name, text))
        if name is None:
            name = f"_d_{s.name}_{version}"
            self.memo[("d", s.name, text)] = name
            self.use("FAULTS", "fault")
            lines = [f"def {name}(buf: memoryview, pos: int) -> tuple[{s.name}, int]:", '    f = ""', "    try:"]
            lines += ["        " + line if line else "" for line in body]
            lines += ["    except FAULTS as e:", "        raise fault(e, f) from None"]
            self.functions.append("\n".join(lines))
        self.by_version[key] = name
        return name

    def decode_value(self, f: Field, version: int, flexible: bool, target: str, buf: str) -> list[str]:
        nullable = version in f.nullable
        t = f.elem
        if f.is_array:
            reader = ("read_compact" if flexible else "read") + ("_nullable" if nullable else "") + "_array_count"
            if not flexible:
                reader = "read_nullable_array_count" if nullable else "read_array_count"
            self.use(reader)
            out = [f"n, pos = {reader}({buf}, pos)"]
            ind = ""
            if nullable:
                out.append("if n < 0:")
                out.append(f"    {target} = None")
                out.append("else:")
                ind = "    "
            if t in FIXED:
                self.use("read_int_array")
                code, size, _ = FIXED[t]
                table = self.plain_array_table(code)
                out.append(f"{ind}if n < 32:")
                out.append(f"{ind}    {target} = list({table}[n].unpack_from({buf}, pos))")
                out.append(f"{ind}    pos += n * {size}")
                out.append(f"{ind}else:")
                out.append(f'{ind}    {target}, pos = read_int_array({buf}, pos, n, "{code}", {size})')
            elif f.is_struct:
                fn = self.decode_fn(self.struct_of(f), version)
                out.append(f"{ind}{target} = []")
                out.append(f"{ind}for _ in range(n):")
                out.append(f"{ind}    item_{f.py}, pos = {fn}({buf}, pos)")
                out.append(f"{ind}    {target}.append(item_{f.py})")
            else:
                out.append(f"{ind}{target} = []")
                out.append(f"{ind}for _ in range(n):")
                out.append(f"{ind}    item_{f.py}, pos = {self.reader(t, flexible, False)}({buf}, pos)")
                out.append(f"{ind}    {target}.append(item_{f.py})")
            return out
        if f.is_struct:
            fn = self.decode_fn(self.struct_of(f), version)
            if nullable:
                self.use("INT8")
                return [
                    f"(marker,) = INT8.unpack_from({buf}, pos)",
                    "pos += 1",
                    "if marker < 0:",
                    f"    {target} = None",
                    "else:",
                    f"    {target}, pos = {fn}({buf}, pos)",
                ]
            return [f"{target}, pos = {fn}({buf}, pos)"]
        if t in FIXED:
            code, size, _ = FIXED[t]
            return [f"({target},) = {self.fmt('>' + code)}.unpack_from({buf}, pos)", f"pos += {size}"]
        return [f"{target}, pos = {self.reader(t, flexible, nullable)}({buf}, pos)"]

    def reader(self, t: str, flexible: bool, nullable: bool) -> str:
        if t == "uuid":
            name = "read_uuid"
        elif t == "records":
            name = "read_compact_records" if flexible else "read_records"
        else:
            name = "read_" + ("compact_" if flexible else "") + ("nullable_" if nullable else "") + t
        self.use(name)
        return name

    # ---- encoding

    def encode_fn(self, s: Struct, version: int) -> str:
        key = ("e", s.name, version)
        if key in self.by_version:
            return self.by_version[key]
        flexible = self.flexible(version)
        regular, tagged = self.split(s, version, flexible)
        body: list[str] = ["a = out.append"]
        group: list[Field] = []

        def flush() -> None:
            if not group:
                return
            codes = "".join(FIXED[g.type][0] for g in group)
            vals = ", ".join(f"o.{g.py}" for g in group)
            body.append(f"a({self.fmt('>' + codes)}.pack({vals}))")
            group.clear()

        for f in regular:
            if f.type in FIXED:
                group.append(f)
                continue
            flush()
            body.extend(
                self.encode_value(s, f, version, self.field_flexible(f, flexible, version), f"o.{f.py}", "out", "a")
            )
        flush()
        if flexible:
            self.use("write_tagged")
            if tagged:
                body.append("tags: list[tuple[int, bytes]] = []")
                body.append("sub: list[Any]")
                for f in tagged:
                    body.append(f"v_{f.py} = o.{f.py}")
                    body.append(f"if {self.non_default_test(f, f'v_{f.py}')}:")
                    body.append("    sub = []")
                    for line in self.encode_value(s, f, version, True, f"v_{f.py}", "sub", "sub.append"):
                        body.append("    " + line)
                    body.append(f'    tags.append(({f.tag}, b"".join(sub)))')
                body.append("if o.unknown_tagged_fields:")
                body.append("    tags.extend(o.unknown_tagged_fields)")
                body.append("write_tagged(out, tags)")
            else:
                body.append("if o.unknown_tagged_fields:")
                body.append("    write_tagged(out, list(o.unknown_tagged_fields))")
                body.append("else:")
                body.append('    a(b"\\x00")')
        text = "\n".join(body)
        name = self.memo.get(("e", s.name, text))
        if name is None:
            name = f"_e_{s.name}_{version}"
            self.memo[("e", s.name, text)] = name
            lines = [f"def {name}(o: {s.name}, out: list[Any]) -> None:"]
            lines += ["    " + line for line in body]
            self.functions.append("\n".join(lines))
        self.by_version[key] = name
        return name

    def non_default_test(self, f: Field, v: str) -> str:
        d = self.default_expr(f)
        if d == "None":
            return f"{v} is not None"
        if f.is_array:
            return v
        return f"{v} != {d}"

    def encode_value(self, s: Struct, f: Field, version: int, flexible: bool, v: str, out: str, a: str) -> list[str]:
        nullable = version in f.nullable
        t = f.elem
        lines: list[str] = []
        ind = ""
        if not nullable and self.may_be_none(f) and t != "records":
            # Null in some versions, not in this one: refuse it by name (also narrows the type).
            self.needs_encode_error = True
            lines.append(f"if {v} is None:")
            lines.append(f'    raise EncodeError("{s.name}.{f.py} is null in a version where it is not nullable")')
        if f.is_array:
            if nullable:
                lines.append(f"if {v} is None:")
                null = 'b"\\x00"' if flexible else 'b"\\xff\\xff\\xff\\xff"'
                lines.append(f"    {a}({null})")
                lines.append("else:")
                ind = "    "
            if t in FIXED:
                writer = "write_compact_int_array" if flexible else "write_int_array"
                code = FIXED[t][0]
                table = self.array_table(code, flexible)
                count = "n + 1" if flexible else "n"
                lines.append(f"{ind}n = len({v})")
                lines.append(f'{ind}{a}({table}[n].pack({count}, *{v}) if n < 32 else {writer}({v}, "{code}"))')
                self.use(writer)
                return lines
            if flexible:
                self.use("write_uvarint")
                lines.append(f"{ind}{a}(write_uvarint(len({v}) + 1))")
            else:
                self.use("INT32")
                lines.append(f"{ind}{a}(INT32.pack(len({v})))")
            if f.is_struct:
                fn = self.encode_fn(self.struct_of(f), version)
                lines.append(f"{ind}for x_{f.py} in {v}:")
                lines.append(f"{ind}    {fn}(x_{f.py}, {out})")
            else:
                lines.append(f"{ind}for x_{f.py} in {v}:")
                lines.append(f"{ind}    {a}({self.writer(t, flexible, False)}(x_{f.py}))")
            return lines
        if f.is_struct:
            fn = self.encode_fn(self.struct_of(f), version)
            if nullable:
                return [
                    f"if {v} is None:",
                    f'    {a}(b"\\xff")',
                    "else:",
                    f'    {a}(b"\\x01")',
                    f"    {fn}({v}, {out})",
                ]
            return [*lines, f"{fn}({v}, {out})"]
        if t in FIXED:
            return [*lines, f"{a}({self.fmt('>' + FIXED[t][0])}.pack({v}))"]
        if t == "records":
            name = "write_compact_records" if flexible else "write_records"
            self.use(name)
            return [f"{name}({out}, {v})"]
        return [*lines, f"{a}({self.writer(t, flexible, nullable)}({v}))"]

    def writer(self, t: str, flexible: bool, nullable: bool) -> str:
        if t == "uuid":
            name = "write_uuid"
        else:
            name = "write_" + ("compact_" if flexible else "") + ("nullable_" if nullable else "") + t
        self.use(name)
        return name

    # ---- the module

    def render(self) -> str:
        spec = self.spec
        versions = range(spec.valid.lo, spec.valid.hi + 1)
        dec = [self.decode_fn(spec.top, v) for v in versions]
        enc = [self.encode_fn(spec.top, v) for v in versions]
        order = self.struct_order()
        classes = [self.render_class(s, s is spec.top) for s in order]
        flex_min = None if spec.flexible.lo > spec.flexible.hi else max(spec.flexible.lo, spec.valid.lo)
        table = [
            f"{spec.name}._DECODERS = ({', '.join(dec)},)",
            f"{spec.name}._ENCODERS = ({', '.join(enc)},)",
        ]
        self.use("Message")
        prims = sorted(self.imports)
        head = [
            f'"""{spec.name}: generated by protocol/generate.py from {spec.source}. Do not edit."""',
            "# ruff: noqa: E501",
            "",
            "from __future__ import annotations",
            "",
            "from struct import Struct",
            "from typing import Any, ClassVar",
            "from uuid import UUID",
            "",
            *(["from kafkapy.protocol.errors import EncodeError"] if self.needs_encode_error else []),
            "from kafkapy.protocol.primitives import (",
            *[f"    {p}," for p in prims],
            ")",
            "",
            "# Versions "
            + f"{spec.valid.lo}-{spec.valid.hi}"
            + (f", flexible from {flex_min}" if flex_min is not None else ", never flexible"),
            "",
        ]
        consts = [f'{name} = Struct("{fmt}")' for fmt, name in sorted(self.formats.items(), key=lambda kv: kv[1])]
        consts += [f"{name} = {expr}" for name, expr in sorted(self.tables.items())]
        text = "\n".join(head + consts) + "\n\n\n"
        text += "\n\n\n".join(classes) + "\n\n\n"
        text += "\n\n\n".join(self.functions) + "\n\n\n"
        text += "\n".join(table) + "\n\n"
        text += self.render_schema(order)
        del flex_min
        return text

    def render_schema(self, order: list[Struct]) -> str:
        """A table of every struct's fields, for tests and tools that introspect the codec."""

        def vr(v: Versions) -> str:
            return "None" if v.lo > v.hi else f"({v.lo}, {v.hi})"

        lines = [
            "# Per struct: (field, type, versions, nullable versions, tagged versions, tag, flexible versions",
            "# override); versions are inclusive (lo, hi) pairs, None for never.",
            "SCHEMA: dict[str, tuple[tuple[Any, ...], ...]] = {",
        ]
        for s in order:
            lines.append(f'    "{s.name}": (')
            for f in s.fields:
                over = "None" if f.flexible_override is None else vr(f.flexible_override)
                lines.append(
                    f'        ("{f.py}", "{f.type}", {vr(f.versions)}, {vr(f.nullable)}, {vr(f.tagged)}, {f.tag}, {over}),'
                )
            lines.append("    ),")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def struct_order(self) -> list[Struct]:
        seen: list[str] = []

        def visit(s: Struct) -> None:
            for f in s.fields:
                if f.is_struct and f.elem not in seen:
                    visit(self.struct_of(f))
            if s.name not in seen:
                seen.append(s.name)

        visit(self.spec.top)
        return [self.spec.top if n == self.spec.top.name else self.spec.structs[n] for n in seen]

    def render_class(self, s: Struct, top: bool) -> str:
        spec = self.spec
        lines: list[str] = []
        if top:
            lines.append(f"class {s.name}(Message):")
            doc = {"request": "request", "response": "response", "header": "header", "data": "data structure"}[
                spec.kind
            ]
            lines.append(f'    """Kafka {doc} {s.name}, versions {spec.valid.lo}-{spec.valid.hi}."""')
            lines.append("")
            lines.append(f'    NAME: ClassVar[str] = "{s.name}"')
            lines.append(f"    API_KEY: ClassVar[int] = {spec.api_key if spec.api_key is not None else -1}")
            lines.append(f"    MIN_VERSION: ClassVar[int] = {spec.valid.lo}")
            lines.append(f"    MAX_VERSION: ClassVar[int] = {spec.valid.hi}")
            flex = None if spec.flexible.lo > spec.flexible.hi else max(spec.flexible.lo, spec.valid.lo)
            lines.append(f"    FLEXIBLE_MIN: ClassVar[int | None] = {flex}")
        else:
            self.use("Entity")
            lines.append(f"class {s.name}(Entity):")
        names = [f.py for f in s.fields] + ["unknown_tagged_fields"]
        lines.append("    __slots__ = (" + "".join(f'"{n}", ' for n in names).rstrip(", ") + ",)")
        lines.append("")
        params = [self.field_param(f) for f in s.fields]
        params.append(
            (
                "unknown_tagged_fields: list[tuple[int, bytes]] | None = None",
                "self.unknown_tagged_fields = unknown_tagged_fields",
            )
        )
        lines.append("    def __init__(")
        lines.append("        self,")
        for p, _ in params:
            lines.append(f"        {p},")
        lines.append("    ) -> None:")
        for _, st in params:
            lines.append(f"        {st}")
        return "\n".join(lines)


# ------------------------------------------------------------------ index


def module_name(spec: Spec) -> str:
    return snake(spec.name)


def render_api(specs: list[Spec]) -> str:
    # every request and response definition has an apiKey
    reqs = {s.api_key: s for s in specs if s.kind == "request" and s.api_key is not None}
    resps = {s.api_key: s for s in specs if s.kind == "response" and s.api_key is not None}
    rows = []
    for key in sorted(reqs):
        rq, rs = reqs[key], resps[key]
        flex = None if rq.flexible.lo > rq.flexible.hi else rq.flexible.lo
        dep = None if rq.deprecated.lo > rq.deprecated.hi else (rq.deprecated.lo, min(rq.deprecated.hi, rq.valid.hi))
        rows.append(
            f"    ApiSpec({key}, {rq.name[: -len('Request')]!r}, {module_name(rq)!r}, {rq.name!r}, "
            f"{module_name(rs)!r}, {rs.name!r}, {rq.valid.lo}, {rq.valid.hi}, {flex}, "
            f"{tuple(rq.listeners)!r}, {dep!r}, {rq.latest_unstable}),"
        )
    enum = [f"    {snake(reqs[k].name[: -len('Request')]).upper()} = {k}" for k in sorted(reqs)]
    return "\n".join(
        [
            '"""Index of Kafka APIs: generated by protocol/generate.py. Do not edit."""',
            "",
            "from __future__ import annotations",
            "",
            "from enum import IntEnum",
            "from importlib import import_module",
            "from typing import NamedTuple",
            "",
            "from kafkapy.protocol.errors import UnsupportedVersionError",
            "from kafkapy.protocol.primitives import Message",
            "",
            "",
            "class ApiKey(IntEnum):",
            *enum,
            "",
            "",
            "class ApiSpec(NamedTuple):",
            "    api_key: int",
            "    name: str",
            "    request_module: str",
            "    request_class: str",
            "    response_module: str",
            "    response_class: str",
            "    min_version: int",
            "    max_version: int",
            "    flexible_min: int | None",
            "    listeners: tuple[str, ...]",
            "    deprecated: tuple[int, int] | None",
            "    latest_unstable: bool",
            "",
            "    def is_flexible(self, version: int) -> bool:",
            "        return self.flexible_min is not None and version >= self.flexible_min",
            "",
            "    def request_header_version(self, version: int) -> int:",
            "        if self.is_flexible(version):",
            "            return 2",
            "        return 0 if self.api_key == ApiKey.CONTROLLED_SHUTDOWN and version == 0 else 1",
            "",
            "    def response_header_version(self, version: int) -> int:",
            "        # ApiVersions answers on header v0 whatever the version, so any client can read it.",
            "        if self.api_key == ApiKey.API_VERSIONS:",
            "            return 0",
            "        return 1 if self.is_flexible(version) else 0",
            "",
            "    def request_type(self) -> type[Message]:",
            '        return getattr(import_module("kafkapy.protocol.messages." + self.request_module), self.request_class)  # type: ignore[no-any-return]',
            "",
            "    def response_type(self) -> type[Message]:",
            '        return getattr(import_module("kafkapy.protocol.messages." + self.response_module), self.response_class)  # type: ignore[no-any-return]',
            "",
            "",
            "APIS: tuple[ApiSpec, ...] = (",
            *rows,
            ")",
            "",
            "_BY_KEY: tuple[ApiSpec | None, ...] = tuple(",
            "    next((s for s in APIS if s.api_key == k), None) for k in range(max(s.api_key for s in APIS) + 1)",
            ")",
            "",
            "",
            "def api_spec(api_key: int) -> ApiSpec:",
            '    """The spec of `api_key`; UnsupportedVersionError for an unknown key."""',
            "    if 0 <= api_key < len(_BY_KEY):",
            "        spec = _BY_KEY[api_key]",
            "        if spec is not None:",
            "            return spec",
            '    raise UnsupportedVersionError(f"unknown api key {api_key}", ["RequestHeader.request_api_key"])',
            "",
        ]
    )


# ------------------------------------------------------------------- driver


def generate(spec_dir: Path) -> dict[str, str]:
    """Return {relative path: text} of every generated file."""
    specs = [parse_spec(p) for p in sorted(spec_dir.glob("*.json"))]
    specs += [
        parse_definition(d, "protocol/new_messages.py")
        for name, d in sorted(NEW_MESSAGES.items())
        if not (spec_dir / f"{name}.json").exists()
    ]
    files: dict[str, str] = {}
    for spec in specs:
        files[f"messages/{module_name(spec)}.py"] = Module(spec).render()
    names = sorted(module_name(s) for s in specs)
    files["messages/__init__.py"] = (
        '"""Generated message modules (protocol/generate.py); import the one you need."""\n\n'
        + "MODULES = (\n"
        + "".join(f"    {n!r},\n" for n in names)
        + ")\n"
    )
    files["api.py"] = render_api(specs)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = ap.parse_args(argv)
    if not args.spec.is_dir():
        print(f"spec folder not found: {args.spec}", file=sys.stderr)
        return 2
    files = generate(args.spec)
    stale = [
        rel for rel, text in files.items() if not (args.out / rel).is_file() or (args.out / rel).read_text() != text
    ]
    generated = {args.out / rel for rel in files}
    extra = [p for p in (args.out / "messages").glob("*.py") if p not in generated]
    if args.check:
        for rel in stale:
            print(f"out of date: {rel}")
        for p in extra:
            print(f"not generated any more: {p.name}")
        return 1 if stale or extra else 0
    for rel in stale:
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    for p in extra:
        p.unlink()
    print(f"{len(files)} files, {len(stale)} written, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
