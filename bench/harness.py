"""What every benchmark needs: a throwaway database, free ports, the machine, the JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.postgres import catalog
from learnerledger.postgres.migrations import migrate
from learnerledger_devstack.db_logins import OWNER_ROLE
from learnerledger_devstack.stack import StackInfo, with_database

RESULTS = Path(__file__).parent / "results"


async def _create_database(info: StackInfo, name: str, *, if_missing: bool = False) -> bool:
    """Create database ``name`` on the stack's PostgreSQL; False if ``if_missing`` and it exists.

    The schema belongs to the NOLOGIN ll_owner where the login of DATABASE_URL is a member of
    it (ll_migrator on the local stack, also when a test hands its stack over as external
    servers); otherwise to that login."""
    login = urlsplit(info.database_url).username
    admin = await asyncpg.connect(with_database(info.admin_database_url, "postgres"))
    try:
        if if_missing and await admin.fetchval(
            "SELECT true FROM pg_database WHERE datname = $1", name
        ):
            return False
        migrates_as_owner = await admin.fetchval(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) "
            "THEN pg_has_role($1, $2, 'MEMBER') ELSE false END",
            login,
            OWNER_ROLE,
        )
        owner = OWNER_ROLE if migrates_as_owner else login
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return True
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(info: StackInfo) -> AsyncIterator[str]:
    """A new, migrated database on the stack's PostgreSQL (dropped afterwards); yields its DSN."""
    name = f"bench_{secrets.token_hex(4)}"
    await _create_database(info, name)
    dsn = with_database(info.database_url, name)
    try:
        await migrate(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(with_database(info.admin_database_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def kept_database(info: StackInfo, name: str) -> str:
    """Database ``name`` on the stack's PostgreSQL, created and migrated if it does not exist
    yet, kept afterwards (a large data set built once, measured several times) and brought to
    the latest migration each time; its DSN. Drop it with ``DROP DATABASE`` when done."""
    await _create_database(info, name, if_missing=True)
    dsn = with_database(info.database_url, name)
    await migrate(dsn)
    return dsn


def use_kafka_admin(info: StackInfo) -> None:
    """This process's Kafka clients (``client_options()`` reads the environment) and the
    services it starts authenticate to the local stack's Kafka as its super user ``admin``."""
    os.environ.update(info.kafka_env.get("admin", {}))


BENCH_ISSUER = "bench"


async def seed_issuer(connection: asyncpg.Connection, course_id: str) -> None:
    """The benchmarks' issuer and one approved 90-hour course (3 credits a completion)."""
    await catalog.add_issuer(connection, BENCH_ISSUER, "Bench")
    await catalog.add_course(
        connection,
        Course(course_id, BENCH_ISSUER, "Bench", Decimal(6), 90, CreditRecommendation.APPROVED),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(address: str) -> None:
    """Wait (at most a minute) until a gRPC server accepts connections at ``address``."""
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=60)
    finally:
        await channel.close()


@asynccontextmanager
async def running_gateway(
    info: StackInfo, dsn: str, topic: str, *, python_args: tuple[str, ...] = ()
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ledgerctl serve gateway`` as a process on a free port, producing to ``topic``, with no
    rate limit (``python_args``: e.g. a profiler); yields its address and process."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
        "TOPIC_COMPLETIONS": topic,
        "GATEWAY_GRPC_PORT": str(port),
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_RATE_LIMIT_PER_S": "1000000000",
        "GATEWAY_RATE_LIMIT_BURST": "1000000000",
        "LOG_LEVEL": "WARNING",
    }
    gateway = subprocess.Popen(
        [sys.executable, *python_args, "-m", "learnerledger.ctl.main", "serve", "gateway"], env=env
    )
    try:
        address = f"127.0.0.1:{port}"
        await wait_ready(address)
        yield address, gateway
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "asyncpg": asyncpg.__version__,
        "grpcio": grpc.__version__,
        "git_commit": commit,
    }


def save_report(scenario: str, figures: dict[str, object]) -> Path:
    """Write ``figures`` with the machine and the time to bench/results/<scenario>-<time>.json."""
    now = datetime.now(UTC)
    report = {**figures, "machine": machine(), "at": now.isoformat()}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{scenario}-{now:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
