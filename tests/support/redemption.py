"""The ledger's redemption service in-process, and learners with credits to redeem."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
from google.rpc import error_details_pb2

from learnerledger.domain.catalog import Course, CourseCategory, CreditRecommendation
from learnerledger.postgres import catalog
from learnerledger.rpc.errors import decode_details
from learnerledger.v1 import (
    common_pb2,
    redemption_pb2,
    redemption_pb2_grpc,
)
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    running_ledger,
    seed_catalog,
)
from tests.support.ports import free_port

R = redemption_pb2


OUT = common_pb2


@dataclass
class Stack:
    db: asyncpg.Connection
    stub: redemption_pb2_grpc.RedemptionServiceStub
    du: tuple[tuple[str, str]]
    iitm: tuple[tuple[str, str]]
    admin: tuple[tuple[str, str]]
    issuer: tuple[tuple[str, str]]
    bootstrap: str
    topic: str
    channel: grpc.aio.Channel
    port: int


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@contextlib.asynccontextmanager
async def stack(kafka_bootstrap: str, database_url: str, topics: Any) -> AsyncIterator[Stack]:
    await seed_catalog(database_url)
    db = await asyncpg.connect(database_url)
    with contextlib.suppress(catalog.AlreadyExists):
        await catalog.add_university(db, "iitm", "IIT Madras")
    for course_id, category in (
        ("sw-1", CourseCategory.SWAYAM_MOOC),
        ("sw-2", CourseCategory.SWAYAM_MOOC),
        ("uc-1", CourseCategory.UNIVERSITY_COURSE),
        ("uc-2", CourseCategory.UNIVERSITY_COURSE),
        ("uc-3", CourseCategory.UNIVERSITY_COURSE),
        ("uc-4", CourseCategory.UNIVERSITY_COURSE),
    ):
        with contextlib.suppress(catalog.AlreadyExists):
            await catalog.add_course(
                db,
                Course(course_id, "swayam", course_id, Decimal("5.5"), 90,
                       CreditRecommendation.APPROVED, category=category),
            )  # fmt: skip
    tokens = {}
    for kind, principal in (
        (catalog.PrincipalKind.UNIVERSITY, "du"),
        (catalog.PrincipalKind.UNIVERSITY, "iitm"),
        (catalog.PrincipalKind.ADMIN, "ops"),
        (catalog.PrincipalKind.ISSUER, "swayam"),
    ):
        _, tokens[principal] = await catalog.issue_token(db, kind, principal)
    port = free_port()
    try:
        async with (
            running_ledger(kafka_bootstrap, database_url, topics, grpc_port=port),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            await channel.channel_ready()
            yield Stack(
                db=db,
                stub=redemption_pb2_grpc.RedemptionServiceStub(channel),
                du=bearer(tokens["du"]),
                iitm=bearer(tokens["iitm"]),
                admin=bearer(tokens["ops"]),
                issuer=bearer(tokens["swayam"]),
                bootstrap=kafka_bootstrap,
                topic=topics.completions,
                channel=channel,
                port=port,
            )
    finally:
        await db.close()


async def credited(s: Stack, learner: str, courses: list[str], universities: list[str]) -> dict:
    """Credit ``learner`` with ``courses`` and grant consent to ``universities``; returns the
    credential sequence of each course once the ledger has recorded everything."""
    requests: list[Any] = [completion(learner, f"{learner}-{c}", course_id=c) for c in courses]
    requests += [consent(learner, u) for u in universities]
    await produce(s.bootstrap, s.topic, requests)

    async def recorded() -> bool:
        count = await s.db.fetchval(
            "SELECT count(*) FROM credit_log WHERE learner_id = $1", learner
        )
        return count == len(requests)

    await eventually(recorded, what=f"{learner}'s credits and consents")
    rows = await s.db.fetch(
        "SELECT payload->>'course_id' AS course, sequence FROM credit_log "
        "WHERE learner_id = $1 AND kind = 'credit_awarded'",
        learner,
    )
    return {r["course"]: r["sequence"] for r in rows}


async def create_programme(
    s: Stack, programme_id: str, university: str, credits: float, metadata: Any
) -> None:
    await s.stub.CreateProgramme(
        R.CreateProgrammeRequest(
            programme=R.Programme(
                programme_id=programme_id,
                university_id=university,
                title=programme_id,
                level=OUT.NCRF_LEVEL_6,
                total_credits=credits,
            )
        ),
        metadata=metadata,
    )


async def decided(s: Stack, redemption_id: str, metadata: Any) -> R.Redemption:
    found: list[R.Redemption] = []

    async def done() -> bool:
        reply = await s.stub.GetRedemption(
            R.GetRedemptionRequest(redemption_id=redemption_id), metadata=metadata
        )
        found[:] = [reply.redemption]
        return reply.redemption.state != R.REDEMPTION_STATE_PENDING

    await eventually(done, what=f"redemption {redemption_id} decided")
    return found[0]


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    return [
        v.field
        for d in decode_details(error.trailing_metadata())
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ]


@contextlib.asynccontextmanager
async def query_address(database_url: str) -> AsyncIterator[str]:
    """The query service in this process; yields its address."""
    from learnerledger.query.service import run_query
    from learnerledger.query.settings import QuerySettings

    settings = QuerySettings(
        database_url=database_url, grpc_port=0, metrics_port=0, watch_poll_ms=50
    )
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_query(settings, stop, bound))
    port = await asyncio.wait_for(bound, 15)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
