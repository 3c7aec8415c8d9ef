"""The guarantee at scale: 1,000 concurrent, conflicting redemptions by three
universities over real Kafka and PostgreSQL, with the ledger process (which also serves
RedemptionService) killed by SIGKILL while they arrive. Registrars retry with the same
redemption id until acknowledged, as the API asks. At the end every credit is redeemed at most
once and every acknowledged redemption is decided exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
from collections import Counter
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
import pytest

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.ledger.verification import verify_ledger
from learnerledger.postgres import catalog
from learnerledger.v1 import common_pb2, redemption_pb2, redemption_pb2_grpc
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    seed_catalog,
    start_ledger,
)
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

R = redemption_pb2
REDEMPTIONS = int(os.environ.get("REDEMPTION_CRASH_TEST_REDEMPTIONS", "1000"))
KILLS = int(os.environ.get("REDEMPTION_CRASH_TEST_KILLS", "2"))
LEARNERS = 40
COURSES = [f"rc-{n}" for n in range(5)]
UNIVERSITIES = ("du", "iitm", "jnu")
IN_FLIGHT = 64


async def _setup(database_url: str) -> dict[str, str]:
    """Courses, universities with a 160-credit programme each, and a token per university."""
    await seed_catalog(database_url)
    db = await asyncpg.connect(database_url)
    tokens = {}
    try:
        for university in UNIVERSITIES:
            with contextlib.suppress(catalog.AlreadyExists):
                await catalog.add_university(db, university, university.upper())
            _, tokens[university] = await catalog.issue_token(
                db, catalog.PrincipalKind.UNIVERSITY, university
            )
        for course_id in COURSES:
            with contextlib.suppress(catalog.AlreadyExists):
                await catalog.add_course(
                    db,
                    Course(course_id, "swayam", course_id, Decimal("5.5"), 90,
                           CreditRecommendation.APPROVED),
                )  # fmt: skip
    finally:
        await db.close()
    return tokens


async def test_sigkill_during_1000_conflicting_redemptions_spends_each_credit_at_most_once(
    kafka_bootstrap: str, database_url: str, topics: Any
) -> None:
    tokens = await _setup(database_url)
    learners = [f"{937000000000 + n}" for n in range(LEARNERS)]
    await produce(
        kafka_bootstrap,
        topics.completions,
        [completion(learner, f"{learner}-{c}", course_id=c) for learner in learners
         for c in COURSES]
        + [consent(learner, u) for learner in learners for u in UNIVERSITIES],
    )  # fmt: skip
    port = free_port()
    env = {
        **os.environ,
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "LEDGER_CONSUMER_GROUP": f"ledger-{topics.completions}",
        "LEDGER_METRICS_PORT": "0",
        "LEDGER_GRPC_PORT": str(port),
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "LEDGER_BATCH_WAIT_MS": "20",
        "LOG_LEVEL": "WARNING",
    }
    db = await asyncpg.connect(database_url)
    process = start_ledger(env)
    kills = 0
    try:
        expected = LEARNERS * (len(COURSES) + len(UNIVERSITIES))

        async def credited() -> bool:
            count = await db.fetchval(
                "SELECT count(*) FROM credit_log WHERE learner_id = ANY($1::text[])", learners
            )
            return bool(count == expected)

        await eventually(credited, timeout=60, what="every learner credited and consenting")
        rows = await db.fetch(
            "SELECT learner_id, sequence FROM credit_log "
            "WHERE learner_id = ANY($1::text[]) AND kind = 'credit_awarded'",
            learners,
        )
        credentials: dict[str, list[int]] = {}
        for row in rows:
            credentials.setdefault(row["learner_id"], []).append(row["sequence"])

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
            stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
            for university in UNIVERSITIES:
                await stub.CreateProgramme(
                    R.CreateProgrammeRequest(
                        programme=R.Programme(
                            programme_id=f"{university}-crash",
                            university_id=university,
                            title="crash test",
                            level=common_pb2.NCRF_LEVEL_6,
                            total_credits=160,
                        )
                    ),
                    metadata=(("authorization", f"Bearer {tokens[university]}"),),
                )
            # Every credential is wanted by several universities: the conflicts are real.
            rng = random.Random(1414)
            asks = []
            for n in range(REDEMPTIONS):
                university = UNIVERSITIES[n % len(UNIVERSITIES)]
                learner = rng.choice(learners)
                asks.append(
                    (
                        university,
                        R.RedeemCreditsRequest(
                            redemption_id=f"{university}-crash-{n}",
                            learner_id=learner,
                            programme_id=f"{university}-crash",
                            credential_sequences=rng.sample(
                                credentials[learner], rng.randint(1, 3)
                            ),
                            allow_partial=rng.random() < 0.5,
                        ),
                    )
                )
            acknowledged: list[str] = []
            unavailable = Counter[str]()
            milestones = [
                asyncio.Event() for _ in range(KILLS)
            ]  # set when enough were acknowledged to kill the ledger once more
            thresholds = [REDEMPTIONS * (k + 1) // (KILLS + 2) for k in range(KILLS)]
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def send(university: str, ask: R.RedeemCreditsRequest) -> None:
                metadata = (("authorization", f"Bearer {tokens[university]}"),)
                async with gate:
                    while True:  # a registrar retries with the same redemption id
                        try:
                            await stub.RedeemCredits(ask, metadata=metadata, timeout=20)
                            break
                        except grpc.aio.AioRpcError as error:
                            if error.code() not in (
                                grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                            ):
                                raise
                            unavailable[ask.redemption_id] += 1
                            await asyncio.sleep(0.2)  # a client's retry pause, not a sync
                acknowledged.append(ask.redemption_id)
                for threshold, milestone in zip(thresholds, milestones, strict=True):
                    if len(acknowledged) >= threshold:
                        milestone.set()

            async def killer() -> None:
                nonlocal process, kills
                for milestone in milestones:
                    await milestone.wait()
                    process.send_signal(signal.SIGKILL)
                    await asyncio.to_thread(process.wait, 10)
                    kills += 1
                    print(f"kill {kills}: after {len(acknowledged)} acknowledged")
                    process = start_ledger(env)

            await asyncio.gather(killer(), *(send(u, a) for u, a in asks))

        async def all_decided() -> bool:
            count = await db.fetchval(
                "SELECT count(*) FROM credit_log WHERE learner_id = ANY($1::text[]) "
                "AND kind IN ('credits_redeemed', 'redemption_refused')",
                learners,
            )
            return bool(count >= len(acknowledged))

        await eventually(all_decided, timeout=120, what="every acknowledged redemption decided")
        decided = await db.fetch(
            "SELECT learner_id, sequence, kind, payload FROM credit_log "
            "WHERE learner_id = ANY($1::text[]) "
            "AND kind IN ('credits_redeemed', 'redemption_refused')",
            learners,
        )
        table = await db.fetch(
            "SELECT learner_id, credential_sequence, university_id FROM redeemed_credentials "
            "WHERE learner_id = ANY($1::text[])",
            learners,
        )
        rejected = await db.fetchval(
            "SELECT count(*) FROM rejections WHERE learner_id = ANY($1::text[])", learners
        )
        chains_ok = all(
            [(await verify_ledger(db, learner_id=learner)).first_break is None
             for learner in learners]
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        await db.close()

    decided_ids: Counter[str] = Counter()
    redeemed: Counter[tuple[str, int]] = Counter()
    outcomes: Counter[str] = Counter()
    for row in decided:
        payload = json.loads(row["payload"])
        decided_ids[payload["redemption_id"]] += 1
        for line in payload["lines"]:
            outcomes[line["outcome"]] += 1
            if line["outcome"] == "redeemed":
                redeemed[(row["learner_id"], line["sequence"])] += 1
    winners = Counter(r["university_id"] for r in table)
    total_credentials = sum(len(v) for v in credentials.values())
    print(
        f"redemption crash run: {len(asks)} sent, {len(acknowledged)} acknowledged "
        f"({sum(unavailable.values())} UNAVAILABLE answers retried for {len(unavailable)} ids), "
        f"{kills} SIGKILLs, {len(decided)} decided ({len(decided_ids)} distinct ids, "
        f"max {max(decided_ids.values())} per id), {rejected} rejected; "
        f"{len(redeemed)} of {total_credentials} credentials redeemed, max "
        f"{max(redeemed.values())} per credential; by university {dict(sorted(winners.items()))}"
        f"; outcomes {dict(sorted(outcomes.items()))}"
    )
    assert kills == KILLS
    assert sorted(acknowledged) == sorted(a.redemption_id for _, a in asks)
    # Every acknowledged redemption decided exactly once ...
    assert decided_ids == Counter(acknowledged)
    assert rejected == 0
    # ... and every credit redeemed at most once, the table agreeing with the log.
    assert max(redeemed.values()) == 1
    assert {(r["learner_id"], r["credential_sequence"]) for r in table} == set(redeemed)
    assert outcomes["already_redeemed"] > 0  # the conflicts were real
    assert len(winners) >= 2  # and more than one university won some
    assert chains_ok
