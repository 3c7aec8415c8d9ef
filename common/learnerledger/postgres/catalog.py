"""Issuers, universities, API tokens and the course catalog in PostgreSQL."""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from learnerledger.domain.catalog import (
    NCRF_ALL_LEVELS,
    Course,
    CourseCategory,
    CourseFilter,
    CourseLabel,
    CreditRecommendation,
    HoursBasis,
    InvalidCourse,
    RecommendationChange,
    levels_for,
    parse_level,
    recommendation_at,
)
from learnerledger.domain.redemption import Programme
from learnerledger.postgres import Connection


class PrincipalKind(enum.StrEnum):
    ISSUER = "issuer"
    UNIVERSITY = "university"
    ADMIN = "admin"
    #: A learner signed in through the identity provider (an OpenID Connect ID token, never an
    #: API token: ``issue_token`` refuses this kind). The principal id is the APAAR id.
    LEARNER = "learner"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by an API token."""

    kind: PrincipalKind
    principal_id: str
    expire_time: datetime | None = None
    """When the token that established it stops working (None: never)."""

    def expired(self, now: datetime) -> bool:
        return self.expire_time is not None and self.expire_time <= now


class CatalogObject(enum.StrEnum):
    """What a catalog write found already there, or missing."""

    ISSUER = "issuer"
    UNIVERSITY = "university"
    COURSE = "course"
    PROGRAMME = "programme"
    ACTIVE_TOKEN = "active token"


class AlreadyExists(Exception):
    def __init__(self, what: CatalogObject, identifier: str) -> None:
        super().__init__(f"{what} {identifier} already exists")
        self.what = what
        self.identifier = identifier


class NotFound(Exception):
    def __init__(self, what: CatalogObject, identifier: str) -> None:
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
        raise AlreadyExists(CatalogObject.ISSUER, issuer_id) from exc


async def add_university(connection: Connection, university_id: str, display_name: str) -> None:
    try:
        await connection.execute(
            "INSERT INTO universities (university_id, display_name) VALUES ($1, $2)",
            university_id,
            display_name,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(CatalogObject.UNIVERSITY, university_id) from exc


async def university_exists(connection: Connection, university_id: str) -> bool:
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM universities WHERE university_id = $1)", university_id
        )
    )


class RequestIdConflict(Exception):
    """A request id was reused for a different request."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request id {request_id} was used for a different consent request")
        self.request_id = request_id


async def claim_consent_request(
    connection: Connection,
    *,
    request_id: str,
    learner_id: str,
    university_id: str,
    action: str,
    event_id: uuid.UUID,
) -> None:
    """Record that ``request_id`` names this consent request. The same request again is fine
    (a retry); a different one raises ``RequestIdConflict``."""
    inserted = await connection.fetchval(
        "INSERT INTO consent_requests (request_id, learner_id, university_id, action, event_id) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING RETURNING true",
        request_id,
        learner_id,
        university_id,
        action,
        event_id,
    )
    if inserted:
        return
    existing = await connection.fetchval(
        "SELECT event_id FROM consent_requests WHERE request_id = $1", request_id
    )
    if existing != event_id:
        raise RequestIdConflict(request_id)


async def issue_token(
    connection: Connection,
    kind: PrincipalKind,
    principal_id: str,
    expire_time: datetime | None = None,
) -> tuple[str, str]:
    """Create an API token for a principal. Returns (token_id, token); only the hash is kept.

    With ``expire_time`` the token stops working at that instant (even one already past).
    """
    if kind is PrincipalKind.LEARNER:
        raise ValueError("learners sign in with an ID token from the identity provider")
    table, column = {
        PrincipalKind.ISSUER: ("issuers", "issuer_id"),
        PrincipalKind.UNIVERSITY: ("universities", "university_id"),
        PrincipalKind.ADMIN: (None, None),
    }[kind]
    if table is not None and not await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)", principal_id
    ):
        raise NotFound(CatalogObject(kind.value), principal_id)
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
        raise NotFound(CatalogObject.ACTIVE_TOKEN, token_id)


async def authenticate(connection: Connection, token: str) -> Principal | None:
    """The principal of an unrevoked token (with its expire_time: the caller checks it, so that a
    cached answer cannot outlive the token), or None."""
    row = await connection.fetchrow(
        "SELECT principal_kind, principal_id, expire_time FROM api_tokens "
        "WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    return None if row is None else Principal(PrincipalKind(row[0]), row[1], row[2])


def course_from_row(row: asyncpg.Record, history: Sequence[RecommendationChange] = ()) -> Course:
    return Course(
        course_id=row["course_id"],
        issuer_id=row["issuer_id"],
        title=row["title"],
        level=parse_level(row["ncrf_level"], allowed=NCRF_ALL_LEVELS),
        notional_hours=row["notional_hours"],
        credit_recommendation=CreditRecommendation(row["credit_recommendation"]),
        skills=tuple(row["skills"]),
        history=tuple(history),
        counts_as=row["counts_as_course_id"] or "",
        category=CourseCategory(row["category"]),
        hours_basis=HoursBasis(row["hours_basis"]),
        theory_hours=row["theory_hours"],
        practical_hours=row["practical_hours"],
        experiential_hours=row["experiential_hours"],
    )


def _change_from_row(row: asyncpg.Record) -> RecommendationChange:
    effective_at: datetime = row["effective_at"]
    if effective_at.tzinfo is None:  # asyncpg decodes '-infinity' as a naive datetime.min
        effective_at = effective_at.replace(tzinfo=UTC)
    return RecommendationChange(
        change_id=row["change_id"],
        course_id=row["course_id"],
        state=CreditRecommendation(row["state"]),
        effective_at=effective_at,
        recorded_at=row["recorded_at"],
        reason=row["reason"],
    )


async def recommendation_histories(
    connection: Connection, course_ids: Sequence[str]
) -> dict[str, list[RecommendationChange]]:
    rows = await connection.fetch(
        "SELECT * FROM course_recommendation_changes WHERE course_id = ANY($1::text[]) "
        "ORDER BY course_id, effective_at, recorded_at",
        list(set(course_ids)),
    )
    histories: dict[str, list[RecommendationChange]] = {}
    for row in rows:
        histories.setdefault(row["course_id"], []).append(_change_from_row(row))
    return histories


async def approvals_awaiting_fanout(
    connection: Connection, limit: int = 100
) -> list[RecommendationChange]:
    """Approvals whose re-decision requests have not all been published yet, oldest first."""
    rows = await connection.fetch(
        "SELECT c.* FROM course_recommendation_changes c "
        "WHERE c.state = 'approved' AND NOT EXISTS "
        "(SELECT 1 FROM course_redecision_fanouts f WHERE f.change_id = c.change_id) "
        "ORDER BY c.recorded_at, c.change_id LIMIT $1",
        limit,
    )
    return [_change_from_row(r) for r in rows]


async def record_fanout(connection: Connection, change_id: uuid.UUID, learners: int) -> None:
    await connection.execute(
        "INSERT INTO course_redecision_fanouts (change_id, learners) VALUES ($1, $2) "
        "ON CONFLICT (change_id) DO NOTHING",
        change_id,
        learners,
    )


def _course_lock_key(course_id: str) -> str:
    return f"learnerledger.course:{course_id}"


async def hold_courses_shared(connection: Connection, course_ids: Sequence[str]) -> None:
    """Take a transaction-scoped shared lock on each course's recommendation history.

    The appender holds it from reading a course's history until its batch commits; recording a
    change takes it exclusively. So a batch either sees a change or commits before the change's
    affected completions are looked up, never neither (see ARCHITECTURE.md, re-decision).
    """
    await connection.execute(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0)) "
        "FROM unnest($1::text[]) AS k ORDER BY k",
        sorted({_course_lock_key(c) for c in course_ids}),
    )


async def add_course(connection: Connection, course: Course) -> None:
    try:
        async with connection.transaction():
            await connection.execute(
                """INSERT INTO courses (course_id, issuer_id, title, ncrf_level, notional_hours,
                                        skills, credit_recommendation, counts_as_course_id,
                                        category, hours_basis, theory_hours, practical_hours,
                                        experiential_hours)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
                course.course_id,
                course.issuer_id,
                course.title,
                course.level,
                course.notional_hours,
                list(course.skills),
                course.credit_recommendation.value,
                course.counts_as or None,
                course.category.value,
                course.hours_basis.value,
                course.theory_hours,
                course.practical_hours,
                course.experiential_hours,
            )
            if course.credit_recommendation is not CreditRecommendation.PENDING:
                # A course created approved (or withdrawn) has held that state from the start.
                await connection.execute(
                    "INSERT INTO course_recommendation_changes "
                    "(change_id, course_id, state, effective_at, reason) "
                    "VALUES ($1, $2, $3, '-infinity', 'state the course was created with')",
                    uuid.uuid4(),
                    course.course_id,
                    course.credit_recommendation.value,
                )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(CatalogObject.COURSE, course.course_id) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        if course.counts_as and "counts_as" in str(exc):
            raise NotFound(CatalogObject.COURSE, course.counts_as) from exc
        raise NotFound(CatalogObject.ISSUER, course.issuer_id) from exc


async def propose_course(connection: Connection, course: Course) -> None:
    """Add an issuer's proposed course, PENDING (the column's default: the gateway's role may
    not write credit_recommendation, migration 0046)."""
    try:
        await connection.execute(
            """INSERT INTO courses (course_id, issuer_id, title, ncrf_level, notional_hours,
                                    skills, counts_as_course_id, category, hours_basis,
                                    theory_hours, practical_hours, experiential_hours)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
            course.course_id,
            course.issuer_id,
            course.title,
            course.level,
            course.notional_hours,
            list(course.skills),
            course.counts_as or None,
            course.category.value,
            course.hours_basis.value,
            course.theory_hours,
            course.practical_hours,
            course.experiential_hours,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(CatalogObject.COURSE, course.course_id) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        if course.counts_as and "counts_as" in str(exc):
            raise NotFound(CatalogObject.COURSE, course.counts_as) from exc
        raise NotFound(CatalogObject.ISSUER, course.issuer_id) from exc


async def set_recommendation(
    connection: Connection,
    course_id: str,
    state: CreditRecommendation,
    *,
    effective_at: datetime | None = None,
    reason: str = "",
) -> tuple[Course, RecommendationChange]:
    """Record an approval or withdrawal effective at ``effective_at`` (default: now).

    Appends to the course's history (never overwrites it) and refreshes the course's current
    state. Raises ``InvalidCourse`` for a backdating without a reason.
    """
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _course_lock_key(course_id)
        )
        if not await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM courses WHERE course_id = $1)", course_id
        ):
            raise NotFound(CatalogObject.COURSE, course_id)
        recorded_at: datetime = await connection.fetchval("SELECT clock_timestamp()")
        change = RecommendationChange(
            change_id=uuid.uuid4(),
            course_id=course_id,
            state=state,
            effective_at=effective_at or recorded_at,
            recorded_at=recorded_at,
            reason=reason,
        )
        await connection.execute(
            "INSERT INTO course_recommendation_changes "
            "(change_id, course_id, state, effective_at, reason, recorded_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            change.change_id,
            change.course_id,
            change.state.value,
            change.effective_at,
            change.reason,
            change.recorded_at,
        )
        history = (await recommendation_histories(connection, [course_id]))[course_id]
        row = await connection.fetchrow(
            "UPDATE courses SET credit_recommendation = $2, updated_at = now() "
            "WHERE course_id = $1 RETURNING *",
            course_id,
            recommendation_at(history, recorded_at).value,
        )
        assert row is not None  # the course exists and rows are never deleted
    return course_from_row(row, history), change


async def set_category(
    connection: Connection, course_id: str, category: CourseCategory, *, reason: str = ""
) -> Course:
    """Set the course's category (for redemptions decided from now on) and keep the change in
    ``course_category_changes``. Setting the category it has records nothing."""
    async with connection.transaction():
        row = await connection.fetchrow(
            "SELECT category, ncrf_level FROM courses WHERE course_id = $1 FOR UPDATE", course_id
        )
        if row is None:
            raise NotFound(CatalogObject.COURSE, course_id)
        previous = row["category"]
        if parse_level(row["ncrf_level"], allowed=NCRF_ALL_LEVELS) not in levels_for(category):
            raise InvalidCourse(
                "category", f"a course of level {row['ncrf_level']} can only be a skilling course"
            )
        if previous != category.value:
            await connection.execute(
                "INSERT INTO course_category_changes (course_id, category, previous, reason) "
                "VALUES ($1, $2, $3, $4)",
                course_id,
                category.value,
                previous,
                reason,
            )
            await connection.execute(
                "UPDATE courses SET category = $2, updated_at = now() WHERE course_id = $1",
                course_id,
                category.value,
            )
    return (await courses_by_id(connection, [course_id]))[course_id]


async def courses_by_id(connection: Connection, course_ids: list[str]) -> dict[str, Course]:
    """Courses with their recommendation history (what the credit rules decide on)."""
    rows = await connection.fetch(
        "SELECT * FROM courses WHERE course_id = ANY($1::text[])", list(set(course_ids))
    )
    histories = await recommendation_histories(connection, course_ids)
    return {r["course_id"]: course_from_row(r, histories.get(r["course_id"], ())) for r in rows}


async def list_courses(
    connection: Connection,
    *,
    issuer_id: str | None = None,
    after_course_id: str = "",
    limit: int = 100,
    course_filter: CourseFilter | None = None,
) -> list[Course]:
    """Courses in course id order after ``after_course_id``, each with its recommendation
    history (for the reason in force), filtered by ``course_filter``."""
    f = course_filter or CourseFilter(issuer_id=issuer_id)
    rows = await connection.fetch(
        "SELECT * FROM courses WHERE ($1::text IS NULL OR issuer_id = $1) AND course_id > $2 "
        "AND ($4::numeric IS NULL OR ncrf_level = $4) "
        "AND ($5::text IS NULL OR credit_recommendation = $5) "
        "ORDER BY course_id LIMIT $3",
        f.issuer_id,
        after_course_id,
        limit,
        f.level,
        None if f.credit_recommendation is None else f.credit_recommendation.value,
    )
    histories = await recommendation_histories(connection, [r["course_id"] for r in rows])
    return [course_from_row(r, histories.get(r["course_id"], ())) for r in rows]


async def course_labels(
    connection: Connection, course_ids: Iterable[str]
) -> dict[str, CourseLabel]:
    """Title and skills of each course the catalog has (unknown ids are left out)."""
    ids = sorted(set(course_ids))
    if not ids:
        return {}
    rows = await connection.fetch(
        "SELECT course_id, title, skills FROM courses WHERE course_id = ANY($1::text[])", ids
    )
    return {r["course_id"]: CourseLabel(r["title"], tuple(r["skills"] or ())) for r in rows}


async def count_courses(connection: Connection, course_filter: CourseFilter) -> int:
    f = course_filter
    return int(
        await connection.fetchval(
            "SELECT count(*) FROM courses WHERE ($1::text IS NULL OR issuer_id = $1) "
            "AND ($2::numeric IS NULL OR ncrf_level = $2) "
            "AND ($3::text IS NULL OR credit_recommendation = $3)",
            f.issuer_id,
            f.level,
            None if f.credit_recommendation is None else f.credit_recommendation.value,
        )
    )


# programmes and redemption requests ---------------------------------------------


def programme_from_row(row: asyncpg.Record) -> Programme:
    return Programme(
        programme_id=row["programme_id"],
        university_id=row["university_id"],
        title=row["title"],
        level=parse_level(row["ncrf_level"]),
        total_credits=row["total_credits"],
        validity_years=row["validity_years"],
    )


async def add_programme(connection: Connection, programme: Programme) -> datetime:
    """Register ``programme``; returns its create time."""
    try:
        created: datetime = await connection.fetchval(
            """INSERT INTO programmes (programme_id, university_id, title, ncrf_level,
                                       total_credits, validity_years)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at""",
            programme.programme_id,
            programme.university_id,
            programme.title,
            programme.level,
            programme.total_credits,
            programme.validity_years,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(CatalogObject.PROGRAMME, programme.programme_id) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(CatalogObject.UNIVERSITY, programme.university_id) from exc
    return created


async def programmes_by_id(
    connection: Connection, programme_ids: Sequence[str]
) -> dict[str, tuple[Programme, datetime]]:
    rows = await connection.fetch(
        "SELECT * FROM programmes WHERE programme_id = ANY($1::text[])", list(set(programme_ids))
    )
    return {r["programme_id"]: (programme_from_row(r), r["created_at"]) for r in rows}


async def list_programmes(
    connection: Connection, *, university_id: str | None, after_programme_id: str, limit: int
) -> list[tuple[Programme, datetime]]:
    rows = await connection.fetch(
        "SELECT * FROM programmes WHERE ($1::text IS NULL OR university_id = $1) "
        "AND programme_id > $2 ORDER BY programme_id LIMIT $3",
        university_id,
        after_programme_id,
        limit,
    )
    return [(programme_from_row(r), r["created_at"]) for r in rows]


@dataclass(frozen=True, slots=True)
class RedemptionClaim:
    """What a redemption id names (``redemption_requests``)."""

    university_id: str
    redemption_id: str
    learner_id: str
    programme_id: str
    request_digest: str
    event_id: uuid.UUID
    requested_at: datetime


class RedemptionIdConflict(Exception):
    """A redemption id was reused for a different request."""

    def __init__(self, redemption_id: str) -> None:
        super().__init__(f"redemption id {redemption_id} was used for a different request")
        self.redemption_id = redemption_id


async def claim_redemption(
    connection: Connection,
    *,
    university_id: str,
    redemption_id: str,
    learner_id: str,
    programme_id: str,
    request_digest: str,
    event_id: uuid.UUID,
) -> RedemptionClaim:
    """Record that the university's ``redemption_id`` names this request. The same request
    again is a retry (the first claim is returned); different content raises
    :class:`RedemptionIdConflict`."""
    await connection.execute(
        "INSERT INTO redemption_requests (university_id, redemption_id, learner_id, "
        "programme_id, request_digest, event_id) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (university_id, redemption_id) DO NOTHING",
        university_id,
        redemption_id,
        learner_id,
        programme_id,
        request_digest,
        event_id,
    )
    claim = await find_redemption_claim(connection, university_id, redemption_id)
    assert claim is not None  # inserted now or before; rows are never deleted
    if claim.request_digest != request_digest:
        raise RedemptionIdConflict(redemption_id)
    return claim


async def find_redemption_claim(
    connection: Connection, university_id: str, redemption_id: str
) -> RedemptionClaim | None:
    row = await connection.fetchrow(
        "SELECT university_id, redemption_id, learner_id, programme_id, request_digest, "
        "event_id, requested_at FROM redemption_requests "
        "WHERE university_id = $1 AND redemption_id = $2",
        university_id,
        redemption_id,
    )
    return None if row is None else RedemptionClaim(**dict(row))
