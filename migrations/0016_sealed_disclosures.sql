-- Issue 14, defects 3 and 4: disclosure details sealed at rest, and a note version's hash
-- bound to its signature manifestation.
--
-- 1. Disclosures. Recipient, description and purpose are free text a person typed (HIPAA
--    164.528(b)(2): "a brief description of the protected health information disclosed", "a
--    brief statement of the purpose"), so they are stored only as field ciphertexts
--    (`*_enc`, AES-256-GCM bound to practice, `disclosure`, column and disclosure id), like
--    every other PHI column. `kind` stays a checked category (closed set, no PHI). The keys
--    live outside the database, so rows written before this migration cannot be sealed here:
--    the plaintext columns become nullable, no new row may carry plaintext (a NOT VALID check:
--    enforced for every new or changed row, not for the rows already there), and `chartroom
--    serve` / `chartroom keys encrypt-existing` seal the old rows in batches and empty their
--    plaintext. Copies of old plaintext in dead tuples, WAL segments and earlier backups are
--    beyond the reach of that job (VACUUM FULL rewrites the table files).
alter table disclosure
    alter column recipient drop not null,
    alter column description drop not null,
    alter column purpose drop not null,
    add column recipient_enc bytea check (length(recipient_enc) between 1 and 16384),
    add column description_enc bytea check (length(description_enc) between 1 and 16384),
    add column purpose_enc bytea check (length(purpose_enc) between 1 and 16384),
    add constraint disclosure_sealed_or_legacy check (
            (recipient is null) <> (recipient_enc is null)
        and (description is null) <> (description_enc is null)
        and (purpose is null) <> (purpose_enc is null));
alter table disclosure
    add constraint disclosure_no_new_plaintext
        check (recipient is null and description is null and purpose is null) not valid;

-- Rows still holding plaintext, for the start-up encryption job.
create index disclosure_plaintext_idx on disclosure (practice_id, disclosure_id)
    where recipient is not null or description is not null or purpose is not null;

-- 2. Note versions. Scheme 1 (every version written before this migration) hashes the note,
--    version, kind, signer id, signed time, meaning and content, but not the printed name,
--    credential, time zone, creation time, reason or AI flags the manifestation shows: those
--    rows stay verifiable as they are, and do not bind their manifestation. Scheme 2 (every
--    new version; `domain::notes::VersionBinding`) binds everything a reader is shown.
alter table clinical_note_version
    add column hash_scheme int2 not null default 1 check (hash_scheme in (1, 2));
alter table clinical_note_version alter column hash_scheme set default 2;

-- Like every other column of a version but its ciphertexts, the scheme never changes (next to
-- the version lock of migrations 0007 and 0009, which this leaves as it is).
create function app.note_version_scheme_locked() returns trigger
    language plpgsql
    as $$
    begin
        if new.hash_scheme is distinct from old.hash_scheme then
            raise exception 'only the ciphertext of a note version may be re-encrypted'
                using errcode = 'integrity_constraint_violation';
        end if;
        return new;
    end
    $$;
create trigger clinical_note_version_scheme_locked before update on clinical_note_version
    for each row execute function app.note_version_scheme_locked();
