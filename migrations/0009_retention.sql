-- Deletion and retention (req INT-02).
--
-- * Patients are soft-deleted (`patient.deleted_at`): reads answer 410, lists and search
--   leave them out, their history stays. The runtime role can no longer hard-delete a patient.
-- * Per practice, two windows (changed only by the owner role, `chartroom retention set`):
--     deleted_retention_days  how long a soft-deleted record (a patient, a draft note) is kept
--                             before the retention job purges it. Default 30 days: long enough
--                             to notice and reverse a mistaken deletion, short enough that
--                             deleted data does not linger (data minimization). Bounds 1 day
--                             (never the same day) to 3650 days (ten years).
--     record_keeping_years    how long signed clinical notes are kept, counted from the note's
--                             newest signed version (signature, amendment or addendum). Set it
--                             from the practice's state record-keeping rule. Default 10 years:
--                             at or above the adult-record rule of most US states for dental
--                             and medical records (commonly 5 to 10 years). Bounds 2 to 100
--                             years. Records of minors often must be kept longer (until the age
--                             of majority plus a number of years): such practices set a longer
--                             window or place a legal hold.
-- * Legal hold (`legal_hold`, one row per patient): while it exists, nothing of the patient is
--   purged. It records who placed it, when, and a category code — never free text (a reason
--   typed by a person could be PHI).
-- * The retention job (`OwnerStore::purge_expired`) runs as the owner role with the
--   transaction-local setting `chartroom.retention_purge = 'on'`. Only that combination gets
--   through the note locks below (versions and signed headers are otherwise never deleted),
--   and not for a patient under legal hold. Audit rows are never deleted by it: they have no
--   foreign keys to the records they name and their own triggers forbid DELETE.
--
-- What a purge removes (and what it keeps) is documented on `store::retention`.

alter table practice
    add column deleted_retention_days integer not null default 30
        constraint practice_deleted_retention_days check (deleted_retention_days between 1 and 3650),
    add column record_keeping_years integer not null default 10
        constraint practice_record_keeping_years check (record_keeping_years between 2 and 100);

-- The retention windows are the owner role's (the operator's) to change: the runtime role
-- keeps its table-wide UPDATE for the practice's other settings, and this trigger refuses it
-- these two columns.
create function app.practice_retention_guard() returns trigger
    language plpgsql
    as $$
    begin
        if (new.deleted_retention_days, new.record_keeping_years)
               is distinct from (old.deleted_retention_days, old.record_keeping_years)
           and not pg_has_role(current_user, 'chartroom_owner', 'usage') then
            raise exception 'retention windows are changed by the operator (chartroom retention set)'
                using errcode = 'insufficient_privilege';
        end if;
        return new;
    end
    $$;
create trigger practice_retention_guard before update on practice
    for each row execute function app.practice_retention_guard();

alter table patient add column deleted_at timestamptz;
create index patient_deleted_idx on patient (practice_id, deleted_at) where deleted_at is not null;
create index clinical_note_deleted_idx on clinical_note (practice_id, deleted_at) where deleted_at is not null;

-- Soft delete replaces the runtime role's hard delete.
revoke delete on patient from chartroom_runtime;

create table legal_hold (
    practice_id uuid not null references practice (practice_id),
    patient_id uuid not null,
    category text not null
        constraint legal_hold_category
        check (category in ('litigation', 'investigation', 'regulatory', 'records_request', 'other')),
    placed_by uuid not null references app_user (user_id),
    placed_at timestamptz not null,
    primary key (practice_id, patient_id),
    constraint legal_hold_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);

alter table legal_hold enable row level security;
alter table legal_hold force row level security;
-- Owners and admins place, change, review and release holds.
create policy legal_hold_manage on legal_hold for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']
                and placed_by = (select app.actor()));
create policy owner_all on legal_hold for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert, update, delete on legal_hold to chartroom_runtime;

-- Whether `p_patient` is a patient (deleted or not) of the current practice and the actor is
-- one of its owners or admins: the legal-hold routes' existence check. SECURITY DEFINER
-- because owners and admins without a clinical or reception role cannot see patient rows (and
-- must not: demographics are not theirs). It answers one boolean about the current practice
-- (the owner's policies bound the read to app.practice()) and returns no row data.
create function app.legal_hold_target(p_patient uuid) returns boolean
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select (select app.actor_roles()) && array['owner', 'admin']
           and exists (select 1 from public.patient p
                        where p.practice_id = app.practice() and p.patient_id = p_patient)
    $$;
revoke all on function app.legal_hold_target(uuid) from public;
grant execute on function app.legal_hold_target(uuid) to chartroom_runtime;

-- The retention purge's pass through the note locks: the owner role, the transaction-local
-- purge setting, and a patient not under legal hold.
create function app.retention_purge_allowed(p_practice uuid, p_patient uuid) returns boolean
    language sql stable
    as $$
        select current_setting('chartroom.retention_purge', true) = 'on'
           and pg_has_role(current_user, 'chartroom_owner', 'usage')
           and p_patient is not null
           and not exists (select 1 from public.legal_hold h
                            where h.practice_id = p_practice and h.patient_id = p_patient)
    $$;

-- As in 0007, plus: the retention purge may delete versions (see above).
create or replace function app.note_version_locked() returns trigger
    language plpgsql
    as $$
    begin
        if tg_op = 'DELETE' then
            if app.retention_purge_allowed(old.practice_id,
                   (select n.patient_id from public.clinical_note n
                     where n.practice_id = old.practice_id and n.note_id = old.note_id)) then
                return old;
            end if;
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

-- As in 0007, plus: the retention purge may delete a signed note, and no delete at all
-- reaches a note of a patient under legal hold.
create or replace function app.note_header_locked() returns trigger
    language plpgsql
    as $$
    begin
        if tg_op = 'DELETE' then
            if exists (select 1 from public.legal_hold h
                        where h.practice_id = old.practice_id and h.patient_id = old.patient_id) then
                raise exception 'the patient is under legal hold'
                    using errcode = 'integrity_constraint_violation';
            end if;
            if old.status = 'signed' and not app.retention_purge_allowed(old.practice_id, old.patient_id) then
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
