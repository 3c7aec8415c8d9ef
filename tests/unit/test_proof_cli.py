"""``ledgerctl proof verify`` and ``ledgerctl proof consistency`` as a third party runs them:
a subprocess on files, no database or Kafka, the log's verifier key given on the command line."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from learnerledger.domain.signed_note import NoteSigner
from tests.support.cli import ledgerctl
from tests.support.domain import (
    ORIGIN,
    credit_log,
    log_consistency_proof,
    proof_bundle,
    signed_tree_checkpoint,
)

LOG = credit_log(10)
KEY = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
VKEY = KEY.verifier.verifier_key()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # No settings are needed: the command must work without DATABASE_URL or Kafka.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    return ledgerctl(env, "proof", *args, timeout=60)


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    path = tmp_path / "entry.json"
    path.write_text(proof_bundle(LOG, 6, KEY).to_json())
    return path


def test_verify_accepts_an_exported_bundle(bundle_file: Path, tmp_path: Path) -> None:
    result = run("verify", str(bundle_file), "--key", VKEY, "--origin", ORIGIN)
    assert result.returncode == 0, result.stderr
    entry = LOG[6]
    assert f"verified: entry {entry.learner_id}/{entry.sequence}" in result.stdout
    assert f"is leaf 6 of the log '{ORIGIN}' at tree size 10" in result.stdout
    # the key may also come from a file
    key_file = tmp_path / "log.vkey"
    key_file.write_text(VKEY + "\n")
    assert run("verify", str(bundle_file), "--key", f"@{key_file}").returncode == 0


def test_verify_refuses_a_tampered_entry_with_exit_1(tmp_path: Path) -> None:
    document = json.loads(proof_bundle(LOG, 6, KEY).to_json())
    document["entry"]["canonical_json"] = document["entry"]["canonical_json"].replace(
        '"credits":', '"credits":1', 1
    )
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(document))
    result = run("verify", str(path), "--key", VKEY)
    assert result.returncode == 1
    assert "REJECTED (EntryTampered)" in result.stderr


def test_verify_refuses_a_wrong_leaf_index_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "moved.json"
    path.write_text(replace(proof_bundle(LOG, 6, KEY), leaf_index=7).to_json())
    result = run("verify", str(path), "--key", VKEY)
    assert result.returncode == 1
    assert "REJECTED (WrongRoot)" in result.stderr


def test_verify_refuses_a_truncated_proof_with_exit_1(tmp_path: Path) -> None:
    bundle = proof_bundle(LOG, 6, KEY)
    path = tmp_path / "truncated.json"
    path.write_text(replace(bundle, inclusion_proof=bundle.inclusion_proof[:-1]).to_json())
    result = run("verify", str(path), "--key", VKEY)
    assert result.returncode == 1
    assert "REJECTED (TruncatedProof)" in result.stderr


def test_verify_refuses_a_checkpoint_signed_by_another_key_with_exit_1(
    bundle_file: Path,
) -> None:
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier.verifier_key()
    result = run("verify", str(bundle_file), "--key", other)
    assert result.returncode == 1
    assert "REJECTED (CheckpointNotTrusted)" in result.stderr
    assert "not signed by" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json", "--key", VKEY], "cannot read the bundle"),
        (["{bundle}", "--key", "not-a-key"], "--key: a verifier key is"),
        (["{garbage}", "--key", VKEY], "not JSON"),
    ],
)
def test_verify_reports_unreadable_input_with_exit_2(
    bundle_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{")
    args = [a.format(bundle=bundle_file, garbage=garbage) for a in args]
    result = run("verify", *args)
    assert result.returncode == 2
    assert "bad input" in result.stderr
    assert message in result.stderr


def write_consistency_case(tmp_path: Path, old: int, new: int) -> list[str]:
    paths = []
    for name, content in (
        ("old.checkpoint", signed_tree_checkpoint(LOG, old, KEY)),
        ("new.checkpoint", signed_tree_checkpoint(LOG, new, KEY)),
        ("proof.json", log_consistency_proof(LOG, old, new).to_json()),
    ):
        (tmp_path / name).write_text(content)
        paths.append(str(tmp_path / name))
    return paths


def test_consistency_accepts_a_growing_log(tmp_path: Path) -> None:
    result = run("consistency", *write_consistency_case(tmp_path, 3, 10), "--key", VKEY)
    assert result.returncode == 0, result.stderr
    assert f"consistent: the log '{ORIGIN}' at tree size 10 extends its tree at size 3" in (
        result.stdout
    )


def test_consistency_refuses_a_forked_history_with_exit_1(tmp_path: Path) -> None:
    old, new, proof = write_consistency_case(tmp_path, 3, 10)
    forked = list(reversed(LOG))  # same size, another history, signed with the real key
    Path(new).write_text(signed_tree_checkpoint(forked, 10, KEY))
    result = run("consistency", old, new, proof, "--key", VKEY)
    assert result.returncode == 1
    assert "REJECTED (InconsistentCheckpoints)" in result.stderr


def test_vkey_turns_the_published_public_key_into_the_verifier_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    public_hex = KEY.verifier.public_key.hex()
    result = run("vkey", "--name", ORIGIN, "--public-key", public_hex)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == VKEY
    seed = KEY.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key_file = tmp_path / "signing.key"
    key_file.write_text(seed.hex() + "\n")
    from_file = run("vkey", "--name", ORIGIN, "--signing-key-file", str(key_file))
    assert from_file.stdout.strip() == VKEY
    bad = run("vkey", "--name", "has space", "--public-key", public_hex)
    assert bad.returncode == 2
    assert "not a valid key name" in bad.stderr
