-- A dedupe-keyed job asked for again while it runs: the running attempt may already have read
-- its input, so instead of folding the new request into it, `complete` queues the job once
-- more (see crates/store/src/jobs.rs).
ALTER TABLE jobs ADD COLUMN rerun_requested INTEGER NOT NULL DEFAULT 0;
