-- Which signed tree heads the checkpointer has appended to the Kafka topic
-- ledger.checkpoints.v1 (issue 15), recorded after the broker acknowledged them (acks=all), so
-- every head reaches the topic, in order of tree size, even across a crash (then a head may
-- appear twice in a row: the same note, which a witness accepts as unchanged). The cursor of
-- this outbox is the largest tree size recorded for the topic. Append-only.
CREATE TABLE tree_head_publications (
    topic        text NOT NULL,
    tree_size    bigint NOT NULL CHECK (tree_size > 0),
    kafka_offset bigint NOT NULL CHECK (kafka_offset >= 0),
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, tree_size)
);
CREATE TRIGGER tree_head_publications_no_update_delete
    BEFORE UPDATE OR DELETE ON tree_head_publications
    FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER tree_head_publications_no_truncate BEFORE TRUNCATE ON tree_head_publications
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON tree_head_publications FROM PUBLIC;
GRANT SELECT, INSERT ON tree_head_publications TO ll_ledger;
GRANT SELECT ON tree_head_publications TO ll_admin;
