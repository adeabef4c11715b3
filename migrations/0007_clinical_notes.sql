-- Clinical records: visits, and notes that lock when signed.
--
-- A note (`clinical_note`) is a header: patient, author, template, status and the number of
-- its newest version (`current_version`, the ETag). Its content lives in
-- `clinical_note_version`, one row per save, never changed afterwards:
--   draft      every save of a draft is a new version;
--   signed     the signed copy of the last draft, with the signature manifestation (printed
--              name, credential, time with zone, meaning) and a SHA-256 hash over the exact
--              content, the note and the signer;
--   amendment  a replacement of the signed content, with its own author, time, reason and
--              signature, and whether (and from which assistant turn) it was AI-assisted;
--   addendum   text appended to a signed note, with its own author, time, reason, signature.
-- Content and reasons are field ciphertexts (bound to practice, table, column, note and
-- version); hashes, ids, times and the signer's printed name and credential are not PHI.
--
-- Locking is enforced three times over: the runtime role has no UPDATE or DELETE privilege on
-- versions; a trigger rejects any UPDATE of a version except a re-encryption of its
-- ciphertexts by the owner role (data-key rotation), and any DELETE; a trigger on the header
-- rejects un-signing, moving or deleting a signed note. A superuser can still bypass
-- triggers — `chartroom notes verify` recomputes every hash and reports such a change.

create table visit (
    practice_id uuid not null references practice (practice_id),
    visit_id uuid not null,
    patient_id uuid not null,
    clinician_id uuid not null references app_user (user_id),
    appointment_id uuid,
    started_at timestamptz not null,
    created_at timestamptz not null,
    primary key (practice_id, visit_id),
    constraint visit_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint visit_appointment_fkey foreign key (practice_id, appointment_id)
        references appointment (practice_id, appointment_id)
);
create index visit_patient_idx on visit (practice_id, patient_id, started_at);

-- The signer's credential (e.g. RDH, DDS, LMT), printed in every signature.
alter table app_user add column credential text
    check (credential is null or length(credential) between 1 and 40);

alter table clinical_note
    drop constraint clinical_note_body_present,
    add column template text not null default 'free'
        check (template in ('free', 'dental_hygiene', 'dental_exam', 'massage')),
    add column visit_id uuid,
    add column status text not null default 'draft' check (status in ('draft', 'signed')),
    add column current_version int4 not null default 0 check (current_version >= 0),
    add column signed_version int4,
    add column updated_at timestamptz,
    add column deleted_at timestamptz,
    add constraint clinical_note_visit_fkey foreign key (practice_id, visit_id)
        references visit (practice_id, visit_id),
    add constraint clinical_note_signed_shape
        check ((status = 'signed') = (signed_version is not null)),
    add constraint clinical_note_signed_not_deleted
        check (status = 'draft' or deleted_at is null);

create table clinical_note_version (
    practice_id uuid not null,
    note_id uuid not null,
    version int4 not null check (version > 0),
    kind text not null check (kind in ('draft', 'signed', 'amendment', 'addendum')),
    author_id uuid not null references app_user (user_id),
    created_at timestamptz not null,
    content_enc bytea not null check (length(content_enc) between 1 and 1048576),
    content_sha256 bytea not null check (length(content_sha256) = 32),
    reason_enc bytea check (length(reason_enc) between 1 and 16384),
    ai_assisted boolean not null default false,
    assistant_turn_id uuid,
    signer_name text check (length(signer_name) between 1 and 200),
    signer_credential text check (length(signer_credential) between 1 and 40),
    signed_at timestamptz,
    signed_tz text check (length(signed_tz) between 1 and 64),
    signature_meaning text check (length(signature_meaning) between 1 and 100),
    primary key (practice_id, note_id, version),
    constraint clinical_note_version_note_fkey foreign key (practice_id, note_id)
        references clinical_note (practice_id, note_id),
    constraint clinical_note_version_signature
        check ((kind = 'draft') = (signed_at is null)
           and (signed_at is null) = (signer_name is null)
           and (signed_at is null) = (signature_meaning is null)
           and (signed_at is null) = (signed_tz is null)),
    constraint clinical_note_version_reason
        check ((kind in ('amendment', 'addendum')) = (reason_enc is not null)),
    constraint clinical_note_version_assistant
        check (ai_assisted or assistant_turn_id is null)
);
-- A read shows the signed versions and the current draft: find the signed ones without walking
-- every draft a note ever had.
create index clinical_note_version_signed_idx on clinical_note_version (practice_id, note_id, version)
    where kind <> 'draft';

-- Versions never change; the one exception is the owner role re-encrypting ciphertexts under
-- a new data key (same plaintext: `notes verify` checks the hash after every rotation).
create function app.note_version_locked() returns trigger
    language plpgsql
    as $$
    begin
        if tg_op = 'DELETE' then
            raise exception 'note versions cannot be deleted'
                using errcode = 'integrity_constraint_violation';
        end if;
        if not pg_has_role(current_user, 'chartroom_owner', 'usage') then
            raise exception 'note versions are immutable (signed content is locked)'
                using errcode = 'integrity_constraint_violation';
        end if;
        if (new.practice_id, new.note_id, new.version, new.kind, new.author_id, new.created_at,
            new.content_sha256, new.ai_assisted, new.assistant_turn_id, new.signer_name,
            new.signer_credential, new.signed_at, new.signed_tz, new.signature_meaning,
            new.reason_enc is null)
           is distinct from
           (old.practice_id, old.note_id, old.version, old.kind, old.author_id, old.created_at,
            old.content_sha256, old.ai_assisted, old.assistant_turn_id, old.signer_name,
            old.signer_credential, old.signed_at, old.signed_tz, old.signature_meaning,
            old.reason_enc is null) then
            raise exception 'only the ciphertext of a note version may be re-encrypted'
                using errcode = 'integrity_constraint_violation';
        end if;
        return new;
    end
    $$;
create trigger clinical_note_version_locked before update or delete on clinical_note_version
    for each row execute function app.note_version_locked();
create trigger clinical_note_version_no_truncate before truncate on clinical_note_version
    for each statement execute function app.reject_audit_change();

-- A signed note stays signed, stays with its patient and author, and is never deleted; only
-- its current version advances (amendments, addenda).
create function app.note_header_locked() returns trigger
    language plpgsql
    as $$
    begin
        if tg_op = 'DELETE' then
            if old.status = 'signed' then
                raise exception 'a signed note cannot be deleted'
                    using errcode = 'integrity_constraint_violation';
            end if;
            return old;
        end if;
        if (new.practice_id, new.note_id, new.patient_id, new.author_id, new.created_at)
           is distinct from (old.practice_id, old.note_id, old.patient_id, old.author_id, old.created_at) then
            raise exception 'a note cannot move to another patient or author'
                using errcode = 'integrity_constraint_violation';
        end if;
        if new.current_version < old.current_version then
            raise exception 'a note''s versions only advance'
                using errcode = 'integrity_constraint_violation';
        end if;
        if old.status = 'signed' and (new.status <> 'signed'
                or new.signed_version is distinct from old.signed_version
                or new.template is distinct from old.template
                or new.visit_id is distinct from old.visit_id
                or new.deleted_at is not null) then
            raise exception 'a signed note is locked: add an amendment or an addendum'
                using errcode = 'integrity_constraint_violation';
        end if;
        return new;
    end
    $$;
create trigger clinical_note_locked before update or delete on clinical_note
    for each row execute function app.note_header_locked();

alter table visit enable row level security;
alter table visit force row level security;
alter table clinical_note_version enable row level security;
alter table clinical_note_version force row level security;

-- Clinical content: whoever may see the patient's clinical records (app.clinical_visible).
drop policy clinical_note_clinician on clinical_note;
create policy clinical_note_clinical on clinical_note for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy clinical_note_version_clinical on clinical_note_version for all to chartroom_runtime
    using (practice_id = (select app.practice()) and exists (
        select 1 from public.clinical_note n
         where n.practice_id = clinical_note_version.practice_id
           and n.note_id = clinical_note_version.note_id))
    with check (practice_id = (select app.practice()) and exists (
        select 1 from public.clinical_note n
         where n.practice_id = clinical_note_version.practice_id
           and n.note_id = clinical_note_version.note_id));
create policy visit_clinical on visit for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on clinical_note_version for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on visit for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant update (status, current_version, signed_version, updated_at, deleted_at, template, visit_id)
    on clinical_note to chartroom_runtime;
grant select, insert on clinical_note_version to chartroom_runtime;
grant select, insert on visit to chartroom_runtime;
