"""The page-token envelope shared by the list methods (learnerledger.rpc.page_tokens)."""

from __future__ import annotations

import pytest

from learnerledger.rpc import page_tokens


def test_a_packed_document_unpacks_to_the_same_document() -> None:
    document = {"v": 1, "s": 41, "h": "0123456789abcdef"}
    token = page_tokens.pack(document)
    assert "=" not in token
    assert page_tokens.unpack(token) == document


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "\u00e9t\u00e9", "_w"])
def test_what_is_not_base64url_json_is_malformed(token: str) -> None:
    with pytest.raises(page_tokens.MalformedPageToken):
        page_tokens.unpack(token)
