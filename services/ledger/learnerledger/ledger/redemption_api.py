"""``RedemptionService``: programmes and redemptions over gRPC, in the ledger process.

A redemption is a request on ``completions.v1`` keyed by the learner, like consent and the
re-decision requests: the API validates and authorizes it, records the university's
redemption id (``redemption_requests``: a retry is the same event, other content under the same
id is a conflict), publishes ``RedemptionRequested`` with ``acks=all``, and answers PENDING.
The ledger decides it in the learner's order and appends ``credits_redeemed`` or
``redemption_refused``; ``GetRedemption`` reads that entry.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import InvalidOperation
from typing import Any

import asyncpg
import grpc
import structlog

from learnerledger.domain.events import redemption_event_id
from learnerledger.domain.redemption import InvalidProgramme, request_digest
from learnerledger.domain.validation import check_learner_id, check_redemption_fields
from learnerledger.kafka.producer import DurableProducer
from learnerledger.ledger import redemption_listing as listing
from learnerledger.ledger.admin_api import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    catalog_failure,
    publish_request,
)
from learnerledger.postgres import Connection, catalog, credit_log, redemptions
from learnerledger.postgres.catalog import (
    AlreadyExists,
    NotFound,
    Principal,
    PrincipalKind,
    RedemptionClaim,
    RedemptionIdConflict,
)
from learnerledger.postgres.redemptions import RedemptionRecord, RedemptionState
from learnerledger.rpc.auth import BearerAuthenticator
from learnerledger.rpc.errors import (
    Reason,
    RpcFailure,
    Violation,
    abort,
    invalid_argument,
)
from learnerledger.rpc.filters import InvalidFilter
from learnerledger.v1 import redemption_pb2, redemption_pb2_grpc
from learnerledger.wire.enums import PROTO_TO_LEVEL
from learnerledger.wire.instants import to_timestamp
from learnerledger.wire.redemptions import (
    programme_from_proto,
    programme_to_proto,
    redemption_lines_to_proto,
    redemption_request_from_proto,
)

log = structlog.get_logger(__name__)


class RedemptionApi(redemption_pb2_grpc.RedemptionServiceServicer):
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: DurableProducer,
        completions_topic: str,
        authenticator: BearerAuthenticator,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._topic = completions_topic
        self._auth = authenticator

    async def _caller(self, context: Any, *kinds: PrincipalKind) -> Principal:
        try:
            principal = await self._auth.principal(context.invocation_metadata())
        except RpcFailure as failure:
            await abort(context, failure)
        if principal.kind not in kinds:
            await abort(
                context,
                RpcFailure(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"this method is for {' or '.join(k.value for k in kinds)} tokens; the "
                    f"token belongs to a {principal.kind.value}",
                    reason=Reason.WRONG_PRINCIPAL_KIND,
                    metadata={"token_kind": principal.kind.value},
                ),
            )
        return principal

    # programmes -----------------------------------------------------------------------------
    async def CreateProgramme(
        self, request: redemption_pb2.CreateProgrammeRequest, context: Any
    ) -> redemption_pb2.CreateProgrammeResponse:
        caller = await self._caller(context, PrincipalKind.ADMIN, PrincipalKind.UNIVERSITY)
        p = request.programme
        violations = [
            Violation(f"programme.{name}", "must contain only printable characters")
            for name, value in (
                ("programme_id", p.programme_id),
                ("university_id", p.university_id),
                ("title", p.title),
            )
            if not value.isprintable()
        ]
        if p.level not in PROTO_TO_LEVEL:
            violations.append(Violation("programme.level", "must be an NCrF level (4.5 to 8)"))
        if violations:
            await abort(context, invalid_argument(violations))
        if caller.kind is PrincipalKind.UNIVERSITY and p.university_id != caller.principal_id:
            await abort(context, _foreign_university(caller, "registers only its own programmes"))
        try:
            programme = programme_from_proto(p)
        except InvalidProgramme as exc:
            await abort(
                context, invalid_argument([Violation(f"programme.{exc.field}", exc.message)])
            )
        except InvalidOperation:
            await abort(
                context, invalid_argument([Violation("programme.total_credits", "not a number")])
            )
        try:
            async with self._pool.acquire() as connection:
                created = await catalog.add_programme(connection, programme)
        except (AlreadyExists, NotFound) as exc:
            await abort(context, catalog_failure(exc))
        except asyncpg.CheckViolationError:
            await abort(
                context,
                invalid_argument(
                    [Violation("programme.programme_id", "ids: a-z, 0-9, . _ - (at most 128)")]
                ),
            )
        return redemption_pb2.CreateProgrammeResponse(
            programme=programme_to_proto(programme, created)
        )

    async def ListProgrammes(
        self, request: redemption_pb2.ListProgrammesRequest, context: Any
    ) -> redemption_pb2.ListProgrammesResponse:
        caller = await self._caller(context, PrincipalKind.ADMIN, PrincipalKind.UNIVERSITY)
        university_id = request.university_id or None
        if caller.kind is PrincipalKind.UNIVERSITY:
            if university_id not in (None, caller.principal_id):
                await abort(context, _foreign_university(caller, "lists only its own programmes"))
            university_id = caller.principal_id
        if request.page_size < 0:
            await abort(context, invalid_argument([Violation("page_size", "must not be negative")]))
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        async with self._pool.acquire() as connection:
            found = await catalog.list_programmes(
                connection,
                university_id=university_id,
                after_programme_id=request.page_token,  # the last id of the previous page
                limit=size + 1,
            )
        page, more = found[:size], len(found) > size
        return redemption_pb2.ListProgrammesResponse(
            programmes=[programme_to_proto(p, created) for p, created in page],
            next_page_token=page[-1][0].programme_id if more else "",
        )

    # redemptions ----------------------------------------------------------------------------
    async def RedeemCredits(
        self, request: redemption_pb2.RedeemCreditsRequest, context: Any
    ) -> redemption_pb2.RedeemCreditsResponse:
        caller = await self._caller(context, PrincipalKind.UNIVERSITY)
        university_id = caller.principal_id
        problems = check_learner_id(request.learner_id, "learner_id")
        problems += check_redemption_fields(
            redemption_id=request.redemption_id,
            programme_id=request.programme_id,
            credential_sequences=request.credential_sequences,
            all_eligible=request.all_eligible,
        )
        if problems:
            await abort(
                context, invalid_argument([Violation(v.field, v.description) for v in problems])
            )
        sequences = tuple(request.credential_sequences)
        digest = request_digest(
            university_id=university_id,
            learner_id=request.learner_id,
            programme_id=request.programme_id,
            credential_sequences=sequences,
            all_eligible=request.all_eligible,
            allow_partial=request.allow_partial,
        )
        event_id = redemption_event_id(university_id, request.redemption_id)
        async with self._pool.acquire() as connection:
            earlier = await catalog.find_redemption_claim(
                connection, university_id, request.redemption_id
            )
            if earlier is not None and earlier.request_digest != digest:
                await abort(context, _conflict(request.redemption_id))
            if earlier is None:
                programmes = await catalog.programmes_by_id(connection, [request.programme_id])
                found = programmes.get(request.programme_id)
                if found is None or found[0].university_id != university_id:
                    # Unknown or another university's: one answer for both.
                    await abort(
                        context,
                        invalid_argument(
                            [Violation("programme_id", "is not one of your programmes")]
                        ),
                    )
                consents = await credit_log.active_consents(
                    connection, [(request.learner_id, university_id)]
                )
                if not consents:
                    await abort(
                        context,
                        RpcFailure(
                            grpc.StatusCode.PERMISSION_DENIED,
                            f"learner {request.learner_id} has not consented to university "
                            f"{university_id}",
                            reason=Reason.NO_CONSENT,
                            metadata={"learner_id": request.learner_id},
                        ),
                    )
            try:
                claim = await catalog.claim_redemption(
                    connection,
                    university_id=university_id,
                    redemption_id=request.redemption_id,
                    learner_id=request.learner_id,
                    programme_id=request.programme_id,
                    request_digest=digest,
                    event_id=event_id,
                )
            except RedemptionIdConflict:
                await abort(context, _conflict(request.redemption_id))
            decided = await self._redemption(connection, claim)
        if decided.state != redemption_pb2.REDEMPTION_STATE_PENDING:
            return redemption_pb2.RedeemCreditsResponse(redemption=decided)
        event = redemption_request_from_proto(
            request, university_id=university_id, request_digest=digest, now=datetime.now(UTC)
        )
        await publish_request(
            self._producer,
            self._topic,
            context,
            request.learner_id,
            event,
            lambda exc: f"redemption not requested: {exc}; retry with the same redemption_id",
        )
        log.info(
            "redemption_requested",
            redemption_id=request.redemption_id,
            university_id=university_id,
            programme_id=request.programme_id,
        )
        return redemption_pb2.RedeemCreditsResponse(redemption=decided)

    async def GetRedemption(
        self, request: redemption_pb2.GetRedemptionRequest, context: Any
    ) -> redemption_pb2.GetRedemptionResponse:
        caller = await self._caller(context, PrincipalKind.UNIVERSITY)
        if not request.redemption_id:
            await abort(context, invalid_argument([Violation("redemption_id", "is required")]))
        async with self._pool.acquire() as connection:
            claim = await catalog.find_redemption_claim(
                connection, caller.principal_id, request.redemption_id
            )
            if claim is None:
                await abort(
                    context,
                    RpcFailure(
                        grpc.StatusCode.NOT_FOUND,
                        f"no redemption {request.redemption_id} of university "
                        f"{caller.principal_id}",
                        reason=Reason.REDEMPTION_NOT_FOUND,
                        metadata={"redemption_id": request.redemption_id},
                    ),
                )
            return redemption_pb2.GetRedemptionResponse(
                redemption=await self._redemption(connection, claim)
            )

    async def _redemption(
        self, connection: Connection, claim: RedemptionClaim
    ) -> redemption_pb2.Redemption:
        """The redemption a claim names, as decided by the ledger (or PENDING)."""
        record = await redemptions.find_redemption(
            connection, claim.university_id, claim.redemption_id
        )
        assert record is not None  # the claim is stored; rows are never deleted
        return redemption_to_proto(record)

    async def ListRedemptions(
        self, request: redemption_pb2.ListRedemptionsRequest, context: Any
    ) -> redemption_pb2.ListRedemptionsResponse:
        caller = await self._caller(context, PrincipalKind.ADMIN, PrincipalKind.UNIVERSITY)
        violations = []
        try:
            wanted = listing.parse_filter(request.filter)
        except InvalidFilter as exc:
            violations.append(Violation("filter", exc.description))
            wanted = listing.RedemptionFilter()
        if request.page_size < 0:
            violations.append(Violation("page_size", "must not be negative"))
        after = None
        caller_key = f"{caller.kind.value}:{caller.principal_id}"
        if not violations:
            try:
                after = listing.decode_page_token(request.page_token, caller_key, wanted)
            except listing.InvalidPageToken as exc:
                violations.append(Violation("page_token", str(exc)))
        if violations:
            await abort(context, invalid_argument(violations))
        asked = wanted  # what the page token vouches for
        if caller.kind is PrincipalKind.UNIVERSITY:
            if wanted.university_id not in (None, caller.principal_id):
                await abort(context, _foreign_university(caller, "lists only its own redemptions"))
            wanted = dataclasses.replace(wanted, university_id=caller.principal_id)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        async with self._pool.acquire() as connection:
            found = await redemptions.list_redemptions(
                connection, wanted.query(after), limit=size + 1
            )
        page, more = found[:size], len(found) > size
        token = ""
        if more:
            last = page[-1].claim
            token = listing.encode_page_token(
                (last.requested_at, last.university_id, last.redemption_id), caller_key, asked
            )
        return redemption_pb2.ListRedemptionsResponse(
            redemptions=[redemption_to_proto(r) for r in page], next_page_token=token
        )


_STATE_TO_PROTO = {
    RedemptionState.PENDING: redemption_pb2.REDEMPTION_STATE_PENDING,
    RedemptionState.REDEEMED: redemption_pb2.REDEMPTION_STATE_REDEEMED,
    RedemptionState.REFUSED: redemption_pb2.REDEMPTION_STATE_REFUSED,
    RedemptionState.REJECTED: redemption_pb2.REDEMPTION_STATE_REJECTED,
}


def redemption_to_proto(record: RedemptionRecord) -> redemption_pb2.Redemption:
    claim = record.claim
    message = redemption_pb2.Redemption(
        redemption_id=claim.redemption_id,
        university_id=claim.university_id,
        learner_id=claim.learner_id,
        programme_id=claim.programme_id,
        state=_STATE_TO_PROTO[record.state],
        request_time=to_timestamp(claim.requested_at),
        rejection_reason=record.rejection_reason or "",
        revoked_after_redemption=record.revoked_after_redemption,
    )
    if record.entry_sequence is not None and record.decided_at is not None:
        message.lines.extend(redemption_lines_to_proto(record.payload))
        message.redeemed_credits = float(str(record.payload.get("redeemed_credits", 0)))
        message.entry_sequence = record.entry_sequence
        message.decide_time.CopyFrom(to_timestamp(record.decided_at))
    return message


def _foreign_university(caller: Principal, rule: str) -> RpcFailure:
    """PERMISSION_DENIED for a university that reached past its own data (``rule`` says how)."""
    return RpcFailure(
        grpc.StatusCode.PERMISSION_DENIED,
        f"a university {rule}",
        reason=Reason.FOREIGN_UNIVERSITY,
        metadata={"university_id": caller.principal_id},
    )


def _conflict(redemption_id: str) -> RpcFailure:
    return RpcFailure(
        grpc.StatusCode.ALREADY_EXISTS,
        f"redemption id {redemption_id} was used for a different request; use a new id",
        reason=Reason.REDEMPTION_ID_CONFLICT,
        metadata={"redemption_id": redemption_id},
    )
