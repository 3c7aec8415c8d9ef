"""``ledgerctl``: run the services, manage the local stack, the catalog and the ledger.

Every subcommand reads its settings from the environment (``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ...). Without ``DATABASE_URL``, a command on the local stack logs in
with the login meant for it (``ll_admin_login`` for admin commands, ``ll_migrator`` for
``db migrate``, each service's own for ``serve``; see :mod:`learnerledger_devstack.db_logins`).
Errors a user can fix are printed as one message naming the setting or argument to change,
with exit code 2; a broken ledger (``verify``) exits 1, and a ledger whose chains verify but
that no signed checkpoint covers (yet) exits 3.

Each command group is one module that owns its arguments and its code (``register``, see
:mod:`learnerledger.ctl.cli`); this module assembles them, in the order ``--help`` lists them.
``stack``, ``demo`` and ``learner token`` need the development stack (tools/devstack).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from learnerledger.ctl.cli import UsageProblem, use_local_kafka_principal
from learnerledger.ctl.commands import (
    bulk,
    course,
    credential,
    db,
    demo,
    issuer,
    keys,
    lag,
    learner,
    proof,
    redeem,
    replay,
    serve,
    stack,
    token,
    topics,
    transcripts,
    university,
    verify,
    witness,
)

#: Each group's ``register(commands)``, in the order of ``ledgerctl --help``.
GROUPS: tuple[Callable[[Any], None], ...] = (
    stack.register,
    demo.register,
    db.register,
    topics.register,
    serve.register,
    issuer.register,
    university.register,
    token.register,
    course.register,
    verify.register,
    proof.add_proof_commands,
    witness.add_witness_commands,
    bulk.add_submit_command,
    transcripts.add_transcripts_command,
    redeem.add_redemption_commands,
    learner.register,
    credential.add_credential_commands,
    keys.register,
    replay.register,
    lag.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerctl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not getattr(args, "own_kafka_principal", False):  # serve picks its service's principal
        use_local_kafka_principal("admin")
    sys.exit(run(args))


def run(args: argparse.Namespace) -> int:
    from learnerledger.domain.catalog import InvalidCourse
    from learnerledger.postgres.catalog import AlreadyExists, NotFound
    from learnerledger.postgres.pool import DatabaseUnavailable

    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            print(f"ledgerctl: setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    except (
        DatabaseUnavailable,
        AlreadyExists,
        NotFound,
        InvalidCourse,
        UsageProblem,
        OSError,
        TimeoutError,
        RuntimeError,
    ) as exc:
        print(f"ledgerctl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    main()
