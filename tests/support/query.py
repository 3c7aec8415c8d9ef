"""The query service in-process, and tokens to call it with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import grpc

from learnerledger.postgres import catalog
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import transcript_query_pb2_grpc as pb_grpc


@contextlib.asynccontextmanager
async def running_query(database_url: str) -> AsyncIterator[pb_grpc.TranscriptQueryServiceStub]:
    settings = QuerySettings(
        database_url=database_url, grpc_port=0, metrics_port=0, watch_poll_ms=50
    )
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_query(settings, stop, bound))
    port = await asyncio.wait_for(bound, 15)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.TranscriptQueryServiceStub(channel)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def tokens(database_url: str) -> tuple[str, str]:
    connection = await asyncpg.connect(database_url)
    try:
        _, university = await catalog.issue_token(
            connection, catalog.PrincipalKind.UNIVERSITY, "du"
        )
        _, admin = await catalog.issue_token(connection, catalog.PrincipalKind.ADMIN, "ops")
    finally:
        await connection.close()
    return university, admin


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)
