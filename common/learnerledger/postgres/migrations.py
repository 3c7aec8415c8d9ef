"""A tiny, explicit migration runner: numbered SQL files applied once, in order.

Why not a migration library: the well-kept ones (alembic, yoyo) speak psycopg/SQLAlchemy while
every service here speaks asyncpg, and the schema is plain SQL anyway. The runner is forty lines:
files ``NNNN_name.sql`` in ``sql/``, each applied in its own transaction, recorded with a
checksum in ``schema_migrations``; an advisory lock lets concurrent migrators (several pods)
wait for each other; a changed, already-applied file is an error, never silently re-run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

_LOCK_KEY = 0x4C4C_4D49  # "LLMI"


class MigrationChanged(RuntimeError):
    """An applied migration's file no longer matches what was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("learnerledger.postgres") / "sql"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            version, _, rest = item.name.partition("_")
            found.append(Migration(version, rest.removesuffix(".sql"), item.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied; return the names of those applied now."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await connection.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            applied = {
                row["version"]: row["checksum"]
                for row in await connection.fetch("SELECT version, checksum FROM schema_migrations")
            }
            done = []
            for migration in available_migrations():
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationChanged(
                            f"migration {migration.version}_{migration.name} changed after it was "
                            "applied; add a new migration instead of editing an applied one"
                        )
                    continue
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                done.append(f"{migration.version}_{migration.name}")
            return done
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await connection.close()
