"""One way for every service process to start and stop.

A service declares its parts in start order: one-shot steps (create the topics), resources
(a PostgreSQL pool, a Kafka producer), gRPC and HTTP servers, background workers (consumers,
the relay, the checkpointer) and the /metrics endpoint. :class:`ServiceRunner` then

1. starts the parts in order; a part that fails to start stops the ones already started, in
   reverse, and the service ends with :class:`ServiceFailed`;
2. marks health SERVING once every part is ready (a consumer: once it has joined its group);
3. waits until a stop is requested (SIGTERM/SIGINT, or the caller's event) or a background part
   ends on its own: a failed worker is logged (``service_part_failed``) and ends the service
   with :class:`ServiceFailed` (``run_service``: exit code 1; 2 when a part could not start);
4. marks health NOT_SERVING and stops the parts in reverse order, each within the grace period
   (a worker is asked to stop and cancelled if it has not finished by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import structlog

from learnerledger.observability import serve_metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: How long past its grace period a part may take to stop before the runner moves on.
STOP_MARGIN_S = 5.0


class ServiceFailed(Exception):
    """A part failed to start, or a background part ended before a stop was requested (the
    cause, if any, is ``__cause__``); already logged, and every part stopped.

    ``exit_code`` for the process: 2 when it could not start (as every ``ledgerctl`` command
    that cannot reach its database or bind its port), 1 when a part failed while running.
    """

    def __init__(self, service: str, part: str, what: str, *, starting: bool = False) -> None:
        super().__init__(f"{service}: {part} {what}")
        self.service = service
        self.part = part
        self.exit_code = 2 if starting else 1


class PartNotStarted(RuntimeError):
    """A part's value was asked for before the part started (a declaration out of order)."""


class Part:
    """One piece of a service. Subclasses override what applies to them; the defaults do
    nothing, so a part is started, stopped, ready and without health or task by default."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        """Bring the part up; raising stops the parts already started."""

    async def stop(self, grace_s: float) -> None:
        """Bring the part down within about ``grace_s``."""

    async def ready(self) -> None:
        """Return once the part can do its work (health stays NOT_SERVING until then)."""

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING (parts with a health service)."""

    def task(self) -> asyncio.Task[None] | None:
        """The running task of a background part: its ending stops the service."""
        return None


class Step(Part):
    """Something done once at start (create the topics, log a line), with nothing to stop."""

    def __init__(self, name: str, action: Callable[[], Awaitable[object]]) -> None:
        super().__init__(name)
        self._action = action

    async def start(self) -> None:
        await self._action()


class Resource(Part, Generic[T]):
    """A value opened at start and closed at stop (a pool, a producer, a servicer).

    ``value`` is what ``open`` returned; later parts read it in their own start functions.
    """

    def __init__(
        self,
        name: str,
        open: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__(name)
        self._open = open
        self._close = close
        self._value: T | None = None
        self._opened = False

    @property
    def value(self) -> T:
        if not self._opened:
            raise PartNotStarted(f"{self.name} is not started")
        return self._value  # type: ignore[return-value]  # T itself may include None

    async def start(self) -> None:
        self._value = await self._open()
        self._opened = True

    async def stop(self, grace_s: float) -> None:
        if self._opened and self._close is not None:
            self._opened = False
            await self._close(self._value)  # type: ignore[arg-type]


class Server(Protocol):
    """A started server with a health service (``learnerledger.rpc.server.RunningServer``)."""

    @property
    def port(self) -> int: ...

    async def set_serving(self, serving: bool) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


S = TypeVar("S", bound=Server)


class GrpcServer(Part, Generic[S]):
    """A gRPC server: its health follows the service's (SERVING once every part is ready,
    NOT_SERVING as soon as the service stops); stopping lets running calls finish for the
    grace period. Start it NOT_SERVING (``start_server(serving=False)``)."""

    def __init__(self, name: str, start: Callable[[], Awaitable[S]]) -> None:
        super().__init__(name)
        self._start = start
        self._server: S | None = None

    @property
    def server(self) -> S:
        if self._server is None:
            raise PartNotStarted(f"{self.name} is not started")
        return self._server

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        self._server = await self._start()

    async def set_serving(self, serving: bool) -> None:
        if self._server is not None:
            await self._server.set_serving(serving)

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace_s)


class Background(Part):
    """A worker task that runs until the service stops (a consumer, the relay).

    ``run`` gets the worker's own stop event and returns soon after it is set; a worker still
    running after the grace period is cancelled. ``ready`` (if given) is set by the worker once
    it can work; health stays NOT_SERVING until then. Ending before the stop, with or without
    an error, ends the service (:class:`ServiceFailed`).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[asyncio.Event], Awaitable[None]],
        *,
        ready: asyncio.Event | None = None,
    ) -> None:
        super().__init__(name)
        self._run = run
        self._ready = ready
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop.clear()

        async def run() -> None:
            await self._run(self._stop)

        self._task = asyncio.create_task(run(), name=self.name)

    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def ready(self) -> None:
        if self._ready is not None:
            await self._ready.wait()

    async def stop(self, grace_s: float) -> None:
        task, self._task = self._task, None
        if task is None or task.done():  # ended on its own: the runner reported it
            return
        self._stop.set()
        await asyncio.wait({task}, timeout=grace_s)
        if not task.done():
            log.warning("service_part_cancelled", part=self.name, grace_s=grace_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error  # it failed while draining: the runner logs it


class Metrics(Part):
    """Prometheus /metrics on ``port`` (0: none)."""

    def __init__(self, port: int) -> None:
        super().__init__("metrics")
        self._port = port
        self._shutdown: Callable[[], None] | None = None

    async def start(self) -> None:
        server = serve_metrics(self._port)
        if server is not None:
            self._shutdown = server.shutdown

    async def stop(self, grace_s: float) -> None:
        if self._shutdown is not None:
            shutdown, self._shutdown = self._shutdown, None
            await asyncio.to_thread(shutdown)


class ServiceRunner:
    """Starts ``parts`` in order, watches them, stops them in reverse (module docstring)."""

    def __init__(
        self,
        service: str,
        parts: Sequence[Part],
        *,
        grace_s: float,
        serving: asyncio.Event | None = None,
    ) -> None:
        self.service = service
        self.grace_s = grace_s
        self._parts = list(parts)
        self._started: list[Part] = []
        self.serving = serving or asyncio.Event()
        """Set once health was marked SERVING."""

    async def start(self) -> None:
        """Start every part in order; on a failure stop those started and raise."""
        for part in self._parts:
            try:
                await part.start()
            except Exception as exc:
                log.error(
                    "service_start_failed",
                    service=self.service,
                    part=part.name,
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                    exc_info=exc,
                )
                await self.stop()
                failed = ServiceFailed(self.service, part.name, "failed to start", starting=True)
                raise failed from exc
            except BaseException:  # cancelled while starting: still stop what is up
                await self.stop()
                raise
            self._started.append(part)

    async def mark_serving(self) -> None:
        """Wait until every part is ready, then report SERVING."""
        for part in self._started:
            await part.ready()
        for part in self._started:
            await part.set_serving(True)
        self.serving.set()
        log.info("service_serving", service=self.service)

    async def wait(self, stop: asyncio.Event) -> None:
        """Mark SERVING when ready; return when ``stop`` is set; raise :class:`ServiceFailed`
        when a background part ends first."""
        watched: dict[asyncio.Future[Any], Part] = {}
        for part in self._started:
            if (worker := part.task()) is not None:
                watched[worker] = part
        stopping = asyncio.create_task(stop.wait(), name=f"{self.service}-stop")
        marking = asyncio.create_task(self.mark_serving(), name=f"{self.service}-serving")
        pending: set[asyncio.Future[Any]] = {stopping, marking, *watched}
        try:
            while not stopping.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    if finished in watched:
                        raise self._ended(watched[finished], finished)
                if marking in done:
                    marking.result()
        finally:
            for helper in (stopping, marking):
                helper.cancel()
            await asyncio.gather(stopping, marking, return_exceptions=True)

    def _ended(self, part: Part, task: asyncio.Future[Any]) -> ServiceFailed:
        """Log a background part that ended on its own; the exception to end the service."""
        error = None if task.cancelled() else task.exception()
        what = "was cancelled" if task.cancelled() else "failed" if error else "ended"
        log.error(
            "service_part_failed",
            service=self.service,
            part=part.name,
            outcome=what,
            error=type(error).__name__ if error is not None else None,
            detail=str(error)[:300] if error is not None else None,
            exc_info=error,
        )
        failed = ServiceFailed(self.service, part.name, f"{what} before a stop was requested")
        failed.__cause__ = error
        return failed

    async def stop(self) -> None:
        """Report NOT_SERVING, then stop the started parts in reverse order."""
        started, self._started = self._started[::-1], []
        for part in started:
            try:
                await part.set_serving(False)
            except Exception as exc:  # noqa: BLE001 - a health report must not keep the rest running
                log.warning("service_health_not_updated", part=part.name, error=type(exc).__name__)
        for part in started:
            try:
                await asyncio.wait_for(part.stop(self.grace_s), self.grace_s + STOP_MARGIN_S)
            except TimeoutError:
                log.error(
                    "service_part_stop_timed_out",
                    service=self.service,
                    part=part.name,
                    waited_s=self.grace_s + STOP_MARGIN_S,
                )
            except Exception as exc:  # stop the remaining parts all the same
                log.error(
                    "service_part_stop_failed",
                    service=self.service,
                    part=part.name,
                    error=type(exc).__name__,
                    exc_info=exc,
                )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRunner]:
        """Started and SERVING inside the block, stopped after it (for a caller that embeds
        the service; a background part that failed meanwhile is raised on leaving)."""
        await self.start()
        try:
            await self.mark_serving()
            yield self
        finally:
            failed = [
                (part, task)
                for part in self._started
                if (task := part.task()) is not None and task.done()
            ]
            await self.stop()
        if failed:
            raise self._ended(*failed[0])


@contextlib.contextmanager
def signals_stop(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """``stop`` set by SIGTERM or SIGINT while inside (call from inside the running loop)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def requested(sig: signal.Signals) -> None:
        log.info("service_stop_requested", signal=sig.name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, requested, sig)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def run_parts(
    service: str,
    parts: Sequence[Part],
    *,
    grace_s: float,
    stop: asyncio.Event | None = None,
    serving: asyncio.Event | None = None,
) -> None:
    """Run a service made of ``parts`` until ``stop`` is set (None: until SIGTERM/SIGINT).

    ``serving`` is set once health is SERVING. Raises :class:`ServiceFailed` when a part
    failed to start or a background part ended on its own (after stopping everything).
    """
    runner = ServiceRunner(service, parts, grace_s=grace_s, serving=serving)
    with contextlib.ExitStack() as signals:
        if stop is None:
            stop = signals.enter_context(signals_stop(asyncio.Event()))
        await runner.start()
        log.info("service_started", service=service, parts=[part.name for part in parts])
        try:
            await runner.wait(stop)
        finally:
            await runner.stop()
            log.info("service_stopped", service=service)
