"""``ledgerctl keys generate PATH``: signing keys (checkpoints, credentials)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from learnerledger.ctl.cli import UsageProblem, command, group


def register(commands: Any) -> None:
    keys = group(commands, "keys", "signing keys (checkpoints, credentials)")
    generate = command(keys, "generate", cmd_keys_generate, "write a new Ed25519 signing key")
    generate.add_argument("path")


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from learnerledger.ledger.verification import generate_signing_key

    path = Path(args.path)
    if path.exists():
        raise UsageProblem(f"{path} exists; refusing to overwrite a signing key")
    public = generate_signing_key(path)
    print(f"signing key written to {path}; public key (give to verifiers): {public.hex()}")
    return 0
