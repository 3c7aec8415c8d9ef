"""``ledgerctl proof``: check exported proofs offline, with a key the verifier trusts; and
export them from the database.

``verify``, ``consistency`` and ``vkey`` need no database, no Kafka and no settings: only the
files and the key. Exit codes: 0 the proof holds, 1 it does not (a tampered entry, a wrong leaf
index, a truncated proof, a checkpoint not signed by the key, inconsistent checkpoints), 2 the
input cannot be read (a missing file, JSON that is not the format, a malformed note or key).

``export``, ``checkpoint`` and ``consistency-proof`` read the database (``DATABASE_URL``, as
the admin role) and write what a third party checks with the commands above. Exit codes: 0
written, 2 no such entry or tree head, 3 the entry is not yet under a signed tree head (the
checkpointer adds it on its next tick).
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_YET = 3

KEY_HELP = (
    "the log's note verifier key <name>+<key id hex>+<base64 key>, obtained out of band "
    "(or @FILE holding it); never taken from the checkpoint"
)


class UnreadableInput(Exception):
    """A file or key that cannot be read; exit 2."""


def read_input(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"cannot read the {what} {path}: {exc}") from exc


def trusted_verifier(key: str) -> Any:
    from learnerledger.domain.signed_note import MalformedNote, parse_verifier_key

    text = read_input(key[1:], "key file") if key.startswith("@") else key
    try:
        return parse_verifier_key(text)
    except MalformedNote as exc:
        raise UnreadableInput(f"--key: {exc}") from exc


def _fail(command: str, exc: Exception, code: int) -> int:
    verdict = "REJECTED" if code == EXIT_REJECTED else "bad input"
    print(f"ledgerctl proof {command}: {verdict} ({type(exc).__name__}): {exc}", file=sys.stderr)
    return code


def cmd_proof_verify(args: argparse.Namespace) -> int:
    from learnerledger.domain.proofs import BadInput, ProofRejected, parse_bundle, verify_bundle

    try:
        verifier = trusted_verifier(args.key)
        bundle = parse_bundle(read_input(args.bundle, "bundle"))
        verified = verify_bundle(bundle, verifier, origin=args.origin)
    except ProofRejected as exc:
        return _fail("verify", exc, EXIT_REJECTED)
    except (BadInput, UnreadableInput) as exc:
        return _fail("verify", exc, EXIT_BAD_INPUT)
    cp, entry = verified.checkpoint, verified.entry
    print(
        f"verified: entry {entry.get('learner_id')}/{entry.get('sequence')} "
        f"({entry.get('kind')}), entry hash {verified.entry_hash.hex()}, is leaf "
        f"{verified.leaf_index} of the log {cp.origin!r} at tree size {cp.size}, root "
        f"{base64.b64encode(cp.root_hash).decode()}, signed by {verifier.name}+"
        f"{verifier.key_id:08x}"
    )
    return EXIT_OK


def cmd_proof_consistency(args: argparse.Namespace) -> int:
    from learnerledger.domain.proofs import (
        BadInput,
        ProofRejected,
        parse_consistency_proof,
        verify_consistency_between,
    )

    try:
        verifier = trusted_verifier(args.key)
        old_note = read_input(args.old_checkpoint, "old checkpoint")
        new_note = read_input(args.new_checkpoint, "new checkpoint")
        proof = parse_consistency_proof(read_input(args.proof, "consistency proof"))
        old, new = verify_consistency_between(
            old_note, new_note, proof, verifier, origin=args.origin
        )
    except ProofRejected as exc:
        return _fail("consistency", exc, EXIT_REJECTED)
    except (BadInput, UnreadableInput) as exc:
        return _fail("consistency", exc, EXIT_BAD_INPUT)
    print(
        f"consistent: the log {new.origin!r} at tree size {new.size} extends its tree at size "
        f"{old.size}; both checkpoints signed by {verifier.name}+{verifier.key_id:08x}"
    )
    return EXIT_OK


def cmd_proof_vkey(args: argparse.Namespace) -> int:
    """Print the note verifier key of the checkpoint key, to publish to verifiers."""
    from learnerledger.domain.signed_note import MalformedNote, NoteVerifier

    try:
        if args.public_key is not None:
            public = bytes.fromhex(args.public_key)
        else:
            from learnerledger.ledger.verification import load_signing_key, public_key_of

            public = public_key_of(load_signing_key(Path(args.signing_key_file)))
        print(NoteVerifier.for_key(args.name, public).verifier_key())
    except (MalformedNote, ValueError, OSError) as exc:
        print(f"ledgerctl proof vkey: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _write_output(path: str | None, text: str) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")


async def cmd_proof_export(args: argparse.Namespace) -> int:
    """Write an entry's proof bundle (``learnerledger/proof-bundle/v1``) from the database."""
    from learnerledger.ctl.cli import with_connection
    from learnerledger.domain.proofs import Bundle, BundleEntry
    from learnerledger.postgres.credit_log import entry_at
    from learnerledger.postgres.tree_heads import NoTreeHead, inclusion_at

    async def export(connection: Any) -> int:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            entry = await entry_at(connection, args.learner, args.sequence)
            if entry is None:
                print(
                    f"ledgerctl proof export: learner {args.learner} has no entry with sequence "
                    f"{args.sequence}",
                    file=sys.stderr,
                )
                return EXIT_BAD_INPUT
            try:
                inclusion = await inclusion_at(
                    connection, args.learner, args.sequence, args.tree_size
                )
            except NoTreeHead as exc:
                print(f"ledgerctl proof export: {exc}", file=sys.stderr)
                return EXIT_NOT_YET if args.tree_size == 0 else EXIT_BAD_INPUT
        if inclusion is None:
            print(
                "ledgerctl proof export: the entry is not yet under a signed tree head (the "
                "checkpointer adds it on its next tick)",
                file=sys.stderr,
            )
            return EXIT_NOT_YET
        bundle = Bundle(
            BundleEntry(entry.canonical_json.decode("utf-8"), entry.prev_hash, entry.entry_hash),
            inclusion.leaf_index,
            tuple(inclusion.proof),
            inclusion.head.note,
        )
        _write_output(args.output, bundle.to_json())
        return EXIT_OK

    return await with_connection(export)


async def cmd_proof_checkpoint(args: argparse.Namespace) -> int:
    """Write a signed tree head (the latest, or of ``--tree-size``) from the database."""
    from learnerledger.ctl.cli import with_connection
    from learnerledger.postgres.tree_heads import NoTreeHead, head_of_size

    async def fetch(connection: Any) -> int:
        try:
            head = await head_of_size(connection, args.tree_size)
        except NoTreeHead as exc:
            print(f"ledgerctl proof checkpoint: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        _write_output(args.output, head.note)
        return EXIT_OK

    return await with_connection(fetch)


async def cmd_proof_consistency_proof(args: argparse.Namespace) -> int:
    """Write the consistency proof between two tree sizes from the database's stored nodes."""
    from learnerledger.ctl.cli import with_connection
    from learnerledger.domain.merkle import ProofError
    from learnerledger.domain.proofs import ConsistencyProof
    from learnerledger.postgres.merkle_tree import MissingNode, consistency_proof_between

    async def fetch(connection: Any) -> int:
        try:
            proof = await consistency_proof_between(connection, args.old_size, args.new_size)
        except (MissingNode, ProofError) as exc:
            print(f"ledgerctl proof consistency-proof: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        _write_output(
            args.output, ConsistencyProof(args.old_size, args.new_size, tuple(proof)).to_json()
        )
        return EXIT_OK

    return await with_connection(fetch)


def add_proof_commands(commands: Any) -> None:
    """The ``proof`` group, under ``ledgerctl``'s subcommands."""
    group = commands.add_parser("proof", help="check exported proofs offline with a trusted key")
    actions = group.add_subparsers(dest="proof_command", required=True, metavar="ACTION")

    verify = actions.add_parser(
        "verify", help="check an exported entry bundle against its signed checkpoint"
    )
    verify.set_defaults(handler=cmd_proof_verify)
    verify.add_argument("bundle", metavar="BUNDLE.json")
    verify.add_argument("--key", required=True, help=KEY_HELP)
    verify.add_argument("--origin", help="require this checkpoint origin (the log's name)")

    consistency = actions.add_parser(
        "consistency", help="check that a newer checkpoint's tree extends an older one's"
    )
    consistency.set_defaults(handler=cmd_proof_consistency)
    consistency.add_argument("old_checkpoint", metavar="OLD_CHECKPOINT")
    consistency.add_argument("new_checkpoint", metavar="NEW_CHECKPOINT")
    consistency.add_argument("proof", metavar="PROOF.json")
    consistency.add_argument("--key", required=True, help=KEY_HELP)
    consistency.add_argument("--origin", help="require this checkpoint origin (the log's name)")

    vkey = actions.add_parser(
        "vkey", help="print the note verifier key (<name>+<id>+<key>) to give to verifiers"
    )
    vkey.set_defaults(handler=cmd_proof_vkey)
    vkey.add_argument("--name", required=True, help="the key name (the log's origin)")
    source = vkey.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--public-key", help="the Ed25519 public key (hex, as keys generate prints)"
    )
    source.add_argument("--signing-key-file", help="the checkpoint signing key file")

    export = actions.add_parser(
        "export", help="write an entry's proof bundle from the database (as the admin role)"
    )
    export.set_defaults(handler=cmd_proof_export)
    export.add_argument("--learner", required=True, help="the learner (APAAR id)")
    export.add_argument("--sequence", required=True, type=int, help="the entry's sequence")
    export.add_argument(
        "--tree-size", type=int, default=0, help="prove against this signed tree head (0: latest)"
    )
    export.add_argument("-o", "--output", help="the bundle file (default: standard output)")

    checkpoint = actions.add_parser(
        "checkpoint", help="write a signed tree head (C2SP tlog-checkpoint) from the database"
    )
    checkpoint.set_defaults(handler=cmd_proof_checkpoint)
    checkpoint.add_argument(
        "--tree-size", type=int, default=0, help="the head of this tree size (0: the latest)"
    )
    checkpoint.add_argument("-o", "--output", help="the note file (default: standard output)")

    consistency_proof = actions.add_parser(
        "consistency-proof", help="write the consistency proof between two tree sizes"
    )
    consistency_proof.set_defaults(handler=cmd_proof_consistency_proof)
    consistency_proof.add_argument("old_size", type=int, metavar="OLD_SIZE")
    consistency_proof.add_argument("new_size", type=int, metavar="NEW_SIZE")
    consistency_proof.add_argument("-o", "--output", help="the proof file (default: stdout)")
