-- A job row is updated several times in its short life (dispatch, start, finish), and every
-- status change leaves a dead tuple plus dead index entries. At thousands of jobs per second
-- the default autovacuum (20% of the table) runs far too rarely and index scans wade through
-- dead entries, so queue tables are vacuumed on a fixed, small threshold instead.
-- fillfactor leaves room on each page so updates of unindexed columns (dispatched_at, progress,
-- lease_until heartbeats) can stay HOT.
ALTER TABLE jobs SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
