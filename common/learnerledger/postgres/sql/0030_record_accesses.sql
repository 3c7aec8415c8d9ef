-- Who read my record (issue 16): every read of a learner's record by a university or an admin,
-- written by the query service when it answers. Not part of the credit log (not chained, not
-- replayed) and kept only for QUERY_ACCESS_LOG_RETENTION_DAYS: the query service deletes older
-- rows periodically. Rows are never changed: UPDATE and TRUNCATE are refused; DELETE is the
-- retention's, granted to the query role only.
CREATE TABLE record_accesses (
    access_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    learner_id   text NOT NULL CHECK (learner_id ~ '^[0-9]{12}$'),
    reader_kind  text NOT NULL CHECK (reader_kind IN ('university', 'admin')),
    reader_id    text NOT NULL CHECK (length(reader_id) BETWEEN 1 AND 128),
    method       text NOT NULL CHECK (length(method) BETWEEN 1 AND 64),
    accessed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The learner's listing, newest first (keyset paging on (accessed_at, access_id)).
CREATE INDEX record_accesses_by_learner ON record_accesses (learner_id, accessed_at DESC, access_id DESC);
-- The retention's delete.
CREATE INDEX record_accesses_by_time ON record_accesses (accessed_at);
CREATE TRIGGER record_accesses_no_update BEFORE UPDATE ON record_accesses
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER record_accesses_no_truncate BEFORE TRUNCATE ON record_accesses
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();
GRANT SELECT, INSERT, DELETE ON record_accesses TO ll_query;
