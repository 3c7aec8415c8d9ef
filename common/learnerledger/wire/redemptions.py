"""Programmes and redemption decisions <-> ``learnerledger.v1`` messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from learnerledger.domain.catalog import CourseCategory
from learnerledger.domain.entries import JsonValue
from learnerledger.domain.events import (
    CURRENT_SCHEMA_VERSION,
    Envelope,
    RedemptionRequested,
    redemption_event_id,
)
from learnerledger.domain.redemption import InvalidProgramme, Outcome, Programme, programme_level
from learnerledger.v1 import common_pb2, events_pb2, redemption_pb2
from learnerledger.wire.enums import (
    CATEGORY_TO_PROTO,
    LEVEL_TO_PROTO,
    OUTCOME_TO_PROTO,
    PROTO_TO_LEVEL,
)
from learnerledger.wire.instants import to_timestamp


def programme_to_proto(programme: Programme, created: datetime) -> redemption_pb2.Programme:
    return redemption_pb2.Programme(
        programme_id=programme.programme_id,
        university_id=programme.university_id,
        title=programme.title,
        level=LEVEL_TO_PROTO[str(programme.level)],
        total_credits=float(programme.total_credits),
        validity_years=programme.validity_years or 0,
        create_time=to_timestamp(created),
    )


def programme_from_proto(programme: redemption_pb2.Programme) -> Programme:
    """A programme as CreateProgramme registers it. :class:`InvalidProgramme` names a field
    that is wrong (``decimal.InvalidOperation``: ``total_credits`` is not a number)."""
    if programme.level not in PROTO_TO_LEVEL:
        raise InvalidProgramme("level", "must be an NCrF level (4.5 to 8)")
    return Programme(
        programme_id=programme.programme_id,
        university_id=programme.university_id,
        title=programme.title,
        level=programme_level(PROTO_TO_LEVEL[programme.level]),
        total_credits=Decimal(repr(programme.total_credits)),
        validity_years=programme.validity_years or None,
    )


def redemption_request_from_proto(
    request: redemption_pb2.RedeemCreditsRequest,
    *,
    university_id: str,
    request_digest: str,
    now: datetime,
) -> RedemptionRequested:
    """The ledger request of a university's RedeemCredits call (the caller is
    ``university_id``; ``request_digest`` is the domain's digest of what it asks)."""
    return RedemptionRequested(
        Envelope(
            redemption_event_id(university_id, request.redemption_id),
            CURRENT_SCHEMA_VERSION,
            now,
            "",
            request.learner_id,
        ),
        redemption_id=request.redemption_id,
        university_id=university_id,
        programme_id=request.programme_id,
        credential_sequences=tuple(request.credential_sequences),
        all_eligible=request.all_eligible,
        allow_partial=request.allow_partial,
        request_digest=request_digest,
    )


def redemption_lines_to_proto(payload: Mapping[str, JsonValue]) -> list[common_pb2.RedemptionLine]:
    """The lines of a credits_redeemed / redemption_refused entry's payload."""
    lines = payload.get("lines")
    out = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, Mapping):
            continue
        category = line.get("category")
        out.append(
            common_pb2.RedemptionLine(
                sequence=int(str(line["sequence"])),
                outcome=OUTCOME_TO_PROTO[Outcome(str(line["outcome"]))],
                credits=float(str(line["credits"])),
                category=CATEGORY_TO_PROTO[CourseCategory(category)]
                if isinstance(category, str)
                else common_pb2.COURSE_CATEGORY_UNSPECIFIED,
                course_id=str(line.get("course_id") or ""),
            )
        )
    return out


def redemption_decided_to_proto(p: Mapping[str, JsonValue]) -> events_pb2.RedemptionDecided:
    """The payload of a credits_redeemed / redemption_refused entry."""
    return events_pb2.RedemptionDecided(
        redemption_id=str(p["redemption_id"]),
        university_id=str(p["university_id"]),
        programme_id=str(p["programme_id"]),
        programme_credits=float(str(p["programme_credits"])),
        all_eligible=bool(p.get("all_eligible")),
        allow_partial=bool(p.get("allow_partial")),
        lines=redemption_lines_to_proto(p),
        redeemed_credits=float(str(p["redeemed_credits"])),
    )
