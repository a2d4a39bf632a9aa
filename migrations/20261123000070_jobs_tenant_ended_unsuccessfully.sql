-- no-transaction
-- `GET /api/jobs?status=dead` (or cancelled) walked the tenant's whole history to find the few
-- jobs that failed: the only tenant index is (tenant_id, id), and these rows are rare among the
-- succeeded ones. This index holds exactly the dead and cancelled rows, per tenant, newest
-- first, so such a page is one index range. It takes over from `jobs_ended_unsuccessfully`
-- (dropped by the next migration), which /metrics read only as a bitmap through its predicate,
-- the same predicate as here, so those counts stay as cheap. Like it, the hot path (insert,
-- start, success) never writes to it.
--
-- Built CONCURRENTLY (hence outside a transaction, and alone in its file) so that upgrading a
-- ledger of millions of rows does not hold up submits and workers while the table is read.
-- Should the build fail, Postgres leaves an invalid index behind: drop it
-- (`DROP INDEX jobs_tenant_ended_unsuccessfully`) and run `keel migrate` again.
CREATE INDEX CONCURRENTLY jobs_tenant_ended_unsuccessfully ON jobs (tenant_id, status, id DESC)
    WHERE status IN ('dead', 'cancelled');
