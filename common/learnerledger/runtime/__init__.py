"""How every service process starts and stops: logs, metrics, and SIGTERM/SIGINT as a stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from learnerledger.observability import configure_logging, serve_metrics


class ServiceSettings(Protocol):
    log_level: str
    log_format: str
    metrics_port: int


S = TypeVar("S", bound=ServiceSettings)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call from inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_service(name: str, settings: S, run: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """Configure structured logs and /metrics, then run ``run(settings)`` until it returns."""
    configure_logging(name, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    asyncio.run(run(settings))
