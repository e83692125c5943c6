-- spool.enqueue: enqueue from SQL, inside the caller's own transaction, so
-- that the job exists exactly when the caller's data does.
--
--   select spool.enqueue('default', 'user:send-email', '{"user_id": 42}',
--                        job_id => 'send-email:ada@example.com');
--
-- Returns the job's id. When `job_id` names a job that already exists, the
-- call creates nothing and returns that id. Raises an error, creating
-- nothing, for a kind with no deployed module or a bad argument.
create function spool.enqueue(
    tenant text,
    kind text,
    params jsonb default '{}',
    job_id text default null,
    run_at timestamptz default null,
    queue text default 'default',
    priority integer default 0,
    max_attempts integer default null
) returns text
language plpgsql as $$
declare
    default_attempts integer;
    new_id text;
begin
    select m.max_attempts into default_attempts
    from spool.modules m
    where m.tenant = enqueue.tenant and m.kind = enqueue.kind
    order by m.version desc
    limit 1;
    if not found then
        raise exception 'kind %: no module is deployed for it', enqueue.kind
            using errcode = 'foreign_key_violation', hint = 'deploy one with spool deploy';
    end if;
    if params is null or jsonb_typeof(params) is null then
        raise exception 'params: must be JSON, not SQL null' using errcode = 'not_null_violation';
    end if;

    insert into spool.jobs as j (tenant, id, kind, queue, state, priority, params,
                                 max_attempts, run_at)
    values (
        enqueue.tenant,
        coalesce(enqueue.job_id, gen_random_uuid()::text),
        enqueue.kind,
        enqueue.queue,
        case when enqueue.run_at is null or enqueue.run_at <= now()
             then 'available' else 'scheduled' end,
        enqueue.priority,
        enqueue.params,
        coalesce(enqueue.max_attempts, default_attempts),
        coalesce(enqueue.run_at, now())
    )
    on conflict on constraint jobs_tenant_id_key do nothing
    returning j.id into new_id;

    return coalesce(new_id, enqueue.job_id);
end;
$$;
