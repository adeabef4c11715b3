-- Periodontal exams (perio charting by voice).
--
-- One row per exam. The whole charting session of the perio engine (settings, chart, cursor,
-- undo history, a final held for confirmation) is stored as one field ciphertext
-- (`session_enc`), bound by its associated data to (practice, perio_exam, session, exam id):
-- no probing depth, finding or dictated word is ever stored in the clear. `version` counts
-- the changes of the session; each change is one UPDATE guarded by the version it read
-- (optimistic concurrency, exposed to clients as an ETag).
--
-- Visibility: clinical content, so only actors for whom `app.clinical_visible(patient)` holds.
-- Today that is "holds the clinician role in the current practice"; the care-team work will
-- replace that one function (and nothing else here) to narrow it to the patient's care team.

-- Whether the actor may see and chart the clinical records of `p_patient` in the current
-- practice. Stable and SECURITY INVOKER: it reads membership through the caller's own
-- row-level security. Policies call it per row, so a later version may depend on the patient.
create function app.clinical_visible(p_patient uuid) returns boolean
    language sql stable parallel safe
    as $$ select p_patient is not null and (select app.actor_roles()) && array['clinician'] $$;

create table perio_exam (
    practice_id uuid not null references practice (practice_id),
    exam_id uuid not null,
    patient_id uuid not null,
    clinician_id uuid not null references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    version int8 not null default 1 check (version > 0),
    session_enc bytea not null check (length(session_enc) between 1 and 16777216),
    primary key (practice_id, exam_id),
    constraint perio_exam_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint perio_exam_time_order check (updated_at >= created_at)
);
create index perio_exam_patient_idx on perio_exam (practice_id, patient_id, created_at);

alter table perio_exam enable row level security;
alter table perio_exam force row level security;

create policy perio_exam_clinical on perio_exam for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on perio_exam for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

-- The server creates exams and changes their session; it never deletes one, and never moves
-- one to another patient or author (column privileges).
grant select, insert on perio_exam to chartroom_runtime;
grant update (session_enc, version, updated_at) on perio_exam to chartroom_runtime;
