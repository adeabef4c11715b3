-- Encryption at rest (issue 5): wrapped per-practice data keys, crypto-shredding tombstones,
-- encrypted patient demographics, contact details and note bodies, and blind-index search
-- tokens.
--
-- The keys that seal the new columns live outside the database (a KEK from the key provider
-- wraps each practice's data key), so existing plaintext cannot be encrypted here. Instead:
--   * the plaintext columns become nullable and the application writes ciphertext only;
--   * `chartroom serve` (or `chartroom keys encrypt-existing`) encrypts rows that still hold
--     plaintext in batches at start-up and nulls the plaintext.
-- Every ciphertext is bound to (practice, table, column, row) by AES-256-GCM associated data
-- and starts with a format byte and the data-key version that sealed it (crypto crate docs).

-- One row per version of each practice's data key, wrapped by a KEK. Not PHI, but tenant
-- data: practice_id leads, RLS applies.
create table practice_data_key (
    practice_id uuid not null references practice (practice_id),
    dek_version int4 not null check (dek_version > 0),
    kek_id text not null check (length(kek_id) between 1 and 2048),
    kek_version int8 not null check (kek_version >= 0),
    wrapped bytea not null check (length(wrapped) between 1 and 8192),
    created_at timestamptz not null default now(),
    primary key (practice_id, dek_version)
);

-- Crypto-shredding: once a practice's keys are destroyed, this row remains, and no key may be
-- added again (checked by the key store under a per-practice advisory lock).
create table practice_key_destroyed (
    practice_id uuid not null references practice (practice_id),
    destroyed_at timestamptz not null,
    primary key (practice_id)
);

alter table practice_data_key enable row level security;
alter table practice_data_key force row level security;
alter table practice_key_destroyed enable row level security;
alter table practice_key_destroyed force row level security;

-- The server reads its practice's keys and provisions or rotates them (insert); it never
-- rewraps, retires or destroys them.
create policy practice_data_key_read on practice_data_key for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy practice_data_key_insert on practice_data_key for insert to chartroom_runtime
    with check (practice_id = (select app.practice()));
create policy practice_key_destroyed_read on practice_key_destroyed for select to chartroom_runtime
    using (practice_id = (select app.practice()));

-- The owner role (CLI: keys rotate-kek, rotate-data-key, shred) works per practice, except
-- the KEK rewrap, which must list wrapped keys (ids and opaque bytes, no PHI) across practices.
create policy owner_all on practice_data_key for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_key_directory on practice_data_key for select to chartroom_owner using (true);
create policy owner_all on practice_key_destroyed for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert on practice_data_key to chartroom_runtime;
grant select on practice_key_destroyed to chartroom_runtime;

-- Patients: ciphertext columns next to the legacy plaintext ones (nullable from now on; the
-- start-up job empties them). A row holds each field either as ciphertext or, until it is
-- migrated, as plaintext.
alter table patient
    alter column given_name drop not null,
    alter column family_name drop not null,
    add column given_name_enc bytea,
    add column family_name_enc bytea,
    add column date_of_birth_enc bytea,
    add column phone_enc bytea,
    add column email_enc bytea,
    add constraint patient_given_name_present check (given_name is not null or given_name_enc is not null),
    add constraint patient_family_name_present check (family_name is not null or family_name_enc is not null);

-- Rows still holding plaintext, for the start-up encryption job.
create index patient_plaintext_idx on patient (practice_id, patient_id)
    where given_name is not null or family_name is not null or date_of_birth is not null
       or phone is not null or email is not null;

alter table clinical_note
    alter column body drop not null,
    add column body_enc bytea,
    add constraint clinical_note_body_present check (body is not null or body_enc is not null);

create index clinical_note_plaintext_idx on clinical_note (practice_id, note_id)
    where body is not null;

-- Blind-index tokens: keyed HMAC tags (crypto::blind_index) of name prefixes (kind 1), the
-- date of birth (2) and the phone number (3). They reveal equality within a practice, never
-- a value; they die with the practice's keys.
create table patient_search_token (
    practice_id uuid not null,
    patient_id uuid not null,
    kind int2 not null check (kind in (1, 2, 3)),
    tag bytea not null check (length(tag) = 16),
    primary key (practice_id, kind, tag, patient_id),
    constraint patient_search_token_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade
);
create index patient_search_token_patient_idx on patient_search_token (practice_id, patient_id);

alter table patient_search_token enable row level security;
alter table patient_search_token force row level security;

create policy patient_search_token_scheduling on patient_search_token for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy owner_all on patient_search_token for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert, delete on patient_search_token to chartroom_runtime;
