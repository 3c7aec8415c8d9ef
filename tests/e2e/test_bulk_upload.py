"""Partners and registrars at scale, through the client library and ``ledgerctl submit``, with
the four services as real processes on the real stack."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest

from learnerledger.v1 import common_pb2, ledger_admin_pb2, ledger_admin_pb2_grpc
from learnerledger.wire.instants import to_timestamp
from learnerledger_client import Acceptance, CallFailed, ClientConfig, RetryPolicy
from learnerledger_client.aio import IssuerClient, RegistrarClient
from learnerledger_devstack import demo
from learnerledger_devstack.processes import is_alive
from learnerledger_devstack.services import start_services
from tests.support.cli import ledgerctl_output
from tests.support.ledger import eventually, seed_courses
from tests.support.pipeline import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEMO_FILES = REPO / "deploy" / "local" / "demo"
HEADER = "completion_id,learner_id,course_id,completed_at,result,score,grade,evidence_url"
WHEN = (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")


def row(cid: str, learner: str, course: str = "ml-101", score: str = "80") -> str:
    return f"{cid},{learner},{course},{WHEN},pass,{score},,https://swayam.example/c/{cid}"


def row_completion(
    cid: str, learner: str, days_ago: int = 3, course: str = "ml-101"
) -> common_pb2.Completion:
    return common_pb2.Completion(
        completion_id=cid,
        learner_id=learner,
        course_id=course,
        completed_at=to_timestamp(datetime.now(UTC) - timedelta(days=days_ago)),
        result=common_pb2.COMPLETION_RESULT_PASS,
        evidence_url=f"https://swayam.example/c/{cid}",
    )


async def ledgerctl(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``ledgerctl ARGS``; its exit code and stderr."""
    code, _, err = await ledgerctl_output(env, *args)
    return code, err


async def new_token(database_url: str, kind: str, principal: str) -> str:
    """README's ``ledgerctl issuer|university token ID | tail -1``."""
    code, out, err = await ledgerctl_output(
        {"DATABASE_URL": database_url}, kind, "token", principal
    )
    assert code == 0, err
    return out.strip().splitlines()[-1]


async def ledgerctl_submit(
    stack: Pipeline, path: Path, report: Path, token: str | None = None
) -> tuple[int, str]:
    return await ledgerctl(
        {"LEDGERCTL_ISSUER_TOKEN": token or stack.issuer_token},
        "submit", str(path), "--gateway", stack.gateway, "--report", str(report),
    )  # fmt: skip


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def ledger_entries(database_url: str, learners: list[str]) -> list[tuple[str, str]]:
    """(completion_id, kind) of every entry of these learners: what the ledger credited."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT completion_id, kind FROM credit_log WHERE learner_id = ANY($1::text[])"
            " AND completion_id IS NOT NULL ORDER BY completion_id",
            learners,
        )
    finally:
        await connection.close()
    return [(r["completion_id"], r["kind"]) for r in rows]


async def entries_settle(database_url: str, learners: list[str], count: int) -> None:
    for _ in range(300):
        if len(await ledger_entries(database_url, learners)) >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the ledger never held {count} entries for {learners}")


async def test_a_csv_gives_a_report_per_row_and_a_rerun_credits_nothing_twice(
    pipeline: Pipeline,
    database_url: str,
    tmp_path: Path,
) -> None:
    # One learner per good row: a learner earns a course's credit once.
    learners = [f"50000000000{n}" for n in range(6)]
    good = [row(f"csv-{n}", learners[n]) for n in range(6)]
    lines = [
        HEADER,
        *good[:4],
        row("csv-bad-learner", "5000"),  # line 6: not an APAAR id
        row("csv-bad-course", learners[0], course="no-such-course"),  # line 7
        row("csv-bad-score", learners[1], score="150"),  # line 8
        *good[4:],  # lines 9, 10
        good[0],  # line 11: the same completion as line 2 again
    ]
    path = tmp_path / "month.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, err = await ledgerctl_submit(pipeline, path, tmp_path / "first.csv")
    assert code == 1, err  # some rows were rejected
    first = read_report(tmp_path / "first.csv")
    assert [(r["line"], r["completion_id"]) for r in first] == [
        (str(n), line.split(",")[0]) for n, line in enumerate(lines[1:], start=2)
    ]
    by_line = {int(r["line"]): r for r in first}
    for n in (2, 3, 4, 5, 9, 10):
        assert by_line[n]["outcome"] == "accepted", by_line[n]
        assert by_line[n]["event_id"]
    assert (by_line[6]["outcome"], by_line[6]["field"]) == ("rejected", "completion.learner_id")
    assert (by_line[7]["outcome"], by_line[7]["field"]) == ("rejected", "completion.course_id")
    assert (by_line[8]["outcome"], by_line[8]["field"]) == ("rejected", "completion.score")
    assert by_line[7]["reason"] == "INVALID_ARGUMENT"
    assert "unknown course" in by_line[7]["message"]
    # The repeated row is the same event: accepted again or a duplicate, never a new id.
    assert by_line[11]["outcome"] in ("accepted", "duplicate")
    assert by_line[11]["event_id"] == by_line[2]["event_id"]
    assert "rows/s" in err
    assert "ETA" in err
    assert "10 rows: 6 accepted" in err or "10 rows: 7 accepted" in err

    await entries_settle(database_url, learners, 6)
    credited = await ledger_entries(database_url, learners)
    assert credited == sorted((f"csv-{n}", "credit_awarded") for n in range(6))

    # The partner re-runs the same file: nothing new is credited.
    code, err = await ledgerctl_submit(pipeline, path, tmp_path / "second.csv")
    assert code == 1, err
    second = read_report(tmp_path / "second.csv")
    assert len(second) == len(first)
    for before, after in zip(first, second, strict=True):
        assert after["event_id"] == before["event_id"]
        if before["outcome"] == "rejected":
            assert after["outcome"] == "rejected"
        else:
            assert after["outcome"] in ("accepted", "duplicate")
    # Events are keyed by learner, so a fresh completion per learner is decided after the
    # re-run's: once those are recorded, the re-run was decided too, and credited nothing.
    # (Each learner holds the course's credit already: the fresh ones are already_credited.)
    sentinels = [row_completion(f"after-{learner}", learner) for learner in learners]
    async with IssuerClient(ClientConfig(pipeline.gateway, pipeline.issuer_token)) as client:
        await client.submit_many(sentinels)
    await entries_settle(database_url, learners, 12)
    assert await ledger_entries(database_url, learners) == sorted(
        [*credited, *((f"after-{learner}", "recorded_without_credit") for learner in learners)]
    )


async def test_a_stream_interrupted_by_a_gateway_restart_completes_through_retries(
    pipeline: Pipeline,
    database_url: str,
) -> None:
    total = 120
    learners = [f"6000000{n:05d}" for n in range(total)]  # a course's credit is earned once
    pid_file = pipeline.state_dir / "services" / "gateway.pid"
    killed_pid: list[int] = []

    async def completions() -> AsyncIterator[common_pb2.Completion]:
        for n in range(total):
            if n == total // 2:
                # Kill the gateway in the middle of the stream and start it again on its port.
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGKILL)
                await asyncio.to_thread(os.waitpid, pid, 0)  # our child: reap it
                assert not is_alive(pid)
                killed_pid.append(pid)
                start_services(pipeline.state_dir, pipeline.env)
            yield row_completion(f"restart-{n}", learners[n])

    config = ClientConfig(
        pipeline.gateway,
        pipeline.issuer_token,
        window=16,
        retry=RetryPolicy(max_attempts=30, initial_backoff_s=0.2, max_backoff_s=1.0),
    )
    async with IssuerClient(config) as client:
        outcomes = [o async for o in client.submit_stream(completions())]

    assert killed_pid, "the gateway was not restarted mid-stream"
    assert int(pid_file.read_text()) != killed_pid[0]
    assert [o.completion_id for o in outcomes] == [f"restart-{n}" for n in range(total)]
    assert {o.acceptance for o in outcomes} <= {Acceptance.ACCEPTED, Acceptance.DUPLICATE}
    await entries_settle(database_url, learners, total)
    entries = await ledger_entries(database_url, learners)
    assert entries == sorted((f"restart-{n}", "credit_awarded") for n in range(total))


async def test_a_registrar_reads_transcripts_pages_and_a_watch_through_the_library(
    pipeline: Pipeline,
    database_url: str,
) -> None:
    learner = "700000000001"
    partner = ClientConfig(pipeline.gateway, pipeline.issuer_token)
    registrar = ClientConfig(pipeline.query, pipeline.university_token, timeout_s=20)
    courses = [f"reg-course-{n}" for n in range(7)]  # a course's credit is earned once
    await seed_courses(database_url, courses)
    items = [row_completion(f"reg-{n}", learner, course=courses[n]) for n in range(7)]
    async with IssuerClient(partner) as issuer:
        outcomes = await issuer.submit_many(items)
        assert {o.acceptance for o in outcomes} == {Acceptance.ACCEPTED}
        await entries_settle(database_url, [learner], 7)
        status = await issuer.get_status("reg-6")
    async with grpc.aio.insecure_channel(pipeline.admin) as channel:
        await ledger_admin_pb2_grpc.LedgerAdminServiceStub(channel).GrantConsent(
            ledger_admin_pb2.GrantConsentRequest(learner_id=learner, university_id="du"),
            metadata=(("authorization", f"Bearer {pipeline.admin_token}"),),
            timeout=10,
        )
    async with RegistrarClient(registrar) as reader:
        transcript = None
        for _ in range(100):  # the consent entry is on its way to the read model
            try:
                transcript = await reader.get_transcript(
                    learner, min_position=status.ledger_position
                )
                break
            except CallFailed as error:
                if error.code != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                await asyncio.sleep(0.2)
        assert transcript is not None
        assert transcript.active_credits == 7 * 3.0
        credentials = [c async for c in reader.list_credentials(learner, page_size=3)]
        # Every page followed (7 credentials at 3 a page), in sequence order.
        assert sorted(c.completion_id for c in credentials) == [f"reg-{n}" for n in range(7)]
        assert [c.sequence for c in credentials] == sorted(c.sequence for c in credentials)
        first_update = await anext(aiter(reader.watch(learner)))
        assert first_update.transcript.active_credits == 7 * 3.0


async def test_the_readme_demo_csv_uploads_and_a_registrar_reads_its_learners_in_a_batch(
    pipeline: Pipeline,
    database_url: str,
    tmp_path: Path,
) -> None:
    """README's quick start after the demo: the demo partner uploads deploy/local/demo's CSV
    with ``ledgerctl submit``, and the demo university reads its learners with ``ledgerctl
    transcripts`` (the demo granted consent to three of them)."""
    await demo.register(database_url)  # what `ledgerctl demo` registers
    await demo.grant_consent(
        pipeline.env["KAFKA_BOOTSTRAP_SERVERS"],
        pipeline.env["TOPIC_COMPLETIONS"],
        list(demo.DEMO_CSV_CONSENTING),
    )
    swayam_token = await new_token(database_url, "issuer", "demo-swayam")
    code, err = await ledgerctl_submit(
        pipeline, DEMO_FILES / "completions.csv", tmp_path / "demo.report.csv", swayam_token
    )
    assert code == 0, err
    report = read_report(tmp_path / "demo.report.csv")
    assert [r["outcome"] for r in report] == ["accepted"] * 6, report
    assert "6 rows: 6 accepted, 0 duplicate, 0 rejected" in err

    learners = [f"90000000000{n}" for n in range(1, 5)]

    async def projected() -> bool:
        """Every completion of the CSV decided, every entry of its learners in the read model."""
        connection = await asyncpg.connect(database_url)
        try:
            decided = await connection.fetchval(
                "SELECT count(*) FROM credit_log WHERE completion_id LIKE 'demo-csv-%'"
            )
            behind = await connection.fetchval(
                """SELECT count(*) FROM credit_log c WHERE c.learner_id = ANY($1::text[])
                     AND c.sequence > coalesce((SELECT last_sequence FROM read_transcripts r
                                                 WHERE r.learner_id = c.learner_id), 0)""",
                learners,
            )
        finally:
            await connection.close()
        return bool(decided == 6 and behind == 0)

    await eventually(projected, what="the demo CSV to reach the transcripts")

    out = tmp_path / "registrar.csv"
    reader_token = await new_token(database_url, "university", "demo-university")
    code, err = await ledgerctl(
        {"LEDGERCTL_UNIVERSITY_TOKEN": reader_token},
        "transcripts", "--learners", str(DEMO_FILES / "learners.txt"),
        "--query", pipeline.query, "--out", str(out),
    )  # fmt: skip
    assert code == 1, err  # some learners were refused
    rows = read_report(out)
    assert [
        (r["learner_id"], r["status"], r["active_credits"], r["expired_credits"],
         r["revoked_credits"], r["redeemed_credits"], r["reason"])
        for r in rows
    ] == [
        ("900000000001", "ok", "5.0", "0.0", "0.0", "0.0", ""),  # ml 3 + stats 2 credits
        ("900000000002", "ok", "3.0", "0.0", "0.0", "0.0", ""),  # the fail earned nothing
        ("900000000003", "ok", "0.0", "3.0", "0.0", "0.0", ""),  # completed 2018: expired
        ("900000000004", "permission_denied", "", "", "", "", "CONSENT_NOT_GRANTED"),
        ("900000000099", "permission_denied", "", "", "", "", "CONSENT_NOT_GRANTED"),
        ("12345", "invalid", "", "", "", "", "INVALID_ARGUMENT"),
    ]  # fmt: skip
    assert "has not granted university demo-university consent" in rows[3]["message"]
    assert "APAAR" in rows[5]["message"]
    assert "transcripts: 6/6 learners (100%)" in err
    assert "learners/s ETA" in err
    assert "(1 repeated id(s) read once)" in err
    assert "6 learners (1 repeated id(s) read once): 3 ok, 2 permission_denied, 1 invalid;" in err
