-- The session check reads one row.
--
-- app.enter (0011) read two rows per request: the session, and the user's membership in the
-- practice named by the request (roles, and the practice's session lifetimes and passkey
-- requirement copied onto the membership). Each live session now carries a copy of its user's
-- memberships in `session.access`, so app.enter reads the session row alone:
--
--     { "<practice id>": { "roles": "{clinician,reception}", "idle": 900 | null,
--                          "absolute": 43200 | null, "passkey": false }, ... }
--
-- (idle and absolute in seconds; null: the installation's default.) Memberships are not PHI.
--
-- The copy is exact, not a cache: triggers rewrite it in the same transaction as any change
-- to a membership (added, roles changed, removed) or to a practice's session settings (which
-- reach the memberships through 0011's triggers), and a new session takes it from the
-- memberships when it is inserted. Removing a member or lowering their roles therefore still
-- takes effect on that user's very next request.
--
-- Concurrency. A session inserted while one of its user's memberships changes must not keep
-- the old copy: the insert reads the memberships before the change commits, and the change
-- rewrites the sessions it can see, which do not yet include the new one. Both sides take a
-- transaction-scoped advisory lock on the user first (app.lock_session_access) and read in a
-- fresh statement after it, so whichever comes second sees the other's committed result.
-- Lock order, to avoid deadlocks: the session store inserts a new session before revoking the
-- old one, so a sign-in holds the user's lock before it writes any of their session rows; and
-- a practice's settings reach its memberships one member at a time in user-id order, so two
-- practices changing settings at once take their shared members' locks in the same order.
--
-- Only the owner role writes the copy (the triggers below run as the owner); the runtime role
-- may now update only `last_seen_at` and `revoked_at` on its sessions, and a forged copy on
-- insert is overwritten.

alter table session add column access jsonb not null default '{}'::jsonb;

revoke update on session from chartroom_runtime;
grant update (last_seen_at, revoked_at) on session to chartroom_runtime;

-- Serializes changes to one user's session copies (see "Concurrency" above). 64-bit key in
-- its own name space ('chartroom.session_access.' prefix; the audit sealer uses another).
create function app.lock_session_access(p_user uuid) returns void
    language sql volatile
    as $$ select pg_advisory_xact_lock(hashtextextended('chartroom.session_access.' || p_user::text, 0)) $$;
alter function app.lock_session_access(uuid) owner to chartroom_owner;
revoke all on function app.lock_session_access(uuid) from public;

-- While a trigger below recomputes one user's copy, the owner may read that user's
-- memberships in every practice (its other membership policy is bound to one practice).
create policy owner_user_access on membership for select to chartroom_owner
    using (user_id = nullif(current_setting('chartroom.access_user', true), '')::uuid);

-- The copy for `p_user`, from their memberships as they stand (a fresh statement, so after
-- app.lock_session_access it sees every change committed before the lock was granted).
create function app.session_access_of(p_user uuid) returns jsonb
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_was text := current_setting('chartroom.access_user', true);
        v_access jsonb;
    begin
        perform set_config('chartroom.access_user', p_user::text, true);
        select coalesce(jsonb_object_agg(m.practice_id::text, jsonb_build_object(
                   'roles', m.roles::text,
                   'idle', extract(epoch from m.practice_session_idle),
                   'absolute', extract(epoch from m.practice_session_absolute),
                   'passkey', m.practice_requires_passkey)), '{}'::jsonb)
          into v_access
          from public.membership m
         where m.user_id = p_user;
        perform set_config('chartroom.access_user', coalesce(v_was, ''), true);
        return v_access;
    end
    $$;
alter function app.session_access_of(uuid) owner to chartroom_owner;
revoke all on function app.session_access_of(uuid) from public;

-- Rewrites the copy on every live session of `p_user` (computed once, after the lock).
create function app.refresh_session_access(p_user uuid) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_access jsonb;
    begin
        perform app.lock_session_access(p_user);
        v_access := app.session_access_of(p_user);
        update public.session s
           set access = v_access
         where s.user_id = p_user and s.revoked_at is null;
    end
    $$;
alter function app.refresh_session_access(uuid) owner to chartroom_owner;
revoke all on function app.refresh_session_access(uuid) from public;

-- A new session takes its user's memberships, whatever the insert said.
create function app.session_take_access() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    begin
        perform app.lock_session_access(new.user_id);
        new.access := app.session_access_of(new.user_id);
        return new;
    end
    $$;
alter function app.session_take_access() owner to chartroom_owner;
create trigger session_take_access before insert on session
    for each row execute function app.session_take_access();

-- A membership added, changed or removed reaches its user's live sessions.
create function app.membership_to_sessions() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    begin
        if tg_op in ('UPDATE', 'DELETE') then
            perform app.refresh_session_access(old.user_id);
        end if;
        if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.user_id is distinct from old.user_id) then
            perform app.refresh_session_access(new.user_id);
        end if;
        return null;
    end
    $$;
alter function app.membership_to_sessions() owner to chartroom_owner;
create trigger membership_to_sessions after insert or delete on membership
    for each row execute function app.membership_to_sessions();
create trigger membership_change_to_sessions after update on membership
    for each row
    when (old.user_id is distinct from new.user_id
          or old.practice_id is distinct from new.practice_id
          or old.roles is distinct from new.roles
          or old.practice_session_idle is distinct from new.practice_session_idle
          or old.practice_session_absolute is distinct from new.practice_session_absolute
          or old.practice_requires_passkey is distinct from new.practice_requires_passkey)
    execute function app.membership_to_sessions();

-- 0011's practice trigger, now one member at a time in user-id order (see "Concurrency").
create or replace function app.practice_settings_to_memberships() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_entered text := current_setting('chartroom.practice_id', true);
        v_user uuid;
    begin
        perform set_config('chartroom.practice_id', new.practice_id::text, true);
        for v_user in
            select m.user_id from public.membership m
             where m.practice_id = new.practice_id order by m.user_id
        loop
            update public.membership m
               set practice_session_idle = make_interval(secs => new.session_idle_seconds),
                   practice_session_absolute = make_interval(secs => new.session_absolute_seconds),
                   practice_requires_passkey = new.require_passkey_for_managers
             where m.practice_id = new.practice_id and m.user_id = v_user;
        end loop;
        perform set_config('chartroom.practice_id', coalesce(v_entered, ''), true);
        return null;
    end
    $$;

-- Existing sessions take their copy now.
update session s set access = app.session_access_of(s.user_id) where s.revoked_at is null;

-- app.enter, reading the session row alone. Same checks, same results as 0011's.
drop function app.enter(bytea, uuid, timestamptz, interval, interval);
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval)
    returns table (user_id uuid, roles text[], amr text[], mfa_at timestamptz, session_id uuid,
                   require_passkey boolean, touch boolean)
    language sql stable
    as $$
        select set_config('chartroom.actor_id', s.user_id::text, true)::uuid,
               nullif(set_config('chartroom.roles',
                                 coalesce(s.access -> p_practice::text ->> 'roles', ''), true), '')::text[],
               s.amr, s.mfa_at, s.session_id,
               coalesce((s.access -> p_practice::text ->> 'passkey')::boolean, false),
               p_now - s.last_seen_at >= p_touch_after
          from public.session s
         where s.token_hash = p_token and s.revoked_at is null and s.expires_at > p_now
           -- The practice's idle timeout for its members, the installation's otherwise.
           and s.last_seen_at > p_now - coalesce(
                   make_interval(secs => (s.access -> p_practice::text ->> 'idle')::float8), p_idle)
           -- The practice's absolute lifetime, when it sets one.
           and (s.created_at > p_now - make_interval(
                   secs => (s.access -> p_practice::text ->> 'absolute')::float8)) is not false
           -- One-time filter, evaluated first: what the session's policy reads.
           and (select set_config('chartroom.session_hash', encode(p_token, 'hex'), true)
                    || set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true)
                    || set_config('chartroom.now', p_now::text, true)) is not null
    $$;
grant execute on function app.enter(bytea, uuid, timestamptz, interval, interval) to chartroom_runtime;
