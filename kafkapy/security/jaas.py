"""Kafka's JAAS configuration strings (`sasl.jaas.config`).

    org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret" user_admin="admin-secret";

One or more entries, each: a login module class name, a control flag
(required, requisite, sufficient, optional) and `key=value` options, ended
by `;`. A value is a double-quoted string (backslash escapes as in Java's
StreamTokenizer: \\n, \\t, \\r, \\b, \\f, \\", \\\\, octal) or a bare word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLAGS = ("required", "requisite", "sufficient", "optional")

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


class JaasError(ValueError):
    """A JAAS string that cannot be parsed; the message says where."""


@dataclass(slots=True, frozen=True)
class JaasEntry:
    login_module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) with kind 'word', 'quoted' or a punctuation char ('=' or ';')."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "/" and text.startswith("//", i):  # a comment to the end of the line
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JaasError("unterminated comment")
            i = end + 2
        elif c in "=;":
            out.append((c, c))
            i += 1
        elif c == '"':
            i, value = _quoted(text, i + 1)
            out.append(("quoted", value))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '=;"':
                i += 1
            out.append(("word", text[start:i]))
    return out


def _quoted(text: str, i: int) -> tuple[int, str]:
    chars: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1, "".join(chars)
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in "01234567":
                j = i + 1
                while j < n and j < i + 4 and text[j] in "01234567":
                    j += 1
                chars.append(chr(int(text[i + 1 : j], 8)))
                i = j
                continue
            chars.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        chars.append(c)
        i += 1
    raise JaasError("unterminated quoted value")


def parse_jaas(text: str) -> list[JaasEntry]:
    """All entries of a JAAS string; JaasError with Kafka-like text when malformed."""
    tokens = _tokens(text)
    entries: list[JaasEntry] = []
    i = 0
    while i < len(tokens):
        kind, module = tokens[i]
        if kind != "word":
            raise JaasError(f"Invalid JAAS config: expected a login module name, found {module!r}")
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
            raise JaasError(f"Invalid JAAS config: login module {module} has no control flag")
        flag = tokens[i + 1][1]
        if flag.lower() not in FLAGS:
            raise JaasError(f"Invalid control flag '{flag}' in JAAS config")
        i += 2
        options: dict[str, str] = {}
        while True:
            if i >= len(tokens):
                raise JaasError("Invalid JAAS config: login module options must end with ';'")
            kind, key = tokens[i]
            if kind == ";":
                i += 1
                break
            if kind != "word":
                raise JaasError(f"Invalid JAAS config: unexpected {key!r} in the options of {module}")
            if i + 2 >= len(tokens) or tokens[i + 1][0] != "=":
                raise JaasError(f"Invalid JAAS config: option {key} of {module} has no value")
            vkind, value = tokens[i + 2]
            if vkind not in ("word", "quoted"):
                raise JaasError(f"Invalid JAAS config: option {key} of {module} has no value")
            options[key] = value
            i += 3
        entries.append(JaasEntry(module, flag.lower(), options))
    if not entries:
        raise JaasError("JAAS config entry not terminated by semi-colon")
    return entries


def parse_single(text: str) -> JaasEntry:
    """The one entry of a `sasl.jaas.config` value (Kafka accepts exactly one login module)."""
    entries = parse_jaas(text)
    if len(entries) != 1:
        raise JaasError(f"JAAS config property contains {len(entries)} login modules, should be 1 module")
    return entries[0]


PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


def plain_users(entry: JaasEntry) -> dict[str, str]:
    """PLAIN's `user_<name>="<password>"` options as {name: password}."""
    return {key[5:]: value for key, value in entry.options.items() if key.startswith("user_")}


def quote(value: str) -> str:
    """A value written back as a quoted JAAS string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
