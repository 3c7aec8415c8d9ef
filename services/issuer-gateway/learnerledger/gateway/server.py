"""The ``IssuerGatewayService`` servicer (grpc.aio).

Acks mean durable: a completion is answered ACCEPTED only after the idempotent producer's
``acks=all`` send resolved, bounded by ``send_timeout_s`` (past it: UNAVAILABLE + RetryInfo).

Choices worth knowing (also in the module docstrings of validation and rate_limit):

- A submission the ledger has already recorded is not written again: the same content is
  answered DUPLICATE (same event id), different content ALREADY_EXISTS with ErrorInfo reason
  COMPLETION_CONFLICT (stream: REJECTED with reason ALREADY_EXISTS). One lookup by the unique
  source_event_id, batched for all submissions in flight. A resubmission still in flight
  (acked, not yet in the log) is written and answered ACCEPTED; the ledger deduplicates it by
  event id, or records the conflict, which GetCompletionStatus shows. The same while
  PostgreSQL is unreachable: intake does not depend on the lookup.
- Unknown course and another issuer's course get one answer: INVALID_ARGUMENT with the field
  violation "unknown course" (stream: REJECTED with reason INVALID_ARGUMENT), so that the
  answer does not tell whether a course id exists in someone else's catalog.
- Rate limit: unary RESOURCE_EXHAUSTED + RetryInfo; a stream item over the limit is answered
  REJECTED with reason RESOURCE_EXHAUSTED and the retry delay in its message, and the stream
  goes on.
- StreamCompletions answers in request order (the proto's contract) while up to
  ``max_in_flight`` items are being sent at once; when that many are pending the gateway stops
  reading the stream, so HTTP/2 flow control slows the writer. Kafka unavailable ends the stream
  with UNAVAILABLE; items not answered were not acknowledged.
- GetCompletionStatus reads the credit log, then the rejections table; a completion this
  process acked recently but the ledger has not decided yet is ACCEPTED. That memory is per
  process and lost on restart (not durable): another replica, or this one after a restart,
  answers NOT_FOUND (ErrorInfo COMPLETION_NOT_FOUND) until the ledger has decided it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias, TypeVar

import asyncpg
import grpc
import structlog
from aiokafka.errors import KafkaError

from learnerledger.domain.catalog import Course, ForeignIssuer, InvalidCourse, check_proposal
from learnerledger.domain.credit_rules import RejectionReason, completion_digest, is_expired
from learnerledger.domain.entries import EntryKind
from learnerledger.domain.events import CompletionSubmitted, LedgerRequest, completion_event_id
from learnerledger.gateway import metrics
from learnerledger.gateway.rate_limit import TokenBuckets
from learnerledger.gateway.settings import GatewaySettings
from learnerledger.gateway.validation import (
    check_id,
    validate_completion,
    validate_revocation_request,
)
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.kafka.producer import DurableProducer
from learnerledger.observability import TRACEPARENT, child_traceparent
from learnerledger.postgres import catalog, completions
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.postgres.errors import DATABASE_UNREACHABLE
from learnerledger.rpc.auth import BearerAuthenticator
from learnerledger.rpc.errors import (
    Reason,
    RpcFailure,
    Violation,
    abort,
    invalid_argument,
    unavailable,
)
from learnerledger.v1 import common_pb2, issuer_gateway_pb2, issuer_gateway_pb2_grpc
from learnerledger.wire.catalog import course_from_proto, course_to_proto
from learnerledger.wire.events import completion_from_proto, revocation_from_proto
from learnerledger.wire.instants import to_timestamp

log = structlog.get_logger("learnerledger.gateway")

pb = issuer_gateway_pb2
T = TypeVar("T")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class KafkaUnavailable(Exception):
    pass


#: What the digest lookup can fail with: an outage, or PostgreSQL refusing the query.
LOOKUP_FAILURES: tuple[type[Exception], ...] = (*DATABASE_UNREACHABLE, asyncpg.PostgresError)


class RecordedDigests:
    """The ledger's ``completion_digest`` of completions by event id, one query per batch.

    Every lookup asked for while a query is being prepared joins it: the completions of a stream
    (up to ``max_in_flight`` at once) and of concurrent calls cost one indexed
    ``source_event_id = ANY(...)`` query per event-loop turn, not one query and one pool
    acquisition each.
    """

    def __init__(self, pool: asyncpg.Pool, max_batch: int = 1000) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._waiting: dict[uuid.UUID, list[asyncio.Future[str | None]]] = {}
        self._flushing: asyncio.Task[None] | None = None

    async def digest(self, event_id: uuid.UUID) -> str | None:
        """The recorded digest, or None if the ledger has no entry for ``event_id``."""
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(event_id, []).append(answer)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await answer

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other items of this turn join the batch
        while self._waiting:
            ids = list(itertools.islice(self._waiting, self._max_batch))
            batch = {i: self._waiting.pop(i) for i in ids}
            try:
                async with self._pool.acquire() as connection:
                    found = await completions.recorded_digests(connection, ids)
            except LOOKUP_FAILURES as exc:
                # Every waiter of the batch raises it (UNAVAILABLE for an outage).
                for answers in batch.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(exc)
                continue
            for event_id, answers in batch.items():
                for answer in answers:
                    if not answer.done():
                        answer.set_result(found.get(event_id))


class IssuerGateway(issuer_gateway_pb2_grpc.IssuerGatewayServiceServicer):
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        pool: asyncpg.Pool,
        producer: DurableProducer,
        authenticator: BearerAuthenticator,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self._auth = authenticator
        self._buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._courses: dict[str, tuple[float, Course | None]] = {}
        self._recent: OrderedDict[tuple[str, str], tuple[str, str, datetime]] = OrderedDict()
        self._skew = timedelta(seconds=settings.clock_skew_s)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._recorded = RecordedDigests(pool)

    # --------------------------------------------------------------------- plumbing
    async def wait_idle(self) -> None:
        """Until no send is in flight (used by graceful shutdown before flushing)."""
        await self._idle.wait()

    async def _issuer(self, context: Context) -> str:
        principal = await self._auth.require(context.invocation_metadata(), PrincipalKind.ISSUER)
        return principal.principal_id

    def _rate_limit(self, issuer_id: str) -> float | None:
        return self._buckets.try_acquire(issuer_id)

    async def _lookup_courses(self, course_ids: list[str]) -> dict[str, Course]:
        now = time.monotonic()
        found: dict[str, Course] = {}
        missing = []
        for course_id in set(course_ids):
            hit = self._courses.get(course_id)
            if hit is not None and hit[0] > now:
                if hit[1] is not None:
                    found[course_id] = hit[1]
            else:
                missing.append(course_id)
        if missing:
            try:
                async with self._pool.acquire() as connection:
                    fresh = await catalog.courses_by_id(connection, missing)
            except DATABASE_UNREACHABLE as exc:
                raise unavailable(
                    f"cannot read the course catalog ({type(exc).__name__})",
                    reason=Reason.DATABASE_UNAVAILABLE,
                ) from exc
            expires = now + self._settings.catalog_cache_s
            if len(self._courses) > 50_000:
                self._courses.clear()
            for course_id in missing:
                self._courses[course_id] = (expires, fresh.get(course_id))
            found.update(fresh)
        return found

    async def _publish(self, request: LedgerRequest, traceparent: str | None) -> None:
        """Send and wait for acks=all, at most send_timeout_s; KafkaUnavailable otherwise."""
        self._in_flight += 1
        self._idle.clear()
        metrics.IN_FLIGHT.inc()
        try:
            # asyncio.timeout, not wait_for: no extra task per completion on the hot path.
            async with asyncio.timeout(self._settings.send_timeout_s):
                future = await self._producer.send(
                    self._settings.topic_completions,
                    value=encode_completion_event(request),
                    key=request.envelope.learner_id.encode(),
                    headers=[(TRACEPARENT, child_traceparent(traceparent).encode())],
                )
                await future
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "kafka_send_failed",
                error=type(exc).__name__,
                event_id=str(request.envelope.event_id),
            )
            raise KafkaUnavailable(type(exc).__name__) from exc
        finally:
            self._in_flight -= 1
            metrics.IN_FLIGHT.dec()
            if self._in_flight == 0:
                self._idle.set()

    def _remember(self, issuer_id: str, completion_id: str, learner_id: str, event_id: str) -> None:
        if self._settings.recent_acks <= 0:
            return
        key = (issuer_id, completion_id)
        self._recent[key] = (learner_id, event_id, datetime.now(UTC))
        self._recent.move_to_end(key)
        while len(self._recent) > self._settings.recent_acks:
            self._recent.popitem(last=False)

    @staticmethod
    def _traceparent(context: Context) -> str | None:
        for key, value in context.invocation_metadata() or ():
            if key == TRACEPARENT:
                return value if isinstance(value, str) else value.decode()
        return None

    async def _unary(self, context: Context, method: str, body: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await body()
        except RpcFailure as failure:
            metrics.REJECTED.labels(failure.reason or failure.code.name).inc()
            await abort(context, failure)
        finally:
            metrics.LATENCY.labels(method).observe(time.perf_counter() - started)

    # --------------------------------------------------------------------- one completion
    async def _accept(
        self,
        issuer_id: str,
        completion: common_pb2.Completion,
        traceparent: str | None,
        prefix: str,
    ) -> tuple[str, pb.AcceptanceStatus.ValueType]:
        """Validate, authorize and publish one completion: its event id and ACCEPTED, or
        DUPLICATE when the ledger recorded the same completion before; or RpcFailure."""
        # Look a course up only when its id is well-formed: a malformed id (a NUL, say) is the
        # caller's error to report, not a query for PostgreSQL to refuse.
        well_formed = not check_id(completion.course_id, "course_id")
        found = await self._lookup_courses([completion.course_id]) if well_formed else {}
        # Another issuer's course is answered exactly as an unknown one (same code, message and
        # reason): an issuer cannot learn from the gateway which course ids exist elsewhere.
        courses = {cid: c for cid, c in found.items() if c.issuer_id == issuer_id}
        now = datetime.now(UTC)
        violations = validate_completion(
            completion, courses=courses, now=now, clock_skew=self._skew, prefix=prefix
        )
        if violations:
            raise invalid_argument(violations)
        retry_after = self._rate_limit(issuer_id)
        if retry_after is not None:
            raise RpcFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit of {self._settings.rate_limit_per_s:g}/s exceeded; "
                f"retry in {retry_after:.3f}s",
                reason=Reason.RATE_LIMITED,
                retry_after_s=retry_after,
            )
        event = completion_from_proto(completion, issuer_id=issuer_id, now=now)
        event_id = str(event.envelope.event_id)
        if await self._already_recorded(event):
            metrics.ACCEPTED.labels("duplicate").inc()
            return event_id, pb.ACCEPTANCE_STATUS_DUPLICATE
        try:
            await self._publish(event, traceparent)
        except KafkaUnavailable as exc:
            raise unavailable(
                f"Kafka did not confirm the write within {self._settings.send_timeout_s:g}s; "
                "nothing was acknowledged, retry (the event id is stable)",
                reason=Reason.KAFKA_UNAVAILABLE,
            ) from exc
        self._remember(issuer_id, completion.completion_id, completion.learner_id, event_id)
        metrics.ACCEPTED.labels("completion").inc()
        return event_id, pb.ACCEPTANCE_STATUS_ACCEPTED

    async def _already_recorded(self, event: CompletionSubmitted) -> bool:
        """True if the ledger recorded this very completion; COMPLETION_CONFLICT if it recorded
        different content under the same completion id; False if it recorded nothing yet (new,
        or still in flight: then ACCEPTED and the ledger deduplicates by event id).

        One lookup by the unique (indexed) ``source_event_id``, batched with the lookups of the
        other completions in flight (:class:`RecordedDigests`); the ledger's own digest of the
        statement tells a retry from a conflicting resubmission.
        """
        try:
            digest = await self._recorded.digest(event.envelope.event_id)
        except DATABASE_UNREACHABLE:
            # PostgreSQL down must not stop intake (Kafka is the path of record): write it and
            # answer ACCEPTED, as for one in flight; the ledger deduplicates or records the
            # conflict.
            metrics.RECORDED_LOOKUP_SKIPPED.inc()
            return False
        if digest is None:
            return False
        if digest == completion_digest(event):
            return True
        raise RpcFailure(
            grpc.StatusCode.ALREADY_EXISTS,
            f"completion {event.completion_id!r} is already recorded with different content; "
            "a completion cannot be changed (revoke it and submit a new completion_id)",
            reason=Reason.COMPLETION_CONFLICT,
            metadata={"completion_id": event.completion_id},
        )

    # --------------------------------------------------------------------- RPCs
    async def SubmitCompletion(
        self, request: pb.SubmitCompletionRequest, context: Context
    ) -> pb.SubmitCompletionResponse:
        async def body() -> pb.SubmitCompletionResponse:
            issuer_id = await self._issuer(context)
            if not request.HasField("completion"):
                raise invalid_argument([Violation("completion", "required")])
            event_id, status = await self._accept(
                issuer_id, request.completion, self._traceparent(context), "completion"
            )
            return pb.SubmitCompletionResponse(event_id=event_id, status=status)

        return await self._unary(context, "SubmitCompletion", body)

    async def StreamCompletions(
        self, request_iterator: AsyncIterator[pb.StreamCompletionsRequest], context: Context
    ) -> AsyncIterator[pb.StreamCompletionsResponse]:
        try:
            issuer_id = await self._issuer(context)
        except RpcFailure as failure:
            metrics.REJECTED.labels(failure.reason or failure.code.name).inc()
            await abort(context, failure)
        traceparent = self._traceparent(context)
        slots = asyncio.Semaphore(self._settings.max_in_flight)
        pending: asyncio.Queue[asyncio.Task[pb.StreamCompletionsResponse] | None] = asyncio.Queue()

        async def item(request: pb.StreamCompletionsRequest) -> pb.StreamCompletionsResponse:
            started = time.perf_counter()
            completion_id = request.completion.completion_id
            try:
                if not request.HasField("completion"):
                    raise invalid_argument([Violation("completion", "required")])
                event_id, status = await self._accept(
                    issuer_id, request.completion, traceparent, "completion"
                )
                return pb.StreamCompletionsResponse(
                    completion_id=completion_id, event_id=event_id, status=status
                )
            except RpcFailure as failure:
                if failure.code in (grpc.StatusCode.UNAVAILABLE,):
                    raise  # affects every item: ends the stream
                reason = failure.code.name
                metrics.REJECTED.labels(failure.reason or reason).inc()
                return pb.StreamCompletionsResponse(
                    completion_id=completion_id,
                    status=pb.ACCEPTANCE_STATUS_REJECTED,
                    reason=reason,
                    message=failure.message,
                    field_violations=[
                        pb.FieldViolation(field=v.field, description=v.description)
                        for v in failure.violations
                    ],
                )
            finally:
                metrics.LATENCY.labels("StreamCompletions").observe(time.perf_counter() - started)

        async def reader() -> None:
            try:
                async for request in request_iterator:
                    await slots.acquire()  # bounded in flight: stop reading, the writer waits
                    await pending.put(asyncio.create_task(item(request)))
            finally:
                await pending.put(None)

        metrics.STREAMS.inc()
        reading = asyncio.create_task(reader())
        try:
            while True:
                task = await pending.get()
                if task is None:
                    break
                try:
                    response = await task
                except RpcFailure as failure:
                    metrics.REJECTED.labels(failure.reason or failure.code.name).inc()
                    await abort(context, failure)
                slots.release()
                yield response
            reading.result()
        finally:
            metrics.STREAMS.dec()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            while not pending.empty():
                leftover = pending.get_nowait()
                if leftover is not None:
                    leftover.cancel()

    async def RevokeCompletion(
        self, request: pb.RevokeCompletionRequest, context: Context
    ) -> pb.RevokeCompletionResponse:
        async def body() -> pb.RevokeCompletionResponse:
            issuer_id = await self._issuer(context)
            violations = validate_revocation_request(request)
            if violations:
                raise invalid_argument(violations)
            learner_id = await self._learner_of(issuer_id, request.completion_id)
            if learner_id is None:
                learner_id = request.learner_id or None
            elif request.learner_id and request.learner_id != learner_id:
                raise invalid_argument(
                    [Violation("learner_id", "the completion belongs to a different learner")]
                )
            if learner_id is None:
                raise RpcFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"no completion {request.completion_id!r} of yours is in the ledger; "
                    "name its learner_id to revoke it anyway",
                    reason=Reason.COMPLETION_NOT_FOUND,
                )
            retry_after = self._rate_limit(issuer_id)
            if retry_after is not None:
                raise RpcFailure(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "rate limit exceeded",
                    reason=Reason.RATE_LIMITED,
                    retry_after_s=retry_after,
                )
            event = revocation_from_proto(
                request, issuer_id=issuer_id, learner_id=learner_id, now=datetime.now(UTC)
            )
            try:
                await self._publish(event, self._traceparent(context))
            except KafkaUnavailable as exc:
                raise unavailable(
                    "Kafka did not confirm the revocation; retry", reason=Reason.KAFKA_UNAVAILABLE
                ) from exc
            metrics.ACCEPTED.labels("revocation").inc()
            return pb.RevokeCompletionResponse(
                event_id=str(event.envelope.event_id), status=pb.ACCEPTANCE_STATUS_ACCEPTED
            )

        return await self._unary(context, "RevokeCompletion", body)

    async def _learner_of(self, issuer_id: str, completion_id: str) -> str | None:
        recent = self._recent.get((issuer_id, completion_id))
        try:
            async with self._pool.acquire() as connection:
                learner = await completions.learner_of(connection, issuer_id, completion_id)
        except DATABASE_UNREACHABLE as exc:
            raise unavailable("cannot read the ledger", reason=Reason.DATABASE_UNAVAILABLE) from exc
        if learner is None and recent is not None:
            return recent[0]
        return learner

    async def GetCompletionStatus(
        self, request: pb.GetCompletionStatusRequest, context: Context
    ) -> pb.GetCompletionStatusResponse:
        async def body() -> pb.GetCompletionStatusResponse:
            issuer_id = await self._issuer(context)
            if request.completion_id == "" or len(request.completion_id) > 128:
                raise invalid_argument([Violation("completion_id", "required, 1..128 characters")])
            return await self._status(issuer_id, request.completion_id)

        return await self._unary(context, "GetCompletionStatus", body)

    async def ProposeCourse(
        self, request: pb.ProposeCourseRequest, context: Context
    ) -> pb.ProposeCourseResponse:
        async def body() -> pb.ProposeCourseResponse:
            issuer_id = await self._issuer(context)
            return await self._propose(issuer_id, request.course)

        return await self._unary(context, "ProposeCourse", body)

    async def _propose(self, issuer_id: str, c: common_pb2.Course) -> pb.ProposeCourseResponse:
        texts = {
            "course.course_id": c.course_id,
            "course.issuer_id": c.issuer_id,
            "course.title": c.title,
            "course.counts_as_course_id": c.counts_as_course_id,
            "course.recommendation_reason": c.recommendation_reason,
            **{f"course.skills[{n}]": skill for n, skill in enumerate(c.skills)},
        }
        violations = [
            Violation(name, "must contain only printable characters")
            for name, value in texts.items()
            if not value.isprintable()
        ]
        if len(c.course_id) > 128:
            violations.append(Violation("course.course_id", "at most 128 characters"))
        if len(c.title) > 300:
            violations.append(Violation("course.title", "at most 300 characters"))
        if len(c.skills) > 100 or any(len(skill) > 200 for skill in c.skills):
            violations.append(Violation("course.skills", "at most 100 skills of 200 characters"))
        if violations:
            raise invalid_argument(violations)
        try:
            course = course_from_proto(c, issuer_id=issuer_id)
            version_of = None
            if course.counts_as:
                version_of = (await self._lookup_courses([course.counts_as])).get(course.counts_as)
            check_proposal(
                course, caller=issuer_id, named_issuer=c.issuer_id, version_of=version_of
            )
        except InvalidCourse as exc:
            raise invalid_argument([Violation(f"course.{exc.field}", exc.message)]) from exc
        except ForeignIssuer as exc:
            raise RpcFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                str(exc),
                reason=Reason.FOREIGN_ISSUER,
                metadata={"issuer_id": c.issuer_id},
            ) from exc
        try:
            async with self._pool.acquire() as connection:
                await catalog.propose_course(connection, course)
        except catalog.AlreadyExists as exc:
            raise RpcFailure(
                grpc.StatusCode.ALREADY_EXISTS,
                str(exc),
                reason=Reason.COURSE_ALREADY_EXISTS,
                metadata={"course_id": course.course_id},
            ) from exc
        except catalog.NotFound as exc:  # the counts_as course vanished meanwhile
            raise invalid_argument(
                [Violation("course.counts_as_course_id", "is not a course in your catalog")]
            ) from exc
        except DATABASE_UNREACHABLE as exc:
            raise unavailable(
                f"cannot write the course catalog ({type(exc).__name__})",
                reason=Reason.DATABASE_UNAVAILABLE,
            ) from exc
        # Completions of the new course are accepted at once, not after the cache's TTL.
        self._courses[course.course_id] = (
            time.monotonic() + self._settings.catalog_cache_s,
            course,
        )
        log.info("course_proposed", issuer_id=issuer_id, course_id=course.course_id)
        return pb.ProposeCourseResponse(course=course_to_proto(course))

    async def _status(self, issuer_id: str, completion_id: str) -> pb.GetCompletionStatusResponse:
        event_id = completion_event_id(issuer_id, completion_id)
        try:
            async with self._pool.acquire() as connection:
                record = await completions.completion_record(
                    connection, issuer_id, completion_id, event_id
                )
        except DATABASE_UNREACHABLE as exc:
            raise unavailable("cannot read the ledger", reason=Reason.DATABASE_UNAVAILABLE) from exc
        response = pb.GetCompletionStatusResponse(
            completion_id=completion_id, event_id=str(event_id)
        )
        if record.entries:
            decided = record.entries[-1]
            response.learner_id = decided.learner_id
            response.ledger_position = decided.position
            response.ledger_sequence = decided.sequence
            response.update_time.CopyFrom(to_timestamp(decided.recorded_at))
            credits = float(decided.credits or 0)
            match decided.kind:
                case EntryKind.CREDIT_REVOKED:
                    response.state = pb.COMPLETION_STATE_REVOKED
                    response.credits = credits
                case EntryKind.CREDIT_AWARDED:
                    valid_until = decided.valid_until
                    assert valid_until is not None  # every credit_awarded entry has one
                    response.state = (
                        pb.COMPLETION_STATE_EXPIRED
                        if is_expired(valid_until, datetime.now(UTC))
                        else pb.COMPLETION_STATE_CREDITED
                    )
                    response.credits = credits
                    response.valid_until.CopyFrom(to_timestamp(valid_until))
                case _:
                    response.state = pb.COMPLETION_STATE_RECORDED_WITHOUT_CREDIT
                    response.reason = decided.no_credit_reason or ""
            conflicts = [
                r for r in record.rejections if r.reason == RejectionReason.COMPLETION_CONFLICT
            ]
            if conflicts:
                response.detail = (
                    "a later submission of this completion_id with different content was "
                    f"rejected ({RejectionReason.COMPLETION_CONFLICT}): {conflicts[-1].detail}"
                )
            return response
        if record.rejections:
            last = record.rejections[-1]
            response.state = pb.COMPLETION_STATE_REJECTED
            response.reason = last.reason
            response.detail = last.detail
            response.learner_id = last.learner_id or ""
            response.update_time.CopyFrom(to_timestamp(last.rejected_at))
            return response
        recent = self._recent.get((issuer_id, completion_id))
        if recent is not None:
            response.state = pb.COMPLETION_STATE_ACCEPTED
            response.learner_id = recent[0]
            response.update_time.CopyFrom(to_timestamp(recent[2]))
            return response
        raise RpcFailure(
            grpc.StatusCode.NOT_FOUND,
            f"no completion {completion_id!r} of yours is known (the ledger may not have "
            "decided it yet)",
            reason=Reason.COMPLETION_NOT_FOUND,
        )
