"""Property-based bad input over the two pure gates: the gateway's request validation and the
ledger's event decoding (hypothesis, no I/O).

The CI size is about 100,000 generated cases in total (see ``CASES`` below; each test prints its
exact count). ``BADINPUT_SCALE`` multiplies every count for a longer run by hand, e.g.
``BADINPUT_SCALE=10 pytest tests/badinput/test_properties.py -s``.

Properties:

- ``validate_completion`` / ``validate_revocation`` never raise on any request a client can send
  (any strings, any timestamp, any score including NaN and infinities, any enum number); every
  violation names a field of the request; a request without violations converts to the domain
  event and survives the wire round trip unchanged; a request with a known defect always gets a
  violation on exactly that field.
- ``decode_completion_event`` on any bytes either returns a request or raises
  ``UndecodableEvent`` (nothing else: no crash, no hang); on mutated valid events likewise; on
  structured events with hostile field values likewise.
"""

from __future__ import annotations

import math
import os
import random
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from learnerledger.domain.catalog import Course, CreditRecommendation
from learnerledger.domain.events import LedgerRequest
from learnerledger.gateway.validation import (
    EARLIEST_COMPLETION,
    validate_completion,
    validate_revocation,
)
from learnerledger.kafka.codec import (
    UndecodableEvent,
    decode_completion_event,
    encode_completion_event,
)
from learnerledger.rpc.errors import Violation
from learnerledger.v1 import common_pb2, events_pb2
from learnerledger.wire.events import completion_from_proto

SCALE = float(os.environ.get("BADINPUT_SCALE", "1"))

#: Hypothesis examples per property at scale 1 (each costs about 1 ms of engine overhead).
CASES = {
    "completion_any": 3_000,
    "completion_near_valid": 2_000,
    "revocation_any": 1_500,
    "decode_any_bytes": 1_500,
    "decode_mutated": 1_500,
    "decode_structured": 1_500,
    # Bulk: each example draws a seeded Random and checks BULK_PER_EXAMPLE cases with it, so
    # the engine's per-example cost is paid once per batch (about 20 µs per case instead).
    "bulk_validation": 200,
    "bulk_decoding": 200,
}
BULK_PER_EXAMPLE = 250

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SKEW = timedelta(minutes=5)
COURSES = {
    "ml-101": Course("ml-101", "swayam", "ML", Decimal("5.5"), 90, CreditRecommendation.APPROVED),
}
COMPLETION_FIELDS = {
    "completion.completion_id",
    "completion.learner_id",
    "completion.course_id",
    "completion.completed_at",
    "completion.result",
    "completion.score",
    "completion.grade",
    "completion.evidence_url",
}


def _count(name: str) -> int:
    return max(1, int(CASES[name] * SCALE))


def _settings(name: str) -> settings:
    return settings(
        max_examples=_count(name),
        deadline=None,
        database=None,
        derandomize=False,
        # No example database, no shrinking budget wasted on passing runs; generate only.
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


# ----------------------------------------------------------------------------------- strategies
# Text that hurts: control characters, bidi overrides, NUL, combining marks, SQL and log
# injection, very long runs. (Protobuf string fields cannot hold lone surrogates: the client
# library refuses them; invalid UTF-8 on the wire is tested against the real server.)
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\n",
        "\r\n",
        "\u202e",
        "\ufeff",
        "'; DROP TABLE credit_log; --",
        '" OR 1=1 --',
        '\n{"level":"info","event":"forged"}',
        "${jndi:ldap://x}",
        "../../etc/passwd",
        "%s%s%n",
        "１２３４５６７８９０１２",  # noqa: RUF001 - full-width digits: not ASCII
        "١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits
        "123456789012",
        "12345678901",
        "1234567890123",
        "ml-101",
        "https://certs.example.org/x",
        "http://certs.example.org/x",
        "https://",
        "https://host:99999/x",
        "javascript:alert(1)",
        "A" * 129,
        "A" * 2049,
        "x" * 10_000,
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=40), st.text(alphabet="0123456789", max_size=14))
SCORES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 100.0, 100.0000001, -1e-300, math.nan, math.inf]),
)
# Timestamp seconds outside 0001..9999 and nanos outside 0..999,999,999 are not valid
# timestamps; the wire allows them anyway.
SECONDS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-62135596800, max_value=253402300799),
    st.integers(
        min_value=int(EARLIEST_COMPLETION.timestamp()) - 10,
        max_value=int(NOW.timestamp()) + 600,
    ),
)
NANOS = st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.just(0))
RESULTS = st.integers(min_value=-5, max_value=10)


@st.composite
def any_completion(draw: st.DrawFn) -> common_pb2.Completion:
    c = common_pb2.Completion(
        completion_id=draw(TEXT),
        learner_id=draw(TEXT),
        course_id=draw(TEXT),
        evidence_url=draw(TEXT),
    )
    c.result = draw(RESULTS)  # type: ignore[assignment]  # open enum: any number on the wire
    if draw(st.booleans()):
        c.completed_at.seconds = draw(SECONDS)
        c.completed_at.nanos = draw(NANOS)
    match draw(st.sampled_from(["score", "grade", None])):
        case "score":
            c.score = draw(SCORES)
        case "grade":
            c.grade = draw(TEXT)
    return c


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[common_pb2.Completion, str | None]:
    """A valid completion with at most one defect; the defect's field path (or None)."""
    c = common_pb2.Completion(
        completion_id=draw(st.text(min_size=1, max_size=128).filter(str.isprintable)),
        learner_id=draw(st.integers(0, 10**12 - 1).map(lambda n: f"{n:012d}")),
        course_id="ml-101",
        result=common_pb2.COMPLETION_RESULT_PASS,
        score=draw(st.floats(min_value=0.01, max_value=100)),
        evidence_url=draw(st.sampled_from(["", "https://certs.example.org/a?b=c#d"])),
    )
    offset = draw(
        st.integers(min_value=0, max_value=int((NOW - EARLIEST_COMPLETION).total_seconds()))
    )
    c.completed_at.FromDatetime(EARLIEST_COMPLETION + timedelta(seconds=offset))
    defect = draw(
        st.sampled_from(
            [
                None,
                "completion_id",
                "learner_id",
                "course_id",
                "completed_at",
                "result",
                "score",
                "grade",
                "evidence_url",
            ]
        )
    )
    match defect:
        case "completion_id":
            c.completion_id = draw(
                st.one_of(
                    st.just(""), st.just("x" * 129), st.text(min_size=1).map(lambda s: s + "\n")
                )
            )
        case "learner_id":
            c.learner_id = draw(
                st.one_of(
                    st.from_regex(r"\A[0-9]{0,11}\Z"),
                    st.from_regex(r"\A[0-9]{13,20}\Z"),
                    st.just("12345678901a"),
                    st.just(" 123456789012"),
                    st.just("１２３４５６７８９０１２"),  # noqa: RUF001
                )
            )
        case "course_id":
            c.course_id = draw(
                st.one_of(st.just(""), st.just("no-such-course"), st.just("c" * 200))
            )
        case "completed_at":
            choice = draw(st.sampled_from(["missing", "past", "future", "invalid"]))
            if choice == "missing":
                c.ClearField("completed_at")
            elif choice == "past":
                c.completed_at.FromDatetime(datetime(1999, 12, 31, tzinfo=UTC))
            elif choice == "future":
                c.completed_at.FromDatetime(
                    NOW + SKEW + timedelta(seconds=draw(st.integers(1, 10**9)))
                )
            else:
                c.completed_at.seconds = draw(st.sampled_from([2**62, -(2**62), 253402300800]))
        case "result":
            c.result = draw(st.sampled_from([0, 3, 99, -1]))  # type: ignore[assignment]
        case "score":
            c.score = draw(st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 100.5, 0.0]))
        case "grade":
            c.grade = draw(st.sampled_from(["", "F", " fail ", "Absent", "G" * 17, "A\x07"]))
        case "evidence_url":
            c.evidence_url = draw(
                st.sampled_from(
                    [
                        "http://certs.example.org/x",
                        "https://",
                        "ftp://x/y",
                        "https://exa mple.org/",
                        "https://host:99999/",
                        "https://x/" + "a" * 2048,
                        "https://x/\u0085",
                    ]
                )
            )
    return c, None if defect is None else f"completion.{defect}"


def _check_violations(violations: list[Violation]) -> None:
    assert isinstance(violations, list)
    for v in violations:
        assert isinstance(v, Violation)
        assert v.field in COMPLETION_FIELDS, v
        assert v.description
        assert isinstance(v.description, str)


def _same_request(sent: LedgerRequest, received: LedgerRequest) -> None:
    assert type(received) is type(sent)
    assert received.envelope.event_id == sent.envelope.event_id
    assert received.envelope.learner_id == sent.envelope.learner_id
    # Scores are checked to be finite (no NaN, which never equals itself): plain equality.
    assert received == sent


# ------------------------------------------------------------------------------ validation
def test_any_completion_is_validated_without_crashing() -> None:
    seen = {"valid": 0, "invalid": 0}

    @_settings("completion_any")
    @given(any_completion())
    def prop(c: common_pb2.Completion) -> None:
        violations = validate_completion(c, courses=COURSES, now=NOW, clock_skew=SKEW)
        _check_violations(violations)
        if violations:
            seen["invalid"] += 1
            return
        seen["valid"] += 1
        event = completion_from_proto(c, issuer_id="swayam", now=NOW)
        _same_request(event, decode_completion_event(encode_completion_event(event)))

    prop()
    total = seen["valid"] + seen["invalid"]
    print(f"validate_completion(any): {total} cases ({seen['valid']} valid)")
    assert total >= _count("completion_any")
    assert seen["invalid"] > 0


def test_a_single_defect_is_reported_on_its_field_and_valid_ones_round_trip() -> None:
    seen = {"valid": 0, "invalid": 0}

    @_settings("completion_near_valid")
    @given(near_valid())
    def prop(case: tuple[common_pb2.Completion, str | None]) -> None:
        c, defect = case
        violations = validate_completion(c, courses=COURSES, now=NOW, clock_skew=SKEW)
        _check_violations(violations)
        if defect is None:
            assert violations == []
            seen["valid"] += 1
            event = completion_from_proto(c, issuer_id="swayam", now=NOW)
            decoded = decode_completion_event(encode_completion_event(event))
            _same_request(event, decoded)
        else:
            seen["invalid"] += 1
            assert [v.field for v in violations] == [defect], (c, violations)

    prop()
    total = seen["valid"] + seen["invalid"]
    print(f"validate_completion(near valid): {total} cases ({seen['invalid']} with a defect)")
    assert total >= _count("completion_near_valid")
    assert seen["valid"] > 0
    assert seen["invalid"] > 0


def test_any_revocation_is_validated_without_crashing() -> None:
    seen = {"n": 0}

    @_settings("revocation_any")
    @given(TEXT, st.one_of(TEXT, st.text(min_size=995, max_size=1010)), TEXT)
    def prop(completion_id: str, reason: str, learner_id: str) -> None:
        seen["n"] += 1
        violations = validate_revocation(completion_id, reason, learner_id)
        assert {v.field for v in violations} <= {"completion_id", "reason", "learner_id"}
        must_fail = (
            not completion_id
            or len(completion_id) > 128
            or not completion_id.isprintable()
            or not reason.strip()
            or len(reason) > 1000
            or any(unicodedata.category(ch) == "Cc" for ch in reason)  # NUL, C0, DEL, C1
            or (learner_id != "" and not (len(learner_id) == 12 and learner_id.isascii()
                                         and learner_id.isdigit()))
        )  # fmt: skip
        assert bool(violations) == must_fail, (completion_id, reason, learner_id, violations)

    prop()
    print(f"validate_revocation: {seen['n']} cases")
    assert seen["n"] >= _count("revocation_any")


# -------------------------------------------------------------------------------- decoding
def _decode_or_undecodable(value: bytes) -> str:
    try:
        request = decode_completion_event(value)
    except UndecodableEvent as exc:
        assert exc.reason  # noqa: PT017
        assert isinstance(exc.reason, str)  # noqa: PT017
        return f"undecodable:{exc.reason}"
    assert request.envelope is not None
    assert isinstance(request.envelope.event_id, uuid.UUID)
    return "decoded"


def _valid_event_bytes() -> list[bytes]:
    from tests.support.ledger import completion, consent, revocation

    return [
        encode_completion_event(completion("123456789012", "c-1")),
        encode_completion_event(revocation("123456789012", "c-1")),
        encode_completion_event(consent("123456789012")),
    ]


def test_any_bytes_decode_or_raise_undecodable() -> None:
    outcomes: dict[str, int] = {}

    @_settings("decode_any_bytes")
    @given(st.binary(max_size=300))
    def prop(value: bytes) -> None:
        outcome = _decode_or_undecodable(value)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    total = sum(outcomes.values())
    print(f"decode(any bytes): {total} cases {sorted(outcomes.items())}")
    assert total >= _count("decode_any_bytes")
    assert any(k.startswith("undecodable:") for k in outcomes)


def test_mutated_valid_events_decode_or_raise_undecodable() -> None:
    valid = _valid_event_bytes()
    outcomes: dict[str, int] = {}

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(valid)))
        for _ in range(draw(st.integers(min_value=1, max_value=6))):
            op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
            at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
            if op == "flip" and data:
                data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
            elif op == "set" and data:
                data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xFF, 0xED, 0xF4]))
            elif op == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete" and data:
                del data[at]
            elif op == "truncate":
                del data[at:]
            elif op == "dup":
                data += data[at:]
        return bytes(data)

    @_settings("decode_mutated")
    @given(mutated())
    def prop(value: bytes) -> None:
        outcome = _decode_or_undecodable(value)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    total = sum(outcomes.values())
    print(f"decode(mutated valid events): {total} cases {sorted(outcomes.items())}")
    assert total >= _count("decode_mutated")
    assert outcomes.get("decoded", 0) > 0
    assert len(outcomes) > 2


@st.composite
def structured_event(draw: st.DrawFn) -> bytes:
    event = events_pb2.CompletionEvent()
    if draw(st.integers(0, 9)):
        env = event.envelope
        env.event_id = draw(st.one_of(st.uuids().map(str), TEXT))
        env.schema_version = draw(
            st.one_of(st.sampled_from([1, 2]), st.integers(min_value=0, max_value=2**32 - 1))
        )
        env.issuer_id = draw(TEXT)
        env.learner_id = draw(st.one_of(TEXT, st.just("123456789012")))
        if draw(st.booleans()):
            env.occurred_at.seconds = draw(SECONDS)
            env.occurred_at.nanos = draw(NANOS)
    match draw(st.sampled_from(["submitted", "revoked", "grant", "revoke", None])):
        case "submitted":
            event.completion_submitted.completion.CopyFrom(draw(any_completion()))
            if draw(st.booleans()):
                event.completion_submitted.completion.learner_id = event.envelope.learner_id
            event.completion_submitted.evidence_urls.extend(draw(st.lists(TEXT, max_size=3)))
        case "revoked":
            event.revocation_requested.completion_id = draw(TEXT)
            event.revocation_requested.reason = draw(TEXT)
        case "grant":
            event.consent_grant_requested.university_id = draw(TEXT)
        case "revoke":
            event.consent_revoke_requested.university_id = draw(TEXT)
    return event.SerializeToString()


def test_structured_hostile_events_decode_or_raise_undecodable() -> None:
    outcomes: dict[str, int] = {}

    @_settings("decode_structured")
    @given(structured_event())
    def prop(value: bytes) -> None:
        outcome = _decode_or_undecodable(value)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    total = sum(outcomes.values())
    print(f"decode(structured hostile events): {total} cases {sorted(outcomes.items())}")
    assert total >= _count("decode_structured")
    assert outcomes.get("decoded", 0) > 0


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x0a",  # field 1, length-delimited, length missing
        b"\x0a\xff\xff\xff\xff\x0f",  # length far beyond the data
        b"\x0a\x02\x0a\x01",  # nested truncation
        # A deeply nested group of unknown fields (recursion bomb): 200,000 start-group tags.
        b"\x7b" * 200_000,
        b"\x0a\x80\x80\x80\x80\x10" + b"\x00" * 64,
        # invalid UTF-8 in envelope.event_id (string field 1 of the envelope)
        b"\x0a\x04\x0a\x02\xc3\x28",
    ],
)
def test_hand_made_hostile_bytes_are_undecodable(value: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        decode_completion_event(value)


# ------------------------------------------------------------------------------------ bulk
# The same properties at volume: hypothesis draws a seed per example, the example
# generates BULK_PER_EXAMPLE cases from it (a failure reproduces from hypothesis's seed).
_POOL = [
    "",
    "\x00",
    "\n\r",
    "\u202e",
    "'; DROP TABLE credit_log; --",
    '\n{"event":"forged"}',
    "123456789012",
    "ml-101",
    "https://certs.example.org/x",
    "A" * 129,
    "x" * 3000,
]


def _random_text(rng: random.Random) -> str:
    match rng.randrange(5):
        case 0:
            return rng.choice(_POOL)
        case 1:
            return "".join(rng.choice("0123456789") for _ in range(rng.randrange(10, 15)))
        case 2:
            return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(0, 40)))
        case 3:  # any code point except surrogates (protobuf strings cannot hold those)
            return "".join(
                chr(c)
                for c in (rng.randrange(0, 0x110000) for _ in range(rng.randrange(0, 20)))
                if not 0xD800 <= c <= 0xDFFF
            )
        case _:
            return rng.choice(_POOL) + rng.choice(_POOL)


def _random_completion(rng: random.Random) -> common_pb2.Completion:
    c = common_pb2.Completion(
        completion_id=rng.choice([f"c-{rng.randrange(10**6)}", _random_text(rng)]),
        learner_id=rng.choice([f"{rng.randrange(10**12):012d}", _random_text(rng)]),
        course_id=rng.choice(["ml-101", "ml-101", "x", _random_text(rng)]),
        evidence_url=rng.choice(["", "https://e.org/c", _random_text(rng)]),
    )
    c.result = rng.choice([1, 2, 1, 1, 2, 0, 7, -3])  # type: ignore[assignment]
    if rng.random() < 0.9:
        c.completed_at.seconds = rng.choice(
            [
                rng.randrange(int(EARLIEST_COMPLETION.timestamp()), int(NOW.timestamp())),
                rng.randrange(int(EARLIEST_COMPLETION.timestamp()), int(NOW.timestamp())),
                rng.randrange(-(2**63), 2**63),
                253402300800,
                -62135596801,
            ]
        )
        c.completed_at.nanos = rng.choice([0, 0, rng.randrange(-(2**31), 2**31)])
    r = rng.random()
    if r < 0.5:
        c.score = rng.choice([rng.uniform(-10, 110), math.nan, math.inf, 0.0, 100.0, 50.0])
    elif r < 0.8:
        c.grade = rng.choice(["A", "F", "O", _random_text(rng)])
    return c


def test_bulk_random_completions_validate_and_valid_ones_round_trip() -> None:
    seen = {"valid": 0, "invalid": 0}

    @_settings("bulk_validation")
    @given(st.integers(min_value=0, max_value=2**64))
    def prop(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(BULK_PER_EXAMPLE):
            c = _random_completion(rng)
            violations = validate_completion(c, courses=COURSES, now=NOW, clock_skew=SKEW)
            _check_violations(violations)
            if violations:
                seen["invalid"] += 1
                continue
            seen["valid"] += 1
            event = completion_from_proto(c, issuer_id="swayam", now=NOW)
            _same_request(event, decode_completion_event(encode_completion_event(event)))

    prop()
    total = seen["valid"] + seen["invalid"]
    print(f"validate_completion(bulk): {total} cases ({seen['valid']} valid)")
    assert total >= _count("bulk_validation") * BULK_PER_EXAMPLE
    assert seen["valid"] > 0
    assert seen["invalid"] > 0


def test_bulk_random_and_mutated_bytes_decode_or_raise_undecodable() -> None:
    valid = _valid_event_bytes()
    outcomes: dict[str, int] = {}

    @_settings("bulk_decoding")
    @given(st.integers(min_value=0, max_value=2**64))
    def prop(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(BULK_PER_EXAMPLE):
            if rng.random() < 0.3:
                value = rng.randbytes(rng.randrange(0, 200))
            else:
                data = bytearray(rng.choice(valid))
                for _ in range(rng.randrange(1, 5)):
                    at = rng.randrange(0, len(data)) if data else 0
                    match rng.randrange(4):
                        case 0 if data:
                            data[at] ^= 1 << rng.randrange(8)
                        case 1:
                            data[at:at] = rng.randbytes(rng.randrange(1, 6))
                        case 2:
                            del data[at:]
                        case _ if data:
                            data[at] = rng.choice([0x00, 0x80, 0xC0, 0xFF, 0xED])
                value = bytes(data)
            outcome = _decode_or_undecodable(value)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    prop()
    total = sum(outcomes.values())
    print(f"decode(bulk): {total} cases {sorted(outcomes.items())}")
    assert total >= _count("bulk_decoding") * BULK_PER_EXAMPLE
    assert outcomes.get("decoded", 0) > 0
