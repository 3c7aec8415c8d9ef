"""Redemptions per second end to end (request to decided) beside completions per second in the
same run.

    .venv/bin/python -m bench.redemption [--learners 2000] [--courses 4] [--concurrency 64]

On the local stack (``ledgerctl stack up``, or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
ADMIN_DATABASE_URL): a fresh database and fresh topics, ``ledgerctl serve gateway`` and
``ledgerctl serve ledger`` as their own processes. Then, from clients in this process:

1. **Completions** (the limit): ``--learners`` x ``--courses`` unary ``SubmitCompletion`` calls
   to the gateway, ``--concurrency`` in flight, each request to decided (its entry appended by
   the ledger).
2. **Redemptions**: one ``RedeemCredits`` per credential just earned (the same count), by a
   university with every learner's consent, ``--concurrency`` in flight, to the ledger's
   RedemptionService; each request to decided (its ``credits_redeemed`` entry appended).

Both travel the same path (Kafka keyed by learner, decided in the learner's order, appended to
the hash-chained log); a redemption also claims its id in PostgreSQL before it is published and
is decided on the learner's credentials. Rate = requests / (last decided - first sent);
latency = the entry's ``recorded_at`` - the request's send time. Prints a table and writes JSON
under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import grpc

from bench.harness import (
    BENCH_ISSUER,
    free_port,
    fresh_database,
    running_gateway,
    save_report,
    use_kafka_admin,
    wait_ready,
)
from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import ConsentGrantRequested, Envelope
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.producer import durable_producer
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    redemption_pb2,
    redemption_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.stack import StackConfig, StackInfo, stack_up

UNIVERSITY = "bench-university"
PROGRAMME = "bench-programme"


@asynccontextmanager
async def running_ledger(info: StackInfo, dsn: str, topics: dict[str, str]) -> AsyncIterator[str]:
    """``ledgerctl serve ledger`` as a process on a free port; yields its API address."""
    port = free_port()
    env = {
        **os.environ,
        **topics,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
        "LEDGER_CONSUMER_GROUP": f"ledger-{secrets.token_hex(4)}",
        "LEDGER_GRPC_PORT": str(port),
        "LEDGER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    ledger = subprocess.Popen([sys.executable, "-m", "learnerledger.ctl.main", "serve", "ledger"],
                              env=env)  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        await wait_ready(address)
        yield address
    finally:
        ledger.terminate()
        ledger.wait(timeout=30)


async def timed(
    calls: list[Callable[[], Awaitable[object]]], concurrency: int
) -> tuple[list[float], float, float]:
    """Run ``calls`` with ``concurrency`` in flight; each one's send time (epoch s), the first
    send and the last acknowledgement."""
    gate = asyncio.Semaphore(concurrency)
    sent = [0.0] * len(calls)

    async def one(n: int) -> None:
        async with gate:
            sent[n] = time.time()
            await calls[n]()

    first = time.time()
    await asyncio.gather(*(one(n) for n in range(len(calls))))
    return sent, first, time.time()


async def decided_at(connection: asyncpg.Connection, sql: str, keys: list[str]) -> dict[str, float]:
    """Wait (at most 10 minutes) until every key has its entry; each entry's recorded_at
    (epoch s). ``sql`` selects (key, recorded_at) for the keys in $1."""
    async with asyncio.timeout(600):
        rows = await connection.fetch(sql, keys)
        while len(rows) < len(keys):
            await asyncio.sleep(0.1)
            rows = await connection.fetch(sql, keys)
    return {r[0]: r[1].timestamp() for r in rows}


def figures(
    sent: dict[str, float], first: float, acked: float, done: dict[str, float]
) -> dict[str, float]:
    latencies = sorted(done[k] - sent[k] for k in sent)
    cuts = statistics.quantiles(latencies, n=100)
    elapsed = max(done.values()) - first
    return {
        "requests": len(sent),
        "acknowledged_per_s": round(len(sent) / (acked - first), 1),
        "seconds": round(elapsed, 2),
        "per_s": round(len(sent) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    suffix = secrets.token_hex(4)
    topics = {
        "TOPIC_COMPLETIONS": f"bench.redeem.completions.{suffix}",
        "TOPIC_LEDGER_ENTRIES": f"bench.redeem.entries.{suffix}",
        "TOPIC_COMPLETIONS_DLQ": f"bench.redeem.dlq.{suffix}",
    }
    await ensure_topics(info.kafka_bootstrap, [TopicSpec(t, 12, -1) for t in topics.values()])
    learners = [f"{600_000_000_000 + n}" for n in range(args.learners)]
    courses = [f"bench-course-{c}" for c in range(args.courses)]
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            await catalog.add_issuer(connection, BENCH_ISSUER, "Bench")
            for course_id in courses:
                await catalog.add_course(
                    connection,
                    Course(course_id, BENCH_ISSUER, course_id, Decimal(6), 90,
                           CreditRecommendation.APPROVED),
                )  # fmt: skip
            await catalog.add_university(connection, UNIVERSITY, "Bench University")
            _, issuer_token = await catalog.issue_token(
                connection, catalog.PrincipalKind.ISSUER, BENCH_ISSUER
            )
            _, university_token = await catalog.issue_token(
                connection, catalog.PrincipalKind.UNIVERSITY, UNIVERSITY
            )
            async with (
                running_gateway(info, dsn, topics["TOPIC_COMPLETIONS"]) as (gateway, _),
                running_ledger(info, dsn, topics) as ledger,
            ):
                completed = await _completions(
                    gateway, issuer_token, connection, learners, courses, args.concurrency
                )
                await _consent(info, topics["TOPIC_COMPLETIONS"], connection, learners)
                redeemed = await _redemptions(
                    ledger, university_token, connection, learners, args.concurrency
                )
        finally:
            await connection.close()
    return {
        "scenario": "redemption",
        "learners": args.learners,
        "courses": args.courses,
        "concurrency": args.concurrency,
        "completions": completed,
        "redemptions": redeemed,
        "ratio_redemptions_to_completions": round(
            float(redeemed["per_s"]) / float(completed["per_s"]), 3
        ),
        "cores": "gateway, ledger, the clients, Kafka and PostgreSQL share the machine's cores",
    }


async def _completions(
    gateway: str,
    token: str,
    connection: asyncpg.Connection,
    learners: list[str],
    courses: list[str],
    concurrency: int,
) -> dict[str, float]:
    completed = to_timestamp(datetime.now(UTC) - timedelta(days=10))
    metadata = (("authorization", f"Bearer {token}"),)
    items = []
    for learner in learners:
        for course_id in courses:
            item = common_pb2.Completion(
                completion_id=f"c-{learner}-{course_id}",
                learner_id=learner,
                course_id=course_id,
                completed_at=completed,
                result=common_pb2.COMPLETION_RESULT_PASS,
            )
            item.score = 80.0
            items.append(item)
    async with grpc.aio.insecure_channel(gateway) as channel:
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        calls = [
            lambda item=item: stub.SubmitCompletion(
                issuer_gateway_pb2.SubmitCompletionRequest(completion=item), metadata=metadata
            )
            for item in items
        ]
        sent, first, acked = await timed(calls, concurrency)
    keys = [item.completion_id for item in items]
    done = await decided_at(
        connection,
        "SELECT completion_id, recorded_at FROM credit_log "
        "WHERE completion_id = ANY($1::text[]) AND kind = 'credit_awarded'",
        keys,
    )
    return figures(dict(zip(keys, sent, strict=True)), first, acked, done)


async def _consent(
    info: StackInfo, topic: str, connection: asyncpg.Connection, learners: list[str]
) -> None:
    producer = durable_producer(info.kafka_bootstrap, client_id="bench-consent")
    await producer.start()
    try:
        sends = [
            await producer.send(
                topic,
                key=learner.encode(),
                value=encode_completion_event(
                    ConsentGrantRequested(
                        Envelope(uuid.uuid4(), 1, datetime.now(UTC), "", learner), UNIVERSITY
                    )
                ),
            )
            for learner in learners
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    await decided_at(
        connection,
        "SELECT learner_id, recorded_at FROM credit_log "
        "WHERE kind = 'consent_granted' AND learner_id = ANY($1::text[])",
        learners,
    )


async def _redemptions(
    ledger: str,
    token: str,
    connection: asyncpg.Connection,
    learners: list[str],
    concurrency: int,
) -> dict[str, float]:
    metadata = (("authorization", f"Bearer {token}"),)
    rows = await connection.fetch(
        "SELECT learner_id, sequence FROM credit_log WHERE kind = 'credit_awarded' "
        "AND learner_id = ANY($1::text[]) ORDER BY learner_id, sequence",
        learners,
    )
    asks = [
        redemption_pb2.RedeemCreditsRequest(
            redemption_id=f"r-{r['learner_id']}-{r['sequence']}",
            learner_id=r["learner_id"],
            programme_id=PROGRAMME,
            credential_sequences=[r["sequence"]],
        )
        for r in rows
    ]
    async with grpc.aio.insecure_channel(ledger) as channel:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        await stub.CreateProgramme(
            redemption_pb2.CreateProgrammeRequest(
                programme=redemption_pb2.Programme(
                    programme_id=PROGRAMME,
                    university_id=UNIVERSITY,
                    title="Bench",
                    level=common_pb2.NCRF_LEVEL_6,
                    total_credits=320,
                )
            ),
            metadata=metadata,
        )
        calls = [lambda ask=ask: stub.RedeemCredits(ask, metadata=metadata) for ask in asks]
        sent, first, acked = await timed(calls, concurrency)
    keys = [ask.redemption_id for ask in asks]
    done = await decided_at(
        connection,
        "SELECT payload->>'redemption_id', recorded_at FROM credit_log "
        "WHERE kind = 'credits_redeemed' AND payload->>'redemption_id' = ANY($1::text[])",
        keys,
    )
    return figures(dict(zip(keys, sent, strict=True)), first, acked, done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    completed, redeemed = report["completions"], report["redemptions"]
    print(f"{'':<12} {'requests':>9} {'acked/s':>8} {'decided/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in (("completions", completed), ("redemptions", redeemed)):
        print(
            f"{name:<12} {row['requests']:>9} {row['acknowledged_per_s']:>8} "  # type: ignore[index]
            f"{row['per_s']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8}"  # type: ignore[index]
        )
    print("(decided/s and latencies: request to decided; acked/s: request to acknowledged)")
    print(f"redemptions / completions: {report['ratio_redemptions_to_completions']}")
    print(f"written {save_report('redemption', report)}")


if __name__ == "__main__":
    main()
