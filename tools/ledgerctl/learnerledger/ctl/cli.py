"""What every ``ledgerctl`` command group shares: errors a user can fix, settings, the database
connection, argument types, and the local stack's defaults on a development machine.

Each command group is a module with ``register(commands)``, which adds its parser(s) to the
``ledgerctl`` subparsers and sets each command's ``handler`` (a function of the parsed
arguments returning the exit code, or a coroutine of it); :mod:`learnerledger.ctl.main`
assembles the groups and runs the handler.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from learnerledger.config import CommonSettings

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]

DEVSTACK_PACKAGE = "learnerledger_devstack"


class UsageProblem(Exception):
    """Something the user can fix; printed without a traceback."""


class DevStackMissing(UsageProblem):
    """A development command ran where the development stack package is not installed."""

    def __init__(self, command: str) -> None:
        super().__init__(
            f"`ledgerctl {command}` needs the development stack (learner-ledger-devstack), "
            "which is not installed here; on a development machine run scripts/bootstrap.sh "
            "or `pip install -e tools/devstack`"
        )


def common_settings() -> CommonSettings:
    return CommonSettings()


# parsers -------------------------------------------------------------------------------------
def command(group: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """Add command ``name`` to ``group`` (subparsers), run by ``handler``."""
    sub: argparse.ArgumentParser = group.add_parser(name, help=help_text)
    sub.set_defaults(handler=handler)
    return sub


def group(commands: Any, name: str, help_text: str) -> Any:
    """Add the command group ``name`` to ``commands``; returns its subparsers (its actions)."""
    sub = commands.add_parser(name, help=help_text)
    return sub.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def instant_arg(value: str) -> datetime:
    """An ISO 8601 instant for ``--since`` / ``--until``; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 instant (e.g. 2026-03-01T00:00:00Z)"
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# the development stack -----------------------------------------------------------------------
def devstack_installed() -> bool:
    """Whether the development stack (tools/devstack) is installed; never in the image."""
    try:
        import learnerledger_devstack  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != DEVSTACK_PACKAGE:
            raise
        return False
    return True


def require_devstack(command: str) -> None:
    """Raise :class:`DevStackMissing` (exit 2) unless the development stack is installed."""
    if not devstack_installed():
        raise DevStackMissing(command)


def use_local_kafka_principal(principal: str) -> None:
    """Without KAFKA_SECURITY_PROTOCOL set, a command on the local stack authenticates to its
    Kafka as ``principal`` (``admin`` for ledgerctl's own commands, a service's for ``serve``;
    see :mod:`learnerledger_devstack.local`). Nothing without the development stack."""
    if devstack_installed():
        from learnerledger_devstack.local import kafka_principal_env

        os.environ.update(kafka_principal_env(principal))


def use_local_learner_sign_in() -> None:
    """Without LEARNER_OIDC_ISSUER set, a service on the local stack accepts learners' ID
    tokens from the local development provider (``ledgerctl learner token``), if the stack has
    one (``stack up`` makes it). A deployment configures its own provider instead."""
    if devstack_installed():
        from learnerledger_devstack.local import learner_sign_in_env

        os.environ.update(learner_sign_in_env())


def database_url(purpose: str) -> str:
    """DATABASE_URL when set; else the local stack's login for ``purpose`` (``admin``,
    ``migrator`` or a service name) when the stack has made its logins; else the default."""
    if devstack_installed():
        from learnerledger_devstack.local import database_url as local_database_url

        local = local_database_url(purpose)
        if local is not None:
            return local
    return common_settings().database_url


# the database --------------------------------------------------------------------------------
async def with_connection(action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """Run ``action`` on one connection as the admin login (``ll_admin``)."""
    from learnerledger.postgres.pool import create_pool

    pool = await create_pool(database_url("admin"), role="ll_admin", max_size=1)
    try:
        async with pool.acquire() as connection:
            return await action(connection)
    finally:
        await pool.close()


def redact(dsn: str) -> str:
    from learnerledger.postgres.errors import redact as redact_dsn

    return redact_dsn(dsn)
