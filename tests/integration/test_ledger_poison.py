"""No record stops the ledger: one poison record among 1,000 good ones, per poison class.

Each record is produced straight to ``completions.v1`` (past the gateway: Kafka is a trust
boundary). The real ledger service runs in-process; afterwards every good record is decided
(an entry in the credit log), the poison is in ``rejections`` and on the dead-letter topic with
its reason, and the service is still running and decides a further good record.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

import learnerledger.ledger.appender as appender_module
from learnerledger.domain.credit_rules import CreditRules
from learnerledger.domain.events import LedgerRequest
from learnerledger.kafka.codec import encode_completion_event, encode_dead_letter
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres.pool import create_pool
from learnerledger.v1 import events_pb2
from learnerledger_devstack.stack import StackInfo
from tests.conftest import new_database
from tests.support.ledger import (
    completion,
    consent,
    eventually,
    produce,
    read_topic,
    revocation,
    running_ledger_task,
    seed_catalog,
)

pytestmark = pytest.mark.integration

GOOD_PER_CASE = 1000
POISON_LEARNER = "999999999999"
MAX_TIMESTAMP_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
MIN_TIMESTAMP_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
YEAR_2100 = 4102444800
YEAR_1500 = -14831769600
HUGE = 100_000

Edit = Callable[[events_pb2.CompletionEvent], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets the field at dotted ``path`` of the event to ``value``."""
    *parents, name = path.split(".")

    def edit(event: events_pb2.CompletionEvent) -> None:
        target: Any = event
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)

    return edit


def _evidence(url: str) -> Edit:
    def edit(event: events_pb2.CompletionEvent) -> None:
        event.completion_submitted.evidence_urls[:] = [url]

    return edit


def _both_learner_ids(value: str) -> Edit:
    def edit(event: events_pb2.CompletionEvent) -> None:
        event.envelope.learner_id = value
        event.completion_submitted.completion.learner_id = value

    return edit


def _edited(base: bytes, *edits: Edit) -> bytes:
    event = events_pb2.CompletionEvent.FromString(base)
    for edit in edits:
        edit(event)
    return event.SerializeToString()


def _completion(*edits: Edit) -> bytes:
    return _edited(encode_completion_event(completion(POISON_LEARNER, "poison")), *edits)


#: The completion the revocation poisons revoke: recorded first in each case, so that a
#: revocation reaches the credit rules and its outcome would be stored.
TARGET = completion(POISON_LEARNER, "target")


def _revocation(*edits: Edit) -> bytes:
    return _edited(encode_completion_event(revocation(POISON_LEARNER, "target")), *edits)


def _consent(*edits: Edit) -> bytes:
    return _edited(encode_completion_event(consent(POISON_LEARNER)), *edits)


C = "completion_submitted.completion"


@dataclass(frozen=True)
class Poison:
    name: str
    value: bytes
    reason: str
    #: A text the rejection's detail must contain (the field it names).
    detail: str


POISONS = [
    # NUL in each string field of a completion ...
    Poison(
        "nul-completion-id",
        _completion(_set(f"{C}.completion_id", "poi\x00son")),
        "invalid_request",
        "completion.completion_id",
    ),
    Poison(
        "nul-course-id",
        _completion(_set(f"{C}.course_id", "ml-\x00101")),
        "invalid_request",
        "completion.course_id",
    ),
    Poison(
        "nul-learner-id",
        _completion(_both_learner_ids("99999999999\x00")),
        "invalid_request",
        "completion.learner_id",
    ),
    Poison(
        "nul-issuer-id",
        _completion(_set("envelope.issuer_id", "sway\x00am")),
        "invalid_request",
        "envelope.issuer_id",
    ),
    Poison(
        "nul-grade",
        _completion(_set(f"{C}.grade", "A\x00")),
        "invalid_request",
        "completion.grade",
    ),
    Poison(
        "nul-evidence-url",
        _completion(_evidence("https://certs.example.org/\x00")),
        "invalid_request",
        "completion.evidence_url",
    ),
    Poison(
        "nul-event-id",
        _completion(_set("envelope.event_id", f"{uuid.uuid4()}\x00")),
        "invalid_event_id",
        "is not a UUID",
    ),
    # ... and of revocation and consent requests
    Poison(
        "nul-revocation-reason",
        _revocation(_set("revocation_requested.reason", "issued\x00in error")),
        "invalid_request",
        "reason",
    ),
    Poison(
        "nul-revocation-completion-id",
        _revocation(_set("revocation_requested.completion_id", "tar\x00get")),
        "invalid_request",
        "completion_id",
    ),
    Poison(
        "nul-consent-grant-university",
        _consent(_set("consent_grant_requested.university_id", "d\x00u")),
        "invalid_request",
        "university_id",
    ),
    Poison(
        "nul-consent-revoke-university",
        _consent(_set("consent_revoke_requested.university_id", "d\x00u")),
        "invalid_request",
        "university_id",
    ),
    Poison(
        "control-character-in-reason",
        _revocation(_set("revocation_requested.reason", "issued in error\x1b[2J")),
        "invalid_request",
        "reason",
    ),
    # out-of-range numbers and dates
    Poison(
        "score-1000-completed-in-2100",
        _completion(_set(f"{C}.score", 1000.0), _set(f"{C}.completed_at.seconds", YEAR_2100)),
        "invalid_request",
        "completion.score",
    ),
    Poison(
        "score-nan",
        _completion(_set(f"{C}.score", math.nan)),
        "invalid_request",
        "completion.score",
    ),
    Poison(
        "score-negative",
        _completion(_set(f"{C}.score", -1.0)),
        "invalid_request",
        "completion.score",
    ),
    Poison(
        "completed-in-year-9999",
        _completion(_set(f"{C}.completed_at.seconds", MAX_TIMESTAMP_SECONDS)),
        "invalid_field",  # outside the instants the codec reads (codec.from_timestamp)
        "completion.completed_at must be between",
    ),
    Poison(
        "completed-in-year-1500",
        _completion(_set(f"{C}.completed_at.seconds", YEAR_1500)),
        "invalid_request",
        "completion.completed_at",
    ),
    Poison(
        "completed-after-year-9999",
        _completion(_set(f"{C}.completed_at.seconds", MAX_TIMESTAMP_SECONDS + 86_400)),
        "invalid_field",
        "completion.completed_at must be between",
    ),
    Poison(
        "completed-before-year-1",
        _completion(_set(f"{C}.completed_at.seconds", MIN_TIMESTAMP_SECONDS - 86_400)),
        "invalid_field",
        "completion.completed_at must be between",
    ),
    Poison(
        "occurred-after-year-9999",
        _revocation(_set("envelope.occurred_at.seconds", MAX_TIMESTAMP_SECONDS + 86_400)),
        "invalid_field",
        "envelope.occurred_at must be between",
    ),
    Poison(
        "schema-version-99",
        _completion(_set("envelope.schema_version", 99)),
        "unsupported_schema_version",
        "schema_version 99",
    ),
    # oversized strings
    Poison(
        "oversized-completion-id",
        _completion(_set(f"{C}.completion_id", "c" * HUGE)),
        "invalid_request",
        "completion.completion_id",
    ),
    Poison(
        "oversized-course-id",
        _completion(_set(f"{C}.course_id", "c" * HUGE)),
        "invalid_request",
        "completion.course_id",
    ),
    Poison(
        "oversized-grade",
        _completion(_set(f"{C}.grade", "A" * HUGE)),
        "invalid_request",
        "completion.grade",
    ),
    Poison(
        "oversized-evidence-url",
        _completion(_evidence("https://certs.example.org/" + "a" * HUGE)),
        "invalid_request",
        "completion.evidence_url",
    ),
    Poison(
        "oversized-revocation-reason",
        _revocation(_set("revocation_requested.reason", "r" * HUGE)),
        "invalid_request",
        "reason",
    ),
    Poison(
        "oversized-university-id",
        _consent(_set("consent_grant_requested.university_id", "u" * HUGE)),
        "invalid_request",
        "university_id",
    ),
    # not a CompletionEvent at all
    Poison(
        "wrong-message-ledger-entry",
        events_pb2.LedgerEntry(
            position=7, learner_id=POISON_LEARNER, sequence=1, canonical_json=b"{}"
        ).SerializeToString(),
        "not_protobuf",
        "cannot parse CompletionEvent",
    ),
    Poison(
        "wrong-message-dead-letter",
        encode_dead_letter(
            original_key=b"k",
            original_value=b"v",
            reason="r",
            detail="d",
            source_topic="t",
            source_partition=0,
            source_offset=0,
        ),
        "not_protobuf",
        "cannot parse CompletionEvent",
    ),
    Poison("garbage-bytes", b"\xff\x00not a protobuf\x00", "not_protobuf", "cannot parse"),
    Poison("empty-value", b"", "empty_value", "no value"),
]


@pytest.fixture
async def case_database_url(stack: StackInfo, stack_logins: dict[str, str]) -> AsyncIterator[str]:
    """A database of the case's own: each case's relay publishes the log from its start to the
    case's new topic, so a shared one would republish every earlier case's 1,000 entries."""
    async with new_database(stack, stack_logins) as db:
        yield db.url


@pytest.mark.parametrize("poison", POISONS, ids=[p.name for p in POISONS])
async def test_one_poison_record_among_good_ones_is_rejected_and_the_ledger_moves_on(
    kafka_bootstrap: str, case_database_url: str, topics: Any, poison: Poison
) -> None:
    database_url = case_database_url
    await seed_catalog(database_url)
    case = POISONS.index(poison)
    prefix = f"p{case:02d}"

    def learner(i: int) -> str:
        return f"{100 + case:03d}{i:09d}"

    good = [completion(learner(i), f"{prefix}-{i}") for i in range(GOOD_PER_CASE)]
    half = GOOD_PER_CASE // 2
    await produce(
        kafka_bootstrap,
        topics.completions,
        [TARGET, *good[:half], (POISON_LEARNER.encode(), poison.value), *good[half:]],
    )
    connection = await asyncpg.connect(database_url)
    try:

        async def decided(pattern: str) -> int:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM credit_log WHERE completion_id LIKE $1", pattern
                )
            )

        async def rejected() -> list[asyncpg.Record]:
            return list(
                await connection.fetch(
                    "SELECT reason, detail, original_value FROM rejections WHERE source_topic = $1",
                    topics.completions,
                )
            )

        async with running_ledger_task(kafka_bootstrap, database_url, topics) as (_, ledger):

            async def settled() -> bool:
                return await decided(f"{prefix}-%") == GOOD_PER_CASE and len(await rejected()) == 1

            await eventually(settled, timeout=120, what="every good record decided")
            [row] = await rejected()
            assert (row["reason"], bytes(row["original_value"])) == (poison.reason, poison.value)
            assert poison.detail in row["detail"]
            assert "\x00" not in row["detail"]

            # The DLQ is at least once (a batch retried after a rebalance sends again): every
            # dead letter is this poison.
            letters = await read_topic(kafka_bootstrap, topics.completions_dlq, 1)
            dead = [events_pb2.DeadLetter.FromString(r.value) for r in letters]
            assert {(d.reason, d.original_value, d.source_topic) for d in dead} == {
                (poison.reason, poison.value, topics.completions)
            }

            # Still running, and still deciding.
            assert not ledger.done()
            await produce(
                kafka_bootstrap, topics.completions, [completion(learner(0), f"{prefix}-after")]
            )

            async def after_decided() -> bool:
                return await decided(f"{prefix}-after") == 1

            await eventually(after_decided, what="a good record after the poison decided")
            assert not ledger.done()
    finally:
        await connection.close()


# ------------------------------------------------------------------------------------------
# The safety net behind validation: a record PostgreSQL refuses for its DATA is isolated.


async def test_a_record_postgres_refuses_is_rejected_alone_and_the_rest_appended(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the field rules bypassed (as if a rule were missing), the batch reaches SQL: the
    revocation whose reason holds a NUL (jsonb refuses it) and the completion whose course id
    holds one (text refuses it) are rejected as ``unstorable``, every other record of the batch
    is appended, and the offsets move past all of them."""
    await seed_catalog(database_url)
    monkeypatch.setattr(appender_module, "validate_request", lambda *_, **__: [])
    target = completion("888888888801", "net-1")
    nul_reason = dataclasses.replace(
        revocation("888888888801", "net-1"), reason="issued\x00in error"
    )
    nul_course = dataclasses.replace(
        completion("888888888802", "net\x00-2"), course_id="ml-\x00101"
    )
    after = completion("888888888803", "net-3")
    requests: list[LedgerRequest] = [target, nul_reason, nul_course, after]
    records = [
        SourceRecord("net", 0, n, r.envelope.learner_id.encode(), encode_completion_event(r))
        for n, r in enumerate(requests)
    ]
    pool = await create_pool(database_url, max_size=1)
    try:
        outcome = await CreditLogAppender(pool, group_id="safety-net").process(records)
    finally:
        await pool.close()
    assert sorted(e.completion_id or "" for e in outcome.appended) == ["net-1", "net-3"]
    assert [(r.source_offset, r.reason) for r in outcome.rejected] == [
        (1, "unstorable"),
        (2, "unstorable"),
    ]
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT source_offset, reason, detail, completion_id, original_value "
            "FROM rejections WHERE source_topic = 'net' ORDER BY source_offset"
        )
        assert [(r["source_offset"], r["reason"]) for r in rows] == [
            (1, "unstorable"),
            (2, "unstorable"),
        ]
        assert all("SQLSTATE 22" in r["detail"] for r in rows)
        # The text column holds a printable rendering; the bytes are kept whole.
        assert rows[1]["completion_id"] == "net\\x00-2"
        assert bytes(rows[1]["original_value"]) == records[2].value
        stored = await connection.fetchval(
            "SELECT next_offset FROM consumer_offsets WHERE group_id = 'safety-net'"
        )
        assert stored == 4
    finally:
        await connection.close()


async def test_a_record_the_rules_cannot_decide_is_rejected_alone(database_url: str) -> None:
    """A bound no rule foresaw (here a validity that runs past year 9999 for a recent
    completion) rejects that record as ``unprocessable``; the others are appended."""
    await seed_catalog(database_url)
    old = completion("777777777701", "rule-1", completed_at=datetime(2001, 1, 1, tzinfo=UTC))
    recent = completion("777777777702", "rule-2")
    records = [
        SourceRecord("rules", 0, n, r.envelope.learner_id.encode(), encode_completion_event(r))
        for n, r in enumerate([old, recent])
    ]
    rules = CreditRules(validity_years=9999 - 2001)
    pool = await create_pool(database_url, max_size=1)
    try:
        outcome = await CreditLogAppender(pool, group_id="rules", rules=rules).process(records)
    finally:
        await pool.close()
    assert [e.completion_id for e in outcome.appended] == ["rule-1"]
    assert [(r.source_offset, r.reason) for r in outcome.rejected] == [(1, "unprocessable")]
