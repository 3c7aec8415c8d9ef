-- The Merkle tree wired to the credit log (issue 15). The checkpointer appends the entries not
-- yet in the tree in commit-safe order ((tx_id, position) below pg_snapshot_xmin, as the relay
-- reads) and records which entry is which leaf: the leaf of entry `position` is
-- SHA-256(0x00 || entry_hash) at `leaf_index`. The tree's cursor is its last leaf's entry.
CREATE TABLE merkle_tree_leaves (
    leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
    position   bigint NOT NULL UNIQUE REFERENCES credit_log (position)
);
CREATE TRIGGER merkle_tree_leaves_no_update_delete BEFORE UPDATE OR DELETE ON merkle_tree_leaves
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER merkle_tree_leaves_no_truncate BEFORE TRUNCATE ON merkle_tree_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

-- Signed tree heads: C2SP tlog-checkpoint notes (origin, tree size, base64 root, Ed25519 note
-- signature), each signed only after a consistency proof from the stored nodes showed that
-- its tree extends the previous head's. Append-only; `note` is the exact signed text served.
CREATE TABLE tree_heads (
    tree_size bigint PRIMARY KEY CHECK (tree_size > 0),
    root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
    note      text NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tree_heads_no_update_delete BEFORE UPDATE OR DELETE ON tree_heads
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER tree_heads_no_truncate BEFORE TRUNCATE ON tree_heads
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON merkle_tree_leaves, tree_heads FROM PUBLIC;
GRANT SELECT, INSERT ON merkle_tree_leaves, tree_heads TO ll_ledger;
GRANT SELECT ON merkle_tree_leaves, tree_heads TO ll_query, ll_admin;
