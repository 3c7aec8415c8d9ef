"""Redemption rules, pure: caps with worked examples, eligibility, all-or-nothing, the entry
the credit rules append, and the transcript fold over it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from learnerledger.domain.catalog import CourseCategory
from learnerledger.domain.credit_rules import (
    AlreadyRecorded,
    Append,
    CreditRules,
    Facts,
    PriorEntry,
    Rejected,
    RejectionReason,
    decide,
)
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import (
    Envelope,
    RedemptionRequested,
    redemption_event_id,
)
from learnerledger.domain.hash_chain import append_to_chain, head_of, verify_chain
from learnerledger.domain.redemption import (
    HeldCredential,
    InvalidProgramme,
    Outcome,
    Programme,
    RedemptionRules,
    assess,
    request_digest,
)
from learnerledger.domain.transcript import (
    CredentialStatus,
    RedemptionChange,
    TranscriptProjection,
    redemption_change,
    view_at,
)
from tests.support.domain import LEARNER, NOW, chain, revocation

UNIVERSITY = "du"
RULES = RedemptionRules()
COMPLETED = datetime(2026, 1, 10, tzinfo=UTC)


def programme(total: str = "160", level: str = "6", validity_years: int | None = None) -> Programme:
    return Programme(
        "bsc-cs",
        UNIVERSITY,
        "B.Sc. Computer Science",
        Decimal(level),
        Decimal(total),
        validity_years,
    )


def held(
    sequence: int,
    credits: str = "1",
    category: CourseCategory = CourseCategory.SWAYAM_MOOC,
    *,
    level: str = "5.5",
    completed_at: datetime = COMPLETED,
    revoked: bool = False,
    redeemed: bool = False,
) -> HeldCredential:
    return HeldCredential(
        sequence=sequence,
        course_id=f"course-{sequence}",
        category=category,
        level=Decimal(level),
        credits=Decimal(credits),
        completed_at=completed_at,
        valid_until=completed_at.replace(year=completed_at.year + 7),
        revoked=revoked,
        redeemed=redeemed,
    )


def run(
    credentials: list[HeldCredential],
    asked: list[int] | None = None,
    *,
    prog: Programme | None = None,
    already: dict[CourseCategory, Decimal] | None = None,
    consent: bool = True,
    allow_partial: bool = True,
    instant: datetime = NOW,
) -> list[Outcome]:
    result = assess(
        programme=prog or programme(),
        held={c.sequence: c for c in credentials},
        asked=asked if asked is not None else [c.sequence for c in credentials],
        already_redeemed=already or {},
        consent=consent,
        allow_partial=allow_partial,
        instant=instant,
        rules=RULES,
    )
    return [line.outcome for line in result.lines]


def test_160_credit_programme_takes_64_swayam_credits_and_refuses_the_65th() -> None:
    # 40 % of 160 = 64: sixty-four 1-credit SWAYAM courses fit, the sixty-fifth does not.
    credentials = [held(n) for n in range(1, 66)]
    outcomes = run(credentials)
    assert outcomes[:64] == [Outcome.REDEEMED] * 64
    assert outcomes[64] is Outcome.CAP_EXCEEDED


def test_the_cap_counts_what_was_redeemed_toward_the_programme_before() -> None:
    # 60 SWAYAM credits already redeemed toward the programme: 4 more fit, the 5th does not.
    outcomes = run([held(1, "4"), held(2, "1")], already={CourseCategory.SWAYAM_MOOC: Decimal(60)})
    assert outcomes == [Outcome.REDEEMED, Outcome.CAP_EXCEEDED]


def test_micro_credentials_capped_at_half_and_university_courses_at_the_total() -> None:
    micro = CourseCategory.MICRO_CREDENTIAL
    # 50 % of 160 = 80: twenty 4-credit micro-credentials fit, the 21st does not.
    outcomes = run([held(n, "4", micro) for n in range(1, 22)])
    assert outcomes == [Outcome.REDEEMED] * 20 + [Outcome.CAP_EXCEEDED]
    # University courses have no share cap, only the programme's total (a 20-credit programme).
    uni = CourseCategory.UNIVERSITY_COURSE
    small = programme(total="20")
    assert run([held(1, "12", uni), held(2, "8", uni), held(3, "0.5", uni)], prog=small) == [
        Outcome.REDEEMED,
        Outcome.REDEEMED,
        Outcome.CAP_EXCEEDED,
    ]
    # Caps are per category: a full SWAYAM share leaves room for micro-credentials.
    assert run(
        [held(1, "2", CourseCategory.SWAYAM_MOOC), held(2, "2", micro)],
        already={CourseCategory.SWAYAM_MOOC: Decimal(64)},
    ) == [Outcome.CAP_EXCEEDED, Outcome.REDEEMED]


def test_a_refused_credential_does_not_use_up_the_cap() -> None:
    # 63 already; a 2-credit course would pass 64 and is refused; a 1-credit one still fits.
    outcomes = run([held(1, "2"), held(2, "1")], already={CourseCategory.SWAYAM_MOOC: Decimal(63)})
    assert outcomes == [Outcome.CAP_EXCEEDED, Outcome.REDEEMED]


def test_each_refusal_reason() -> None:
    later = NOW + timedelta(days=1)
    credentials = [
        held(1, revoked=True),
        held(2, redeemed=True),
        held(3, completed_at=datetime(2018, 1, 1, tzinfo=UTC)),  # valid until 2025
        held(4, level="7"),  # above a level-6 programme
        held(5, level="4.5"),  # 4.5 is within 1.5 levels of 6: fits
        held(6, level="5", category=CourseCategory.SKILLING),
    ]
    outcomes = run(credentials, [1, 2, 3, 4, 5, 6, 99], instant=later)
    assert outcomes == [
        Outcome.REVOKED,
        Outcome.ALREADY_REDEEMED,
        Outcome.EXPIRED,
        Outcome.LEVEL_MISMATCH,
        Outcome.REDEEMED,
        Outcome.REDEEMED,
        Outcome.NOT_A_CREDENTIAL,
    ]
    # A level-7 programme does not take level 5 (more than 1.5 levels below).
    assert run([held(1, level="5")], prog=programme(level="7")) == [Outcome.LEVEL_MISMATCH]


def test_programme_shelf_life_stricter_than_seven_years() -> None:
    old = held(1, completed_at=NOW - timedelta(days=3 * 366))  # still within 7 years
    assert run([old]) == [Outcome.REDEEMED]
    assert run([old], prog=programme(validity_years=3)) == [Outcome.EXPIRED]


def test_no_consent_refuses_everything() -> None:
    assert run([held(1), held(2)], consent=False) == [Outcome.NO_CONSENT] * 2


def test_all_or_nothing_withholds_the_redeemable_ones() -> None:
    outcomes = run([held(1), held(2, revoked=True)], allow_partial=False)
    assert outcomes == [Outcome.WITHHELD, Outcome.REVOKED]
    assert run([held(1), held(2)], allow_partial=False) == [Outcome.REDEEMED] * 2


def test_the_same_sequence_twice_is_redeemed_once() -> None:
    assert run([held(1)], [1, 1]) == [Outcome.REDEEMED, Outcome.ALREADY_REDEEMED]


def test_every_eligible_one_skips_ineligible_credentials_and_applies_the_caps() -> None:
    credentials = [
        held(1, "40"),
        held(2, revoked=True),
        held(3, redeemed=True),
        held(4, "30"),  # 40 + 30 > 64: refused for the cap
        held(5, "20", CourseCategory.UNIVERSITY_COURSE),
    ]
    result = assess(
        programme=programme(),
        held={c.sequence: c for c in credentials},
        asked=None,
        already_redeemed={},
        consent=True,
        allow_partial=True,
        instant=NOW,
        rules=RULES,
    )
    assert [(line.sequence, line.outcome) for line in result.lines] == [
        (1, Outcome.REDEEMED),
        (4, Outcome.CAP_EXCEEDED),
        (5, Outcome.REDEEMED),
    ]
    assert result.redeemed_credits == Decimal(60)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"total": "0"}, "total_credits"),
        ({"total": "400"}, "total_credits"),
        ({"total": "10.25"}, "total_credits"),
        ({"level": "3"}, "level"),
        ({"validity_years": 8}, "validity_years"),
    ],
)
def test_invalid_programmes(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidProgramme) as raised:
        programme(**kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field


# --- the entry the credit rules append, and the transcript fold ---------------------------


def redemption(
    sequences: tuple[int, ...],
    *,
    redemption_id: str = "r-1",
    university_id: str = UNIVERSITY,
    allow_partial: bool = True,
) -> RedemptionRequested:
    envelope = Envelope(redemption_event_id(university_id, redemption_id), 2, NOW, "", LEARNER)
    digest = request_digest(
        university_id=university_id,
        learner_id=LEARNER,
        programme_id="bsc-cs",
        credential_sequences=sequences,
        all_eligible=False,
        allow_partial=allow_partial,
    )
    return RedemptionRequested(
        envelope, redemption_id, university_id, "bsc-cs", sequences, False, allow_partial, digest
    )


def test_decide_appends_one_entry_with_every_outcome() -> None:
    request = redemption((1, 2))
    facts = Facts(
        programme=programme(),
        held={1: held(1, "3"), 2: held(2, revoked=True)},
        consent_active=True,
    )
    decision = decide(request, facts, rules=CreditRules(), now=NOW)
    assert isinstance(decision, Append)
    assert decision.draft.kind is EntryKind.CREDITS_REDEEMED
    assert decision.draft.source_event_id == request.envelope.event_id
    payload = decision.draft.payload
    assert payload["redeemed_credits"] == 3.0
    assert [(line["sequence"], line["outcome"]) for line in payload["lines"]] == [  # type: ignore[index,union-attr]
        (1, "redeemed"),
        (2, "revoked"),
    ]
    # Nothing redeemed: a refusal entry, still in the chain.
    refused = decide(
        request, Facts(programme=programme(), held=facts.held), rules=CreditRules(), now=NOW
    )
    assert isinstance(refused, Append)
    assert refused.draft.kind is EntryKind.REDEMPTION_REFUSED


def test_decide_retry_conflict_and_unknown_or_foreign_programme() -> None:
    request = redemption((1,))
    same = PriorEntry(7, EntryKind.CREDITS_REDEEMED, {"request_digest": request.request_digest})
    assert decide(request, Facts(same_event=same), rules=CreditRules(), now=NOW) == (
        AlreadyRecorded(7)
    )
    other = PriorEntry(7, EntryKind.CREDITS_REDEEMED, {"request_digest": "other"})
    conflict = decide(request, Facts(same_event=other), rules=CreditRules(), now=NOW)
    assert isinstance(conflict, Rejected)
    assert conflict.reason is RejectionReason.REDEMPTION_CONFLICT
    unknown = decide(request, Facts(), rules=CreditRules(), now=NOW)
    assert isinstance(unknown, Rejected)
    assert unknown.reason is RejectionReason.UNKNOWN_PROGRAMME
    foreign = decide(
        redemption((1,), university_id="iitm"),
        Facts(programme=programme()),
        rules=CreditRules(),
        now=NOW,
    )
    assert isinstance(foreign, Rejected)
    assert foreign.reason is RejectionReason.FOREIGN_PROGRAMME


def test_transcript_shows_redeemed_and_revoked_after_redemption() -> None:
    entries = chain(2)  # sequences 1 and 2: credited (3 credits each)
    decision = decide(
        redemption((1,)),
        Facts(
            programme=programme(),
            held={1: held(1, "3", CourseCategory.UNIVERSITY_COURSE)},
            consent_active=True,
        ),
        rules=CreditRules(),
        now=NOW + timedelta(minutes=1),
    )
    assert isinstance(decision, Append)
    entries.append(append_to_chain(head_of(entries[-1]), decision.draft))
    revoke = decide(
        revocation(f"{LEARNER}-c-0"),
        Facts(revocation_target=PriorEntry(1, EntryKind.CREDIT_AWARDED, entries[0].payload)),
        rules=CreditRules(),
        now=NOW + timedelta(minutes=2),
    )
    assert isinstance(revoke, Append)
    entries.append(append_to_chain(head_of(entries[-1]), revoke.draft))
    assert verify_chain(entries) is None

    state = TranscriptProjection.fold(LEARNER, entries)
    first = state.credentials[1]
    assert first.redeemed_by_sequence == 3
    assert (first.redeemed_university_id, first.redeemed_programme_id) == (UNIVERSITY, "bsc-cs")
    assert first.redemption_id == "r-1"
    later = NOW + timedelta(minutes=3)
    assert first.status_at(later) is CredentialStatus.REDEEMED  # the debit stays
    assert first.revoked_after_redemption(later)
    assert not state.credentials[2].revoked_after_redemption(later)
    view = view_at(state, later)
    assert view.redeemed_credits == Decimal(3)
    assert view.active_credits == Decimal(3)
    assert view.redeemed_by_programme == {(UNIVERSITY, "bsc-cs"): Decimal(3)}
    # Before the redemption (as_of), the credential was active and nothing was redeemed.
    before = view_at(TranscriptProjection.fold(LEARNER, entries[:2]), later)
    assert before.redeemed_credits == 0

    # What each entry changed, as WatchTranscript reports it.
    states = [TranscriptProjection.initial(LEARNER)]
    for entry in entries:
        states.append(TranscriptProjection.apply(states[-1], entry))
    changes = [redemption_change(a, b) for a, b in itertools.pairwise(states)]
    assert changes == [
        RedemptionChange(),
        RedemptionChange(),
        RedemptionChange(redeemed=(1,)),
        RedemptionChange(revoked_after_redemption=(1,)),
    ]


def test_field_rules_of_a_redemption_request() -> None:
    from learnerledger.domain.validation import validate_request

    assert validate_request(redemption((1, 2)), now=NOW) == []
    bad = redemption((1, 0, 1), redemption_id="")
    fields = [v.field for v in validate_request(bad, now=NOW)]
    assert fields == ["redemption_id", "credential_sequences[1]", "credential_sequences[2]"]
    none_named = redemption(())
    assert [v.field for v in validate_request(none_named, now=NOW)] == ["credential_sequences"]
