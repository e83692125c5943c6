-- Tenant configuration and secrets, read by jobs through the `config`
-- import. The API never returns a secret's value once it is set.
create table spool.config (
    tenant text not null,
    name text not null,
    value text not null,
    secret boolean not null,
    updated_at timestamptz not null default now(),

    constraint config_pkey primary key (tenant, name),
    constraint config_name_format check (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$')
);
