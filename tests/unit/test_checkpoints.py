"""The checkpointer's and the verifier's pure logic: extending the previous checkpoint, and
checking a sequence of checkpoints each against its predecessor."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.checkpoints import (
    Checkpoint,
    Coverage,
    LearnerExtension,
    PreviousCheckpoint,
    RecordedCheckpoint,
    check_sequence,
    coverage_of,
    diff_heads,
    next_checkpoint,
    plan_extension,
    sign_checkpoint,
    signature_is_valid,
)
from learnerledger.domain.entries import Entry
from learnerledger.domain.hash_chain import (
    ChainBreak,
    ChainHead,
    extend_chain,
    head_of,
    heads_root,
)
from tests.support.domain import NOW, chain, rewritten

ANA, BEN, CAL = "100000000001", "200000000002", "300000000003"
KEY = Ed25519PrivateKey.generate()


def extension(signed: ChainHead | None, new: list[Entry], stored_at_signed: bytes | None = None):  # type: ignore[no-untyped-def]
    return LearnerExtension(
        new[0].learner_id,
        signed,
        signed.entry_hash if signed is not None and stored_at_signed is None else stored_at_signed,
        extend_chain(signed, new),
    )


def previous_over(heads: list[ChainHead], number: int = 1) -> PreviousCheckpoint:
    checkpoint = next_checkpoint(
        None, position=10, tx_horizon=100, heads=heads, changed=heads, signed_at=NOW
    )
    return PreviousCheckpoint(number, checkpoint)


# --- extend_chain ----------------------------------------------------------------------------


def test_extend_chain_recomputes_only_the_entries_after_the_signed_head() -> None:
    entries = chain(5)
    assert extend_chain(head_of(entries[1]), entries[2:]) == head_of(entries[4])
    assert extend_chain(None, entries) == head_of(entries[4])
    assert extend_chain(head_of(entries[4]), []) == head_of(entries[4])


def test_extend_chain_refuses_entries_that_do_not_follow_the_signed_head() -> None:
    entries = chain(5)
    gap = extend_chain(head_of(entries[1]), entries[3:])
    assert isinstance(gap, ChainBreak)
    assert gap.reason == "sequence gap: expected 3"
    forked = rewritten(entries, 2)  # the new entries chain onto a rewritten entry 2
    fork = extend_chain(head_of(entries[1]), forked[2:])
    assert isinstance(fork, ChainBreak)
    assert fork.sequence == 3
    assert fork.reason == "prev_hash does not match the previous entry's hash"


# --- plan_extension (the checkpointer, before it signs) ----------------------------------------


def test_an_honest_extension_may_be_signed_with_only_the_changed_heads() -> None:
    ana, ben, cal = chain(4, ANA), chain(3, BEN), chain(2, CAL)
    previous = previous_over([head_of(ana[1]), head_of(ben[2])])
    plan = plan_extension(
        previous,
        [extension(head_of(ana[1]), ana[2:]), extension(None, cal)],
        [head_of(ana[3]), head_of(ben[2]), head_of(cal[1])],
    )
    assert plan.may_sign, plan.discrepancies
    assert plan.changed == (head_of(ana[3]), head_of(cal[1]))


def test_a_consistent_rewrite_of_a_learner_without_new_entries_is_refused() -> None:
    ana, ben = chain(3, ANA), chain(3, BEN)
    previous = previous_over([head_of(ana[2]), head_of(ben[2])])
    ben_rewritten = rewritten(ben, 2)
    plan = plan_extension(previous, [], [head_of(ana[2]), head_of(ben_rewritten[2])])
    assert not plan.may_sign
    assert not plan.unchanged_root_matches
    assert "history was rewritten" in plan.discrepancies[0].reason


def test_a_rewrite_below_the_signed_head_of_a_learner_with_new_entries_is_refused() -> None:
    ana = chain(5, ANA)
    previous = previous_over([head_of(ana[2])])
    forged = rewritten(ana, 2)
    # The insider rewrote entries 2..5 consistently: entry 3 (the signed head) changed.
    plan = plan_extension(
        previous,
        [extension(head_of(ana[2]), forged[3:], stored_at_signed=forged[2].entry_hash)],
        [head_of(forged[4])],
    )
    assert not plan.may_sign
    assert [(d.learner_id, d.reason) for d in plan.discrepancies] == [
        (ANA, "entry 3, the learner's head at the previous checkpoint, has changed: "
              "history was rewritten")
    ]  # fmt: skip


def test_new_entries_that_do_not_chain_onto_the_signed_head_are_refused() -> None:
    ana = chain(5, ANA)
    previous = previous_over([head_of(ana[2])])
    forged = rewritten(ana, 4)
    plan = plan_extension(
        previous,
        [extension(head_of(ana[2]), [ana[3], forged[4]])],  # entry 5 re-chained on a forged 4
        [head_of(forged[4])],
    )
    assert not plan.may_sign
    assert plan.discrepancies[0].learner_id == ANA
    assert plan.discrepancies[0].reason.startswith("entry 5 does not continue the signed chain")


def test_a_stored_head_that_is_not_the_recomputed_one_is_refused() -> None:
    ana = chain(4, ANA)
    previous = previous_over([head_of(ana[1])])
    stale = ChainHead(ANA, 4, bytes(32))
    plan = plan_extension(previous, [extension(head_of(ana[1]), ana[2:])], [stale])
    assert not plan.may_sign
    assert plan.discrepancies[0].learner_id == ANA


def test_without_a_previous_checkpoint_every_head_needs_recomputed_entries() -> None:
    ana, ben = chain(2, ANA), chain(2, BEN)
    plan = plan_extension(None, [extension(None, ana)], [head_of(ana[1]), head_of(ben[1])])
    assert [(d.learner_id, d.reason) for d in plan.discrepancies] == [
        (BEN, "a head in the log has no recomputed entries")
    ]
    honest = plan_extension(
        None, [extension(None, ana), extension(None, ben)], [head_of(ana[1]), head_of(ben[1])]
    )
    assert honest.may_sign
    assert honest.changed == (head_of(ana[1]), head_of(ben[1]))


def test_diff_heads_names_the_rewritten_missing_and_unsigned_learners() -> None:
    ana, ben, cal = chain(2, ANA), chain(2, BEN), chain(2, CAL)
    signed = {ANA: head_of(ana[1]), BEN: head_of(ben[1])}
    stored = {ANA: head_of(rewritten(ana, 1)[1]), CAL: head_of(cal[1])}
    named = diff_heads(signed, stored, signed.keys() | stored.keys())
    assert [d.learner_id for d in named] == [ANA, BEN, CAL]
    assert "history was rewritten" in named[0].reason


# --- check_sequence (verify) -------------------------------------------------------------------


def signed_sequence(length: int = 3) -> list[RecordedCheckpoint]:
    """``length`` honest checkpoints over a growing log of two learners."""
    ana, ben = chain(length + 1, ANA), chain(length + 1, BEN)
    recorded: list[RecordedCheckpoint] = []
    heads: dict[str, ChainHead] = {}
    for n in range(length):
        changed = [head_of(ana[n + 1])] + ([head_of(ben[n])] if n % 2 == 0 else [])
        heads.update({h.learner_id: h for h in changed})
        checkpoint = next_checkpoint(
            None if not recorded else recorded[-1].signed.checkpoint,
            position=10 * (n + 1),
            tx_horizon=100 * (n + 1),
            heads=list(heads.values()),
            changed=changed,
            signed_at=NOW + timedelta(minutes=n),
        )
        recorded.append(RecordedCheckpoint(n + 1, sign_checkpoint(checkpoint, KEY), tuple(changed)))
    return recorded


def public_key() -> bytes:
    return signed_sequence(1)[0].signed.public_key


def test_an_honest_sequence_verifies_and_yields_the_latest_heads() -> None:
    recorded = signed_sequence(4)
    check = check_sequence(recorded, public_key())
    assert check.problems == []
    assert check.checked == 4
    assert {h.learner_id: h.sequence for h in check.heads.values()} == {ANA: 5, BEN: 3}
    assert coverage_of(check.checked, check.problems, covers_subject=True) is Coverage.VERIFIED


def test_a_middle_checkpoint_forged_with_another_key_is_found() -> None:
    recorded = signed_sequence(3)
    forger = Ed25519PrivateKey.generate()
    recorded[1] = dataclasses.replace(
        recorded[1], signed=sign_checkpoint(recorded[1].signed.checkpoint, forger)
    )
    check = check_sequence(recorded, public_key())
    assert [(d.checkpoint_number, d.reason) for d in check.problems] == [
        (2, "its signature does not verify with the trusted key")
    ]


def test_a_removed_middle_checkpoint_breaks_its_successors_link() -> None:
    recorded = signed_sequence(3)
    check = check_sequence([recorded[0], recorded[2]], public_key())
    assert (3, "it does not extend its predecessor: it names another previous statement") in [
        (d.checkpoint_number, d.reason) for d in check.problems
    ]


def test_a_middle_checkpoint_replaced_by_another_signed_statement_is_found() -> None:
    recorded = signed_sequence(3)
    other = dataclasses.replace(recorded[1].signed.checkpoint, root_hash=bytes(32))
    recorded[1] = dataclasses.replace(recorded[1], signed=sign_checkpoint(other, KEY))
    check = check_sequence(recorded, public_key())
    assert [d.checkpoint_number for d in check.problems] == [3]


def test_recorded_heads_that_differ_from_the_signed_changed_root_are_found() -> None:
    recorded = signed_sequence(3)
    forged_head = ChainHead(ANA, 3, bytes(32))
    recorded[1] = dataclasses.replace(recorded[1], changed_heads=(forged_head,))
    check = check_sequence(recorded, public_key())
    assert (2, "its recorded heads do not match its signed statement") in [
        (d.checkpoint_number, d.reason) for d in check.problems
    ]


def test_a_checkpoint_that_moves_a_head_back_is_found() -> None:
    ana = chain(3, ANA)
    first = next_checkpoint(
        None, position=1, tx_horizon=1, heads=[head_of(ana[2])], changed=[head_of(ana[2])],
        signed_at=NOW,
    )  # fmt: skip
    second = next_checkpoint(
        first, position=2, tx_horizon=2, heads=[head_of(ana[1])], changed=[head_of(ana[1])],
        signed_at=NOW,
    )  # fmt: skip
    recorded = [
        RecordedCheckpoint(1, sign_checkpoint(first, KEY), (head_of(ana[2]),)),
        RecordedCheckpoint(2, sign_checkpoint(second, KEY), (head_of(ana[1]),)),
    ]
    check = check_sequence(recorded, public_key())
    assert [(d.checkpoint_number, d.learner_id) for d in check.problems] == [(2, ANA)]


def test_no_checkpoint_and_an_uncovered_learner_are_not_verified() -> None:
    assert coverage_of(0, [], covers_subject=True) is Coverage.NO_CHECKPOINT
    assert coverage_of(2, [], covers_subject=False) is Coverage.NOT_COVERED
    check = check_sequence(signed_sequence(2), public_key())
    assert CAL not in check.heads


# --- statements --------------------------------------------------------------------------------


def test_a_version_1_statement_is_unchanged_so_old_signatures_still_verify() -> None:
    v1 = Checkpoint(3, 1000, bytes(32), 1, NOW)
    assert v1.statement() == (
        b'{"learner_count":1,"position":3,"root_hash":"' + b"00" * 32 + b'",'
        b'"signed_at":"2026-11-22T10:00:00.000000Z","tx_horizon":1000}'
    )
    assert not v1.records_heads


def test_a_version_2_statement_binds_the_predecessor_and_the_changed_heads() -> None:
    ana = chain(2, ANA)
    first = next_checkpoint(
        None, position=1, tx_horizon=5, heads=[head_of(ana[0])], changed=[head_of(ana[0])],
        signed_at=NOW,
    )  # fmt: skip
    second = next_checkpoint(
        first, position=2, tx_horizon=6, heads=[head_of(ana[1])], changed=[head_of(ana[1])],
        signed_at=NOW,
    )  # fmt: skip
    assert first.previous is None
    assert second.previous == first.digest()
    assert second.changed_root == heads_root([head_of(ana[1])])
    signed = sign_checkpoint(second, KEY)
    assert signature_is_valid(signed, signed.public_key)
    relinked = dataclasses.replace(signed, checkpoint=dataclasses.replace(second, previous=None))
    assert not signature_is_valid(relinked, signed.public_key)
