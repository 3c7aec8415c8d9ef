"""Issuers, universities, API tokens and the course catalog in PostgreSQL."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from learnerledger.domain.catalog import Course, CreditRecommendation, parse_level
from learnerledger.postgres import Connection


class PrincipalKind(enum.StrEnum):
    ISSUER = "issuer"
    UNIVERSITY = "university"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by an API token."""

    kind: PrincipalKind
    principal_id: str
    expire_time: datetime | None = None
    """When the token that established it stops working (None: never)."""

    def expired(self, now: datetime) -> bool:
        return self.expire_time is not None and self.expire_time <= now


class AlreadyExists(Exception):
    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} {identifier} already exists")
        self.what = what
        self.identifier = identifier


class NotFound(Exception):
    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} {identifier} does not exist")
        self.what = what
        self.identifier = identifier


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_issuer(connection: Connection, issuer_id: str, display_name: str) -> None:
    try:
        await connection.execute(
            "INSERT INTO issuers (issuer_id, display_name) VALUES ($1, $2)", issuer_id, display_name
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("issuer", issuer_id) from exc


async def add_university(connection: Connection, university_id: str, display_name: str) -> None:
    try:
        await connection.execute(
            "INSERT INTO universities (university_id, display_name) VALUES ($1, $2)",
            university_id,
            display_name,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("university", university_id) from exc


async def university_exists(connection: Connection, university_id: str) -> bool:
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM universities WHERE university_id = $1)", university_id
        )
    )


async def issue_token(
    connection: Connection,
    kind: PrincipalKind,
    principal_id: str,
    expire_time: datetime | None = None,
) -> tuple[str, str]:
    """Create an API token for a principal. Returns (token_id, token); only the hash is kept.

    With ``expire_time`` the token stops working at that instant (even one already past).
    """
    table, column = {
        PrincipalKind.ISSUER: ("issuers", "issuer_id"),
        PrincipalKind.UNIVERSITY: ("universities", "university_id"),
        PrincipalKind.ADMIN: (None, None),
    }[kind]
    if table is not None and not await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)", principal_id
    ):
        raise NotFound(kind.value, principal_id)
    token_id = secrets.token_hex(6)
    token = f"ll{kind.value[0]}_{token_id}_{secrets.token_urlsafe(32)}"
    await connection.execute(
        "INSERT INTO api_tokens (token_id, token_hash, principal_kind, principal_id, expire_time) "
        "VALUES ($1, $2, $3, $4, $5)",
        token_id,
        hash_token(token),
        kind.value,
        principal_id,
        expire_time,
    )
    return token_id, token


async def revoke_token(connection: Connection, token_id: str) -> None:
    status = await connection.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL",
        token_id,
    )
    if status.endswith(" 0"):
        raise NotFound("active token", token_id)


async def authenticate(connection: Connection, token: str) -> Principal | None:
    """The principal of an unrevoked token (with its expire_time: the caller checks it, so that a
    cached answer cannot outlive the token), or None."""
    row = await connection.fetchrow(
        "SELECT principal_kind, principal_id, expire_time FROM api_tokens "
        "WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    return None if row is None else Principal(PrincipalKind(row[0]), row[1], row[2])


def course_from_row(row: asyncpg.Record) -> Course:
    return Course(
        course_id=row["course_id"],
        issuer_id=row["issuer_id"],
        title=row["title"],
        level=parse_level(row["ncrf_level"]),
        notional_hours=row["notional_hours"],
        credit_recommendation=CreditRecommendation(row["credit_recommendation"]),
        skills=tuple(row["skills"]),
    )


async def add_course(connection: Connection, course: Course) -> None:
    try:
        await connection.execute(
            """INSERT INTO courses (course_id, issuer_id, title, ncrf_level, notional_hours,
                                    skills, credit_recommendation)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            course.course_id,
            course.issuer_id,
            course.title,
            course.level,
            course.notional_hours,
            list(course.skills),
            course.credit_recommendation.value,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("course", course.course_id) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound("issuer", course.issuer_id) from exc


async def set_recommendation(
    connection: Connection, course_id: str, state: CreditRecommendation
) -> Course:
    row = await connection.fetchrow(
        "UPDATE courses SET credit_recommendation = $2, updated_at = now() "
        "WHERE course_id = $1 RETURNING *",
        course_id,
        state.value,
    )
    if row is None:
        raise NotFound("course", course_id)
    return course_from_row(row)


async def courses_by_id(connection: Connection, course_ids: list[str]) -> dict[str, Course]:
    rows = await connection.fetch(
        "SELECT * FROM courses WHERE course_id = ANY($1::text[])", list(set(course_ids))
    )
    return {r["course_id"]: course_from_row(r) for r in rows}


async def list_courses(
    connection: Connection,
    *,
    issuer_id: str | None = None,
    after_course_id: str = "",
    limit: int = 100,
) -> list[Course]:
    rows = await connection.fetch(
        "SELECT * FROM courses WHERE ($1::text IS NULL OR issuer_id = $1) AND course_id > $2 "
        "ORDER BY course_id LIMIT $3",
        issuer_id,
        after_course_id,
        limit,
    )
    return [course_from_row(r) for r in rows]
