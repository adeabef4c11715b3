-- Audit log, second layer: per-practice hash chain and RFC 6962 Merkle tree, sealed by a
-- background sealer; denied attempts; disclosures; retention.
--
-- Requests append events to audit_event in their own transaction (atomic with the action).
-- A trigger queues each new event in audit_pending. The sealer (one at a time per practice,
-- under an advisory lock) takes a practice's pending events, gives them gapless sequence
-- numbers in audit_seal with the chain hash and the Merkle leaf hash, stores every newly
-- completed Merkle subtree in audit_node, and removes them from audit_pending. audit_seal and
-- audit_node are insert-only like audit_event; signed checkpoints live outside the database.

alter table audit_event add column details jsonb
    check (details is null or (jsonb_typeof(details) = 'object' and length(details::text) <= 2048));

create table audit_pending (
    practice_id uuid not null,
    event_id uuid not null,
    -- Queue order: the sealer takes each practice's events in the order they were queued.
    pos bigint generated always as identity,
    primary key (practice_id, event_id)
);
create index audit_pending_order_idx on audit_pending (practice_id, pos);

create table audit_seal (
    practice_id uuid not null,
    seq bigint not null check (seq >= 0),
    event_id uuid not null,
    chain_hash bytea not null check (length(chain_hash) = 32),
    leaf_hash bytea not null check (length(leaf_hash) = 32),
    sealed_at timestamptz not null,
    primary key (practice_id, seq),
    constraint audit_seal_event_key unique (practice_id, event_id)
);

create table audit_node (
    practice_id uuid not null,
    level smallint not null check (level between 1 and 63),
    idx bigint not null check (idx >= 0),
    hash bytea not null check (length(hash) = 32),
    primary key (practice_id, level, idx)
);

-- Where a retention prune cut the log: events and seals below seq were removed; the chain
-- continues from chain_hash (the chain hash of seq - 1), vouched for by the signed checkpoint
-- taken at that size before pruning.
create table audit_prune (
    practice_id uuid not null,
    seq bigint not null check (seq > 0),
    chain_hash bytea not null check (length(chain_hash) = 32),
    pruned_at timestamptz not null,
    primary key (practice_id, seq)
);

create function app.queue_audit_event() returns trigger
    language plpgsql
    as $$
    begin
        insert into public.audit_pending (practice_id, event_id) values (new.practice_id, new.event_id);
        return new;
    end
    $$;
create trigger audit_event_queue after insert on audit_event
    for each row execute function app.queue_audit_event();

-- The practices with events waiting to be sealed. SECURITY DEFINER because the sealer must
-- find its work across practices without being able to read any practice's rows: it returns
-- practice ids only, and runs as the owner with a fixed search_path.
create function app.audit_pending_practices() returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$ select distinct practice_id from public.audit_pending $$;
revoke all on function app.audit_pending_practices() from public;
grant execute on function app.audit_pending_practices() to chartroom_runtime;

-- Append-only, for everyone: seals and nodes never change; a retention prune (below) is the
-- only way rows leave, and only rows older than six years (HIPAA 164.316(b)(2)(i)).
create function app.reject_audit_change_unless_pruning() returns trigger
    language plpgsql
    as $$
    begin
        if tg_op = 'DELETE'
           and current_setting('chartroom.audit_prune', true) = 'on'
           and current_user = 'chartroom_owner' then
            if tg_table_name = 'audit_event' and old.occurred_at >= now() - interval '6 years' then
                raise exception 'audit rows younger than six years cannot be pruned'
                    using errcode = 'insufficient_privilege';
            end if;
            return old;
        end if;
        raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
            using errcode = 'insufficient_privilege';
    end
    $$;
drop trigger audit_event_no_update_delete on audit_event;
create trigger audit_event_no_update_delete before update or delete on audit_event
    for each row execute function app.reject_audit_change_unless_pruning();
create trigger audit_seal_no_update_delete before update or delete on audit_seal
    for each row execute function app.reject_audit_change_unless_pruning();
create trigger audit_seal_no_truncate before truncate on audit_seal
    for each statement execute function app.reject_audit_change();
create trigger audit_node_no_update_delete before update or delete on audit_node
    for each row execute function app.reject_audit_change();
create trigger audit_node_no_truncate before truncate on audit_node
    for each statement execute function app.reject_audit_change();
create trigger audit_prune_no_update_delete before update or delete on audit_prune
    for each row execute function app.reject_audit_change();

-- Disclosures outside the practice (HIPAA 164.528 accounting).
create table disclosure (
    practice_id uuid not null references practice (practice_id),
    disclosure_id uuid not null,
    patient_id uuid not null,
    disclosed_at timestamptz not null,
    recipient text not null check (length(recipient) between 1 and 200),
    description text not null check (length(description) between 1 and 1000),
    purpose text not null check (length(purpose) between 1 and 200),
    tpo boolean not null default false,
    kind text not null default 'other' check (kind in ('export', 'sharing', 'support_access', 'other')),
    recorded_by uuid,
    created_at timestamptz not null,
    primary key (practice_id, disclosure_id),
    constraint disclosure_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);
create index disclosure_patient_idx on disclosure (practice_id, patient_id, disclosed_at);

alter table audit_pending enable row level security;
alter table audit_pending force row level security;
alter table audit_seal enable row level security;
alter table audit_seal force row level security;
alter table audit_node enable row level security;
alter table audit_node force row level security;
alter table audit_prune enable row level security;
alter table audit_prune force row level security;
alter table disclosure enable row level security;
alter table disclosure force row level security;

-- Audit reading: owners and admins, or the system (the sealer runs with no actor).
drop policy audit_event_tenant on audit_event;
create policy audit_event_read on audit_event for select to chartroom_runtime
    using (practice_id = (select app.practice())
           and ((select app.actor()) is null or (select app.actor_roles()) && array['owner', 'admin']));

create policy tenant_all on audit_pending for all to chartroom_runtime
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy tenant_read on audit_seal for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy tenant_append on audit_seal for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor()) is null);
create policy tenant_read on audit_node for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy tenant_append on audit_node for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor()) is null);
create policy tenant_read on audit_prune for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy disclosure_scheduling on disclosure for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);

create policy owner_all on audit_pending for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on audit_seal for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on audit_node for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on audit_prune for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on disclosure for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
-- The SECURITY DEFINER work-finding functions run as the owner, who is subject to forced RLS:
-- let the owner see which practices have queued or sealed events (ids and hashes only).
create policy owner_queue_directory on audit_pending for select to chartroom_owner using (true);
create policy owner_seal_directory on audit_seal for select to chartroom_owner using (true);
create policy owner_prune on audit_event for delete to chartroom_owner
    using (practice_id = (select app.practice()));

grant select, insert, delete on audit_pending to chartroom_runtime;
grant usage on sequence audit_pending_pos_seq to chartroom_runtime;
grant select, insert on audit_seal to chartroom_runtime;
grant select, insert on audit_node to chartroom_runtime;
grant select on audit_prune to chartroom_runtime;
grant select, insert on disclosure to chartroom_runtime;

-- The practices that have a sealed log (for the checkpointer). SECURITY DEFINER for the same
-- reason as audit_pending_practices: ids only, no tenant rows.
create function app.audit_log_practices() returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$ select distinct practice_id from public.audit_seal $$;
revoke all on function app.audit_log_practices() from public;
grant execute on function app.audit_log_practices() to chartroom_runtime;
