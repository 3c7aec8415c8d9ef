-- Hours basis and levels (issue 13).
--
-- A course declares its hours per component (theory, practical, experiential) and the basis
-- that turns them into credits: NCrF (30 notional hours per credit, whatever the component) or
-- NHEQF (15 h theory, 30 h practical, 45 h experiential per credit). Existing courses declared
-- only a total: they stay NCrF with all components 0 (the domain's Course says the same).
ALTER TABLE courses
    ADD COLUMN hours_basis text NOT NULL DEFAULT 'ncrf'
        CONSTRAINT courses_hours_basis_check CHECK (hours_basis IN ('ncrf', 'nheqf')),
    ADD COLUMN theory_hours integer NOT NULL DEFAULT 0
        CONSTRAINT courses_theory_hours_check CHECK (theory_hours >= 0),
    ADD COLUMN practical_hours integer NOT NULL DEFAULT 0
        CONSTRAINT courses_practical_hours_check CHECK (practical_hours >= 0),
    ADD COLUMN experiential_hours integer NOT NULL DEFAULT 0
        CONSTRAINT courses_experiential_hours_check CHECK (experiential_hours >= 0),
    -- Components, when declared, add up to the total; NHEQF needs them.
    ADD CONSTRAINT courses_hours_components_check CHECK (
        (theory_hours + practical_hours + experiential_hours = 0 AND hours_basis = 'ncrf')
        OR theory_hours + practical_hours + experiential_hours = notional_hours);

-- Levels: NCrF runs from 1 to 8 in half steps. Skilling (NSQF) courses may take any of them;
-- every other course one of the higher-education levels 4.5, 5, 5.5, 6, 6.5, 7, 8
-- (learnerledger.domain.catalog.levels_for).
ALTER TABLE courses DROP CONSTRAINT courses_ncrf_level_check;
ALTER TABLE courses ADD CONSTRAINT courses_ncrf_level_check CHECK (
    ncrf_level IN (4.5, 5, 5.5, 6, 6.5, 7, 8)
    OR (category = 'skilling' AND ncrf_level BETWEEN 1 AND 8 AND ncrf_level * 2 = trunc(ncrf_level * 2)));
