"""ListRedemptions' filter and page tokens (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from learnerledger.ledger.redemption_listing import (
    InvalidPageToken,
    RedemptionFilter,
    decode_page_token,
    encode_page_token,
    parse_filter,
)
from learnerledger.postgres.redemptions import RedemptionState
from learnerledger.rpc.filters import InvalidFilter


def test_parses_every_field() -> None:
    parsed = parse_filter(
        'learner_id = "123456789012" AND programme_id = du-bsc AND university_id = du '
        "AND state = redeemed AND revoked_after_redemption = TRUE"
    )
    assert parsed == RedemptionFilter(
        learner_id="123456789012",
        programme_id="du-bsc",
        university_id="du",
        state=RedemptionState.REDEEMED,
        revoked_after_redemption=True,
    )
    assert parse_filter("") == RedemptionFilter()
    assert parse_filter("revoked_after_redemption = false").revoked_after_redemption is False


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("colour = red", "unknown field 'colour'"),
        ("learner_id = 12", "not an APAAR id"),
        ("state = LOST", "not one of PENDING"),
        ("revoked_after_redemption = yes", "true or false"),
        ("state = REDEEMED OR state = REFUSED", "joined with AND"),
        ("state = REDEEMED AND state = REFUSED", "more than once"),
        ("state =", "expected a comparison"),
        ('programme_id = ""', "1 to 128 printable"),
        ("state ! REDEEMED", "unexpected character"),
    ],
)
def test_refuses_what_it_cannot_read(text: str, says: str) -> None:
    with pytest.raises(InvalidFilter) as refused:
        parse_filter(text)
    assert says in refused.value.description


def test_page_tokens_round_trip_and_are_bound_to_caller_and_filter() -> None:
    last = (datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), "du", "du-7")
    f = parse_filter("programme_id = du-bsc")
    token = encode_page_token(last, "university:du", f)
    assert decode_page_token(token, "university:du", f) == last
    assert decode_page_token("", "university:du", f) is None
    with pytest.raises(InvalidPageToken, match="another filter or caller"):
        decode_page_token(token, "admin:ops", f)
    with pytest.raises(InvalidPageToken, match="another filter or caller"):
        decode_page_token(token, "university:du", parse_filter("programme_id = du-ma"))
    for garbage in ("not-a-token", "e30", "W10", "eyJ2IjoxfQ"):  # {} [] {"v":1}
        with pytest.raises(InvalidPageToken):
            decode_page_token(garbage, "university:du", f)
