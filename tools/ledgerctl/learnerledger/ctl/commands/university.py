"""``ledgerctl university add|token``: universities that read transcripts."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, group, with_connection
from learnerledger.ctl.commands.token import issue_token_command


def register(commands: Any) -> None:
    university = group(commands, "university", "universities that read transcripts")
    add = command(university, "add", cmd_university_add, "register a university")
    add.add_argument("university_id")
    add.add_argument("--name", help="display name")
    token = command(
        university, "token", issue_token_command("university"), "create an API token (shown once)"
    )
    token.add_argument("principal_id", metavar="university_id")


async def cmd_university_add(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def add(connection: Any) -> int:
        await catalog.add_university(
            connection, args.university_id, args.name or args.university_id
        )
        print(f"university {args.university_id} added")
        return 0

    return await with_connection(add)
