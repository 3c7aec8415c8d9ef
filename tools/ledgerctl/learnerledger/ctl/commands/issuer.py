"""``ledgerctl issuer add|token``: partners that certify learning."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, group, with_connection
from learnerledger.ctl.commands.token import issue_token_command


def register(commands: Any) -> None:
    issuer = group(commands, "issuer", "partners that certify learning")
    add = command(issuer, "add", cmd_issuer_add, "register an issuer")
    add.add_argument("issuer_id")
    add.add_argument("--name", help="display name")
    token = command(
        issuer, "token", issue_token_command("issuer"), "create an API token (shown once)"
    )
    token.add_argument("principal_id", metavar="issuer_id")


async def cmd_issuer_add(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def add(connection: Any) -> int:
        await catalog.add_issuer(connection, args.issuer_id, args.name or args.issuer_id)
        print(f"issuer {args.issuer_id} added")
        return 0

    return await with_connection(add)
