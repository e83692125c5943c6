-- Tenants and their API tokens.
--
-- Every module, job, config entry and key-value entry already names its
-- tenant; this table makes tenants objects an operator creates, limits and
-- disables. A disabled tenant's tokens stop working and its jobs are not
-- claimed; nothing of it is deleted.
create table spool.tenants (
    name text not null,
    -- At most this many of the tenant's jobs run at once across all
    -- workers; null for no limit beyond the workers' own.
    max_running integer,
    disabled_at timestamptz,
    created_at timestamptz not null default now(),

    constraint tenants_pkey primary key (name),
    constraint tenants_name_format check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    constraint tenants_max_running_positive check (max_running is null or max_running > 0)
);

-- A token is `sp_<id>_<secret>`: the id finds the row, the secret is kept
-- only as its SHA-256. The secret is 32 random bytes, so a plain digest is
-- as strong as a slow password hash would be.
create table spool.tokens (
    id text not null,
    tenant text not null,
    secret_sha256 bytea not null,
    label text not null default '',
    created_at timestamptz not null default now(),
    revoked_at timestamptz,

    constraint tokens_pkey primary key (id),
    constraint tokens_tenant_fkey foreign key (tenant) references spool.tenants (name),
    constraint tokens_id_format check (id ~ '^[0-9a-f]{16}$'),
    constraint tokens_secret_size check (octet_length(secret_sha256) = 32),
    constraint tokens_label_length check (char_length(label) <= 128)
);

create index tokens_tenant_idx on spool.tokens (tenant);

-- Data written before tenants were objects keeps its owner.
insert into spool.tenants (name)
select tenant from spool.modules
union select tenant from spool.jobs
union select tenant from spool.config
union select tenant from spool.kv
on conflict do nothing;

alter table spool.modules
    add constraint modules_tenant_fkey foreign key (tenant) references spool.tenants (name);
alter table spool.config
    add constraint config_tenant_fkey foreign key (tenant) references spool.tenants (name);
alter table spool.kv
    add constraint kv_tenant_fkey foreign key (tenant) references spool.tenants (name);

-- The fair claim walks the tenants with ready work in a queue, then takes
-- each one's jobs in priority order; this index serves both steps.
drop index spool.jobs_claim_idx;
create index jobs_claim_idx on spool.jobs (queue, tenant, priority, run_at, seq)
    where state = 'available';

-- spool.enqueue now names the tenant in its errors and refuses tenants
-- that do not exist or are disabled.
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
    disabled timestamptz;
    new_id text;
begin
    select t.disabled_at into disabled from spool.tenants t where t.name = enqueue.tenant;
    if not found then
        raise exception 'tenant %: no such tenant', enqueue.tenant
            using errcode = 'foreign_key_violation', hint = 'create it with spool tenant create';
    end if;
    if disabled is not null then
        raise exception 'tenant %: disabled since %', enqueue.tenant, disabled
            using errcode = 'check_violation';
    end if;
    select m.max_attempts into default_attempts
    from spool.modules m
    where m.tenant = enqueue.tenant and m.kind = enqueue.kind
    order by m.version desc
    limit 1;
    if not found then
        raise exception 'kind %: tenant % has no module deployed for it', enqueue.kind, enqueue.tenant
            using errcode = 'foreign_key_violation', hint = 'deploy one with spool deploy';
    end if;
    if params is null or jsonb_typeof(params) is null then
        raise exception 'params: must be JSON, not SQL null' using errcode = 'not_null_violation';
    end if;
    if run_at is not null and not isfinite(run_at) then
        raise exception 'run_at: must be a finite time, not %', run_at
            using errcode = 'invalid_datetime_format';
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
