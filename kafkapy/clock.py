"""Wall-clock time in milliseconds, as Kafka's records and configs count it (any layer may use it)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
