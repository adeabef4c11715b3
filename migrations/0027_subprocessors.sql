-- The subprocessor registry (issue 19.4): installation-level, not tenant data.
--
-- `serve` reads the deployment's integrations file at start and, when it differs from the
-- state recorded here, records each difference as a dated change and updates the state, in
-- one transaction under an advisory lock (two servers starting together record a change
-- once). The state says from when each integration may be called: a new PHI-touching
-- subprocessor only after the notice period. The changes are the published history
-- (/subprocessors, /subprocessors.atom) and the owners' notices; they are append-only.
-- Neither table holds a secret, a URL or a BAA document reference.

create table subprocessor (
    integration text primary key
        check (integration ~ '^[a-z]+\.[a-z_]+$' and length(integration) <= 64),
    entry jsonb not null
        check (jsonb_typeof(entry) = 'object' and length(entry::text) <= 16384),
    active_from timestamptz not null,
    recorded_at timestamptz not null
);

create table subprocessor_change (
    change_id bigint generated always as identity primary key,
    integration text not null
        check (integration ~ '^[a-z]+\.[a-z_]+$' and length(integration) <= 64),
    change text not null check (change in ('added', 'removed', 'baa', 'location', 'role',
                                            'data_categories', 'hosting', 'posture')),
    summary text not null check (length(summary) between 1 and 2000),
    entry jsonb not null
        check (jsonb_typeof(entry) = 'object' and length(entry::text) <= 16384),
    recorded_at timestamptz not null,
    effective_at timestamptz not null
);
create index subprocessor_change_recent on subprocessor_change (recorded_at desc, change_id desc);

create trigger subprocessor_change_no_update_delete before update or delete on subprocessor_change
    for each row execute function app.reject_audit_change();
create trigger subprocessor_change_no_truncate before truncate on subprocessor_change
    for each statement execute function app.reject_audit_change();

-- Public facts: the server reads them for anyone (they are published); it records changes at
-- start. It keeps the current state up to date and only appends to the history.
alter table subprocessor enable row level security;
alter table subprocessor force row level security;
create policy subprocessor_runtime on subprocessor for all to chartroom_runtime
    using (true) with check (true);
create policy owner_all on subprocessor for all to chartroom_owner
    using (true) with check (true);
grant select, insert, update, delete on subprocessor to chartroom_runtime;

alter table subprocessor_change enable row level security;
alter table subprocessor_change force row level security;
create policy subprocessor_change_read on subprocessor_change for select to chartroom_runtime
    using (true);
create policy subprocessor_change_record on subprocessor_change for insert to chartroom_runtime
    with check (true);
create policy owner_all on subprocessor_change for all to chartroom_owner
    using (true) with check (true);
grant select, insert on subprocessor_change to chartroom_runtime;
grant usage on sequence subprocessor_change_change_id_seq to chartroom_runtime;
