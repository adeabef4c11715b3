-- Patients' right of access (HIPAA 164.524; issue 20 part 1, req PR-01, PR-02).
--
-- A right-of-access request belongs to its practice and its patient. Owners, admins and
-- clinicians track them (the privacy officer's work, and the clinicians who produce the copy);
-- reception does not, since a denial's written reason may rest on clinical judgement
-- (164.524(a)(3)). The deadline is computed from the receipt (`domain::rights`): 30 days,
-- and at most one 30-day extension with a written reason. The database keeps the same shape:
-- one extension column (a second extension has nowhere to go), the deadline a check on the
-- receipt time and whether it was extended, a denial only with its reason, a closed request
-- with its closing time.
--
-- What a person typed — the third-party recipient the copy is to go to (164.524(c)(3)(ii)),
-- the extension's reason, the denial's reason — is stored only as field ciphertexts (`*_enc`,
-- bound to practice, `access_request`, column and request id); the audit log carries none of
-- it. The overdue alert is raised once per request, by the owner role's job
-- (`overdue_alerted_at`).

create table access_request (
    practice_id uuid not null references practice (practice_id),
    request_id uuid not null,
    patient_id uuid not null,
    received_at timestamptz not null,
    form text not null constraint access_request_form check (form in ('fhir_json', 'html', 'paper')),
    -- A third party the copy goes to, when not the patient (sealed); null: the patient.
    recipient_enc bytea check (length(recipient_enc) between 1 and 16384),
    status text not null default 'open' constraint access_request_status check (status in
        ('open', 'extended', 'granted', 'denied')),
    due_at timestamptz not null,
    extended_at timestamptz,
    extension_reason_enc bytea check (length(extension_reason_enc) between 1 and 16384),
    denial_reason_enc bytea check (length(denial_reason_enc) between 1 and 16384),
    closed_at timestamptz,
    closed_by uuid references app_user (user_id),
    -- The disclosure recorded when the copy went to a third party.
    disclosure_id uuid,
    overdue_alerted_at timestamptz,
    created_by uuid references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, request_id),
    constraint access_request_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint access_request_extension_whole check (
        (extended_at is null) = (extension_reason_enc is null)),
    constraint access_request_due check (
        due_at = received_at + interval '720 hours' * (case when extended_at is null then 1 else 2 end)),
    constraint access_request_extended_in_time check (
        extended_at is null or extended_at < received_at + interval '720 hours'),
    constraint access_request_denial_reason check ((status = 'denied') = (denial_reason_enc is not null)),
    constraint access_request_closed_at check ((status in ('granted', 'denied')) = (closed_at is not null)),
    constraint access_request_status_extended check (status <> 'extended' or extended_at is not null)
);
create index access_request_patient_idx on access_request (practice_id, patient_id, received_at);
create index access_request_open_idx on access_request (practice_id, due_at) where closed_at is null;

alter table access_request enable row level security;
alter table access_request force row level security;

create policy access_request_track on access_request for all to chartroom_runtime
    using (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'clinician'])
    with check (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'clinician']);
create policy owner_all on access_request for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert on access_request to chartroom_runtime;
grant update (status, due_at, extended_at, extension_reason_enc, denial_reason_enc, closed_at,
    closed_by, disclosure_id, updated_at) on access_request to chartroom_runtime;
