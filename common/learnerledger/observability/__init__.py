"""Structured logs (structlog), Prometheus metrics and W3C trace context for every service."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import start_http_server

_CHATTY_LIBRARIES = ("aiokafka", "kafka")
_SECRET_KEYS = frozenset({"token", "authorization", "password", "api_token", "secret"})


def _drop_secrets(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


class RepeatedLineLimiter(logging.Filter):
    """Lets a chatty library's same log line through once per ``window_s``; counts the rest.

    While a broker is down, aiokafka retries metadata without backoff and logs "Unable connect
    to node" thousands of times a second (aio-libs/aiokafka#496). The first line of each kind
    gets through at once, then at most one per window, carrying how many were suppressed.
    Lines are keyed by logger, level and message template (not the arguments).
    """

    def __init__(
        self,
        window_s: float = 10.0,
        libraries: tuple[str, ...] = _CHATTY_LIBRARIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._libraries = libraries
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in self._libraries:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if len(self._seen) > 1_000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            since = now - last[0]
            record.msg = f"{record.msg} (and {last[1]} more like it in the last {since:.0f}s)"
        return True


def _renderer(fmt: str) -> structlog.types.Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.processors.JSONRenderer()


def stdlib_formatter(fmt: str = "json") -> logging.Formatter:
    """How records of the standard library's ``logging`` (grpc, aiokafka, asyncio) are written:
    like structlog's own lines, one JSON object per line, a traceback (if any) inside the object
    as the ``exception`` string rather than as lines of its own."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt)],
    )


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """One JSON object per line on stderr (``fmt="console"`` for people at a terminal).

    Newlines and control characters inside values are escaped by the JSON renderer, so a hostile
    string cannot forge a second log line. Libraries' ``logging`` records go through the same
    renderer (:func:`stdlib_formatter`), their tracebacks included.
    """
    renderer = _renderer(fmt)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(stdlib_formatter(fmt))
        if not any(isinstance(f, RepeatedLineLimiter) for f in handler.filters):
            handler.addFilter(RepeatedLineLimiter())
    # Kafka clients log whole records (keys are learner ids, values their completions) at
    # DEBUG: keep them at INFO or above even when the service itself runs at DEBUG, so that
    # no learner personal data reaches the logs (SECURITY.md, "Logs").
    for library in _CHATTY_LIBRARIES:
        logging.getLogger(library).setLevel(
            max(logging.getLevelNamesMapping().get(level.upper(), logging.INFO), logging.INFO)
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service, pid=os.getpid())


def serve_metrics(port: int) -> WSGIServer | None:
    """Expose /metrics for Prometheus on ``port`` (0 disables); the server, to shut it down."""
    if not port:
        return None
    server, _ = start_http_server(port, addr=os.environ.get("METRICS_BIND_ADDRESS", "127.0.0.1"))
    return server


# W3C trace context (https://www.w3.org/TR/trace-context/) -----------------------------------
TRACEPARENT = "traceparent"


def new_traceparent() -> str:
    """A fresh ``traceparent`` for work that arrives without one."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue ``parent``'s trace with a new span id (or start a trace if it is malformed)."""
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
            return f"{parts[0]}-{parts[1]}-{secrets.token_hex(8)}-{parts[3]}"
    return new_traceparent()
