"""A witness's step, pure: accept a new checkpoint only if it extends the last one accepted.

The witness keeps the last checkpoint it accepted (``WitnessState``). A new checkpoint must be
signed by the trusted key and be a consistent extension of that one: the same tree (same size
and root), or a larger tree with a consistency proof from it. A smaller tree is a rollback; the
same size with another root, or a larger tree that the proof does not show to extend the old
one, is a fork (history was rewritten, even if re-signed with the real key). The first
checkpoint is accepted on its signature alone (trust on first use). How the checkpoints and
proofs arrive (a topic, ``GET /checkpoint``, files) is the caller's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from learnerledger.domain.proofs import (
    ConsistencyProof,
    InconsistentCheckpoints,
    MalformedBundle,
    ProofRejected,
    open_trusted_checkpoint,
    verify_consistency_between,
)
from learnerledger.domain.signed_note import NoteVerifier
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint

STATE_FORMAT = "learnerledger/witness-state/v1"


class WitnessAlarm(ProofRejected):
    """The log showed the witness something that does not extend what it accepted."""


class Rollback(WitnessAlarm):
    """The new checkpoint's tree is smaller than the one accepted."""


class Fork(WitnessAlarm):
    """The new checkpoint's tree does not extend the accepted one (history was rewritten)."""


@dataclass(frozen=True, slots=True)
class WitnessState:
    """The last checkpoint accepted: its note, verbatim, and what it states."""

    checkpoint: TreeCheckpoint
    note: str

    def to_json(self) -> str:
        return json.dumps({"format": STATE_FORMAT, "checkpoint": self.note}, indent=2) + "\n"


def load_state(text: str, verifier: NoteVerifier) -> WitnessState:
    """Read a saved state; its checkpoint is checked again with the trusted key."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedBundle(f"the witness state is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise MalformedBundle(f"the witness state is not {STATE_FORMAT}")
    note = document.get("checkpoint")
    if not isinstance(note, str):
        raise MalformedBundle("the witness state has no checkpoint")
    return WitnessState(open_trusted_checkpoint(note, verifier), note)


def witness_step(
    state: WitnessState | None,
    new_note: str,
    proof: ConsistencyProof | None,
    verifier: NoteVerifier,
) -> WitnessState:
    """The state after seeing ``new_note`` (with the consistency proof from the accepted
    checkpoint's size to the new size, if it is larger), or ``Rollback`` / ``Fork``."""
    new = open_trusted_checkpoint(new_note, verifier)
    if state is None:
        return WitnessState(new, new_note)
    old = state.checkpoint
    if new.origin != old.origin:
        raise MalformedBundle(f"the checkpoint is of the log {new.origin!r}, not {old.origin!r}")
    if new.size < old.size:
        raise Rollback(f"rollback: the log's tree went back from {old.size} to {new.size} entries")
    if new.size == old.size:
        if new.root_hash != old.root_hash:
            raise Fork(f"fork: two different trees of {new.size} entries were signed")
        return state
    if proof is None:
        raise MalformedBundle(f"a consistency proof from size {old.size} to {new.size} is needed")
    try:
        verify_consistency_between(state.note, new_note, proof, verifier)
    except InconsistentCheckpoints as exc:
        raise Fork(
            f"fork: the tree of {new.size} entries does not extend the accepted tree of "
            f"{old.size} ({exc})"
        ) from exc
    return WitnessState(new, new_note)
