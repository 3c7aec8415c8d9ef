"""Faults while a partner streams completions through the real services.

A private stack (its own Kafka and PostgreSQL on free ports; the shared one is left alone) runs
the four services as real processes. A client submits completions continuously (unary calls and
short streams, unique completion ids over a few hundred learners, every call with a deadline,
retrying the same completion id on errors) while the test SIGKILLs the gateway, the ledger, the
projection worker and the query API, stops and restarts the Kafka broker and restarts PostgreSQL.
Afterwards, SQL on the private database proves that every acknowledged completion is in the
ledger exactly once, that nothing appears twice, that every learner's sequence is gapless, that
the chains verify and that the transcripts equal a fold of the ledger. The counts are printed.

Sizes (environment): FAULT_ROUNDS (default 2: each fault twice, at random moments),
FAULT_GAP_S (seconds of traffic between faults, default 3), FAULT_TAIL_S (traffic after the last
fault, default 4), FAULT_LEARNERS (default 200), FAULT_SEED (default: random, printed). The
counts appear in the terminal summary (tests/faults/conftest.py). A longer run by hand:
``FAULT_ROUNDS=10 .venv/bin/python -m pytest tests/faults -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest

from learnerledger.domain.events import completion_event_id
from learnerledger.ledger.verification import verify_ledger
from learnerledger.postgres import catalog
from learnerledger.postgres.migrations import migrate
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.postgres_server import find_bin_dir
from learnerledger_devstack.processes import is_alive
from learnerledger_devstack.services import start_services, stop_services
from learnerledger_devstack.stack import StackConfig, StackInfo, stack_up
from tests.conftest import own_servers_only, private_stack
from tests.support.ledger import seed_catalog
from tests.support.pipeline import healthy
from tests.support.ports import free_ports
from tests.support.projector import log_equals_read_model as log_equals_read_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = int(os.environ.get("FAULT_ROUNDS", "2"))
GAP_S = float(os.environ.get("FAULT_GAP_S", "3"))
TAIL_S = float(os.environ.get("FAULT_TAIL_S", "4"))
LEARNERS = [f"8{n:011d}" for n in range(int(os.environ.get("FAULT_LEARNERS", "200")))]
SEED = int(os.environ.get("FAULT_SEED", str(random.randrange(1 << 30))))

ISSUER = "swayam"
CALL_DEADLINE_S = 10.0
SEND_TIMEOUT_S = 3
RETRY_BUDGET_S = 150.0  # a completion is retried (same id) for at most this long
UNARY_WORKERS = 6
STREAM_WORKERS = 2
STREAM_BATCH = 5
PAUSE_S = 0.03  # between one worker's calls: keeps the load moderate on 2 cores
RECOVERY_S = 120.0
FAULTS = ("gateway", "ledger", "projector", "query", "kafka", "postgres")
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[tuple[StackConfig, StackInfo]]:
    with private_stack("ll-faults-") as stack:
        yield stack


@dataclass
class Services:
    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    issuer_token: str
    university_token: str
    admin_token: str
    killed_by_us: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def pid(self, name: str) -> int:
        return int((self.state_dir / "services" / f"{name}.pid").read_text())

    def dead(self) -> list[str]:
        return [n for n in self.ports if not is_alive(self.pid(n))]

    def log_tail(self, name: str, lines: int = 15) -> str:
        log = self.state_dir / "services" / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    async def all_healthy(self) -> None:
        for name in ("gateway", "query", "ledger"):
            await healthy(self.address(name), timeout=RECOVERY_S)


@pytest.fixture
async def services(fault_stack: tuple[StackConfig, StackInfo]) -> AsyncIterator[Services]:
    cfg, info = fault_stack
    await migrate(info.database_url)
    await seed_catalog(info.database_url)
    connection = await asyncpg.connect(info.database_url)
    try:
        _, issuer = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, ISSUER)
        _, university = await catalog.issue_token(
            connection, catalog.PrincipalKind.UNIVERSITY, "du"
        )
        _, admin = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    names = ("gateway", "query", "ledger", "projector")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
        "DATABASE_URL": info.database_url,
        "TOPIC_PARTITIONS": "3",
        **{f"{n.upper()}_GRPC_PORT": str(p) for n, p in ports.items()},
        **{f"{n.upper()}_METRICS_PORT": "0" for n in names},
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        "GATEWAY_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
        "LOG_LEVEL": "WARNING",
    }
    state = cfg.state_dir / "app"
    running = Services(state, env, ports, issuer, university, admin)
    start_services(state, env)
    try:
        await running.all_healthy()
        yield running
    finally:
        stop_services(state)


COMPLETED_AT = to_timestamp(datetime.now(UTC) - timedelta(days=30))


def completion(completion_id: str, learner_id: str) -> common_pb2.Completion:
    """The same payload on every retry, as a partner resends it (a different one is a conflict)."""
    item = common_pb2.Completion(
        completion_id=completion_id,
        learner_id=learner_id,
        course_id="ml-101",
        completed_at=COMPLETED_AT,
        result=common_pb2.COMPLETION_RESULT_PASS,
        evidence_url=f"https://swayam.example/certificates/{completion_id}",
    )
    item.score = 80.0
    return item


@dataclass
class Client:
    """Submits completions until told to stop; every ack and every failure is recorded."""

    stub: issuer_gateway_pb2_grpc.IssuerGatewayServiceStub
    token: str
    started: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    next_id: int = 0
    sent: dict[str, str] = field(default_factory=dict)  # completion_id -> learner_id
    acked: dict[str, str] = field(default_factory=dict)  # completion_id -> event_id
    attempts: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_samples: dict[str, str] = field(default_factory=dict)  # code -> one message
    rejected: list[str] = field(default_factory=list)
    gave_up: set[str] = field(default_factory=set)
    deadlines: list[float] = field(default_factory=list)  # seconds since start
    slow_calls: list[float] = field(default_factory=list)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def fresh(self) -> tuple[str, str]:
        n = self.next_id
        self.next_id += 1
        completion_id, learner = f"fault-{n}", LEARNERS[n % len(LEARNERS)]
        self.sent[completion_id] = learner
        return completion_id, learner

    def failed(self, error: grpc.aio.AioRpcError, began: float) -> None:
        code = error.code().name
        if error.details() == "Internal error from Core":
            # grpc's own client library, when the connection dies under a stream (a SIGKILLed
            # gateway); no server sent it.
            code = "CLIENT_TRANSPORT"
        self.failures[code] += 1
        self.failure_samples.setdefault(code, str(error.details()))
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.deadlines.append(began - self.started)

    def ack(self, completion_id: str, event_id: str) -> None:
        assert completion_id not in self.acked or self.acked[completion_id] == event_id
        self.acked[completion_id] = event_id

    async def unary_worker(self) -> None:
        while not self.stop.is_set():
            completion_id, learner = self.fresh()
            first = time.monotonic()
            while time.monotonic() - first < RETRY_BUDGET_S:
                self.attempts[completion_id] += 1
                began = time.monotonic()
                try:
                    reply = await self.stub.SubmitCompletion(
                        issuer_gateway_pb2.SubmitCompletionRequest(
                            completion=completion(completion_id, learner)
                        ),
                        metadata=self.metadata,
                        timeout=CALL_DEADLINE_S,
                    )
                except grpc.aio.AioRpcError as error:
                    self.failed(error, began)
                    await asyncio.sleep(0.3)
                    continue
                finally:
                    if time.monotonic() - began > SEND_TIMEOUT_S + 3:
                        self.slow_calls.append(time.monotonic() - began)
                self.ack(completion_id, reply.event_id)
                break
            else:
                self.gave_up.add(completion_id)
            await asyncio.sleep(PAUSE_S)

    async def stream_worker(self) -> None:
        while not self.stop.is_set():
            batch = dict(self.fresh() for _ in range(STREAM_BATCH))
            first = time.monotonic()
            while batch and time.monotonic() - first < RETRY_BUDGET_S:
                self.attempts.update(batch.keys())
                items = list(batch.items())

                async def requests(
                    items: list[tuple[str, str]] = items,
                ) -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
                    for completion_id, learner in items:
                        yield issuer_gateway_pb2.StreamCompletionsRequest(
                            completion=completion(completion_id, learner)
                        )

                began = time.monotonic()
                try:
                    call = self.stub.StreamCompletions(
                        requests(), metadata=self.metadata, timeout=CALL_DEADLINE_S
                    )
                    async for answer in call:
                        if answer.status in (
                            issuer_gateway_pb2.ACCEPTANCE_STATUS_ACCEPTED,
                            issuer_gateway_pb2.ACCEPTANCE_STATUS_DUPLICATE,
                        ):
                            self.ack(answer.completion_id, answer.event_id)
                            batch.pop(answer.completion_id, None)
                        else:
                            self.rejected.append(f"{answer.completion_id}: {answer.reason}")
                            batch.pop(answer.completion_id, None)
                except grpc.aio.AioRpcError as error:
                    self.failed(error, began)
                    await asyncio.sleep(0.3)
                finally:
                    if time.monotonic() - began > SEND_TIMEOUT_S + 3:
                        self.slow_calls.append(time.monotonic() - began)
            self.gave_up.update(batch)
            await asyncio.sleep(PAUSE_S)


async def query_reader(
    services: Services,
    learner: str,
    stop: asyncio.Event,
    codes: Counter[str],
    samples: dict[str, str],
) -> None:
    """A registrar reading one transcript in a loop through the query API."""
    metadata = (("authorization", f"Bearer {services.university_token}"),)
    async with grpc.aio.insecure_channel(
        services.address("query"), options=CHANNEL_OPTIONS
    ) as channel:
        stub = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        while not stop.is_set():
            try:
                await stub.GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(learner_id=learner),
                    metadata=metadata,
                    timeout=CALL_DEADLINE_S,
                )
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1
                samples.setdefault(error.code().name, str(error.details()))
            await asyncio.sleep(0.2)


async def watchdog(services: Services, stop: asyncio.Event, paused: asyncio.Event) -> None:
    """Restart a service that died without us killing it (as a supervisor would); count it."""
    while not stop.is_set():
        await asyncio.sleep(1.0)
        if paused.is_set():
            continue
        dead = services.dead()
        for name in dead:
            services.unexpected_exits[name] += 1
            print(f"\n!! {name} exited on its own; last log lines:\n{services.log_tail(name)}")
        if dead:
            start_services(services.state_dir, services.env)


async def inject(fault: str, cfg: StackConfig, services: Services, paused: asyncio.Event) -> float:
    """One fault and the recovery from it; the seconds until everything answered again."""
    began = time.monotonic()
    paused.set()
    try:
        if fault in services.ports:
            pid = services.pid(fault)
            os.kill(pid, signal.SIGKILL)
            services.killed_by_us[fault] += 1
            for _ in range(200):  # SIGKILL is not instant: wait (at most 10 s) for the exit
                if not is_alive(pid):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{fault} (pid {pid}) survived SIGKILL")
            await asyncio.sleep(random.uniform(0.2, 1.5))
            start_services(services.state_dir, services.env)
        elif fault == "kafka":
            await asyncio.to_thread(cfg.kafka().stop, cfg.stop_timeout)
            await asyncio.sleep(random.uniform(2.0, 4.0))
            with own_servers_only():
                await asyncio.to_thread(stack_up, cfg)
        elif fault == "postgres":
            await asyncio.to_thread(cfg.postgres().stop, find_bin_dir(), cfg.stop_timeout)
            await asyncio.sleep(random.uniform(1.0, 3.0))
            with own_servers_only():
                await asyncio.to_thread(stack_up, cfg)
        else:  # pragma: no cover
            raise ValueError(fault)
    finally:
        paused.clear()
    await services.all_healthy()
    return time.monotonic() - began


async def eventually(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            if await check():
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def test_nothing_acknowledged_is_lost_while_things_are_killed(
    fault_stack: tuple[StackConfig, StackInfo], services: Services, fault_report: list[str]
) -> None:
    cfg, info = fault_stack
    rng = random.Random(SEED)
    random.seed(SEED)
    schedule = [f for _ in range(ROUNDS) for f in rng.sample(FAULTS, len(FAULTS))]
    fault_report.append(f"fault seed {SEED} (FAULT_SEED reruns it); schedule {schedule}")
    print(f"\n{fault_report[-1]}")
    reader_learner = LEARNERS[0]
    admin_metadata = (("authorization", f"Bearer {services.admin_token}"),)
    async with grpc.aio.insecure_channel(services.address("ledger")) as channel:
        await ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel).GrantConsent(
            ledger_admin_pb2.GrantConsentRequest(learner_id=reader_learner, university_id="du"),
            metadata=admin_metadata,
            timeout=CALL_DEADLINE_S,
        )

    # The consent is an entry like any other: readable once projected.
    async def consent_projected() -> bool:
        async with grpc.aio.insecure_channel(services.address("query")) as channel:
            try:
                await transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel).GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(learner_id=reader_learner),
                    metadata=(("authorization", f"Bearer {services.university_token}"),),
                    timeout=CALL_DEADLINE_S,
                )
            except grpc.aio.AioRpcError:
                return False
        return True

    await eventually(consent_projected, RECOVERY_S, "the consent to reach the read model")
    started = time.monotonic()
    stop, paused = asyncio.Event(), asyncio.Event()
    reads: Counter[str] = Counter()
    read_samples: dict[str, str] = {}
    recoveries: list[tuple[str, float]] = []
    async with grpc.aio.insecure_channel(
        services.address("gateway"), options=CHANNEL_OPTIONS
    ) as channel:
        client = Client(issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel),
                        services.issuer_token)  # fmt: skip
        client.stop = stop
        workers = [asyncio.create_task(client.unary_worker()) for _ in range(UNARY_WORKERS)]
        workers += [asyncio.create_task(client.stream_worker()) for _ in range(STREAM_WORKERS)]
        helpers = [
            asyncio.create_task(watchdog(services, stop, paused)),
            asyncio.create_task(query_reader(services, reader_learner, stop, reads, read_samples)),
        ]
        try:
            for fault in schedule:
                await asyncio.sleep(rng.uniform(GAP_S / 2, GAP_S * 1.5))
                before = len(client.acked)
                took = await inject(fault, cfg, services, paused)
                recoveries.append((fault, took))
                fault_report.append(f"  {fault:9s} recovered in {took:5.1f}s; acks so far "
                                    f"{before} -> {len(client.acked)}")  # fmt: skip
                print(fault_report[-1])
            await asyncio.sleep(TAIL_S)
        finally:
            stop.set()
            async with asyncio.timeout(RETRY_BUDGET_S + 30):
                await asyncio.gather(*workers, *helpers, return_exceptions=False)
    streamed = time.monotonic() - started

    # Wait for the pipeline to catch up: every ack in the log, published, projected.
    acked_ids = sorted(client.acked)

    async def all_acked_in_log() -> bool:
        connection = await asyncpg.connect(info.database_url)
        try:
            found = await connection.fetchval(
                "SELECT count(DISTINCT completion_id) FROM credit_log "
                "WHERE issuer_id = $1 AND completion_id = ANY($2::text[])",
                ISSUER,
                acked_ids,
            )
        finally:
            await connection.close()
        return bool(found == len(acked_ids))

    async def published_and_projected() -> bool:
        connection = await asyncpg.connect(info.database_url)
        try:
            head = await connection.fetchval("SELECT max(position) FROM credit_log")
            relayed = await connection.fetchval("SELECT max(last_position) FROM relay_progress")
            lagging = await connection.fetchval(
                "SELECT count(*) FROM (SELECT learner_id, max(sequence) AS s FROM credit_log "
                "GROUP BY learner_id) AS h LEFT JOIN read_transcripts r USING (learner_id) "
                "WHERE r.last_sequence IS DISTINCT FROM h.s"
            )
        finally:
            await connection.close()
        return bool(relayed == head and lagging == 0)

    catch_up = time.monotonic()
    await eventually(all_acked_in_log, RECOVERY_S, "every acked completion in credit_log")
    await eventually(published_and_projected, RECOVERY_S, "relay and projector to catch up")
    caught_up_in = time.monotonic() - catch_up

    connection = await asyncpg.connect(info.database_url)
    try:
        rows = await connection.fetch(
            "SELECT completion_id, learner_id, source_event_id::text AS event_id, kind "
            "FROM credit_log WHERE completion_id IS NOT NULL ORDER BY learner_id, sequence"
        )
        gaps = await connection.fetchval(
            "SELECT count(*) FROM (SELECT learner_id FROM credit_log GROUP BY learner_id "
            "HAVING max(sequence) <> count(*) OR min(sequence) <> 1) AS broken"
        )
        rejections = await connection.fetch(
            "SELECT completion_id, reason, detail FROM rejections LIMIT 5"
        )
        rejected_count = await connection.fetchval("SELECT count(*) FROM rejections")
        report = await verify_ledger(connection)
        reader_head = await connection.fetchval(
            "SELECT max(sequence) FROM credit_log WHERE learner_id = $1", reader_learner
        )
    finally:
        await connection.close()
    differing = await log_equals_read_model(info.database_url)

    # The query API, restarted, answers with the transcript at the ledger's head.
    metadata = (("authorization", f"Bearer {services.university_token}"),)
    async with grpc.aio.insecure_channel(services.address("query")) as channel:
        final = await transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel).GetTranscript(
            transcript_query_pb2.GetTranscriptRequest(learner_id=reader_learner),
            metadata=metadata,
            timeout=CALL_DEADLINE_S,
        )

    per_completion = Counter(r["completion_id"] for r in rows)
    in_ledger = set(per_completion)
    duplicates = sorted(c for c, n in per_completion.items() if n > 1)
    lost = sorted(set(client.acked) - in_ledger)
    strangers = sorted(in_ledger - set(client.sent))
    unacked_in_ledger = sorted(in_ledger - set(client.acked))
    wrong_event = sorted(
        r["completion_id"]
        for r in rows
        if r["completion_id"] in client.acked and r["event_id"] != client.acked[r["completion_id"]]
    )
    wrong_learner = sorted(
        r["completion_id"] for r in rows if client.sent.get(r["completion_id"]) != r["learner_id"]
    )
    retried = {c for c, n in client.attempts.items() if n > 1}
    retried_acked = retried & set(client.acked)
    fault_report.append(
        f"FAULT COUNTS: sent {len(client.sent)}, acked {len(client.acked)}, "
        f"in ledger {len(in_ledger)} ({len(rows)} entries), duplicates {len(duplicates)}, "
        f"lost {len(lost)}, unacked but in ledger {len(unacked_in_ledger)}, "
        f"gave up {len(client.gave_up)}, rejected by gateway {len(client.rejected)}, "
        f"ledger rejections {rejected_count}\n"
        f"  attempts {sum(client.attempts.values())}, retried completions {len(retried)} "
        f"({len(retried_acked)} acked, each once in the ledger: "
        f"{all(per_completion[c] == 1 for c in retried_acked)})\n"
        f"  failures by code {dict(client.failures)}; deadline exceeded at "
        f"{[round(t, 1) for t in client.deadlines]}s; calls slower than "
        f"{SEND_TIMEOUT_S + 3}s: {len(client.slow_calls)}\n"
        f"  failure messages {client.failure_samples}\n"
        f"  query reads by code {dict(reads)}; messages {read_samples}\n"
        f"  killed by the test {dict(services.killed_by_us)}; exited on their own "
        f"{dict(services.unexpected_exits)}\n"
        f"  recoveries {[(f, round(s, 1)) for f, s in recoveries]}\n"
        f"  streamed {streamed:.0f}s, caught up in {caught_up_in:.0f}s; "
        f"verify_ledger {report}; learners with gaps {gaps}"
    )
    print(f"\n{fault_report[-1]}")

    assert len(recoveries) == len(schedule)
    assert client.acked, "no traffic"
    assert client.failures, "no fault was felt by the client"
    assert lost == [], f"acknowledged but not in the ledger: {lost[:10]}"
    assert duplicates == [], f"in the ledger more than once: {duplicates[:10]}"
    assert all(per_completion[c] == 1 for c in retried_acked)
    assert strangers == [], strangers[:10]
    assert wrong_learner == [], wrong_learner[:10]
    assert wrong_event == [], wrong_event[:10]
    assert all(event == str(completion_event_id(ISSUER, c)) for c, event in client.acked.items())
    # ml-101 is credited once per learner (DESIGN: a course's credit is earned once): each
    # learner's first completion in the log is credited, every later one recorded without.
    first_of_learner = {r["learner_id"]: r["completion_id"] for r in reversed(rows)}
    assert all(
        r["kind"]
        == ("credit_awarded" if first_of_learner[r["learner_id"]] == r["completion_id"]
            else "recorded_without_credit")
        for r in rows
    )  # fmt: skip
    assert client.rejected == [], client.rejected[:5]
    assert rejected_count == 0, [dict(r) for r in rejections]
    # Bounded retries (same id) outlast every outage: each completion sent was acknowledged.
    assert client.gave_up == set(), sorted(client.gave_up)[:10]
    assert set(client.sent) == set(client.acked) == in_ledger
    assert gaps == 0
    assert report.ok, report
    assert differing == [], f"transcripts differ from the fold of the log: {differing[:10]}"
    assert final.transcript.last_sequence == reader_head
    assert reads["OK"] > 0
    # Callers see retryable codes during outages, never UNKNOWN/INTERNAL, and not hangs.
    assert set(reads) <= {"OK", "UNAVAILABLE"}, read_samples
    retryable = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "CLIENT_TRANSPORT"}
    assert set(client.failures) <= retryable, client.failure_samples
    # The services ride out Kafka and PostgreSQL restarts in-process; only SIGKILL ends one.
    assert services.unexpected_exits == Counter(), dict(services.unexpected_exits)
    assert client.failures["DEADLINE_EXCEEDED"] == 0, client.deadlines
    assert client.slow_calls == [], client.slow_calls
