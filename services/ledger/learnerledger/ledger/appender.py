"""Decide a batch of requests and append the outcomes, exactly once in effect.

One batch is one PostgreSQL transaction: the entries, the rejections and the consumer offsets
after the batch commit together. A crash before the commit leaves nothing; the consumer then
re-reads the batch from the stored offsets. A request seen again later (a partner's retry, a
re-drive) meets its own earlier entry and becomes a no-op.

A failure that belongs to one record never stops the partition. A record that cannot be
decoded, breaks a field rule (checked again here with the gateway's rules: Kafka is a trust
boundary) or makes the rules raise is rejected into ``rejections`` and the dead-letter topic
with its reason. As a safety net, when PostgreSQL refuses a batch because of its DATA (not the
connection), the batch is retried one record per transaction, and the record it refuses again
is rejected (``unstorable``) while the others are appended. Only outages propagate (the
service pauses and restarts the consumer from the stored offsets).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import asyncpg
import prometheus_client
import structlog

from learnerledger.domain.catalog import Course, CourseCategory
from learnerledger.domain.credit_rules import (
    RULES,
    AlreadyRecorded,
    Append,
    CreditRules,
    Decision,
    Facts,
    PriorEntry,
    Redecided,
    Rejected,
    RejectionReason,
    RulesHistory,
    UncreditedCompletion,
    decide,
)
from learnerledger.domain.entries import Entry, EntryDraft, EntryKind
from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    ConsentRevokeRequested,
    CreditRedecisionRequested,
    LedgerRequest,
    RedemptionRequested,
    RevocationRequested,
    completion_event_id,
)
from learnerledger.domain.hash_chain import ChainHead, append_to_chain, head_of
from learnerledger.domain.instants import parse_instant
from learnerledger.domain.redemption import HeldCredential, Programme
from learnerledger.domain.validation import (
    DEFAULT_CLOCK_SKEW,
    describe,
    printable,
    validate_request,
)
from learnerledger.kafka.codec import UndecodableEvent, decode_completion_event
from learnerledger.postgres import Connection, bookkeeping, catalog, credit_log
from learnerledger.postgres.credit_log import CompletionRecord
from learnerledger.postgres.errors import DATA_UNSTORABLE, describe_data_error

log = structlog.get_logger(__name__)

DECIDED_BEFORE = prometheus_client.Counter(
    "ledger_records_decided_before_total",
    "Records skipped because a transaction of another consumer (before a rebalance) had "
    "already decided them",
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A Kafka record as the appender needs it (independent of the client library)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchOutcome:
    appended: list[Entry] = field(default_factory=list)
    rejected: list[bookkeeping.Rejection] = field(default_factory=list)
    already_recorded: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchOutcome) -> None:
        self.appended += other.appended
        self.rejected += other.rejected
        self.already_recorded += other.already_recorded
        self.counts.update(other.counts)


#: Sends rejections to the dead-letter topic; awaited before the transaction commits.
DeadLetterSink = Callable[[Sequence[bookkeeping.Rejection]], Awaitable[None]]

#: What deciding one request may raise on data no rule foresaw (a date whose validity end
#: overflows, a decimal that cannot be quantized): that request is rejected, not the batch.
RULES_FAILURES: tuple[type[Exception], ...] = (ValueError, OverflowError, InvalidOperation)
#: Cap on the text columns of a rejection (the original bytes are kept whole, in bytea).
MAX_ID_TEXT = 200
MAX_DETAIL_TEXT = 2000


class CreditLogAppender:
    """Turns batches of ``completions.v1`` records into credit-log entries."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group_id: str,
        rules: RulesHistory | CreditRules = RULES,
        dead_letters: DeadLetterSink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self._pool = pool
        self._group_id = group_id
        self._rules = rules
        self._dead_letters = dead_letters
        self._clock = clock
        self._clock_skew = clock_skew

    async def process(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Decide and append ``records`` (one topic) and store the offsets after them.

        When PostgreSQL refuses the batch for its data, each record is retried alone (one
        transaction each, offsets included) and a record refused again is rejected.
        """
        if not records:
            return BatchOutcome()
        try:
            return await self._process_together(records)
        except DATA_UNSTORABLE as exc:
            log.warning(
                "batch_refused_for_its_data",
                records=len(records),
                error=type(exc).__name__,
                sqlstate=getattr(exc, "sqlstate", None),
            )
        outcome = BatchOutcome()
        for record in records:
            try:
                outcome.add(await self._process_together([record]))
            except DATA_UNSTORABLE as exc:
                outcome.add(await self._reject_unstorable(record, exc))
        return outcome

    async def _process_together(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """One transaction: the outcomes of ``records`` and the offsets after them."""
        async with self._pool.acquire() as connection, connection.transaction():
            records = await self._not_yet_decided(connection, records)
            if not records:
                return BatchOutcome()
            outcome = await self._decide_batch(connection, records)
            await self._store(connection, records, outcome)
        return outcome

    async def _not_yet_decided(
        self, connection: Connection, records: Sequence[SourceRecord]
    ) -> Sequence[SourceRecord]:
        """``records`` less those below the stored offsets (decided by an earlier transaction,
        e.g. of the consumer that owned the partition before a rebalance); the offsets stay
        locked until this transaction ends."""
        stored = await bookkeeping.lock_offsets(
            connection, self._group_id, records[0].topic, sorted({r.partition for r in records})
        )
        fresh = undecided(records, stored)
        if len(fresh) < len(records):
            DECIDED_BEFORE.inc(len(records) - len(fresh))
            log.warning(
                "records_already_decided_skipped",
                skipped=len(records) - len(fresh),
                partitions=sorted({r.partition for r in records}),
            )
        return fresh

    async def _reject_unstorable(self, record: SourceRecord, exc: Exception) -> BatchOutcome:
        """Reject ``record`` alone because PostgreSQL refused its outcome (``exc``)."""
        try:
            request: LedgerRequest | None = decode_completion_event(record.value)
        except UndecodableEvent:
            request = None
        log.warning(
            "record_unstorable",
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
            sqlstate=getattr(exc, "sqlstate", None),
        )
        rejection = _rejection(
            record, RejectionReason.UNSTORABLE.value, describe_data_error(exc), request
        )
        outcome = BatchOutcome(rejected=[rejection])
        outcome.counts[f"rejected:{rejection.reason}"] += 1
        async with self._pool.acquire() as connection, connection.transaction():
            if not await self._not_yet_decided(connection, [record]):
                return BatchOutcome()
            await self._store(connection, [record], outcome)
        return outcome

    async def _store(
        self, connection: Connection, records: Sequence[SourceRecord], outcome: BatchOutcome
    ) -> None:
        if outcome.rejected and self._dead_letters is not None:
            await self._dead_letters(outcome.rejected)
        await credit_log.append_entries(connection, outcome.appended)
        # Never spent twice, also as a constraint: a credential redeemed before fails the batch.
        await credit_log.record_redeemed_credentials(connection, outcome.appended)
        await bookkeeping.record_rejections(connection, outcome.rejected)
        await bookkeeping.store_offsets(
            connection, self._group_id, records[0].topic, offsets_after(records)
        )

    async def _decide_batch(
        self, connection: Connection, records: Sequence[SourceRecord]
    ) -> BatchOutcome:
        now = self._clock()
        outcome, decoded = screen(records, now=now, clock_skew=self._clock_skew)
        if not decoded:
            return outcome
        facts = await BatchFacts.load(connection, [request for _, request in decoded])
        outcome.add(decide_screened(decoded, facts, rules=self._rules, now=now))
        return outcome


def undecided(
    records: Sequence[SourceRecord], stored_offsets: Mapping[int, int]
) -> list[SourceRecord]:
    """``records`` at or after the stored offset of their partition (the others were decided by
    an earlier transaction); a partition without a stored offset starts at 0."""
    return [r for r in records if r.offset >= stored_offsets.get(r.partition, 0)]


def offsets_after(records: Sequence[SourceRecord]) -> dict[int, int]:
    """The offset to store per partition: one past the highest offset of ``records`` in it."""
    next_offsets: dict[int, int] = {}
    for record in records:
        next_offsets[record.partition] = max(
            next_offsets.get(record.partition, 0), record.offset + 1
        )
    return next_offsets


def screen(
    records: Sequence[SourceRecord], *, now: datetime, clock_skew: timedelta = DEFAULT_CLOCK_SKEW
) -> tuple[BatchOutcome, list[tuple[SourceRecord, LedgerRequest]]]:
    """Decode and validate ``records`` (no I/O): the rejections of those that cannot be decoded
    or break a field rule, and the others with their requests, in the order of ``records``."""
    outcome = BatchOutcome()
    decoded: list[tuple[SourceRecord, LedgerRequest]] = []
    for record in records:
        try:
            request = decode_completion_event(record.value)
        except UndecodableEvent as exc:
            outcome.rejected.append(_rejection(record, exc.reason, exc.detail, None))
            outcome.counts[f"rejected:{exc.reason}"] += 1
            continue
        violations = validate_request(request, now=now, clock_skew=clock_skew)
        if violations:
            reason = RejectionReason.INVALID_REQUEST.value
            outcome.rejected.append(_rejection(record, reason, describe(violations), request))
            outcome.counts[f"rejected:{reason}"] += 1
            continue
        decoded.append((record, request))
    return outcome, decoded


def decide_screened(
    decoded: Sequence[tuple[SourceRecord, LedgerRequest]],
    facts: BatchFacts,
    *,
    rules: RulesHistory | CreditRules = RULES,
    now: datetime,
) -> BatchOutcome:
    """Decide ``decoded`` in order with ``facts`` (no I/O): each request sees the entries of the
    requests before it in the batch (``facts`` is kept current). A request the rules raise on
    (:data:`RULES_FAILURES`) is rejected as unprocessable; the batch goes on."""
    outcome = BatchOutcome()
    for record, request in decoded:
        try:
            decision = decide(request, facts.for_request(request), rules=rules, now=now)
            chained = _chained(decision, facts.heads)
        except RULES_FAILURES as exc:
            reason = RejectionReason.UNPROCESSABLE.value
            log.warning(
                "record_unprocessable",
                partition=record.partition,
                offset=record.offset,
                error=type(exc).__name__,
            )
            detail = f"deciding the request failed: {type(exc).__name__}: {exc}"
            outcome.rejected.append(_rejection(record, reason, detail, request))
            outcome.counts[f"rejected:{reason}"] += 1
            continue
        for link in chained:
            entry = dataclasses.replace(
                link, source_partition=record.partition, source_offset=record.offset
            )
            facts.remember(request, entry)
            outcome.appended.append(entry)
            label = "credit_awarded:redecided" if isinstance(decision, Redecided) else None
            outcome.counts[label or entry.kind.value] += 1
        match decision:  # Append and Redecided: their entries were added above
            case Redecided(drafts=()):
                outcome.counts["redecided_nothing"] += 1
            case AlreadyRecorded():
                outcome.already_recorded += 1
                outcome.counts["already_recorded"] += 1
            case Rejected(reason=reason, detail=detail):
                outcome.rejected.append(_rejection(record, reason.value, detail, request))
                outcome.counts[f"rejected:{reason.value}"] += 1
    return outcome


def _chained(decision: Decision, heads: Mapping[str, ChainHead]) -> list[Entry]:
    """The entries a decision appends, each chained onto the one before (nothing is stored)."""
    match decision:
        case Append(draft=draft):
            drafts: tuple[EntryDraft, ...] = (draft,)
        case Redecided(drafts=drafts):
            pass
        case _:
            return []
    entries: list[Entry] = []
    latest = dict(heads)
    for draft in drafts:
        entry = append_to_chain(latest.get(draft.learner_id), draft)
        latest[draft.learner_id] = head_of(entry)
        entries.append(entry)
    return entries


@dataclass(slots=True)
class BatchFacts:
    """What the rules need for a batch, loaded in a few queries and kept current in memory as
    entries of the same batch are decided (a revocation may follow its completion in one batch)."""

    heads: dict[str, ChainHead]
    same_event: dict[uuid.UUID, PriorEntry]
    courses: dict[str, Course]
    completions: dict[tuple[str, str, str], CompletionRecord]
    universities: set[str]
    consents: set[tuple[str, str]]
    uncredited: dict[tuple[str, str], list[UncreditedCompletion]]
    #: (learner, credit group) -> sequence of the entry holding the learner's credit for it.
    credit_holders: dict[tuple[str, str], int]
    #: For redemptions: the programmes named, the learners' credit entries with their state,
    #: and per (learner, programme) the credits already redeemed toward it by category.
    programmes: dict[str, Programme] = field(default_factory=dict)
    held: dict[str, dict[int, HeldCredential]] = field(default_factory=dict)
    redeemed: dict[tuple[str, str], dict[CourseCategory, Decimal]] = field(default_factory=dict)

    @classmethod
    async def load(cls, connection: Connection, requests: Sequence[LedgerRequest]) -> BatchFacts:
        learners = {r.envelope.learner_id for r in requests}
        course_ids = [
            r.course_id
            for r in requests
            if isinstance(r, CompletionSubmitted | CreditRedecisionRequested)
        ]
        redecisions = [
            (r.envelope.learner_id, r.course_id)
            for r in requests
            if isinstance(r, CreditRedecisionRequested)
        ]
        revocations = [r for r in requests if isinstance(r, RevocationRequested)]
        consent_requests = [
            r for r in requests if isinstance(r, ConsentGrantRequested | ConsentRevokeRequested)
        ]
        event_ids = [r.envelope.event_id for r in requests] + [
            completion_event_id(r.envelope.issuer_id, r.completion_id) for r in revocations
        ]
        universities = {r.university_id for r in consent_requests}
        redemptions = [r for r in requests if isinstance(r, RedemptionRequested)]
        redeemers = {r.envelope.learner_id for r in redemptions}
        if course_ids:
            # Until this batch commits, no approval or withdrawal of these courses can be
            # recorded (and miss a completion decided here); see catalog.hold_courses_shared.
            await catalog.hold_courses_shared(connection, course_ids)
        courses = await catalog.courses_by_id(connection, course_ids) if course_ids else {}
        credit_keys = [
            (r.envelope.learner_id, courses[r.course_id].credit_group)
            for r in requests
            if isinstance(r, CompletionSubmitted | CreditRedecisionRequested)
            and r.course_id in courses
        ]
        programmes = (
            {
                programme_id: programme
                for programme_id, (programme, _) in (
                    await catalog.programmes_by_id(
                        connection, [r.programme_id for r in redemptions]
                    )
                ).items()
            }
            if redemptions
            else {}
        )
        return cls(
            heads=await credit_log.load_heads(connection, learners),
            same_event=dict(await credit_log.find_by_source_events(connection, event_ids)),
            courses=courses,
            completions=await credit_log.find_completions(
                connection,
                [
                    (r.envelope.learner_id, r.envelope.issuer_id, r.completion_id)
                    for r in revocations
                ],
            ),
            universities={
                u for u in universities if await catalog.university_exists(connection, u)
            },
            consents=await credit_log.active_consents(
                connection,
                [
                    (r.envelope.learner_id, r.university_id)
                    for r in [*consent_requests, *redemptions]
                ],
            ),
            uncredited=await credit_log.uncredited_completions(connection, redecisions),
            credit_holders=await credit_log.credit_holders(connection, credit_keys),
            programmes=programmes,
            held=await credit_log.held_credentials(connection, redeemers) if redeemers else {},
            redeemed=await credit_log.redeemed_toward(
                connection, [(r.envelope.learner_id, r.programme_id) for r in redemptions]
            ),
        )

    def for_request(self, request: LedgerRequest) -> Facts:
        same_event = self.same_event.get(request.envelope.event_id)
        match request:
            case CompletionSubmitted():
                course = self.courses.get(request.course_id)
                return Facts(
                    same_event=same_event,
                    course=course,
                    credit_held_by=self._credit_held_by(request.envelope.learner_id, course),
                )
            case RevocationRequested():
                record = self.completions.get(_completion_key(request))
                return Facts(
                    same_event=same_event,
                    revocation_target=record.entry if record else None,
                    target_revoked=record.revoked if record else False,
                )
            case ConsentGrantRequested() | ConsentRevokeRequested():
                return Facts(
                    same_event=same_event,
                    university_known=request.university_id in self.universities,
                    consent_active=(request.envelope.learner_id, request.university_id)
                    in self.consents,
                )
            case CreditRedecisionRequested():
                course = self.courses.get(request.course_id)
                return Facts(
                    same_event=same_event,
                    course=course,
                    credit_held_by=self._credit_held_by(request.envelope.learner_id, course),
                    uncredited=tuple(
                        self.uncredited.get((request.envelope.learner_id, request.course_id), ())
                    ),
                )
            case RedemptionRequested():
                learner = request.envelope.learner_id
                return Facts(
                    same_event=same_event,
                    programme=self.programmes.get(request.programme_id),
                    held=dict(self.held.get(learner, {})),
                    redeemed_toward_programme=dict(
                        self.redeemed.get((learner, request.programme_id), {})
                    ),
                    consent_active=(learner, request.university_id) in self.consents,
                )

    def _credit_held_by(self, learner_id: str, course: Course | None) -> int | None:
        return (
            None if course is None else self.credit_holders.get((learner_id, course.credit_group))
        )

    def _remember_for_redemptions(self, entry: Entry) -> None:
        """Keep the redemption facts of a learner current within the batch."""
        held = self.held.get(entry.learner_id)
        if held is None:
            return
        p = entry.payload
        match entry.kind:
            case EntryKind.CREDIT_AWARDED:
                course = self.courses.get(str(p["course_id"]))
                held[entry.sequence] = HeldCredential(
                    sequence=entry.sequence,
                    course_id=str(p["course_id"]),
                    category=course.category if course else CourseCategory.UNIVERSITY_COURSE,
                    level=Decimal(str(p["level"])),
                    credits=Decimal(str(p["credits"])),
                    completed_at=parse_instant(str(p["completed_at"])),
                    valid_until=parse_instant(str(p["valid_until"])),
                )
            case EntryKind.CREDIT_REVOKED:
                revoked = p.get("revoked_sequence")
                if isinstance(revoked, int) and revoked in held:
                    held[revoked] = dataclasses.replace(held[revoked], revoked=True)
            case EntryKind.CREDITS_REDEEMED:
                totals = self.redeemed.setdefault((entry.learner_id, str(p["programme_id"])), {})
                lines = p.get("lines")
                for line in lines if isinstance(lines, list) else []:
                    if not isinstance(line, Mapping) or line.get("outcome") != "redeemed":
                        continue
                    sequence = int(str(line["sequence"]))
                    credential = held[sequence]
                    held[sequence] = dataclasses.replace(credential, redeemed=True)
                    totals[credential.category] = (
                        totals.get(credential.category, Decimal(0)) + credential.credits
                    )
            case _:
                pass

    def remember(self, request: LedgerRequest, entry: Entry) -> None:
        self.heads[entry.learner_id] = head_of(entry)
        self._remember_for_redemptions(entry)
        if entry.kind is EntryKind.CREDIT_AWARDED:
            course = self.courses.get(str(entry.payload["course_id"]))
            if course is not None:
                self.credit_holders.setdefault(
                    (entry.learner_id, course.credit_group), entry.sequence
                )
        elif entry.kind is EntryKind.CREDIT_REVOKED:
            revoked = entry.payload["revoked_sequence"]
            for holder, sequence in list(self.credit_holders.items()):
                if holder[0] == entry.learner_id and sequence == revoked:
                    del self.credit_holders[holder]
        prior = PriorEntry(entry.sequence, entry.kind, entry.payload)
        self.same_event[entry.source_event_id] = prior
        match request:
            case CompletionSubmitted():
                key = (entry.learner_id, request.envelope.issuer_id, request.completion_id)
                self.completions[key] = CompletionRecord(prior, revoked=False)
            case RevocationRequested():
                key = _completion_key(request)
                self.completions[key] = dataclasses.replace(self.completions[key], revoked=True)
            case ConsentGrantRequested():
                self.consents.add((entry.learner_id, request.university_id))
            case ConsentRevokeRequested():
                self.consents.discard((entry.learner_id, request.university_id))
            case CreditRedecisionRequested():
                # The credited completion: a later revocation in this batch targets this entry,
                # and a second re-decision request in this batch finds it credited.
                credited = (
                    entry.learner_id,
                    str(entry.payload["issuer_id"]),
                    str(entry.payload["completion_id"]),
                )
                self.completions[credited] = CompletionRecord(prior, revoked=False)
                uncredited = self.uncredited.get((entry.learner_id, request.course_id), [])
                self.uncredited[(entry.learner_id, request.course_id)] = [
                    dataclasses.replace(u, redecided=True)
                    if u.sequence == entry.payload["redecides_sequence"]
                    else u
                    for u in uncredited
                ]


def _completion_key(request: RevocationRequested) -> tuple[str, str, str]:
    return (request.envelope.learner_id, request.envelope.issuer_id, request.completion_id)


def _rejection(
    record: SourceRecord, reason: str, detail: str, request: LedgerRequest | None
) -> bookkeeping.Rejection:
    completion_id = (
        request.completion_id
        if isinstance(request, CompletionSubmitted | RevocationRequested)
        else None
    )
    # The text columns (and the dead letter's ``detail``) get a printable rendering, so that
    # storing the rejection cannot fail on the data that caused it; the original bytes are kept
    # whole in ``original_key`` / ``original_value``.
    return bookkeeping.Rejection(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        reason=reason,
        detail=printable(detail, MAX_DETAIL_TEXT),
        original_key=record.key,
        original_value=record.value or b"",
        source_event_id=request.envelope.event_id if request else None,
        issuer_id=_text(request.envelope.issuer_id) if request else None,
        learner_id=_text(request.envelope.learner_id) if request else None,
        completion_id=_text(completion_id),
    )


def _text(value: str | None) -> str | None:
    return None if value is None else printable(value, MAX_ID_TEXT)
