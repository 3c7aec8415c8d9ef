-- API tokens may expire: CreateIssuerToken / CreateUniversityToken take an expire_time, and a
-- token past it is refused (UNAUTHENTICATED) like a revoked one. NULL: it does not expire.
ALTER TABLE api_tokens ADD COLUMN expire_time timestamptz;
