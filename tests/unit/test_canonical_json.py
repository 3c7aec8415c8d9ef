from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from learnerledger.domain.canonical_json import canonical_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=1000, deadline=None)
@given(json_values)
def test_matches_the_reference_rfc8785_implementation(document: object) -> None:
    try:
        expected = rfc8785.dumps(document)
    except rfc8785.CanonicalizationError as refused:  # e.g. integers beyond 2**53
        with pytest.raises(type(refused)):
            canonical_json(document)
        return
    assert canonical_json(document) == expected


def test_entry_like_documents_use_ecmascript_numbers() -> None:
    document = {"credits": 3.0, "score": 81.5, "sequence": 12, "b": "é\n", "a": None}
    assert (
        canonical_json(document)
        == b'{"a":null,"b":"\xc3\xa9\\n","credits":3,"score":81.5,"sequence":12}'
    )
