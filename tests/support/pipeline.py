"""The services as real processes on the test stack (end-to-end tests)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from learnerledger.postgres import catalog
from learnerledger.v1 import (
    common_pb2,
)
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.services import check_services, start_services, stop_services
from tests.support.ledger import seed_catalog, seed_courses
from tests.support.ports import free_port

LEARNER = "987654321012"


@dataclass
class Pipeline:
    gateway: str
    query: str
    admin: str
    issuer_token: str
    university_token: str
    admin_token: str
    state_dir: Path
    #: The services' environment: start_services(state_dir, env) restarts one that was stopped.
    env: dict[str, str]


async def healthy(address: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{address} did not become healthy")
            await asyncio.sleep(0.3)


@pytest.fixture
async def pipeline(kafka_bootstrap: str, database_url: str, topics) -> AsyncIterator[Pipeline]:  # type: ignore[no-untyped-def]
    await seed_catalog(database_url)
    # A learner earns a course's credit once: one course per credited completion.
    await seed_courses(database_url, [f"ml-{n}" for n in range(12)])
    connection = await asyncpg.connect(database_url)
    try:
        _, issuer = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, "swayam")
        _, university = await catalog.issue_token(
            connection, catalog.PrincipalKind.UNIVERSITY, "du"
        )
        _, admin = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    ports = {name: free_port() for name in ("gateway", "query", "ledger", "projector")}
    env = {
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "GATEWAY_GRPC_PORT": str(ports["gateway"]),
        "QUERY_GRPC_PORT": str(ports["query"]),
        "LEDGER_GRPC_PORT": str(ports["ledger"]),
        "PROJECTOR_GRPC_PORT": str(ports["projector"]),
        "LEDGER_CONSUMER_GROUP": f"ledger-{topics.completions}",
        "PROJECTOR_CONSUMER_GROUP": f"projector-{topics.ledger_entries}",
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        **{f"{name.upper()}_METRICS_PORT": "0" for name in ports},
        "LOG_LEVEL": "WARNING",
    }
    state = Path(tempfile.mkdtemp(prefix="ll-e2e-"))
    services = start_services(state, env)
    try:
        for name in ("gateway", "query", "ledger"):
            await healthy(f"127.0.0.1:{ports[name]}")
        check_services(services)
        yield Pipeline(
            gateway=f"127.0.0.1:{ports['gateway']}",
            query=f"127.0.0.1:{ports['query']}",
            admin=f"127.0.0.1:{ports['ledger']}",
            issuer_token=issuer,
            university_token=university,
            admin_token=admin,
            state_dir=state,
            env=env,
        )
    finally:
        stop_services(state)


def completion(n: int, course_id: str = "ml-101", days_ago: int = 30) -> common_pb2.Completion:
    item = common_pb2.Completion(
        completion_id=f"e2e-{n}",
        learner_id=LEARNER,
        course_id=course_id,
        completed_at=to_timestamp(datetime.now(UTC) - timedelta(days=days_ago)),
        result=common_pb2.COMPLETION_RESULT_PASS,
        evidence_url=f"https://swayam.example/certificates/{n}",
    )
    item.score = 77.0
    return item
