"""The ledger's appender without Kafka or PostgreSQL: which records of a batch are still to be
decided, which are rejected before deciding, how a batch is decided in order (each request sees
the entries of those before it) and which offsets are stored after it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from learnerledger.domain.catalog import Course
from learnerledger.domain.credit_rules import CreditRules, PriorEntry, completion_digest
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import LedgerRequest
from learnerledger.domain.hash_chain import ChainHead, head_of, verify_chain
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import (
    BatchFacts,
    BatchOutcome,
    SourceRecord,
    decide_screened,
    offsets_after,
    screen,
    undecided,
)
from tests.support.domain import LEARNER, NOW, chain, completion, course, revocation

TOPIC = "completions.v1"
OTHER = "210987654321"


def record(offset: int, value: bytes | None, *, partition: int = 0) -> SourceRecord:
    return SourceRecord(TOPIC, partition, offset, LEARNER.encode(), value)


def records(*requests: LedgerRequest, partition: int = 0) -> list[SourceRecord]:
    return [
        record(offset, encode_completion_event(r), partition=partition)
        for offset, r in enumerate(requests)
    ]


def facts(*courses: Course, heads: dict[str, ChainHead] | None = None) -> BatchFacts:
    """What ``BatchFacts.load`` would find in a ledger that holds ``heads`` and ``courses``."""
    return BatchFacts(
        heads=dict(heads or {}),
        same_event={},
        courses={c.course_id: c for c in courses},
        completions={},
        universities=set(),
        consents=set(),
        uncredited={},
        credit_holders={},
    )


def decided(batch: list[SourceRecord], known: BatchFacts) -> BatchOutcome:
    outcome, decoded = screen(batch, now=NOW)
    assert outcome.rejected == []
    return decide_screened(decoded, known, rules=CreditRules(), now=NOW)


# --------------------------------------------------------------------------------------------
# Offsets


def test_records_below_the_stored_offset_of_their_partition_were_decided_before() -> None:
    batch = [record(4, b"a"), record(5, b"b"), record(9, b"c", partition=1)]
    batch.append(record(0, b"d", partition=2))
    fresh = undecided(batch, {0: 5, 1: 9})
    assert [(r.partition, r.offset) for r in fresh] == [(0, 5), (1, 9), (2, 0)]
    assert undecided(batch, {0: 6, 1: 10, 2: 1}) == []


def test_the_offset_stored_per_partition_is_one_past_its_highest_record() -> None:
    batch = [record(7, b"a"), record(3, b"b"), record(2, b"c", partition=2)]
    assert offsets_after(batch) == {0: 8, 2: 3}


# --------------------------------------------------------------------------------------------
# Screening: decode and field rules, before any fact is looked up


def test_undecodable_and_invalid_records_are_rejected_with_their_reason_and_bytes() -> None:
    bad_learner = completion("c-2", learner_id="12345")
    batch = [
        record(0, b"\xff\x00garbage"),
        record(1, None),
        record(2, encode_completion_event(completion("c-1"))),
        record(3, encode_completion_event(bad_learner)),
    ]
    outcome, decoded = screen(batch, now=NOW)

    assert [(r.source_offset, r.reason) for r in outcome.rejected] == [
        (0, "not_protobuf"),
        (1, "empty_value"),
        (3, "invalid_request"),
    ]
    garbage, empty, invalid = outcome.rejected
    assert garbage.original_value == b"\xff\x00garbage"
    assert garbage.source_event_id is None  # nothing could be read from it
    assert empty.original_value == b""
    assert invalid.source_event_id == bad_learner.envelope.event_id
    assert invalid.completion_id == "c-2"
    assert "learner_id" in invalid.detail
    assert outcome.counts == {"rejected:not_protobuf": 1, "rejected:empty_value": 1,
                              "rejected:invalid_request": 1}  # fmt: skip
    assert [(r.offset, request.envelope.event_id) for r, request in decoded] == [
        (2, completion("c-1").envelope.event_id)
    ]


def test_a_completion_from_beyond_the_clock_skew_is_invalid() -> None:
    future = completion("c-1", completed_at=NOW + timedelta(hours=1))
    outcome, decoded = screen(records(future), now=NOW, clock_skew=timedelta(minutes=5))
    assert [r.reason for r in outcome.rejected] == ["invalid_request"]
    assert decoded == []
    outcome, decoded = screen(records(future), now=NOW, clock_skew=timedelta(hours=2))
    assert outcome.rejected == []
    assert len(decoded) == 1


# --------------------------------------------------------------------------------------------
# Deciding a batch in order


def test_entries_of_one_batch_chain_onto_each_other_and_carry_their_source() -> None:
    second = dataclasses.replace(course(), course_id="db-201")
    batch = records(completion("c-1"), completion("c-2", course_id="db-201"), partition=2)
    outcome = decided(batch, facts(course(), second))

    assert [(e.sequence, e.kind) for e in outcome.appended] == [
        (1, EntryKind.CREDIT_AWARDED),
        (2, EntryKind.CREDIT_AWARDED),
    ]
    assert outcome.appended[1].prev_hash == outcome.appended[0].entry_hash
    assert verify_chain(outcome.appended) is None
    assert [(e.source_partition, e.source_offset) for e in outcome.appended] == [(2, 0), (2, 1)]
    assert outcome.counts == {"credit_awarded": 2}


def test_a_batch_continues_the_chain_the_ledger_holds() -> None:
    held = chain(3)
    outcome = decided(
        records(completion("c-new")), facts(course(), heads={LEARNER: head_of(held[-1])})
    )
    (entry,) = outcome.appended
    assert entry.sequence == 4
    assert entry.prev_hash == held[-1].entry_hash
    assert verify_chain([*held, entry]) is None


def test_learners_chains_are_independent_within_a_batch() -> None:
    batch = records(completion("c-1"), completion("c-2", learner_id=OTHER))
    outcome = decided(batch, facts(course()))
    assert [(e.learner_id, e.sequence) for e in outcome.appended] == [(LEARNER, 1), (OTHER, 1)]


def test_the_same_event_twice_in_a_batch_appends_once() -> None:
    outcome = decided(records(completion("c-1"), completion("c-1")), facts(course()))
    assert len(outcome.appended) == 1
    assert outcome.already_recorded == 1
    assert outcome.counts == {"credit_awarded": 1, "already_recorded": 1}


def test_an_event_the_ledger_already_holds_is_a_no_op_or_a_conflict() -> None:
    earlier = completion("c-1")
    same = PriorEntry(
        7, EntryKind.CREDIT_AWARDED, {"completion_digest": completion_digest(earlier)}
    )
    known = facts(course())
    known.same_event[earlier.envelope.event_id] = same
    retry = decided(records(earlier), known)
    assert retry.appended == []
    assert retry.rejected == []
    assert retry.already_recorded == 1

    changed = dataclasses.replace(same, payload={"completion_digest": "another statement"})
    known.same_event[earlier.envelope.event_id] = changed
    conflict = decided(records(earlier), known)
    assert conflict.appended == []
    assert [r.reason for r in conflict.rejected] == ["completion_conflict"]


def test_a_revocation_after_its_completion_in_the_same_batch_revokes_it() -> None:
    outcome = decided(records(completion("c-1"), revocation("c-1")), facts(course()))
    credit, revoked = outcome.appended
    assert credit.kind is EntryKind.CREDIT_AWARDED
    assert revoked.kind is EntryKind.CREDIT_REVOKED
    assert revoked.payload["revoked_sequence"] == credit.sequence
    assert outcome.rejected == []


def test_a_revocation_before_its_completion_is_rejected_and_the_batch_goes_on() -> None:
    outcome = decided(records(revocation("c-1"), completion("c-1")), facts(course()))
    assert [r.reason for r in outcome.rejected] == ["revocation_target_not_found"]
    assert outcome.rejected[0].source_offset == 0
    assert [e.kind for e in outcome.appended] == [EntryKind.CREDIT_AWARDED]
    assert outcome.appended[0].sequence == 1  # the rejection took no place in the chain


def test_an_unknown_course_is_rejected_with_the_request_named() -> None:
    outcome = decided(records(completion("c-1", course_id="nope-1")), facts(course()))
    assert outcome.appended == []
    (rejection,) = outcome.rejected
    assert rejection.reason == "unknown_course"
    assert rejection.completion_id == "c-1"
    assert rejection.learner_id == LEARNER
    assert outcome.counts == {"rejected:unknown_course": 1}


def test_a_request_the_rules_raise_on_is_unprocessable_and_the_batch_goes_on() -> None:
    class Broken(CreditRules):
        def credits(self, hours):  # type: ignore[no-untyped-def]
            raise OverflowError("no credits for you")

    _, decoded = screen(records(completion("c-1")), now=NOW)
    broken = decide_screened(decoded, facts(course()), rules=Broken(), now=NOW)
    fine = decide_screened(decoded, facts(course()), rules=CreditRules(), now=NOW)
    assert [r.reason for r in broken.rejected] == ["unprocessable"]
    assert "OverflowError: no credits for you" in broken.rejected[0].detail
    assert broken.appended == []
    assert [e.kind for e in fine.appended] == [EntryKind.CREDIT_AWARDED]
