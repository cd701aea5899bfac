"""structlog setup: called once at process start.

Console format is one `key=value` line per event (logfmt); `json` gives one
JSON object per line. The level comes from the caller, else the
KAFKAPY_LOG_LEVEL environment variable, else INFO. Records from the stdlib
`logging` module (asyncio, libraries) are routed to the same stream.
"""

from __future__ import annotations

import logging as stdlib_logging
import os
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["console", "json"]
LEVELS = ("debug", "info", "warning", "error", "critical")
ENV_LEVEL = "KAFKAPY_LOG_LEVEL"


def resolve_level(level: str | None) -> int:
    """Numeric level from a name (any case), falling back to the environment, then INFO."""
    name = (level or os.environ.get(ENV_LEVEL) or "info").strip().lower()
    if name == "warn":
        name = "warning"
    if name not in LEVELS:
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVELS)}")
    return int(getattr(stdlib_logging, name.upper()))


def configure_logging(
    level: str | None = None,
    fmt: LogFormat = "console",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and stdlib logging) for the whole process."""
    numeric = resolve_level(level)
    out = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "logger", "event"], drop_missing=True
        )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    root = stdlib_logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = stdlib_logging.StreamHandler(out)
    handler.setFormatter(_StdlibFormatter())
    root.addHandler(handler)
    root.setLevel(max(numeric, stdlib_logging.WARNING))  # library chatter only from WARNING up


class _StdlibFormatter(stdlib_logging.Formatter):
    """Render stdlib records through structlog so every line has one shape."""

    def format(self, record: stdlib_logging.LogRecord) -> str:
        event: dict[str, object] = {
            "event": record.getMessage(),
            "logger": record.name,
            "level": record.levelname.lower(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return str(_render(event))


def _render(event: dict[str, object]) -> object:
    config = structlog.get_config()
    processors = [p for p in config["processors"] if p is not structlog.processors.add_log_level]
    result: object = event
    for processor in processors:
        result = processor(None, "", result)
    return result


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger carrying `logger=name`."""
    return structlog.get_logger(name).bind(logger=name)  # type: ignore[no-any-return]
