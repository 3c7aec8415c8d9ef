"""``LedgerAdminService``: the catalog, partners, tokens, consent and verification over gRPC.

Every call needs an admin token. Catalog and partner changes are plain writes (they are not
credit); consent is a request on ``completions.v1`` that the ledger appends like any other, so a
learner's consent history is part of their chain.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import structlog

from learnerledger.domain.catalog import (
    COURSE_FILTER_FIELDS,
    Course,
    CourseFilter,
    CreditRecommendation,
    InvalidCourse,
    InvalidCourseFilter,
)
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    ConsentAction,
    ConsentBasis,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    Envelope,
    LedgerRequest,
    consent_event_id,
)
from learnerledger.domain.learners import is_apaar_id
from learnerledger.domain.validation import check_consent_purpose
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.producer import DurableProducer
from learnerledger.ledger.verification import verify_ledger
from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import (
    AlreadyExists,
    CatalogObject,
    NotFound,
    PrincipalKind,
    RequestIdConflict,
)
from learnerledger.replay import rebuild
from learnerledger.replay.rebuild import ReplayConflict
from learnerledger.rpc.auth import BearerAuthenticator
from learnerledger.rpc.errors import (
    Reason,
    RpcFailure,
    Violation,
    abort,
    invalid_argument,
    unavailable,
)
from learnerledger.rpc.filters import InvalidFilter, parse_comparisons
from learnerledger.v1 import ledger_admin_pb2, ledger_admin_pb2_grpc
from learnerledger.wire.catalog import course_from_proto, course_to_proto
from learnerledger.wire.enums import PROTO_TO_CATEGORY, PROTO_TO_COURSE_BASIS, PROTO_TO_LEVEL
from learnerledger.wire.instants import InstantOutOfRange, from_timestamp, to_timestamp
from learnerledger.wire.verification import (
    COVERAGE_TO_PROTO,
    chain_break_to_proto,
    checkpoint_problem_to_proto,
    signed_checkpoint_to_proto,
)

log = structlog.get_logger(__name__)

#: The catalog keeps reasons for approvals and withdrawals up to this length (migration 0010).
MAX_REASON_LENGTH = 1000

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


class LedgerAdmin(ledger_admin_pb2_grpc.LedgerAdminServiceServicer):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: DurableProducer,
        completions_topic: str,
        authenticator: BearerAuthenticator,
        trusted_public_key: bytes | None,
        replay: ReplayRunner | None = None,
    ) -> None:
        self._replay = replay
        self._pool = pool
        self._producer = producer
        self._topic = completions_topic
        self._auth = authenticator
        self._trusted_key = trusted_public_key

    async def _admin(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        try:
            await self._auth.require(context.invocation_metadata(), PrincipalKind.ADMIN)
        except RpcFailure as failure:
            await abort(context, failure)

    # courses -------------------------------------------------------------------------------
    async def CreateCourse(
        self, request: ledger_admin_pb2.CreateCourseRequest, context: Any
    ) -> ledger_admin_pb2.CreateCourseResponse:
        await self._admin(context)
        c = request.course
        await _require_printable(
            context,
            {
                "course.course_id": c.course_id,
                "course.issuer_id": c.issuer_id,
                "course.title": c.title,
                "course.counts_as_course_id": c.counts_as_course_id,
                "course.recommendation_reason": c.recommendation_reason,
                **{f"course.skills[{n}]": skill for n, skill in enumerate(c.skills)},
            },
        )
        violations = []
        if c.level not in PROTO_TO_LEVEL:
            violations.append(Violation("course.level", "must be an NCrF level (1 to 8)"))
        if c.hours_basis not in PROTO_TO_COURSE_BASIS:
            violations.append(Violation("course.hours_basis", "must be NCRF or NHEQF"))
        if violations:
            await abort(context, invalid_argument(violations))
        try:
            course = course_from_proto(c, issuer_id=c.issuer_id)
            async with self._pool.acquire() as connection:
                await catalog.add_course(connection, course)
        except InvalidCourse as exc:
            await abort(context, invalid_argument([Violation(f"course.{exc.field}", exc.message)]))
        except (AlreadyExists, NotFound) as exc:
            await abort(context, catalog_failure(exc))
        return ledger_admin_pb2.CreateCourseResponse(course=course_to_proto(course))

    async def ApproveCourse(
        self, request: ledger_admin_pb2.ApproveCourseRequest, context: Any
    ) -> ledger_admin_pb2.ApproveCourseResponse:
        course = await self._set_state(
            request, CreditRecommendation.APPROVED, request.reason, context
        )
        return ledger_admin_pb2.ApproveCourseResponse(course=course_to_proto(course))

    async def WithdrawCourse(
        self, request: ledger_admin_pb2.WithdrawCourseRequest, context: Any
    ) -> ledger_admin_pb2.WithdrawCourseResponse:
        course = await self._set_state(
            request, CreditRecommendation.WITHDRAWN, request.reason, context
        )
        return ledger_admin_pb2.WithdrawCourseResponse(course=course_to_proto(course))

    async def _set_state(
        self,
        request: ledger_admin_pb2.ApproveCourseRequest | ledger_admin_pb2.WithdrawCourseRequest,
        state: CreditRecommendation,
        reason: str,
        context: Any,
    ) -> Course:
        await self._admin(context)
        await _require_printable(context, {"reason": reason})
        if len(reason) > MAX_REASON_LENGTH:
            await abort(
                context,
                invalid_argument(
                    [Violation("reason", f"must be at most {MAX_REASON_LENGTH} characters")]
                ),
            )
        effective_at = await _optional_instant(context, request, "effective_at")
        try:
            async with self._pool.acquire() as connection:
                course, _ = await catalog.set_recommendation(
                    connection,
                    request.course_id,
                    state,
                    effective_at=effective_at,
                    reason=reason,
                )
                return course
        except InvalidCourse as exc:
            await abort(context, invalid_argument([Violation(exc.field, exc.message)]))
        except NotFound as exc:
            await abort(context, catalog_failure(exc))

    async def SetCourseCategory(
        self, request: ledger_admin_pb2.SetCourseCategoryRequest, context: Any
    ) -> ledger_admin_pb2.SetCourseCategoryResponse:
        await self._admin(context)
        await _require_printable(
            context, {"course_id": request.course_id, "reason": request.reason}
        )
        violations = []
        if not request.course_id:
            violations.append(Violation("course_id", "is required"))
        category = PROTO_TO_CATEGORY.get(request.category)
        if category is None:
            violations.append(
                Violation(
                    "category",
                    "must be SWAYAM_MOOC, MICRO_CREDENTIAL, UNIVERSITY_COURSE or SKILLING",
                )
            )
        if len(request.reason) > MAX_REASON_LENGTH:
            violations.append(
                Violation("reason", f"must be at most {MAX_REASON_LENGTH} characters")
            )
        if violations or category is None:
            await abort(context, invalid_argument(violations))
        try:
            async with self._pool.acquire() as connection:
                course = await catalog.set_category(
                    connection, request.course_id, category, reason=request.reason
                )
        except InvalidCourse as exc:
            await abort(context, invalid_argument([Violation(exc.field, exc.message)]))
        except NotFound as exc:
            await abort(context, catalog_failure(exc))
        log.info("course_category_set", course_id=request.course_id, category=category.value)
        return ledger_admin_pb2.SetCourseCategoryResponse(course=course_to_proto(course))

    async def ListCourses(
        self, request: ledger_admin_pb2.ListCoursesRequest, context: Any
    ) -> ledger_admin_pb2.ListCoursesResponse:
        await self._admin(context)
        violations = []
        course_filter = CourseFilter()
        try:
            course_filter = CourseFilter.from_values(
                parse_comparisons(request.filter, COURSE_FILTER_FIELDS)
            )
        except (InvalidFilter, InvalidCourseFilter) as exc:
            violations.append(Violation("filter", str(exc)))
        if request.page_size < 0:
            violations.append(Violation("page_size", "must not be negative"))
        if violations:
            await abort(context, invalid_argument(violations))
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = request.page_token  # the last course id of the previous page
        async with self._pool.acquire() as connection:
            courses = await catalog.list_courses(
                connection, after_course_id=after, limit=size + 1, course_filter=course_filter
            )
            total = await catalog.count_courses(connection, course_filter)
        page, more = courses[:size], len(courses) > size
        return ledger_admin_pb2.ListCoursesResponse(
            courses=[course_to_proto(c) for c in page],
            next_page_token=page[-1].course_id if more else "",
            total_size=total,
        )

    # partners and tokens --------------------------------------------------------------------
    async def CreateIssuer(
        self, request: ledger_admin_pb2.CreateIssuerRequest, context: Any
    ) -> ledger_admin_pb2.CreateIssuerResponse:
        await self._admin(context)
        issuer = request.issuer
        await _require_printable(
            context,
            {"issuer.issuer_id": issuer.issuer_id, "issuer.display_name": issuer.display_name},
        )
        issuer.display_name = issuer.display_name or issuer.issuer_id
        await self._write(context, catalog.add_issuer, issuer.issuer_id, issuer.display_name)
        return ledger_admin_pb2.CreateIssuerResponse(issuer=issuer)

    async def CreateUniversity(
        self, request: ledger_admin_pb2.CreateUniversityRequest, context: Any
    ) -> ledger_admin_pb2.CreateUniversityResponse:
        await self._admin(context)
        university = request.university
        await _require_printable(
            context,
            {
                "university.university_id": university.university_id,
                "university.display_name": university.display_name,
            },
        )
        university.display_name = university.display_name or university.university_id
        await self._write(
            context, catalog.add_university, university.university_id, university.display_name
        )
        return ledger_admin_pb2.CreateUniversityResponse(university=university)

    async def CreateIssuerToken(
        self, request: ledger_admin_pb2.CreateIssuerTokenRequest, context: Any
    ) -> ledger_admin_pb2.CreateIssuerTokenResponse:
        await self._admin(context)
        expire_time = await _optional_instant(context, request, "expire_time")
        token_id, token = await self._write(
            context, catalog.issue_token, PrincipalKind.ISSUER, request.issuer_id, expire_time
        )
        response = ledger_admin_pb2.CreateIssuerTokenResponse(token_id=token_id, token=token)
        if expire_time is not None:
            response.expire_time.CopyFrom(to_timestamp(expire_time))
        return response

    async def CreateUniversityToken(
        self, request: ledger_admin_pb2.CreateUniversityTokenRequest, context: Any
    ) -> ledger_admin_pb2.CreateUniversityTokenResponse:
        await self._admin(context)
        expire_time = await _optional_instant(context, request, "expire_time")
        token_id, token = await self._write(
            context,
            catalog.issue_token,
            PrincipalKind.UNIVERSITY,
            request.university_id,
            expire_time,
        )
        response = ledger_admin_pb2.CreateUniversityTokenResponse(token_id=token_id, token=token)
        if expire_time is not None:
            response.expire_time.CopyFrom(to_timestamp(expire_time))
        return response

    async def _write(self, context: Any, action: Any, *args: Any) -> Any:
        try:
            async with self._pool.acquire() as connection:
                return await action(connection, *args)
        except (AlreadyExists, NotFound) as exc:
            await abort(context, catalog_failure(exc))
        except asyncpg.CheckViolationError as exc:
            # Constraint names are <table>_<column>_check: name the column that was refused.
            table = exc.table_name or ""
            column = (exc.constraint_name or "").removeprefix(f"{table}_").removesuffix("_check")
            await abort(
                context,
                invalid_argument(
                    [Violation(column or "request", "has an invalid value (ids: a-z, 0-9, . _ -)")]
                ),
            )

    # consent --------------------------------------------------------------------------------
    async def GrantConsent(
        self, request: ledger_admin_pb2.GrantConsentRequest, context: Any
    ) -> ledger_admin_pb2.GrantConsentResponse:
        await self._admin(context)
        expire_time = request.expire_time if request.HasField("expire_time") else None
        terms = await consent_terms(context, request.purpose, expire_time, required=False)
        event_id = await publish_consent(
            self._consent_publisher(),
            context,
            request,
            ConsentAction.GRANT,
            basis=ConsentBasis.MANDATE,
            terms=terms,
            claimed_request_id=request.request_id,
        )
        return ledger_admin_pb2.GrantConsentResponse(event_id=event_id)

    async def RevokeConsent(
        self, request: ledger_admin_pb2.RevokeConsentRequest, context: Any
    ) -> ledger_admin_pb2.RevokeConsentResponse:
        await self._admin(context)
        event_id = await publish_consent(
            self._consent_publisher(),
            context,
            request,
            ConsentAction.REVOKE,
            basis=ConsentBasis.MANDATE,
            terms=None,
            claimed_request_id=request.request_id,
        )
        return ledger_admin_pb2.RevokeConsentResponse(event_id=event_id)

    def _consent_publisher(self) -> ConsentPublisher:
        return ConsentPublisher(self._pool, self._producer, self._topic)

    # verification and replay -------------------------------------------------------------------
    async def VerifyLedger(
        self, request: ledger_admin_pb2.VerifyLedgerRequest, context: Any
    ) -> ledger_admin_pb2.VerifyLedgerResponse:
        await self._admin(context)
        async with self._pool.acquire() as connection:
            report = await verify_ledger(
                connection,
                learner_id=request.learner_id or None,
                trusted_public_key=self._trusted_key,
            )
        response = ledger_admin_pb2.VerifyLedgerResponse(
            ok=report.ok,
            entries_checked=report.entries_checked,
            learners_checked=report.learners_checked,
            checkpoint_ok=report.protected,
            checkpoints_checked=report.checkpoints_checked,
            checkpoint_coverage=COVERAGE_TO_PROTO[report.coverage],
            checkpoint_problems=[
                checkpoint_problem_to_proto(problem) for problem in report.checkpoint_problems
            ],
        )
        if report.first_break is not None:
            response.first_break.CopyFrom(chain_break_to_proto(report.first_break))
        if report.latest_checkpoint is not None:
            response.latest_checkpoint.CopyFrom(
                signed_checkpoint_to_proto(
                    report.latest_checkpoint, report.latest_checkpoint_number
                )
            )
            response.verified_through_position = report.latest_checkpoint.checkpoint.position
        return response

    async def StartReplay(
        self, request: ledger_admin_pb2.StartReplayRequest, context: Any
    ) -> ledger_admin_pb2.StartReplayResponse:
        """Start (or resume) a read-model rebuild in this process, in the background."""
        await self._admin(context)
        source = _REPLAY_SOURCES.get(request.source)
        violations = []
        if source is None:
            violations.append(Violation("source", "must be REPLAY_SOURCE_LOG or _KAFKA"))
        violations += [
            Violation(f"learner_ids[{i}]", "must be a 12-digit APAAR id")
            for i, learner in enumerate(request.learner_ids)
            if not is_apaar_id(learner)
        ]
        if violations or source is None:
            await abort(context, invalid_argument(violations))
        if self._replay is None:
            await abort(
                context,
                RpcFailure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "replays are not enabled in this ledger process (no replay settings)",
                ),
            )
        try:
            status = await self._replay.start(source, list(request.learner_ids))
        except ReplayConflict as exc:
            await abort(
                context,
                RpcFailure(
                    grpc.StatusCode.FAILED_PRECONDITION, str(exc), reason=Reason.REPLAY_CONFLICT
                ),
            )
        return ledger_admin_pb2.StartReplayResponse(replay=replay_to_proto(status))

    async def GetReplayStatus(
        self, request: ledger_admin_pb2.GetReplayStatusRequest, context: Any
    ) -> ledger_admin_pb2.GetReplayStatusResponse:
        await self._admin(context)
        try:
            replay_id = uuid.UUID(request.replay_id)
        except ValueError:
            await abort(context, invalid_argument([Violation("replay_id", "must be a UUID")]))
        async with self._pool.acquire() as connection:
            status = await rebuild.get_status(connection, replay_id)
        if status is None:
            await abort(
                context,
                RpcFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"replay {replay_id} does not exist",
                    reason=Reason.REPLAY_NOT_FOUND,
                    metadata={"replay_id": str(replay_id)},
                ),
            )
        return ledger_admin_pb2.GetReplayStatusResponse(replay=replay_to_proto(status))


_REPLAY_SOURCES = {
    ledger_admin_pb2.REPLAY_SOURCE_LOG: "log",
    ledger_admin_pb2.REPLAY_SOURCE_KAFKA: "kafka",
}
_REPLAY_STATES = {
    "pending": ledger_admin_pb2.REPLAY_STATE_PENDING,
    "running": ledger_admin_pb2.REPLAY_STATE_RUNNING,
    "succeeded": ledger_admin_pb2.REPLAY_STATE_SUCCEEDED,
    "failed": ledger_admin_pb2.REPLAY_STATE_FAILED,
}


def replay_to_proto(status: rebuild.ReplayStatus) -> ledger_admin_pb2.ReplayStatus:
    message = ledger_admin_pb2.ReplayStatus(
        replay_id=str(status.replay_id),
        source={v: k for k, v in _REPLAY_SOURCES.items()}[status.source],
        learner_ids=status.learner_ids,
        state=_REPLAY_STATES[status.state],
        entries_applied=status.entries_applied,
        entries_total=status.entries_total,
        learners_done=status.learners_done,
        through_position=status.through_position,
        error_message=status.error_message,
    )
    if status.started_at is not None:
        message.started_at.CopyFrom(to_timestamp(status.started_at))
    if status.finished_at is not None:
        message.finished_at.CopyFrom(to_timestamp(status.finished_at))
    return message


@dataclass(frozen=True, slots=True)
class ReplayRunner:
    """Runs replays for StartReplay: as the read model's owner (``ll_read_model_owner``, which
    the ledger's login holds through ``ll_admin``), one at a time, each on a connection of its
    own."""

    database_url: str
    bootstrap_servers: str
    entries_topic: str
    tasks: dict[uuid.UUID, asyncio.Task[rebuild.ReplayStatus]] = field(default_factory=dict)

    async def start(self, source: str, learner_ids: list[str]) -> rebuild.ReplayStatus:
        connection = await rebuild.connect_as_read_model_owner(self.database_url)
        try:
            status = await rebuild.start_or_resume(
                connection, source=source, learner_ids=learner_ids
            )
        finally:
            await connection.close()
        task = self.tasks.get(status.replay_id)
        if task is None or task.done():
            self.tasks[status.replay_id] = asyncio.create_task(
                self._run(status), name=f"replay-{status.replay_id}"
            )
        return status

    async def _run(self, status: rebuild.ReplayStatus) -> rebuild.ReplayStatus:
        connection = await rebuild.connect_as_read_model_owner(self.database_url)
        try:
            return await rebuild.run_replay(
                connection,
                status,
                bootstrap_servers=self.bootstrap_servers,
                entries_topic=self.entries_topic,
            )
        except Exception as exc:
            log.error("replay_failed", replay_id=str(status.replay_id), error=str(exc))
            raise
        finally:
            await connection.close()

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def _optional_instant(context: Any, request: Any, field: str) -> datetime | None:
    """The request's Timestamp ``field`` (None when unset); INVALID_ARGUMENT out of range."""
    if not request.HasField(field):
        return None
    try:
        return from_timestamp(getattr(request, field))
    except InstantOutOfRange as exc:
        await abort(context, invalid_argument([Violation(field, exc.description)]))


@dataclass(frozen=True, slots=True)
class ConsentPublisher:
    """Where consent requests go: consent_requests (request ids) and completions.v1."""

    pool: asyncpg.Pool
    producer: DurableProducer
    topic: str


@dataclass(frozen=True, slots=True)
class ConsentTerms:
    """A grant's purpose and expiry (both optional for a mandate, required of a learner)."""

    purpose: str
    expire_time: datetime | None

    def detail(self, basis: ConsentBasis) -> str:
        """What goes into the event id besides the request id (nothing for a plain mandate,
        so an admin's retry of a request made before terms existed keeps its event id)."""
        if basis is ConsentBasis.MANDATE and not self.purpose and self.expire_time is None:
            return ""
        expiry = "" if self.expire_time is None else self.expire_time.isoformat()
        return f"{basis.value}\x1f{self.purpose}\x1f{expiry}"


#: The furthest ahead a consent may lapse.
MAX_CONSENT_YEARS = 10


async def consent_terms(
    context: Any, purpose: str, expire_time: Any, *, required: bool
) -> ConsentTerms:
    """Validate a grant's purpose and expire_time (a Timestamp or None)."""
    violations = [
        Violation(v.field, v.description) for v in check_consent_purpose(purpose, required=required)
    ]
    instant: datetime | None = None
    if expire_time is None:
        if required:
            violations.append(Violation("expire_time", "required: when the consent lapses"))
    else:
        try:
            instant = from_timestamp(expire_time)
        except InstantOutOfRange as exc:
            violations.append(Violation("expire_time", exc.description))
        else:
            now = datetime.now(UTC)
            if instant <= now:
                violations.append(Violation("expire_time", "must be in the future"))
            elif instant > now + timedelta(days=366 * MAX_CONSENT_YEARS):
                violations.append(
                    Violation("expire_time", f"at most {MAX_CONSENT_YEARS} years ahead")
                )
    if violations:
        await abort(context, invalid_argument(violations))
    return ConsentTerms(purpose, instant)


async def publish_consent(
    publisher: ConsentPublisher,
    context: Any,
    request: Any,
    action: ConsentAction,
    *,
    basis: ConsentBasis,
    terms: ConsentTerms | None,
    claimed_request_id: str,
) -> str:
    """Publish a consent grant or revocation for ``request.learner_id`` and
    ``request.university_id`` (the caller has authorized it); its event id.

    ``claimed_request_id`` is the key recorded in consent_requests (a learner's are namespaced
    by the learner, so learners' keys never collide)."""
    violations = []
    if not is_apaar_id(request.learner_id):
        violations.append(Violation("learner_id", "must be a 12-digit APAAR id"))
    if not request.university_id:
        violations.append(Violation("university_id", "is required"))
    if violations:
        await abort(context, invalid_argument(violations))
    await _require_printable(
        context, {"request_id": request.request_id, "university_id": request.university_id}
    )
    detail = "" if terms is None else terms.detail(basis)
    event_id = (
        consent_event_id(
            request.learner_id, request.university_id, action, request.request_id, detail
        )
        if request.request_id
        else uuid.uuid4()
    )
    async with publisher.pool.acquire() as connection:
        if not await catalog.university_exists(connection, request.university_id):
            await abort(
                context,
                catalog_failure(NotFound(CatalogObject.UNIVERSITY, request.university_id)),
            )
        if request.request_id:
            try:
                await catalog.claim_consent_request(
                    connection,
                    request_id=claimed_request_id,
                    learner_id=request.learner_id,
                    university_id=request.university_id,
                    action=action.value,
                    event_id=event_id,
                )
            except RequestIdConflict:
                await abort(
                    context,
                    RpcFailure(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"request id {request.request_id} was used for a different consent "
                        "request; use a new request_id for a new request",
                        reason=Reason.REQUEST_ID_CONFLICT,
                        metadata={"request_id": request.request_id},
                    ),
                )
    envelope = Envelope(event_id, CURRENT_SCHEMA_VERSION, datetime.now(UTC), "", request.learner_id)
    event: ConsentGrantRequested | ConsentRevokeRequested
    if action is ConsentAction.GRANT:
        assert terms is not None
        event = ConsentGrantRequested(
            envelope,
            request.university_id,
            purpose=terms.purpose,
            expire_time=terms.expire_time,
            basis=basis,
        )
    else:
        event = ConsentRevokeRequested(envelope, request.university_id, basis=basis)
    await publish_request(
        publisher.producer,
        publisher.topic,
        context,
        request.learner_id,
        event,
        lambda exc: f"consent not recorded: {exc}",
    )
    return str(event_id)


async def publish_request(
    producer: DurableProducer,
    topic: str,
    context: Any,
    learner_id: str,
    event: LedgerRequest,
    not_stored: Callable[[Exception], str],
) -> None:
    """Publish a request on the completions topic, keyed by its learner; if the producer fails,
    abort the call UNAVAILABLE with the message ``not_stored(exc)``."""
    try:
        await producer.send_and_wait(
            topic, key=learner_id.encode(), value=encode_completion_event(event)
        )
    except Exception as exc:  # noqa: BLE001 - any producer failure means "not stored"
        await abort(context, unavailable(not_stored(exc), reason=Reason.KAFKA_UNAVAILABLE))


async def _require_printable(context: Any, fields: dict[str, str]) -> None:
    """Refuse control characters (a NUL, a newline) in names and ids before they reach SQL."""
    violations = [
        Violation(name, "must contain only printable characters")
        for name, value in fields.items()
        if not value.isprintable()
    ]
    if violations:
        await abort(context, invalid_argument(violations))


#: The ErrorInfo reason of a catalog write that found its object already there, or missing.
ALREADY_EXISTS_REASONS = {
    CatalogObject.ISSUER: Reason.ISSUER_ALREADY_EXISTS,
    CatalogObject.UNIVERSITY: Reason.UNIVERSITY_ALREADY_EXISTS,
    CatalogObject.COURSE: Reason.COURSE_ALREADY_EXISTS,
    CatalogObject.PROGRAMME: Reason.PROGRAMME_ALREADY_EXISTS,
    CatalogObject.ACTIVE_TOKEN: Reason.ACTIVE_TOKEN_ALREADY_EXISTS,
}
NOT_FOUND_REASONS = {
    CatalogObject.ISSUER: Reason.ISSUER_NOT_FOUND,
    CatalogObject.UNIVERSITY: Reason.UNIVERSITY_NOT_FOUND,
    CatalogObject.COURSE: Reason.COURSE_NOT_FOUND,
    CatalogObject.PROGRAMME: Reason.PROGRAMME_NOT_FOUND,
    CatalogObject.ACTIVE_TOKEN: Reason.ACTIVE_TOKEN_NOT_FOUND,
}


def catalog_failure(exc: AlreadyExists | NotFound) -> RpcFailure:
    if isinstance(exc, AlreadyExists):
        return RpcFailure(
            grpc.StatusCode.ALREADY_EXISTS,
            str(exc),
            reason=ALREADY_EXISTS_REASONS[exc.what],
            metadata={exc.what.value: exc.identifier},
        )
    return RpcFailure(
        grpc.StatusCode.NOT_FOUND,
        str(exc),
        reason=NOT_FOUND_REASONS[exc.what],
        metadata={exc.what.value.replace(" ", "_"): exc.identifier},
    )
