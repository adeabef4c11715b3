-- Security incidents and breach clocks (issue 20, part 3; req IR-01, IR-02, IR-03).
--
-- An incident belongs to its practice and only its owners and admins see it. Every clock is
-- computed from `discovered_at` (`domain::incident`); the row keeps the terms that applied at
-- discovery (the BAA's notice period in hours, whether GDPR applies). What a person typed —
-- the description, the response and outcome notes, the four factors of the risk assessment —
-- may name patients, so it is stored only as field ciphertexts (`*_enc`, bound to practice,
-- `incident`, column and incident id). Categories and states are closed sets the database
-- checks. The incident cannot be closed as "not a breach" unless the four factors are recorded
-- and conclude a low probability of compromise (HIPAA 164.402(2)): a check constraint, so no
-- code path can skip it.
--
-- Scoping (req IR-03): the patients an incident affected, found from the audit log, are kept
-- as ids with the state of residence each had when scoped (`incident_affected`); no foreign key
-- to `patient`, like the audit log, so the evidence outlives a purged record.
--
-- Patient state of residence (`patient_residence`): a two-letter code (a state alone is not an
-- identifier under 164.514(b)(2)(i)(B)), kept beside the patient under the same isolation;
-- the scheduling roles record it, owners and admins read it (never names or addresses) to
-- count affected individuals per state for the media threshold (164.406).

create table patient_residence (
    practice_id uuid not null,
    patient_id uuid not null,
    state text not null constraint patient_residence_state check (state ~ '^[A-Z]{2}$'),
    updated_at timestamptz not null,
    primary key (practice_id, patient_id),
    constraint patient_residence_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade
);

create table incident (
    practice_id uuid not null references practice (practice_id),
    incident_id uuid not null,
    discovered_at timestamptz not null,
    detection_source text not null constraint incident_detection_source check (detection_source in
        ('staff_report', 'audit_review', 'patient_report', 'vendor_notice', 'automated_alert',
         'law_enforcement', 'other')),
    description_enc bytea not null check (length(description_enc) between 1 and 16384),
    status text not null default 'open' constraint incident_status check (status in
        ('open', 'assessing', 'contained', 'closed_breach', 'closed_not_breach')),
    baa_notice_hours int4 not null constraint incident_baa_notice_hours check (baa_notice_hours between 1 and 1440),
    gdpr boolean not null default false,
    response_enc bytea check (length(response_enc) between 1 and 16384),
    outcome_enc bytea check (length(outcome_enc) between 1 and 16384),
    -- The four-factor risk assessment (164.402(2)(i)-(iv)).
    nature_enc bytea check (length(nature_enc) between 1 and 16384),
    person_enc bytea check (length(person_enc) between 1 and 16384),
    acquired_enc bytea check (length(acquired_enc) between 1 and 16384),
    mitigation_enc bytea check (length(mitigation_enc) between 1 and 16384),
    low_probability boolean,
    assessed_at timestamptz,
    -- The last scoping run (the affected patients are in `incident_affected`).
    scope_kind text constraint incident_scope_kind check (scope_kind in ('user', 'session', 'support_grant')),
    scope_subject uuid,
    scope_from timestamptz,
    scope_to timestamptz,
    scoped_at timestamptz,
    affected_count int4 constraint incident_affected_count check (affected_count >= 0),
    created_by uuid references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    closed_at timestamptz,
    primary key (practice_id, incident_id),
    constraint incident_assessment_whole check (
        (nature_enc is null) = (person_enc is null)
        and (nature_enc is null) = (acquired_enc is null)
        and (nature_enc is null) = (mitigation_enc is null)
        and (nature_enc is null) = (low_probability is null)
        and (nature_enc is null) = (assessed_at is null)),
    constraint incident_not_breach_needs_assessment check (
        status <> 'closed_not_breach' or (nature_enc is not null and low_probability)),
    constraint incident_closed_at check ((status in ('closed_breach', 'closed_not_breach')) = (closed_at is not null)),
    constraint incident_scope_whole check (
        (scope_kind is null) = (scope_subject is null)
        and (scope_kind is null) = (scope_from is null)
        and (scope_kind is null) = (scope_to is null)
        and (scope_kind is null) = (scoped_at is null)
        and (scope_kind is null) = (affected_count is null)
        and (scope_from is null or scope_from < scope_to))
);
create index incident_status_idx on incident (practice_id, status, discovered_at);

create table incident_affected (
    practice_id uuid not null,
    incident_id uuid not null,
    patient_id uuid not null,
    -- The patient's state of residence when scoped; null when none was recorded.
    state text constraint incident_affected_state check (state ~ '^[A-Z]{2}$'),
    events int4 not null constraint incident_affected_events check (events >= 1),
    primary key (practice_id, incident_id, patient_id),
    constraint incident_affected_incident_fkey foreign key (practice_id, incident_id)
        references incident (practice_id, incident_id) on delete cascade
);

-- Notification letters: to whom (a kind), when, how many; never contact details or text.
create table incident_letter (
    practice_id uuid not null,
    incident_id uuid not null,
    letter_id uuid not null,
    recipient_kind text not null constraint incident_letter_recipient_kind check (recipient_kind in
        ('individual', 'next_of_kin', 'practice', 'hhs', 'media', 'state_attorney_general',
         'supervisory_authority')),
    sent_on date not null,
    letters int4 not null constraint incident_letter_letters check (letters between 1 and 10000000),
    recorded_by uuid references app_user (user_id),
    created_at timestamptz not null,
    primary key (practice_id, incident_id, letter_id),
    constraint incident_letter_incident_fkey foreign key (practice_id, incident_id)
        references incident (practice_id, incident_id) on delete cascade
);

-- The alerts raised as clocks came due, once per clock (the alerts job, as the owner role).
create table incident_alert (
    practice_id uuid not null,
    incident_id uuid not null,
    clock text not null constraint incident_alert_clock check (clock ~ '^[a-z0-9_]+$' and length(clock) <= 40),
    due_at timestamptz not null,
    alerted_at timestamptz not null,
    primary key (practice_id, incident_id, clock),
    constraint incident_alert_incident_fkey foreign key (practice_id, incident_id)
        references incident (practice_id, incident_id) on delete cascade
);

alter table patient_residence enable row level security;
alter table patient_residence force row level security;
alter table incident enable row level security;
alter table incident force row level security;
alter table incident_affected enable row level security;
alter table incident_affected force row level security;
alter table incident_letter enable row level security;
alter table incident_letter force row level security;
alter table incident_alert enable row level security;
alter table incident_alert force row level security;

create policy patient_residence_scheduling on patient_residence for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy patient_residence_manage_read on patient_residence for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy incident_manage on incident for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy incident_affected_manage on incident_affected for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy incident_letter_manage on incident_letter for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy incident_alert_manage on incident_alert for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);

create policy owner_all on patient_residence for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on incident for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on incident_affected for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on incident_letter for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on incident_alert for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert, update on patient_residence to chartroom_runtime;
grant select, insert on incident to chartroom_runtime;
grant update (status, response_enc, outcome_enc, nature_enc, person_enc, acquired_enc,
    mitigation_enc, low_probability, assessed_at, scope_kind, scope_subject, scope_from, scope_to,
    scoped_at, affected_count, updated_at, closed_at) on incident to chartroom_runtime;
grant select, insert, delete on incident_affected to chartroom_runtime;
grant select, insert on incident_letter to chartroom_runtime;
grant select on incident_alert to chartroom_runtime;

-- The user and lifetime of session `p_session`, for scoping an incident by a session: only
-- for an owner or admin inside a practice the session's user belongs to. SECURITY DEFINER
-- because the runtime role sees only its own sessions; it answers ids and times, never the
-- token hash or user agent.
create function app.incident_session(p_session uuid)
    returns table (user_id uuid, started_at timestamptz, ended_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select s.user_id, s.created_at, least(coalesce(s.revoked_at, s.expires_at), s.expires_at)
          from public.session s
         where s.session_id = p_session
           and app.practice() is not null
           and app.actor_roles() && array['owner', 'admin']
           and exists (select 1 from public.membership m
                        where m.practice_id = app.practice() and m.user_id = s.user_id)
    $$;
alter function app.incident_session(uuid) owner to chartroom_owner;
revoke all on function app.incident_session(uuid) from public;
grant execute on function app.incident_session(uuid) to chartroom_runtime;

-- Emergency mode (req CP-03; a contingency plan's emergency mode operation, 164.308(a)(7)(ii)(C)):
-- read-only operation. The operator switches the whole installation (`chartroom emergency`,
-- the owner role: `installation_emergency`, one row while on); a practice's owner switches
-- their own practice (`practice_emergency`). While either is on, the server refuses every
-- change to the practice's records (503) and keeps serving reads, each audited as always; if
-- the audit cannot be written, the read fails (no unaudited access).
create table installation_emergency (
    singleton boolean primary key default true check (singleton),
    since timestamptz not null
);
create table practice_emergency (
    practice_id uuid not null references practice (practice_id),
    since timestamptz not null,
    switched_by uuid references app_user (user_id),
    primary key (practice_id)
);
alter table installation_emergency enable row level security;
alter table installation_emergency force row level security;
alter table practice_emergency enable row level security;
alter table practice_emergency force row level security;
create policy installation_emergency_read on installation_emergency for select to chartroom_runtime
    using (true);
create policy owner_all on installation_emergency for all to chartroom_owner
    using (true) with check (true);
create policy practice_emergency_read on practice_emergency for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy practice_emergency_switch on practice_emergency for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner']);
create policy owner_all on practice_emergency for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select on installation_emergency to chartroom_runtime;
grant select, insert, delete on practice_emergency to chartroom_runtime;
