"""Instants in entries: one spelling, RFC 3339 in UTC with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds: the one spelling of an instant in entries."""
    if value.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(value: str) -> datetime:
    """Inverse of :func:`format_instant`."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
