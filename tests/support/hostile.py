"""Hand-made protobuf bytes, and the services' JSON log lines under hostile input."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import structlog

from learnerledger.observability import configure_logging


def raw_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2); lengths here stay under 128."""
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


@contextlib.contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Route the services' structlog output (configured as in production) into a StringIO."""
    saved_config = structlog.get_config()
    sink = io.StringIO()

    def uncache() -> None:
        # Module-level lazy loggers cache their first configuration: forget it.
        for module in list(sys.modules.values()):
            if not (getattr(module, "__name__", "") or "").startswith("learnerledger"):
                continue
            for value in list(vars(module).values()):
                if isinstance(value, structlog._config.BoundLoggerLazyProxy):
                    vars(value).pop("bind", None)

    saved_context = structlog.contextvars.get_contextvars()
    real_stderr = sys.stderr
    sys.stderr = sink
    try:
        configure_logging("hostile-test")
    finally:
        sys.stderr = real_stderr
    uncache()
    try:
        yield sink
    finally:
        structlog.configure(**saved_config)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved_context)
        uncache()


def assert_one_json_object_per_line(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "no log line was captured"
    events = []
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict), line
        events.append(event)
    assert not any(e.get("event") == "forged" for e in events), "a forged log line"
    return events
