"""ListCredentials' pure parts: the filter subset, page sizes and opaque page tokens."""

from __future__ import annotations

import pytest

from learnerledger.domain.transcript import CredentialStatus
from learnerledger.query.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CredentialFilter,
    InvalidFilter,
    InvalidPageToken,
    coerce_page_size,
    decode_page_token,
    encode_page_token,
    parse_filter,
    read_scope,
)

ALICE, BOB = "111111111111", "222222222222"


def test_a_conjunction_of_equalities_parses() -> None:
    parsed = parse_filter('issuer_id = "nptel" AND level = "6.0" AND status = "ACTIVE"')
    assert parsed == CredentialFilter(issuer_id="nptel", level="6", status=CredentialStatus.ACTIVE)
    assert parse_filter("course_id=ml-101") == CredentialFilter(course_id="ml-101")
    assert parse_filter("  ") == CredentialFilter()
    assert parse_filter('issuer_id = "a \\"quoted\\" id"').issuer_id == 'a "quoted" id'


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('grade = "A"', "unknown field"),
        ('issuer_id = "a" OR level = "6"', "AND"),
        ('issuer_id = "a" AND', "comparison"),
        ('level = "9"', "NCrF level"),
        ('status = "lost"', "ACTIVE"),
        ('issuer_id = "a" AND issuer_id = "b"', "more than once"),
        ('issuer_id != "a"', "unexpected character"),
    ],
)
def test_a_bad_filter_says_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidFilter, match=complaint):
        parse_filter(text)


def test_page_size_default_maximum_and_negative() -> None:
    assert coerce_page_size(0) == DEFAULT_PAGE_SIZE
    assert coerce_page_size(7) == 7
    assert coerce_page_size(10**6) == MAX_PAGE_SIZE
    with pytest.raises(ValueError, match="negative"):
        coerce_page_size(-1)


def test_a_page_token_round_trips_only_for_the_same_request() -> None:
    f = parse_filter('status = "ACTIVE"')
    token = encode_page_token(42, ALICE, f)
    assert decode_page_token(token, ALICE, f) == 42
    assert decode_page_token("", ALICE, f) == 0
    with pytest.raises(InvalidPageToken, match="another learner, filter"):
        decode_page_token(token, BOB, f)
    with pytest.raises(InvalidPageToken, match="another learner, filter"):
        decode_page_token(token, ALICE, CredentialFilter())
    # A token of a read as_of / known_at pages only that read.
    then = read_scope("2026-01-01T00:00:00Z", None)
    dated = encode_page_token(7, ALICE, f, then)
    assert decode_page_token(dated, ALICE, f, then) == 7
    assert read_scope(None, None) == ""
    for other in (
        "",
        read_scope(None, "2026-01-01T00:00:00Z"),
        read_scope("2026-01-02T00:00:00Z", None),
    ):
        with pytest.raises(InvalidPageToken, match="as_of or known_at"):
            decode_page_token(dated, ALICE, f, other)
    for garbage in ("not-a-token!", "e30", "W10"):
        with pytest.raises(InvalidPageToken):
            decode_page_token(garbage, ALICE, f)
