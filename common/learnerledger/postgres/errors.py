"""PostgreSQL connection failures: which errors mean "unreachable", and messages that name the
setting to fix."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg import exceptions as pg_errors

#: Errors that mean PostgreSQL cannot be reached right now (refused or dropped connections, a
#: server shutting down or restarting, a connection lost mid-query), as opposed to a statement
#: that is wrong. Callers answer UNAVAILABLE or retry; they never treat these as a bad request.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.InterfaceError,  # the connection is closed or was lost
    # A connection reused after an operation on it broke midway ("cannot switch to state N;
    # another operation is in progress"); the pool terminates it on release.
    asyncpg.InternalClientError,
    pg_errors.PostgresConnectionError,  # SQLSTATE class 08
    pg_errors.OperatorInterventionError,  # class 57: admin shutdown, crash, cannot connect now
)

#: Errors about the DATA of one statement rather than the connection: a value PostgreSQL cannot
#: store (NUL in text or jsonb, a number or date out of range, a string too long for its type
#: or index, a CHECK or NOT NULL constraint) or one asyncpg cannot encode for it. Retrying the
#: same data fails the same way, so the ledger isolates the record instead of pausing. Catch
#: these BEFORE :data:`DATABASE_UNREACHABLE`: asyncpg's client-side encoding ``DataError`` is
#: also an ``InterfaceError``.
DATA_UNSTORABLE: tuple[type[Exception], ...] = (
    pg_errors.DataError,  # SQLSTATE class 22: untranslatable character, out of range, too long
    pg_errors.CheckViolationError,  # 23514
    pg_errors.NotNullViolationError,  # 23502
    pg_errors.ProgramLimitExceededError,  # class 54: e.g. an index row too large
    asyncpg.exceptions._base.DataError,  # client side: a query argument it cannot encode
)


def describe_data_error(exc: BaseException) -> str:
    """What went wrong with the data, for a rejection (not for logs: the server's message may
    quote the value): the SQLSTATE, the error class and the message."""
    sqlstate = getattr(exc, "sqlstate", None)
    where = f"SQLSTATE {sqlstate} " if sqlstate else ""
    return f"PostgreSQL cannot store this record: {where}{type(exc).__name__}: {exc}"


def redact(dsn: str) -> str:
    """The DSN without its password, fit for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_connection_error(dsn: str, exc: BaseException) -> str:
    reason = type(exc).__name__
    detail = str(exc).strip() or reason
    return (
        f"cannot connect to PostgreSQL at DATABASE_URL={redact(dsn)}: {detail} ({reason}). "
        "Check DATABASE_URL (host, port, user, password, database), or run `ledgerctl stack up`."
    )
