"""Turn PostgreSQL connection failures into messages that name the setting to fix."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
