"""The offline verifier: check an exported entry bundle, or two checkpoints, with a trusted key.

Self-contained on purpose: it uses the standard library, ``cryptography`` (Ed25519) and the pure
``merkle``, ``signed_note`` and ``tlog_checkpoint`` modules only, so a third party can run it
with nothing of ours but these four files. The key is always the caller's (a note verifier key
string obtained out of band), never one read from the bundle or the checkpoint.

A **proof bundle** (``BUNDLE_FORMAT``) is one JSON object::

    {
      "format": "learnerledger/proof-bundle/v1",
      "entry": {
        "canonical_json": "<the entry's RFC 8785 JSON, exactly the bytes that were hashed>",
        "prev_hash": "<hex: the previous entry's entry_hash; 64 zeroes for sequence 1>",
        "entry_hash": "<hex: SHA-256(prev_hash || canonical_json)>"
      },
      "leaf_index": <the entry's zero-based place in the log's Merkle tree>,
      "inclusion_proof": ["<base64 hash>", ...],
      "checkpoint": "<the signed C2SP tlog-checkpoint note, verbatim>"
    }

``verify_bundle`` checks, in order: the entry hash recomputes from ``prev_hash`` and the
canonical bytes; the checkpoint is signed by the trusted key; the inclusion proof takes the
Merkle leaf ``SHA-256(0x00 || entry_hash)`` at ``leaf_index`` to the checkpoint's root at its
size. A **consistency proof** (``CONSISTENCY_FORMAT``) is
``{"format": "learnerledger/consistency-proof/v1", "old_size": m, "new_size": n,
"proof": ["<base64 hash>", ...]}``; ``verify_consistency_between`` checks both checkpoints'
signatures and that the older tree is a prefix of the newer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from learnerledger.domain import merkle
from learnerledger.domain.signed_note import (
    InvalidNoteSignature,
    MalformedNote,
    NoteVerifier,
    UnverifiedNote,
)
from learnerledger.domain.tlog_checkpoint import TreeCheckpoint, open_checkpoint

BUNDLE_FORMAT = "learnerledger/proof-bundle/v1"
CONSISTENCY_FORMAT = "learnerledger/consistency-proof/v1"


# --- failures ----------------------------------------------------------------------------------


class ProofRejected(Exception):
    """The input is well-formed, and what it claims is false (exit 1 in ``ledgerctl``)."""


class EntryTampered(ProofRejected):
    """The entry's hash does not recompute from its canonical bytes and ``prev_hash``."""


class InclusionRejected(ProofRejected):
    """The inclusion proof does not put the entry's leaf under the checkpoint's root."""


class LeafIndexOutOfRange(InclusionRejected):
    """The leaf index is not inside the checkpoint's tree."""


class TruncatedProof(InclusionRejected):
    """The proof has another number of hashes than the leaf index and tree size need."""


class WrongRoot(InclusionRejected):
    """The proof leads to another root: a wrong leaf index, or an altered hash or entry."""


class CheckpointNotTrusted(ProofRejected):
    """The checkpoint is not signed by the trusted key (another key's, or a bad signature)."""


class InconsistentCheckpoints(ProofRejected):
    """The older checkpoint's tree is not shown to be a prefix of the newer one's."""


class BadInput(ValueError):
    """The input cannot be read as the format it should be (exit 2 in ``ledgerctl``)."""


class MalformedBundle(BadInput):
    """The bundle or proof file is not the JSON format documented above."""


class MalformedCheckpointNote(BadInput):
    """The checkpoint is not a C2SP signed note with a tlog-checkpoint body."""


# --- the formats ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleEntry:
    canonical_json: str
    prev_hash: bytes
    entry_hash: bytes


@dataclass(frozen=True, slots=True)
class Bundle:
    entry: BundleEntry
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> str:
        document = {
            "format": BUNDLE_FORMAT,
            "entry": {
                "canonical_json": self.entry.canonical_json,
                "prev_hash": self.entry.prev_hash.hex(),
                "entry_hash": self.entry.entry_hash.hex(),
            },
            "leaf_index": self.leaf_index,
            "inclusion_proof": [_b64(h) for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    proof: tuple[bytes, ...]

    def to_json(self) -> str:
        document = {
            "format": CONSISTENCY_FORMAT,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "proof": [_b64(h) for h in self.proof],
        }
        return json.dumps(document, indent=2) + "\n"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _load_object(text: str | bytes, fmt: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedBundle(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedBundle("not a JSON object")
    if document.get("format") != fmt:
        raise MalformedBundle(f"the format is {document.get('format')!r}, not {fmt!r}")
    return document


def _field(document: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedBundle(f"{where}{name} is missing or not a {kind.__name__}")
    return value


def _hex_hash(document: dict[str, Any], name: str, where: str) -> bytes:
    text = _field(document, name, str, where)
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise MalformedBundle(f"{where}{name} is not hex") from exc
    if len(value) != merkle.HASH_SIZE:
        raise MalformedBundle(f"{where}{name} has {len(value)} bytes, not 32")
    return value


def _hash_list(document: dict[str, Any], name: str) -> tuple[bytes, ...]:
    items = _field(document, name, list)
    hashes = []
    for number, item in enumerate(items):
        if not isinstance(item, str):
            raise MalformedBundle(f"{name}[{number}] is not a string")
        try:
            value = base64.b64decode(item.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise MalformedBundle(f"{name}[{number}] is not base64") from exc
        if len(value) != merkle.HASH_SIZE:
            raise MalformedBundle(f"{name}[{number}] is not a base64 32-byte hash")
        hashes.append(value)
    return tuple(hashes)


def parse_bundle(text: str | bytes) -> Bundle:
    """Read a proof bundle (``MalformedBundle`` unless it is the documented format)."""
    document = _load_object(text, BUNDLE_FORMAT)
    entry = _field(document, "entry", dict)
    parsed_entry = BundleEntry(
        canonical_json=_field(entry, "canonical_json", str, "entry."),
        prev_hash=_hex_hash(entry, "prev_hash", "entry."),
        entry_hash=_hex_hash(entry, "entry_hash", "entry."),
    )
    leaf_index = _field(document, "leaf_index", int)
    if leaf_index < 0:
        raise MalformedBundle("leaf_index is negative")
    return Bundle(
        parsed_entry,
        leaf_index,
        _hash_list(document, "inclusion_proof"),
        _field(document, "checkpoint", str),
    )


def parse_consistency_proof(text: str | bytes) -> ConsistencyProof:
    document = _load_object(text, CONSISTENCY_FORMAT)
    old_size, new_size = _field(document, "old_size", int), _field(document, "new_size", int)
    return ConsistencyProof(old_size, new_size, _hash_list(document, "proof"))


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    """What a verified bundle shows: the entry (its parsed canonical JSON), where it is in the
    log, and the checkpoint that covers it."""

    entry: dict[str, Any]
    entry_hash: bytes
    leaf_index: int
    checkpoint: TreeCheckpoint


def entry_hash_of(prev_hash: bytes, canonical_json: str) -> bytes:
    """``SHA-256(prev_hash || canonical_json)`` (the credit log's chain link)."""
    return hashlib.sha256(prev_hash + canonical_json.encode("utf-8")).digest()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise EntryTampered("the entry's canonical JSON repeats a key")
    return dict(pairs)


def open_trusted_checkpoint(
    note: str, verifier: NoteVerifier, *, origin: str | None = None
) -> TreeCheckpoint:
    """The checkpoint in ``note`` if ``verifier`` signed it; typed failures otherwise."""
    try:
        return open_checkpoint(note, verifier, origin=origin)
    except (UnverifiedNote, InvalidNoteSignature) as exc:
        raise CheckpointNotTrusted(str(exc)) from exc
    except MalformedNote as exc:
        raise MalformedCheckpointNote(str(exc)) from exc


def verify_inclusion_in(
    checkpoint: TreeCheckpoint, leaf_index: int, entry_hash: bytes, proof: Sequence[bytes]
) -> None:
    """The entry's leaf is at ``leaf_index`` under ``checkpoint``'s root."""
    size = checkpoint.size
    if not 0 <= leaf_index < size:
        raise LeafIndexOutOfRange(
            f"leaf index {leaf_index} is outside the checkpoint's tree of {size} entries"
        )
    needed = merkle.inclusion_proof_size(leaf_index, size)
    if len(proof) != needed:
        raise TruncatedProof(
            f"the inclusion proof has {len(proof)} hashes; leaf {leaf_index} of a tree of "
            f"{size} needs {needed} (a truncated proof, or the wrong leaf index)"
        )
    leaf = merkle.leaf_hash(entry_hash)
    if merkle.root_from_inclusion_proof(leaf_index, size, leaf, proof) != checkpoint.root_hash:
        raise WrongRoot(
            f"the inclusion proof for leaf {leaf_index} leads to another root than the "
            f"checkpoint's (a wrong leaf index, or an altered proof or entry)"
        )


def verify_bundle(
    bundle: Bundle, verifier: NoteVerifier, *, origin: str | None = None
) -> VerifiedEntry:
    """Check an exported entry against its checkpoint with the caller's key (see module doc)."""
    entry = bundle.entry
    recomputed = entry_hash_of(entry.prev_hash, entry.canonical_json)
    if recomputed != entry.entry_hash:
        raise EntryTampered(
            f"the entry hash does not recompute from its canonical JSON: the bundle says "
            f"{entry.entry_hash.hex()}, SHA-256(prev_hash || canonical_json) is {recomputed.hex()}"
        )
    try:
        fields = json.loads(entry.canonical_json, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise EntryTampered(f"the entry's canonical JSON is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise EntryTampered("the entry's canonical JSON is not an object")
    checkpoint = open_trusted_checkpoint(bundle.checkpoint, verifier, origin=origin)
    verify_inclusion_in(checkpoint, bundle.leaf_index, entry.entry_hash, bundle.inclusion_proof)
    return VerifiedEntry(fields, entry.entry_hash, bundle.leaf_index, checkpoint)


def verify_consistency_between(
    old_note: str,
    new_note: str,
    proof: ConsistencyProof,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
) -> tuple[TreeCheckpoint, TreeCheckpoint]:
    """Both checkpoints are signed by the caller's key, and the old tree is a prefix of the new.

    The proof file's sizes must be the checkpoints' sizes; the roots come from the checkpoints."""
    old = open_trusted_checkpoint(old_note, verifier, origin=origin)
    new = open_trusted_checkpoint(new_note, verifier, origin=origin)
    if old.origin != new.origin:
        raise InconsistentCheckpoints(
            f"the checkpoints are of two logs: {old.origin!r} and {new.origin!r}"
        )
    if (proof.old_size, proof.new_size) != (old.size, new.size):
        raise MalformedBundle(
            f"the proof is for sizes {proof.old_size} -> {proof.new_size}, the checkpoints "
            f"are of sizes {old.size} -> {new.size}"
        )
    if new.size < old.size:
        raise InconsistentCheckpoints(
            f"the newer checkpoint's tree ({new.size} entries) is smaller than the older "
            f"one's ({old.size}): a rollback"
        )
    try:
        merkle.verify_consistency(old.size, new.size, proof.proof, old.root_hash, new.root_hash)
    except merkle.ProofError as exc:
        raise InconsistentCheckpoints(
            f"the tree of {old.size} entries is not shown to be a prefix of the tree of "
            f"{new.size}: {exc}"
        ) from exc
    return old, new
