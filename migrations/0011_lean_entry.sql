-- Entering a practice costs one plain statement, and row-level security stops re-deriving the
-- actor's roles in every statement.
--
-- 1. The actor's roles are derived once per transaction, by app.enter, from `membership` (or an
--    active support grant) for the session presented, and kept in the transaction-local
--    setting `chartroom.roles` next to `chartroom.actor_id` and `chartroom.practice_id`.
--    app.actor_roles() reads that setting. Before, it queried `membership` from inside every
--    policy that asks for a role; as a SQL function with a sub-select it could not be inlined,
--    so PostgreSQL parsed and planned its body again in every statement (about a fifth of the
--    database time of a patient read). The trust boundary is unchanged: the runtime role could
--    always set `chartroom.actor_id`; the database derives the roles from the session, and the
--    server writes `chartroom.roles` nowhere else (a test checks the source). Roles are fixed
--    for the transaction, as a snapshot of the membership when the request entered.
--    Unset roles match nothing (fail closed).
--
-- 2. app.enter becomes an inlinable SQL function (STABLE, one SELECT): the planner folds it
--    into the caller's statement, so it runs as one cached plan instead of a PL/pgSQL call
--    with three SPI statements and a materialized result. Its first step, a one-time filter
--    evaluated before any table is read, records the session hash, the practice and the
--    request time that the policies on `session`, `membership` and `practice` read. The user
--    and roles are set in the target list, i.e. only for a session that passed every check
--    (unknown, revoked, expired, idle or past the practice's absolute lifetime: no row, nothing
--    set). Two things leave the statement:
--    - the activity update (at most every p_touch_after) is a separate UPDATE the server sends
--      when the row says `touch`;
--    - a signed-in user who is not a member (roles null) may hold a support grant:
--      app.enter_support looks it up and sets the roles it gives.
--
-- 3. Each membership row carries a copy of its practice's session lifetimes and passkey
--    requirement, kept equal by triggers in the same transaction as any change, so app.enter
--    reads two rows (session, membership) instead of joining a third.
--
-- 4. The `practice_read` policy's membership arm becomes a function call evaluated only when
--    the first arm fails, instead of an IN (sub-select) whose hashed sub-plan the executor
--    built for every statement that reads `practice`.

create or replace function app.actor_roles() returns text[]
    language sql stable parallel safe
    as $$ select coalesce(nullif(current_setting('chartroom.roles', true), '')::text[], '{}'::text[]) $$;

drop function app.support_actor_roles();

-- Whether the actor is a member of `p_practice` (through membership's own policy).
-- Not inlinable (a sub-select), so a policy calls it only when its cheaper arm fails.
create function app.actor_is_member(p_practice uuid) returns boolean
    language sql stable
    as $$
        select exists (select 1 from public.membership m
                        where m.practice_id = p_practice and m.user_id = (select app.actor()))
    $$;

drop policy practice_read on practice;
create policy practice_read on practice for select to chartroom_runtime
    using (practice_id = app.practice() or app.actor_is_member(practice_id));

-- The policies app.enter reads through call the setting functions per row instead of through
-- one-row sub-selects: the tables are read a row or a few at a time, and each sub-select is
-- a plan node of its own that every statement reading them initializes.
alter policy session_own on session
    using (token_hash = app.session_hash() or user_id = app.actor())
    with check (token_hash = app.session_hash() or user_id = app.actor());
alter policy membership_read on membership
    using (practice_id = app.practice() or user_id = app.actor());

-- The practice's session settings, copied onto each membership (see 3. above). Null: the
-- installation's default. Only the owner role writes them (the runtime role has no UPDATE on
-- these columns); the triggers below run as the owner.
alter table membership add column practice_session_idle interval,
                       add column practice_session_absolute interval,
                       add column practice_requires_passkey boolean not null default false;

revoke update on membership from chartroom_runtime;
grant update (roles) on membership to chartroom_runtime;

alter table membership no force row level security;
update membership m
   set practice_session_idle = make_interval(secs => p.session_idle_seconds),
       practice_session_absolute = make_interval(secs => p.session_absolute_seconds),
       practice_requires_passkey = p.require_passkey_for_managers
  from practice p
 where p.practice_id = m.practice_id;
alter table membership force row level security;

-- A new membership starts with its practice's settings. SECURITY DEFINER (owner): the owner's
-- directory policy reads any practice's settings (names and settings, no PHI), whoever adds
-- the member.
create function app.membership_copy_practice_settings() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    begin
        select make_interval(secs => p.session_idle_seconds),
               make_interval(secs => p.session_absolute_seconds),
               p.require_passkey_for_managers
          into new.practice_session_idle, new.practice_session_absolute, new.practice_requires_passkey
          from public.practice p where p.practice_id = new.practice_id;
        return new;
    end
    $$;
alter function app.membership_copy_practice_settings() owner to chartroom_owner;
create trigger membership_practice_settings before insert or update of practice_id on membership
    for each row execute function app.membership_copy_practice_settings();

-- A change of the practice's settings reaches every membership in the same transaction,
-- whoever makes it. SECURITY DEFINER (owner): the runtime role cannot write the copies itself.
-- The owner's membership policy is bound to the practice set for the transaction, so the
-- function enters the updated practice for its one statement and restores the setting after.
create function app.practice_settings_to_memberships() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_entered text := current_setting('chartroom.practice_id', true);
    begin
        perform set_config('chartroom.practice_id', new.practice_id::text, true);
        update public.membership m
           set practice_session_idle = make_interval(secs => new.session_idle_seconds),
               practice_session_absolute = make_interval(secs => new.session_absolute_seconds),
               practice_requires_passkey = new.require_passkey_for_managers
         where m.practice_id = new.practice_id;
        perform set_config('chartroom.practice_id', coalesce(v_entered, ''), true);
        return null;
    end
    $$;
alter function app.practice_settings_to_memberships() owner to chartroom_owner;
create trigger practice_settings_to_memberships
    after update of session_idle_seconds, session_absolute_seconds, require_passkey_for_managers on practice
    for each row
    when (old.session_idle_seconds is distinct from new.session_idle_seconds
          or old.session_absolute_seconds is distinct from new.session_absolute_seconds
          or old.require_passkey_for_managers is distinct from new.require_passkey_for_managers)
    execute function app.practice_settings_to_memberships();

drop function app.enter(bytea, uuid, timestamptz, interval, interval);
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval)
    returns table (user_id uuid, roles text[], amr text[], mfa_at timestamptz, session_id uuid,
                   require_passkey boolean, touch boolean)
    language sql stable
    as $$
        select set_config('chartroom.actor_id', s.user_id::text, true)::uuid,
               nullif(set_config('chartroom.roles', coalesce(m.roles::text, ''), true), '')::text[],
               s.amr, s.mfa_at, s.session_id,
               coalesce(m.practice_requires_passkey, false),
               p_now - s.last_seen_at >= p_touch_after
          from public.session s
          left join public.membership m on m.practice_id = p_practice and m.user_id = s.user_id
         where s.token_hash = p_token and s.revoked_at is null and s.expires_at > p_now
           -- The practice's idle timeout for its members, the installation's otherwise.
           and s.last_seen_at > p_now - coalesce(m.practice_session_idle, p_idle)
           -- The practice's absolute lifetime, when it sets one.
           and (s.created_at > p_now - m.practice_session_absolute) is not false
           -- One-time filter, evaluated first: what the policies above read.
           and (select set_config('chartroom.session_hash', encode(p_token, 'hex'), true)
                    || set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true)
                    || set_config('chartroom.now', p_now::text, true)) is not null
    $$;
grant execute on function app.enter(bytea, uuid, timestamptz, interval, interval) to chartroom_runtime;

-- After app.enter returned a signed-in user who is not a member of the practice: the support
-- grant active for them there, if any, and the roles it gives, which become the actor's roles
-- for the transaction. Nothing is set without a grant.
create function app.enter_support(p_now timestamptz, out support_grant uuid, out roles text[])
    language plpgsql volatile
    as $$
    declare
        v_scope text;
    begin
        if app.practice() is null or app.actor() is null
           or exists (select 1 from public.membership m
                       where m.practice_id = app.practice() and m.user_id = app.actor()) then
            return;
        end if;
        select g.grant_id, g.scope into support_grant, v_scope
          from app.support_grant_for(app.practice(), app.actor(), p_now) g;
        if support_grant is not null then
            roles := app.support_roles(v_scope);
            perform set_config('chartroom.roles', roles::text, true);
        end if;
    end
    $$;
grant execute on function app.enter_support(timestamptz) to chartroom_runtime;
