"""Connection pools with the least privilege a service needs.

Each service names its group role (``ll_ledger``, ``ll_query``, ...; see migration 0002). When
the login role is a member of it, every pooled connection does ``SET ROLE`` so the session holds
only that role's grants. In production each service logs in with its own role instead.
"""

from __future__ import annotations

import asyncpg

from learnerledger.postgres.errors import describe_connection_error


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached or refused the login; the message names DATABASE_URL."""


async def create_pool(
    dsn: str, *, role: str | None = None, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    async def init(connection: asyncpg.Connection) -> None:
        if role is not None:
            await connection.execute(f'SET ROLE "{role}"')

    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=init, command_timeout=60
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(describe_connection_error(dsn, exc)) from exc
    assert pool is not None
    return pool
