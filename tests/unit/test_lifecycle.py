"""The shared service runner (``learnerledger.runtime.lifecycle``) with scripted parts: start
order, reverse stop, health, a failing worker, a failing start, and a signal draining in time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import structlog

from learnerledger.runtime import (
    Background,
    GrpcServer,
    Part,
    PartNotStarted,
    Resource,
    ServiceFailed,
    ServiceRunner,
    Step,
    run_parts,
)


class Recorder:
    """The order in which parts started, stopped and reported health."""

    def __init__(self) -> None:
        self.events: list[str] = []


class Scripted(Part):
    def __init__(self, name: str, record: Recorder, *, fail_start: bool = False) -> None:
        super().__init__(name)
        self.record = record
        self.fail_start = fail_start
        self.stopped_with: float | None = None

    async def start(self) -> None:
        await asyncio.sleep(0)
        if self.fail_start:
            self.record.events.append(f"start-failed {self.name}")
            raise ConnectionRefusedError(f"{self.name} cannot connect")
        self.record.events.append(f"start {self.name}")

    async def stop(self, grace_s: float) -> None:
        self.stopped_with = grace_s
        self.record.events.append(f"stop {self.name}")


class FakeServer:
    """A started server's health (``RunningServer``'s shape)."""

    def __init__(self, record: Recorder) -> None:
        self.record = record
        self.port = 50051
        self.serving: bool | None = None

    async def set_serving(self, serving: bool) -> None:
        self.serving = serving
        self.record.events.append("SERVING" if serving else "NOT_SERVING")

    async def stop(self, grace_s: float) -> None:
        self.record.events.append(f"stop server grace={grace_s}")


def worker(record: Recorder, name: str, *, drain_s: float = 0.0) -> Background:
    """A background part that runs until asked to stop, then takes ``drain_s`` to finish."""

    async def run(stop: asyncio.Event) -> None:
        record.events.append(f"run {name}")
        await stop.wait()
        await asyncio.sleep(drain_s)
        record.events.append(f"drained {name}")

    return Background(name, run)


async def test_parts_start_in_order_serve_and_stop_in_reverse() -> None:
    record = Recorder()
    server = FakeServer(record)

    async def open_pool() -> str:
        record.events.append("open pool")
        return "pool"

    async def close_pool(pool: str) -> None:
        record.events.append(f"close {pool}")

    pool = Resource("pool", open_pool, close_pool)

    async def start_server() -> FakeServer:
        record.events.append(f"start server using {pool.value}")
        return server

    async def topics() -> None:
        record.events.append("topics")

    parts = [
        Step("topics", topics),
        pool,
        Scripted("producer", record),
        GrpcServer("api", start_server),
        worker(record, "consumer"),
    ]
    stop = asyncio.Event()
    serving = asyncio.Event()
    service = asyncio.create_task(run_parts("svc", parts, grace_s=3, stop=stop, serving=serving))
    await asyncio.wait_for(serving.wait(), 5)
    assert server.serving is True
    assert record.events == [
        "topics",
        "open pool",
        "start producer",
        "start server using pool",
        "run consumer",
        "SERVING",
    ]
    record.events.clear()
    stop.set()
    await asyncio.wait_for(service, 5)
    assert record.events == [
        "NOT_SERVING",  # health first, before anything stops
        "drained consumer",
        "stop server grace=3",
        "stop producer",
        "close pool",
    ]
    assert server.serving is False
    with pytest.raises(PartNotStarted):
        _ = pool.value


async def test_health_waits_until_every_part_is_ready() -> None:
    record = Recorder()
    server = FakeServer(record)
    joined = asyncio.Event()

    async def consume(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        joined.set()  # e.g. the consumer joined its group
        await stop.wait()

    async def start_server() -> FakeServer:
        return server

    runner = ServiceRunner(
        "svc", [GrpcServer("health", start_server), Background("c", consume, ready=joined)],
        grace_s=1,
    )  # fmt: skip
    await runner.start()
    stop = asyncio.Event()
    waiting = asyncio.create_task(runner.wait(stop))
    await asyncio.sleep(0.01)
    assert server.serving is None
    assert not runner.serving.is_set()
    await asyncio.wait_for(runner.serving.wait(), 5)
    assert joined.is_set()
    assert server.serving is True
    stop.set()
    await asyncio.wait_for(waiting, 5)
    await runner.stop()
    assert server.serving is False


async def test_a_failing_worker_stops_the_rest_and_is_reported() -> None:
    record = Recorder()

    async def relay(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        raise ValueError("relay broke")

    parts = [Scripted("pool", record), worker(record, "consumer"), Background("relay", relay)]
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs, pytest.raises(ServiceFailed) as failed:
        await asyncio.wait_for(run_parts("svc", parts, grace_s=2, stop=stop), 5)
    assert failed.value.part == "relay"
    assert failed.value.exit_code == 1
    assert isinstance(failed.value.__cause__, ValueError)
    assert not stop.is_set()  # nobody asked: the failure itself stopped the service
    assert record.events == ["start pool", "run consumer", "drained consumer", "stop pool"]
    [report] = [e for e in logs if e["event"] == "service_part_failed"]
    assert (report["service"], report["part"], report["error"]) == ("svc", "relay", "ValueError")
    assert report["log_level"] == "error"


async def test_a_worker_that_ends_without_being_asked_stops_the_service() -> None:
    record = Recorder()

    async def gives_up(stop: asyncio.Event) -> None:
        return None

    parts = [Scripted("pool", record), Background("consumer", gives_up)]
    with pytest.raises(ServiceFailed, match="consumer ended before a stop was requested"):
        await asyncio.wait_for(run_parts("svc", parts, grace_s=1, stop=asyncio.Event()), 5)
    assert record.events == ["start pool", "stop pool"]


async def test_a_part_that_fails_to_start_stops_those_already_started() -> None:
    record = Recorder()
    server = FakeServer(record)

    async def start_server() -> FakeServer:
        record.events.append("start server")
        return server

    never = Scripted("never", record)
    parts = [
        Scripted("pool", record),
        GrpcServer("api", start_server),
        worker(record, "consumer"),
        Scripted("producer", record, fail_start=True),
        never,
    ]
    with structlog.testing.capture_logs() as logs, pytest.raises(ServiceFailed) as failed:
        await asyncio.wait_for(run_parts("svc", parts, grace_s=1, stop=asyncio.Event()), 5)
    assert failed.value.part == "producer"
    assert failed.value.exit_code == 2
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)
    assert record.events == [
        "start pool",
        "start server",
        "run consumer",
        "start-failed producer",
        "NOT_SERVING",
        "drained consumer",
        "stop server grace=1",
        "stop pool",
    ]
    assert never.stopped_with is None
    assert server.serving is False  # never reported SERVING
    assert [e["part"] for e in logs if e["event"] == "service_start_failed"] == ["producer"]


async def test_a_worker_slower_than_the_grace_period_is_cancelled() -> None:
    record = Recorder()
    cancelled = asyncio.Event()

    async def stubborn(stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(60)  # ignores its stop event
        except asyncio.CancelledError:
            cancelled.set()
            raise

    parts = [Scripted("pool", record), Background("stubborn", stubborn)]
    stop = asyncio.Event()
    service = asyncio.create_task(run_parts("svc", parts, grace_s=0.2, stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(service, 5)
    assert 0.15 < time.monotonic() - started < 2
    assert cancelled.is_set()
    assert record.events == ["start pool", "stop pool"]


async def test_sigterm_drains_within_the_grace_period() -> None:
    """Without a stop event the runner stops on SIGTERM: workers finish what they are doing
    (here 0.3 s of a 2 s grace) and every part stops; the handlers are removed afterwards."""
    record = Recorder()
    serving = asyncio.Event()
    parts = [Scripted("pool", record), worker(record, "consumer", drain_s=0.3)]
    service = asyncio.create_task(run_parts("svc", parts, grace_s=2, serving=serving))
    await asyncio.wait_for(serving.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)
    started = time.monotonic()
    await asyncio.wait_for(service, 5)
    assert 0.25 < time.monotonic() - started < 2
    assert record.events == ["start pool", "run consumer", "drained consumer", "stop pool"]
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)  # already removed by the runner
    assert not loop.remove_signal_handler(signal.SIGINT)


async def test_a_part_that_cannot_stop_does_not_keep_the_others_running() -> None:
    record = Recorder()

    class Broken(Scripted):
        async def stop(self, grace_s: float) -> None:
            raise OSError("already closed")

    parts = [Scripted("pool", record), Broken("producer", record), Scripted("api", record)]
    stop = asyncio.Event()
    stop.set()
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(run_parts("svc", parts, grace_s=1, stop=stop), 5)
    assert record.events == [
        "start pool",
        "start producer",
        "start api",
        "stop api",
        "stop pool",
    ]
    assert [e["part"] for e in logs if e["event"] == "service_part_stop_failed"] == ["producer"]


async def test_running_block_serves_inside_and_raises_a_worker_failure_on_leaving() -> None:
    record = Recorder()

    async def fails(stop: asyncio.Event) -> None:
        raise RuntimeError("consumer crashed")

    runner = ServiceRunner("svc", [Scripted("pool", record), Background("c", fails)], grace_s=1)
    served: list[bool] = []

    async def embed() -> None:
        async with runner.running():
            served.append(runner.serving.is_set())
            await asyncio.sleep(0.01)  # the worker fails meanwhile

    with pytest.raises(ServiceFailed) as failed:
        await embed()
    assert served == [True]
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert record.events == ["start pool", "stop pool"]


SERVICE_PROCESS = """
import asyncio, sys
from learnerledger.runtime import Background, Step, run_parts, run_service

class Settings:
    log_level = "INFO"
    log_format = "json"

async def work(stop: asyncio.Event) -> None:
    print("serving", flush=True)
    if sys.argv[1] == "fail":
        raise ValueError("the relay broke")
    await stop.wait()

async def cannot_bind() -> None:
    if sys.argv[1] == "nostart":
        raise OSError("cannot bind the health port 127.0.0.1:1")

async def run(settings: Settings) -> None:
    await run_parts("svc", [Step("api", cannot_bind), Background("relay", work)], grace_s=1)

run_service("svc", Settings(), run)
"""


def test_the_process_exits_0_on_sigterm_1_when_a_worker_fails_2_when_it_cannot_start() -> None:
    """``run_service`` as a process entrypoint: a stop by signal is a clean exit; a failed
    worker is one structured log line and exit code 1 (for the supervisor to restart it); a
    part that cannot start, exit code 2 (as ``ledgerctl`` when it cannot reach its servers)."""

    def service(mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", SERVICE_PROCESS, mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    stopped = service("serve")
    assert stopped.stdout is not None
    assert stopped.stdout.readline().strip() == "serving"
    stopped.send_signal(signal.SIGTERM)
    _, err = stopped.communicate(timeout=20)
    assert stopped.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines()]  # every line is JSON
    assert "service_stop_requested" in events, events
    assert events[-1] == "service_stopped"

    failed = service("fail")
    _, err = failed.communicate(timeout=20)
    assert failed.returncode == 1, err
    lines = [json.loads(line) for line in err.splitlines()]  # no bare traceback
    [report] = [line for line in lines if line["event"] == "service_part_failed"]
    assert (report["part"], report["error"], report["detail"]) == (
        "relay",
        "ValueError",
        "the relay broke",
    )
    assert report["level"] == "error"
    assert lines[-1]["event"] == "service_stopped"

    unstartable = service("nostart")
    out, err = unstartable.communicate(timeout=20)
    assert unstartable.returncode == 2, err
    assert out == ""  # the worker after the part that failed never started
    lines = [json.loads(line) for line in err.splitlines()]
    [report] = [line for line in lines if line["event"] == "service_start_failed"]
    assert (report["part"], report["error"]) == ("api", "OSError")
