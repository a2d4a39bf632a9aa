-- The scheduler's exactly-once ledger: one row per (task, tick) ever enqueued. Every scheduler
-- replica computes the same due ticks; the primary key lets exactly one of them record a tick,
-- and the job is inserted in that same transaction, so a replica that loses the race enqueues
-- nothing and a crash between "record" and "enqueue" cannot happen.
CREATE TABLE schedule_runs (
    task        text NOT NULL,
    tick        timestamptz NOT NULL,
    -- The job the tick enqueued. SET NULL: housekeeping deletes old finished jobs, but the tick
    -- record must stay (it is what stops the tick from running again). DEFERRABLE INITIALLY
    -- DEFERRED: the tick is recorded *first* (taking the primary-key lock that decides the race)
    -- with the id of a job inserted right after it, in the same transaction.
    job_id      uuid REFERENCES jobs (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task, tick)
);
-- Deleting a job must find the runs that point at it without scanning the table.
CREATE INDEX schedule_runs_job ON schedule_runs (job_id) WHERE job_id IS NOT NULL;
