"""``ledgerctl demo``: the whole pipeline on the local stack, with generated partners and learners.

Brings up Kafka and PostgreSQL, starts the four services, registers three demo issuers with their
courses and a university, streams completions from three partner clients through the gateway,
waits until every accepted completion is in the transcripts, prints one learner's transcript as
fetched over gRPC, redeems some of that learner's credits toward a demo programme (one credit
refused for the SWAYAM cap), and leaves the services running.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from learnerledger.ctl.commands.redeem import format_redemption
from learnerledger.domain.catalog import Course, CourseCategory, CreditRecommendation
from learnerledger.domain.events import ConsentGrantRequested, Envelope
from learnerledger.gateway.settings import GatewaySettings
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.producer import durable_producer
from learnerledger.ledger.settings import LedgerSettings
from learnerledger.postgres import catalog
from learnerledger.query.settings import QuerySettings
from learnerledger.v1 import (
    common_pb2,
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    redemption_pb2,
    redemption_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger.wire.enums import PROTO_TO_LEVEL
from learnerledger.wire.instants import to_timestamp
from learnerledger_devstack.services import check_services, start_services

UNIVERSITY = "demo-university"
PARTNERS = {
    "demo-swayam": [
        ("swayam-ml", "Machine learning", "5.5", 90),
        ("swayam-stats", "Statistics", "5", 60),
    ],
    "demo-nsdc": [
        ("nsdc-welding", "Advanced welding", "4.5", 120),
        ("nsdc-solar", "Solar PV installation", "5", 45),
    ],
    "demo-iitm": [
        ("iitm-dsa", "Data structures", "6", 120),
        ("iitm-thesis", "Research methods", "7", 30),
    ],
}
#: The learners of the demo's CSV (deploy/local/demo/completions.csv, uploaded with
#: ``ledgerctl submit`` as README's quick start shows) who consent to the demo university;
#: 900000000004 does not, so the registrar's batch read of deploy/local/demo/learners.txt
#: shows a refusal beside the transcripts.
DEMO_CSV_CONSENTING = ("900000000001", "900000000002", "900000000003")
#: Where each partner's credit comes from, for the redemption caps.
CATEGORIES = {
    "demo-swayam": CourseCategory.SWAYAM_MOOC,
    "demo-nsdc": CourseCategory.SKILLING,
    "demo-iitm": CourseCategory.UNIVERSITY_COURSE,
}
#: The demo university's programme: 10 credits at level 6, so it takes at most 4 SWAYAM
#: credits: of the printed learner's two SWAYAM courses (3 and 2 credits) one is refused.
PROGRAMME = "demo-bsc"
REDEEMED_COURSES = ("iitm-dsa", "swayam-ml", "swayam-stats")
PENDING_COURSE = "iitm-thesis"  # registered without approval: recorded without credit, until
# the demo approves it backdated: its completions then earn credit by re-decision.


@dataclass(frozen=True, slots=True)
class DemoPartner:
    issuer_id: str
    token: str
    course_ids: tuple[str, ...]


async def register(database_url: str) -> tuple[list[DemoPartner], str]:
    """Demo issuers, courses and a university, each with a fresh token (idempotent)."""
    connection = await asyncpg.connect(database_url)
    partners = []
    try:
        for issuer_id, courses in PARTNERS.items():
            if not await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM issuers WHERE issuer_id = $1)", issuer_id
            ):
                await catalog.add_issuer(connection, issuer_id, issuer_id.replace("-", " ").title())
                for course_id, title, level, hours in courses:
                    state = (
                        CreditRecommendation.PENDING
                        if course_id == PENDING_COURSE
                        else CreditRecommendation.APPROVED
                    )
                    await catalog.add_course(
                        connection,
                        Course(course_id, issuer_id, title, Decimal(level), hours, state,
                               category=CATEGORIES[issuer_id]),
                    )  # fmt: skip
            for course_id, *_ in courses:  # a stack from before categories: set them now
                await catalog.set_category(connection, course_id, CATEGORIES[issuer_id])
            _, token = await catalog.issue_token(
                connection, catalog.PrincipalKind.ISSUER, issuer_id
            )
            partners.append(DemoPartner(issuer_id, token, tuple(c[0] for c in courses)))
        if not await catalog.university_exists(connection, UNIVERSITY):
            await catalog.add_university(connection, UNIVERSITY, "Demo University")
        _, reader = await catalog.issue_token(
            connection, catalog.PrincipalKind.UNIVERSITY, UNIVERSITY
        )
    finally:
        await connection.close()
    return partners, reader


async def grant_consent(bootstrap: str, topic: str, learner_ids: list[str]) -> None:
    """Learners consent to the demo university (a ConsentGrantRequested event each)."""
    producer = durable_producer(bootstrap, client_id="demo-consent")
    await producer.start()
    try:
        for learner_id in learner_ids:
            request = ConsentGrantRequested(
                Envelope(uuid.uuid4(), 1, datetime.now(UTC), "", learner_id), UNIVERSITY
            )
            await producer.send_and_wait(
                topic, key=learner_id.encode(), value=encode_completion_event(request)
            )
    finally:
        await producer.stop()


def completions_for(
    partner: DemoPartner, count: int, learners: list[str], run: str, seed: int
) -> list[common_pb2.Completion]:
    """``count`` completions, each (learner, course) at most once, except that the first learner
    (whose transcript the demo prints) completes every course and repeats the partner's first
    one (the repeat is recorded without credit: ``already_credited``)."""
    chooser = random.Random(seed)
    now = datetime.now(UTC)
    shown = [(learners[0], course_id) for course_id in partner.course_ids]
    shown.append((learners[0], partner.course_ids[0]))
    others = [(learner, c) for learner in learners[1:] for c in partner.course_ids]
    if count > len(shown) + len(others):
        raise ValueError(f"{count} completions need more than {len(learners)} learners")
    pairs = (shown + chooser.sample(others, max(count - len(shown), 0)))[:count]
    items = []
    for n, (learner_id, course_id) in enumerate(pairs):
        passed = n < len(shown) or chooser.random() > 0.1
        # Some expired (over 7 years ago); the printed learner's are recent (it redeems them).
        age = chooser.randint(1, 300) if n < len(shown) else chooser.randint(1, 3000)
        completion = common_pb2.Completion(
            completion_id=f"demo-{run}-{partner.issuer_id}-{n}",
            learner_id=learner_id,
            course_id=course_id,
            completed_at=to_timestamp(now - timedelta(days=age)),
            result=common_pb2.COMPLETION_RESULT_PASS
            if passed
            else common_pb2.COMPLETION_RESULT_FAIL,
            evidence_url=f"https://{partner.issuer_id}.example/certificates/{run}-{n}",
        )
        completion.score = chooser.uniform(40, 100) if passed else chooser.uniform(0, 39)
        items.append(completion)
    return items


async def stream_partner(
    gateway: str, partner: DemoPartner, completions: list[common_pb2.Completion], on_ack: object
) -> tuple[int, int]:
    """One partner client: a StreamCompletions call carrying every completion."""
    accepted = rejected = 0
    async with grpc.aio.insecure_channel(gateway) as channel:
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)

        async def requests() -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
            for completion in completions:
                yield issuer_gateway_pb2.StreamCompletionsRequest(completion=completion)

        call = stub.StreamCompletions(
            requests(), metadata=(("authorization", f"Bearer {partner.token}"),)
        )
        async for ack in call:
            if ack.status == issuer_gateway_pb2.ACCEPTANCE_STATUS_REJECTED:
                rejected += 1
            else:
                accepted += 1
            on_ack()  # type: ignore[operator]
    return accepted, rejected


async def wait_for_ledger(database_url: str, run: str, expected: int, deadline: float) -> int:
    """Wait until the ledger holds ``expected`` completion entries; return the log head."""
    connection = await asyncpg.connect(database_url)
    try:
        while time.monotonic() < deadline:
            done = await connection.fetchval(
                "SELECT count(*) FROM credit_log WHERE completion_id LIKE $1 "
                "AND kind IN ('credit_awarded', 'recorded_without_credit')",
                f"demo-{run}-%",
            )
            if done >= expected:
                return int(await connection.fetchval("SELECT max(position) FROM credit_log"))
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError(f"the ledger did not record {expected} completions in time")


async def approve_backdated(database_url: str, run: str, deadline: float) -> int:
    """Approve the pending course as of long before every completion (with a reason) and wait
    until the ledger has credited each passing completion of it by re-decision."""
    connection = await asyncpg.connect(database_url)
    try:
        await catalog.set_recommendation(
            connection,
            PENDING_COURSE,
            CreditRecommendation.APPROVED,
            effective_at=datetime.now(UTC) - timedelta(days=4000),
            reason="demo: the recommendation was granted before the course first ran",
        )
        while time.monotonic() < deadline:
            waiting = await connection.fetchval(
                """SELECT count(*) FROM credit_log o
                    WHERE o.completion_id LIKE $1 AND o.kind = 'recorded_without_credit'
                      AND o.payload->>'no_credit_reason' = 'course_not_approved'
                      AND o.payload->>'result' = 'pass'
                      AND NOT EXISTS (
                          SELECT 1 FROM credit_log a
                           WHERE a.learner_id = o.learner_id
                             AND a.payload->>'redecides_sequence' = o.sequence::text)""",
                f"demo-{run}-%",
            )
            if waiting == 0:
                return int(
                    await connection.fetchval(
                        "SELECT count(*) FROM credit_log WHERE completion_id LIKE $1 "
                        "AND payload ? 'redecides_sequence'",
                        f"demo-{run}-%",
                    )
                )
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError("the ledger did not re-decide the approved course's completions in time")


async def log_head(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT max(position) FROM credit_log"))
    finally:
        await connection.close()


async def wait_for_transcripts(database_url: str, deadline: float) -> None:
    """Wait until the read model has applied every entry of the log."""
    connection = await asyncpg.connect(database_url)
    try:
        while time.monotonic() < deadline:
            behind = await connection.fetchval(
                """SELECT count(*) FROM credit_log c
                    WHERE c.sequence > coalesce((SELECT last_sequence FROM read_transcripts r
                                                  WHERE r.learner_id = c.learner_id), 0)"""
            )
            if behind == 0:
                return
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError("the transcripts did not catch up with the ledger in time")


async def redeem_for(
    ledger: str, token: str, learner: str, transcript: transcript_query_pb2.Transcript, run: str
) -> redemption_pb2.Redemption:
    """Register the demo programme (once) and redeem the learner's REDEEMED_COURSES toward it;
    the decided redemption."""
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(ledger) as channel:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        try:
            await stub.CreateProgramme(
                redemption_pb2.CreateProgrammeRequest(
                    programme=redemption_pb2.Programme(
                        programme_id=PROGRAMME,
                        university_id=UNIVERSITY,
                        title="B.Sc. (demo)",
                        level=common_pb2.NCRF_LEVEL_6,
                        total_credits=10,
                    )
                ),
                metadata=metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:  # an earlier demo made it
                raise
        sequences = sorted(
            c.sequence for c in transcript.credentials if c.course_id in REDEEMED_COURSES
        )
        redemption_id = f"demo-{run}"
        reply = await stub.RedeemCredits(
            redemption_pb2.RedeemCreditsRequest(
                redemption_id=redemption_id,
                learner_id=learner,
                programme_id=PROGRAMME,
                credential_sequences=sequences,
                allow_partial=True,
            ),
            metadata=metadata,
            timeout=30,
        )
        redemption: redemption_pb2.Redemption = reply.redemption
        deadline = time.monotonic() + 60
        while redemption.state == redemption_pb2.REDEMPTION_STATE_PENDING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ledger did not decide redemption {redemption_id}")
            await asyncio.sleep(0.2)
            redemption = (
                await stub.GetRedemption(
                    redemption_pb2.GetRedemptionRequest(redemption_id=redemption_id),
                    metadata=metadata,
                    timeout=30,
                )
            ).redemption
    return redemption


async def wait_until_ready(address: str, deadline: float) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    while True:
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no healthy gRPC server at {address}")
        await asyncio.sleep(0.5)


async def run_demo(
    *,
    state_dir: Path,
    bootstrap: str,
    database_url: str,
    env: dict[str, str],
    total: int,
    logins: dict[str, str] | None = None,
    kafka_env: dict[str, dict[str, str]] | None = None,
) -> None:
    console = Console(soft_wrap=True)
    started = time.monotonic()
    # The services read their ports from the environment (GATEWAY_GRPC_PORT, ...); so does this.
    gateway = f"127.0.0.1:{GatewaySettings().grpc_port}"
    query = f"127.0.0.1:{QuerySettings().grpc_port}"
    ledger = f"127.0.0.1:{LedgerSettings().grpc_port}"
    services = start_services(state_dir, env, logins, kafka_env)
    console.print("services: " + ", ".join(f"{s.name} (pid {s.pid})" for s in services))
    deadline = time.monotonic() + 120
    for address in (gateway, query, ledger):
        await wait_until_ready(address, deadline)
    check_services(services)
    partners, reader_token = await register(database_url)
    run = uuid.uuid4().hex[:6]
    # Enough learners that no one completes the same course twice (each partner has two).
    learners = [f"{random.randrange(10**11, 10**12)}" for _ in range(total // 4 + 2)]
    await grant_consent(
        bootstrap,
        env.get("TOPIC_COMPLETIONS", "completions.v1"),
        learners[:5] + list(DEMO_CSV_CONSENTING),
    )
    share = total // len(partners)
    batches = [
        completions_for(p, share + (total % len(partners) if i == 0 else 0), learners, run, i)
        for i, p in enumerate(partners)
    ]
    with Progress(
        TextColumn("[bold]streaming completions"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("stream", total=total)
        results = await asyncio.gather(
            *(
                stream_partner(gateway, p, batch, lambda: progress.advance(task))
                for p, batch in zip(partners, batches, strict=True)
            )
        )
    accepted = sum(a for a, _ in results)
    rejected = sum(r for _, r in results)
    console.print(f"gateway: {accepted} accepted, {rejected} rejected")
    await wait_for_ledger(database_url, run, accepted, time.monotonic() + 300)
    credited_late = await approve_backdated(database_url, run, time.monotonic() + 120)
    console.print(
        f"catalog: {PENDING_COURSE} approved, backdated with a reason; {credited_late} "
        "completion(s) recorded without credit earned it by re-decision"
    )
    head = await log_head(database_url)
    await wait_for_transcripts(database_url, time.monotonic() + 300)
    learner = learners[0]
    async with grpc.aio.insecure_channel(query) as channel:
        stub = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        reply = await stub.GetTranscript(
            transcript_query_pb2.GetTranscriptRequest(learner_id=learner, min_position=head),
            metadata=(("authorization", f"Bearer {reader_token}"),),
            timeout=300,
        )
    transcript = reply.transcript
    console.print(
        f"\n[bold]Transcript of learner {learner}[/bold] "
        f"(as fetched over gRPC, ledger position {transcript.ledger_position})"
    )
    for credential in transcript.credentials:
        status = transcript_query_pb2.CredentialStatus.Name(credential.status).removeprefix(
            "CREDENTIAL_STATUS_"
        )
        console.print(
            f"  {credential.issuer_id:<12} {credential.course_id:<14} "
            f"level {PROTO_TO_LEVEL.get(credential.level, '?'):<4}"
            f" {credential.credits:>5} credits  {status.lower()}"
        )
    console.print(
        f"  total {transcript.total_credits} · active {transcript.active_credits} · "
        f"expired {transcript.expired_credits} · revoked {transcript.revoked_credits} · "
        f"completions without credit {transcript.completions_without_credit}"
    )
    by_level = ", ".join(
        f"level {PROTO_TO_LEVEL.get(row.level, '?')}: {row.credits}" for row in transcript.by_level
    )
    by_issuer = ", ".join(f"{row.issuer_id}: {row.credits}" for row in transcript.by_issuer)
    console.print(f"  active by level: {by_level}\n  active by issuer: {by_issuer}")
    redemption = await redeem_for(ledger, reader_token, learner, transcript, run)
    console.print(
        f"\n[bold]{UNIVERSITY} redeems {learner}'s credits toward {PROGRAMME}[/bold] "
        "(10 credits: at most 4 from SWAYAM MOOCs)"
    )
    printed = io.StringIO()
    format_redemption(redemption, printed)
    console.print(printed.getvalue().rstrip(), markup=False, highlight=False)
    await show_credential(console, query, reader_token, learner, transcript, state_dir)
    await show_web_pages(console, database_url, learner, transcript)
    console.print(
        f"\n{accepted} completions from {len(partners)} partners are in the ledger and the "
        f"transcripts; {time.monotonic() - started:.1f} s in all."
    )
    console.print(
        f"The services keep running (logs in {state_dir / 'services'}). Query them with "
        f"grpcurl -plaintext {query} list, with the header "
        f"'authorization: Bearer {reader_token}' (university {UNIVERSITY}); "
        "stop everything with: .venv/bin/ledgerctl stack down"
    )


async def show_credential(
    console: Console,
    query: str,
    reader_token: str,
    learner: str,
    transcript: transcript_query_pb2.Transcript,
    state_dir: Path,
) -> None:
    """Export one of the learner's active credits as a verifiable credential, print it and
    how a verifier checks it."""
    active = [
        c
        for c in transcript.credentials
        if c.status == transcript_query_pb2.CREDENTIAL_STATUS_ACTIVE
    ]
    if not active:
        console.print("(no active credit to export as a credential)")
        return
    async with grpc.aio.insecure_channel(query) as channel:
        stub = transcript_query_pb2_grpc.TranscriptQueryServiceStub(channel)
        reply = await stub.ExportCredential(
            transcript_query_pb2.ExportCredentialRequest(
                learner_id=learner, sequence=active[0].sequence
            ),
            metadata=(("authorization", f"Bearer {reader_token}"),),
            timeout=30,
        )
    out = state_dir / "credential.jwt"
    out.write_text(reply.credential_jwt + "\n")
    public_url = reply.status_list_credential.rsplit("/status/", 1)[0]
    console.print(
        f"\n[bold]One credit as a verifiable credential[/bold] (Open Badges 3.0, "
        f"ExportCredential, signed by {reply.key_id}); the JWS is in {out}, decoded:"
    )
    console.print_json(reply.credential_json)
    console.print(
        "Check it as a verifier (signature with the key of the issuer's DID document, "
        "validity, revocation bit):\n"
        f"  .venv/bin/ledgerctl credential verify {out} --http\n"
        f"  curl {public_url}/.well-known/did.json      # the issuer's keys (did:web)\n"
        f"  curl {reply.status_list_credential}                    # the signed status list"
    )


async def show_web_pages(
    console: Console,
    database_url: str,
    learner: str,
    transcript: transcript_query_pb2.Transcript,
) -> None:
    """The web pages' addresses: the learner's page and the verification link (share link) of
    the sample learner's first active credit."""
    http_port = QuerySettings().http_port
    if http_port is None:
        return
    base = f"http://127.0.0.1:{http_port}"
    active = [
        c.sequence
        for c in transcript.credentials
        if c.status == transcript_query_pb2.CREDENTIAL_STATUS_ACTIVE
    ]
    console.print(
        f"\n[bold]Web pages[/bold] (query service, {base}): the learner's page {base}/learner "
        f"(sign in with the token of: .venv/bin/ledgerctl learner token {learner})"
    )
    if not active:
        return
    connection = await asyncpg.connect(database_url)
    try:
        entry_hash = await connection.fetchval(
            "SELECT entry_hash FROM credit_log WHERE learner_id = $1 AND sequence = $2",
            learner,
            active[0],
        )
    finally:
        await connection.close()
    console.print(
        f"Verification link for learner {learner}'s credit (proven once the next signed "
        f"checkpoint covers it, within 30 s):\n  {base}/verify?entry={bytes(entry_hash).hex()}"
    )
