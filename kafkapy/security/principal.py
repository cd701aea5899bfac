"""The principal of a TLS client certificate, with Kafka's `ssl.principal.mapping.rules`.

Kafka names an SSL client by its certificate's subject distinguished name in
RFC 2253 form (`CN=alice,OU=eng,O=Example`, most specific RDN first) and maps
it through `ssl.principal.mapping.rules` (KIP-371): one string of rules
separated by commas, each either `DEFAULT` (the DN unchanged) or
`RULE:pattern/replacement/` with an optional `L` or `U` flag (lower/upper
case the result). A pattern may itself contain commas; `\\/` escapes a slash.
Rules are tried in order; the first whose pattern matches the whole DN wins.
The principal is `User:<name>`; a client without a certificate is
`User:ANONYMOUS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

ANONYMOUS = "User:ANONYMOUS"


class MappingRuleError(ValueError):
    """ssl.principal.mapping.rules does not parse."""


class NoMatchingRule(ValueError):
    """No rule applies to a DN (Kafka refuses the connection's authentication)."""


@dataclass(slots=True, frozen=True)
class MappingRule:
    """One rule: DEFAULT (pattern None) or RULE:pattern/replacement/[LU]."""

    pattern: re.Pattern[str] | None
    replacement: str = ""
    case: str = ""  # "", "L" or "U"

    def apply(self, dn: str) -> str | None:
        """The mapped name, or None when the pattern does not match the whole DN."""
        if self.pattern is None:
            return dn
        if self.pattern.fullmatch(dn) is None:
            return None
        # As Java's String.replaceAll: every match is replaced (a pattern such as `.*`
        # also matches the empty string at the end; Python's re.sub does the same).
        result = self.pattern.sub(lambda m: _expand(self.replacement, m), dn)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


def _expand(replacement: str, match: re.Match[str]) -> str:
    """Java replacement syntax: `$n` a group, `\\x` a literal x."""
    out: list[str] = []
    i, n = 0, len(replacement)
    while i < n:
        ch = replacement[i]
        if ch == "\\" and i + 1 < n:
            out.append(replacement[i + 1])
            i += 2
        elif ch == "$" and i + 1 < n and replacement[i + 1].isdigit():
            j = i + 1
            # Java takes further digits only while they still name an existing group
            group = int(replacement[j])
            j += 1
            while j < n and replacement[j].isdigit() and group * 10 + int(replacement[j]) <= (match.re.groups or 0):
                group = group * 10 + int(replacement[j])
                j += 1
            if group > (match.re.groups or 0):
                raise NoMatchingRule(f"replacement names group {group}, the pattern has {match.re.groups}")
            out.append(match.group(group) or "")
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _read_until_slash(text: str, pos: int) -> tuple[str, int]:
    """Text up to the next unescaped '/', and the position after that slash."""
    start = pos
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == "/":
            return text[start:pos], pos + 1
        pos += 1
    raise MappingRuleError(f"rule at {start} has no closing '/'")


def parse_rules(text: str) -> tuple[MappingRule, ...]:
    """Parse ssl.principal.mapping.rules; raises MappingRuleError."""
    rules: list[MappingRule] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        if text.startswith("DEFAULT", pos):
            rules.append(MappingRule(None))
            pos += len("DEFAULT")
        elif text.startswith("RULE:", pos):
            raw_pattern, pos = _read_until_slash(text, pos + len("RULE:"))
            raw_replacement, pos = _read_until_slash(text, pos)
            case = ""
            if pos < n and text[pos] in "LU":
                case = text[pos]
                pos += 1
            try:
                pattern = re.compile(raw_pattern)
            except re.error as exc:
                raise MappingRuleError(f"invalid pattern {raw_pattern!r}: {exc}") from None
            rules.append(MappingRule(pattern, raw_replacement, case))
        else:
            raise MappingRuleError(f"Invalid rule: {text[pos:]}")
        while pos < n and text[pos].isspace():
            pos += 1
        if pos < n:
            if text[pos] != ",":
                raise MappingRuleError(f"Invalid rule: {text[pos:]}")
            pos += 1
    if not rules:
        raise MappingRuleError("no rules given")
    return tuple(rules)


@dataclass(slots=True, frozen=True)
class PrincipalMapper:
    """Maps a certificate subject DN to a principal name."""

    rules: tuple[MappingRule, ...]

    @classmethod
    def from_config(cls, text: str | None) -> PrincipalMapper:
        return cls(parse_rules(text if text and text.strip() else "DEFAULT"))

    def name(self, dn: str) -> str:
        for rule in self.rules:
            result = rule.apply(dn)
            if result is not None:
                return result
        raise NoMatchingRule(f"No rules apply to {dn}")

    def principal_of_certificate(self, der: bytes | None) -> str:
        """`User:<mapped subject DN>`, or User:ANONYMOUS with no certificate."""
        if not der:
            return ANONYMOUS
        cert = x509.load_der_x509_certificate(der)
        return "User:" + self.name(rfc2253(cert.subject))


# The attribute keywords Java's X500Principal.getName(RFC2253) writes; other
# attributes are written as a dotted OID and '#' plus the hex of the value's DER.
_KEYWORDS: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
}


def _escape(value: str) -> str:
    out: list[str] = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (i == 0 and ch in "# ") or (i == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _der_hex(attribute: x509.NameAttribute[str]) -> str:
    raw = attribute.value.encode("utf-8") if isinstance(attribute.value, str) else bytes(attribute.value)
    asn1_type = getattr(attribute, "_type", None)  # the ASN.1 string type, UTF8String when unknown
    tag = int(getattr(asn1_type, "value", 12))
    length = len(raw)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([tag, 0x80 | len(size)]) + size
    return "#" + (header + raw).hex()


def rfc2253(name: x509.Name) -> str:
    """The DN as Java's X500Principal.getName() gives it: last RDN first, comma-separated."""
    parts: list[str] = []
    for rdn in reversed(list(name.rdns)):
        values: list[str] = []
        for attribute in rdn:
            keyword = _KEYWORDS.get(attribute.oid)
            if keyword is not None:
                values.append(f"{keyword}={_escape(str(attribute.value))}")
            else:
                values.append(f"{attribute.oid.dotted_string}={_der_hex(attribute)}")  # type: ignore[arg-type]
        parts.append("+".join(values))
    return ",".join(parts)
