"""PostgreSQL adapter: connection pools, the migration runner and the credit-log repository."""
