"""``ledgerctl learner token APAAR_ID``: a learner's ID token from the local development
identity provider (:mod:`learnerledger_devstack.dev_identity`; development only)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from learnerledger.ctl.cli import UsageProblem, command, group, require_devstack


def register(commands: Any) -> None:
    learner = group(commands, "learner", "learners (the local development identity provider)")
    learner_token = command(
        learner, "token", cmd_learner_token, "sign a learner's ID token (local development only)"
    )
    learner_token.add_argument("learner_id", metavar="APAAR_ID")
    learner_token.add_argument("--lifetime-s", type=int, default=3600)


def cmd_learner_token(args: argparse.Namespace) -> int:
    require_devstack("learner token")
    from learnerledger_devstack.dev_identity import for_state_dir
    from learnerledger_devstack.stack import StackConfig

    provider = for_state_dir(StackConfig.from_env().state_dir).ensure()
    try:
        token = provider.mint(args.learner_id, lifetime_s=args.lifetime_s)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    print(
        f"ID token for learner {args.learner_id} from the local development provider "
        f"(valid {args.lifetime_s} s; key set {provider.jwks_file}):",
        file=sys.stderr,
    )
    print(token)
    return 0
