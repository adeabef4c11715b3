-- Sign-in throttling and the public client pages' per-address limit, shared by every server
-- replica on this database (issue 21, several replicas): before this, each process counted on
-- its own, so N replicas let an attacker make N times the attempts.
--
-- A row is one throttled key: the SHA-256 of a domain-separated, normalized account email or
-- client address (never the email or address in clear), with its failures in the current
-- window. Rows live until `expires_at` (the end of the window after the last counted
-- attempt); the passkey-challenge sweep job deletes expired ones (`app.throttle_sweep`). An
-- unkeyed hash of an IPv4 address can be reversed by trying every address, so the table is
-- kept small and short-lived, holds no time other than the window's, and is reachable by the
-- runtime role only (no practice, no user: nothing here is about a patient).
create table auth_throttle (
    key_hash bytea primary key
        constraint auth_throttle_key_len check (octet_length(key_hash) = 32),
    failures integer not null constraint auth_throttle_failures check (failures > 0),
    last_at timestamptz not null,
    blocked_until timestamptz,
    alerted boolean not null default false,
    expires_at timestamptz not null
);
create index auth_throttle_expires_idx on auth_throttle (expires_at);

alter table auth_throttle enable row level security;
alter table auth_throttle force row level security;

create policy auth_throttle_runtime on auth_throttle for all to chartroom_runtime
    using (true) with check (true);
create policy owner_all on auth_throttle for all to chartroom_owner
    using (true) with check (true);

grant select, insert, update, delete on auth_throttle to chartroom_runtime;

-- The end of the longest wait among `p_keys` still running at `p_now`, or null: the attempt
-- may be checked.
create function app.throttle_wait(p_keys bytea[], p_now timestamptz) returns timestamptz
    language sql stable
    set search_path = pg_catalog, public
    as $$
    select max(t.blocked_until) from public.auth_throttle t
     where t.key_hash = any (p_keys) and t.expires_at >= p_now and t.blocked_until > p_now
    $$;

-- Counts one failure for each of `p_keys` (with its free failures in `p_free`) in one round
-- trip: a key whose window ended starts over; past its free failures each failure doubles
-- the wait (1 s, 2 s, 4 s, …, at most `p_max_delay`). Returns whether this failure started a
-- throttling burst for any key (one alert per burst). Concurrent calls for one key queue on
-- its row, so two replicas count together.
create function app.throttle_fail(p_keys bytea[], p_free integer[], p_now timestamptz,
                                  p_window interval, p_max_delay interval) returns boolean
    language plpgsql volatile
    set search_path = pg_catalog, public
    as $$
    declare
        v_burst boolean := false;
        v_key bytea;
        v_free integer;
        v_failures integer;
        v_alerted boolean;
    begin
        for i in 1 .. coalesce(array_length(p_keys, 1), 0) loop
            v_key := p_keys[i];
            v_free := coalesce(p_free[i], 2147483647);
            insert into public.auth_throttle as t
                (key_hash, failures, last_at, blocked_until, alerted, expires_at)
            values (v_key, 1, p_now, null, false, p_now + p_window)
            on conflict (key_hash) do update set
                failures = case when t.expires_at < p_now then 1
                                else least(t.failures, 2147483646) + 1 end,
                blocked_until = case when t.expires_at < p_now then null else t.blocked_until end,
                alerted = case when t.expires_at < p_now then false else t.alerted end,
                last_at = p_now,
                expires_at = p_now + p_window
            returning t.failures, t.alerted into v_failures, v_alerted;
            if v_failures > v_free then
                update public.auth_throttle t set
                    blocked_until = p_now + least(
                        make_interval(secs => power(2, least(v_failures - v_free - 1, 20))),
                        p_max_delay),
                    alerted = true
                 where t.key_hash = v_key;
                if not v_alerted then
                    v_burst := true;
                end if;
            end if;
        end loop;
        return v_burst;
    end
    $$;

-- The public client pages: refused (the wait's end) while `p_key` waits; otherwise admitted
-- and counted like a failure, in one round trip.
create function app.throttle_admit(p_key bytea, p_free integer, p_now timestamptz,
                                   p_window interval, p_max_delay interval) returns timestamptz
    language plpgsql volatile
    set search_path = pg_catalog, public
    as $$
    declare
        v_wait timestamptz;
    begin
        v_wait := app.throttle_wait(array[p_key], p_now);
        if v_wait is not null then
            return v_wait;
        end if;
        perform app.throttle_fail(array[p_key], array[p_free], p_now, p_window, p_max_delay);
        return null;
    end
    $$;

-- Housekeeping: removes rows whose window ended before `p_now`; returns how many.
create function app.throttle_sweep(p_now timestamptz) returns bigint
    language sql volatile
    set search_path = pg_catalog, public
    as $$
    with gone as (delete from public.auth_throttle t where t.expires_at < p_now returning 1)
    select count(*) from gone
    $$;

revoke all on function app.throttle_wait(bytea[], timestamptz) from public;
revoke all on function app.throttle_fail(bytea[], integer[], timestamptz, interval, interval) from public;
revoke all on function app.throttle_admit(bytea, integer, timestamptz, interval, interval) from public;
revoke all on function app.throttle_sweep(timestamptz) from public;
grant execute on function app.throttle_wait(bytea[], timestamptz) to chartroom_runtime;
grant execute on function app.throttle_fail(bytea[], integer[], timestamptz, interval, interval) to chartroom_runtime;
grant execute on function app.throttle_admit(bytea, integer, timestamptz, interval, interval) to chartroom_runtime;
grant execute on function app.throttle_sweep(timestamptz) to chartroom_runtime;
