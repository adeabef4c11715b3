-- The session check also says how long the session may stay idle where it was entered (the
-- practice's own idle timeout for its members, the installation's otherwise), so the web app
-- can warn before the timeout ends the session with the very value the check enforces: one
-- computation, used for both. Same checks and results as 0013's app.enter, one more column.
drop function app.enter(bytea, uuid, timestamptz, interval, interval);
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval)
    returns table (user_id uuid, roles text[], amr text[], mfa_at timestamptz, session_id uuid,
                   require_passkey boolean, touch boolean, idle interval)
    language sql stable
    as $$
        select set_config('chartroom.actor_id', s.user_id::text, true)::uuid,
               nullif(set_config('chartroom.roles',
                                 coalesce(s.access -> p_practice::text ->> 'roles', ''), true), '')::text[],
               s.amr, s.mfa_at, s.session_id,
               coalesce((s.access -> p_practice::text ->> 'passkey')::boolean, false),
               p_now - s.last_seen_at >= p_touch_after,
               i.idle
          from public.session s
               -- The practice's idle timeout for its members, the installation's otherwise.
               cross join lateral (select coalesce(
                   make_interval(secs => (s.access -> p_practice::text ->> 'idle')::float8),
                   p_idle) as idle) i
         where s.token_hash = p_token and s.revoked_at is null and s.expires_at > p_now
           and s.last_seen_at > p_now - i.idle
           -- The practice's absolute lifetime, when it sets one.
           and (s.created_at > p_now - make_interval(
                   secs => (s.access -> p_practice::text ->> 'absolute')::float8)) is not false
           -- One-time filter, evaluated first: what the session's policy reads.
           and (select set_config('chartroom.session_hash', encode(p_token, 'hex'), true)
                    || set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true)
                    || set_config('chartroom.now', p_now::text, true)) is not null
    $$;
grant execute on function app.enter(bytea, uuid, timestamptz, interval, interval) to chartroom_runtime;
