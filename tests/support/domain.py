"""Builders for domain objects in unit tests (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from learnerledger.domain.catalog import (
    Course,
    CreditRecommendation,
    RecommendationChange,
)
from learnerledger.domain.credit_rules import (
    Append,
    CreditRules,
    Facts,
    decide,
)
from learnerledger.domain.entries import Entry, EntryDraft
from learnerledger.domain.events import (
    CompletionSubmitted,
    Envelope,
    LedgerRequest,
    Result,
    RevocationRequested,
    completion_event_id,
    revocation_event_id,
)
from learnerledger.domain.hash_chain import append_to_chain, head_of
from learnerledger.domain.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from learnerledger.domain.proofs import Bundle, BundleEntry, ConsistencyProof
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, sign_checkpoint

LEARNER = "123456789012"
ISSUER = "swayam"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def course(
    hours: int = 90,
    recommendation: CreditRecommendation = CreditRecommendation.APPROVED,
    issuer_id: str = ISSUER,
    course_id: str = "ml-101",
) -> Course:
    return Course(course_id, issuer_id, "Machine learning", Decimal("5.5"), hours, recommendation)


def completion(
    completion_id: str = "c-1",
    *,
    learner_id: str = LEARNER,
    issuer_id: str = ISSUER,
    course_id: str = "ml-101",
    result: Result = Result.PASS,
    score: float | None = 81.0,
    completed_at: datetime = datetime(2026, 6, 1, 9, 30, tzinfo=UTC),
) -> CompletionSubmitted:
    envelope = Envelope(
        completion_event_id(issuer_id, completion_id), 1, NOW, issuer_id, learner_id
    )
    return CompletionSubmitted(envelope, completion_id, course_id, completed_at, result, score)


def revocation(
    completion_id: str = "c-1", *, issuer_id: str = ISSUER, learner_id: str = LEARNER
) -> RevocationRequested:
    envelope = Envelope(
        revocation_event_id(issuer_id, completion_id), 1, NOW, issuer_id, learner_id
    )
    return RevocationRequested(envelope, completion_id, "issued in error")


def chain(length: int, learner_id: str = LEARNER) -> list[Entry]:
    """``length`` credited completions of one learner, appended to its chain."""
    entries: list[Entry] = []
    for index in range(length):
        decision = decide(
            completion(f"{learner_id}-c-{index}", learner_id=learner_id),
            Facts(course=course()),
            rules=CreditRules(),
            now=NOW + timedelta(seconds=index),
        )
        assert isinstance(decision, Append)
        head = head_of(entries[-1]) if entries else None
        entries.append(append_to_chain(head, decision.draft))
    return entries


def rewritten(entries: list[Entry], at_sequence: int, credits: float = 40.0) -> list[Entry]:
    """An insider's consistent rewrite: entry ``at_sequence`` gets other credits and every
    later entry is re-chained, so the chain verifies again (only its hashes differ)."""
    out = [e for e in entries if e.sequence < at_sequence]
    for entry in entries[len(out) :]:
        payload = dict(entry.payload)
        if entry.sequence == at_sequence:
            payload["credits"] = credits
        draft = EntryDraft(
            entry.learner_id,
            entry.kind,
            payload,
            entry.rules_version,
            entry.source_event_id,
            entry.recorded_at,
        )
        out.append(append_to_chain(head_of(out[-1]) if out else None, draft))
    return out


def credit_log(length: int, learners: int = 3) -> list[Entry]:
    """``length`` entries in log order, interleaving the chains of ``learners`` learners."""
    per_learner = -(-length // learners)
    chains = [chain(per_learner, learner_id=f"{100000000000 + n}") for n in range(learners)]
    interleaved = [chains[n][i] for i in range(per_learner) for n in range(learners)]
    return interleaved[:length]


ORIGIN = "ledger.example/credit-log"


def proof_bundle(
    log: list[Entry], index: int, signer: NoteSigner, size: int | None = None
) -> Bundle:
    """Entry ``index`` of ``log`` exported with its inclusion proof in the tree of the first
    ``size`` entries (default: all) and that tree's checkpoint signed by ``signer``."""
    size = len(log) if size is None else size
    leaves = [leaf_hash(entry.entry_hash) for entry in log[:size]]
    entry = log[index]
    note = sign_checkpoint(TreeCheckpoint(ORIGIN, size, root(leaves)), signer)
    return Bundle(
        BundleEntry(entry.canonical_json.decode(), entry.prev_hash, entry.entry_hash),
        index,
        tuple(inclusion_proof(index, leaves)),
        note,
    )


def signed_tree_checkpoint(log: list[Entry], size: int, signer: NoteSigner) -> str:
    """The checkpoint note of the tree of the first ``size`` entries of ``log``."""
    leaves = [leaf_hash(entry.entry_hash) for entry in log[:size]]
    return sign_checkpoint(TreeCheckpoint(ORIGIN, size, root(leaves)), signer)


def log_consistency_proof(log: list[Entry], old_size: int, new_size: int) -> ConsistencyProof:
    leaves = [leaf_hash(entry.entry_hash) for entry in log[:new_size]]
    return ConsistencyProof(old_size, new_size, tuple(consistency_proof(old_size, leaves)))


MARCH = datetime(2026, 3, 1, tzinfo=UTC)


JUNE = datetime(2026, 6, 1, tzinfo=UTC)


def change(
    state: CreditRecommendation,
    effective_at: datetime,
    *,
    recorded_at: datetime = NOW,
    reason: str = "committee minutes",
) -> RecommendationChange:
    return RecommendationChange(uuid.uuid4(), "ml-101", state, effective_at, recorded_at, reason)


APPROVED_IN_MARCH = change(CreditRecommendation.APPROVED, MARCH)


def log(*steps: tuple[LedgerRequest, Facts]) -> list[Entry]:
    entries: list[Entry] = []
    for offset, (request, facts) in enumerate(steps):
        decision = decide(request, facts, rules=CreditRules(), now=NOW + timedelta(days=offset))
        assert isinstance(decision, Append)
        entries.append(append_to_chain(head_of(entries[-1]) if entries else None, decision.draft))
    return entries
