-- Identity: mandatory second factor (TOTP, WebAuthn passkeys, recovery codes), sessions that
-- record how they were authenticated, per-practice session lifetimes within bounds, and the
-- installation's own audit log for sign-in events that belong to no practice.
--
-- Runs as the owner role. Every table here is per user (not per practice): row-level security
-- lets the runtime role reach only the acting user's rows (chartroom.actor_id), or one row
-- named by a transaction-local lookup setting during sign-in.

-- The installation's security log. Sign-in attempts (including those for unknown emails),
-- throttling and MFA changes are recorded here, on the same hash chain, Merkle tree and signed
-- checkpoints as a practice's log. It is a practice row of kind 'system' with the nil id, so
-- the audit machinery needs no second code path; nobody can be a member of it.
alter table practice add column kind text not null default 'practice'
    check (kind in ('practice', 'system'));
alter table practice add constraint practice_system_id
    check ((kind = 'system') = (practice_id = '00000000-0000-0000-0000-000000000000'));
select set_config('chartroom.practice_id', '00000000-0000-0000-0000-000000000000', true);
insert into practice (practice_id, name, kind)
    values ('00000000-0000-0000-0000-000000000000', 'Installation security log', 'system');
select set_config('chartroom.practice_id', '', true);
alter table membership add constraint membership_not_system
    check (practice_id <> '00000000-0000-0000-0000-000000000000');

-- Session lifetimes per practice, within bounds (HIPAA 164.312(a)(2)(iii); ASVS 7.3.1/7.3.2):
-- idle 2–60 minutes, absolute 1–24 hours. Null means the server's default. A practice may
-- also require a passkey (phishing-resistant) for its owners and admins.
alter table practice add column session_idle_seconds integer
    check (session_idle_seconds between 120 and 3600);
alter table practice add column session_absolute_seconds integer
    check (session_absolute_seconds between 3600 and 86400);
alter table practice add column require_passkey_for_managers boolean not null default false;

-- How a session was authenticated. amr (RFC 8176 method names): 'pwd' password, 'otp' TOTP,
-- 'hwk' passkey, 'rec' recovery code. mfa_at is when a second factor (or a passkey) was last
-- presented on this session: null means password only (the session may only enroll a factor);
-- step-up compares it with the clock.
alter table session add column session_id uuid not null default gen_random_uuid();
alter table session add constraint session_id_key unique (session_id);
alter table session add column amr text[] not null default '{pwd}'
    check (amr <@ array['pwd', 'otp', 'hwk', 'rec'] and cardinality(amr) between 1 and 4);
alter table session add column mfa_at timestamptz;
alter table session add column user_agent text check (length(user_agent) <= 200);

-- TOTP (RFC 6238). The secret is sealed by the server (AES-256-GCM, bound to the user id);
-- last_step is the last accepted time step, so a code is accepted once (req AU-02).
create table user_totp (
    user_id uuid primary key references app_user (user_id),
    secret_sealed bytea not null check (length(secret_sealed) between 28 and 256),
    confirmed_at timestamptz,
    last_step bigint not null default 0,
    created_at timestamptz not null
);

-- Recovery codes: ten single-use codes, stored as SHA-256 hashes (each code has 80 random bits).
create table user_recovery_code (
    user_id uuid not null references app_user (user_id),
    code_hash bytea not null check (length(code_hash) = 32),
    used_at timestamptz,
    created_at timestamptz not null,
    primary key (user_id, code_hash)
);

-- WebAuthn passkeys (webauthn-rs `Passkey`, serialized). The credential id is public.
create table user_passkey (
    credential_id bytea primary key check (length(credential_id) between 16 and 1023),
    user_id uuid not null references app_user (user_id),
    name text not null check (length(name) between 1 and 100),
    passkey jsonb not null,
    created_at timestamptz not null,
    last_used_at timestamptz
);
create index user_passkey_user_idx on user_passkey (user_id);

-- WebAuthn ceremony state between its two requests: single use, short-lived.
create table auth_challenge (
    challenge_id uuid primary key,
    user_id uuid references app_user (user_id),
    kind text not null check (kind in ('passkey_register', 'passkey_second_factor', 'passkey_sign_in')),
    state jsonb not null,
    expires_at timestamptz not null
);

create function app.lookup_credential() returns bytea
    language sql stable parallel safe
    as $$ select decode(nullif(current_setting('chartroom.lookup_credential', true), ''), 'hex') $$;
create function app.challenge() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.challenge_id', true), '')::uuid $$;

alter table user_totp enable row level security;
alter table user_totp force row level security;
alter table user_recovery_code enable row level security;
alter table user_recovery_code force row level security;
alter table user_passkey enable row level security;
alter table user_passkey force row level security;
alter table auth_challenge enable row level security;
alter table auth_challenge force row level security;

create policy user_totp_self on user_totp for all to chartroom_runtime
    using (user_id = (select app.actor())) with check (user_id = (select app.actor()));
create policy user_recovery_code_self on user_recovery_code for all to chartroom_runtime
    using (user_id = (select app.actor())) with check (user_id = (select app.actor()));
create policy user_passkey_self on user_passkey for all to chartroom_runtime
    using (user_id = (select app.actor())) with check (user_id = (select app.actor()));
-- Passwordless sign-in finds the user by the credential the authenticator presented.
create policy user_passkey_lookup on user_passkey for select to chartroom_runtime
    using (credential_id = (select app.lookup_credential()));
create policy auth_challenge_named on auth_challenge for all to chartroom_runtime
    using (challenge_id = (select app.challenge()))
    with check (challenge_id = (select app.challenge())
                and (user_id is null or user_id = (select app.actor())));
-- Housekeeping: expired ceremony state may be removed by the server's periodic pass (the time
-- comes from the server's clock through a transaction-local setting).
create policy auth_challenge_expired on auth_challenge for delete to chartroom_runtime
    using (expires_at < nullif(current_setting('chartroom.purge_before', true), '')::timestamptz);
create policy auth_challenge_expired_read on auth_challenge for select to chartroom_runtime
    using (expires_at < nullif(current_setting('chartroom.purge_before', true), '')::timestamptz);
-- Passwordless sign-in reads the user it found by credential (status check).
create policy app_user_by_credential on app_user for select to chartroom_runtime
    using (user_id in (select p.user_id from user_passkey p
                        where p.credential_id = (select app.lookup_credential())));

create policy owner_all on user_totp for all to chartroom_owner using (true) with check (true);
create policy owner_all on user_recovery_code for all to chartroom_owner using (true) with check (true);
create policy owner_all on user_passkey for all to chartroom_owner using (true) with check (true);
create policy owner_all on auth_challenge for all to chartroom_owner using (true) with check (true);

grant select, insert, update, delete on user_totp to chartroom_runtime;
grant select, insert, update, delete on user_recovery_code to chartroom_runtime;
grant select, insert, update, delete on user_passkey to chartroom_runtime;
grant select, insert, delete on auth_challenge to chartroom_runtime;
grant update (session_idle_seconds, session_absolute_seconds, require_passkey_for_managers)
    on practice to chartroom_runtime;

-- app.enter, now with how the session was authenticated and the practice's own lifetimes.
-- Inside a practice, the idle timeout and absolute lifetime are the practice's when it set
-- them (within the bounds above); a session never outlives the server's absolute lifetime
-- (expires_at, fixed at sign-in). Outside a practice the server's defaults apply.
-- SECURITY INVOKER as before: every read goes through the caller's row-level security.
drop function app.enter(bytea, uuid, timestamptz, interval, interval);
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval,
                          out user_id uuid, out roles text[], out amr text[], out mfa_at timestamptz,
                          out session_id uuid, out require_passkey boolean)
    returns setof record
    language plpgsql volatile
    as $$
    declare
        v_seen timestamptz;
        v_created timestamptz;
        v_idle interval;
        v_abs interval;
    begin
        -- The practice is set before the session is known so that one statement can read the
        -- session, the membership and the practice through their policies; when the session
        -- does not check out, no row is returned and the caller discards the transaction.
        perform set_config('chartroom.session_hash', encode(p_token, 'hex'), true),
                set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true);
        select s.user_id, s.last_seen_at, s.created_at, s.amr, s.mfa_at, s.session_id,
               m.roles,
               make_interval(secs => coalesce(p.session_idle_seconds, 0)),
               make_interval(secs => coalesce(p.session_absolute_seconds, 0)),
               coalesce(p.require_passkey_for_managers, false)
          into user_id, v_seen, v_created, amr, mfa_at, session_id, roles, v_idle, v_abs, require_passkey
          from public.session s
          left join public.membership m on m.practice_id = p_practice and m.user_id = s.user_id
          left join public.practice p on p.practice_id = m.practice_id
         where s.token_hash = p_token and s.revoked_at is null and s.expires_at > p_now;
        if user_id is null then
            return;
        end if;
        if roles is null or v_idle = interval '0' then
            v_idle := p_idle;
        end if;
        if roles is not null and v_abs <> interval '0' and v_created <= p_now - v_abs then
            return;
        end if;
        if v_seen <= p_now - v_idle then
            return;
        end if;
        perform set_config('chartroom.actor_id', user_id::text, true);
        if p_now - v_seen >= p_touch_after then
            update public.session s set last_seen_at = p_now
             where s.token_hash = p_token and s.last_seen_at < p_now;
        end if;
        return next;
    end
    $$;
