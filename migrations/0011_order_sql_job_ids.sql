-- Ids the SQL enqueue functions generate begin with the time, as the
-- API's do (UUID version 7): jobs enqueued together sit together in the
-- index of ids, which every change of a job's row writes to.

-- A UUID of version 7 as text: 48 bits of Unix time in milliseconds, then
-- random bits (those of a version 4 UUID, with the version changed).
create function spool.new_job_id() returns text
language sql volatile as $$
    select encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send((extract(epoch from clock_timestamp())
                                                * 1000)::bigint) from 3)
                    from 1 for 6),
            52, 1), 53, 1),
        'hex')::uuid::text
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
    on conflict on constraint jobs_tenant_id_key do nothing;
    get diagnostics created = row_count;
    return created;
end;
$$;
