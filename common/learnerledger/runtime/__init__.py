"""How every service process starts and stops: logs, metrics, SIGTERM/SIGINT as a stop, and
workers that ride out an outage of PostgreSQL or Kafka instead of ending the process."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import Counter

from learnerledger.observability import configure_logging, serve_metrics

log = structlog.get_logger(__name__)

WORKER_RESTARTS = Counter(
    "worker_restarts_total", "Workers restarted in-process after an outage", ["worker"]
)


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


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop`` is set; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def restart_on_outage(
    worker: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    outages: tuple[type[BaseException], ...],
    first_backoff_s: float = 0.5,
    max_backoff_s: float = 5.0,
) -> None:
    """Run ``run()`` until it returns or ``stop`` is set; restart it after an ``outages`` error.

    A worker whose state lives in PostgreSQL and Kafka (consumer offsets, relay cursor) restarts
    from there exactly as after a crash, so restarting it in-process is as safe as a supervisor
    restarting the process, and it spares the pod a CrashLoopBackOff after a database restart.
    Backoff doubles up to ``max_backoff_s`` and starts over after a minute of good running.
    Any other error ends the worker (and the service) as before.
    """
    backoff = first_backoff_s
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
            return
        except outages as exc:
            if time.monotonic() - started > 60:
                backoff = first_backoff_s
            WORKER_RESTARTS.labels(worker).inc()
            log.warning(
                "worker_outage_restarting",
                worker=worker,
                error=type(exc).__name__,
                detail=str(exc)[:300],
                retry_in_s=backoff,
            )
            if await wait_or_stop(stop, backoff):
                return
            backoff = min(backoff * 2, max_backoff_s)
