-- /metrics counts the ledger's jobs by kind and status on every scrape, from every API process.
-- Counting every status scanned the whole table each time (66 ms at 200,000 rows on a 2-core
-- machine, both cores busy; seconds at the millions a retention window holds). Every status
-- but `succeeded` is now counted through a partial index: `jobs_waiting` (queued, failed),
-- `jobs_leased` (running) and this one (dead, cancelled), each as small as the jobs in those
-- states (1 ms at 200,000 rows). Rows enter it only when a job ends dead or cancelled, so the
-- hot path (insert, start, success) never writes to it.
CREATE INDEX jobs_ended_unsuccessfully ON jobs (kind) WHERE status IN ('dead', 'cancelled');
