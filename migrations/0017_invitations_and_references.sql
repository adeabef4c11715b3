-- Membership by invitation, and references checked where they are recorded.
--
-- 1. Invitations. An owner or admin no longer adds an account by email (the answer told them
--    whether the email had an account, and the person was not asked). They invite an email
--    with roles; the answer is the same whether or not an account exists, because nothing here
--    looks the account up. The invitee, signed in with a second factor, lists the invitations
--    addressed to their email and accepts or declines; only acceptance creates the membership.
--    An invitation expires (seven days, on the server's clock), can be revoked by the
--    practice, and is decided once.
--
--    The email is contact data: it is never stored. `email_tag` is an HMAC-SHA256 of the
--    normalized address under an installation key kept outside the database (derived from the
--    identity key that seals TOTP secrets); it reveals to a reader of the database only that
--    two invitations name the same address, never the address. The installation-wide key (not
--    a practice's data key) is what lets an invitee find their invitations in every practice.
--
--    The state is three nullable times (accepted, declined, revoked; at most one set) rather
--    than a status text, and a pending invitation is one with none set and not yet expired.
--
-- 2. Denied attempts named the patient in the URL as the patient touched, even when no such
--    patient exists in the practice (another practice's ids ended up in this practice's log).
--    app.patient_in_practice answers whether the patient exists in the practice being
--    audited, so the denial records `patient_id` only then and keeps the requested id in its
--    details as `requested_patient_id`.
--
-- 3. An amendment's `assistant_turn_id` named any UUID. There is no assistant-turn record yet
--    (the scribe, which will record every AI call as a turn, does not exist), so no id can
--    refer to one: a note version naming a turn is refused (`assistant_turn_unknown`). When
--    the scribe lands, this trigger becomes an existence check against its turn table, in the
--    note's practice.

create table membership_invitation (
    practice_id uuid not null references practice (practice_id),
    invitation_id uuid not null,
    email_tag bytea not null check (length(email_tag) = 32),
    roles text[] not null check (
        cardinality(roles) between 1 and 4
        and roles <@ array['owner', 'admin', 'clinician', 'reception']
    ),
    invited_by uuid not null references app_user (user_id),
    created_at timestamptz not null,
    expires_at timestamptz not null,
    accepted_at timestamptz,
    declined_at timestamptz,
    revoked_at timestamptz,
    -- The invitee (accepted, declined) or the owner or admin who revoked.
    decided_by uuid references app_user (user_id),
    primary key (practice_id, invitation_id),
    constraint membership_invitation_window
        check (expires_at > created_at and expires_at <= created_at + interval '30 days'),
    constraint membership_invitation_decided_once
        check (num_nonnulls(accepted_at, declined_at, revoked_at) <= 1
               and (decided_by is null) = (num_nonnulls(accepted_at, declined_at, revoked_at) = 0))
);
create index membership_invitation_created_idx
    on membership_invitation (practice_id, created_at);
-- The invitee's lookup is by address, across practices by nature (under Citus it fans out
-- to every shard; a non-unique index need not lead with the distribution column).
create index membership_invitation_tag_idx on membership_invitation (email_tag)
    where accepted_at is null and declined_at is null and revoked_at is null;

alter table membership_invitation enable row level security;
alter table membership_invitation force row level security;

-- The practice's owners and admins create, list and revoke its invitations.
create policy invitation_manage_read on membership_invitation for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy invitation_manage_insert on membership_invitation for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']
                and invited_by = (select app.actor()));
create policy invitation_manage_revoke on membership_invitation for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and decided_by = (select app.actor()));
grant select, insert on membership_invitation to chartroom_runtime;
grant update (revoked_at, decided_by) on membership_invitation to chartroom_runtime;

-- The owner role: bound to the practice set for the transaction, like its other policies;
-- and, while one of the functions below looks up the invitations of one address, to that
-- address's tag.
create function app.invitee_tag() returns bytea
    language sql stable parallel safe
    as $$ select decode(nullif(current_setting('chartroom.invitee_tag', true), ''), 'hex') $$;
create policy owner_all on membership_invitation for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_invitee on membership_invitation for select to chartroom_owner
    using (email_tag = (select app.invitee_tag()));

-- The pending invitations addressed to `p_tag` (the signed-in user's own address, tagged by
-- the server), with the inviting practice's name. SECURITY DEFINER (owner): the invitee is
-- not a member of those practices, so neither the invitations nor the practices' names are
-- visible to them through the runtime policies; the owner's policies bound the read to this
-- one tag. Nothing without a signed-in actor.
create function app.invitations_for(p_tag bytea, p_now timestamptz)
    returns table (invitation_id uuid, practice_id uuid, practice_name text, roles text[],
                   created_at timestamptz, expires_at timestamptz)
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_was text := current_setting('chartroom.invitee_tag', true);
    begin
        if app.actor() is null or p_tag is null then
            return;
        end if;
        perform set_config('chartroom.invitee_tag', encode(p_tag, 'hex'), true);
        return query
            select i.invitation_id, i.practice_id, p.name, i.roles, i.created_at, i.expires_at
              from public.membership_invitation i
              join public.practice p on p.practice_id = i.practice_id
             where i.email_tag = p_tag
               and i.accepted_at is null and i.declined_at is null and i.revoked_at is null
               and i.expires_at > p_now
             order by i.created_at, i.invitation_id
             limit 100;
        perform set_config('chartroom.invitee_tag', coalesce(v_was, ''), true);
    end
    $$;
revoke all on function app.invitations_for(bytea, timestamptz) from public;
grant execute on function app.invitations_for(bytea, timestamptz) to chartroom_runtime;

-- Accepts (p_accept) or declines one pending invitation addressed to `p_tag`, as the
-- signed-in actor: the invitation is claimed first (so two concurrent decisions cannot both
-- succeed), then, on acceptance, the actor becomes a member with the invited roles (the
-- membership triggers copy it onto the actor's live sessions at once). Returns the practice
-- and roles; no row when there is no such pending, unexpired invitation for this address
-- (unknown, another person's, expired, revoked or already decided all look the same).
-- SECURITY DEFINER (owner): the invitee holds no role in the practice, and only this function
-- may turn an invitation into a membership; the owner's policies bound it to the invitation's
-- practice, entered for the two statements and restored after. The caller audits on the
-- practice's log.
create function app.invitation_decide(p_invitation uuid, p_tag bytea, p_now timestamptz, p_accept boolean)
    returns table (practice_id uuid, roles text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_actor uuid := app.actor();
        v_entered text := current_setting('chartroom.practice_id', true);
        v_was text := current_setting('chartroom.invitee_tag', true);
        v_practice uuid;
        v_roles text[];
    begin
        if v_actor is null or p_tag is null then
            return;
        end if;
        perform set_config('chartroom.invitee_tag', encode(p_tag, 'hex'), true);
        select i.practice_id into v_practice from public.membership_invitation i
         where i.invitation_id = p_invitation and i.email_tag = p_tag;
        perform set_config('chartroom.invitee_tag', coalesce(v_was, ''), true);
        if v_practice is null then
            return;
        end if;
        perform set_config('chartroom.practice_id', v_practice::text, true);
        update public.membership_invitation i
           set accepted_at = case when p_accept then p_now end,
               declined_at = case when p_accept then null else p_now end,
               decided_by = v_actor
         where i.practice_id = v_practice and i.invitation_id = p_invitation and i.email_tag = p_tag
           and i.accepted_at is null and i.declined_at is null and i.revoked_at is null
           and i.expires_at > p_now
        returning i.roles into v_roles;
        if v_roles is not null and p_accept then
            insert into public.membership (practice_id, user_id, roles, created_at)
            values (v_practice, v_actor, v_roles, p_now);
        end if;
        perform set_config('chartroom.practice_id', coalesce(v_entered, ''), true);
        if v_roles is null then
            return;
        end if;
        practice_id := v_practice;
        roles := v_roles;
        return next;
    end
    $$;
revoke all on function app.invitation_decide(uuid, bytea, timestamptz, boolean) from public;
grant execute on function app.invitation_decide(uuid, bytea, timestamptz, boolean) to chartroom_runtime;

-- Whether `p_patient` exists (deleted or not) in the practice set for the transaction.
-- SECURITY DEFINER (owner): a denied attempt is recorded outside the actor's roles (they may
-- have none that sees patients); the owner's policy bounds the answer to the practice set,
-- and it reveals only whether a random 128-bit id names a patient there.
create function app.patient_in_practice(p_patient uuid) returns boolean
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select p_patient is not null and exists (
            select 1 from public.patient p
             where p.practice_id = app.practice() and p.patient_id = p_patient)
    $$;
revoke all on function app.patient_in_practice(uuid) from public;
grant execute on function app.patient_in_practice(uuid) to chartroom_runtime;

-- No assistant turn exists yet (see 3. above): a version naming one is refused.
create function app.note_version_assistant_turn() returns trigger
    language plpgsql
    as $$
    begin
        if new.assistant_turn_id is not null then
            raise exception 'no such assistant turn in this practice'
                using errcode = 'check_violation', constraint = 'assistant_turn_unknown';
        end if;
        return new;
    end
    $$;
create trigger note_version_assistant_turn before insert on clinical_note_version
    for each row when (new.assistant_turn_id is not null)
    execute function app.note_version_assistant_turn();
