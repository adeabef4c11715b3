-- Client links and intake forms (issue 19).
--
-- A client link is what an SMS or email carries: an opaque token, nothing else. The database
-- keeps only the token's SHA-256 digest, the purpose the link was made for (`intake`,
-- `booking_manage`), the patient and the object it opens (an intake request, an appointment),
-- when it expires, and when it was used or revoked.
--
-- The link holder has no session. The public pages enter a practice through
-- `app.enter_link(digest, purpose, now)`, which resolves a digest to its practice and link only
-- when the purpose matches and the link is live (not expired, used or revoked), and gives the
-- transaction one pseudo-role, `client_link`, that no member ever holds, with the link and its
-- patient as transaction-local settings. The policies below give that role exactly what the
-- link needs: its own link row, its own intake request, the prefill of its own patient (name
-- and date of birth, sealed: opened by the server in an audited transaction), one response
-- to its request, and its own appointment.
--
-- Intake answers, the typed signature name and the client's address are sealed
-- (`*_enc`, store::sealed_columns); nothing of them is in the clear. The chart shows an intake
-- only once the practice accepted it (`intake_request.status = 'accepted'`).

-- The appointment as the client confirmed it through a manage link.
alter table appointment add column client_confirmed_at timestamptz;
alter table appointment add column client_cancelled_late boolean not null default false;

create table client_link (
    practice_id uuid not null references practice (practice_id),
    link_id uuid not null,
    purpose text not null constraint client_link_purpose check (purpose in ('intake', 'booking_manage')),
    -- SHA-256 of the token; the token itself is never stored.
    digest bytea not null constraint client_link_digest_len check (octet_length(digest) = 32),
    patient_id uuid not null,
    -- The intake request or the appointment the link opens.
    subject_id uuid not null,
    created_by uuid references app_user (user_id),
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    revoked_at timestamptz,
    primary key (practice_id, link_id),
    constraint client_link_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint client_link_expiry check (expires_at > created_at)
);
-- The link holder's lookup by digest, across practices by nature (only `app.enter_link`
-- reads it); non-unique so it need not lead with the distribution column.
create index client_link_digest_idx on client_link (digest);
create index client_link_subject_idx on client_link (practice_id, subject_id);

create table intake_request (
    practice_id uuid not null references practice (practice_id),
    request_id uuid not null,
    patient_id uuid not null,
    form_id text not null constraint intake_request_form check (form_id ~ '^[a-z][a-z0-9_]{0,62}$'),
    form_version int4 not null constraint intake_request_version check (form_version between 1 and 10000),
    -- SHA-256 of the exact form definition sent.
    form_hash bytea not null constraint intake_request_form_hash check (octet_length(form_hash) = 32),
    status text not null
        constraint intake_request_status check (status in ('sent', 'submitted', 'accepted', 'rejected')),
    link_id uuid,
    requested_by uuid references app_user (user_id),
    created_at timestamptz not null,
    submitted_at timestamptz,
    decided_by uuid references app_user (user_id),
    decided_at timestamptz,
    reject_reason_enc bytea,
    primary key (practice_id, request_id),
    constraint intake_request_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint intake_request_link_fkey foreign key (practice_id, link_id)
        references client_link (practice_id, link_id)
);
create index intake_request_status_idx on intake_request (practice_id, status, created_at);
create index intake_request_patient_idx on intake_request (practice_id, patient_id);

create table intake_response (
    practice_id uuid not null,
    request_id uuid not null,
    patient_id uuid not null,
    -- The answers (JSON object of field key to value), sealed.
    answers_enc bytea not null,
    -- The name the client typed as their signature, sealed.
    signer_name_enc bytea not null,
    -- The client's address when they signed, sealed (never stored raw).
    client_address_enc bytea,
    -- The intent statement shown above the signature was the form's (hashed in form_hash).
    intent_shown boolean not null constraint intake_response_intent check (intent_shown),
    -- The client ticked "I agree to sign electronically".
    esign_consent boolean not null constraint intake_response_consent check (esign_consent),
    -- SHA-256 over the exact form version and the answers (domain::intake::evidence_hash).
    evidence_hash bytea not null constraint intake_response_evidence check (octet_length(evidence_hash) = 32),
    signed_at timestamptz not null,
    primary key (practice_id, request_id),
    constraint intake_response_request_fkey foreign key (practice_id, request_id)
        references intake_request (practice_id, request_id) on delete cascade,
    constraint intake_response_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade
);
create index intake_response_patient_idx on intake_response (practice_id, patient_id);

alter table client_link enable row level security;
alter table client_link force row level security;
alter table intake_request enable row level security;
alter table intake_request force row level security;
alter table intake_response enable row level security;
alter table intake_response force row level security;

-- The link and patient the transaction entered through `app.enter_link`.
create function app.link() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.link_id', true), '')::uuid $$;
create function app.link_patient() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.link_patient', true), '')::uuid $$;

-- Staff: the scheduling roles make, see and revoke links (the token is never stored).
create policy client_link_scheduling on client_link for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
-- The link holder: its own link only.
create policy client_link_holder on client_link for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()));
create policy client_link_holder_use on client_link for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()))
    with check (practice_id = (select app.practice()) and link_id = (select app.link()));
-- The public booking page makes the manage link of the booking it just made.
create policy client_link_online_booking on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and purpose = 'booking_manage');
-- `app.enter_link`'s lookup by digest (owner role, inside that function only).
create policy owner_link_lookup on client_link for select to chartroom_owner
    using (digest = decode(coalesce(current_setting('chartroom.link_digest', true), ''), 'hex'));

create policy intake_request_scheduling on intake_request for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy intake_request_holder on intake_request for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()));
create policy intake_request_holder_submit on intake_request for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()) and status = 'sent')
    with check (practice_id = (select app.practice()) and link_id = (select app.link()) and status = 'submitted');

create policy intake_response_scheduling on intake_response for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy intake_response_holder on intake_response for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and exists (select 1 from intake_request r
                             where r.practice_id = intake_response.practice_id
                               and r.request_id = intake_response.request_id
                               and r.patient_id = intake_response.patient_id
                               and r.link_id = (select app.link())));

-- The link holder reads its own patient's record (the prefill, opened and audited by the
-- server) and its own appointment, and changes only that appointment's client fields.
create policy patient_client_link on patient for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient()) and deleted_at is null);
create policy appointment_client_link on appointment for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient())
           and appointment_id in (select l.subject_id from client_link l
                                   where l.practice_id = appointment.practice_id
                                     and l.link_id = (select app.link())
                                     and l.purpose = 'booking_manage'));
create policy appointment_client_link_change on appointment for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient())
           and appointment_id in (select l.subject_id from client_link l
                                   where l.practice_id = appointment.practice_id
                                     and l.link_id = (select app.link())
                                     and l.purpose = 'booking_manage'))
    with check (practice_id = (select app.practice()) and patient_id = (select app.link_patient()));
create policy online_booking_client_link on online_booking for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient()));
create policy online_booking_client_link_change on online_booking for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient()))
    with check (practice_id = (select app.practice()) and patient_id = (select app.link_patient()));

create policy owner_all on client_link for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on intake_request for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on intake_response for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert on client_link to chartroom_runtime;
grant update (used_at, revoked_at) on client_link to chartroom_runtime;
grant select, insert on intake_request to chartroom_runtime;
grant update (status, link_id, submitted_at, decided_by, decided_at, reject_reason_enc)
    on intake_request to chartroom_runtime;
grant select, insert on intake_response to chartroom_runtime;

-- The link holder's entry: resolves `p_digest` to its practice and link when the link is of
-- `p_purpose` and live at `p_now`, enters that practice with the `client_link` pseudo-role, no
-- actor, and the link and its patient as settings; otherwise enters nothing and returns no
-- row (expired, used, revoked, wrong purpose and unknown are not told apart). SECURITY
-- DEFINER because the holder cannot read `client_link` before it has entered a practice; the
-- owner role reads it only through `owner_link_lookup`, keyed by the digest this function
-- sets and clears.
create function app.enter_link(p_digest bytea, p_purpose text, p_now timestamptz)
    returns table (practice_id uuid, link_id uuid, patient_id uuid, subject_id uuid, expires_at timestamptz)
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        r record;
        n int := 0;
    begin
        perform set_config('chartroom.practice_id', '', true);
        perform set_config('chartroom.actor_id', '', true);
        perform set_config('chartroom.roles', '', true);
        perform set_config('chartroom.link_id', '', true);
        perform set_config('chartroom.link_patient', '', true);
        perform set_config('chartroom.link_digest', encode(p_digest, 'hex'), true);
        for r in select l.practice_id, l.link_id, l.patient_id, l.subject_id, l.expires_at
                   from public.client_link l
                  where l.digest = p_digest and l.purpose = p_purpose
                    and l.used_at is null and l.revoked_at is null and l.expires_at > p_now
                  limit 2
        loop
            n := n + 1;
            practice_id := r.practice_id;
            link_id := r.link_id;
            patient_id := r.patient_id;
            subject_id := r.subject_id;
            expires_at := r.expires_at;
        end loop;
        perform set_config('chartroom.link_digest', '', true);
        if n <> 1 then
            return;
        end if;
        perform set_config('chartroom.practice_id', practice_id::text, true);
        perform set_config('chartroom.roles', '{client_link}', true);
        perform set_config('chartroom.link_id', link_id::text, true);
        perform set_config('chartroom.link_patient', patient_id::text, true);
        return next;
    end
    $$;
alter function app.enter_link(bytea, text, timestamptz) owner to chartroom_owner;
revoke all on function app.enter_link(bytea, text, timestamptz) from public;
grant execute on function app.enter_link(bytea, text, timestamptz) to chartroom_runtime;

-- Busy times for the manage link's reschedule too: the `client_link` role learns times only,
-- never who (as the public booking page).
create or replace function app.online_booking_busy(p_clinician uuid, p_from timestamptz, p_to timestamptz)
    returns table (starts_at timestamptz, ends_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select a.starts_at, a.ends_at from public.appointment a
         where a.practice_id = app.practice()
           and app.actor_roles() && array['online_booking', 'client_link', 'clinician', 'reception']
           and a.clinician_id = p_clinician
           and a.status not in ('cancelled', 'no_show')
           and a.starts_at < p_to and a.ends_at > p_from
    $$;
