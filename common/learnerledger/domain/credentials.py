"""Credits as verifiable credentials: the JSON of what the query service exports (no I/O).

* :func:`open_badge_credential`: one credit as a W3C Verifiable Credential 2.0 / 1EdTech Open
  Badges 3.0 ``OpenBadgeCredential`` (the achievement is the course, the subject holds
  ``creditsEarned`` and the result, ``validFrom``/``validUntil`` are the credit's validity).
* :func:`clr_credential`: a learner's credits as a 1EdTech CLR 2.0 ``ClrCredential`` that
  wraps each credit's own secured credential (VC 2.0 ``EnvelopedVerifiableCredential``).
* :func:`status_list_credential`, :func:`encode_status_list`, :func:`status_bit`: W3C
  Bitstring Status List 1.0 (GZIP, multibase base64url, index 0 the most significant bit of
  the first byte).
* :func:`did_web`, :func:`did_web_document_url`, :func:`did_document`, :func:`ed25519_jwk`,
  :func:`jwk_thumbprint`: the issuer as a ``did:web`` identifier and its DID document.

Securing (VC-JOSE, compact JWS) is :mod:`learnerledger.domain.vc_jose`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from learnerledger.domain.instants import format_instant

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CLR_CONTEXT = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"
DID_CONTEXT = "https://www.w3.org/ns/did/v1"
CID_CONTEXT = "https://www.w3.org/ns/cid/v1"
#: W3C Bitstring Status List 1.0: at least 131,072 entries (16 KiB) per list, for privacy.
STATUS_LIST_SIZE = 131_072
NCRF_FRAMEWORK = "National Credit Framework (NCrF), India"
NCRF_URL = "https://www.education.gov.in/sites/upload_files/mhrd/files/NCrF-NEP-2020.pdf"
#: Namespace of the credentials' stable ids (UUIDv5 of issuer DID, learner and sequence).
CREDENTIAL_ID_NAMESPACE = uuid.UUID("6f1d4a3e-2c55-5b0e-9a57-2f0c8d6a1b40")
HOURS_BASIS_TEXT = {
    "ncrf": "NCrF: 1 credit = 30 notional learning hours",
    "nheqf": "NHEQF: 1 credit = 15 hours of theory, 30 of practical work or 45 of experiential "
    "learning",
    "nheqf_theory": "NHEQF: 1 credit = 15 hours of theory",
    "nheqf_practical": "NHEQF: 1 credit = 30 hours of practical work",
}


class InvalidCredentialInput(ValueError):
    """The facts given cannot make a credential (a field named, and why)."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


@dataclass(frozen=True, slots=True)
class CredentialIssuer:
    """Who signs: the ledger's operator, a ``did:web`` identifier and a display name.
    ``public_url`` is where the DID document and the status lists are served."""

    did: str
    name: str
    public_url: str

    def status_list_url(self, status_list: int) -> str:
        return f"{self.public_url.rstrip('/')}/status/{status_list}"

    def profile(self) -> dict[str, Any]:
        return {"id": self.did, "type": ["Profile"], "name": self.name, "url": self.public_url}


@dataclass(frozen=True, slots=True)
class CreditFacts:
    """One ``credit_awarded`` entry and its course, as read from the log and the catalog."""

    learner_id: str
    sequence: int
    issuer_id: str
    issuer_name: str
    completion_id: str
    course_id: str
    course_title: str
    level: str
    notional_hours: int
    hours_basis: str
    credits: Decimal
    completed_at: datetime
    valid_until: datetime
    recorded_at: datetime
    result: str
    entry_hash: bytes
    score: float | None = None
    grade: str | None = None
    evidence_url: str | None = None
    skills: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A credential's place in a status list, and the salt of its hashed subject identifier."""

    status_list: int
    status_index: int
    subject_salt: str

    def __post_init__(self) -> None:
        if self.status_list < 1:
            raise InvalidCredentialInput("status_list", "must be 1 or more")
        if not 0 <= self.status_index < STATUS_LIST_SIZE:
            raise InvalidCredentialInput(
                "status_index", f"must be in [0, {STATUS_LIST_SIZE}), got {self.status_index}"
            )


def _date_time(value: datetime) -> str:
    """XML Schema dateTimeStamp in UTC (RFC 3339, ``Z``), as VC 2.0 wants it."""
    return format_instant(value)


def _decimal_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def credential_id(issuer: CredentialIssuer, learner_id: str, sequence: int) -> str:
    """The stable id of the credential for one credit: the same on every export."""
    return "urn:uuid:" + str(
        uuid.uuid5(CREDENTIAL_ID_NAMESPACE, f"{issuer.did}\n{learner_id}\n{sequence}")
    )


def identity_hash(learner_id: str, salt: str) -> str:
    """OB 3.0 IdentityHash of the learner's APAAR id: ``sha256$`` hex(SHA-256(id ‖ salt))."""
    return "sha256$" + hashlib.sha256((learner_id + salt).encode("utf-8")).hexdigest()


def _subject_identifier(learner_id: str, salt: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "IdentityObject",
            "identityType": "ext:APAARId",
            "hashed": True,
            "identityHash": identity_hash(learner_id, salt),
            "salt": salt,
        }
    ]


def _achievement(issuer: CredentialIssuer, facts: CreditFacts) -> dict[str, Any]:
    achievement_id = f"urn:learnerledger:course:{quote(facts.course_id, safe='')}"
    basis = HOURS_BASIS_TEXT.get(facts.hours_basis, facts.hours_basis)
    result_descriptions: list[dict[str, Any]] = [
        {
            "id": f"{achievement_id}#completion",
            "type": ["ResultDescription"],
            "name": "Completion",
            "resultType": "Status",
        }
    ]
    if facts.score is not None:
        result_descriptions.append(
            {
                "id": f"{achievement_id}#score",
                "type": ["ResultDescription"],
                "name": "Score",
                "resultType": "RawScore",
            }
        )
    if facts.grade is not None:
        result_descriptions.append(
            {
                "id": f"{achievement_id}#grade",
                "type": ["ResultDescription"],
                "name": "Grade",
                "resultType": "LetterGrade",
            }
        )
    achievement: dict[str, Any] = {
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": "Course",
        "name": facts.course_title,
        "description": (
            f"{facts.course_title} ({facts.course_id}), offered by {facts.issuer_name}: "
            f"NCrF level {facts.level}, {facts.notional_hours} notional learning hours, "
            f"{_decimal_number(facts.credits)} credits ({basis})."
        ),
        "criteria": {
            "narrative": (
                f"Pass {facts.course_title} as certified by {facts.issuer_name}. Credit is "
                f"awarded under the learner ledger's rules: {basis}, rounded down to 0.5, "
                "a pass required, valid for seven years from completion (UGC ABC 2021)."
            )
        },
        "alignment": [
            {
                "type": ["Alignment"],
                "targetName": f"NCrF level {facts.level}",
                "targetCode": facts.level,
                "targetFramework": NCRF_FRAMEWORK,
                "targetType": "ext:NCrFLevel",
                "targetUrl": NCRF_URL,
            }
        ],
        "creditsAvailable": _decimal_number(facts.credits),
        "creator": {
            "id": f"urn:learnerledger:issuer:{facts.issuer_id}",
            "type": ["Profile"],
            "name": facts.issuer_name,
        },
        "humanCode": facts.course_id,
        "resultDescription": result_descriptions,
        # Not in the OB 3.0 vocabulary: issuer-dependent terms under the VC 2.0 @vocab.
        "notionalHours": facts.notional_hours,
        "hoursBasis": facts.hours_basis,
    }
    if facts.skills:
        achievement["tag"] = list(facts.skills)
    return achievement


def _results(achievement_id: str, facts: CreditFacts) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [
        {
            "type": ["Result"],
            "resultDescription": f"{achievement_id}#completion",
            "status": "Completed" if facts.result == "pass" else "Failed",
        }
    ]
    if facts.score is not None:
        results.append(
            {
                "type": ["Result"],
                "resultDescription": f"{achievement_id}#score",
                "value": format(Decimal(str(facts.score)).normalize(), "f"),
            }
        )
    if facts.grade is not None:
        results.append(
            {
                "type": ["Result"],
                "resultDescription": f"{achievement_id}#grade",
                "value": facts.grade,
            }
        )
    return results


def status_list_entry(issuer: CredentialIssuer, entry: StatusEntry) -> dict[str, Any]:
    """A ``BitstringStatusListEntry`` (purpose ``revocation``) pointing at the served list."""
    url = issuer.status_list_url(entry.status_list)
    return {
        "id": f"{url}#{entry.status_index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": str(entry.status_index),
        "statusListCredential": url,
    }


def open_badge_credential(
    issuer: CredentialIssuer, facts: CreditFacts, status: StatusEntry
) -> dict[str, Any]:
    """The OB 3.0 ``OpenBadgeCredential`` for one credit (unsecured; sign it with vc_jose)."""
    if facts.credits <= 0:
        raise InvalidCredentialInput("credits", "a credential is for credit awarded (> 0)")
    if facts.valid_until <= facts.completed_at:
        raise InvalidCredentialInput("valid_until", "must be after completed_at")
    achievement = _achievement(issuer, facts)
    subject: dict[str, Any] = {
        "type": ["AchievementSubject"],
        "identifier": _subject_identifier(facts.learner_id, status.subject_salt),
        "achievement": achievement,
        "creditsEarned": _decimal_number(facts.credits),
        "activityEndDate": _date_time(facts.completed_at),
        "result": _results(achievement["id"], facts),
    }
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT, OB3_CONTEXT],
        "id": credential_id(issuer, facts.learner_id, facts.sequence),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": (
            f"{facts.course_title}: {_decimal_number(facts.credits)} credits at NCrF level "
            f"{facts.level}"
        ),
        "issuer": issuer.profile(),
        "validFrom": _date_time(facts.completed_at),
        "validUntil": _date_time(facts.valid_until),
        "awardedDate": _date_time(facts.recorded_at),
        "credentialSubject": subject,
        "credentialStatus": status_list_entry(issuer, status),
        "evidence": [_evidence(facts)],
    }
    return credential


def _evidence(facts: CreditFacts) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "type": ["Evidence"],
        "name": f"Completion {facts.completion_id} reported by {facts.issuer_name}",
        "description": (
            f"Completed {_date_time(facts.completed_at)}, result {facts.result}; recorded in "
            f"the credit log as the learner's entry {facts.sequence} "
            f"(entry_hash {facts.entry_hash.hex()})."
        ),
        "genre": "Course completion",
    }
    if facts.evidence_url:
        evidence["id"] = facts.evidence_url
    return evidence


def enveloped(compact_jws: str) -> dict[str, Any]:
    """A secured credential inside another (VC 2.0 ``EnvelopedVerifiableCredential``)."""
    return {
        "@context": VC_CONTEXT,
        "id": f"data:application/vc+jwt,{compact_jws}",
        "type": "EnvelopedVerifiableCredential",
    }


def clr_credential(
    issuer: CredentialIssuer,
    learner_id: str,
    salt: str,
    credentials: Sequence[str],
    *,
    issued_at: datetime,
    transcript_id: str,
) -> dict[str, Any]:
    """A CLR 2.0 ``ClrCredential`` wrapping each credit's own secured credential (compact
    JWS, each verifiable alone and carrying its own status entry)."""
    return {
        "@context": [VC_CONTEXT, CLR_CONTEXT, OB3_CONTEXT],
        "id": transcript_id,
        "type": ["VerifiableCredential", "ClrCredential"],
        "name": "Learner Ledger transcript: credits held",
        "issuer": issuer.profile(),
        "validFrom": _date_time(issued_at),
        "credentialSubject": {
            "type": ["ClrSubject"],
            "identifier": _subject_identifier(learner_id, salt),
            "verifiableCredential": [enveloped(jws) for jws in credentials],
        },
    }


# -- Bitstring Status List 1.0 ---------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_status_list(set_indices: Iterable[int], size: int = STATUS_LIST_SIZE) -> str:
    """The ``encodedList``: multibase ``u`` + base64url(GZIP(bitstring)), bit 0 leftmost."""
    if size < STATUS_LIST_SIZE or size % 8:
        raise InvalidCredentialInput(
            "size", f"must be a multiple of 8 of at least {STATUS_LIST_SIZE}"
        )
    bits = bytearray(size // 8)
    for index in set_indices:
        if not 0 <= index < size:
            raise InvalidCredentialInput("status_index", f"{index} is outside the list")
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + _b64url(gzip.compress(bytes(bits), mtime=0))


def decode_status_list(encoded: str) -> bytes:
    """Inverse of :func:`encode_status_list` (the raw bitstring)."""
    if not encoded.startswith("u"):
        raise InvalidCredentialInput("encodedList", "must be multibase base64url (prefix 'u')")
    return gzip.decompress(_b64url_decode(encoded[1:]))


def status_bit(bitstring: bytes, index: int) -> bool:
    if not 0 <= index < len(bitstring) * 8:
        raise InvalidCredentialInput("statusListIndex", f"{index} is outside the list")
    return bool(bitstring[index // 8] & (0x80 >> (index % 8)))


def status_list_credential(
    issuer: CredentialIssuer,
    status_list: int,
    revoked_indices: Iterable[int],
    *,
    issued_at: datetime,
) -> dict[str, Any]:
    """The ``BitstringStatusListCredential`` of list ``status_list`` (purpose ``revocation``)."""
    url = issuer.status_list_url(status_list)
    return {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.did,
        "validFrom": _date_time(issued_at),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_list(revoked_indices),
        },
    }


# -- did:web and keys ------------------------------------------------------------------------
def did_web(public_url: str) -> str:
    """``did:web`` of a URL: host (port as ``%3A``), then path segments joined by ``:``."""
    parts = urlsplit(public_url)
    if not parts.hostname:
        raise InvalidCredentialInput("public_url", f"{public_url!r} has no host")
    host = parts.hostname + (f"%3A{parts.port}" if parts.port else "")
    path = [quote(unquote(p), safe="") for p in parts.path.split("/") if p]
    return ":".join(["did:web", host, *path])


def did_web_document_url(did: str, *, scheme: str = "https") -> str:
    """Where a ``did:web`` DID's document lives (did:web method, "Read (Resolve)")."""
    if not did.startswith("did:web:"):
        raise InvalidCredentialInput("did", f"{did!r} is not a did:web identifier")
    segments = did.removeprefix("did:web:").split(":")
    host = unquote(segments[0])
    path = "/".join(unquote(s) for s in segments[1:])
    return f"{scheme}://{host}/{path + '/did.json' if path else '.well-known/did.json'}"


def ed25519_jwk(public_key: bytes) -> dict[str, str]:
    if len(public_key) != 32:
        raise InvalidCredentialInput("public_key", "an Ed25519 public key is 32 bytes")
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public_key)}


def jwk_thumbprint(public_key: bytes) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of the key's JWK: the key's id."""
    members = json.dumps(ed25519_jwk(public_key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(members.encode("utf-8")).digest())


def key_id(did: str, public_key: bytes) -> str:
    """The ``kid`` of a JWS: the verification method's DID URL."""
    return f"{did}#{jwk_thumbprint(public_key)}"


def did_document(did: str, public_keys: Sequence[bytes]) -> dict[str, Any]:
    """The DID document listing every key that ever signed (newest last), so a credential
    signed before a rotation keeps verifying."""
    methods = [
        {
            "id": key_id(did, key),
            "type": "JsonWebKey",
            "controller": did,
            "publicKeyJwk": ed25519_jwk(key),
        }
        for key in public_keys
    ]
    ids = [method["id"] for method in methods]
    return {
        "@context": [DID_CONTEXT, CID_CONTEXT],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": ids,
        "authentication": ids,
    }


def verification_key(document: Mapping[str, Any], kid: str) -> bytes:
    """The raw Ed25519 key of verification method ``kid`` in a DID document, if it is an
    assertion method there (raises :class:`InvalidCredentialInput` otherwise)."""
    if kid not in document.get("assertionMethod", []):
        raise InvalidCredentialInput("kid", f"{kid!r} is not an assertion method of the DID")
    for method in document.get("verificationMethod", []):
        if isinstance(method, Mapping) and method.get("id") == kid:
            jwk = method.get("publicKeyJwk")
            if (
                isinstance(jwk, Mapping)
                and jwk.get("kty") == "OKP"
                and jwk.get("crv") == "Ed25519"
                and isinstance(jwk.get("x"), str)
            ):
                key = _b64url_decode(jwk["x"])
                if len(key) == 32:
                    return key
            raise InvalidCredentialInput("kid", f"{kid!r} is not an Ed25519 JWK")
    raise InvalidCredentialInput("kid", f"{kid!r} is not in the DID document")
