"""Revocation to status: how soon an issuer's revocation shows in the served status list.

    .venv/bin/python -m bench.credential_status [--credentials 200] [--revocations 50]

On the local stack, with fresh topics and a fresh database, starts the four services as their
own processes (``ledgerctl serve ...``; the query service with QUERY_HTTP_PORT and its own
credential key). Then:

1. submits ``--credentials`` passing completions (one learner each) through the gateway and
   waits until the read model shows them;
2. exports each as a credential over gRPC (``ExportCredential``, admin token): latency;
3. for ``--revocations`` of them, one at a time: ``RevokeCompletion`` at the gateway (acked
   after ``acks=all``), then ``GET /status/1`` every 20 ms until the credential's bit is set:
   **revocation-to-status delay** (gateway ack -> bit set in the signed list served over HTTP:
   the ledger's append, the relay, the projector and the list computed at request time);
4. the cost of serving the status list (``GET /status/1``, signed, 131,072 entries).

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import grpc

from bench.harness import free_port, fresh_database, save_report, seed_issuer, use_kafka_admin
from bench.harness import wait_ready as grpc_ready
from bench.ingest import stream
from learnerledger.domain.credentials import decode_status_list, status_bit
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.ledger.verification import generate_signing_key
from learnerledger.postgres import catalog
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.services import check_services, start_services, stop_services
from learnerledger_devstack.stack import StackConfig, stack_up

POLL_S = 0.02
COURSE = "vc-bench-course"


def ms_summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if len(ordered) > 1:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    else:
        cuts = ordered * 99
    return {
        "count": len(ordered),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def learner(n: int) -> str:
    return str(610_000_000_000 + n)


async def bit(session: aiohttp.ClientSession, url: str, index: int) -> bool:
    """The bit of ``index`` in the served list (the JWS payload; the tests verify signatures)."""
    async with session.get(url) as response:
        response.raise_for_status()
        token = await response.text()
    payload = token.split(".")[1]
    credential = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return status_bit(decode_status_list(credential["credentialSubject"]["encodedList"]), index)


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    suffix = secrets.token_hex(4)
    topics = {
        "TOPIC_COMPLETIONS": f"bench.vc.completions.{suffix}",
        "TOPIC_LEDGER_ENTRIES": f"bench.vc.entries.{suffix}",
        "TOPIC_COMPLETIONS_DLQ": f"bench.vc.dlq.{suffix}",
    }
    await ensure_topics(info.kafka_bootstrap, [TopicSpec(t, 12, -1) for t in topics.values()])
    state = Path(tempfile.mkdtemp(prefix="bench-vc-"))
    key_file = state / "credential.key"
    generate_signing_key(key_file)
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, COURSE)
        _, issuer_token = await catalog.issue_token(
            connection, catalog.PrincipalKind.ISSUER, "bench"
        )
        _, admin_token = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "b")
        ports = {name: free_port() for name in ("gateway", "query", "ledger", "projector")}
        http_port = free_port()
        env = {
            **topics,
            "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
            "DATABASE_URL": dsn,
            "LEDGER_CONSUMER_GROUP": f"ledger-{suffix}",
            "PROJECTOR_CONSUMER_GROUP": f"projector-{suffix}",
            "GATEWAY_RATE_LIMIT_PER_S": "1000000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000000",
            "QUERY_HTTP_PORT": str(http_port),
            "QUERY_CREDENTIAL_SIGNING_KEY_FILE": str(key_file),
            "LOG_LEVEL": "WARNING",
            **{f"{n.upper()}_GRPC_PORT": str(p) for n, p in ports.items()},
            **{f"{n.upper()}_METRICS_PORT": "0" for n in ports},
        }
        services = start_services(state, {**os.environ, **env})
        try:
            gateway = f"127.0.0.1:{ports['gateway']}"
            query = f"127.0.0.1:{ports['query']}"
            await grpc_ready(gateway)
            await grpc_ready(query)
            check_services(services)
            figures = await measure(args, connection, gateway, query, http_port,
                                    issuer_token, admin_token)  # fmt: skip
        finally:
            stop_services(state)
            await connection.close()
    return {"scenario": "credential_status", **figures}


async def measure(
    args: argparse.Namespace,
    connection: asyncpg.Connection,
    gateway: str,
    query: str,
    http_port: int,
    issuer_token: str,
    admin_token: str,
) -> dict[str, object]:
    completed = to_timestamp(datetime.now(UTC) - timedelta(days=10))
    items = []
    for n in range(args.credentials):
        item = common_pb2.Completion(
            completion_id=f"vc-{n}",
            learner_id=learner(n),
            course_id=COURSE,
            completed_at=completed,
            result=common_pb2.COMPLETION_RESULT_PASS,
            evidence_url=f"https://bench.example/certificates/vc-{n}",
        )
        item.score = 80.0
        items.append(item)
    accepted = await stream(gateway, issuer_token, items)
    while True:
        shown = await connection.fetchval(
            "SELECT count(*) FROM read_credentials WHERE completion_id LIKE 'vc-%'"
        )
        if shown >= accepted:
            break
        await asyncio.sleep(0.1)

    admin = (("authorization", f"Bearer {admin_token}"),)
    issuer = (("authorization", f"Bearer {issuer_token}"),)
    export_s: list[float] = []
    exported: list[tuple[int, str, int]] = []  # (n, status list URL, index)
    async with grpc.aio.insecure_channel(query) as channel:
        stub = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        for n in range(args.credentials):
            started = time.perf_counter()
            reply = await stub.ExportCredential(
                transcript_query_pb2.ExportCredentialRequest(learner_id=learner(n), sequence=1),
                metadata=admin,
            )
            export_s.append(time.perf_counter() - started)
            exported.append((n, reply.status_list_credential, reply.status_list_index))

    delays: list[float] = []
    list_s: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        grpc.aio.insecure_channel(gateway) as channel,
    ):
        gateway_stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        for n, url, index in exported[: args.revocations]:
            assert not await bit(session, url, index), f"credential {n} revoked before its time"
            await gateway_stub.RevokeCompletion(
                issuer_gateway_pb2.RevokeCompletionRequest(
                    completion_id=f"vc-{n}", reason="bench", learner_id=learner(n)
                ),
                metadata=issuer,
            )
            acked = time.perf_counter()
            deadline = acked + 60
            while not await bit(session, url, index):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"credential {n}: revocation not in the list after 60 s")
                await asyncio.sleep(POLL_S)
            delays.append(time.perf_counter() - acked)
        for _ in range(50):
            started = time.perf_counter()
            await bit(session, exported[0][1], exported[0][2])
            list_s.append(time.perf_counter() - started)
    return {
        "credentials": args.credentials,
        "export_credential": ms_summary(export_s),
        "revocation_to_status": {**ms_summary(delays), "poll_interval_ms": POLL_S * 1000},
        "status_list_get": ms_summary(list_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=int, default=200)
    parser.add_argument("--revocations", type=int, default=50)
    args = parser.parse_args()
    if not 1 <= args.revocations <= args.credentials:
        parser.error("--revocations must be between 1 and --credentials")
    report = asyncio.run(run(args))
    print(f"{'measure':<40} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name in ("export_credential", "revocation_to_status", "status_list_get"):
        row = report[name]
        assert isinstance(row, dict)
        label = {
            "export_credential": "ExportCredential (gRPC, sign)",
            "revocation_to_status": "revocation ack -> bit set over HTTP",
            "status_list_get": "GET /status/1 (131,072 entries, signed)",
        }[name]
        print(f"{label:<40} {row['count']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} "
              f"{row['max_ms']:>8}")  # fmt: skip
    print(f"written {save_report('credential_status', report)}")


if __name__ == "__main__":
    main()
