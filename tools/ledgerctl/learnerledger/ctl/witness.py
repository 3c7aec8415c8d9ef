"""``ledgerctl witness check``: one witness step on files, with the state kept on disk.

The state file holds the last checkpoint accepted. A new checkpoint (and, when its tree is
larger, the consistency proof from the accepted size) is accepted only if signed by the trusted
key and a consistent extension; then the state is replaced atomically. Exit 0 accepted (or the
same checkpoint again), 1 a rollback, a fork or a checkpoint not signed by the key (the state is
left as it was), 2 unreadable input. Following the checkpoint topic or ``GET /checkpoint`` is
not built yet (issue 15).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from learnerledger.ctl.proof import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REJECTED,
    KEY_HELP,
    UnreadableInput,
    read_input,
    trusted_verifier,
)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def cmd_witness_check(args: argparse.Namespace) -> int:
    from learnerledger.domain.proofs import BadInput, ProofRejected, parse_consistency_proof
    from learnerledger.domain.witness import WitnessAlarm, load_state, witness_step

    state_path = Path(args.state)
    try:
        verifier = trusted_verifier(args.key)
        state = (
            load_state(read_input(args.state, "witness state"), verifier)
            if state_path.exists()
            else None
        )
        note = read_input(args.checkpoint, "checkpoint")
        proof = parse_consistency_proof(read_input(args.proof, "proof")) if args.proof else None
        new_state = witness_step(state, note, proof, verifier)
        if new_state is not state:
            _write_atomically(state_path, new_state.to_json())
    except WitnessAlarm as exc:
        print(f"ledgerctl witness: ALARM ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except ProofRejected as exc:
        print(f"ledgerctl witness: REJECTED ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except (BadInput, UnreadableInput, OSError) as exc:
        print(f"ledgerctl witness: bad input ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cp = new_state.checkpoint
    if state is None:
        print(f"accepted the first checkpoint of {cp.origin!r}: tree size {cp.size}")
    elif new_state is state:
        print(f"unchanged: {cp.origin!r} is still at tree size {cp.size}")
    else:
        print(
            f"accepted: {cp.origin!r} grew from tree size {state.checkpoint.size} to "
            f"{cp.size}, consistently"
        )
    return EXIT_OK


def add_witness_commands(commands: Any) -> None:
    group = commands.add_parser("witness", help="refuse checkpoints that rewrite or roll back")
    actions = group.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="accept a new checkpoint if it extends the last one accepted"
    )
    check.set_defaults(handler=cmd_witness_check)
    check.add_argument("checkpoint", metavar="CHECKPOINT")
    check.add_argument(
        "proof", metavar="PROOF.json", nargs="?", help="consistency proof from the accepted size"
    )
    check.add_argument("--state", required=True, help="the witness's state file (created)")
    check.add_argument("--key", required=True, help=KEY_HELP)
