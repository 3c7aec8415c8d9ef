-- Issuers propose their own courses through the gateway (issue 13): IssuerGatewayService.
-- ProposeCourse inserts the course into the caller's catalog. The gateway's role may insert
-- only these columns: credit_recommendation takes its default, 'pending', so no proposal (and
-- no compromised gateway) can add an approved course; approval stays with admins
-- (LedgerAdminService.ApproveCourse, role ll_admin). No UPDATE or DELETE.
GRANT INSERT (course_id, issuer_id, title, ncrf_level, notional_hours, skills,
              counts_as_course_id, category)
    ON courses TO ll_gateway;
