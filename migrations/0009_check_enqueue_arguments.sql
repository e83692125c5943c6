-- The SQL enqueue functions check their arguments as the API does: queue
-- names and job ids by the same rules, arrays of one dimension whatever
-- their bounds. The checks shared by both functions live in one place.

-- The tenant may enqueue `kind` into `queue` at `run_at`: returns the
-- module's default attempts, or raises an error naming the argument.
create function spool.enqueue_check(
    tenant text,
    kind text,
    queue text,
    run_at timestamptz
) returns integer
language plpgsql as $$
declare
    default_attempts integer;
    disabled timestamptz;
begin
    select t.disabled_at into disabled from spool.tenants t where t.name = enqueue_check.tenant;
    if not found then
        raise exception 'tenant %: no such tenant', enqueue_check.tenant
            using errcode = 'foreign_key_violation', hint = 'create it with spool tenant create';
    end if;
    if disabled is not null then
        raise exception 'tenant %: disabled since %', enqueue_check.tenant, disabled
            using errcode = 'check_violation';
    end if;
    select m.max_attempts into default_attempts
    from spool.modules m
    where m.tenant = enqueue_check.tenant and m.kind = enqueue_check.kind
    order by m.version desc
    limit 1;
    if not found then
        raise exception 'kind %: tenant % has no module deployed for it',
            enqueue_check.kind, enqueue_check.tenant
            using errcode = 'foreign_key_violation', hint = 'deploy one with spool deploy';
    end if;
    if queue is null or queue !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        raise exception 'queue: % is not valid; use 1 to 64 letters, digits, _ . or -, starting with a letter or digit',
            coalesce(quote_literal(queue), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if run_at is not null and not isfinite(run_at) then
        raise exception 'run_at: must be a finite time, not %', run_at
            using errcode = 'invalid_datetime_format';
    end if;
    return default_attempts;
end;
$$;

-- Raises an error naming `field` unless `id` is a valid job id: 1 to 255
-- characters, no control characters, no leading or trailing whitespace.
create function spool.job_id_check(field text, id text) returns void
language plpgsql as $$
begin
    if char_length(id) not between 1 and 255
        or id ~ '[[:cntrl:]]'
        or id <> btrim(id, E' \t\n\r\u00a0') then
        raise exception '%: % is not a valid job id; use 1 to 255 characters without control characters or surrounding spaces',
            field, quote_literal(id)
            using errcode = 'invalid_parameter_value';
    end if;
end;
$$;

create or replace function spool.enqueue(
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
    default_attempts := spool.enqueue_check(tenant, kind, queue, run_at);
    if params is null or jsonb_typeof(params) is null then
        raise exception 'params: must be JSON, not SQL null' using errcode = 'not_null_violation';
    end if;
    if job_id is not null then
        perform spool.job_id_check('job_id', job_id);
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

create or replace function spool.enqueue_many(
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
    bad text;
    created bigint;
begin
    default_attempts := spool.enqueue_check(tenant, kind, queue, run_at);
    if params is null or coalesce(array_ndims(params), 1) <> 1
        or array_position(params, null) is not null then
        raise exception 'params: must be a one-dimensional array of JSON values, without SQL nulls'
            using errcode = 'not_null_violation';
    end if;
    if job_ids is not null then
        if coalesce(array_ndims(job_ids), 1) <> 1
            or cardinality(job_ids) <> cardinality(params) then
            raise exception 'job_ids: % ids for % params; give one id per job or none',
                cardinality(job_ids), cardinality(params)
                using errcode = 'invalid_parameter_value';
        end if;
        select i into bad from unnest(job_ids) i
        where i is null or char_length(i) not between 1 and 255 or i ~ '[[:cntrl:]]'
           or i <> btrim(i, E' \t\n\r\u00a0')
        limit 1;
        if found then
            perform spool.job_id_check('job_ids', coalesce(bad, ''));
        end if;
    end if;

    insert into spool.jobs as j (tenant, id, kind, queue, state, priority, params,
                                 max_attempts, run_at)
    select enqueue_many.tenant,
           coalesce(job_ids[array_lower(job_ids, 1) + p.n - 1], gen_random_uuid()::text),
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
