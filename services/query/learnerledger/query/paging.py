"""Pure parts of ListCredentials: the AIP-160 filter subset and AIP-158 page tokens.

Filter grammar (a deliberately small subset of AIP-160)::

    filter      := comparison ( "AND" comparison )*
    comparison  := field "=" value
    field       := "issuer_id" | "course_id" | "level" | "status"
    value       := a double-quoted string (backslash escapes \\" and \\\\), or a bare word

A page token is opaque to clients: URL-safe base64 of ``{"v":1,"s":<last sequence>,"h":<hash>}``
where the hash covers the learner and the normalized filter, so a token replayed with another
filter or learner is refused (INVALID_ARGUMENT) instead of silently paging something else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from learnerledger.domain.catalog import NCRF_ALL_LEVELS, InvalidCourse, parse_level
from learnerledger.domain.transcript import Credential, CredentialStatus
from learnerledger.rpc import page_tokens
from learnerledger.rpc.filters import InvalidFilter as InvalidFilter
from learnerledger.rpc.filters import parse_comparisons

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
FILTER_FIELDS = ("issuer_id", "course_id", "level", "status")


class InvalidPageToken(ValueError):
    """The page token is not one this server issued for the same request."""


@dataclass(frozen=True, slots=True)
class CredentialFilter:
    issuer_id: str | None = None
    course_id: str | None = None
    level: str | None = None
    status: CredentialStatus | None = None

    def normalized(self) -> str:
        parts = [
            f"{name}={value}"
            for name in FILTER_FIELDS
            if (value := getattr(self, name)) is not None
        ]
        return "&".join(parts)

    def matches(self, credential: Credential, status: CredentialStatus) -> bool:
        """The filter applied in memory (to a fold read ``as_of`` / ``known_at``)."""
        return (
            (self.issuer_id is None or credential.issuer_id == self.issuer_id)
            and (self.course_id is None or credential.course_id == self.course_id)
            and (self.level is None or credential.level == self.level)
            and (self.status is None or status is self.status)
        )


def parse_filter(text: str) -> CredentialFilter:
    """Parse ``issuer_id = "nptel" AND level = "6.5" AND status = "ACTIVE"``."""
    if not text.strip():
        return CredentialFilter()
    values = parse_comparisons(text, FILTER_FIELDS)
    level = values.get("level")
    if level is not None:
        try:
            level = str(parse_level(level, allowed=NCRF_ALL_LEVELS))
        except (InvalidCourse, ValueError, ArithmeticError) as exc:
            raise InvalidFilter(f"level {level!r} is not an NCrF level (1 to 8)") from exc
    status = values.get("status")
    parsed_status = None
    if status is not None:
        try:
            parsed_status = CredentialStatus(status.lower())
        except ValueError as exc:
            raise InvalidFilter(
                f"status {status!r} is not one of ACTIVE, REVOKED, EXPIRED, REDEEMED"
            ) from exc
    return CredentialFilter(
        issuer_id=values.get("issuer_id"),
        course_id=values.get("course_id"),
        level=level,
        status=parsed_status,
    )


def coerce_page_size(page_size: int) -> int:
    """AIP-158: 0 means the default; above the maximum is coerced; negative is an error."""
    if page_size < 0:
        raise ValueError("page_size must not be negative")
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def read_scope(as_of: str | None, known_at: str | None) -> str:
    """The request's read times as it gave them ("" for a read of now), for the token hash."""
    if as_of is None and known_at is None:
        return ""
    return f"as_of={as_of or ''}&known_at={known_at or ''}"


def request_hash(learner_id: str, credential_filter: CredentialFilter, scope: str = "") -> str:
    text = f"{learner_id}\n{credential_filter.normalized()}"
    if scope:
        text += f"\n{scope}"
    digest = hashlib.sha256(text.encode())
    return digest.hexdigest()[:16]


def encode_page_token(
    last_sequence: int, learner_id: str, f: CredentialFilter, scope: str = ""
) -> str:
    document = {"v": 1, "s": last_sequence, "h": request_hash(learner_id, f, scope)}
    return page_tokens.pack(document)


def decode_page_token(token: str, learner_id: str, f: CredentialFilter, scope: str = "") -> int:
    """The last sequence of the previous page; 0 for an empty token."""
    if not token:
        return 0
    try:
        document = page_tokens.unpack(token)
    except page_tokens.MalformedPageToken as exc:
        raise InvalidPageToken("page_token is not a token this server issued") from exc
    if (
        not isinstance(document, dict)
        or document.get("v") != 1
        or not isinstance(document.get("s"), int)
        or document["s"] < 0
    ):
        raise InvalidPageToken("page_token is not a token this server issued")
    if document.get("h") != request_hash(learner_id, f, scope):
        raise InvalidPageToken(
            "page_token was issued for another learner, filter, as_of or known_at; "
            "send the same learner_id, filter, as_of and known_at as in the call that "
            "returned it"
        )
    return int(document["s"])
