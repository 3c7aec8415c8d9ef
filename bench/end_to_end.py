"""End to end: from a partner's stream to a registrar's transcript, and each service's memory.

    .venv/bin/python -m bench.end_to_end [--completions 20000] [--rate 200] [--seconds 10]

On the local stack, with fresh topics and a fresh database, starts the four services as their
own processes (``ledgerctl serve ...``). Then:

1. **Time to visible**: streams ``--completions`` through the gateway from 4 partner clients as
   fast as they are acknowledged, and measures until every one is in the read model.
2. **Freshness at a fixed offered load**: submits ``--rate`` completions per second (unary
   calls, paced) for ``--seconds``, records each ack, watches the read model, and reports ack
   to visible p50/p99.
3. **Footprint**: resident memory of each service process at the end (steady state under load).

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc

from bench.harness import (
    free_port,
    fresh_database,
    save_report,
    seed_issuer,
    use_kafka_admin,
    wait_ready,
)
from bench.ingest import completions, rss_mib, stream
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger.v1 import issuer_gateway_pb2, issuer_gateway_pb2_grpc
from learnerledger_devstack.services import (
    RunningService,
    check_services,
    start_services,
    stop_services,
)
from learnerledger_devstack.stack import StackConfig, StackInfo, stack_up


async def visible(connection: asyncpg.Connection, ids: list[str]) -> set[str]:
    rows = await connection.fetch(
        "SELECT completion_id FROM read_credentials WHERE completion_id = ANY($1::text[])", ids
    )
    return {r["completion_id"] for r in rows}


async def time_to_visible(
    gateway: str, token: str, connection: asyncpg.Connection, total: int
) -> dict[str, float]:
    batches = [completions(client, total // 4) for client in range(4)]  # ingest-<client>-<n>
    started = time.perf_counter()
    accepted = sum(await asyncio.gather(*(stream(gateway, token, b) for b in batches)))
    acked_s = time.perf_counter() - started
    while True:
        shown = await connection.fetchval(
            "SELECT count(*) FROM read_credentials WHERE completion_id LIKE 'ingest-%'"
        )
        if shown >= accepted:
            break
        await asyncio.sleep(0.1)
    return {
        "completions": accepted,
        "all_acked_s": round(acked_s, 2),
        "all_visible_s": round(time.perf_counter() - started, 2),
    }


async def freshness(
    gateway: str, token: str, connection: asyncpg.Connection, rate: float, seconds: float
) -> dict[str, float]:
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    items = completions(9, int(rate * seconds))
    for n, item in enumerate(items):
        item.completion_id = item.completion_id.replace("ingest-", "fresh-")
        # Learners of their own: a learner earns a course's credit once, and a completion
        # recorded without credit (already_credited) is not a credential to wait for.
        item.learner_id = str(500_000_000_000 + n)
    metadata = (("authorization", f"Bearer {token}"),)

    async with grpc.aio.insecure_channel(gateway) as channel:
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)

        async def submit(item: object) -> None:
            await stub.SubmitCompletion(
                issuer_gateway_pb2.SubmitCompletionRequest(completion=item), metadata=metadata
            )
            acked[item.completion_id] = time.perf_counter()  # type: ignore[attr-defined]

        async def offer() -> None:
            began = time.perf_counter()
            calls = []
            for n, item in enumerate(items):
                delay = began + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                calls.append(asyncio.create_task(submit(item)))
            await asyncio.gather(*calls)

        async def watch() -> None:
            while len(seen) < len(items):
                pending = [i for i in acked if i not in seen]
                if pending:
                    now = time.perf_counter()
                    for completion_id in await visible(connection, pending):
                        seen[completion_id] = now
                await asyncio.sleep(0.02)

        await asyncio.gather(offer(), asyncio.wait_for(watch(), timeout=seconds + 120))
    delays = sorted(seen[i] - acked[i] for i in seen)
    cuts = statistics.quantiles(delays, n=100)
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "completions": len(delays),
        "freshness_p50_ms": round(cuts[49] * 1000, 1),
        "freshness_p99_ms": round(cuts[98] * 1000, 1),
        "poll_interval_ms": 20,
    }


@dataclass
class Pipeline:
    gateway: str
    token: str
    connection: asyncpg.Connection
    services: list[RunningService]


@asynccontextmanager
async def running_pipeline(info: StackInfo) -> AsyncIterator[Pipeline]:
    """Fresh topics and database, one issuer with an approved course, the four services."""
    suffix = secrets.token_hex(4)
    topics = {
        "TOPIC_COMPLETIONS": f"bench.e2e.completions.{suffix}",
        "TOPIC_LEDGER_ENTRIES": f"bench.e2e.entries.{suffix}",
        "TOPIC_COMPLETIONS_DLQ": f"bench.e2e.dlq.{suffix}",
    }
    await ensure_topics(info.kafka_bootstrap, [TopicSpec(t, 12, -1) for t in topics.values()])
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, "ingest-course")
        _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, "bench")
        ports = {name: free_port() for name in ("gateway", "query", "ledger", "projector")}
        env = {
            **topics,
            "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
            "DATABASE_URL": dsn,
            "LEDGER_CONSUMER_GROUP": f"ledger-{suffix}",
            "PROJECTOR_CONSUMER_GROUP": f"projector-{suffix}",
            "GATEWAY_RATE_LIMIT_PER_S": "1000000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000000",
            "LOG_LEVEL": "WARNING",
            **{f"{n.upper()}_GRPC_PORT": str(p) for n, p in ports.items()},
            **{f"{n.upper()}_METRICS_PORT": "0" for n in ports},
        }
        state = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
        services = start_services(state, {**os.environ, **env})
        try:
            gateway = f"127.0.0.1:{ports['gateway']}"
            await wait_ready(gateway)
            check_services(services)
            yield Pipeline(gateway, token, connection, services)
        finally:
            stop_services(state)
            await connection.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    async with running_pipeline(info) as pipeline:
        bulk = await time_to_visible(
            pipeline.gateway, pipeline.token, pipeline.connection, args.completions
        )
        fresh = await freshness(
            pipeline.gateway, pipeline.token, pipeline.connection, args.rate, args.seconds
        )
        footprint = {s.name: rss_mib(s.pid) for s in pipeline.services}
    return {
        "scenario": "end_to_end",
        "time_to_visible": bulk,
        "freshness": fresh,
        "rss_mib": footprint,
        "cores": "four services, the clients, Kafka and PostgreSQL share the machine's cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    bulk, fresh = figures["time_to_visible"], figures["freshness"]
    print(f"time to visible: {bulk}")  # type: ignore[index]
    print(f"freshness:       {fresh}")
    print(f"resident MiB:    {figures['rss_mib']}")
    print(f"written {save_report('end_to_end', figures)}")


if __name__ == "__main__":
    main()
