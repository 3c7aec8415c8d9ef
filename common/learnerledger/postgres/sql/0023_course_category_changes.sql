-- Course categories set after the fact (issue 14): courses added before categories existed are
-- university courses (0020's default) until an admin says otherwise. courses.category holds the
-- category in force; every change is kept here (append-only) with its time and reason. The
-- ledger decides a redemption with the category in force when it decides; a decided redemption
-- keeps the category it was decided with (redeemed_credentials.category, the entry's lines).
CREATE TABLE course_category_changes (
    change_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id    text NOT NULL REFERENCES courses (course_id),
    category     text NOT NULL
        CHECK (category IN ('swayam_mooc', 'micro_credential', 'university_course', 'skilling')),
    previous     text NOT NULL,
    reason       text NOT NULL DEFAULT '' CHECK (length(reason) <= 1000),
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX course_category_changes_by_course ON course_category_changes (course_id, change_id);
CREATE TRIGGER course_category_changes_no_update_delete BEFORE UPDATE OR DELETE
    ON course_category_changes FOR EACH ROW EXECUTE FUNCTION credit_log_is_append_only();
CREATE TRIGGER course_category_changes_no_truncate BEFORE TRUNCATE ON course_category_changes
    FOR EACH STATEMENT EXECUTE FUNCTION credit_log_is_append_only();

REVOKE ALL ON course_category_changes FROM PUBLIC;
GRANT SELECT, INSERT ON course_category_changes TO ll_admin;
