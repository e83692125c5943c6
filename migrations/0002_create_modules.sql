-- Job components. Deploying bytes to a kind makes a new version of that
-- kind; the newest version is the one workers run. Bytes are stored once
-- per content digest, so redeploying old bytes costs nothing.
create table spool.module_blobs (
    -- Lowercase hex SHA-256 of `bytes`.
    digest text not null,
    bytes bytea not null,

    constraint module_blobs_pkey primary key (digest),
    constraint module_blobs_digest_format check (digest ~ '^[0-9a-f]{64}$')
);

create table spool.modules (
    tenant text not null,
    kind text not null,
    version integer not null,
    digest text not null,
    size_bytes integer not null,
    -- Attempts a job of this kind gets unless it was enqueued with its own.
    max_attempts integer not null,
    -- Wall-clock limit of one attempt.
    timeout_ms integer not null,
    -- Linear memory limit of one attempt.
    memory_limit_bytes bigint not null,
    -- host or host:port entries the component may reach over HTTP.
    allowed_hosts text[] not null,
    created_at timestamptz not null default now(),

    constraint modules_pkey primary key (tenant, kind, version),
    constraint modules_digest_fkey foreign key (digest) references spool.module_blobs (digest),
    constraint modules_version_positive check (version > 0),
    constraint modules_max_attempts_range check (max_attempts between 1 and 1000),
    constraint modules_timeout_positive check (timeout_ms > 0),
    constraint modules_memory_limit_positive check (memory_limit_bytes > 0)
);
