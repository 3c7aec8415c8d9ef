"""``ledgerctl token admin|revoke``: API tokens (``issuer token`` and ``university token`` issue
theirs with :func:`issue_token_command`)."""

from __future__ import annotations

import argparse
from typing import Any

from learnerledger.ctl.cli import Handler, command, group, with_connection


def register(commands: Any) -> None:
    tokens = group(commands, "token", "API tokens")
    command(tokens, "admin", issue_token_command("admin"), "create an admin API token (shown once)")
    revoke = command(tokens, "revoke", cmd_token_revoke, "revoke a token by its id")
    revoke.add_argument("token_id")


def register_partner(commands: Any, kind: str, about: str, add_help: str) -> None:
    """``ledgerctl <kind> add|token`` for a partner kind (``issuer``, ``university``)."""
    partners = group(commands, kind, about)
    add = command(partners, "add", _add_partner_command(kind), add_help)
    add.add_argument("principal_id", metavar=f"{kind}_id")
    add.add_argument("--name", help="display name")
    token = command(
        partners, "token", issue_token_command(kind), "create an API token (shown once)"
    )
    token.add_argument("principal_id", metavar=f"{kind}_id")


def _add_partner_command(kind: str) -> Handler:
    async def add_partner(args: argparse.Namespace) -> int:
        from learnerledger.postgres import catalog

        add_to_catalog = {"issuer": catalog.add_issuer, "university": catalog.add_university}[kind]

        async def add(connection: Any) -> int:
            await add_to_catalog(connection, args.principal_id, args.name or args.principal_id)
            print(f"{kind} {args.principal_id} added")
            return 0

        return await with_connection(add)

    return add_partner


def issue_token_command(kind: str) -> Handler:
    """The handler that issues a token for a principal of ``kind`` (``args.principal_id``)."""

    async def issue(args: argparse.Namespace) -> int:
        from learnerledger.postgres import catalog

        async def create(connection: Any) -> int:
            principal = getattr(args, "principal_id", None) or "ops"
            token_id, token = await catalog.issue_token(
                connection, catalog.PrincipalKind(kind), principal
            )
            print(f"token {token_id} for {kind} {principal} (shown once, stored only as a hash):")
            print(token)
            return 0

        return await with_connection(create)

    return issue


async def cmd_token_revoke(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def revoke(connection: Any) -> int:
        await catalog.revoke_token(connection, args.token_id)
        print(f"token {args.token_id} revoked")
        return 0

    return await with_connection(revoke)
