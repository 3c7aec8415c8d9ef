"""Re-drive without Kafka or PostgreSQL: what ``ledgerctl replay rejected --dry-run`` would
decide for each selected rejection with today's facts, and what a re-drive sends.

(Which rejections are selected, the newest per request, is one SQL query: see
tests/integration/test_redrive.py.)"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from learnerledger.domain.credit_rules import CreditRules, Facts, PriorEntry, completion_digest
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import (
    CreditRedecisionRequested,
    Envelope,
    LedgerRequest,
    redecision_event_id,
)
from learnerledger.kafka.codec import UndecodableEvent, encode_completion_event
from learnerledger.kafka.producer import DurableProducer
from learnerledger.ledger.redrive import (
    REDRIVEN_FROM_HEADER,
    StoredRejection,
    decode_rejections,
    plan_decoded,
    redrive,
)
from tests.support.domain import LEARNER, NOW, completion, course, revocation


def stored(rejection_id: int, value: bytes, *, reason: str = "unknown_course") -> StoredRejection:
    return StoredRejection(
        rejection_id=rejection_id,
        source_topic="completions.v1",
        source_partition=rejection_id % 3,
        source_offset=100 + rejection_id,
        source_event_id=None,
        issuer_id="swayam",
        learner_id=LEARNER,
        completion_id=None,
        reason=reason,
        detail="",
        original_key=LEARNER.encode(),
        original_value=value,
        rejected_at=datetime(2026, 10, 1, tzinfo=UTC),
    )


def of(request: LedgerRequest, rejection_id: int) -> StoredRejection:
    return stored(rejection_id, encode_completion_event(request))


def outcomes(rejections: list[StoredRejection], facts_for: Any) -> list[tuple[int, str, str]]:
    planned = plan_decoded(decode_rejections(rejections), facts_for, rules=CreditRules(), now=NOW)
    assert [p.rejection for p in planned] == rejections  # one plan per rejection, in order
    return [(p.rejection.rejection_id, p.outcome, p.detail) for p in planned]


def test_each_rejection_is_decoded_again_in_order_and_garbage_stays_garbage() -> None:
    rejections = [stored(1, b"\xff\x00garbage"), of(completion("c-1"), 2), stored(3, b"")]
    decoded = decode_rejections(rejections)
    assert [r for r, _ in decoded] == rejections
    first, second, third = (request for _, request in decoded)
    assert isinstance(first, UndecodableEvent)
    assert first.reason == "not_protobuf"
    assert not isinstance(second, UndecodableEvent)
    assert second.envelope.event_id == completion("c-1").envelope.event_id
    assert isinstance(third, UndecodableEvent)
    assert third.reason == "empty_value"


def test_a_course_added_since_turns_the_rejection_into_a_credit() -> None:
    late = completion("c-1", course_id="late-101")
    now_known = Facts(course=course(course_id="late-101"))
    assert outcomes([of(late, 1)], lambda _: now_known) == [(1, "credit_awarded", "credits 3.0")]


def test_a_cause_not_yet_fixed_is_rejected_again_with_its_reason() -> None:
    late = completion("c-1", course_id="late-101")
    [(_, outcome, detail)] = outcomes([of(late, 1)], lambda _: Facts())
    assert outcome == "rejected:unknown_course"
    assert "late-101" in detail


def test_a_request_that_meanwhile_became_an_entry_is_already_recorded() -> None:
    request = completion("c-1")
    entry = PriorEntry(
        12, EntryKind.CREDIT_AWARDED, {"completion_digest": completion_digest(request)}
    )
    facts = Facts(same_event=entry, course=course())
    assert outcomes([of(request, 4)], lambda _: facts) == [(4, "already_recorded", "sequence 12")]


def test_undecodable_rejections_are_planned_as_such_between_the_others() -> None:
    known = Facts(course=course())
    planned = outcomes(
        [of(completion("c-1"), 1), stored(2, b"\xff\x00garbage"), of(completion("c-3"), 3)],
        lambda _: known,
    )
    assert [(rid, outcome) for rid, outcome, _ in planned] == [
        (1, "credit_awarded"),
        (2, "undecodable:not_protobuf"),
        (3, "credit_awarded"),
    ]
    assert "CompletionEvent" in planned[1][2]


def test_each_request_is_decided_alone_with_its_own_facts() -> None:
    """Nothing is appended while planning: two requests of one learner are not chained, and
    each gets the facts of its own request."""
    asked: list[uuid.UUID] = []

    def facts_for(request: LedgerRequest) -> Facts:
        asked.append(request.envelope.event_id)
        return Facts(course=course()) if request.envelope.issuer_id == "swayam" else Facts()

    rejections = [
        of(completion("c-1"), 1),
        of(completion("c-2", issuer_id="nptel"), 2),
        of(revocation("c-1"), 3),
    ]
    planned = outcomes(rejections, facts_for)
    assert [outcome for _, outcome, _ in planned] == [
        "credit_awarded",
        "rejected:unknown_course",
        "rejected:revocation_target_not_found",  # the credit above was only planned
    ]
    assert asked == [
        completion("c-1").envelope.event_id,
        completion("c-2", issuer_id="nptel").envelope.event_id,
        revocation("c-1").envelope.event_id,
    ]


def test_a_redecision_with_nothing_left_to_credit_is_planned_as_such() -> None:
    approval = uuid.uuid4()
    envelope = Envelope(redecision_event_id(approval, LEARNER), 1, NOW, "", LEARNER)
    request = CreditRedecisionRequested(envelope, "ml-101", approval)
    planned = outcomes([of(request, 1)], lambda _: Facts(course=course()))
    assert planned == [(1, "redecided", "appends nothing")]


class RecordingProducer:
    """Records what a re-drive sends; every send is acknowledged when awaited."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, list(headers or [])))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(ack.set_result, None)
        self.acks.append(ack)
        return ack


async def test_a_redrive_sends_the_original_bytes_with_their_origin_and_awaits_every_ack() -> None:
    producer = RecordingProducer()
    rejections = [of(completion("c-1"), 1), stored(2, b"\xff\x00garbage")]
    count = await redrive(cast(DurableProducer, producer), "completions.v1.t1", rejections)
    assert count == 2
    assert producer.sent == [
        (
            "completions.v1.t1",
            LEARNER.encode(),
            rejections[0].original_value,
            [(REDRIVEN_FROM_HEADER, b"completions.v1/1/101")],
        ),
        (
            "completions.v1.t1",
            LEARNER.encode(),
            b"\xff\x00garbage",
            [(REDRIVEN_FROM_HEADER, b"completions.v1/2/102")],
        ),
    ]
    assert all(ack.done() for ack in producer.acks)


async def test_redriving_nothing_sends_nothing() -> None:
    producer = RecordingProducer()
    assert await redrive(cast(DurableProducer, producer), "completions.v1", []) == 0
    assert producer.sent == []
