-- No login owns anything (issue 12, item 4). Until now the login that ran the migrations
-- owned every table, so anyone with that password could `ALTER TABLE credit_log DISABLE
-- TRIGGER USER`, replace credit_log_is_append_only() or drop the triggers.
--
-- * ll_owner (NOLOGIN) owns every table, sequence and function of the schema. The migration
--   login (ll_migrator) is a member of it; no service login is. The migration runner hands
--   whatever a later migration creates over to ll_owner in the same transaction
--   (learnerledger.postgres.migrations), so this stays true for future objects.
-- * ll_read_model_owner (NOLOGIN) owns only the derived read model (read_transcripts,
--   read_credentials, read_model_replays): a rebuild (`ledgerctl replay projections`,
--   StartReplay) swaps those tables, which only their owner may do. It is granted to ll_admin
--   and reads the log; the rebuild does SET ROLE to it. The log and the checkpoints stay
--   out of its reach.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ll_owner', 'll_read_model_owner'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;
END;
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO ll_owner, ll_read_model_owner;

ALTER TABLE read_transcripts OWNER TO ll_read_model_owner;
ALTER TABLE read_credentials OWNER TO ll_read_model_owner;
ALTER TABLE read_model_replays OWNER TO ll_read_model_owner;
GRANT SELECT ON credit_log TO ll_read_model_owner;
DO $$
BEGIN
    -- A rebuild creates its build schema (CREATE SCHEMA needs CREATE on the database).
    EXECUTE format('GRANT CREATE ON DATABASE %I TO ll_read_model_owner', current_database());
END;
$$;
GRANT ll_read_model_owner TO ll_admin;

-- Everything else the migration login owns goes to ll_owner: the runner does this after
-- every migration, this one included (see migrations.HAND_OVER_TO_OWNER).
