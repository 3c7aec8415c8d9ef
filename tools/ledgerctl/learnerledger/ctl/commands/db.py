"""``ledgerctl db migrate``: the PostgreSQL schema."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import command, database_url, group


def register(commands: Any) -> None:
    db = group(commands, "db", "the PostgreSQL schema")
    command(db, "migrate", cmd_db_migrate, "apply pending schema migrations")


async def cmd_db_migrate(args: argparse.Namespace) -> int:
    from learnerledger.postgres.migrations import migrate

    applied = await migrate(database_url("migrator"))
    print("\n".join(f"applied {name}" for name in applied) or "schema is up to date")
    return 0
