"""The offline verifier (domain/proofs.py): exported bundles and consistency between checkpoints.

A log of entries is built with the domain builders, its Merkle tree and checkpoints computed, and
each entry exported as a bundle; the verifier accepts them with the log's key only, and refuses a
tampered entry, a wrong leaf index, a truncated proof and a checkpoint signed by another key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain import proofs as proofs_module
from learnerledger.domain.proofs import (
    CheckpointNotTrusted,
    ConsistencyProof,
    EntryTampered,
    InconsistentCheckpoints,
    LeafIndexOutOfRange,
    MalformedBundle,
    MalformedCheckpointNote,
    TruncatedProof,
    WrongRoot,
    parse_bundle,
    parse_consistency_proof,
    verify_bundle,
    verify_consistency_between,
)
from learnerledger.domain.signed_note import NoteSigner
from tests.support.domain import (
    ORIGIN,
    credit_log,
    log_consistency_proof,
    proof_bundle,
    rewritten,
    signed_tree_checkpoint,
)

LOG = credit_log(13)
KEY = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def test_every_entry_of_a_log_verifies_from_its_exported_bundle() -> None:
    for index, entry in enumerate(LOG):
        exported = proof_bundle(LOG, index, KEY).to_json()
        verified = verify_bundle(parse_bundle(exported), KEY.verifier, origin=ORIGIN)
        assert verified.leaf_index == index
        assert verified.entry_hash == entry.entry_hash
        assert (verified.entry["learner_id"], verified.entry["sequence"]) == (
            entry.learner_id,
            entry.sequence,
        )
        assert (verified.checkpoint.origin, verified.checkpoint.size) == (ORIGIN, len(LOG))


@pytest.mark.parametrize("size", [1, 2, 5, 8, 12])
def test_bundles_against_older_checkpoints_verify(size: int) -> None:
    for index in range(size):
        verified = verify_bundle(proof_bundle(LOG, index, KEY, size=size), KEY.verifier)
        assert verified.leaf_index == index
        assert verified.entry_hash == LOG[index].entry_hash
        assert (verified.checkpoint.origin, verified.checkpoint.size) == (ORIGIN, size)


def test_a_tampered_entry_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    canonical = bundle.entry.canonical_json
    assert '"credits":' in canonical
    forged = canonical.replace('"credits":', '"credits":1', 1)  # a leading 1 on the credits
    with pytest.raises(EntryTampered, match="does not recompute"):
        verify_bundle(
            replace(bundle, entry=replace(bundle.entry, canonical_json=forged)), KEY.verifier
        )


def test_an_entry_rewritten_and_rechained_by_an_insider_is_not_in_the_signed_tree() -> None:
    # A consistent rewrite recomputes its entry hashes, so the entry verifies as a chain link but
    # its leaf is not the one the signed tree holds.
    learner_chain = [e for e in LOG if e.learner_id == LOG[4].learner_id]
    forged = rewritten(learner_chain, at_sequence=LOG[4].sequence)[LOG[4].sequence - 1]
    bundle = proof_bundle(LOG, 4, KEY)
    swapped = replace(
        bundle,
        entry=replace(
            bundle.entry,
            canonical_json=forged.canonical_json.decode(),
            entry_hash=forged.entry_hash,
        ),
    )
    with pytest.raises(WrongRoot):
        verify_bundle(swapped, KEY.verifier)


def test_a_wrong_leaf_index_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    with pytest.raises(WrongRoot, match="leaf 5"):
        verify_bundle(replace(bundle, leaf_index=5), KEY.verifier)


def test_a_leaf_index_outside_the_tree_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    with pytest.raises(LeafIndexOutOfRange, match="outside the checkpoint's tree of 13"):
        verify_bundle(replace(bundle, leaf_index=13), KEY.verifier)


def test_a_truncated_proof_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    assert len(bundle.inclusion_proof) == 4
    with pytest.raises(TruncatedProof, match="has 3 hashes; leaf 4 of a tree of 13 needs 4"):
        verify_bundle(replace(bundle, inclusion_proof=bundle.inclusion_proof[:-1]), KEY.verifier)


def test_an_altered_proof_hash_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    altered = (bytes(32), *bundle.inclusion_proof[1:])
    with pytest.raises(WrongRoot):
        verify_bundle(replace(bundle, inclusion_proof=altered), KEY.verifier)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())  # same name, another key
    with pytest.raises(CheckpointNotTrusted, match="not signed by"):
        verify_bundle(proof_bundle(LOG, 4, other), KEY.verifier)


def test_a_checkpoint_whose_size_was_edited_after_signing_is_refused() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    edited = bundle.checkpoint.replace(f"\n{len(LOG)}\n", f"\n{len(LOG) + 1}\n", 1)
    with pytest.raises(CheckpointNotTrusted, match="does not verify"):
        verify_bundle(replace(bundle, checkpoint=edited), KEY.verifier)


def test_a_malformed_checkpoint_note_is_bad_input() -> None:
    bundle = proof_bundle(LOG, 4, KEY)
    with pytest.raises(MalformedCheckpointNote):
        verify_bundle(replace(bundle, checkpoint=bundle.checkpoint.rstrip("\n")), KEY.verifier)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("leaf_index"), "leaf_index is missing"),
        (lambda d: d.update(format="other/v9"), "format"),
        (lambda d: d["entry"].update(entry_hash="zz"), "entry.entry_hash is not hex"),
        (lambda d: d["inclusion_proof"].append("AAAA"), r"inclusion_proof\[4\]"),
        (lambda d: d.update(leaf_index=True), "leaf_index"),
    ],
)
def test_bundles_not_in_the_format_are_malformed(change: object, message: str) -> None:
    document = json.loads(proof_bundle(LOG, 4, KEY).to_json())
    change(document)  # type: ignore[operator]
    with pytest.raises(MalformedBundle, match=message):
        parse_bundle(json.dumps(document))


def test_not_json_is_malformed() -> None:
    with pytest.raises(MalformedBundle, match="not JSON"):
        parse_bundle("{")


# --- consistency -------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [(1, 13), (4, 13), (5, 8), (7, 7), (8, 13)])
def test_checkpoints_of_a_growing_log_are_consistent(old: int, new: int) -> None:
    proof = parse_consistency_proof(log_consistency_proof(LOG, old, new).to_json())
    got_old, got_new = verify_consistency_between(
        signed_tree_checkpoint(LOG, old, KEY),
        signed_tree_checkpoint(LOG, new, KEY),
        proof,
        KEY.verifier,
    )
    assert (got_old.size, got_new.size) == (old, new)


def test_a_rewritten_history_is_inconsistent_with_the_old_checkpoint() -> None:
    learner_chain = [e for e in LOG if e.learner_id == LOG[2].learner_id]
    forged_chain = rewritten(learner_chain, at_sequence=LOG[2].sequence)
    forged_by_seq = {e.sequence: e for e in forged_chain}
    forged_log = [
        forged_by_seq[e.sequence] if e.learner_id == LOG[2].learner_id else e for e in LOG
    ]
    old = signed_tree_checkpoint(LOG, 5, KEY)  # signed before the rewrite
    new = signed_tree_checkpoint(forged_log, 13, KEY)  # re-signed with the real key
    proof = log_consistency_proof(forged_log, 5, 13)
    with pytest.raises(InconsistentCheckpoints, match="not shown to be a prefix"):
        verify_consistency_between(old, new, proof, KEY.verifier)


def test_a_rollback_is_inconsistent() -> None:
    old, new = signed_tree_checkpoint(LOG, 8, KEY), signed_tree_checkpoint(LOG, 5, KEY)
    with pytest.raises(InconsistentCheckpoints, match="rollback"):
        verify_consistency_between(old, new, ConsistencyProof(8, 5, ()), KEY.verifier)


def test_a_newer_checkpoint_signed_by_another_key_is_refused() -> None:
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointNotTrusted):
        verify_consistency_between(
            signed_tree_checkpoint(LOG, 5, KEY),
            signed_tree_checkpoint(LOG, 13, other),
            log_consistency_proof(LOG, 5, 13),
            KEY.verifier,
        )


def test_a_proof_for_other_sizes_than_the_checkpoints_is_malformed() -> None:
    with pytest.raises(MalformedBundle, match="sizes 4 -> 13"):
        verify_consistency_between(
            signed_tree_checkpoint(LOG, 5, KEY),
            signed_tree_checkpoint(LOG, 13, KEY),
            log_consistency_proof(LOG, 4, 13),
            KEY.verifier,
        )


def test_the_verifier_runs_from_its_four_files_alone(tmp_path: Path) -> None:
    # A third party copies domain/{merkle,signed_note,tlog_checkpoint,proofs}.py and needs
    # nothing else of ours: no services, no adapters, no other domain module.
    domain = Path(proofs_module.__file__).parent
    target = tmp_path / "learnerledger" / "domain"
    target.mkdir(parents=True)
    for name in ("__init__", "merkle", "signed_note", "tlog_checkpoint", "proofs"):
        shutil.copy(domain / f"{name}.py", target / f"{name}.py")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(proof_bundle(LOG, 3, KEY).to_json())
    script = (
        "import sys, pathlib\n"
        "from learnerledger.domain import proofs, signed_note\n"
        f"assert proofs.__file__.startswith({str(tmp_path)!r}), proofs.__file__\n"
        "b = proofs.parse_bundle(pathlib.Path(sys.argv[1]).read_text())\n"
        "v = proofs.verify_bundle(b, signed_note.parse_verifier_key(sys.argv[2]))\n"
        "ours = sorted(m for m in sys.modules if m.startswith('learnerledger'))\n"
        "others = sorted(m for m in ('pydantic', 'asyncpg', 'grpc', 'aiokafka', 'rfc8785')"
        " if m in sys.modules)\n"
        "print(v.leaf_index, ours, others)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(bundle), KEY.verifier.verifier_key()],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    allowed = [
        "learnerledger",
        "learnerledger.domain",
        "learnerledger.domain.merkle",
        "learnerledger.domain.proofs",
        "learnerledger.domain.signed_note",
        "learnerledger.domain.tlog_checkpoint",
    ]
    assert result.stdout.strip() == f"3 {allowed} []"
