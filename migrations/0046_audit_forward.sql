-- Forwarding the audit log to a separate sink (req AUD-08). The log in PostgreSQL is the
-- buffer: the forwarder sends each practice's sequenced events in order and records here the
-- first position each sink has not acknowledged yet (a 2xx reply taking every record), so a
-- sink that is down loses nothing and a restart resumes where delivery stopped (at least
-- once: a receiver dedupes by event id). Only the forwarder — the runtime role without an actor, like the sequencer —
-- moves a practice's cursor; owners and admins may read how far it got.
create table audit_forward (
    practice_id uuid not null,
    sink text not null,
    next_seq bigint not null,
    forwarded_at timestamptz not null,
    constraint audit_forward_pkey primary key (practice_id, sink),
    constraint audit_forward_sink check (sink ~ '^[a-z0-9][a-z0-9._:-]{0,127}$'),
    constraint audit_forward_next_seq check (next_seq >= 0)
);

alter table audit_forward enable row level security;
alter table audit_forward force row level security;

create policy forward_read on audit_forward for select to chartroom_runtime
    using (practice_id = (select app.practice())
           and ((select app.actor()) is null or (select app.actor_roles()) && array['owner', 'admin']));
create policy forwarder_insert on audit_forward for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor()) is null);
create policy forwarder_update on audit_forward for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor()) is null)
    with check (practice_id = (select app.practice()) and (select app.actor()) is null);
create policy owner_all on audit_forward for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert, update on audit_forward to chartroom_runtime;
