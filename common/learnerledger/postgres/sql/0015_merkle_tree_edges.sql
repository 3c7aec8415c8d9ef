-- The incremental Merkle tree over the credit log (issue 15): the tree's right edge, i.e. the
-- roots of its perfect subtrees (one per set bit of the tree size, the largest first), recorded
-- each time the tree is extended. From the latest edge the tree grows by O(log n) hashing per
-- entry, never from the leaves again (domain.merkle.extend). Append-only, like the log: a
-- tree size, once recorded, keeps its edge; a different edge for it is a fork.
CREATE TABLE merkle_tree_edges (
    tree_size     bigint PRIMARY KEY CHECK (tree_size >= 0),
    subtree_roots bytea[] NOT NULL
        CHECK (cardinality(subtree_roots) = bit_count(tree_size::bit(64))),
    root_hash     bytea NOT NULL CHECK (length(root_hash) = 32),
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER merkle_tree_edges_no_update_delete BEFORE UPDATE OR DELETE ON merkle_tree_edges
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER merkle_tree_edges_no_truncate BEFORE TRUNCATE ON merkle_tree_edges
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON merkle_tree_edges FROM PUBLIC;
GRANT SELECT, INSERT ON merkle_tree_edges TO ll_ledger;
GRANT SELECT ON merkle_tree_edges TO ll_query, ll_admin;
