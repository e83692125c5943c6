-- The tenant-scoped key-value store jobs reach through the `kv` import.
create table spool.kv (
    tenant text not null,
    key text not null,
    value text not null,
    updated_at timestamptz not null default now(),

    constraint kv_pkey primary key (tenant, key),
    constraint kv_key_size check (octet_length(key) between 1 and 256),
    constraint kv_value_size check (octet_length(value) <= 65536)
);
