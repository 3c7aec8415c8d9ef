"""Credits as verifiable credentials, pure: the OB 3.0 credential validates against
1EdTech's JSON Schema (read from ../shared/standards, never copied here), the status list is
W3C Bitstring Status List 1.0, did:web maps both ways, and the VC-JOSE signature is refused
after one changed byte or under another key."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from learnerledger.domain import credentials as vc
from learnerledger.domain.vc_jose import CredentialRefused, header_of, sign_credential
from learnerledger.domain.vc_jose import verify_credential as verify
from tests.support.standards import OB3_SCHEMA, STANDARDS

ISSUER = vc.CredentialIssuer(
    did="did:web:credentials.ledger.example", name="Learner Ledger",
    public_url="https://credentials.ledger.example",
)  # fmt: skip


def facts(**changes: Any) -> vc.CreditFacts:
    base: dict[str, Any] = dict(
        learner_id="987654321012",
        sequence=3,
        issuer_id="swayam",
        issuer_name="SWAYAM",
        completion_id="mar-0001",
        course_id="ml-101",
        course_title="Machine learning",
        level="5.5",
        notional_hours=90,
        hours_basis="ncrf",
        credits=Decimal(3),
        completed_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
        valid_until=datetime(2033, 3, 1, 12, tzinfo=UTC),
        recorded_at=datetime(2026, 3, 1, 12, 5, tzinfo=UTC),
        result="pass",
        entry_hash=bytes(range(32)),
        score=82.5,
        evidence_url="https://swayam.example/c/mar-0001",
        skills=("python", "statistics"),
    )
    base.update(changes)
    return vc.CreditFacts(**base)


STATUS = vc.StatusEntry(status_list=1, status_index=94_567, subject_salt="0123456789abcdef" * 2)


def ob3_validator() -> jsonschema.protocols.Validator:
    if not OB3_SCHEMA.exists():
        pytest.skip(f"the 1EdTech OB 3.0 schemas are not at {STANDARDS} (../shared/standards)")
    schema = json.loads(OB3_SCHEMA.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/draft/2019-09/")
    return jsonschema.Draft201909Validator(
        schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER
    )


def test_a_credit_is_an_open_badge_credential_that_validates_against_the_ob3_schema() -> None:
    validator = ob3_validator()
    credential = vc.open_badge_credential(ISSUER, facts(), STATUS)
    errors = sorted(validator.iter_errors(credential), key=str)
    assert not errors, [e.message for e in errors]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert credential["issuer"]["id"] == ISSUER.did
    assert credential["validFrom"] == "2026-03-01T12:00:00.000000Z"
    assert credential["validUntil"] == "2033-03-01T12:00:00.000000Z"
    subject = credential["credentialSubject"]
    assert subject["creditsEarned"] == 3
    achievement = subject["achievement"]
    assert achievement["name"] == "Machine learning"
    assert achievement["creditsAvailable"] == 3
    assert achievement["criteria"]["narrative"]
    assert (achievement["notionalHours"], achievement["hoursBasis"]) == (90, "ncrf")
    [ncrf] = achievement["alignment"]
    assert (ncrf["targetCode"], ncrf["targetType"]) == ("5.5", "ext:NCrFLevel")
    statuses = {r["resultDescription"].rsplit("#")[1]: r for r in subject["result"]}
    assert statuses["completion"]["status"] == "Completed"
    assert statuses["score"]["value"] == "82.5"
    described = {d["id"] for d in achievement["resultDescription"]}
    assert {r["resultDescription"] for r in subject["result"]} <= described
    [evidence] = credential["evidence"]
    assert evidence["id"] == "https://swayam.example/c/mar-0001"
    assert bytes(range(32)).hex() in evidence["description"]
    # the APAAR id only hashed, with the stored salt
    [identity] = subject["identifier"]
    assert "987654321012" not in json.dumps(credential)
    assert identity["identityHash"] == vc.identity_hash("987654321012", STATUS.subject_salt)
    assert credential["credentialStatus"] == {
        "id": "https://credentials.ledger.example/status/1#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": "https://credentials.ledger.example/status/1",
    }
    # the same credit is the same credential on every export
    assert vc.open_badge_credential(ISSUER, facts(), STATUS) == credential


def test_the_schema_check_can_fail() -> None:
    validator = ob3_validator()
    credential = vc.open_badge_credential(ISSUER, facts(), STATUS)
    del credential["credentialSubject"]["achievement"]["criteria"]
    credential["type"] = ["VerifiableCredential"]
    assert len(list(validator.iter_errors(credential))) >= 2


@pytest.mark.parametrize(
    "changes",
    [
        {"score": None, "grade": "A", "evidence_url": None, "skills": ()},
        {"credits": Decimal("1.5"), "level": "8", "hours_basis": "nheqf_theory"},
    ],
)
def test_variants_validate_too(changes: dict[str, Any]) -> None:
    validator = ob3_validator()
    credential = vc.open_badge_credential(ISSUER, facts(**changes), STATUS)
    assert not list(validator.iter_errors(credential))
    assert ("id" in credential["evidence"][0]) == (facts(**changes).evidence_url is not None)


def test_no_credential_without_credit_or_validity() -> None:
    with pytest.raises(vc.InvalidCredentialInput, match="credits"):
        vc.open_badge_credential(ISSUER, facts(credits=Decimal(0)), STATUS)
    with pytest.raises(vc.InvalidCredentialInput, match="valid_until"):
        vc.open_badge_credential(
            ISSUER, facts(valid_until=datetime(2026, 3, 1, 12, tzinfo=UTC)), STATUS
        )
    with pytest.raises(vc.InvalidCredentialInput, match="status_index"):
        vc.StatusEntry(1, vc.STATUS_LIST_SIZE, "00" * 16)


def test_status_list_is_a_gzipped_base64url_bitstring_of_at_least_131072_entries() -> None:
    encoded = vc.encode_status_list([0, 9, vc.STATUS_LIST_SIZE - 1])
    assert encoded.startswith("u")
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) * 8 == 131_072
    assert raw[0] == 0b1000_0000  # index 0 is the leftmost bit
    assert raw[1] == 0b0100_0000
    assert raw[-1] == 0b0000_0001
    bits = vc.decode_status_list(encoded)
    assert [i for i in (0, 1, 8, 9, 10, 131_071) if vc.status_bit(bits, i)] == [0, 9, 131_071]
    with pytest.raises(vc.InvalidCredentialInput):
        vc.encode_status_list([vc.STATUS_LIST_SIZE])
    credential = vc.status_list_credential(
        ISSUER, 1, [94_567], issued_at=datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert credential["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert credential["id"] == "https://credentials.ledger.example/status/1"
    subject = credential["credentialSubject"]
    assert (subject["type"], subject["statusPurpose"]) == ("BitstringStatusList", "revocation")
    assert vc.status_bit(vc.decode_status_list(subject["encodedList"]), 94_567)
    assert not vc.status_bit(vc.decode_status_list(subject["encodedList"]), 94_566)


def test_did_web_maps_urls_to_identifiers_and_back() -> None:
    assert vc.did_web("https://credentials.ledger.example") == "did:web:credentials.ledger.example"
    assert vc.did_web("http://127.0.0.1:8443/") == "did:web:127.0.0.1%3A8443"
    assert vc.did_web("https://example.in/abc/issuer") == "did:web:example.in:abc:issuer"
    assert (
        vc.did_web_document_url("did:web:credentials.ledger.example")
        == "https://credentials.ledger.example/.well-known/did.json"
    )
    assert (
        vc.did_web_document_url("did:web:127.0.0.1%3A8443", scheme="http")
        == "http://127.0.0.1:8443/.well-known/did.json"
    )
    assert (
        vc.did_web_document_url("did:web:example.in:abc:issuer")
        == "https://example.in/abc/issuer/did.json"
    )
    with pytest.raises(vc.InvalidCredentialInput):
        vc.did_web_document_url("did:key:z6Mk")


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_rfc7638_thumbprint_of_an_ed25519_key() -> None:
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    assert vc.jwk_thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_did_document_keeps_every_key_and_finds_each_by_kid() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = vc.did_document(ISSUER.did, [raw(old), raw(new)])
    assert document["id"] == ISSUER.did
    assert len(document["verificationMethod"]) == 2
    for key in (old, new):
        kid = vc.key_id(ISSUER.did, raw(key))
        assert kid.startswith(ISSUER.did + "#")
        assert vc.verification_key(document, kid) == raw(key)
    stranger = vc.key_id(ISSUER.did, raw(Ed25519PrivateKey.generate()))
    with pytest.raises(vc.InvalidCredentialInput):
        vc.verification_key(document, stranger)


def test_vc_jose_signature_verifies_and_refuses_a_changed_byte_or_another_key() -> None:
    key = Ed25519PrivateKey.generate()
    kid = vc.key_id(ISSUER.did, raw(key))
    credential = vc.open_badge_credential(ISSUER, facts(), STATUS)
    token = sign_credential(credential, key, kid)
    header = header_of(token)
    assert header == {"alg": "EdDSA", "kid": kid, "typ": "vc+jwt", "cty": "vc"}
    assert verify(token, key.public_key()) == credential
    with pytest.raises(CredentialRefused):
        verify(token, Ed25519PrivateKey.generate().public_key())
    head, payload, signature = token.split(".")
    body = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    at = body.index(b'"creditsEarned":3') + len(b'"creditsEarned":')
    body[at] = ord("9")  # one byte: 3 credits become 9
    forged = ".".join(
        [head, base64.urlsafe_b64encode(bytes(body)).rstrip(b"=").decode(), signature]
    )
    with pytest.raises(CredentialRefused):
        verify(forged, key.public_key())
    with pytest.raises(CredentialRefused):
        header_of("not.a.jws")
