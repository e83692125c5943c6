-- The progress a running job last reported through the `jobs` import:
-- {"percent": 0-100, "message": "...", "at": timestamp}. Kept after the
-- job finishes, cleared when it is retried by hand.
alter table spool.jobs add column progress jsonb;
