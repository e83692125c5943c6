-- The SQL enqueue functions meet the API's rules where they fell short,
-- and generate ids as the API does:
-- - ids begin with the time (UUID version 7), so that jobs enqueued
--   together sit together in the index of ids, which every change of a
--   job's row writes to;
-- - run_at lies within the years 1 to 9999 (a later time cannot be read
--   back, and broke the listing of the tenant's jobs);
-- - job ids are not `.` or `..` and neither start nor end with any
--   Unicode space (one rule, spool.job_id_valid, for both functions);
-- - enqueue_many inserts in id order, so that two calls sharing ids
--   cannot deadlock.

-- A UUID of version 7 as text: 48 bits of Unix time in milliseconds, then
-- random bits (those of a version 4 UUID, with the version changed).
create function spool.new_job_id() returns text
language sql volatile as $$
    select encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send(floor(extract(epoch from clock_timestamp())
                                                     * 1000)::bigint) from 3)
                    from 1 for 6),
            52, 1), 53, 1),
        'hex')::uuid::text
$$;

create or replace function spool.enqueue_check(
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
    if run_at is not null and not (run_at >= '0001-01-01 00:00:00+00'
                                   and run_at < '10000-01-01 00:00:00+00') then
        raise exception 'run_at: % is outside the years 1 to 9999', run_at
            using errcode = 'invalid_datetime_format';
    end if;
    return default_attempts;
end;
$$;

-- Whether `id` is a valid job id: 1 to 255 characters, no control
-- characters, not `.` or `..`, and no Unicode space (White_Space) at
-- either end, as the API has it. Null for a null id.
create function spool.job_id_valid(id text) returns boolean
language sql immutable as $$
    select char_length(id) between 1 and 255
       and id !~ '[[:cntrl:]]'
       and id not in ('.', '..')
       and id = btrim(id, E' \t\n\r\u000b\u000c\u0085\u00a0\u1680\u2000\u2001'
                          || E'\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009'
                          || E'\u200a\u2028\u2029\u202f\u205f\u3000')
$$;

create or replace function spool.job_id_check(field text, id text) returns void
language plpgsql as $$
begin
    if not coalesce(spool.job_id_valid(id), false) then
        raise exception '%: % is not a valid job id; use 1 to 255 characters without control characters or surrounding spaces, other than . and ..',
            field, coalesce(quote_literal(id), 'null')
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
        coalesce(enqueue.job_id, spool.new_job_id()),
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
        where not coalesce(spool.job_id_valid(i), false)
        limit 1;
        if found then
            perform spool.job_id_check('job_ids', bad);
        end if;
    end if;

    insert into spool.jobs as j (tenant, id, kind, queue, state, priority, params,
                                 max_attempts, run_at)
    select enqueue_many.tenant,
           coalesce(job_ids[array_lower(job_ids, 1) + p.n - 1], spool.new_job_id()),
           enqueue_many.kind,
           enqueue_many.queue,
           case when enqueue_many.run_at is null or enqueue_many.run_at <= now()
                then 'available' else 'scheduled' end,
           enqueue_many.priority,
           p.value,
           coalesce(enqueue_many.max_attempts, default_attempts),
           coalesce(enqueue_many.run_at, now())
    from unnest(params) with ordinality as p(value, n)
    -- In id order, so that two calls sharing ids wait for each other
    -- instead of each holding an id the other needs (a deadlock).
    order by 2
    on conflict on constraint jobs_tenant_id_key do nothing;
    get diagnostics created = row_count;
    return created;
end;
$$;
