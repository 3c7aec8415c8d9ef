from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learnerledger.domain.catalog import CreditRecommendation
from learnerledger.domain.credit_rules import Append, CreditRules, Facts, PriorEntry, decide
from learnerledger.domain.events import LedgerRequest
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.transcript import (
    CredentialStatus,
    OutOfOrderEntry,
    TranscriptProjection,
    view_at,
)
from tests.support.domain import LEARNER, NOW, completion, course, log, revocation


def test_transcript_totals_by_level_and_issuer_and_revocation() -> None:
    awarded = log(
        (completion("c-1"), Facts(course=course(hours=90))),
        (completion("c-2", course_id="db-1"), Facts(course=course(hours=60, course_id="db-1"))),
        (completion("c-3"), Facts(course=course(recommendation=CreditRecommendation.PENDING))),
    )
    first = PriorEntry(1, awarded[0].kind, awarded[0].payload)
    revoked_entry = append_to_chain(
        head_of(awarded[-1]),
        _decided(revocation("c-1"), Facts(revocation_target=first), NOW + timedelta(days=5)),
    )
    state = TranscriptProjection.fold(LEARNER, [*awarded, revoked_entry])
    view = view_at(state, NOW + timedelta(days=10))
    assert state.last_sequence == 4
    assert state.completions_without_credit == 1
    assert view.active_credits == Decimal(2)
    assert view.revoked_credits == Decimal(3)
    assert view.active_by_level == {"5.5": Decimal(2)}
    assert view.active_by_issuer == {"swayam": Decimal(2)}
    statuses = {c.completion_id: s for c, s in view.credentials}
    assert statuses == {"c-1": CredentialStatus.REVOKED, "c-2": CredentialStatus.ACTIVE}


def test_as_of_before_revocation_shows_the_credit_active() -> None:
    entries = log((completion("c-1"), Facts(course=course())))
    first = PriorEntry(1, entries[0].kind, entries[0].payload)
    revoke_at = NOW + timedelta(days=30)
    entries.append(
        append_to_chain(
            head_of(entries[0]), _decided(revocation(), Facts(revocation_target=first), revoke_at)
        )
    )
    before = TranscriptProjection.fold(LEARNER, entries, until=revoke_at - timedelta(seconds=1))
    after = TranscriptProjection.fold(LEARNER, entries)
    assert view_at(before, revoke_at - timedelta(seconds=1)).active_credits == Decimal(3)
    assert view_at(after, revoke_at).active_credits == Decimal(0)


def test_credit_expires_seven_years_after_completion_without_any_write() -> None:
    completed = datetime(2019, 1, 10, tzinfo=UTC)
    state = TranscriptProjection.fold(
        LEARNER, log((completion(completed_at=completed), Facts(course=course())))
    )
    assert view_at(state, datetime(2026, 1, 9, tzinfo=UTC)).active_credits == Decimal(3)
    expired = view_at(state, datetime(2026, 1, 10, tzinfo=UTC))
    assert expired.active_credits == Decimal(0)
    assert expired.expired_credits == Decimal(3)


def test_replayed_entries_are_skipped_and_gaps_refused() -> None:
    entries = log(
        (completion("c-1"), Facts(course=course())), (completion("c-2"), Facts(course=course()))
    )
    state = TranscriptProjection.fold(LEARNER, entries)
    assert TranscriptProjection.apply(state, entries[0]) is state
    with pytest.raises(OutOfOrderEntry) as info:
        TranscriptProjection.apply(TranscriptProjection.initial(LEARNER), entries[1])
    assert (info.value.expected_sequence, info.value.got_sequence) == (1, 2)


def test_more_than_40_credits_in_365_days_is_flagged_not_refused() -> None:
    steps = [
        (
            completion(f"c-{i}", completed_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)),
            Facts(course=course(hours=300)),
        )
        for i in range(5)
    ]
    view = view_at(TranscriptProjection.fold(LEARNER, log(*steps)), NOW)
    assert view.active_credits == Decimal(50)
    assert view.exceeds_annual_limit


def _decided(request: LedgerRequest, facts: Facts, now: datetime):  # type: ignore[no-untyped-def]
    decision = decide(request, facts, rules=CreditRules(), now=now)
    assert isinstance(decision, Append)
    return decision.draft
