-- spool.enqueue_many: the batch path from SQL. Enqueues one job of `kind`
-- per element of `params`, in the caller's transaction, with one insert
-- (so workers are woken once).
--
--   select spool.enqueue_many('default', 'user:send-email',
--                             array['{"user_id": 1}', '{"user_id": 2}']::jsonb[]);
--
-- `job_ids`, when given, must be as long as `params`; a job whose id exists
-- already is skipped. Returns the number of jobs created.
create function spool.enqueue_many(
    tenant text,
    kind text,
    params jsonb[],
    job_ids text[] default null,
    run_at timestamptz default null,
    queue text default 'default',
    priority integer default 0,
    max_attempts integer default null
) returns bigint
language plpgsql as $$
declare
    default_attempts integer;
    disabled timestamptz;
    created bigint;
begin
    select t.disabled_at into disabled from spool.tenants t where t.name = enqueue_many.tenant;
    if not found then
        raise exception 'tenant %: no such tenant', enqueue_many.tenant
            using errcode = 'foreign_key_violation', hint = 'create it with spool tenant create';
    end if;
    if disabled is not null then
        raise exception 'tenant %: disabled since %', enqueue_many.tenant, disabled
            using errcode = 'check_violation';
    end if;
    select m.max_attempts into default_attempts
    from spool.modules m
    where m.tenant = enqueue_many.tenant and m.kind = enqueue_many.kind
    order by m.version desc
    limit 1;
    if not found then
        raise exception 'kind %: tenant % has no module deployed for it',
            enqueue_many.kind, enqueue_many.tenant
            using errcode = 'foreign_key_violation', hint = 'deploy one with spool deploy';
    end if;
    if params is null or array_position(params, null) is not null then
        raise exception 'params: must be an array of JSON values, without SQL nulls'
            using errcode = 'not_null_violation';
    end if;
    if job_ids is not null and cardinality(job_ids) <> cardinality(params) then
        raise exception 'job_ids: % ids for % params; give one id per job or none',
            cardinality(job_ids), cardinality(params)
            using errcode = 'invalid_parameter_value';
    end if;
    if run_at is not null and not isfinite(run_at) then
        raise exception 'run_at: must be a finite time, not %', run_at
            using errcode = 'invalid_datetime_format';
    end if;

    insert into spool.jobs as j (tenant, id, kind, queue, state, priority, params,
                                 max_attempts, run_at)
    select enqueue_many.tenant,
           coalesce(job_ids[p.n], gen_random_uuid()::text),
           enqueue_many.kind,
           enqueue_many.queue,
           case when enqueue_many.run_at is null or enqueue_many.run_at <= now()
                then 'available' else 'scheduled' end,
           enqueue_many.priority,
           p.value,
           coalesce(enqueue_many.max_attempts, default_attempts),
           coalesce(enqueue_many.run_at, now())
    from unnest(params) with ordinality as p(value, n)
    on conflict on constraint jobs_tenant_id_key do nothing;
    get diagnostics created = row_count;
    return created;
end;
$$;
