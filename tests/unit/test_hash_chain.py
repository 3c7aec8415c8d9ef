from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.checkpoints import Checkpoint, sign_checkpoint, signature_is_valid
from learnerledger.domain.entries import Entry
from learnerledger.domain.hash_chain import (
    GENESIS_HASH,
    append_to_chain,
    head_of,
    heads_root,
    verify_chain,
)
from tests.support.domain import NOW, chain


def test_chain_links_each_entry_to_the_previous_hash() -> None:
    entries = chain(3)
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].entry_hash
    assert verify_chain(entries) is None


def test_a_third_party_recomputes_the_hash_from_documented_fields() -> None:
    entry = chain(1)[0]
    document = json.loads(entry.canonical_json)
    assert set(document) == {
        "learner_id", "sequence", "kind", "rules_version", "source_event_id", "recorded_at",
        "payload",
    }  # fmt: skip
    # RFC 8785: keys sorted, no insignificant whitespace.
    assert (
        entry.canonical_json
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert entry.entry_hash == hashlib.sha256(GENESIS_HASH + entry.canonical_json).digest()


def test_changed_payload_is_found_at_its_entry() -> None:
    entries = chain(4)
    forged = dict(entries[2].payload, credits=40.0)
    entries[2] = dataclasses.replace(entries[2], payload=forged)
    found = verify_chain(entries)
    assert found is not None
    assert (found.sequence, found.reason) == (3, "entry_hash does not match the entry's content")


def test_rechained_history_passes_the_chain_but_not_the_signed_checkpoint() -> None:
    entries = chain(3)
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(Checkpoint(3, 1000, heads_root([head_of(entries[-1])]), 1, NOW), key)
    # An insider rewrites entry 2 and re-chains everything after it consistently.
    rewritten = [entries[0]]
    for original in entries[1:]:
        draft_payload = dict(original.payload)
        if original.sequence == 2:
            draft_payload["credits"] = 40.0
        redone = append_to_chain(
            head_of(rewritten[-1]),
            _draft_of(dataclasses.replace(original, payload=draft_payload)),
        )
        rewritten.append(redone)
    assert verify_chain(rewritten) is None
    assert heads_root([head_of(rewritten[-1])]) != signed.checkpoint.root_hash
    assert signature_is_valid(signed, signed.public_key)


def test_signature_fails_for_another_key_or_a_changed_statement() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(Checkpoint(10, 1000, bytes(32), 2, NOW), key)
    other = sign_checkpoint(Checkpoint(10, 1000, bytes(32), 2, NOW), Ed25519PrivateKey.generate())
    tampered = dataclasses.replace(
        signed, checkpoint=dataclasses.replace(signed.checkpoint, position=11)
    )
    assert signature_is_valid(signed, signed.public_key)
    assert not signature_is_valid(signed, other.public_key)
    assert not signature_is_valid(tampered, signed.public_key)


@pytest.mark.parametrize("swap", [(0, 1), (1, 2)])
def test_reordered_entries_do_not_verify(swap: tuple[int, int]) -> None:
    entries = chain(3)
    i, j = swap
    entries[i], entries[j] = entries[j], entries[i]
    broken = verify_chain(entries)
    assert broken is not None
    # The first entry out of place is named, with the sequence the chain expected there.
    assert (broken.sequence, broken.reason) == (
        entries[i].sequence,
        f"sequence gap: expected {i + 1}",
    )


def _draft_of(entry: Entry):  # type: ignore[no-untyped-def]
    from learnerledger.domain.entries import EntryDraft

    return EntryDraft(
        entry.learner_id,
        entry.kind,
        entry.payload,
        entry.rules_version,
        entry.source_event_id,
        entry.recorded_at,
    )
