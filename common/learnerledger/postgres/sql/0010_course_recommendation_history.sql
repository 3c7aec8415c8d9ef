-- The catalog's history of credit recommendations (DESIGN.md "Credit rules": a completion is
-- decided on the catalog as it was at completed_at). Every approval and withdrawal is a new row
-- with the time it takes effect (an admin may backdate, with a reason) and the time it was
-- recorded; rows are never updated or deleted. courses.credit_recommendation stays as the
-- state in force now, a convenience for listing; the ledger decides on this table.
CREATE TABLE course_recommendation_changes (
    change_id     uuid PRIMARY KEY,
    course_id     text NOT NULL REFERENCES courses,
    state         text NOT NULL CHECK (state IN ('pending', 'approved', 'withdrawn')),
    effective_at  timestamptz NOT NULL,
    reason        text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX course_recommendation_changes_by_course
    ON course_recommendation_changes (course_id, effective_at, recorded_at);

CREATE FUNCTION course_recommendation_changes_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'course_recommendation_changes is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER course_recommendation_changes_no_update_delete
    BEFORE UPDATE OR DELETE ON course_recommendation_changes
    FOR EACH ROW EXECUTE FUNCTION course_recommendation_changes_are_append_only();
CREATE TRIGGER course_recommendation_changes_no_truncate
    BEFORE TRUNCATE ON course_recommendation_changes
    FOR EACH STATEMENT EXECUTE FUNCTION course_recommendation_changes_are_append_only();

-- Approvals whose re-decision requests the ledger has published (one CreditRedecisionRequested
-- per learner holding a completion of the course recorded without credit). An approval without
-- a row here is fanned out (again) by the ledger; the requests are idempotent, so publishing
-- twice after a crash between publishing and this insert credits nothing twice.
CREATE TABLE course_redecision_fanouts (
    change_id      uuid PRIMARY KEY REFERENCES course_recommendation_changes,
    learners       integer NOT NULL CHECK (learners >= 0),
    fanned_out_at  timestamptz NOT NULL DEFAULT now()
);

-- Courses approved or withdrawn before this history existed: their state is taken to have held
-- since the course was created (approved) or since its last change (withdrawn).
INSERT INTO course_recommendation_changes (change_id, course_id, state, effective_at, reason,
                                           recorded_at)
SELECT gen_random_uuid(), course_id, 'approved', created_at,
       'state before the recommendation history existed', created_at
  FROM courses WHERE credit_recommendation IN ('approved', 'withdrawn');
INSERT INTO course_recommendation_changes (change_id, course_id, state, effective_at, reason,
                                           recorded_at)
SELECT gen_random_uuid(), course_id, 'withdrawn', updated_at,
       'state before the recommendation history existed', updated_at
  FROM courses WHERE credit_recommendation = 'withdrawn';

-- Their completions were decided before this history existed; they are not re-decided.
INSERT INTO course_redecision_fanouts (change_id, learners)
SELECT change_id, 0 FROM course_recommendation_changes;

GRANT SELECT, INSERT ON course_redecision_fanouts TO ll_ledger;
GRANT SELECT ON course_redecision_fanouts TO ll_admin;
GRANT SELECT ON course_recommendation_changes TO ll_gateway, ll_ledger, ll_query;
GRANT SELECT, INSERT ON course_recommendation_changes TO ll_admin;
