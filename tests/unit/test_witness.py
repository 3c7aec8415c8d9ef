"""The witness (domain/witness.py and ``ledgerctl witness check``): it accepts a growing log and
refuses a rollback and a rewritten history re-signed with the real key, keeping its state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.entries import Entry
from learnerledger.domain.proofs import CheckpointNotTrusted
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.domain.witness import Fork, Rollback, load_state, witness_step
from tests.support.cli import ledgerctl
from tests.support.domain import (
    ORIGIN,
    credit_log,
    log_consistency_proof,
    rewritten,
    signed_tree_checkpoint,
)

LOG = credit_log(12)
KEY = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def history_rewritten_at(index: int) -> list[Entry]:
    """The log with entry ``index`` rewritten and its learner's later entries re-chained."""
    learner = LOG[index].learner_id
    chain = [e for e in LOG if e.learner_id == learner]
    forged = {e.sequence: e for e in rewritten(chain, at_sequence=LOG[index].sequence)}
    return [forged[e.sequence] if e.learner_id == learner else e for e in LOG]


def test_the_witness_follows_a_growing_log() -> None:
    state = witness_step(None, signed_tree_checkpoint(LOG, 3, KEY), None, KEY.verifier)
    for old, new in ((3, 7), (7, 12)):
        proof = log_consistency_proof(LOG, old, new)
        state = witness_step(state, signed_tree_checkpoint(LOG, new, KEY), proof, KEY.verifier)
        assert state.checkpoint.size == new
    same = witness_step(state, signed_tree_checkpoint(LOG, 12, KEY), None, KEY.verifier)
    assert same is state
    assert load_state(state.to_json(), KEY.verifier) == state


def test_a_rollback_raises_the_alarm() -> None:
    state = witness_step(None, signed_tree_checkpoint(LOG, 7, KEY), None, KEY.verifier)
    with pytest.raises(Rollback, match="from 7 to 5"):
        witness_step(state, signed_tree_checkpoint(LOG, 5, KEY), None, KEY.verifier)


def test_a_rewritten_history_resigned_with_the_real_key_raises_the_alarm() -> None:
    forged = history_rewritten_at(2)
    state = witness_step(None, signed_tree_checkpoint(LOG, 6, KEY), None, KEY.verifier)
    with pytest.raises(Fork, match="does not extend the accepted tree of 6"):
        witness_step(
            state,
            signed_tree_checkpoint(forged, 12, KEY),
            log_consistency_proof(forged, 6, 12),
            KEY.verifier,
        )
    with pytest.raises(Fork, match="two different trees of 6"):
        witness_step(state, signed_tree_checkpoint(forged, 6, KEY), None, KEY.verifier)


def test_a_checkpoint_by_another_key_is_refused() -> None:
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    state = witness_step(None, signed_tree_checkpoint(LOG, 3, KEY), None, KEY.verifier)
    with pytest.raises(CheckpointNotTrusted):
        witness_step(
            state,
            signed_tree_checkpoint(LOG, 5, other),
            log_consistency_proof(LOG, 3, 5),
            KEY.verifier,
        )


# --- ledgerctl witness check, on files ------------------------------------------------------------


def witness(
    tmp_path: Path, log: list[Entry], size: int, old: int | None
) -> subprocess.CompletedProcess[str]:
    checkpoint = tmp_path / f"checkpoint-{size}"
    checkpoint.write_text(signed_tree_checkpoint(log, size, KEY))
    args = [str(checkpoint)]
    if old is not None:
        proof = tmp_path / f"proof-{old}-{size}.json"
        proof.write_text(log_consistency_proof(log, old, size).to_json())
        args.append(str(proof))
    key = KEY.verifier.verifier_key()
    state = str(tmp_path / "state.json")
    return ledgerctl(
        dict(os.environ), "witness", "check", *args, "--state", state, "--key", key, timeout=60
    )


def test_witness_check_keeps_its_state_and_exits_1_on_a_fork(tmp_path: Path) -> None:
    first = witness(tmp_path, LOG, 4, None)
    assert first.returncode == 0, first.stderr
    assert f"accepted the first checkpoint of '{ORIGIN}': tree size 4" in first.stdout
    grown = witness(tmp_path, LOG, 9, 4)
    assert grown.returncode == 0, grown.stderr
    assert "grew from tree size 4 to 9, consistently" in grown.stdout
    saved = (tmp_path / "state.json").read_text()

    fork = witness(tmp_path, history_rewritten_at(1), 12, 9)
    assert fork.returncode == 1
    assert "ALARM (Fork)" in fork.stderr
    rollback = witness(tmp_path, LOG, 6, None)
    assert rollback.returncode == 1
    assert "ALARM (Rollback)" in rollback.stderr
    assert (tmp_path / "state.json").read_text() == saved  # the alarms changed nothing

    assert witness(tmp_path, LOG, 12, 9).returncode == 0
    assert load_state((tmp_path / "state.json").read_text(), KEY.verifier).checkpoint.size == 12


def test_witness_check_needs_a_proof_to_grow(tmp_path: Path) -> None:
    assert witness(tmp_path, LOG, 4, None).returncode == 0
    result = witness(tmp_path, LOG, 9, None)
    assert result.returncode == 2
    assert "a consistency proof from size 4 to 9 is needed" in result.stderr
