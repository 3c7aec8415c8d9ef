"""A tiny, explicit migration runner: numbered SQL files applied once, in order.

Why not a migration library: the well-kept ones (alembic, yoyo) speak psycopg/SQLAlchemy while
every service here speaks asyncpg, and the schema is plain SQL anyway. The runner is forty lines:
files ``NNNN_name.sql`` in ``sql/``, each applied in its own transaction, recorded with a
checksum in ``schema_migrations``; an advisory lock lets concurrent migrators (several pods)
wait for each other; a changed, already-applied file is an error, never silently re-run.

No login owns the schema: after each migration, in its transaction, whatever the migration login
created is handed over to the NOLOGIN role ``ll_owner`` (:data:`HAND_OVER_TO_OWNER`; migration
0009 creates the role and hands over what existed before). The migration login must be a member
of ``ll_owner``; see OPERATIONS.md "Database logins".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

_LOCK_KEY = 0x4C4C_4D49  # "LLMI"

OWNER_ROLE = "ll_owner"

#: Gives every table, view, sequence and function in ``public`` that the migration login owns
#: to ``ll_owner`` (sequences that belong to a column follow their table). Does nothing before
#: migration 0009 has created ``ll_owner``.
HAND_OVER_TO_OWNER = """
DO $$
DECLARE
    obj record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'll_owner') THEN
        RETURN;
    END IF;
    FOR obj IN
        SELECT c.oid::regclass::text AS name,
               CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                              WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                              ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relowner = current_user::regrole
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO ll_owner', obj.kind, obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure::text AS name
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proowner = current_user::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO ll_owner', obj.name);
    END LOOP;
END;
$$;
"""


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
                    await connection.execute(HAND_OVER_TO_OWNER)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                done.append(f"{migration.version}_{migration.name}")
            # schema_migrations itself, created above before ll_owner may have existed.
            await connection.execute(HAND_OVER_TO_OWNER)
            return done
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await connection.close()
