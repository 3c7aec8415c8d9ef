"""``ledgerctl verify``: recompute every chain and checkpoint of the ledger.

Exit 0 verified, 1 broken, 3 (:data:`EXIT_UNPROTECTED`) every chain verifies but no signed
checkpoint covers it (yet)."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, with_connection


def register(commands: Any) -> None:
    verify = command(commands, "verify", cmd_verify, "recompute every chain and checkpoint")
    verify.add_argument("--learner", help="only this learner's chain")
    verify.add_argument("--public-key", help="trusted checkpoint key (hex); default from settings")


EXIT_UNPROTECTED = 3  # verify: every chain verifies, but no signed checkpoint covers it


async def cmd_verify(args: argparse.Namespace) -> int:
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.ledger.verification import load_signing_key, public_key_of, verify_ledger

    settings = LedgerSettings()
    trusted: bytes | None = None
    if args.public_key:
        trusted = bytes.fromhex(args.public_key)
    elif settings.checkpoint_signing_key_file is not None:
        trusted = public_key_of(load_signing_key(settings.checkpoint_signing_key_file))

    async def check(connection: Any) -> int:
        report = await verify_ledger(
            connection, learner_id=args.learner, trusted_public_key=trusted
        )
        print(
            f"checked {report.entries_checked} entries of {report.learners_checked} learners, "
            f"{report.checkpoints_checked} checkpoint(s)"
        )
        if report.first_break is not None:
            b = report.first_break
            print(f"BROKEN: learner {b.learner_id} sequence {b.sequence}: {b.reason}")
            print(f"  expected {b.expected_hash.hex()}\n  stored   {b.stored_hash.hex()}")
        for problem in report.checkpoint_problems:
            print(f"BROKEN: {problem.describe()}")
        if report.tree_checked and report.tree_size == 0:
            print("Merkle tree: no signed tree head yet (nothing to recompute)")
        elif report.tree_checked and report.tree_ok:
            print(
                f"Merkle tree: the root recomputed over the log's first {report.tree_size} "
                f"entries matches the latest signed tree head (size {report.tree_size})"
                + ("" if trusted is not None else ", whose signature was not checked (no key)")
            )
        if trusted is None and report.checkpoints_checked:
            print(
                "note: the checkpoints were checked against the key stored beside them, which a "
                "database insider could replace; pass --public-key or set "
                "LEDGER_CHECKPOINT_SIGNING_KEY_FILE"
            )
        return _verify_verdict(report, args.learner)

    return await with_connection(check)


def _verify_verdict(report: Any, learner: str | None) -> int:
    """Print the verdict of ``verify``; exit 0 verified, 1 broken, 3 chains fine but unsigned."""
    from learnerledger.domain.checkpoints import Coverage

    if not report.ok:
        print("ledger NOT verified: see BROKEN above")
        return 1
    chains = f"learner {learner}'s chain verifies" if learner else "every chain verifies"
    if report.coverage is Coverage.NO_CHECKPOINT:
        print(
            f"NOT PROTECTED: {chains}, but no signed checkpoint exists, so a consistent rewrite "
            "of history would not show (is LEDGER_CHECKPOINT_SIGNING_KEY_FILE set on the ledger?)"
        )
        return EXIT_UNPROTECTED
    if report.coverage is Coverage.NOT_COVERED:
        print(
            f"NOT PROTECTED: {chains}, but no signed checkpoint covers learner {learner} yet, "
            "so a consistent rewrite of it would not show"
        )
        return EXIT_UNPROTECTED
    what = f"learner {learner}'s chain" if learner else "every chain"
    print(
        f"ledger verified: {what} and all {report.checkpoints_checked} signed checkpoint(s) "
        "match, each extending the one before"
    )
    return 0
