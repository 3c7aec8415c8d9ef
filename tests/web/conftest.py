"""The real stack for the browser tests: ledger (with LearnerConsentService), projector and the
query service with its HTTP server and web pages, in this process, on the test's Kafka topics
and PostgreSQL; a learner with an active credit, one expiring soon and a revoked one, a consent
and a university's read; a signed tree head over all of it; Debian's chromium, headless."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from learnerledger.domain.signed_note import NoteSigner
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc
from learnerledger_devstack.dev_identity import DevIdentityProvider
from tests.support.authorization import bearer, learner_sign_in
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    revocation,
    running_ledger,
    seed_catalog,
    seed_courses,
)
from tests.support.ports import free_port
from tests.support.projector import log_heads, projected, running_projector

LEARNER = "644444444444"
ORIGIN = "learnerledger.test/web"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class WebStack:
    base: str
    token: str
    signer: NoteSigner
    database_url: str
    #: entry hashes of the learner's credits by course id
    hashes: dict[str, str]


async def _credit_hashes(database_url: str) -> dict[str, str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT payload->>'course_id' AS course, entry_hash FROM credit_log "
            "WHERE learner_id = $1 AND kind = 'credit_awarded'",
            LEARNER,
        )
    finally:
        await connection.close()
    return {r["course"]: bytes(r["entry_hash"]).hex() for r in rows}


async def sign_everything(database_url: str, signer: NoteSigner) -> None:
    """A signed tree head over every entry of the log (as the ledger's checkpointer does)."""
    connection = await asyncpg.connect(database_url)
    try:
        total = await connection.fetchval("SELECT count(*) FROM credit_log")

        async def signed() -> bool:
            return (await take_tree_head(connection, signer)).tree_size == total

        await eventually(signed, what=f"a signed tree head of {total} entries")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_query_http(database_url: str, **more: Any) -> AsyncIterator[tuple[int, int]]:
    settings = QuerySettings(
        database_url=database_url, grpc_port=0, metrics_port=0, http_port=0, **more
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[int] = loop.create_future()
    http_bound: asyncio.Future[int] = loop.create_future()
    task = asyncio.create_task(run_query(settings, stop, bound, http_bound))
    try:
        yield await asyncio.wait_for(bound, 15), await asyncio.wait_for(http_bound, 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def web_stack(
    kafka_bootstrap: str, database_url: str, topics: Any, tmp_path: Path
) -> AsyncIterator[WebStack]:
    provider = DevIdentityProvider(tmp_path / "learner-idp").ensure()
    sign_in = learner_sign_in(provider)
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    await seed_catalog(database_url)
    await seed_courses(database_url, ["web-revoked"])
    connection = await asyncpg.connect(database_url)
    try:
        with contextlib.suppress(catalog.AlreadyExists):
            await catalog.add_university(connection, "acme-hr", "Acme (employer)")
        du_token = (await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du"))[1]
    finally:
        await connection.close()
    expiring = datetime.now(UTC) - timedelta(days=7 * 365 + 2 - 30)  # valid ~30 more days
    await produce(
        kafka_bootstrap,
        topics.completions,
        [
            consent(LEARNER, "du"),
            completion(LEARNER, "web-1", course_id="ml-101"),
            completion(
                LEARNER, "web-2", issuer_id="nptel", course_id="os-301", completed_at=expiring
            ),
            completion(LEARNER, "web-3", course_id="web-revoked"),
            revocation(LEARNER, "web-3"),
        ],
    )
    admin_port = free_port()
    async with (
        running_ledger(kafka_bootstrap, database_url, topics, grpc_port=admin_port, **sign_in),
        running_projector(
            kafka_bootstrap, database_url, topics.ledger_entries, f"p-{topics.ledger_entries}"
        ),
        running_query_http(
            database_url,
            web_checkpoint_vkeys=signer.verifier.verifier_key(),
            web_ledger_address=f"127.0.0.1:{admin_port}",
            **sign_in,
        ) as (grpc_port, http_port),
    ):

        async def all_projected() -> bool:
            heads = await log_heads(database_url, [LEARNER])
            return heads.get(LEARNER, 0) >= 5 and await projected(database_url, [LEARNER]) == heads

        await eventually(all_projected, what="the learner's entries in the read model")
        await sign_everything(database_url, signer)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            # a university reads the record: the learner sees it under "who read my record"
            await transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel).GetTranscript(
                transcript_query_pb2.GetTranscriptRequest(learner_id=LEARNER),
                metadata=bearer(du_token),
            )
        yield WebStack(
            f"http://127.0.0.1:{http_port}",
            provider.mint(LEARNER),
            signer,
            database_url,
            await _credit_hashes(database_url),
        )


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's chromium through its chromedriver, headless, phone-sized (412 by 915 CSS pixels)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium and chromedriver are missing: run scripts/bootstrap.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=412,915",
        "--force-device-scale-factor=1",
        "--lang=en-GB",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()
