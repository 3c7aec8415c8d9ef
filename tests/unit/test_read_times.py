"""Both times in reads: ``as_of`` (what the learner held then, by completion,
validity, revocation and redemption times) and ``known_at`` (what the ledger had recorded)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from learnerledger.domain.catalog import CreditRecommendation
from learnerledger.domain.credit_rules import Append, CreditRules, Facts, PriorEntry, decide
from learnerledger.domain.entries import Entry, EntryDraft, EntryKind
from learnerledger.domain.events import LedgerRequest, Result
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.transcript import CredentialStatus, read_at, view_at
from tests.support.domain import LEARNER, completion, course, revocation

EARNED = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)  # completed in 2025 ...
RECORDED = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # ... recorded in 2026
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
REDEEMED = datetime(2026, 3, 1, tzinfo=UTC)
REVOKED = datetime(2026, 4, 1, tzinfo=UTC)


def _append(entries: list[Entry], request: LedgerRequest, facts: Facts, now: datetime) -> None:
    decision = decide(request, facts, rules=CreditRules(), now=now)
    assert isinstance(decision, Append)
    entries.append(append_to_chain(head_of(entries[-1]) if entries else None, decision.draft))


def _redeem(entries: list[Entry], sequences: list[int], now: datetime) -> None:
    """A credits_redeemed entry as the ledger writes it (only the fields the fold reads)."""
    draft = EntryDraft(
        learner_id=LEARNER,
        kind=EntryKind.CREDITS_REDEEMED,
        payload={
            "redemption_id": "du-r1",
            "university_id": "du",
            "programme_id": "du-bsc",
            "lines": [
                {
                    "sequence": s,
                    "outcome": "redeemed",
                    "credits": 3.0,
                    "category": None,
                    "course_id": "ml-101",
                }
                for s in sequences
            ],
            "redeemed_credits": 3.0 * len(sequences),
        },
        rules_version=1,
        source_event_id=uuid.uuid4(),
        recorded_at=now,
    )
    entries.append(append_to_chain(head_of(entries[-1]), draft))


def _history() -> list[Entry]:
    """Two credits earned in 2025 (recorded Feb 2026), a fail and a pending-course completion,
    one credit redeemed in March, the other revoked in April."""
    entries: list[Entry] = []
    _append(entries, completion("c-1", completed_at=EARNED), Facts(course=course()), RECORDED)
    _append(
        entries,
        completion("c-2", course_id="db-1", completed_at=EARNED),
        Facts(course=course(course_id="db-1")),
        RECORDED,
    )
    _append(
        entries,
        completion("c-3", course_id="os-1", completed_at=EARNED, result=Result.FAIL),
        Facts(course=course(course_id="os-1")),
        RECORDED,
    )
    _append(
        entries,
        completion("c-4", course_id="ai-1", completed_at=RECORDED),
        Facts(course=course(course_id="ai-1", recommendation=CreditRecommendation.PENDING)),
        RECORDED,
    )
    _redeem(entries, [1], REDEEMED)
    second = PriorEntry(2, entries[1].kind, entries[1].payload)
    _append(entries, revocation("c-2"), Facts(revocation_target=second), REVOKED)
    return entries


def test_as_of_counts_credit_by_completion_time_not_by_recording_time() -> None:
    entries = _history()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    held = read_at(LEARNER, entries, as_of=NEW_YEAR, known_at=now)
    view = view_at(held, NEW_YEAR)
    assert [(c.completion_id, s) for c, s in view.credentials] == [
        ("c-1", CredentialStatus.ACTIVE),
        ("c-2", CredentialStatus.ACTIVE),  # revoked only in April
    ]
    assert view.active_credits == Decimal(6)
    assert view.redeemed_credits == 0  # redeemed only in March
    assert held.completions_without_credit == 1  # the fail; c-4 was completed in 2026
    assert [c.completion_id for c in held.without_credit.values()] == ["c-3"]
    # Nothing later leaks into the credential fields shown as of then.
    assert all(c.revoked_at is None and c.redeemed_at is None for c, _ in view.credentials)


def test_known_at_shows_only_what_was_recorded_by_then() -> None:
    entries = _history()
    unknown = read_at(LEARNER, entries, as_of=NEW_YEAR, known_at=NEW_YEAR)
    assert unknown.last_sequence == 0
    assert view_at(unknown, NEW_YEAR).credentials == ()
    assert unknown.completions_without_credit == 0


def test_redemption_is_in_effect_from_its_recording_in_both_times() -> None:
    entries = _history()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    between = REDEEMED + timedelta(days=1)
    # Known now, held just before the redemption: nothing redeemed yet.
    before = view_at(read_at(LEARNER, entries, as_of=REDEEMED - timedelta(seconds=1),
                             known_at=now), REDEEMED - timedelta(seconds=1))  # fmt: skip
    assert before.redeemed_credits == 0
    assert before.active_credits == Decimal(6)
    # Known and held after the redemption, before the revocation.
    after = view_at(read_at(LEARNER, entries, as_of=between, known_at=between), between)
    statuses = {c.completion_id: s for c, s in after.credentials}
    assert statuses == {"c-1": CredentialStatus.REDEEMED, "c-2": CredentialStatus.ACTIVE}
    assert after.redeemed_by_programme == {("du", "du-bsc"): Decimal(3)}
    assert after.last_sequence == 5
    # Known only up to before the redemption, read as of after it: the ledger did not know yet.
    unknown = view_at(
        read_at(LEARNER, entries, as_of=between, known_at=REDEEMED - timedelta(seconds=1)),
        between,
    )
    assert unknown.redeemed_credits == 0
    assert unknown.last_sequence == 4


def test_revocation_counts_from_its_recording_and_now_equals_the_plain_fold() -> None:
    entries = _history()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    view = view_at(read_at(LEARNER, entries, as_of=now, known_at=now), now)
    statuses = {c.completion_id: s for c, s in view.credentials}
    assert statuses == {"c-1": CredentialStatus.REDEEMED, "c-2": CredentialStatus.REVOKED}
    assert view.revoked_credits == Decimal(3)
    held = read_at(LEARNER, entries, as_of=now, known_at=now)
    assert held.completions_without_credit == 2
    assert sorted(c.no_credit_reason for c in held.without_credit.values()) == [
        "course_not_approved",
        "result_fail",
    ]


def test_expiry_is_evaluated_at_as_of() -> None:
    entries = _history()
    later = EARNED.replace(year=EARNED.year + 7)  # the validity period is 7 years
    known = datetime(2026, 6, 1, tzinfo=UTC)
    view = view_at(read_at(LEARNER, entries, as_of=later, known_at=known), later)
    statuses = {c.completion_id: s for c, s in view.credentials}
    assert statuses == {"c-1": CredentialStatus.REDEEMED, "c-2": CredentialStatus.REVOKED}
    entries_without_revocation = entries[:4]
    view = view_at(read_at(LEARNER, entries_without_revocation, as_of=later, known_at=known), later)
    assert {s for _, s in view.credentials} == {CredentialStatus.EXPIRED}
