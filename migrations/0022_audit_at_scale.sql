-- The audit log at scale: what its background jobs and its report read stays proportional to
-- what they need, not to the size of the log or of its queue.
--
-- The sequencer finds the practices with queued audit events on every pass. `select distinct
-- practice_id from audit_pending` reads the whole queue: with a backlog of hundreds of
-- thousands of events (a busy day's schedule and list views audit every patient shown) each
-- pass took seconds, so the sequencer fell further behind the more it had to do. This walks
-- the (practice_id, pos) index instead, one probe per practice (a loose index scan): the cost
-- grows with the number of practices, not with the length of the queue. Same signature,
-- attributes, owner and grants (CREATE OR REPLACE keeps them).
create or replace function app.audit_pending_practices() returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, public
as $$
    with recursive queued (practice_id) as (
        (select practice_id from public.audit_pending order by practice_id limit 1)
        union all
        select (select p.practice_id from public.audit_pending p
                 where p.practice_id > q.practice_id
                 order by p.practice_id limit 1)
          from queued q
         where q.practice_id is not null
    )
    select practice_id from queued where practice_id is not null
$$;

-- The checkpointer's list of practices with a sequenced log had the same shape over the whole
-- log (which only grows): the same walk, over the (practice_id, seq) primary key.
create or replace function app.audit_log_practices() returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, public
as $$
    with recursive logged (practice_id) as (
        (select practice_id from public.audit_sequence order by practice_id limit 1)
        union all
        select (select s.practice_id from public.audit_sequence s
                 where s.practice_id > l.practice_id
                 order by s.practice_id limit 1)
          from logged l
         where l.practice_id is not null
    )
    select practice_id from logged where practice_id is not null
$$;

-- The audit report's default view is a practice's latest events (newest first, a page at a
-- time): without an index on time it sorted the practice's whole log for every page.
create index audit_event_time_idx on audit_event (practice_id, occurred_at, event_id);
