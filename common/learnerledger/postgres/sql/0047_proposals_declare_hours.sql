-- An issuer's proposed course declares its hours per component and basis like one an admin
-- creates (0040): the gateway's role may insert those columns too. credit_recommendation stays
-- out of its grant (0046): a proposal is always pending.
GRANT INSERT (hours_basis, theory_hours, practical_hours, experiential_hours)
    ON courses TO ll_gateway;
