-- Vendor support access.
--
-- Support staff are principals outside every practice (`app_user.kind = 'support'`): they can
-- never be members. They see nothing of a practice until one of its owners approves a grant
-- (scope, reason, at most 72 hours). The grant is visible to the practice's owners and admins,
-- revocable at once, and enforced here: app.enter and app.actor_roles derive the support
-- principal's roles in the practice from its active grant alone (`scheduling` → reception's
-- view, `clinical` → a clinician's view of every patient), so every policy applies unchanged.
-- The server keeps support sessions read-only, flags every audit event made under a grant as
-- support access and records a `support_access` disclosure for each patient touched.

alter table app_user add column kind text not null default 'staff'
    check (kind in ('staff', 'support'));

-- SECURITY DEFINER (owner): the inserting role may not see the user row it adds; this only
-- answers whether the new member is a support principal.
create function app.reject_support_member() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, public
    as $$
    begin
        if exists (select 1 from public.app_user u where u.user_id = new.user_id and u.kind = 'support') then
            raise exception 'support staff cannot be members of a practice'
                using errcode = 'check_violation', constraint = 'membership_not_support';
        end if;
        return new;
    end
    $$;
create trigger membership_not_support before insert or update on membership
    for each row execute function app.reject_support_member();

create table support_grant (
    practice_id uuid not null references practice (practice_id),
    grant_id uuid not null,
    support_user_id uuid not null references app_user (user_id),
    scope text not null check (scope in ('scheduling', 'clinical')),
    reason_enc bytea not null check (length(reason_enc) between 1 and 16384),
    approved_by uuid not null references app_user (user_id),
    approved_at timestamptz not null,
    expires_at timestamptz not null,
    revoked_by uuid references app_user (user_id),
    revoked_at timestamptz,
    primary key (practice_id, grant_id),
    constraint support_grant_window
        check (expires_at > approved_at and expires_at <= approved_at + interval '72 hours'),
    constraint support_grant_revoked check ((revoked_by is null) = (revoked_at is null))
);
create index support_grant_user_idx on support_grant (practice_id, support_user_id, expires_at);

alter table support_grant enable row level security;
alter table support_grant force row level security;
create policy support_grant_practice on support_grant for select to chartroom_runtime
    using (practice_id = (select app.practice())
           and ((select app.actor_roles()) && array['owner', 'admin']
                or support_user_id = (select app.actor())));
create policy support_grant_approve on support_grant for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner']
                and approved_by = (select app.actor()));
create policy support_grant_revoke on support_grant for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()));
create policy owner_all on support_grant for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on support_grant to chartroom_runtime;
grant update (revoked_by, revoked_at) on support_grant to chartroom_runtime;

-- The active grant of `p_user` in `p_practice` at `p_now`, if any: (grant id, scope).
-- SECURITY DEFINER (owner) so that app.enter can read it before the actor is set; the owner's
-- policy still bounds the read to the practice being entered.
create function app.support_grant_for(p_practice uuid, p_user uuid, p_now timestamptz,
                                      out grant_id uuid, out scope text)
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select g.grant_id, g.scope from public.support_grant g
         where g.practice_id = p_practice and g.support_user_id = p_user
           and g.revoked_at is null and g.approved_at <= p_now and g.expires_at > p_now
         order by g.expires_at desc limit 1
    $$;

-- The roles a grant gives in the practice.
create function app.support_roles(p_scope text) returns text[]
    language sql immutable parallel safe
    as $$ select case p_scope when 'clinical' then array['clinician'] when 'scheduling' then array['reception'] end $$;

-- The actor's roles through an active support grant (null without one). A plain function call
-- (never inlined), so members, for whom actor_roles never reaches it, pay nothing for it.
create function app.support_actor_roles() returns text[]
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select app.support_roles(g.scope)
          from app.support_grant_for(app.practice(), app.actor(), app.now()) g
         where g.grant_id is not null
    $$;

create or replace function app.actor_roles() returns text[]
    language sql stable parallel safe
    as $$
        select coalesce(
            (select m.roles from public.membership m
              where m.practice_id = app.practice() and m.user_id = app.actor()),
            app.support_actor_roles(),
            '{}'::text[])
    $$;

-- A clinical-scope grant sees every patient of the practice (read-only, audited).
create or replace function app.clinical_visible(p_patient uuid) returns boolean
    language sql stable parallel safe
    as $$
        select p_patient is not null
           and (select app.actor_roles()) && array['clinician']
           and ((select app.practice_wide_clinical())
                or app.care_team(p_patient)
                or app.break_glass_grant(p_patient) is not null
                or coalesce((select g.scope = 'clinical'
                               from app.support_grant_for(app.practice(), app.actor(), app.now()) g),
                            false))
    $$;

-- app.enter: a support principal enters through its active grant; the grant id is returned so
-- the server can keep the session read-only and flag its audit events.
drop function app.enter(bytea, uuid, timestamptz, interval, interval);
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval,
                          out user_id uuid, out roles text[], out amr text[], out mfa_at timestamptz,
                          out session_id uuid, out require_passkey boolean, out support_grant uuid)
    returns setof record
    language plpgsql volatile
    as $$
    declare
        v_seen timestamptz;
        v_created timestamptz;
        v_idle interval;
        v_abs interval;
        v_scope text;
    begin
        perform set_config('chartroom.session_hash', encode(p_token, 'hex'), true),
                set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true),
                set_config('chartroom.now', p_now::text, true);
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
        if roles is null and p_practice is not null then
            select g.grant_id, g.scope into support_grant, v_scope
              from app.support_grant_for(p_practice, user_id, p_now) g;
            if support_grant is not null then
                roles := app.support_roles(v_scope);
            end if;
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
grant execute on function app.enter(bytea, uuid, timestamptz, interval, interval) to chartroom_runtime;

-- A support principal's id by sign-in email (for an owner approving a grant: the runtime role
-- cannot list users outside its practice). Returns null for anyone who is not support staff.
create function app.support_user_by_email(p_email text) returns uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select u.user_id from public.app_user u
         where u.email = lower(p_email) and u.kind = 'support' and u.status = 'active'
    $$;
