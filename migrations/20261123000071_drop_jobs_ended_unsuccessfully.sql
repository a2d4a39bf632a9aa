-- no-transaction
-- Replaced by `jobs_tenant_ended_unsuccessfully` (the previous migration), which has the same
-- predicate. Dropped CONCURRENTLY so the drop waits for running queries instead of blocking
-- new ones behind it.
DROP INDEX CONCURRENTLY IF EXISTS jobs_ended_unsuccessfully;
