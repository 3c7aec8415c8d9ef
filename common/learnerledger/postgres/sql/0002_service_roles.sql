-- Least privilege for the services. Group roles (NOLOGIN) carry the grants; a service's login
-- role is made a member of one of them (in production by the operator, see OPERATIONS.md;
-- locally the pool does SET ROLE to its service role, see learnerledger.postgres.pool).
-- Roles are cluster-wide, so they are created only when missing.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ll_gateway', 'll_ledger', 'll_query', 'll_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('GRANT %I TO CURRENT_USER', r);
    END LOOP;
END;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;

-- The gateway authenticates partners and reads the catalog and completion outcomes.
GRANT SELECT ON issuers, courses, api_tokens, credit_log, rejections TO ll_gateway;

-- The ledger appends to the log (INSERT and SELECT only) and keeps its bookkeeping.
GRANT SELECT ON issuers, universities, courses TO ll_ledger;
GRANT SELECT, INSERT ON credit_log, checkpoints TO ll_ledger;
GRANT SELECT, INSERT ON rejections TO ll_ledger;
GRANT SELECT, INSERT, UPDATE ON consumer_offsets, relay_progress TO ll_ledger;

-- The query side reads the log and the catalog; it never writes the log.
GRANT SELECT ON credit_log, checkpoints, universities, api_tokens, courses TO ll_query;

-- Administration: catalog, partners, tokens. It reads the log (verify) but cannot change it.
GRANT SELECT, INSERT, UPDATE ON issuers, universities, courses, api_tokens TO ll_admin;
GRANT SELECT ON credit_log, checkpoints, rejections, consumer_offsets, relay_progress TO ll_admin;
