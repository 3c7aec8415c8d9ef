"""Gateway ingest rate beside Kafka's own producer-perf-test with the same record size and acks.

    .venv/bin/python -m bench.ingest [--completions 200000] [--clients 4]

On the local stack (``ledgerctl stack up``, or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
ADMIN_DATABASE_URL): a fresh database and a fresh 12-partition topic, ``ledgerctl serve gateway``
as its own process (rate limit lifted), and ``--clients`` partner clients in this process, each
one StreamCompletions call, counting accepted acks (an ack means Kafka acknowledged with
acks=all from the idempotent producer). The limit: ``kafka-producer-perf-test`` (the
ProducerPerformance main class from the same Kafka jars) sending as many records of the same
size with acks=all and idempotence into another fresh topic. Also reports the gateway's
resident memory at the end. Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc

from bench.harness import (
    fresh_database,
    running_gateway,
    save_report,
    seed_issuer,
    use_kafka_admin,
)
from learnerledger.domain.events import CompletionSubmitted, Envelope, Result, completion_event_id
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.security import java_client_properties
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger.v1 import common_pb2, issuer_gateway_pb2, issuer_gateway_pb2_grpc
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.stack import (
    PRODUCER_PERF_MAIN,
    StackConfig,
    run_kafka_tool,
    stack_up,
)


def completions(client: int, count: int) -> list[common_pb2.Completion]:
    completed = to_timestamp(datetime.now(UTC) - timedelta(days=10))
    items = []
    for n in range(count):
        item = common_pb2.Completion(
            completion_id=f"ingest-{client}-{n}",
            learner_id=f"{400000000000 + (n * 7 + client) % 100_000}",
            course_id="ingest-course",
            completed_at=completed,
            result=common_pb2.COMPLETION_RESULT_PASS,
            evidence_url=f"https://bench.example/certificates/{client}/{n}",
        )
        item.score = 80.0
        items.append(item)
    return items


def record_size() -> int:
    """Bytes of one CompletionEvent as the gateway writes it (the perf test's --record-size)."""
    now = datetime.now(UTC)
    request = CompletionSubmitted(
        Envelope(completion_event_id("bench", "ingest-0-0"), 1, now, "bench", "400000000000"),
        "ingest-0-0",
        "ingest-course",
        now,
        Result.PASS,
        80.0,
        evidence_url="https://bench.example/certificates/0/0",
    )
    return len(encode_completion_event(request))


async def stream(address: str, token: str, items: list[common_pb2.Completion]) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)

        async def requests() -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
            for item in items:
                yield issuer_gateway_pb2.StreamCompletionsRequest(completion=item)

        accepted = 0
        async for ack in stub.StreamCompletions(
            requests(), metadata=(("authorization", f"Bearer {token}"),)
        ):
            accepted += ack.status == issuer_gateway_pb2.ACCEPTANCE_STATUS_ACCEPTED
        return accepted


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def run(args: argparse.Namespace) -> dict[str, object]:
    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    use_kafka_admin(info)
    suffix = secrets.token_hex(4)
    ours_topic, limit_topic = f"bench.ingest.{suffix}", f"bench.perf.{suffix}"
    await ensure_topics(
        info.kafka_bootstrap, [TopicSpec(ours_topic, 12, -1), TopicSpec(limit_topic, 12, -1)]
    )
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, "ingest-course")
        _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, "bench")
        await connection.close()
        profile = ("-m", "cProfile", "-o", args.profile) if args.profile else ()
        async with running_gateway(info, dsn, ours_topic, python_args=profile) as (
            address,
            gateway,
        ):
            share = args.completions // args.clients
            batches = [completions(c, share) for c in range(args.clients)]
            started = time.perf_counter()
            accepted = sum(await asyncio.gather(*(stream(address, token, b) for b in batches)))
            ours_s = time.perf_counter() - started
            gateway_rss = rss_mib(gateway.pid)
    size = record_size()
    with tempfile.TemporaryDirectory(prefix="ll-bench-") as private:
        # The perf tool authenticates as this process does (the stack's admin, or the
        # KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_* of external servers).
        client_config = Path(private) / "client.properties"
        client_config.write_text(java_client_properties())
        perf = run_kafka_tool(
            cfg,
            PRODUCER_PERF_MAIN,
            ["--topic", limit_topic, "--num-records", str(share * args.clients),
             "--record-size", str(size), "--throughput", "-1", "--producer-props",
             f"bootstrap.servers={info.kafka_bootstrap}", "acks=all", "enable.idempotence=true",
             "--producer.config", str(client_config)],
            timeout=600,
        )  # fmt: skip
    summary = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", perf.stdout)[-1]
    limit_rate = float(summary[1])
    ours_rate = accepted / ours_s
    return {
        "scenario": "ingest",
        "completions": share * args.clients,
        "accepted": accepted,
        "clients": args.clients,
        "record_bytes": size,
        "ours_completions_per_s": round(ours_rate),
        "limit_producer_perf_records_per_s": round(limit_rate),
        "ratio": round(ours_rate / limit_rate, 3),
        "gateway_rss_mib_at_end": gateway_rss,
        "cores": "gateway, clients, Kafka and PostgreSQL share the machine's cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--profile", help="write a cProfile of the gateway process to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"{'scenario':<8} {'ours (completions/s)':>21} {'limit: perf-test (rec/s)':>25} "
          f"{'ratio':>6} {'gateway RSS MiB':>16}")  # fmt: skip
    print(
        f"{'ingest':<8} {figures['ours_completions_per_s']:>21} "
        f"{figures['limit_producer_perf_records_per_s']:>25} {figures['ratio']:>6} "
        f"{figures['gateway_rss_mib_at_end']:>16}"
    )
    print(f"written {save_report('ingest', figures)}")


if __name__ == "__main__":
    main()
