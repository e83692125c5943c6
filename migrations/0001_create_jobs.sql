-- Jobs: one row per job, from enqueue until it is pruned.
--
-- Every row belongs to a tenant. `seq` is the internal key the claim path
-- and foreign keys use; `id` is the public id, unique within a tenant: the
-- caller's `job_id` when one was given, a generated UUID otherwise.
--
-- State machine (transitions live in host/src/queue/):
--   scheduled -> available           run_at reached (maintenance scheduler)
--   available -> running             claimed by a worker
--   running   -> completed           the component returned a result
--   running   -> retryable           an attempt failed and attempts remain
--   running   -> discarded           attempts exhausted or a permanent error
--   running   -> cancelled           the component or an operator cancelled
--   retryable -> available           backoff elapsed (maintenance scheduler)
--   scheduled, available, retryable -> cancelled   cancelled before running
--   retryable, discarded, cancelled -> available   manual retry
create table spool.jobs (
    seq bigint generated always as identity,
    tenant text not null,
    id text not null,
    kind text not null,
    queue text not null,
    state text not null,
    -- 0 runs first, 9 last.
    priority smallint not null,
    params jsonb not null,
    -- The JSON the component returned; set when the job completes.
    result jsonb,
    -- One object per failed attempt: {"attempt", "at", "error"} and, when
    -- the guest logged before failing, "log" with its last lines.
    errors jsonb not null default '[]',
    -- Attempts started so far; the running attempt's number while running.
    attempt integer not null default 0,
    max_attempts integer not null,
    -- When the job may run next: the requested time, or the end of a backoff.
    run_at timestamptz not null,
    created_at timestamptz not null default now(),
    -- When the latest attempt started.
    attempted_at timestamptz,
    -- When the job reached completed, discarded or cancelled.
    finalized_at timestamptz,
    -- The worker running the job, and until when its claim holds. A running
    -- job whose lease has passed is rescued by maintenance.
    worker_id text,
    leased_until timestamptz,
    -- Set when a running job is asked to stop; its worker interrupts it.
    cancel_requested_at timestamptz,

    constraint jobs_pkey primary key (seq),
    constraint jobs_tenant_id_key unique (tenant, id),
    constraint jobs_state_valid check (
        state in ('scheduled', 'available', 'running', 'retryable',
                  'completed', 'discarded', 'cancelled')
    ),
    constraint jobs_priority_range check (priority between 0 and 9),
    constraint jobs_attempt_within_max check (attempt between 0 and max_attempts),
    constraint jobs_max_attempts_range check (max_attempts between 1 and 1000),
    constraint jobs_id_length check (char_length(id) between 1 and 255),
    constraint jobs_kind_length check (char_length(kind) between 1 and 128),
    constraint jobs_queue_length check (char_length(queue) between 1 and 64),
    constraint jobs_running_has_lease check (
        (state = 'running') = (leased_until is not null)
    ),
    constraint jobs_finalized_when_finished check (
        (state in ('completed', 'discarded', 'cancelled')) = (finalized_at is not null)
    )
);

-- The claim: available jobs of a queue in priority, run_at, seq order.
-- Claim queries must order by exactly these columns to use it.
create index jobs_claim_idx on spool.jobs (queue, priority, run_at, seq)
    where state = 'available';

-- The scheduler: jobs waiting for their run_at.
create index jobs_due_idx on spool.jobs (run_at)
    where state in ('scheduled', 'retryable');

-- The rescuer: running jobs by lease expiry.
create index jobs_lease_idx on spool.jobs (leased_until)
    where state = 'running';

-- Retention: finished jobs by age.
create index jobs_finalized_idx on spool.jobs (state, finalized_at)
    where finalized_at is not null;

-- Listing a tenant's jobs, newest first, optionally by state.
create index jobs_tenant_state_idx on spool.jobs (tenant, state, seq);

-- Wake idle workers once per enqueuing statement (and, since PostgreSQL
-- folds identical notifications, once per transaction), whatever the path:
-- the API, the batch path, spool.enqueue() or a plain INSERT.
create function spool.jobs_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('spool_jobs', '');
    return null;
end;
$$;

create trigger jobs_notify_insert
    after insert on spool.jobs
    for each statement execute function spool.jobs_notify();
