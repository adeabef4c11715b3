-- Patients' right to amend (HIPAA 164.526; issue 20 part 2, req SIG-07, SIG-08).
--
-- An amendment request belongs to its practice and its patient, and names the record it asks
-- to change: a note (and the version the patient read), or another kind of record. Owners,
-- admins and clinicians track them, as right-of-access requests (migration 0037); reception
-- does not. The deadline is computed from the receipt (`domain::rights`): 60 days, and at most
-- one 30-day extension with a written reason. The database keeps the same shape: one
-- extension column, the deadline a check on the receipt time and whether it was extended, a
-- denial only with its reason, an accepted note request only with the note version that
-- carries the change (an amendment or an addendum made through the notes' own path), the
-- patient's statement of disagreement only after a denial, and the practice's rebuttal only
-- after a statement of disagreement (164.526(d)(1)(ii), (d)(3)).
--
-- What a person typed — the change asked for, the extension's and the denial's reasons, the
-- statement of disagreement, the rebuttal — is stored only as field ciphertexts (`*_enc`,
-- bound to practice, `amendment_request`, column and request id); the audit log carries none
-- of it. The overdue alert is raised once per request, by the owner role's job
-- (`overdue_alerted_at`).

-- A request naming a note names one of its patient's notes: the note's patient joins the key
-- the request refers to. A request names a signed note (the patient was shown it); one that
-- names a draft by mistake goes with that draft when a deleted draft is purged.
alter table clinical_note add constraint clinical_note_patient_note_key
    unique (practice_id, patient_id, note_id);

create table amendment_request (
    practice_id uuid not null references practice (practice_id),
    request_id uuid not null,
    patient_id uuid not null,
    received_at timestamptz not null,
    record_kind text not null constraint amendment_request_record_kind check (record_kind in
        ('note', 'demographics', 'appointment', 'perio_exam', 'intake', 'other')),
    note_id uuid,
    note_version integer check (note_version >= 1),
    requested_change_enc bytea not null check (length(requested_change_enc) between 1 and 65536),
    status text not null default 'open' constraint amendment_request_status check (status in
        ('open', 'extended', 'granted', 'denied')),
    due_at timestamptz not null,
    extended_at timestamptz,
    extension_reason_enc bytea check (length(extension_reason_enc) between 1 and 16384),
    denial_reason_enc bytea check (length(denial_reason_enc) between 1 and 16384),
    closed_at timestamptz,
    closed_by uuid references app_user (user_id),
    -- The note version that carries the accepted change, and whether it is an amendment or an
    -- addendum.
    landed_version integer check (landed_version >= 1),
    landed_kind text constraint amendment_request_landed_kind check (landed_kind in ('amendment', 'addendum')),
    disagreement_enc bytea check (length(disagreement_enc) between 1 and 65536),
    disagreement_at timestamptz,
    rebuttal_enc bytea check (length(rebuttal_enc) between 1 and 65536),
    rebuttal_at timestamptz,
    overdue_alerted_at timestamptz,
    created_by uuid references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, request_id),
    constraint amendment_request_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint amendment_request_note_fkey foreign key (practice_id, patient_id, note_id)
        references clinical_note (practice_id, patient_id, note_id) on delete cascade,
    constraint amendment_request_note_named check ((record_kind = 'note') = (note_id is not null)),
    constraint amendment_request_version_of_note check (note_version is null or note_id is not null),
    constraint amendment_request_extension_whole check (
        (extended_at is null) = (extension_reason_enc is null)),
    constraint amendment_request_due check (
        due_at = received_at + interval '1440 hours' + interval '720 hours' * (case when extended_at is null then 0 else 1 end)),
    constraint amendment_request_extended_in_time check (
        extended_at is null or extended_at < received_at + interval '1440 hours'),
    constraint amendment_request_denial_reason check ((status = 'denied') = (denial_reason_enc is not null)),
    constraint amendment_request_closed_at check ((status in ('granted', 'denied')) = (closed_at is not null)),
    constraint amendment_request_status_extended check (status <> 'extended' or extended_at is not null),
    constraint amendment_request_landed check (
        (status = 'granted' and record_kind = 'note') = (landed_version is not null)
        and (landed_version is null) = (landed_kind is null)),
    constraint amendment_request_disagreement check (
        (disagreement_enc is null) = (disagreement_at is null)
        and (disagreement_enc is null or status = 'denied')),
    constraint amendment_request_rebuttal check (
        (rebuttal_enc is null) = (rebuttal_at is null)
        and (rebuttal_enc is null or disagreement_enc is not null))
);
create index amendment_request_patient_idx on amendment_request (practice_id, patient_id, received_at);
create index amendment_request_note_idx on amendment_request (practice_id, note_id) where note_id is not null;
create index amendment_request_open_idx on amendment_request (practice_id, due_at) where closed_at is null;

alter table amendment_request enable row level security;
alter table amendment_request force row level security;

create policy amendment_request_track on amendment_request for all to chartroom_runtime
    using (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'clinician'])
    with check (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'clinician']);
create policy owner_all on amendment_request for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert on amendment_request to chartroom_runtime;
grant update (status, due_at, extended_at, extension_reason_enc, denial_reason_enc, closed_at,
    closed_by, landed_version, landed_kind, disagreement_enc, disagreement_at, rebuttal_enc,
    rebuttal_at, updated_at) on amendment_request to chartroom_runtime;
