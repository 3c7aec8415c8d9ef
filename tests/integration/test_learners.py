"""Learners as principals, on the real stack: a token from `ledgerctl learner
token`, consent by the learner with a purpose and an expiry that lapses on its own, consent
under a mandate, and who read my record (the access log, its pages and its retention)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.query.service import run_query
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import (
    learner_consent_pb2,
    learner_consent_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.instants import to_timestamp
from tests.support.authorization import DIANA, EVE, Stack, bearer
from tests.support.ledger import eventually

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]


async def _reader_token(database_url: str, university_id: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        if not await catalog.university_exists(connection, university_id):
            await catalog.add_university(connection, university_id, university_id)
        return (await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, university_id))[1]
    finally:
        await connection.close()


async def _consent_entries(database_url: str, university_id: str) -> list[tuple[str, Any]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT kind, payload FROM credit_log WHERE learner_id = $1 "
            "AND kind IN ('consent_granted', 'consent_revoked') "
            "AND payload->>'university_id' = $2 ORDER BY sequence",
            DIANA,
            university_id,
        )
    finally:
        await connection.close()
    import json

    return [(r["kind"], json.loads(r["payload"])) for r in rows]


async def _reads(query: Any, token: str) -> grpc.StatusCode:
    try:
        await query.GetTranscript(
            transcript_query_pb2.GetTranscriptRequest(learner_id=DIANA), metadata=bearer(token)
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_ledgerctl_learner_token_signs_with_the_stacks_provider(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "learnerledger.ctl.main", "learner", "token", DIANA],
        env={**os.environ, "LEDGER_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.count(".") == 2
    assert (tmp_path / "learner-idp" / "jwks.json").exists()
    assert oct((tmp_path / "learner-idp" / "signing-key.pem").stat().st_mode & 0o777) == "0o600"


async def test_the_cli_token_reads_the_learners_own_record(
    services: Stack,
) -> None:
    # the fixture's provider lives in <tmp>/learner-idp: the CLI with that state dir uses it
    state_dir = services.provider.folder.parent
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "learnerledger.ctl.main", "learner", "token", DIANA],
        env={**os.environ, "LEDGER_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    answer = await query.GetTranscript(
        transcript_query_pb2.GetTranscriptRequest(learner_id=DIANA), metadata=bearer(token)
    )
    assert answer.transcript.learner_id == DIANA
    # Eve's claims under Diana's signature: refused
    header, _, signature = token.split(".")
    eves_claims = services.provider.mint(EVE).split(".")[1]
    tampered = f"{header}.{eves_claims}.{signature}"
    assert await _reads(query, tampered) is grpc.StatusCode.UNAUTHENTICATED


async def test_consent_by_the_learner_lapses_at_expiry_and_ends_on_revocation(
    services: Stack,
    database_url: str,
) -> None:
    reader = await _reader_token(database_url, "lapse-corp")
    learners = learner_consent_pb2_grpc.LearnerConsentServiceStub(services.admin)
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    diana = bearer(services.tokens["diana"])
    assert await _reads(query, reader) is grpc.StatusCode.PERMISSION_DENIED

    # a grant that lapses soon: readable once the ledger appended it, refused after expiry
    lapses_at = datetime.now(UTC) + timedelta(seconds=20)
    await learners.GrantReaderConsent(
        learner_consent_pb2.GrantReaderConsentRequest(
            learner_id=DIANA,
            university_id="lapse-corp",
            purpose="background check",
            expire_time=to_timestamp(lapses_at),
            request_id="lapse-1",
        ),
        metadata=diana,
    )

    async def readable() -> bool:
        return await _reads(query, reader) is grpc.StatusCode.OK

    await eventually(readable, what="the learner's grant to take effect", timeout=20)

    async def lapsed() -> bool:
        return await _reads(query, reader) is grpc.StatusCode.PERMISSION_DENIED

    await eventually(lapsed, what="the consent to lapse at its expiry", timeout=60)
    assert datetime.now(UTC) >= lapses_at - timedelta(seconds=1)
    [(kind, payload)] = await _consent_entries(database_url, "lapse-corp")
    assert kind == "consent_granted"
    assert payload["basis"] == "learner"
    assert payload["purpose"] == "background check"
    assert payload["expire_time"] == lapses_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # the same request id with other terms is a conflict, not a silent retry
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await learners.GrantReaderConsent(
            learner_consent_pb2.GrantReaderConsentRequest(
                learner_id=DIANA,
                university_id="lapse-corp",
                purpose="something else",
                expire_time=to_timestamp(lapses_at + timedelta(days=1)),
                request_id="lapse-1",
            ),
            metadata=diana,
        )
    assert conflict.value.code() is grpc.StatusCode.ALREADY_EXISTS
    # an expiry in the past and a missing purpose are refused field by field
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await learners.GrantReaderConsent(
            learner_consent_pb2.GrantReaderConsentRequest(
                learner_id=DIANA,
                university_id="lapse-corp",
                expire_time=to_timestamp(datetime.now(UTC) - timedelta(minutes=1)),
            ),
            metadata=diana,
        )
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "purpose" in invalid.value.details()
    assert "expire_time" in invalid.value.details()

    # granted again for a year, then revoked by the learner: refused at once
    await learners.GrantReaderConsent(
        learner_consent_pb2.GrantReaderConsentRequest(
            learner_id=DIANA,
            university_id="lapse-corp",
            purpose="background check",
            expire_time=to_timestamp(datetime.now(UTC) + timedelta(days=365)),
        ),
        metadata=diana,
    )
    await eventually(readable, what="the second grant to take effect", timeout=30)
    await learners.RevokeReaderConsent(
        learner_consent_pb2.RevokeReaderConsentRequest(
            learner_id=DIANA, university_id="lapse-corp"
        ),
        metadata=diana,
    )
    await eventually(lapsed, what="the learner's revocation to take effect", timeout=30)
    kinds = [(kind, payload.get("basis")) for kind, payload in await _consent_entries(
        database_url, "lapse-corp"
    )]  # fmt: skip
    assert kinds == [
        ("consent_granted", "learner"),
        ("consent_granted", "learner"),
        ("consent_revoked", "learner"),
    ]


async def test_admin_granted_consent_is_recorded_under_a_mandate(
    services: Stack,
    database_url: str,
) -> None:
    reader = await _reader_token(database_url, "mandate-board")
    admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(services.admin)
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    await admin.GrantConsent(
        ledger_admin_pb2.GrantConsentRequest(
            learner_id=DIANA, university_id="mandate-board", purpose="statutory audit"
        ),
        metadata=bearer(services.tokens["admin"]),
    )

    async def readable() -> bool:
        return await _reads(query, reader) is grpc.StatusCode.OK

    await eventually(readable, what="the mandate consent to take effect", timeout=30)
    [(kind, payload)] = await _consent_entries(database_url, "mandate-board")
    assert (kind, payload) == (
        "consent_granted",
        {"university_id": "mandate-board", "basis": "mandate", "purpose": "statutory audit"},
    )


async def test_who_read_my_record(services: Stack, database_url: str) -> None:
    query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(services.query)
    du, admin = bearer(services.tokens["du"]), bearer(services.tokens["admin"])
    diana, eve = bearer(services.tokens["diana"]), bearer(services.tokens["eve"])
    await query.GetTranscript(
        transcript_query_pb2.GetTranscriptRequest(learner_id=DIANA), metadata=du
    )
    await query.ListCredentials(
        transcript_query_pb2.ListCredentialsRequest(learner_id=DIANA), metadata=du
    )
    await query.GetCreditSummary(
        transcript_query_pb2.GetCreditSummaryRequest(learner_id=DIANA), metadata=admin
    )
    await query.BatchGetTranscripts(
        transcript_query_pb2.BatchGetTranscriptsRequest(learner_ids=[DIANA, EVE]), metadata=du
    )  # EVE did not consent to du: not read, not logged for her
    await query.GetTranscript(  # the learner's own read is not logged
        transcript_query_pb2.GetTranscriptRequest(learner_id=DIANA), metadata=diana
    )
    listed = await query.ListRecordAccesses(
        transcript_query_pb2.ListRecordAccessesRequest(learner_id=DIANA, page_size=4),
        metadata=diana,
    )
    newest = [(a.reader_kind, a.reader_id, a.method) for a in listed.record_accesses]
    assert newest == [
        ("university", "du", "BatchGetTranscripts"),
        ("admin", "ops", "GetCreditSummary"),
        ("university", "du", "ListCredentials"),
        ("university", "du", "GetTranscript"),
    ]
    times = [a.access_time.ToDatetime() for a in listed.record_accesses]
    assert times == sorted(times, reverse=True)
    # the same four, one page at a time
    paged, token = [], ""
    for _ in range(4):
        page = await query.ListRecordAccesses(
            transcript_query_pb2.ListRecordAccessesRequest(
                learner_id=DIANA, page_size=1, page_token=token
            ),
            metadata=diana,
        )
        paged.extend((a.reader_kind, a.reader_id, a.method) for a in page.record_accesses)
        token = page.next_page_token
        assert token
    assert paged == newest
    eve_listing = await query.ListRecordAccesses(
        transcript_query_pb2.ListRecordAccessesRequest(learner_id=EVE), metadata=eve
    )
    assert all(a.method != "BatchGetTranscripts" for a in eve_listing.record_accesses)
    for who, learner, page_token in (
        (eve, DIANA, ""),  # another learner's log
        (du, DIANA, ""),  # readers do not list it
        (admin, DIANA, ""),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await query.ListRecordAccesses(
                transcript_query_pb2.ListRecordAccessesRequest(
                    learner_id=learner, page_token=page_token
                ),
                metadata=who,
            )
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as foreign_token:
        await query.ListRecordAccesses(
            transcript_query_pb2.ListRecordAccessesRequest(learner_id=EVE, page_token=token),
            metadata=eve,
        )
    assert foreign_token.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_the_access_log_keeps_only_its_retention(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC)
        await connection.executemany(
            "INSERT INTO record_accesses (learner_id, reader_kind, reader_id, method, "
            "accessed_at) VALUES ($1, 'university', 'du', 'GetTranscript', $2)",
            [("633333333333", now - timedelta(days=40)), ("633333333333", now - timedelta(days=2))],
        )
        settings = QuerySettings(
            database_url=database_url,
            grpc_port=0,
            metrics_port=0,
            access_log_retention_days=30,
            access_log_prune_interval_s=0.2,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_query(settings, stop))

        async def pruned() -> bool:
            ages = await connection.fetch(
                "SELECT accessed_at FROM record_accesses WHERE learner_id = '633333333333'"
            )
            return [r["accessed_at"] for r in ages] == [now - timedelta(days=2)]

        try:
            await eventually(pruned, what="the 40-day-old access to be deleted", timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=15)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await connection.execute("UPDATE record_accesses SET reader_id = 'x'")
    finally:
        await connection.close()
