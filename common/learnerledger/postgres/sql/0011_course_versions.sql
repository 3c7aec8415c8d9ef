-- A course credited once per learner (DESIGN.md "Credit rules"). An issuer that offers a course
-- in versions names, on each version, the course it counts as; a learner earns credit once for
-- the course and all its versions. NULL: the course counts as itself.
ALTER TABLE courses
    ADD COLUMN counts_as_course_id text REFERENCES courses
        CHECK (counts_as_course_id <> course_id);
CREATE INDEX courses_by_counts_as ON courses (counts_as_course_id)
    WHERE counts_as_course_id IS NOT NULL;
-- Credit held by a learner, looked up per course when a completion is decided.
CREATE INDEX credit_log_credit_by_course ON credit_log (learner_id, (payload->>'course_id'))
    WHERE kind = 'credit_awarded';
