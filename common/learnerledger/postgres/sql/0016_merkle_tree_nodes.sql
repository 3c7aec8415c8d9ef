-- The Merkle tree's stored nodes (issue 15): the hash of every perfect subtree, leaves included,
-- written as the tree grows (domain.merkle.extend_recording). Any inclusion or consistency
-- proof is folded from O(log n) of them (domain.merkle.proof_from_nodes), never recomputed from
-- the leaves. About two rows per entry. Append-only: a node, once written, never changes.
CREATE TABLE merkle_tree_nodes (
    level      smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    node_index bigint NOT NULL CHECK (node_index >= 0),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);
CREATE TRIGGER merkle_tree_nodes_no_update_delete BEFORE UPDATE OR DELETE ON merkle_tree_nodes
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER merkle_tree_nodes_no_truncate BEFORE TRUNCATE ON merkle_tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON merkle_tree_nodes FROM PUBLIC;
GRANT SELECT, INSERT ON merkle_tree_nodes TO ll_ledger;
GRANT SELECT ON merkle_tree_nodes TO ll_query, ll_admin;
