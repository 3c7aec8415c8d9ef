-- Finding an entry by its hash (issue 15): the query service's public HTTP API serves an
-- inclusion proof for an entry_hash (as Certificate Transparency's get-proof-by-hash), so that a
-- third party who holds an entry can prove it without naming the learner. A hash index: equality
-- only, about half the size of a B-tree on 32-byte keys.
CREATE INDEX credit_log_by_entry_hash ON credit_log USING hash (entry_hash);
