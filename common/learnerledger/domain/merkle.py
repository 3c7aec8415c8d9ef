"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs, pure and small.

The tree over leaves ``d[0..n)`` (RFC 9162 section 2.1.1):

- ``MTH({}) = SHA-256()``, the hash of the empty string;
- a leaf: ``MTH({d}) = SHA-256(0x00 || d)`` (``leaf_hash``);
- ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the largest power of
  two smaller than ``n`` (``node_hash``).

Proof generation (section 2.1.3 and 2.1.4) works on a list of leaf hashes and recomputes
subtrees (a reference for tests and small trees, not the incremental tree the ledger stores).
Verification (sections 2.1.3.2 and 2.1.4.2) follows transparency-dev/merkle's ``proof``
package step for step, so it accepts exactly what that verifier accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or cannot for its shape (sizes, index, lengths)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``n`` leaves given by their leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path ``PATH(index, D[n])`` for leaf ``index`` in the tree of ``leaf_hashes``."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ProofError(f"leaf index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaf_hashes[:k]), root(leaf_hashes[k:])]
    return [*inclusion_proof(index - k, leaf_hashes[k:]), root(leaf_hashes[:k])]


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """``PROOF(size1, D[n])``: the tree of the first ``size1`` leaves is a prefix of this one.

    RFC 9162 defines it for ``0 < size1 <= n`` (empty when ``size1 == n``); a proof from the
    empty tree proves nothing, and ``verify_consistency`` refuses one."""
    n = len(leaf_hashes)
    if not 0 < size1 <= n:
        raise ProofError(f"size {size1} is not between 1 and the tree's size {n}")
    if size1 == n:
        return []
    return _subproof(size1, leaf_hashes, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete=complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], complete=False), root(leaves[:k])]


# --- the incremental tree --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeEdge:
    """The right edge of a tree of ``size`` leaves: the roots of its perfect subtrees.

    A tree of ``size`` leaves splits into one perfect subtree per set bit of ``size`` (the
    largest, leftmost first); ``subtree_roots`` holds their roots in that order. That is all a
    tree needs to grow (``extend``) and to give its root: O(log n) hashes, never the leaves.
    """

    size: int
    subtree_roots: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"a tree size cannot be negative ({self.size})")
        if len(self.subtree_roots) != self.size.bit_count():
            raise ValueError(
                f"a tree of {self.size} leaves has {self.size.bit_count()} perfect subtrees, "
                f"not {len(self.subtree_roots)}"
            )
        if any(len(h) != HASH_SIZE for h in self.subtree_roots):
            raise ValueError(f"every subtree root has {HASH_SIZE} bytes")

    def root(self) -> bytes:
        """The Merkle tree hash (RFC 9162): the subtree roots folded from the right."""
        if not self.subtree_roots:
            return EMPTY_ROOT
        acc = self.subtree_roots[-1]
        for left in reversed(self.subtree_roots[:-1]):
            acc = node_hash(left, acc)
        return acc


EMPTY_EDGE = TreeEdge(0, ())


def extend(edge: TreeEdge, new_leaf_hashes: Iterable[bytes]) -> TreeEdge:
    """The edge of the tree grown by ``new_leaf_hashes`` (leaf hashes, in log order).

    Each leaf costs one hash per trailing one bit of the size before it (amortised under two):
    equal-sized perfect subtrees merge like a binary counter's carries."""
    return extend_recording(edge, new_leaf_hashes)[0]


Node = tuple[int, int]  # (level, index): the perfect subtree over leaves [index·2^level, +2^level)


def extend_recording(
    edge: TreeEdge, new_leaf_hashes: Iterable[bytes]
) -> tuple[TreeEdge, list[tuple[Node, bytes]]]:
    """``extend``, also returning every perfect subtree completed on the way (leaves included),
    with its hash: what a store keeps so that proofs need O(log n) reads (``proof_nodes``)."""
    stack = list(edge.subtree_roots)
    size = edge.size
    completed: list[tuple[Node, bytes]] = []
    for leaf in new_leaf_hashes:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
        node, carry, level = leaf, size, 0
        completed.append(((0, size), leaf))
        while carry & 1:
            node = node_hash(stack.pop(), node)
            carry >>= 1
            level += 1
            completed.append(((level, size >> level), node))
        stack.append(node)
        size += 1
    return TreeEdge(size, tuple(stack)), completed


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees, largest first, whose fold from the right is ``MTH(D[start:end])``
    for a range the RFC 9162 recursion produces (``start`` aligned to the range's split)."""
    nodes: list[Node] = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose tree hashes form ``PATH(index, D[size])``, in proof order."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_proof_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose tree hashes form ``PROOF(size1, D[size2])``, in proof order."""
    if not 0 < size1 <= size2:
        raise ProofError(f"size {size1} is not between 1 and the tree's size {size2}")
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    return ranges[::-1]


def proof_from_nodes(
    ranges: Sequence[tuple[int, int]], node: Callable[[Node], bytes]
) -> list[bytes]:
    """The proof hashes for ``ranges``, each folded from the stored perfect subtrees ``node``
    returns: at most two per level, so O(log n) reads for any proof."""
    proof = []
    for start, end in ranges:
        hashes = [node(n) for n in range_nodes(start, end)]
        acc = hashes[-1]
        for left in reversed(hashes[:-1]):
            acc = node_hash(left, acc)
        proof.append(acc)
    return proof


# --- verification -------------------------------------------------------------------------------


def _inner_proof_size(index: int, size: int) -> int:
    return (index ^ (size - 1)).bit_length()


def _decompose(index: int, size: int) -> tuple[int, int]:
    """How many proof hashes are inner (below the split) and how many on the right border."""
    inner = _inner_proof_size(index, size)
    border = bin(index >> inner).count("1")
    return inner, border


def inclusion_proof_size(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf ``index`` in a tree of ``size`` has."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    inner, border = _decompose(index, size)
    return inner + border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        seed = node_hash(seed, sibling) if (index >> i) & 1 == 0 else node_hash(sibling, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index`` of a tree of ``size``."""
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash has {len(leaf)} bytes, not {HASH_SIZE}")
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"the proof has {len(proof)} hashes, not {inner + border}")
    return _chain_border_right(_chain_inner(leaf, proof[:inner], index), proof[inner:])


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf hash ``leaf`` at ``index`` under
    ``expected_root`` of a tree of ``size`` leaves."""
    if root_from_inclusion_proof(index, size, leaf, proof) != expected_root:
        raise ProofError("the inclusion proof leads to another root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows that the tree of ``size1`` leaves with root
    ``root1`` is a prefix of the tree of ``size2`` leaves with root ``root2``."""
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) is smaller than size1 ({size1})")
    if size1 <= 0:  # RFC 9162 defines PROOF(m, D[n]) for 0 < m only
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("the sizes are equal but the proof is not empty")
        if root1 != root2:
            raise ProofError("the sizes are equal but the roots differ")
        return
    if not proof:
        raise ProofError("the proof is empty")
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    seed, start = proof[0], 1
    if size1 == 1 << shift:  # size1 is itself a complete subtree: root1 is the seed
        seed, start = root1, 0
    if len(proof) != start + inner + border:
        raise ProofError(f"the proof has {len(proof)} hashes, not {start + inner + border}")
    path = proof[start:]
    mask = (size1 - 1) >> shift
    first = _chain_border_right(_chain_inner_right(seed, path[:inner], mask), path[inner:])
    if first != root1:
        raise ProofError("the proof does not lead to the first root")
    second = _chain_border_right(_chain_inner(seed, path[:inner], mask), path[inner:])
    if second != root2:
        raise ProofError("the proof does not lead to the second root")
