"""Kafka's random ids (cluster ids, topic ids) and their text form.

Kafka never hands out the zero UUID or the metadata topic's id (1), and
redraws ids whose text starts with '-', because command-line tools would
read such an id as an option.
"""

from __future__ import annotations

import base64
import uuid

_RESERVED = frozenset({uuid.UUID(int=0), uuid.UUID(int=1)})


def uuid_text(value: uuid.UUID) -> str:
    """URL-safe base64 of the 16 bytes, without padding (Kafka's Uuid.toString)."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def parse_uuid_text(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def random_uuid() -> uuid.UUID:
    while True:
        value = uuid.uuid4()
        if value not in _RESERVED and not uuid_text(value).startswith("-"):
            return value


def random_cluster_id() -> str:
    return uuid_text(random_uuid())
