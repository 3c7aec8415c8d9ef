"""What the public verification page says: a pure function of public documents.

``judge(evidence, trusted, now)`` takes what any verifier can fetch or hold (the documents the
query service's HTTP API publishes, or a file a learner handed over), the checkpoint verifier
keys the reader trusts, and the time; it returns a :class:`Verdict` with one plain-words
headline and the facts shown. No I/O here: the page fetches, this decides, so what the page
says is exactly what the public documents prove.

Evidence kinds (one class each; ``judge`` dispatches on the type):

* :class:`LogEntryEvidence`: a credit entry of the log found by its ``entry_hash`` (a share
  link ``/verify?entry=HEX``) or given as a proof bundle file (``ledgerctl proof export``): the
  public entry document (``GET /entry?entry_hash=``: the entry's canonical JSON and hashes,
  plus the ledger's status claim now), the inclusion proof (``GET /proof/inclusion?entry_hash=``)
  and the latest signed checkpoint (``GET /checkpoint``).

A verifiable-credential file (VC-JOSE JWS + the issuer's DID document + its status list) is
meant to be one more evidence class with its own ``_judge_*`` function returning the same
:class:`Verdict`; the page renders any verdict the same way.

Order of the checks (the first failure decides): the document recomputes to its hash
(else **tampered**); the checkpoint is signed by a trusted key (another key: **unknown key**;
the trusted key's name and id with a bad signature: **tampered**); the inclusion proof puts
the entry under the checkpoint's root (else **tampered**); then what the credit is now:
revoked after redemption, redeemed, revoked, expired, active. ``valid_until`` is read from the
signed entry; revocation and redemption come from the ledger's status claim (later entries of
the learner's chain, not part of this entry).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from learnerledger.domain.proofs import (
    BadInput,
    BundleEntry,
    EntryTampered,
    InclusionRejected,
    entry_hash_of,
    parse_bundle,
    verify_inclusion_in,
)
from learnerledger.domain.signed_note import (
    InvalidNoteSignature,
    MalformedNote,
    NoteVerifier,
    UnverifiedNote,
)
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, open_checkpoint

PUBLIC_ENTRY_FORMAT = "learnerledger/public-entry/v1"
#: The statuses the ledger may claim for a credit now (``CredentialStatus`` values).
STATUS_CLAIMS = frozenset({"active", "expired", "revoked", "redeemed"})


class VerdictKind(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REVOKED_AFTER_REDEMPTION = "revoked_after_redemption"
    REDEEMED = "redeemed"
    NOT_YET_SEALED = "not_yet_sealed"
    TAMPERED = "tampered"
    UNKNOWN_KEY = "unknown_key"
    NOT_FOUND = "not_found"
    NOT_A_CREDIT = "not_a_credit"
    UNREADABLE = "unreadable"


#: The kinds that say "trust it" (the credit is genuine; the headline says what it is worth now).
GENUINE = frozenset(
    {
        VerdictKind.ACTIVE,
        VerdictKind.EXPIRED,
        VerdictKind.REVOKED,
        VerdictKind.REVOKED_AFTER_REDEMPTION,
        VerdictKind.REDEEMED,
    }
)
#: The kinds that say "do not trust it".
REFUSED = frozenset({VerdictKind.TAMPERED, VerdictKind.UNKNOWN_KEY})

HEADLINES: Mapping[VerdictKind, str] = {
    VerdictKind.ACTIVE: "Genuine and active",
    VerdictKind.EXPIRED: "Genuine, but expired",
    VerdictKind.REVOKED: "Revoked by its issuer",
    VerdictKind.REVOKED_AFTER_REDEMPTION: "Revoked after it was redeemed",
    VerdictKind.REDEEMED: "Genuine, already redeemed",
    VerdictKind.NOT_YET_SEALED: "Recorded, not yet sealed",
    VerdictKind.TAMPERED: "Altered: do not trust this",
    VerdictKind.UNKNOWN_KEY: "Signed by an unknown key: do not trust this",
    VerdictKind.NOT_FOUND: "Not found",
    VerdictKind.NOT_A_CREDIT: "Not a credit",
    VerdictKind.UNREADABLE: "Cannot read this",
}


@dataclass(frozen=True, slots=True)
class StatusClaim:
    """The ledger's word on a credit now (``GET /entry``'s ``status``); not signed."""

    status: str
    revoked_at: datetime | None = None
    redeemed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InclusionDocument:
    """``GET /proof/inclusion?entry_hash=``: the leaf index, the proof, the signed head."""

    leaf_index: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True, slots=True)
class LogEntryEvidence:
    """A credit entry of the log, as fetched from the public endpoints and/or uploaded.

    ``entry`` None: the public lookup knows no credit with that hash. ``inclusion`` None: no
    signed tree head covers the entry yet. ``uploaded``: a proof bundle file, checked first
    (with its own checkpoint and proof), then compared with what the ledger publishes now."""

    entry: BundleEntry | None
    inclusion: InclusionDocument | None = None
    latest_checkpoint: str | None = None
    status: StatusClaim | None = None
    uploaded: UploadedBundle | None = None


@dataclass(frozen=True, slots=True)
class UploadedBundle:
    entry: BundleEntry
    inclusion: InclusionDocument


@dataclass(frozen=True, slots=True)
class UnreadableEvidence:
    """Input that is not any evidence kind (a file that is neither format, a bad link)."""

    problem: str


Evidence = LogEntryEvidence | UnreadableEvidence


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    explanation: str
    #: What the page shows, in order: label -> value (empty when nothing can be trusted).
    facts: tuple[tuple[str, str], ...] = ()
    #: Each check and its outcome, for the curious reader: (check, passed, detail).
    checks: tuple[tuple[str, bool, str], ...] = ()
    in_latest_checkpoint: bool = False
    entry_hash: str | None = None

    @property
    def headline(self) -> str:
        return HEADLINES[self.kind]

    @property
    def genuine(self) -> bool:
        return self.kind in GENUINE


@dataclass(slots=True)
class _Checks:
    done: list[tuple[str, bool, str]] = field(default_factory=list)

    def passed(self, name: str, detail: str) -> None:
        self.done.append((name, True, detail))

    def failed(self, name: str, detail: str) -> None:
        self.done.append((name, False, detail))


# --- parsing the public documents (boundaries: every field is checked) -------------------------


def _hex32(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise BadInput(f"{name} is missing or not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise BadInput(f"{name} is not hexadecimal") from exc
    if len(raw) != 32:
        raise BadInput(f"{name} is not a 32-byte hash")
    return raw


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``ValueError`` otherwise), as UTC."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value.astimezone(UTC)


def _instant_or_none(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput(f"{name} is not a timestamp")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise BadInput(f"{name} is not a timestamp: {exc}") from exc


def parse_public_entry(text: str | bytes) -> tuple[BundleEntry, StatusClaim]:
    """Read ``GET /entry``'s document (``BadInput`` unless it is the documented format)."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"the entry document is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != PUBLIC_ENTRY_FORMAT:
        raise BadInput(f"the entry document is not {PUBLIC_ENTRY_FORMAT}")
    entry, status = document.get("entry"), document.get("status")
    if not isinstance(entry, dict) or not isinstance(status, dict):
        raise BadInput("the entry document has no entry or no status object")
    canonical = entry.get("canonical_json")
    if not isinstance(canonical, str):
        raise BadInput("entry.canonical_json is missing or not a string")
    claimed = status.get("status")
    if claimed not in STATUS_CLAIMS:
        raise BadInput(f"status.status must be one of {sorted(STATUS_CLAIMS)}")
    return (
        BundleEntry(
            canonical,
            _hex32(entry.get("prev_hash"), "entry.prev_hash"),
            _hex32(entry.get("entry_hash"), "entry.entry_hash"),
        ),
        StatusClaim(
            str(claimed),
            _instant_or_none(status.get("revoked_at"), "status.revoked_at"),
            _instant_or_none(status.get("redeemed_at"), "status.redeemed_at"),
        ),
    )


def parse_inclusion(text: str | bytes) -> InclusionDocument:
    """Read ``GET /proof/inclusion``'s JSON (``BadInput`` unless it is that format)."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"the inclusion proof is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadInput("the inclusion proof is not a JSON object")
    leaf_index, proof, note = (
        document.get("leaf_index"),
        document.get("inclusion_proof"),
        document.get("checkpoint"),
    )
    if not isinstance(leaf_index, int) or isinstance(leaf_index, bool) or leaf_index < 0:
        raise BadInput("leaf_index is missing or not a whole number")
    if not isinstance(proof, list) or not isinstance(note, str):
        raise BadInput("inclusion_proof or checkpoint is missing")
    hashes = []
    for number, item in enumerate(proof):
        try:
            value = base64.b64decode(str(item).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise BadInput(f"inclusion_proof[{number}] is not base64") from exc
        if not isinstance(item, str) or len(value) != 32:
            raise BadInput(f"inclusion_proof[{number}] is not a base64 32-byte hash")
        hashes.append(value)
    return InclusionDocument(leaf_index, tuple(hashes), note)


def parse_uploaded_bundle(text: str | bytes) -> UploadedBundle:
    """A proof bundle file (``ledgerctl proof export``); ``BadInput`` when it is not one."""
    bundle = parse_bundle(text)
    return UploadedBundle(
        bundle.entry,
        InclusionDocument(bundle.leaf_index, bundle.inclusion_proof, bundle.checkpoint),
    )


# --- the verdict ----------------------------------------------------------------------------------


def mask_learner_id(learner_id: str) -> str:
    """An APAAR id with all but its last four digits hidden (``•••• •••• 9012``)."""
    if len(learner_id) <= 4:
        return "•" * len(learner_id)
    hidden = "•" * (len(learner_id) - 4) + learner_id[-4:]
    return " ".join(hidden[i : i + 4] for i in range(0, len(hidden), 4))


def judge(evidence: Evidence, trusted: Sequence[NoteVerifier], now: datetime) -> Verdict:
    """The verdict on ``evidence`` for a reader who trusts the checkpoint keys ``trusted``."""
    match evidence:
        case LogEntryEvidence():
            return _judge_log_entry(evidence, trusted, now)
        case UnreadableEvidence(problem=problem):
            return Verdict(
                VerdictKind.UNREADABLE,
                f"This is not something this page can check: {problem}. Open the link you "
                "were given exactly as it is, or upload the file you received.",
            )


class _Refused(Exception):
    def __init__(self, kind: VerdictKind, explanation: str) -> None:
        super().__init__(explanation)
        self.kind = kind
        self.explanation = explanation


_TAMPERED_TEXT = (
    "This record does not match what the Learner Ledger signed: something in it was changed "
    "after it was recorded. Do not rely on it; ask the learner for a fresh link."
)
_UNKNOWN_KEY_TEXT = (
    "This record is signed, but not with the Learner Ledger key this page trusts. It may come "
    "from another or a fake ledger. Do not rely on it."
)


def _open_trusted(
    note: str,
    trusted: Sequence[NoteVerifier],
    checks: _Checks,
    label: str = "signed checkpoint",
) -> TreeCheckpoint:
    bad_signature = False
    for verifier in trusted:
        try:
            checkpoint = open_checkpoint(note, verifier)
        except InvalidNoteSignature:
            bad_signature = True
            continue
        except UnverifiedNote:
            continue
        except MalformedNote as exc:
            checks.failed(label, f"the checkpoint cannot be read: {exc}")
            raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT) from exc
        checks.passed(
            label,
            f"signed by {verifier.name}+{verifier.key_id:08x} (tree of {checkpoint.size} entries)",
        )
        return checkpoint
    if bad_signature:
        checks.failed(label, "the trusted key's signature does not verify")
        raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT)
    keys = ", ".join(f"{v.name}+{v.key_id:08x}" for v in trusted) or "none configured"
    checks.failed(label, f"not signed by a trusted key (trusted: {keys})")
    raise _Refused(VerdictKind.UNKNOWN_KEY, _UNKNOWN_KEY_TEXT)


def _check_entry(entry: BundleEntry, checks: _Checks, where: str) -> dict[str, Any]:
    if entry_hash_of(entry.prev_hash, entry.canonical_json) != entry.entry_hash:
        checks.failed(f"{where} hash", "the entry does not recompute to its entry hash")
        raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT)
    try:
        fields = json.loads(entry.canonical_json)
    except json.JSONDecodeError as exc:
        checks.failed(f"{where} hash", "the entry is not JSON")
        raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT) from exc
    if not isinstance(fields, dict):
        checks.failed(f"{where} hash", "the entry is not a JSON object")
        raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT)
    checks.passed(f"{where} hash", f"SHA-256(prev_hash ‖ entry) = {entry.entry_hash.hex()[:16]}…")
    return fields


def _check_inclusion(
    entry: BundleEntry, inclusion: InclusionDocument, checkpoint: TreeCheckpoint, checks: _Checks
) -> None:
    try:
        verify_inclusion_in(
            checkpoint, inclusion.leaf_index, entry.entry_hash, inclusion.inclusion_proof
        )
    except (InclusionRejected, EntryTampered) as exc:
        checks.failed("inclusion proof", str(exc))
        raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT) from exc
    checks.passed(
        "inclusion proof",
        f"leaf {inclusion.leaf_index} is under the root of the tree of {checkpoint.size} entries",
    )


def _judge_log_entry(
    evidence: LogEntryEvidence, trusted: Sequence[NoteVerifier], now: datetime
) -> Verdict:
    checks = _Checks()
    entry = evidence.entry
    try:
        if evidence.uploaded is not None:
            uploaded = evidence.uploaded
            fields = _check_entry(uploaded.entry, checks, "file's entry")
            sealed = _open_trusted(uploaded.inclusion.checkpoint, trusted, checks)
            _check_inclusion(uploaded.entry, uploaded.inclusion, sealed, checks)
            if entry is not None and entry.entry_hash != uploaded.entry.entry_hash:
                checks.failed("the ledger's copy", "the ledger answered for another entry")
                raise _Refused(VerdictKind.TAMPERED, _TAMPERED_TEXT)
        if entry is None:
            if evidence.uploaded is None:
                return Verdict(
                    VerdictKind.NOT_FOUND,
                    "No credit with this reference is recorded in the Learner Ledger. Check "
                    "that the link is complete, or ask the learner for a new one.",
                    checks=tuple(checks.done),
                )
            checks.failed("the ledger's copy", "the ledger publishes no credit with this hash")
            return _finish(evidence.uploaded.entry, fields, None, sealed, False, checks, now)
        fields = _check_entry(entry, checks, "entry")
        if evidence.inclusion is None:
            checks.failed("inclusion proof", "no signed checkpoint covers this entry yet")
            if fields.get("kind") != "credit_awarded":
                raise _Refused(VerdictKind.NOT_A_CREDIT, _NOT_A_CREDIT_TEXT)
            return Verdict(
                VerdictKind.NOT_YET_SEALED,
                "The ledger has recorded this credit, but it is not yet covered by a signed "
                "checkpoint, so it cannot be proven yet. Check again in a few minutes.",
                facts=_facts(fields, None),
                checks=tuple(checks.done),
                entry_hash=entry.entry_hash.hex(),
            )
        checkpoint = _open_trusted(evidence.inclusion.checkpoint, trusted, checks)
        _check_inclusion(entry, evidence.inclusion, checkpoint, checks)
        in_latest = False
        if evidence.latest_checkpoint is not None:
            latest = _open_trusted(
                evidence.latest_checkpoint, trusted, checks, "latest checkpoint's signature"
            )
            in_latest = latest == checkpoint
            if in_latest:
                checks.passed(
                    "latest checkpoint", f"the proof is against the latest ({latest.size})"
                )
            else:
                checks.failed(
                    "latest checkpoint",
                    f"the proof is against a tree of {checkpoint.size}, the latest has "
                    f"{latest.size}",
                )
        return _finish(entry, fields, evidence.status, checkpoint, in_latest, checks, now)
    except _Refused as refused:
        return Verdict(refused.kind, refused.explanation, checks=tuple(checks.done))


_NOT_A_CREDIT_TEXT = (
    "This is a genuine Learner Ledger record, but not a credit (for example a consent), so "
    "there is nothing to verify here."
)


def _finish(
    entry: BundleEntry,
    fields: Mapping[str, Any],
    status: StatusClaim | None,
    checkpoint: TreeCheckpoint,
    in_latest: bool,
    checks: _Checks,
    now: datetime,
) -> Verdict:
    if fields.get("kind") != "credit_awarded":
        return Verdict(VerdictKind.NOT_A_CREDIT, _NOT_A_CREDIT_TEXT, checks=tuple(checks.done))
    payload = fields.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    issuer = str(payload.get("issuer_id", "the issuer"))
    valid_until = _payload_instant(payload, "valid_until")
    kind, explanation = _status_verdict(issuer, valid_until, status, now)
    return Verdict(
        kind,
        explanation,
        facts=_facts(fields, kind),
        checks=tuple(checks.done),
        in_latest_checkpoint=in_latest,
        entry_hash=entry.entry_hash.hex(),
    )


def _payload_instant(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _day(instant: datetime | None) -> str:
    return "—" if instant is None else instant.strftime("%d %B %Y")


def _status_verdict(
    issuer: str, valid_until: datetime | None, status: StatusClaim | None, now: datetime
) -> tuple[VerdictKind, str]:
    redeemed = status.redeemed_at if status is not None else None
    revoked = status.revoked_at if status is not None else None
    claimed = status.status if status is not None else None
    if redeemed is not None and revoked is not None and redeemed <= revoked <= now:
        return (
            VerdictKind.REVOKED_AFTER_REDEMPTION,
            f"This credit was genuinely issued and was counted toward a programme on "
            f"{_day(redeemed)}; {issuer} withdrew it later, on {_day(revoked)}. The programme "
            "keeps the credit it already counted, but it cannot be used again.",
        )
    if claimed == "redeemed" or (redeemed is not None and redeemed <= now):
        return (
            VerdictKind.REDEEMED,
            f"This credit is genuine and was counted toward a programme on {_day(redeemed)}; "
            "it cannot be counted again.",
        )
    if claimed == "revoked" or (revoked is not None and revoked <= now):
        return (
            VerdictKind.REVOKED,
            f"This credit was genuinely issued, but {issuer} withdrew it on {_day(revoked)}. "
            "It no longer counts.",
        )
    if valid_until is None or valid_until <= now or claimed == "expired":
        return (
            VerdictKind.EXPIRED,
            f"This credit is genuine, but its validity ended on {_day(valid_until)}; it can "
            "no longer be redeemed.",
        )
    suffix = "" if status is not None else " (the ledger's current status could not be read)"
    return (
        VerdictKind.ACTIVE,
        f"This credit was issued by {issuer} and is recorded in the Learner Ledger exactly as "
        f"shown. It is valid until {_day(valid_until)}.{suffix}",
    )


_LIFE_STATUS = {
    VerdictKind.ACTIVE: "active",
    VerdictKind.EXPIRED: "expired",
    VerdictKind.REVOKED: "revoked",
    VerdictKind.REVOKED_AFTER_REDEMPTION: "revoked after redemption",
    VerdictKind.REDEEMED: "redeemed",
}


def _facts(fields: Mapping[str, Any], kind: VerdictKind | None) -> tuple[tuple[str, str], ...]:
    payload = fields.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    credits = payload.get("credits")
    hours = payload.get("notional_hours")
    basis = str(payload.get("hours_basis", "")).upper() or "—"
    rows: list[tuple[str, str]] = [
        ("Learner (APAAR id)", mask_learner_id(str(fields.get("learner_id", "")))),
        ("Issuer", str(payload.get("issuer_id", "—"))),
        ("Course", str(payload.get("course_id", "—"))),
        ("Credits", "—" if credits is None else f"{float(credits):g}"),
        ("NCrF level", str(payload.get("level", "—"))),
        ("Hours basis", f"{hours} notional hours, {basis}" if hours is not None else basis),
        ("Completed", _day(_payload_instant(payload, "completed_at"))),
        ("Valid until", _day(_payload_instant(payload, "valid_until"))),
    ]
    if kind is not None:
        rows.append(("Status now", _LIFE_STATUS.get(kind, "—")))
    return tuple(rows)
