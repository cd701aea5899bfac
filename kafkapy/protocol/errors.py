"""Typed errors of the protocol layer.

`DecodeError` means the peer sent bytes we cannot accept; `EncodeError` means
we asked the codec for something it cannot write. Nothing else escapes.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error raised by kafkapy.protocol."""


class DecodeError(ProtocolError):
    """Malformed input. `path` names where decoding failed, outermost first."""

    def __init__(self, message: str, path: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = path if path is not None else []

    def __str__(self) -> str:
        where = ".".join(self.path)
        return f"{where}: {self.message}" if where else self.message


class UnsupportedVersionError(DecodeError):
    """An api key or version this codec does not know."""


class CorruptRecordError(DecodeError):
    """A record batch or message set that fails its CRC or structure checks."""


class InvalidRecordError(CorruptRecordError):
    """A batch intact by its CRC whose fields disagree (records count against lastOffsetDelta):
    Kafka's INVALID_RECORD where CORRUPT_MESSAGE is for broken bytes."""


class UnsupportedCompressionError(DecodeError):
    """A compression codec id kafkapy does not know."""


class RecordTooLargeError(DecodeError):
    """A batch that claims, or inflates to, more than the allowed size."""


class EncodeError(ProtocolError):
    """A value that cannot be written in the requested version."""
