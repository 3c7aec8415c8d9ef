"""RFC 9162 Merkle hashing and proofs (domain/merkle.py) against the transparency-dev vectors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnerledger.domain.merkle import (
    EMPTY_EDGE,
    EMPTY_ROOT,
    ProofError,
    TreeEdge,
    consistency_proof,
    consistency_proof_ranges,
    extend,
    extend_recording,
    inclusion_proof,
    inclusion_proof_ranges,
    leaf_hash,
    proof_from_nodes,
    root,
    verify_consistency,
    verify_inclusion,
)

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO.parent / "shared" / "standards" / "merkle-testdata"

# The leaves of transparency-dev/merkle's (and RFC 6962's) reference tree of 8 entries.
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip


def vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json")) if VECTORS.is_dir() else []


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def proof_of(vector: dict[str, Any]) -> list[bytes]:
    return [b64(h) for h in vector["proof"] or []]


def accepted(verify: Callable[..., None], *args: Any) -> bool:
    """True if ``verify(*args)`` accepts (returns), False if it raises ProofError."""
    try:
        verify(*args)
    except ProofError:
        return False
    return True


needs_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"standards data not found at {VECTORS} (../shared/standards)"
)


@needs_vectors
@pytest.mark.parametrize(
    "path", vector_files("inclusion"), ids=lambda p: str(p.relative_to(VECTORS))
)
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    ok = accepted(
        verify_inclusion,
        v["leafIdx"],
        v["treeSize"],
        b64(v["leafHash"]),
        proof_of(v),
        b64(v["root"]),
    )
    assert ok is not v["wantErr"], v["desc"]


@needs_vectors
@pytest.mark.parametrize(
    "path", vector_files("consistency"), ids=lambda p: str(p.relative_to(VECTORS))
)
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    ok = accepted(
        verify_consistency, v["size1"], v["size2"], proof_of(v), b64(v["root1"]), b64(v["root2"])
    )
    assert ok is not v["wantErr"], v["desc"]


@needs_vectors
def test_every_vector_directory_is_read() -> None:
    assert len(vector_files("inclusion")) + len(vector_files("consistency")) == 196


@needs_vectors
def test_generated_proofs_equal_the_vectors_happy_paths() -> None:
    leaves = [leaf_hash(d) for d in REFERENCE_LEAVES]
    inclusion = json.loads((VECTORS / "inclusion" / "1" / "happy-path.json").read_text())
    assert root(leaves[: inclusion["treeSize"]]) == b64(inclusion["root"])
    assert leaves[inclusion["leafIdx"]] == b64(inclusion["leafHash"])
    assert inclusion_proof(inclusion["leafIdx"], leaves[: inclusion["treeSize"]]) == proof_of(
        inclusion
    )
    consistency = json.loads((VECTORS / "consistency" / "1" / "happy-path.json").read_text())
    assert consistency_proof(consistency["size1"], leaves[: consistency["size2"]]) == proof_of(
        consistency
    )


def test_empty_tree_and_prefixes() -> None:
    assert root([]) == EMPTY_ROOT
    assert leaf_hash(b"") == base64.b64decode("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=")
    assert root([leaf_hash(b"x")]) == leaf_hash(b"x")


@pytest.mark.parametrize("size", range(1, 18))
def test_every_generated_proof_verifies_and_a_tampered_one_does_not(size: int) -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(size)]
    tree_root = root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        verify_inclusion(index, size, leaves[index], proof, tree_root)
        assert not accepted(verify_inclusion, index, size, leaf_hash(b"other"), proof, tree_root)
        if proof:
            assert not accepted(  # a truncated proof
                verify_inclusion, index, size, leaves[index], proof[:-1], tree_root
            )
        if size > 1:
            wrong = (index + 1) % size
            assert not accepted(verify_inclusion, wrong, size, leaves[index], proof, tree_root)
    for size1 in range(1, size + 1):
        proof = consistency_proof(size1, leaves)
        verify_consistency(size1, size, proof, root(leaves[:size1]), tree_root)
        forked = [*leaves[: size1 - 1], leaf_hash(b"rewritten")]
        assert not accepted(verify_consistency, size1, size, proof, root(forked), tree_root)


def test_proof_requests_outside_the_tree_are_refused() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(4)]
    with pytest.raises(ProofError):
        inclusion_proof(4, leaves)
    with pytest.raises(ProofError):
        consistency_proof(0, leaves)
    with pytest.raises(ProofError):
        consistency_proof(5, leaves)


# --- the incremental tree ------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_extending_the_edge_in_random_chunks_gives_the_root_of_all_leaves(
    chunks: list[int], seed: int
) -> None:
    leaves = [leaf_hash(seed.to_bytes(8, "big") + n.to_bytes(4, "big")) for n in range(sum(chunks))]
    edge, done = EMPTY_EDGE, 0
    for chunk in chunks:
        edge = extend(edge, leaves[done : done + chunk])
        done += chunk
        assert edge.size == done
        assert edge.root() == root(leaves[:done])


def test_the_edge_holds_one_subtree_root_per_set_bit_of_the_size() -> None:
    leaves = [leaf_hash(data) for data in REFERENCE_LEAVES[:7]]
    edge = extend(EMPTY_EDGE, leaves)
    assert edge.subtree_roots == (root(leaves[:4]), root(leaves[4:6]), leaves[6])
    assert EMPTY_EDGE.root() == EMPTY_ROOT
    with pytest.raises(ValueError, match="3 perfect subtrees, not 2"):
        TreeEdge(7, edge.subtree_roots[:2])


@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8), st.data())
@settings(max_examples=60, deadline=None)
def test_proofs_from_the_stored_nodes_equal_the_reference_proofs(
    chunks: list[int], data: st.DataObject
) -> None:
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(sum(chunks))]
    stored: dict[tuple[int, int], bytes] = {}
    edge, done = EMPTY_EDGE, 0
    for chunk in chunks:
        edge, completed = extend_recording(edge, leaves[done : done + chunk])
        stored.update(completed)
        done += chunk
    size = data.draw(st.integers(1, done), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old size")
    tree = leaves[:size]
    reads: list[tuple[int, int]] = []

    def node(n: tuple[int, int]) -> bytes:
        reads.append(n)
        return stored[n]

    assert proof_from_nodes(inclusion_proof_ranges(index, size), node) == inclusion_proof(
        index, tree
    )
    assert proof_from_nodes(consistency_proof_ranges(old, size), node) == consistency_proof(
        old, tree
    )
    assert len(reads) <= 4 * size.bit_length()


def test_the_stored_nodes_are_every_perfect_subtree() -> None:
    leaves = [leaf_hash(data) for data in REFERENCE_LEAVES[:5]]
    _, completed = extend_recording(EMPTY_EDGE, leaves)
    assert dict(completed) == {
        **{(0, i): leaves[i] for i in range(5)},
        (1, 0): root(leaves[0:2]),
        (1, 1): root(leaves[2:4]),
        (2, 0): root(leaves[0:4]),
    }
