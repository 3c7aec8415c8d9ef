"""How every service process starts and stops: logs, metrics, SIGTERM/SIGINT as a stop, the
parts of a service started in order and stopped in reverse (:mod:`.lifecycle`), and workers that
ride out an outage of PostgreSQL or Kafka instead of ending the process."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import Counter

from learnerledger.observability import configure_logging
from learnerledger.runtime.lifecycle import (
    Background,
    GrpcServer,
    Metrics,
    Part,
    PartNotStarted,
    Resource,
    ServiceFailed,
    ServiceRunner,
    Step,
    run_parts,
    signals_stop,
)

__all__ = [
    "Background",
    "GrpcServer",
    "Metrics",
    "Part",
    "PartNotStarted",
    "Resource",
    "ServiceFailed",
    "ServiceRunner",
    "Step",
    "restart_on_outage",
    "run_parts",
    "run_service",
    "signals_stop",
    "wait_or_stop",
]

log = structlog.get_logger(__name__)

WORKER_RESTARTS = Counter(
    "worker_restarts_total", "Workers restarted in-process after an outage", ["worker"]
)


class ServiceSettings(Protocol):
    log_level: str
    log_format: str


S = TypeVar("S", bound=ServiceSettings)


def run_service(name: str, settings: S, run: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """The process entrypoint: configure structured logs, run ``run(settings)`` (which runs the
    service's parts, /metrics among them, until SIGTERM/SIGINT); exit 2 if a part could not
    start (logged as ``service_start_failed``), 1 if one failed while running
    (``service_part_failed``)."""
    configure_logging(name, settings.log_level, settings.log_format)
    try:
        asyncio.run(run(settings))
    except ServiceFailed as failed:
        sys.exit(failed.exit_code)


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
