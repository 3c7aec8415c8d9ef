"""TranscriptQueryService: transcripts, credentials and proofs for universities, admins and the
learners themselves (grpc.aio).

Who may read a learner's record: an admin, a university while the learner's consent to it is in
force (not revoked, not past its expire_time: checked on every call), and the learner (an ID
token) for their own id only. Every read by a university or an admin is written to the access
log (``access_log``) before it is answered; the learner lists it with ListRecordAccesses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeAlias, TypeVar

import asyncpg
import grpc
import structlog
from prometheus_client import Histogram

from learnerledger.domain.entries import EntryKind
from learnerledger.domain.hash_chain import verify_chain
from learnerledger.domain.instants import parse_instant
from learnerledger.domain.learners import is_apaar_id
from learnerledger.domain.merkle import ProofError
from learnerledger.domain.transcript import (
    Credential,
    TranscriptProjection,
    TranscriptState,
    read_at,
    redemption_change,
    view_at,
)
from learnerledger.postgres import Connection, catalog, credit_log, read_model
from learnerledger.postgres import credentials as credential_store
from learnerledger.postgres.checkpoints import verify_checkpoints
from learnerledger.postgres.merkle_tree import MissingNode, consistency_proof_between
from learnerledger.postgres.tree_heads import InclusionAt, NoTreeHead, head_of_size, inclusion_at
from learnerledger.query import access_log, paging
from learnerledger.query.credentials import CredentialIssuerSlot, CredentialIssuing
from learnerledger.rpc.auth import BearerAuthenticator, pool_lookup
from learnerledger.rpc.errors import Reason, RpcFailure, Violation, abort, invalid_argument
from learnerledger.rpc.learner_tokens import LearnerTokenVerifier
from learnerledger.v1 import transcript_query_pb2 as pb
from learnerledger.v1 import transcript_query_pb2_grpc as pb_grpc
from learnerledger.wire.events import ledger_entry_to_proto
from learnerledger.wire.instants import InstantOutOfRange, from_timestamp, to_timestamp
from learnerledger.wire.transcripts import (
    Labels,
    credential_to_proto,
    state_to_transcript,
    transcript_to_proto,
)
from learnerledger.wire.verification import (
    COVERAGE_TO_PROTO,
    chain_break_to_proto,
    chain_head_to_proto,
    checkpoint_problem_to_proto,
    signed_checkpoint_to_proto,
)

log = structlog.get_logger(__name__)

RPC_SECONDS = Histogram("query_rpc_seconds", "TranscriptQueryService call latency", ["method"])
BATCH_LEARNERS = Histogram(
    "query_batch_learners",
    "Learner ids per BatchGetTranscripts call",
    buckets=(1, 5, 10, 25, 50, 75, 100),
)
DEFAULT_MIN_POSITION_WAIT_S = 10.0
#: The most learners one BatchGetTranscripts call may name (transcript_query.proto).
MAX_BATCH_LEARNERS = 100

R = TypeVar("R")
Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _unary(
    method: Callable[[Any, Any, Ctx], Awaitable[R]],
) -> Callable[[Any, Any, Ctx], Awaitable[R]]:
    @wraps(method)
    async def wrapper(self: Any, request: Any, context: Ctx) -> R:
        started = time.perf_counter()
        try:
            return await method(self, request, context)
        except RpcFailure as failure:
            await abort(context, failure)
        finally:
            RPC_SECONDS.labels(method.__name__).observe(time.perf_counter() - started)

    return wrapper


def _course_ids(states: Iterable[TranscriptState]) -> set[str]:
    return {
        course_id
        for state in states
        for course_id in (
            *(c.course_id for c in state.credentials.values()),
            *(c.course_id for c in state.without_credit.values()),
        )
    }


def _read_times(
    request: pb.GetTranscriptRequest | pb.ListCredentialsRequest,
) -> tuple[datetime, datetime] | None:
    """(as_of, known_at) when the request sets either; None for a read of "now".

    known_at unset: now (everything recorded); as_of unset: known_at (the transcript a reader
    would have got then)."""
    if not request.HasField("as_of") and not request.HasField("known_at"):
        return None
    violations = []
    known_at = datetime.now(UTC)
    as_of: datetime | None = None
    if request.HasField("known_at"):
        try:
            known_at = from_timestamp(request.known_at)
        except InstantOutOfRange as exc:
            violations.append(Violation("known_at", exc.description))
    if request.HasField("as_of"):
        try:
            as_of = from_timestamp(request.as_of)
        except InstantOutOfRange as exc:
            violations.append(Violation("as_of", exc.description))
    if violations:
        raise invalid_argument(violations)
    return (known_at if as_of is None else as_of), known_at


def _check_learner_id(learner_id: str) -> None:
    if not is_apaar_id(learner_id):
        raise invalid_argument([Violation("learner_id", "must be an APAAR id: exactly 12 digits")])


def _not_found(learner_id: str) -> RpcFailure:
    return RpcFailure(
        grpc.StatusCode.NOT_FOUND,
        f"learner {learner_id} has no entries in the ledger",
        reason=Reason.LEARNER_NOT_FOUND,
        metadata={"learner_id": learner_id},
    )


class TranscriptQueryServicer(pb_grpc.TranscriptQueryServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        watch_poll_s: float = 0.2,
        min_position_poll_s: float = 0.05,
        trusted_public_key: bytes | None = None,
        learner_tokens: LearnerTokenVerifier | None = None,
        credentials: CredentialIssuerSlot | None = None,
    ) -> None:
        self._pool = pool
        self._credentials = credentials or CredentialIssuerSlot()
        self._auth = BearerAuthenticator(pool_lookup(pool), learner_tokens=learner_tokens)
        self._watch_poll_s = watch_poll_s
        self._min_position_poll_s = min_position_poll_s
        self._trusted_public_key = trusted_public_key

    # -- access ---------------------------------------------------------------------------
    async def _reader(self, context: Ctx) -> catalog.Principal:
        """The caller, if its token may read records at all (university, admin or learner)."""
        principal = await self._auth.principal(context.invocation_metadata())
        if principal.kind not in _READERS:
            raise RpcFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                "only university, admin and learner tokens may read transcripts",
                reason=Reason.WRONG_PRINCIPAL_KIND,
                metadata={"principal_kind": principal.kind.value},
            )
        return principal

    async def _readable(
        self, connection: Connection, principal: catalog.Principal, learner_ids: Iterable[str]
    ) -> dict[str, datetime | None]:
        """Which of ``learner_ids`` the reader may read now, each with when that right lapses
        (None: not on its own): all for an admin, their own id for a learner, those whose
        consent to the university is in force for a university. Consent is checked on every
        call (never cached): a revocation or an expiry takes effect at once."""
        ids = set(learner_ids)
        if principal.kind is catalog.PrincipalKind.ADMIN:
            return dict.fromkeys(ids)
        if principal.kind is catalog.PrincipalKind.LEARNER:
            return dict.fromkeys(ids & {principal.principal_id})
        pairs = [(learner_id, principal.principal_id) for learner_id in ids]
        standing = await credit_log.consents_in_force(connection, pairs)
        return {learner: expire_time for (learner, _), expire_time in standing.items()}

    async def _authorize(
        self, context: Ctx, learner_id: str, method: str
    ) -> tuple[catalog.Principal, datetime | None]:
        """The reader and when its right to this record lapses; the read is logged."""
        principal = await self._reader(context)
        _check_learner_id(learner_id)
        async with self._pool.acquire() as connection:
            readable = await self._readable(connection, principal, [learner_id])
            if learner_id not in readable:
                raise self._denied(learner_id, principal)
            await _log_reads(connection, principal, [learner_id], method)
        return principal, readable[learner_id]

    def _denied(self, learner_id: str, principal: catalog.Principal) -> RpcFailure:
        if principal.kind is catalog.PrincipalKind.LEARNER:
            return RpcFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                "a signed-in learner reads only their own record",
                reason=Reason.NOT_OWN_RECORD,
                metadata={"learner_id": learner_id},
            )
        return self._consent_denied(learner_id, principal.principal_id)

    @staticmethod
    def _consent_denied(learner_id: str, university_id: str) -> RpcFailure:
        return RpcFailure(
            grpc.StatusCode.PERMISSION_DENIED,
            f"learner {learner_id} has not granted university {university_id} consent "
            "to read their record (or has revoked it, or it has lapsed)",
            reason=Reason.CONSENT_NOT_GRANTED,
            metadata={"learner_id": learner_id, "university_id": university_id},
        )

    async def _labels(self, states: Iterable[TranscriptState]) -> Labels:
        async with self._pool.acquire() as connection:
            return await catalog.course_labels(connection, _course_ids(states))

    async def _load(self, learner_id: str) -> TranscriptState:
        async with self._pool.acquire() as connection:
            state = await read_model.load_state(connection, learner_id)
        if state is None:
            raise _not_found(learner_id)
        return state

    async def _wait_for_position(self, context: Ctx, learner_id: str, min_position: int) -> None:
        remaining = context.time_remaining()
        budget = DEFAULT_MIN_POSITION_WAIT_S if remaining is None else remaining
        deadline = time.monotonic() + max(0.0, budget - 0.05)  # leave time to answer
        while True:
            async with self._pool.acquire() as connection:
                if await read_model.has_applied_position(connection, learner_id, min_position):
                    return
            if time.monotonic() + self._min_position_poll_s > deadline:
                raise RpcFailure(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the read model has not yet applied learner {learner_id}'s entries up to "
                    f"log position {min_position}; retry, or call with a longer deadline",
                    reason=Reason.POSITION_NOT_APPLIED,
                    retry_after_s=0.5,
                    metadata={"min_position": str(min_position)},
                )
            await asyncio.sleep(self._min_position_poll_s)

    # -- RPCs -----------------------------------------------------------------------------
    @_unary
    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: Ctx
    ) -> pb.GetTranscriptResponse:
        await self._authorize(context, request.learner_id, "GetTranscript")
        if request.min_position < 0:
            raise invalid_argument([Violation("min_position", "must not be negative")])
        times = _read_times(request)
        if times is not None:
            as_of, known_at = times
            async with self._pool.acquire() as connection:
                entries = await credit_log.learner_entries(connection, request.learner_id)
            if not entries:
                raise _not_found(request.learner_id)
            state = read_at(request.learner_id, entries, as_of=as_of, known_at=known_at)
            labels = await self._labels([state])
            return pb.GetTranscriptResponse(
                transcript=state_to_transcript(state, as_of, known_at, labels)
            )
        if request.min_position > 0:
            await self._wait_for_position(context, request.learner_id, request.min_position)
        state = await self._load(request.learner_id)
        now = datetime.now(UTC)
        labels = await self._labels([state])
        return pb.GetTranscriptResponse(transcript=state_to_transcript(state, now, now, labels))

    @_unary
    async def BatchGetTranscripts(
        self, request: pb.BatchGetTranscriptsRequest, context: Ctx
    ) -> pb.BatchGetTranscriptsResponse:
        principal = await self._reader(context)
        learner_ids = list(request.learner_ids)
        if not learner_ids:
            raise invalid_argument([Violation("learner_ids", "give at least one learner id")])
        if len(learner_ids) > MAX_BATCH_LEARNERS:
            raise invalid_argument(
                [
                    Violation(
                        "learner_ids",
                        f"at most {MAX_BATCH_LEARNERS} learner ids per call, got "
                        f"{len(learner_ids)}: split the list",
                    )
                ]
            )
        valid = {learner_id for learner_id in learner_ids if is_apaar_id(learner_id)}
        async with self._pool.acquire() as connection:
            readable = await self._readable(connection, principal, valid)
            await _log_reads(connection, principal, readable, "BatchGetTranscripts")
            states = await read_model.load_states(connection, readable)
            labels = await catalog.course_labels(connection, _course_ids(states.values()))
        now = datetime.now(UTC)
        BATCH_LEARNERS.observe(len(learner_ids))
        results = []
        for index, learner_id in enumerate(learner_ids):
            result = pb.TranscriptResult(learner_id=learner_id)
            refusal: RpcFailure | None = None
            if learner_id not in valid:
                refusal = invalid_argument(
                    [Violation(f"learner_ids[{index}]", "must be an APAAR id: exactly 12 digits")]
                )
            elif learner_id not in readable:
                refusal = self._denied(learner_id, principal)
            elif learner_id not in states:
                refusal = _not_found(learner_id)
            if refusal is None:
                result.transcript.CopyFrom(
                    state_to_transcript(states[learner_id], now, now, labels)
                )
            else:
                result.error.MergeFromString(refusal.status_message().SerializeToString())
            results.append(result)
        return pb.BatchGetTranscriptsResponse(results=results)

    @_unary
    async def ListCredentials(
        self, request: pb.ListCredentialsRequest, context: Ctx
    ) -> pb.ListCredentialsResponse:
        await self._authorize(context, request.learner_id, "ListCredentials")
        violations = []
        try:
            credential_filter = paging.parse_filter(request.filter)
        except paging.InvalidFilter as exc:
            violations.append(Violation("filter", exc.description))
            credential_filter = paging.CredentialFilter()
        try:
            page_size = paging.coerce_page_size(request.page_size)
        except ValueError as exc:
            violations.append(Violation("page_size", str(exc)))
            page_size = paging.DEFAULT_PAGE_SIZE
        after = 0
        try:
            times = _read_times(request)
        except RpcFailure as failure:  # reported with the other fields' violations
            violations.extend(failure.violations)
            times = None
        # The request's own times (not "now"), so the next page's call names the same read.
        scope = paging.read_scope(
            f"{request.as_of.seconds}.{request.as_of.nanos}" if request.HasField("as_of") else None,
            f"{request.known_at.seconds}.{request.known_at.nanos}"
            if request.HasField("known_at")
            else None,
        )
        if not violations:
            try:
                after = paging.decode_page_token(
                    request.page_token, request.learner_id, credential_filter, scope
                )
            except paging.InvalidPageToken as exc:
                violations.append(Violation("page_token", str(exc)))
        if violations:
            raise invalid_argument(violations)
        if times is not None:
            rows, total, now = await self._credentials_at(
                request.learner_id, credential_filter, times, after, page_size + 1
            )
        else:
            rows, total, now = await self._credentials_now(
                request.learner_id, credential_filter, after, page_size + 1
            )
        page = rows[:page_size]
        async with self._pool.acquire() as connection:
            labels = await catalog.course_labels(connection, {c.course_id for c in page})
        token = ""
        if len(rows) > page_size:
            token = paging.encode_page_token(
                page[-1].sequence, request.learner_id, credential_filter, scope
            )
        return pb.ListCredentialsResponse(
            credentials=[credential_to_proto(c, c.status_at(now), labels) for c in page],
            next_page_token=token,
            total_size=total,
        )

    async def _credentials_at(
        self,
        learner_id: str,
        credential_filter: paging.CredentialFilter,
        times: tuple[datetime, datetime],
        after: int,
        limit: int,
    ) -> tuple[list[Credential], int, datetime]:
        """A page of what the learner held at as_of, as recorded by known_at (the log's fold)."""
        as_of, known_at = times
        async with self._pool.acquire() as connection:
            entries = await credit_log.learner_entries(connection, learner_id)
        if not entries:
            raise _not_found(learner_id)
        state = read_at(learner_id, entries, as_of=as_of, known_at=known_at)
        matching = [
            credential
            for _, credential in sorted(state.credentials.items())
            if credential_filter.matches(credential, credential.status_at(as_of))
        ]
        rows = [credential for credential in matching if credential.sequence > after]
        return rows[:limit], len(matching), as_of

    async def _credentials_now(
        self, learner_id: str, credential_filter: paging.CredentialFilter, after: int, limit: int
    ) -> tuple[list[Credential], int, datetime]:
        """A page of the read model's credentials, with statuses now."""
        async with self._pool.acquire() as connection:
            sequence, _ = await read_model.applied_sequence(connection, learner_id)
            if sequence == 0:
                raise _not_found(learner_id)
            now = datetime.now(UTC)
            rows, total = await read_model.list_credentials(
                connection,
                learner_id,
                credential_filter,
                instant=now,
                after_sequence=after,
                limit=limit,
            )
        return rows, total, now

    @_unary
    async def GetCreditSummary(
        self, request: pb.GetCreditSummaryRequest, context: Ctx
    ) -> pb.GetCreditSummaryResponse:
        await self._authorize(context, request.learner_id, "GetCreditSummary")
        state = await self._load(request.learner_id)
        now = datetime.now(UTC)
        view = view_at(state, now)
        transcript = transcript_to_proto(view, state.completions_without_credit, now)
        return pb.GetCreditSummaryResponse(
            summary=pb.CreditSummary(
                learner_id=state.learner_id,
                total_active_credits=float(view.active_credits),
                by_level=transcript.by_level,
                by_issuer=transcript.by_issuer,
                credits_last_365_days=float(view.credits_last_365_days),
                exceeds_annual_limit=view.exceeds_annual_limit,
                ledger_position=view.ledger_position,
                annual_limit_credits=float(view.annual_limit),
                as_of=to_timestamp(now),
                redeemed_credits=transcript.redeemed_credits,
                redeemed_by_programme=transcript.redeemed_by_programme,
            )
        )

    async def WatchTranscript(
        self, request: pb.WatchTranscriptRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchTranscriptResponse]:
        try:
            principal, lapses_at = await self._authorize(
                context, request.learner_id, "WatchTranscript"
            )
            state = await self._load(request.learner_id)
        except RpcFailure as failure:
            await abort(context, failure)
        university = (
            principal.principal_id if principal.kind is catalog.PrincipalKind.UNIVERSITY else None
        )
        labels = await self._labels([state])
        yield pb.WatchTranscriptResponse(
            transcript=state_to_transcript(state, datetime.now(UTC), None, labels),
            applied_sequence=state.last_sequence,
        )
        while True:
            await asyncio.sleep(self._watch_poll_s)
            if university is not None and lapses_at is not None and datetime.now(UTC) >= lapses_at:
                await abort(context, self._consent_denied(request.learner_id, university))
            async with self._pool.acquire() as connection:
                applied, _ = await read_model.applied_sequence(connection, request.learner_id)
                if applied <= state.last_sequence:
                    continue
                # Replay the entries the projector applied since the last update, one by one,
                # with the same fold: one message per entry, never out of order.
                entries = await credit_log.learner_entries(
                    connection,
                    request.learner_id,
                    after_sequence=state.last_sequence,
                    up_to_sequence=applied,
                )
                arriving = {
                    course_id
                    for entry in entries
                    if isinstance(course_id := entry.payload.get("course_id"), str)
                }
                labels = await catalog.course_labels(connection, _course_ids([state]) | arriving)
            for entry in entries:
                before, state = state, TranscriptProjection.apply(state, entry)
                change = redemption_change(before, state)
                if (
                    university is not None
                    and entry.kind is EntryKind.CONSENT_REVOKED
                    and entry.payload.get("university_id") == university
                ):
                    await abort(context, self._consent_denied(request.learner_id, university))
                if (
                    university is not None
                    and entry.kind is EntryKind.CONSENT_GRANTED
                    and entry.payload.get("university_id") == university
                ):
                    granted_until = entry.payload.get("expire_time")
                    lapses_at = parse_instant(str(granted_until)) if granted_until else None
                yield pb.WatchTranscriptResponse(
                    transcript=state_to_transcript(state, datetime.now(UTC), None, labels),
                    applied_sequence=entry.sequence,
                    redeemed_sequences=change.redeemed,
                    revoked_after_redemption_sequences=change.revoked_after_redemption,
                )

    @_unary
    async def VerifyEntry(
        self, request: pb.VerifyEntryRequest, context: Ctx
    ) -> pb.VerifyEntryResponse:
        await self._authorize(context, request.learner_id, "VerifyEntry")
        if request.sequence < 1:
            raise invalid_argument([Violation("sequence", "must be 1 or more")])
        if request.tree_size < 0:
            raise invalid_argument([Violation("tree_size", "must be 0 (the latest) or more")])
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            chain = await credit_log.learner_entries(
                connection, request.learner_id, up_to_sequence=request.sequence
            )
            checkpoints = await verify_checkpoints(
                connection, self._trusted_public_key, request.learner_id
            )
            inclusion = await self._inclusion(connection, request)
        if not chain or chain[-1].sequence != request.sequence:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND,
                f"learner {request.learner_id} has no entry with sequence {request.sequence}",
                reason=Reason.ENTRY_NOT_FOUND,
            )
        entry = chain[-1]
        response = pb.VerifyEntryResponse(entry=ledger_entry_to_proto(entry))
        broken = verify_chain(chain)
        response.chain_valid = broken is None
        if broken is not None:
            response.chain_break.CopyFrom(chain_break_to_proto(broken))
        response.checkpoint_coverage = COVERAGE_TO_PROTO[checkpoints.coverage]
        response.checkpoint_problems.extend(
            checkpoint_problem_to_proto(problem) for problem in checkpoints.problems
        )
        if checkpoints.latest is not None:
            latest = checkpoints.latest
            response.latest_checkpoint.CopyFrom(
                signed_checkpoint_to_proto(latest.signed, latest.number)
            )
            response.checkpoint_covers_entry = (
                checkpoints.learner_head is not None
                and entry.sequence <= checkpoints.learner_head.sequence
            )
            head = checkpoints.learner_head
            if head is not None:
                response.checkpoint_head.CopyFrom(chain_head_to_proto(head))
            response.checkpoint_valid = checkpoints.ok
        if inclusion is not None:
            response.in_tree = True
            response.leaf_index = inclusion.leaf_index
            response.tree_size = inclusion.head.tree_size
            response.inclusion_proof.extend(inclusion.proof)
            response.tree_head_note = inclusion.head.note
        return response

    async def _inclusion(
        self, connection: Connection, request: pb.VerifyEntryRequest
    ) -> InclusionAt | None:
        try:
            return await inclusion_at(
                connection, request.learner_id, request.sequence, request.tree_size
            )
        except NoTreeHead as exc:
            if request.tree_size == 0:
                return None  # nothing signed yet: in_tree stays false
            raise _tree_head_not_found(str(exc)) from exc

    @_unary
    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: Ctx
    ) -> pb.GetCheckpointResponse:
        await self._auth.principal(context.invocation_metadata())  # any valid token
        if request.tree_size < 0:
            raise invalid_argument([Violation("tree_size", "must be 0 (the latest) or more")])
        async with self._pool.acquire() as connection:
            try:
                head = await head_of_size(connection, request.tree_size)
            except NoTreeHead as exc:
                raise _tree_head_not_found(str(exc)) from exc
        return pb.GetCheckpointResponse(
            note=head.note, tree_size=head.tree_size, root_hash=head.root_hash
        )

    @_unary
    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: Ctx
    ) -> pb.GetConsistencyProofResponse:
        await self._auth.principal(context.invocation_metadata())  # any valid token
        violations = []
        if request.from_size < 1:
            violations.append(Violation("from_size", "must be 1 or more"))
        if request.to_size < request.from_size:
            violations.append(Violation("to_size", "must be from_size or more"))
        if violations:
            raise invalid_argument(violations)
        async with self._pool.acquire() as connection:
            try:
                proof = await consistency_proof_between(
                    connection, request.from_size, request.to_size
                )
            except (MissingNode, ProofError) as exc:
                raise RpcFailure(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"the tree has not grown to {request.to_size} entries: {exc}",
                    reason=Reason.TREE_TOO_SMALL,
                ) from exc
        return pb.GetConsistencyProofResponse(
            from_size=request.from_size, to_size=request.to_size, proof=proof
        )

    # -- verifiable credentials --------------------------------------------------
    def _issuing(self) -> CredentialIssuing:
        issuing = self._credentials.issuing
        if issuing is None:
            raise RpcFailure(
                grpc.StatusCode.UNIMPLEMENTED,
                "this server issues no credentials: QUERY_CREDENTIAL_SIGNING_KEY_FILE and "
                "QUERY_HTTP_PORT (or QUERY_CREDENTIAL_PUBLIC_URL) must be set",
                reason=Reason.CREDENTIALS_NOT_CONFIGURED,
            )
        return issuing

    @_unary
    async def ExportCredential(
        self, request: pb.ExportCredentialRequest, context: Ctx
    ) -> pb.ExportCredentialResponse:
        await self._authorize(context, request.learner_id, "ExportCredential")
        if request.sequence < 1:
            raise invalid_argument([Violation("sequence", "must be 1 or more")])
        issuing = self._issuing()
        try:
            signed = await issuing.export_credential(request.learner_id, request.sequence)
        except credential_store.CreditNotFound as exc:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND, str(exc), reason=Reason.ENTRY_NOT_FOUND
            ) from exc
        except credential_store.NotACredit as exc:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"entry {request.sequence} of learner {request.learner_id} awards no credit "
                f"({exc.kind}); only credit_awarded entries are exported as credentials",
                reason=Reason.NOT_A_CREDIT,
                metadata={"kind": exc.kind},
            ) from exc
        except credential_store.CreditRevoked as exc:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the credit at entry {request.sequence} was revoked by the issuer (entry "
                f"{exc.revoked_by_sequence}); a revoked credit is not exported",
                reason=Reason.CREDIT_REVOKED,
                metadata={"revoked_by_sequence": str(exc.revoked_by_sequence)},
            ) from exc
        except credential_store.UnreadableCredit as exc:
            log.error("credential_unreadable", learner_id=request.learner_id,
                      sequence=request.sequence, error=str(exc))  # fmt: skip
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"entry {request.sequence} cannot be made into a credential: {exc}",
                reason=Reason.CREDIT_UNREADABLE,
            ) from exc
        status = signed.credential["credentialStatus"]
        return pb.ExportCredentialResponse(
            credential_jwt=signed.jws,
            credential_json=json.dumps(signed.credential, ensure_ascii=False, indent=2),
            key_id=signed.key_id,
            status_list_credential=status["statusListCredential"],
            status_list_index=int(status["statusListIndex"]),
        )

    @_unary
    async def ExportTranscript(
        self, request: pb.ExportTranscriptRequest, context: Ctx
    ) -> pb.ExportTranscriptResponse:
        await self._authorize(context, request.learner_id, "ExportTranscript")
        issuing = self._issuing()
        async with self._pool.acquire() as connection:
            if not await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM credit_log WHERE learner_id = $1)",
                request.learner_id,
            ):
                raise _not_found(request.learner_id)
        try:
            signed, count = await issuing.export_transcript(request.learner_id)
        except credential_store.UnreadableCredit as exc:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"a credit of learner {request.learner_id} cannot be made into a credential: {exc}",
                reason=Reason.CREDIT_UNREADABLE,
            ) from exc
        return pb.ExportTranscriptResponse(
            credential_jwt=signed.jws,
            credential_json=json.dumps(signed.credential, ensure_ascii=False, indent=2),
            key_id=signed.key_id,
            credential_count=count,
        )

    @_unary
    async def ListRecordAccesses(
        self, request: pb.ListRecordAccessesRequest, context: Ctx
    ) -> pb.ListRecordAccessesResponse:
        principal = await self._auth.principal(context.invocation_metadata())
        if principal.kind is not catalog.PrincipalKind.LEARNER:
            raise RpcFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                "only the learner (signed in with an ID token) may list who read their record",
                reason=Reason.WRONG_PRINCIPAL_KIND,
                metadata={"principal_kind": principal.kind.value},
            )
        _check_learner_id(request.learner_id)
        if request.learner_id != principal.principal_id:
            raise self._denied(request.learner_id, principal)
        violations = []
        try:
            page_size = paging.coerce_page_size(request.page_size)
        except ValueError as exc:
            violations.append(Violation("page_size", str(exc)))
            page_size = paging.DEFAULT_PAGE_SIZE
        try:
            before = access_log.decode_page_token(request.page_token, request.learner_id)
        except access_log.InvalidAccessPageToken as exc:
            violations.append(Violation("page_token", str(exc)))
            before = None
        if violations:
            raise invalid_argument(violations)
        async with self._pool.acquire() as connection:
            rows = await access_log.page(
                connection, request.learner_id, before=before, limit=page_size + 1
            )
        shown = rows[:page_size]
        return pb.ListRecordAccessesResponse(
            record_accesses=[
                pb.RecordAccess(
                    reader_kind=row.reader_kind,
                    reader_id=row.reader_id,
                    method=row.method,
                    access_time=to_timestamp(row.accessed_at),
                )
                for row in shown
            ],
            next_page_token=(
                access_log.encode_page_token(shown[-1]) if len(rows) > page_size else ""
            ),
        )


_READERS = frozenset(
    {catalog.PrincipalKind.ADMIN, catalog.PrincipalKind.UNIVERSITY, catalog.PrincipalKind.LEARNER}
)


async def _log_reads(
    connection: Connection, principal: catalog.Principal, learner_ids: Iterable[str], method: str
) -> None:
    """Write a university's or an admin's read to the learners' access logs (a learner's read
    of their own record is not logged)."""
    if principal.kind in (catalog.PrincipalKind.UNIVERSITY, catalog.PrincipalKind.ADMIN):
        await access_log.record(
            connection,
            learner_ids,
            reader_kind=principal.kind.value,
            reader_id=principal.principal_id,
            method=method,
        )


def _tree_head_not_found(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.NOT_FOUND, message, reason=Reason.TREE_HEAD_NOT_FOUND)
