"""The verification page's verdict (domain/verdicts.py): a pure function of the public
documents, the trusted checkpoint keys and the time. Each verdict from real entries, Merkle
proofs and signed checkpoints built with the domain builders; tampered, unknown key and
revoked are different verdicts with different words."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.consents import standing_consents
from learnerledger.domain.entries import Entry, EntryDraft, EntryKind
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.proofs import BadInput, BundleEntry, entry_hash_of
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.domain.verdicts import (
    GENUINE,
    HEADLINES,
    PUBLIC_ENTRY_FORMAT,
    REFUSED,
    InclusionDocument,
    LogEntryEvidence,
    StatusClaim,
    UnreadableEvidence,
    VerdictKind,
    judge,
    mask_learner_id,
    parse_inclusion,
    parse_public_entry,
    parse_uploaded_bundle,
)
from tests.support.domain import (
    ORIGIN,
    credit_log,
    proof_bundle,
    signed_tree_checkpoint,
)

LOG = credit_log(7)
KEY = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
OTHER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())  # same log name, another key
NOW = datetime(2027, 1, 1, tzinfo=UTC)
INDEX = 4


def evidence(
    index: int = INDEX,
    *,
    signer: NoteSigner = KEY,
    status: StatusClaim | None = None,
    latest_size: int | None = None,
) -> LogEntryEvidence:
    """What the public endpoints serve for entry ``index`` of LOG."""
    bundle = proof_bundle(LOG, index, signer)
    latest = signed_tree_checkpoint(LOG, latest_size or len(LOG), signer)
    return LogEntryEvidence(
        entry=bundle.entry,
        inclusion=InclusionDocument(bundle.leaf_index, bundle.inclusion_proof, bundle.checkpoint),
        latest_checkpoint=latest,
        status=status or StatusClaim("active"),
    )


def test_a_genuine_active_credit_with_its_facts_and_the_latest_checkpoint() -> None:
    verdict = judge(evidence(), [KEY.verifier], NOW)
    assert verdict.kind is VerdictKind.ACTIVE
    assert verdict.genuine
    assert verdict.in_latest_checkpoint
    facts = dict(verdict.facts)
    learner = LOG[INDEX].learner_id
    assert facts["Learner (APAAR id)"] == mask_learner_id(learner)
    assert learner not in " ".join(v for _, v in verdict.facts)  # only the last four digits
    assert facts["Issuer"] == "swayam"
    assert facts["Course"] == "ml-101"
    assert facts["Credits"] == "3"
    assert facts["NCrF level"] == "5.5"
    assert facts["Hours basis"] == "90 notional hours, NCRF"
    assert facts["Valid until"] == "01 June 2033"
    assert facts["Status now"] == "active"
    assert [(name, ok) for name, ok, _ in verdict.checks] == [
        ("entry hash", True),
        ("signed checkpoint", True),
        ("inclusion proof", True),
        ("latest checkpoint's signature", True),
        ("latest checkpoint", True),
    ]
    assert verdict.entry_hash == LOG[INDEX].entry_hash.hex()


def test_a_proof_against_an_older_checkpoint_is_genuine_but_not_in_the_latest() -> None:
    bundle = proof_bundle(LOG, 1, KEY, size=3)
    older = LogEntryEvidence(
        bundle.entry,
        InclusionDocument(1, bundle.inclusion_proof, bundle.checkpoint),
        signed_tree_checkpoint(LOG, len(LOG), KEY),
        StatusClaim("active"),
    )
    verdict = judge(older, [KEY.verifier], NOW)
    assert verdict.kind is VerdictKind.ACTIVE
    assert not verdict.in_latest_checkpoint


def test_expired_comes_from_the_signed_valid_until_whatever_the_status_claim() -> None:
    later = datetime(2033, 6, 2, tzinfo=UTC)
    assert judge(evidence(), [KEY.verifier], later).kind is VerdictKind.EXPIRED
    claimed = evidence(status=StatusClaim("expired"))
    assert judge(claimed, [KEY.verifier], NOW).kind is VerdictKind.EXPIRED


def test_revoked_redeemed_and_revoked_after_redemption_are_told_apart() -> None:
    revoked_at = datetime(2026, 12, 1, tzinfo=UTC)
    redeemed_at = datetime(2026, 11, 25, tzinfo=UTC)
    revoked = judge(
        evidence(status=StatusClaim("revoked", revoked_at=revoked_at)), [KEY.verifier], NOW
    )
    redeemed = judge(
        evidence(status=StatusClaim("redeemed", redeemed_at=redeemed_at)), [KEY.verifier], NOW
    )
    both = judge(
        evidence(status=StatusClaim("redeemed", revoked_at=revoked_at, redeemed_at=redeemed_at)),
        [KEY.verifier],
        NOW,
    )
    assert revoked.kind is VerdictKind.REVOKED
    assert "withdrew it on 01 December 2026" in revoked.explanation
    assert dict(revoked.facts)["Status now"] == "revoked"
    assert redeemed.kind is VerdictKind.REDEEMED
    assert both.kind is VerdictKind.REVOKED_AFTER_REDEMPTION
    assert dict(both.facts)["Status now"] == "revoked after redemption"
    # revoked before it was redeemed is not "after redemption"
    earlier = judge(
        evidence(status=StatusClaim("redeemed", revoked_at=redeemed_at, redeemed_at=revoked_at)),
        [KEY.verifier],
        NOW,
    )
    assert earlier.kind is VerdictKind.REDEEMED


def test_a_changed_byte_in_the_entry_is_tampered() -> None:
    genuine = evidence()
    assert genuine.entry is not None
    forged = genuine.entry.canonical_json.replace('"credits":3', '"credits":30', 1)
    assert forged != genuine.entry.canonical_json
    verdict = judge(
        replace(genuine, entry=replace(genuine.entry, canonical_json=forged)), [KEY.verifier], NOW
    )
    assert verdict.kind is VerdictKind.TAMPERED
    assert verdict.facts == ()  # nothing of a tampered document is shown as fact
    assert "changed" in verdict.explanation


def test_a_re_hashed_forgery_fails_the_inclusion_proof_and_is_tampered() -> None:
    genuine = evidence()
    assert genuine.entry is not None
    forged_json = genuine.entry.canonical_json.replace('"credits":3', '"credits":30', 1)
    forged = BundleEntry(
        forged_json,
        genuine.entry.prev_hash,
        entry_hash_of(genuine.entry.prev_hash, forged_json),
    )
    verdict = judge(replace(genuine, entry=forged), [KEY.verifier], NOW)
    assert verdict.kind is VerdictKind.TAMPERED
    assert [name for name, ok, _ in verdict.checks if not ok] == ["inclusion proof"]


def test_a_checkpoint_by_another_key_is_unknown_key_and_a_bad_signature_is_tampered() -> None:
    unknown = judge(evidence(signer=OTHER), [KEY.verifier], NOW)
    assert unknown.kind is VerdictKind.UNKNOWN_KEY
    assert "not with the Learner Ledger key this page trusts" in unknown.explanation
    assert judge(evidence(), [], NOW).kind is VerdictKind.UNKNOWN_KEY  # no key configured
    assert judge(evidence(signer=OTHER), [OTHER.verifier, KEY.verifier], NOW).genuine
    genuine = evidence()
    assert genuine.inclusion is not None
    note = genuine.inclusion.checkpoint
    body, _, signatures = note.partition("\n\n")
    lines = body.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # the tree size, under the trusted key's signature
    altered = "\n".join(lines) + "\n\n" + signatures
    verdict = judge(
        replace(genuine, inclusion=replace(genuine.inclusion, checkpoint=altered)),
        [KEY.verifier],
        NOW,
    )
    assert verdict.kind is VerdictKind.TAMPERED


def test_the_three_refusals_have_distinct_headlines_and_words() -> None:
    tampered_entry = evidence()
    assert tampered_entry.entry is not None
    tampered = judge(
        replace(
            tampered_entry,
            entry=replace(
                tampered_entry.entry, canonical_json=tampered_entry.entry.canonical_json + " "
            ),
        ),
        [KEY.verifier],
        NOW,
    )
    unknown = judge(evidence(signer=OTHER), [KEY.verifier], NOW)
    revoked = judge(evidence(status=StatusClaim("revoked", revoked_at=NOW)), [KEY.verifier], NOW)
    kinds = {tampered.kind, unknown.kind, revoked.kind}
    assert kinds == {VerdictKind.TAMPERED, VerdictKind.UNKNOWN_KEY, VerdictKind.REVOKED}
    assert len({tampered.headline, unknown.headline, revoked.headline}) == 3
    assert len({tampered.explanation, unknown.explanation, revoked.explanation}) == 3
    assert REFUSED.isdisjoint(GENUINE)
    assert set(HEADLINES) == set(VerdictKind)


def test_unknown_entries_pending_proofs_and_non_credits() -> None:
    assert judge(LogEntryEvidence(entry=None), [KEY.verifier], NOW).kind is VerdictKind.NOT_FOUND
    pending = replace(evidence(), inclusion=None)
    verdict = judge(pending, [KEY.verifier], NOW)
    assert verdict.kind is VerdictKind.NOT_YET_SEALED
    assert dict(verdict.facts)["Course"] == "ml-101"
    assert not verdict.genuine
    unreadable = judge(UnreadableEvidence("not a link"), [KEY.verifier], NOW)
    assert unreadable.kind is VerdictKind.UNREADABLE
    assert "not a link" in unreadable.explanation
    # a consent entry under a valid proof: a genuine record, but not a credit
    draft = EntryDraft("123456789012", EntryKind.CONSENT_GRANTED, {"university_id": "du"}, 1,
                       uuid.uuid4(), NOW)  # fmt: skip
    consent_log = [append_to_chain(None, draft)]
    bundle = proof_bundle(consent_log, 0, KEY)
    consent = LogEntryEvidence(
        bundle.entry,
        InclusionDocument(0, bundle.inclusion_proof, bundle.checkpoint),
        bundle.checkpoint,
        StatusClaim("active"),
    )
    verdict = judge(consent, [KEY.verifier], NOW)
    assert verdict.kind is VerdictKind.NOT_A_CREDIT
    assert verdict.facts == ()


def test_an_uploaded_bundle_is_checked_itself_then_against_the_ledger() -> None:
    bundle = proof_bundle(LOG, INDEX, KEY, size=5)
    uploaded = parse_uploaded_bundle(bundle.to_json())
    fine = replace(evidence(), uploaded=uploaded)
    assert judge(fine, [KEY.verifier], NOW).kind is VerdictKind.ACTIVE
    forged = replace(
        uploaded,
        entry=replace(
            uploaded.entry, canonical_json=uploaded.entry.canonical_json.replace("5.5", "7")
        ),
    )
    assert judge(replace(evidence(), uploaded=forged), [KEY.verifier], NOW).kind is (
        VerdictKind.TAMPERED
    )
    foreign = parse_uploaded_bundle(proof_bundle(LOG, INDEX, OTHER).to_json())
    assert judge(replace(evidence(), uploaded=foreign), [KEY.verifier], NOW).kind is (
        VerdictKind.UNKNOWN_KEY
    )
    # the ledger no longer publishes it: the file's own proof still decides, status unknown
    alone = judge(LogEntryEvidence(entry=None, uploaded=uploaded), [KEY.verifier], NOW)
    assert alone.kind is VerdictKind.ACTIVE
    assert "could not be read" in alone.explanation
    # the ledger answered for another entry than the file's
    other = evidence(index=2)
    mixed = judge(replace(other, uploaded=uploaded), [KEY.verifier], NOW)
    assert mixed.kind is VerdictKind.TAMPERED
    with pytest.raises(BadInput):
        parse_uploaded_bundle('{"format": "something else"}')


def test_the_public_documents_parse_and_refuse_what_is_not_them() -> None:
    entry = LOG[INDEX]
    document = {
        "format": PUBLIC_ENTRY_FORMAT,
        "entry": {
            "canonical_json": entry.canonical_json.decode(),
            "prev_hash": entry.prev_hash.hex(),
            "entry_hash": entry.entry_hash.hex(),
        },
        "status": {"status": "revoked", "revoked_at": "2026-12-01T00:00:00Z", "redeemed_at": None},
    }
    parsed, status = parse_public_entry(json.dumps(document))
    assert parsed.entry_hash == entry.entry_hash
    assert status == StatusClaim("revoked", datetime(2026, 12, 1, tzinfo=UTC), None)
    for broken in (
        {**document, "format": "x"},
        {**document, "status": {"status": "fine"}},
        {**document, "entry": {**document["entry"], "prev_hash": "zz"}},  # type: ignore[dict-item]
        {**document, "status": {"status": "active", "revoked_at": 5}},
    ):
        with pytest.raises(BadInput):
            parse_public_entry(json.dumps(broken))
    with pytest.raises(BadInput):
        parse_public_entry("not json")
    inclusion = parse_inclusion(
        json.dumps({"leaf_index": 3, "inclusion_proof": ["A" * 43 + "="], "checkpoint": "x"})
    )
    assert inclusion.leaf_index == 3
    for broken_inclusion in (
        {"leaf_index": -1, "inclusion_proof": [], "checkpoint": "x"},
        {"leaf_index": True, "inclusion_proof": [], "checkpoint": "x"},
        {"leaf_index": 1, "inclusion_proof": ["not base64!"], "checkpoint": "x"},
        {"leaf_index": 1, "inclusion_proof": ["AAAA"], "checkpoint": "x"},
        {"leaf_index": 1, "inclusion_proof": []},
    ):
        with pytest.raises(BadInput):
            parse_inclusion(json.dumps(broken_inclusion))


def test_mask_learner_id_keeps_the_last_four_digits() -> None:
    assert mask_learner_id("123456789012") == "•••• •••• 9012"
    assert mask_learner_id("12") == "••"


def test_standing_consents_fold_grants_revocations_and_expiry() -> None:
    entries: list[Entry] = []
    now = datetime(2027, 1, 1, tzinfo=UTC)

    def add(kind: EntryKind, payload: dict[str, object]) -> None:
        draft = EntryDraft("123456789012", kind, payload, 1, uuid.uuid4(), now)  # type: ignore[arg-type]
        entries.append(append_to_chain(head_of(entries[-1]) if entries else None, draft))

    add(EntryKind.CONSENT_GRANTED, {"university_id": "du", "basis": "mandate"})
    acme = {"university_id": "acme", "purpose": "hiring", "basis": "learner"}
    add(EntryKind.CONSENT_GRANTED, {**acme, "expire_time": "2027-06-01T00:00:00.000000Z"})
    add(
        EntryKind.CONSENT_GRANTED,
        {"university_id": "gone", "expire_time": "2026-06-01T00:00:00.000000Z"},
    )
    add(EntryKind.CONSENT_GRANTED, {"university_id": "iit", "purpose": "x"})
    add(EntryKind.CONSENT_REVOKED, {"university_id": "iit"})
    terms = standing_consents(entries, now)
    assert [(t.university_id, t.purpose, t.basis) for t in terms] == [
        ("acme", "hiring", "learner"),
        ("du", "", "mandate"),
    ]
    assert terms[0].expire_time == datetime(2027, 6, 1, tzinfo=UTC)
    assert standing_consents(entries, now + timedelta(days=365))[0].university_id == "du"
