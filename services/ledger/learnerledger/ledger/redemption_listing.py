"""Pure parts of ListRedemptions: the filter (AIP-160 subset) and AIP-158 page tokens.

A page token is opaque to clients: URL-safe base64 of
``{"v":1,"t":<requested_at>,"u":<university>,"r":<redemption id>,"h":<hash>}``, the key of the
last redemption of the page, where the hash covers the caller and the normalized filter, so a
token replayed with another filter or by another caller is refused instead of paging something
else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from learnerledger.domain.learners import is_apaar_id
from learnerledger.postgres.redemptions import RedemptionQuery, RedemptionState
from learnerledger.rpc import page_tokens
from learnerledger.rpc.filters import InvalidFilter, parse_comparisons

FILTER_FIELDS = (
    "learner_id",
    "programme_id",
    "university_id",
    "state",
    "revoked_after_redemption",
)


class InvalidPageToken(ValueError):
    """The page token is not one this server issued for the same caller and filter."""


@dataclass(frozen=True, slots=True)
class RedemptionFilter:
    learner_id: str | None = None
    programme_id: str | None = None
    university_id: str | None = None
    state: RedemptionState | None = None
    revoked_after_redemption: bool | None = None

    def normalized(self) -> str:
        return "&".join(
            f"{name}={value}"
            for name in FILTER_FIELDS
            if (value := getattr(self, name)) is not None
        )

    def query(self, after: tuple[datetime, str, str] | None) -> RedemptionQuery:
        return RedemptionQuery(
            university_id=self.university_id,
            learner_id=self.learner_id,
            programme_id=self.programme_id,
            state=self.state,
            revoked_after_redemption=self.revoked_after_redemption,
            after=after,
        )


def parse_filter(text: str) -> RedemptionFilter:
    """Parse ``programme_id = "du-bsc" AND state = REDEEMED``; :class:`InvalidFilter` else."""
    values = parse_comparisons(text, FILTER_FIELDS)
    learner_id = values.get("learner_id")
    if learner_id is not None and not is_apaar_id(learner_id):
        raise InvalidFilter(f"learner_id {learner_id!r} is not an APAAR id (12 digits)")
    for name in ("programme_id", "university_id"):
        value = values.get(name)
        if value is not None and (not value or not value.isprintable() or len(value) > 128):
            raise InvalidFilter(f"{name} must be 1 to 128 printable characters")
    state = None
    if (text_state := values.get("state")) is not None:
        try:
            state = RedemptionState(text_state.lower())
        except ValueError as exc:
            raise InvalidFilter(
                f"state {text_state!r} is not one of PENDING, REDEEMED, REFUSED, REJECTED"
            ) from exc
    revoked = None
    if (text_revoked := values.get("revoked_after_redemption")) is not None:
        if text_revoked.lower() not in ("true", "false"):
            raise InvalidFilter("revoked_after_redemption must be true or false")
        revoked = text_revoked.lower() == "true"
    return RedemptionFilter(
        learner_id=learner_id,
        programme_id=values.get("programme_id"),
        university_id=values.get("university_id"),
        state=state,
        revoked_after_redemption=revoked,
    )


def _request_hash(caller: str, f: RedemptionFilter) -> str:
    return hashlib.sha256(f"{caller}\n{f.normalized()}".encode()).hexdigest()[:16]


def encode_page_token(last: tuple[datetime, str, str], caller: str, f: RedemptionFilter) -> str:
    document = {
        "v": 1,
        "t": last[0].isoformat(),
        "u": last[1],
        "r": last[2],
        "h": _request_hash(caller, f),
    }
    return page_tokens.pack(document)


def decode_page_token(
    token: str, caller: str, f: RedemptionFilter
) -> tuple[datetime, str, str] | None:
    """The key of the previous page's last redemption; None for an empty token."""
    if not token:
        return None
    try:
        document = page_tokens.unpack(token)
        if not isinstance(document, dict):
            raise TypeError(document)
        last = (
            datetime.fromisoformat(document["t"]),
            document["u"],
            document["r"],
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidPageToken("page_token is not a token this server issued") from exc
    if (
        document.get("v") != 1
        or last[0].tzinfo is None
        or not isinstance(last[1], str)
        or not isinstance(last[2], str)
    ):
        raise InvalidPageToken("page_token is not a token this server issued")
    if document.get("h") != _request_hash(caller, f):
        raise InvalidPageToken(
            "page_token was issued for another filter or caller; send the same filter as in "
            "the call that returned it"
        )
    return last
