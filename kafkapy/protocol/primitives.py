"""Wire primitives shared by the generated codecs.

Readers take a memoryview and a position and return (value, new position);
they raise DecodeError on anything malformed and never allocate more than the
bytes actually present. Writers return bytes. The generated modules inline the
fixed-width fields (grouped into precompiled `struct.Struct`s) and call these
only for variable-length ones.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from kafkapy.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError

INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
ZERO_UUID = UUID(int=0)

# Unsigned varints below 128 are one byte; precompute them.
_SMALL_UVARINTS: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(128))
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"


class SizedRecords(Protocol):
    """A `records` value that is not in memory (e.g. a file region for sendfile)."""

    def __len__(self) -> int: ...


# --------------------------------------------------------------------- varints


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    return read_uvarint_tail(buf, pos + 1, b)


def read_uvarint_tail(buf: memoryview, pos: int, first: int) -> tuple[int, int]:
    """Continue an unsigned varint whose first byte (>= 0x80) was `first`."""
    value = first & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes")


def write_uvarint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL_UVARINTS[value]
    if value < 0 or value > 0xFFFFFFFF:
        raise EncodeError(f"unsigned varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --------------------------------------------------------------- array counts


def _check_count(n: int, buf: memoryview, pos: int) -> None:
    # Every element takes at least one byte: a count past the remaining bytes
    # is malformed, and checking it here bounds what a prefix can allocate.
    if n > len(buf) - pos:
        raise DecodeError(f"array count {n} exceeds the {len(buf) - pos} bytes left")


def read_array_count(buf: memoryview, pos: int) -> tuple[int, int]:
    (n,) = INT32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        raise DecodeError(f"negative array count {n} in a non-nullable array")
    _check_count(n, buf, pos)
    return n, pos


def read_nullable_array_count(buf: memoryview, pos: int) -> tuple[int, int]:
    (n,) = INT32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative array count {n}")
        return -1, pos
    _check_count(n, buf, pos)
    return n, pos


def read_compact_array_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null in a non-nullable compact array")
    n -= 1
    _check_count(n, buf, pos)
    return n, pos


def read_compact_nullable_array_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    n -= 1
    if n >= 0:
        _check_count(n, buf, pos)
    return n, pos


# ------------------------------------------------------------ strings / bytes


def _take(buf: memoryview, pos: int, n: int) -> tuple[memoryview, int]:
    end = pos + n
    if end > len(buf):
        raise DecodeError(f"length {n} exceeds the {len(buf) - pos} bytes left")
    return buf[pos:end], end


def _utf8(view: memoryview) -> str:
    try:
        return str(view, "utf-8")
    except UnicodeDecodeError:
        # Kafka reads strings with Java's String(bytes, UTF_8), which puts U+FFFD in place of
        # malformed bytes: the request is answered (an invalid or unknown name), not refused.
        return str(view, "utf-8", "replace")


def read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = INT16.unpack_from(buf, pos)
    if n < 0:
        raise DecodeError("null in a non-nullable string")
    view, pos = _take(buf, pos + 2, n)
    return _utf8(view), pos


def read_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    (n,) = INT16.unpack_from(buf, pos)
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative string length {n}")
        return None, pos + 2
    view, pos = _take(buf, pos + 2, n)
    return _utf8(view), pos


def read_compact_string(buf: memoryview, pos: int) -> tuple[str, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null in a non-nullable compact string")
    view, pos = _take(buf, pos, n - 1)
    return _utf8(view), pos


def read_compact_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    view, pos = _take(buf, pos, n - 1)
    return _utf8(view), pos


def read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    (n,) = INT32.unpack_from(buf, pos)
    if n < 0:
        raise DecodeError("null in non-nullable bytes")
    view, pos = _take(buf, pos + 4, n)
    return bytes(view), pos


def read_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    (n,) = INT32.unpack_from(buf, pos)
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative bytes length {n}")
        return None, pos + 4
    view, pos = _take(buf, pos + 4, n)
    return bytes(view), pos


def read_compact_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null in non-nullable compact bytes")
    view, pos = _take(buf, pos, n - 1)
    return bytes(view), pos


def read_compact_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    view, pos = _take(buf, pos, n - 1)
    return bytes(view), pos


# `records` are returned as a slice of the input: never copied, never parsed.


def read_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    (n,) = INT32.unpack_from(buf, pos)
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative records length {n}")
        return None, pos + 4
    return _take(buf, pos + 4, n)


def read_compact_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return _take(buf, pos, n - 1)


def read_uuid(buf: memoryview, pos: int) -> tuple[UUID, int]:
    view, end = _take(buf, pos, 16)
    raw = bytes(view)
    return (ZERO_UUID if raw == bytes(16) else UUID(bytes=raw)), end


# ------------------------------------------------------- arrays of primitives


def read_int_array(buf: memoryview, pos: int, n: int, code: str, size: int) -> tuple[list[Any], int]:
    end = pos + n * size
    if end > len(buf):
        raise DecodeError(f"array of {n} needs {n * size} bytes, {len(buf) - pos} left")
    return list(struct.unpack_from(f">{n}{code}", buf, pos)), end


# -------------------------------------------------------------------- writers


def write_string(v: str) -> bytes:
    b = v.encode()
    return INT16.pack(len(b)) + b


def write_nullable_string(v: str | None) -> bytes:
    if v is None:
        return _NULL16
    b = v.encode()
    return INT16.pack(len(b)) + b


def write_compact_string(v: str) -> bytes:
    b = v.encode()
    return write_uvarint(len(b) + 1) + b


def write_compact_nullable_string(v: str | None) -> bytes:
    if v is None:
        return b"\x00"
    b = v.encode()
    return write_uvarint(len(b) + 1) + b


def write_bytes(v: bytes) -> bytes:
    return INT32.pack(len(v)) + v


def write_nullable_bytes(v: bytes | None) -> bytes:
    if v is None:
        return _NULL32
    return INT32.pack(len(v)) + v


def write_compact_bytes(v: bytes) -> bytes:
    return write_uvarint(len(v) + 1) + v


def write_compact_nullable_bytes(v: bytes | None) -> bytes:
    if v is None:
        return b"\x00"
    return write_uvarint(len(v) + 1) + v


def write_records(out: list[Any], v: Any) -> None:
    # The value goes into `out` as it is: a buffer, or a file region the
    # server sends with sendfile.
    if v is None:
        out.append(_NULL32)
    else:
        out.append(INT32.pack(len(v)))
        out.append(v)


def write_compact_records(out: list[Any], v: Any) -> None:
    if v is None:
        out.append(b"\x00")
    else:
        out.append(write_uvarint(len(v) + 1))
        out.append(v)


def write_uuid(v: UUID) -> bytes:
    return v.bytes


# Precompiled formats for short arrays of fixed-width values: [count][values].
_SHORT = 32
ARRAY_STRUCTS: dict[str, tuple[struct.Struct, ...]] = {
    code: tuple(struct.Struct(f">i{n}{code}") for n in range(_SHORT)) for code in "bhHiIqd?"
}
PLAIN_ARRAY_STRUCTS: dict[str, tuple[struct.Struct, ...]] = {
    code: tuple(struct.Struct(f">{n}{code}") for n in range(_SHORT)) for code in "bhHiIqd?"
}
COMPACT_ARRAY_STRUCTS: dict[str, tuple[struct.Struct, ...]] = {
    code: tuple(struct.Struct(f">B{n}{code}") for n in range(_SHORT)) for code in "bhHiIqd?"
}


def write_int_array(v: Sequence[Any], code: str) -> bytes:
    return struct.pack(f">i{len(v)}{code}", len(v), *v)


def write_compact_int_array(v: Sequence[Any], code: str) -> bytes:
    return write_uvarint(len(v) + 1) + struct.pack(f">{len(v)}{code}", *v)


def write_tagged(out: list[Any], tags: list[tuple[int, bytes]]) -> None:
    """Write a tagged-field section; `tags` may be unsorted."""
    if len(tags) > 1:
        tags.sort(key=lambda t: t[0])
    out.append(write_uvarint(len(tags)))
    for tag, data in tags:
        out.append(write_uvarint(tag))
        out.append(write_uvarint(len(data)))
        out.append(data)


def read_tag_header(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """Read one tagged field's tag and size; return (tag, start, end)."""
    tag, pos = read_uvarint(buf, pos)
    size, pos = read_uvarint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise DecodeError(f"tagged field {tag} of {size} bytes exceeds the {len(buf) - pos} bytes left")
    return tag, pos, end


# ---------------------------------------------------------- message base class

M = TypeVar("M", bound="Message")

DECODE_FAULTS = (struct.error, IndexError, ValueError, OverflowError)
ENCODE_FAULTS = (struct.error, TypeError, AttributeError, ValueError, OverflowError)


class _Default:
    """Marks a parameter left at its default (lists and structs get a fresh one)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
NEW = object.__new__  # decoders build objects without __init__ and set every slot


class Entity:
    """Base of every generated struct: slots, equality and repr by field.

    Plain classes rather than dataclasses: they import several times faster,
    which is most of the broker's start-up.
    """

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Message(Entity):
    """Base of every generated message, header and data struct.

    Subclasses carry a table of one encode and one decode function per
    version; these methods only pick the function and translate faults.
    """

    __slots__ = ()

    NAME: ClassVar[str]
    API_KEY: ClassVar[int] = -1
    MIN_VERSION: ClassVar[int]
    MAX_VERSION: ClassVar[int]
    FLEXIBLE_MIN: ClassVar[int | None]
    _ENCODERS: ClassVar[tuple[Any, ...]]
    _DECODERS: ClassVar[tuple[Any, ...]]

    @classmethod
    def _check_version(cls, version: int) -> int:
        index = version - cls.MIN_VERSION
        if index < 0 or version > cls.MAX_VERSION:
            raise UnsupportedVersionError(
                f"{cls.NAME} v{version} is outside {cls.MIN_VERSION}-{cls.MAX_VERSION}", [cls.NAME]
            )
        return index

    def encode_into(self, out: list[Any], version: int) -> None:
        """Append the encoding's parts to `out` (records values go in as they are)."""
        fn = self._ENCODERS[self._check_version(version)]
        try:
            fn(self, out)
        except EncodeError:
            raise
        except ENCODE_FAULTS as e:
            raise EncodeError(f"{self.NAME} v{version}: {e}") from None

    def encode(self, version: int) -> bytes:
        out: list[Any] = []
        self.encode_into(out, version)
        return b"".join(out)

    @classmethod
    def decode_from(cls: type[M], buf: memoryview, pos: int, version: int) -> tuple[M, int]:
        fn = cls._DECODERS[cls._check_version(version)]
        try:
            return fn(buf, pos)  # type: ignore[no-any-return]
        except DecodeError as e:
            e.path.insert(0, cls.NAME)
            raise
        except DECODE_FAULTS as e:  # a fault outside any field's guard
            raise DecodeError(str(e) or type(e).__name__, [cls.NAME]) from None

    @classmethod
    def decode(cls: type[M], buf: bytes | bytearray | memoryview, version: int) -> M:
        view = buf if isinstance(buf, memoryview) else memoryview(buf)
        return cls.decode_from(view, 0, version)[0]

    def is_flexible(self, version: int) -> bool:
        return self.FLEXIBLE_MIN is not None and version >= self.FLEXIBLE_MIN


def fault(e: BaseException, field: str) -> DecodeError:
    """Wrap a low-level fault raised while decoding `field`."""
    if isinstance(e, DecodeError):
        e.path.insert(0, field)
        return e
    if isinstance(e, struct.error | IndexError):
        return DecodeError("truncated input", [field])
    return DecodeError(str(e) or type(e).__name__, [field])


INT8 = struct.Struct(">b")
FAULTS = (DecodeError, struct.error, IndexError, ValueError, OverflowError)


def read_tag_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    # A tagged field takes at least two bytes (tag and size).
    if n > (len(buf) - pos) // 2:
        raise DecodeError(f"{n} tagged fields cannot fit in the {len(buf) - pos} bytes left")
    return n, pos
